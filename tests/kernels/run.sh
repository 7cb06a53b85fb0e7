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
# default 900), SYNSCOPE_KERNEL_BOOT_TIMEOUT (seconds for the guest to start its script before
# the VM is stopped and booted once more, default 300; a boot takes about 30 s here),
# SYNSCOPE_KERNEL_MEMORY (default 2G), SYNSCOPE_KERNEL_CPUS (default 2),
# SYNSCOPE_LIVE_ARGS (extra arguments for the live test binary, e.g. a test name filter),
# SYNSCOPE_KERNEL_TEST_PANIC=1 (the guest crashes its kernel on purpose once its script
# starts: checks the retry after a panic, which then fails on the second boot too).
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
  v=$(sed -n "s/^verifier $2: \([A-Za-z ]*\).*/\1/p" "$1/check.txt" 2>/dev/null | head -n 1) || true
  echo "${v:-not checked}"
}
feature() { # feature RES WORD -> ok | MISSING | not checked
  local v
  v=$(grep "^feature .*$2" "$1/check.txt" 2>/dev/null | sed -n 's/.*: \(ok\|MISSING\).*/\1/p' |
    head -n 1) || true
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

# boot IMG RES: one VM run of guest.sh; its exit status, or 125 if the guest script had not
# started (written RES/uname) within the boot limit. The kernel's own log (vng --verbose)
# goes to RES/console.txt only, with everything else; the caller's output gets the rest
# through a pipe (qemu reopens its output, and when that was the caller's log file it
# truncated it: a CI log redirected to a file lost everything before the matrix).
boot() {
  local img=$1 res=$2 pid waited=0
  rm -f "$res/uname" "$res/vm.pid" "$res/vm.rc"
  # The VM runs in the background so that the boot limit can be watched; the pipe's first
  # command records timeout's pid (to stop it) and its exit status (the pipe's is grep's).
  # shellcheck disable=SC2016,SC2086 # expanded by the inner bash; SYNSCOPE_LIVE_ARGS is a list
  {
    bash -c '"$@" & echo $! >"$0/vm.pid"; wait $!; echo $? >"$0/vm.rc"' "$res" \
      timeout --kill-after=30 "${SYNSCOPE_KERNEL_TIMEOUT:-900}" \
      vng -r "$img" --user root --disable-kvm --verbose \
      --cpus "${SYNSCOPE_KERNEL_CPUS:-2}" --memory "${SYNSCOPE_KERNEL_MEMORY:-2G}" \
      --rwdir "$res" -- \
      "SYNSCOPE_KERNEL_TEST_PANIC=${SYNSCOPE_KERNEL_TEST_PANIC:-0} bash $root/tests/kernels/guest.sh $res $capture $live ${SYNSCOPE_LIVE_ARGS:-}" \
      </dev/null 2>&1 | tee -a "$res/console.txt" |
      grep --line-buffered -v '^\[ *[0-9]*\.[0-9]*\]'
  } &
  local job=$!
  # (A job that ended without writing its pid, e.g. no bash, would leave this waiting.)
  until [[ -s $res/vm.pid ]] || ! kill -0 "$job" 2>/dev/null; do sleep 0.1; done
  pid=$(cat "$res/vm.pid" 2>/dev/null) || {
    wait "$job"
    return 1
  }
  # timeout(1) leads a process group of its own and passes a TERM on to all of it (vng,
  # virtme-run, qemu); the KILL is for whatever ignored that.
  while kill -0 "$pid" 2>/dev/null; do
    if [[ ! -f $res/uname ]] && ((waited >= ${SYNSCOPE_KERNEL_BOOT_TIMEOUT:-300})); then
      kill -TERM "$pid" 2>/dev/null
      sleep 10
      kill -KILL -- "-$pid" 2>/dev/null
      wait "$job"
      return 125
    fi
    sleep 1
    waited=$((waited + 1))
  done
  wait "$job"
  return "$(cat "$res/vm.rc" 2>/dev/null || echo 1)"
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
  # A guest that did not start guest.sh (stuck in boot past the boot limit, or a VM that ended
  # first) is booted once more, and the summary says so; once CI saw 6.12 end without a line
  # of output. So is a guest whose kernel panicked after the script started: once CI saw
  # 6.12 under TCG die of an `Oops: int3` in __dev_queue_xmit (a static-key patch site
  # hit mid-update by the other emulated CPU) while a live test sent on a raw socket. The
  # retry is in the summary; a second panic fails the kernel. Any other failure after the
  # start is not retried.
  boots=()
  for attempt in 1 2; do
    vm_rc=0
    seen=$(wc -l <"$res/console.txt" 2>/dev/null || echo 0)
    boot "$img" "$res" || vm_rc=$?
    # This boot's part of the console log (grep -q on a pipe would SIGPIPE tail: pipefail).
    console=$(tail -n +$((seen + 1)) "$res/console.txt" 2>/dev/null) || true
    panic=""
    if grep -q 'Kernel panic - not syncing' <<<"$console"; then
      panic=$(grep -oE '(Oops:|BUG:|Kernel panic).*' <<<"$console" | head -n 1 | tr -d '\r') || true
    fi
    if [[ -f $res/uname ]]; then
      if [[ $attempt == 1 && -n $panic ]]; then
        boots+=("boot attempt $attempt: the guest kernel panicked after the guest script started ($panic); the kernel's log is in $res/console.txt")
        echo "== host: ${boots[-1]}"
        # The second boot's results stand alone: nothing of the first but its console log.
        find "$res" -maxdepth 1 -type f ! -name console.txt -delete
        continue
      fi
      break
    fi
    if [[ $vm_rc == 125 ]]; then
      boots+=("boot attempt $attempt: the guest script had not started after ${SYNSCOPE_KERNEL_BOOT_TIMEOUT:-300} s; the VM was stopped")
    else
      boots+=("boot attempt $attempt: the VM ended (vng exited $vm_rc) before the guest script started")
    fi
    echo "== host: ${boots[-1]}"
  done
  secs=$(($(date +%s) - start))

  fail=()
  # (No `$([[ ... ]] && echo ...)` in these: a substitution that fails makes the whole
  # assignment fail, and set -e then ended the script before its summary.)
  case $vm_rc in
    0) ;;
    124) fail+=("vng exited 124 (the ${SYNSCOPE_KERNEL_TIMEOUT:-900} s timeout)") ;;
    125) fail+=("the guest never started its script") ;;
    *) fail+=("vng exited $vm_rc") ;;
  esac
  [[ -z $panic ]] || fail+=("the guest kernel panicked: $panic")
  tests=""
  tc=FAILED xdp=FAILED
  if [[ ! -f $res/uname ]]; then
    # Nothing below can have run: one line says so instead of a line for every step.
    fail+=("the guest script did not run")
  else
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
  fi

  kline=$(sed -n 's/^kernel //p' "$res/check.txt" 2>/dev/null | head -n 1) || true
  block="kernel ${kline:-$rel}: $([[ ${#fail[@]} == 0 ]] && echo PASS || echo FAIL) in ${secs} s"
  block+=$'\n'"  features  ring buffer $(feature "$res" 'ring buffer'), atomics $(feature "$res" atomics), bpf_xdp_load_bytes $(feature "$res" bpf_xdp_load_bytes)"
  verdicts=()
  for prog in synscope_tc synscope_tc_egress synscope_tc_decap synscope_xdp synscope_xdp_decap; do
    verdicts+=("$prog $(verdict "$res" "$prog")")
  done
  block+=$'\n'"  verifier  $(IFS=,; sed 's/,/, /g' <<<"${verdicts[*]}")"
  block+=$'\n'"  attach    tc: $tc; xdp: $xdp"
  block+=$'\n'"  live      $(tr '\n' ',' <<<"$tests" | sed 's/,$//; s/,/, /g')"
  for b in "${boots[@]}"; do
    block+=$'\n'"  retried   $b"
  done
  for f in "${fail[@]}"; do
    block+=$'\n'"  FAILED    $f"
    overall=1
  done
  if [[ ${#fail[@]} -gt 0 ]]; then
    # The kernel's log is kept out of the caller's output while all goes well; a failure shows
    # where the guest got to.
    echo "== host: the last 60 lines of $res/console.txt (kernel log included)"
    tail -n 60 "$res/console.txt" 2>/dev/null || true
  fi
  summary+=("$block")
  echo "$block"
done

echo
echo "===== kernel matrix summary ($(($(date +%s) - total_start)) s; results in $dir/results)"
printf '%s\n' "${summary[@]}"
exit $overall
