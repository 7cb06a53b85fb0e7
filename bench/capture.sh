#!/usr/bin/env bash
# Benchmark of the capture datapath (issue 5 §5). Not a test: it measures and reports.
#
#   sudo bash bench/capture.sh            # from the workspace root, after
#                                         # cargo build --release -p capture
#
# What it does, for each hook mode (tc, xdp), over a veth pair between two network
# namespaces it creates (A = 198.51.100.1 sends, B = 198.51.100.2 captures on vb):
#   1. per-packet cost of the BPF programs from the kernel's BPF run-time statistics
#      (kernel.bpf_stats_enabled=1; run_time_ns / run_cnt read from /proc/PID/fdinfo of
#      capture's program fds, so bpftool is not needed), once for SYNs (record + flow insert
#      path) and once for pure ACKs of one flow (flow-counter update path only);
#   2. a rate ladder: hping3 SYN bursts of fixed duration at increasing rates; at each step
#      capture and `tcpdump -w FILE 'tcp[tcpflags] & tcp-syn != 0'` run side by side on the same
#      interface and traffic; we report sent, received by vb, seen by the hook, written, dropped,
#      and both processes' CPU and peak RSS; plus idle CPU/RSS before the burst.
# SYNs go to 198.51.100.3, an address nobody owns but which A resolves (static neighbour entry)
# to vb's MAC: B's hooks see every SYN, but B's stack discards them (not local, no forwarding),
# so no RST comes back and the egress program stays quiet. Everything created is removed on exit.
# Whole run: about 2 minutes; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAPTURE=${CAPTURE:-$ROOT/target/release/capture}
OUT_MD=${OUT_MD:-$ROOT/bench/capture-results.md}
BURST_SECS=${BURST_SECS:-3}
# hping3 inter-packet intervals (microseconds) of the ladder; "flood" = as fast as it can.
LADDER=${LADDER:-"100 20 10 5 2 flood"}
COST_PKTS=${COST_PKTS:-20000}

die() { echo "error: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$CAPTURE" ] || die "$CAPTURE missing: cargo build --release -p capture"
for t in ip hping3 tcpdump timeout; do command -v "$t" >/dev/null || die "$t not installed"; done

