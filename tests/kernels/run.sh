#!/usr/bin/env bash
# The kernel matrix: boots each KERNEL with virtme-ng over this machine's root file system
# and runs capture's live tests inside it, with the binaries already built here.
#
#   bash tests/kernels/install.sh 6.1 6.12     # once: qemu, virtme-ng, the kernel images
#   bash tests/kernels/run.sh 6.1 6.12
#
# KERNEL is a series (6.1: the newest unpacked linux-image-6.1.*), a release
# (6.1.0-57-amd64) or the path of a vmlinuz whose modules sit in ../lib/modules/RELEASE.
# Per kernel it reports the kernel features capture needs, the verifier's verdict on each
# program (TC ingress, TC egress, XDP and their decapsulation programs; a rejection's log is
# printed whole), the attach mode
# each hook gets, and every live test's result; it exits 1 if anything failed on any kernel.
#
# The guest is qemu without KVM (TCG): with KVM, Debian's qemu 7.2 stops on an MSR error in
# nested VMs, and TCG works everywhere. Tuning: SYNSCOPE_KERNEL_TIMEOUT (seconds per kernel,
# default 900), SYNSCOPE_KERNEL_MEMORY (default 2G), SYNSCOPE_KERNEL_CPUS (default 2),
# SYNSCOPE_LIVE_ARGS (extra arguments for the live test binary, e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
dir=${SYNSCOPE_KERNELS_DIR:-$root/target/kernels}
if [[ $# -eq 0 ]]; then
  echo "usage: $0 KERNEL... (e.g. 6.1 6.12; install them with tests/kernels/install.sh)" >&2
  exit 2
fi
if [[ ! -x $dir/venv/bin/vng ]]; then
  echo "FAIL: virtme-ng missing in $dir/venv: run tests/kernels/install.sh first" >&2
  exit 1
fi
export PATH="$dir/venv/bin:$PATH"   # vng runs virtme-run from its own venv

# The binaries the host tests use: the README's `cargo test --release` (default members; with
# `-p capture` cargo unifies features differently and builds another live binary) and the
# same SYNSCOPE_REQUIRE_EBPF as .ci/run's build, so cargo finds them fresh instead of
# re-running capture/build.rs. Built once if missing.
export SYNSCOPE_REQUIRE_EBPF=${SYNSCOPE_REQUIRE_EBPF:-1}
cargo test --release --no-run --message-format=json >"$dir/cargo.json" 2>"$dir/cargo.log" || {
  cat "$dir/cargo.log" >&2
  echo "FAIL: cargo test --release --no-run" >&2
  exit 1
}
live=$(sed -n 's/.*"executable":"\([^"]*\/deps\/live-[^"]*\)".*/\1/p' "$dir/cargo.json" | tail -n 1)
capture=$(dirname "$(dirname "$live")")/capture
if [[ ! -x $live || ! -x $capture ]]; then
  echo "FAIL: no live test binary or capture in cargo's output ($dir/cargo.json)" >&2
  exit 1
fi
# Every live test must report ok on every kernel (unless SYNSCOPE_LIVE_ARGS picks some).
mapfile -t expected < <("$live" --list 2>/dev/null | sed -n 's/: test$//p')
[[ -n ${SYNSCOPE_LIVE_ARGS:-} ]] && expected=()
[[ -n ${SYNSCOPE_LIVE_ARGS:-} || ${#expected[@]} -gt 0 ]] || {
  echo "FAIL: $live --list names no test" >&2
  exit 1
}
echo "live tests: $live (${#expected[@]} tests)"
echo "capture:    $capture"

resolve() {
  local k=$1 found
  if [[ -f $k ]]; then
    echo "$k"
    return
  fi
  # 6.1 must not match 6.12: the series is followed by '.' (6.1.0-57) or the release is exact.
  found=$(ls -d "$dir"/*/boot/vmlinuz-"$k".* "$dir"/*/boot/vmlinuz-"$k" 2>/dev/null |
    awk -F/boot/vmlinuz- '{print $2 "\t" $0}' | sort -V | tail -n 1 | cut -f2)
  if [[ -z $found ]]; then
    echo "FAIL: no kernel $k in $dir (run tests/kernels/install.sh $k)" >&2
    return 1
  fi
  echo "$found"
}

# Field helpers over a guest's result files.
verdict() { # verdict RES PROGRAM -> accepted | REJECTED | not checked
  local v
  v=$(sed -n "s/^verifier $2: \([A-Za-z ]*\).*/\1/p" "$1/check.txt" 2>/dev/null | head -n 1)
  echo "${v:-not checked}"
}
feature() { # feature RES WORD -> ok | MISSING | not checked
  local v
  v=$(grep "^feature .*$2" "$1/check.txt" 2>/dev/null | sed -n 's/.*: \(ok\|MISSING\).*/\1/p' |
    head -n 1)
  echo "${v:-not checked}"
}
attach() { # attach RES MODE -> "clsact ingress+egress, 10 SYN recorded" | FAILED (...)
  local how rec
  how=$(sed -n 's/^attached to lo as \(.*\); recording.*/\1/p' "$1/smoke-$2.txt" 2>/dev/null)
  rec=$(sed -n 's/.*| recorded \([0-9]*\) |.*/\1/p' "$1/smoke-$2.txt" 2>/dev/null)
  if [[ $(cat "$1/smoke-$2.rc" 2>/dev/null) == 0 && -n $how && ${rec:-0} -gt 0 ]]; then
    echo "$how ($rec SYN recorded)"
  else
    echo "FAILED (${how:-not attached}, ${rec:-0} recorded; see smoke-$2.txt)"
  fi
}

summary=()
overall=0
total_start=$(date +%s)
for k in "$@"; do
  img=$(resolve "$k")
  rel=${img##*/vmlinuz-}
  res=$dir/results/$rel
  rm -rf "$res"
  mkdir -p "$res"
  echo
  echo "===== kernel $rel ($img)"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086 # SYNSCOPE_LIVE_ARGS is a list of arguments
  timeout --kill-after=30 "${SYNSCOPE_KERNEL_TIMEOUT:-900}" \
    vng -r "$img" --user root --disable-kvm \
    --cpus "${SYNSCOPE_KERNEL_CPUS:-2}" --memory "${SYNSCOPE_KERNEL_MEMORY:-2G}" \
    --rwdir "$res" -- \
    "bash $root/tests/kernels/guest.sh $res $capture $live ${SYNSCOPE_LIVE_ARGS:-}" </dev/null 2>&1 |
    tee "$res/console.txt"
  # Through a pipe so everything the guest printed is out before the summary (qemu's relay
  # can outlive vng by a moment), stderr included: qemu reopens its output, and when that is
  # the caller's log file it truncated it (a CI log redirected to a file lost everything
  # before the matrix).
  vm_rc=${PIPESTATUS[0]}
  set -e
  secs=$(($(date +%s) - start))

  fail=()
  [[ $vm_rc == 0 ]] || fail+=("vng exited $vm_rc$([[ $vm_rc == 124 ]] && echo ' (timeout)')")
  [[ -f $res/uname ]] || fail+=("the guest script did not run")
  [[ $(cat "$res/check.rc" 2>/dev/null) == 0 ]] || fail+=("capture --check failed (its output, a rejected program's whole verifier log included, is above and in $res/check.txt)")
  # Names are padded to a common width before the dots.
  tests=$(sed -n 's/^test \([A-Za-z0-9_:]*\) *\.\.\. \(.*\)$/\1 \2/p' "$res/live.txt" 2>/dev/null || true)
  if [[ -z $tests ]]; then
    fail+=("no live test ran")
  elif grep -qv ' ok$' <<<"$tests"; then
    fail+=("live tests not ok: $(grep -v ' ok$' <<<"$tests" | tr '\n' ',' | sed 's/,$//')")
  fi
  for t in "${expected[@]}"; do
    grep -qx "$t ok" <<<"$tests" || fail+=("live test $t did not pass")
  done
  [[ $(cat "$res/live.rc" 2>/dev/null) == 0 ]] || fail+=("live test binary exited $(cat "$res/live.rc" 2>/dev/null || echo '?')")
  tc=$(attach "$res" tc)
  xdp=$(attach "$res" xdp)
  [[ $tc != FAILED* ]] || fail+=("tc smoke capture failed")
  [[ $xdp != FAILED* ]] || fail+=("xdp smoke capture failed")

  kline=$(sed -n 's/^kernel //p' "$res/check.txt" 2>/dev/null | head -n 1)
  block="kernel ${kline:-$rel}: $([[ ${#fail[@]} == 0 ]] && echo PASS || echo FAIL) in ${secs} s"
  block+=$'\n'"  features  ring buffer $(feature "$res" 'ring buffer'), atomics $(feature "$res" atomics), bpf_xdp_load_bytes $(feature "$res" bpf_xdp_load_bytes)"
  verdicts=()
  for prog in synscope_tc synscope_tc_egress synscope_tc_decap synscope_xdp synscope_xdp_decap; do
    verdicts+=("$prog $(verdict "$res" "$prog")")
  done
  block+=$'\n'"  verifier  $(IFS=,; sed 's/,/, /g' <<<"${verdicts[*]}")"
  block+=$'\n'"  attach    tc: $tc; xdp: $xdp"
  block+=$'\n'"  live      $(tr '\n' ',' <<<"$tests" | sed 's/,$//; s/,/, /g')"
  for f in "${fail[@]}"; do
    block+=$'\n'"  FAILED    $f"
    overall=1
  done
  summary+=("$block")
  echo "$block"
done

echo
echo "===== kernel matrix summary ($(($(date +%s) - total_start)) s; results in $dir/results)"
printf '%s\n' "${summary[@]}"
exit $overall
