#!/usr/bin/env bash
# Runs inside the VM that tests/kernels/run.sh boots (not meant to be run by hand), as root,
# over the host's root file system (read-only; /tmp, /var and /run are writable in the guest).
#
#   guest.sh RESULTS CAPTURE LIVE [LIVE-ARGS...]
#
# 1. `capture --check`: kernel features and the verifier's verdict on every program (a
#    rejection's log is printed whole);
# 2. a smoke capture per mode on loopback in a namespace of its own, for the attach mode the
#    kernel gives (TCX or clsact, XDP native or generic) and a non-zero record count;
# 3. the live test binary, with SYNSCOPE_REQUIRE_LIVE=1 (and _ORACLE=1, for the tests that
#    read a capture tree with DuckDB, and _TUNNELS=1, for GRE, ERSPAN, Geneve and IP-in-IP)
#    so nothing can skip.
# Everything is also written to RESULTS (a directory shared with the host), which run.sh
# summarises; each step's exit status goes to RESULTS/STEP.rc.
set -uo pipefail
res=$1 capture=$2 live=$3
shift 3
export SYNSCOPE_REQUIRE_LIVE=1
# The Debian kernels have every tunnel driver the decapsulation tests build (as modules).
export SYNSCOPE_REQUIRE_TUNNELS=1
export RUST_BACKTRACE=1
# The live tests that read a capture tree with DuckDB and polars need the Python environment
# .ci/run builds (.venv-ci at the repository root, on the file system the guest shares): put
# it first on PATH, and make its absence a failure with its reason rather than a skip (run.sh
# fails a kernel on any skipped test anyway).
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ -x $root/.venv-ci/bin/python3 ]] && export PATH="$root/.venv-ci/bin:$PATH"
export SYNSCOPE_REQUIRE_ORACLE=1

echo "== guest: $(uname -r) ($(uname -v)), $(nproc) CPUs"
uname -r >"$res/uname"
# run.sh boots with the kernel's log on the console, for a boot that hangs; from here on it
# would cut into the test lines, so it goes to RESULTS/dmesg.txt at the end instead.
dmesg -n 1
trap 'dmesg >"$res/dmesg.txt" 2>&1' EXIT
# run.sh's check of its own retry after a guest kernel panic: crash here on purpose.
if [[ ${SYNSCOPE_KERNEL_TEST_PANIC:-} == 1 ]]; then
  echo "== guest: SYNSCOPE_KERNEL_TEST_PANIC=1: crashing the kernel on purpose"
  echo c >/proc/sysrq-trigger
fi

echo "== guest: capture --check"
"$capture" --check 2>&1 | tee "$res/check.txt"
echo "${PIPESTATUS[0]}" >"$res/check.rc"

for mode in tc xdp; do
  echo "== guest: smoke capture --mode $mode on loopback"
  ns=synscope-smoke-$mode
  log=$res/smoke-$mode.txt
  ip netns add "$ns" && ip -n "$ns" link set lo up
  ip netns exec "$ns" "$capture" --iface lo --mode "$mode" --out "/tmp/smoke-$mode.parquet" \
    >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q '^attached' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  # Five SYNs to closed loopback ports (each answered by a RST): enough to see records.
  for port in 1 2 3 4 5; do
    ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
  done
  sleep 0.5
  kill -INT "$pid" 2>/dev/null
  wait "$pid"
  echo $? >"$res/smoke-$mode.rc"
  cat "$log"
  ip netns del "$ns"
done

echo "== guest: live tests ($live $*)"
# The harness writes its result lines on stdout; the tests' own output (capture's log lines)
# goes to stderr, uncaptured, so it is kept apart to leave each `test NAME ... RESULT` whole.
"$live" --test-threads=1 "$@" 2>"$res/live-stderr.txt" | tee "$res/live.txt"
rc=${PIPESTATUS[0]}
echo "$rc" >"$res/live.rc"
if [[ $rc != 0 ]]; then
  echo "== guest: the live tests' own output (stderr)"
  cat "$res/live-stderr.txt"
fi
echo "== guest: done"