NS_A=synscope-bench-$$-a
NS_B=synscope-bench-$$-b
WORK=$(mktemp -d /tmp/synscope-bench.XXXXXX)
PIDS=()
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    sysctl -qw kernel.bpf_stats_enabled="$OLD_STATS"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- namespaces -----------------------------------------------------------------------------
ip netns add "$NS_A"
ip netns add "$NS_B"
ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add 198.51.100.1/24 dev va
ip -n "$NS_B" addr add 198.51.100.2/24 dev vb
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
VB_MAC=$(ip -n "$NS_B" -o link show vb | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
ip -n "$NS_A" neigh add 198.51.100.3 lladdr "$VB_MAC" dev va nud permanent
sysctl -qw kernel.bpf_stats_enabled=1

CLK_TCK=$(getconf CLK_TCK)
# From here on a failed grep (missing figure) must not abort the run: it shows up as "?".
set +e

# utime+stime of PID in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# VmRSS / VmHWM of PID in KiB.
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# "run_time_ns run_cnt" summed over PID's BPF program fds of numeric type $2.
bpf_stats() {
    local pid=$1 type=$2 f ns=0 cnt=0 t r c
    for f in /proc/"$pid"/fdinfo/*; do
        t=$(awk '$1 == "prog_type:" {print $2}' "$f" 2>/dev/null) || continue
        [ "$t" = "$type" ] || continue
        r=$(awk '$1 == "run_time_ns:" {print $2}' "$f")
        c=$(awk '$1 == "run_cnt:" {print $2}' "$f")
        ns=$((ns + ${r:-0}))
        cnt=$((cnt + ${c:-0}))
    done
    echo "$ns $cnt"
}
va_tx() { ip netns exec "$NS_A" cat /sys/class/net/va/statistics/tx_packets; }
vb_rx() { ip netns exec "$NS_B" cat /sys/class/net/vb/statistics/rx_packets; }

# Starts capture in B (mode $1, output $2); sets CAP_PID; waits (<= 20 s) for "attached".
start_capture() {
    ip netns exec "$NS_B" "$CAPTURE" --iface vb --mode "$1" --out "$2" 2>"$2.log" &
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    local i
    for i in $(seq 200); do
        grep -q '^attached' "$2.log" 2>/dev/null && return 0
        kill -0 "$CAP_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$2.log" >&2
    die "capture did not attach in $1 mode"
}
# SIGINT, wait (<= 30 s).
stop_pid() {
    local i
    kill -INT "$1" 2>/dev/null || true
    for i in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
start_tcpdump() {
    ip netns exec "$NS_B" tcpdump -Z root -i vb -w "$1" 'tcp[tcpflags] & tcp-syn != 0' 2>"$1.log" &
    TD_PID=$!
    PIDS+=("$TD_PID")
    local i
    for i in $(seq 100); do
        grep -q 'listening' "$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    die "tcpdump did not start"
}
# hping3 from A: $1 = interval in us or "flood", $2 = seconds, extra args after. Prints sent.
hping() {
    local iv=$1 secs=$2
    shift 2
    local rate=(-i "u$iv")
    [ "$iv" = flood ] && rate=(--flood)
    timeout -k 2 -s INT "$((secs + 0))" ip netns exec "$NS_A" hping3 -q "${rate[@]}" "$@" \
        198.51.100.3 >"$WORK/hping.out" 2>&1 || true
    grep -o '[0-9]* packets tra[a-z]*mitted' "$WORK/hping.out" | awk '{print $1}' | head -1
}
# hping3 with a fixed count: $1 count, $2 interval us, extra args.
hping_count() {
    local n=$1 iv=$2
    shift 2
    timeout -k 2 -s INT 60 ip netns exec "$NS_A" hping3 -q -c "$n" -i "u$iv" "$@" 198.51.100.3 \
        >"$WORK/hping.out" 2>&1 || true
}
report_field() { grep -o "$2 [0-9]*" "$1" | head -1 | awk '{print $NF}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "n/a" }'; }
pct() { awk -v t="$1" -v s="$2" -v h="$3" 'BEGIN { printf "%.1f", 100 * t / h / s }' ; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

COST_ROWS=()
RATE_ROWS=()
IDLE_ROWS=()

for MODE in tc xdp; do
    # fdinfo gives the numeric bpf_prog_type: 3 = SCHED_CLS (TC), 6 = XDP.
    PTYPE=3
    [ "$MODE" = xdp ] && PTYPE=6
    echo "== $MODE: per-packet cost" >&2
    start_capture "$MODE" "$WORK/cost-$MODE.parquet"
    sleep 1
    # Idle: 3 s without traffic.
    t0=$(cpu_ticks "$CAP_PID")
    sleep 3
    t1=$(cpu_ticks "$CAP_PID")
    IDLE_ROWS+=("| capture ($MODE) | $(pct $((t1 - t0)) 3 "$CLK_TCK") | $(mib "$(rss_kib "$CAP_PID" VmRSS)") |")
    # SYNs: new source port each packet (hping3 increments it) => record + flow insert.
    read -r n0 c0 < <(bpf_stats "$CAP_PID" "$PTYPE")
    hping_count "$COST_PKTS" 50 -S -p 80
    read -r n1 c1 < <(bpf_stats "$CAP_PID" "$PTYPE")
    syn_ns=$(ratio $((n1 - n0)) $((c1 - c0)))
    syn_cnt=$((c1 - c0))
    # Pure ACKs of one flow (-k keeps the source port) => flow-counter update only.
    read -r n0 c0 < <(bpf_stats "$CAP_PID" "$PTYPE")
    hping_count "$COST_PKTS" 50 -A -k -s 40000 -p 80
    read -r n1 c1 < <(bpf_stats "$CAP_PID" "$PTYPE")
    ack_ns=$(ratio $((n1 - n0)) $((c1 - c0)))
    ack_cnt=$((c1 - c0))
    stop_pid "$CAP_PID"
    att=$(grep -o 'attached as .*' "$WORK/cost-$MODE.parquet.log" | head -1 | cut -d' ' -f3-)
    COST_ROWS+=("| $MODE ($att) | SYN | $syn_cnt | $syn_ns |")
    COST_ROWS+=("| $MODE ($att) | non-SYN (ACK, one flow) | $ack_cnt | $ack_ns |")

    echo "== $MODE: rate ladder" >&2
    for IV in $LADDER; do
        step=$WORK/$MODE-$IV
        start_capture "$MODE" "$step.parquet"
        start_tcpdump "$step.pcap"
        sleep 1
        if [ "$MODE" = tc ] && [ "$IV" = "$(echo "$LADDER" | awk '{print $1}')" ]; then
            t0=$(cpu_ticks "$TD_PID")
            sleep 3
            t1=$(cpu_ticks "$TD_PID")
            IDLE_ROWS+=("| tcpdump | $(pct $((t1 - t0)) 3 "$CLK_TCK") | $(mib "$(rss_kib "$TD_PID" VmRSS)") |")
        fi
        rx0=$(vb_rx)
        ct0=$(cpu_ticks "$CAP_PID")
        tt0=$(cpu_ticks "$TD_PID")
        tx0=$(va_tx)
        hping "$IV" "$BURST_SECS" -S -p 80 >/dev/null
        # hping3's own count is lost when it must be killed; va's tx counter never is.
        sent=$(($(va_tx) - tx0))
        sleep 1 # let both drain
        ct1=$(cpu_ticks "$CAP_PID")
        tt1=$(cpu_ticks "$TD_PID")
        rx1=$(vb_rx)
        cap_hwm=$(rss_kib "$CAP_PID" VmHWM)
        td_hwm=$(rss_kib "$TD_PID" VmHWM)
        stop_pid "$TD_PID"
        stop_pid "$CAP_PID"
        seen=$(report_field "$step.parquet.log" "SYN seen")
        rec=$(report_field "$step.parquet.log" "recorded")
        drained=$(report_field "$step.parquet.log" "drained")
        dropped=$(grep -o 'ring full) [0-9]*' "$step.parquet.log" | awk '{print $NF}')
        rows=$(grep -o '([0-9]* rows' "$step.parquet.log" | head -1 | tr -dc 0-9)
        td_cap=$(grep -o '^[0-9]* packets captured' "$step.pcap.log" | awk '{print $1}')
        td_drop=$(grep -o '^[0-9]* packets dropped by kernel' "$step.pcap.log" | awk '{print $1}')
        rate=$(awk -v s="${sent:-0}" -v d="$BURST_SECS" 'BEGIN { printf "%.0f", s / d }')
        # CPU% over the burst plus the 1 s drain.
        span=$((BURST_SECS + 1))
        label=$IV
        [ "$IV" != flood ] && label="-i u$IV"
        [ "$IV" = flood ] && label="--flood"
        RATE_ROWS+=("| $MODE | $label | ${sent:-?} | $rate | $((rx1 - rx0)) | ${seen:-?} | ${rec:-?} / ${rows:-?} | ${dropped:-?} | $(pct $((ct1 - ct0)) $span "$CLK_TCK") | $(mib "$cap_hwm") | ${td_cap:-?} | ${td_drop:-?} | $(pct $((tt1 - tt0)) $span "$CLK_TCK") | $(mib "$td_hwm") |")
        echo "${RATE_ROWS[-1]}" >&2
        rm -f "$step".parquet* "$step".flows* "$step.pcap"
    done
done

# --- report ---------------------------------------------------------------------------------
{
    echo "# capture datapath benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r)"
    echo "- CPU: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
    echo "- capture: \`$($CAPTURE --version 2>/dev/null || echo capture)\`, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- reproduce: \`cargo build --release -p capture && sudo BURST_SECS=$BURST_SECS LADDER=\"$LADDER\" COST_PKTS=$COST_PKTS bash bench/capture.sh\`"
    echo
    echo "## Per-packet cost of the BPF programs (kernel.bpf_stats_enabled, run_time_ns / run_cnt)"
    echo
    echo "$COST_PKTS packets sent at ~20k/s by hping3 from namespace A over veth; programs attached"
    echo "to vb in namespace B. SYN: every packet a new flow (record reserved+written in the ring,"
    echo "flow inserted). Non-SYN: pure ACKs of a single flow (flow-counter update only)."
    echo
    echo "| hook | traffic | program runs | ns per run |"
    echo "|---|---|---:|---:|"
    printf '%s\n' "${COST_ROWS[@]}"
    echo
    echo "## Idle (3 s, no traffic)"
    echo
    echo "| process | CPU % | RSS MiB |"
    echo "|---|---:|---:|"
    printf '%s\n' "${IDLE_ROWS[@]}"
    echo
    echo "## SYN rate ladder (${BURST_SECS} s hping3 -S bursts; capture and tcpdump side by side)"
    echo
    echo "sent = va's tx_packets delta; vb rx = the interface's rx_packets delta; seen = SYN_SEEN counter"
    echo "(hook); written = SYN_RECORDS counter / rows in the Parquet file; dropped = RINGBUF_FULL."
    echo "CPU % is over the burst + 1 s drain (100 % = one core); RSS is the peak (VmHWM)."
    echo "tcpdump: \`tcpdump -Z root -i vb -w FILE 'tcp[tcpflags] & tcp-syn != 0'\`, counts from its exit report."
    echo
    echo "| hook | hping3 | sent | rate /s | vb rx | seen | written / rows | dropped | capture CPU % | capture RSS MiB | tcpdump captured | tcpdump dropped | tcpdump CPU % | tcpdump RSS MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${RATE_ROWS[@]}"
} >"$WORK/results.md"
cat "$WORK/results.md"
cp "$WORK/results.md" "$OUT_MD"
echo "wrote $OUT_MD" >&2
