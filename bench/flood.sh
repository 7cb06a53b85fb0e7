#!/usr/bin/env bash
# Flood benchmark of the capture datapath (issue 18, item 1). Not a test: it measures and reports.
#
#   cargo build --release -p capture
#   sudo bash bench/flood.sh                      # from anywhere; about 8 minutes
#   sudo ROUNDS=3 FLOOD_SECS=2 bash bench/flood.sh
#
# Setup: two network namespaces joined by a veth pair, A (va, 198.51.100.1) and B (vb,
# 198.51.100.2). trafgen (netsniff-ng) in A floods vb for FLOOD_SECS; the watcher under test runs
# in B on vb. Packets go to 198.51.100.3, an address nobody owns which A resolves (static
# neighbour entry) to vb's MAC: B's hooks see every packet, B's stack discards it (not local,
# forwarding off), so B sends nothing back and capture's egress program stays idle.
#
# Workloads (trafgen configurations written at run time, see write_trafgen_configs):
#   syn      SYN flood: 74-byte SYNs (mss, sackOK, ts, nop, wscale), random source address in
#            198.51.100.16-254, random source port and sequence number, to port 80. Nearly
#            every SYN is a new flow (record + flow-table insert, LRU eviction once full).
#   ack1     pure ACKs (54 bytes, no payload) of one flow: flow-counter update of one entry.
#   ackmany  pure ACKs cycling over ACK_FLOWS flows (source ports 20000...): flow-counter updates
#            spread over a table that holds every flow.
#   vxsyn    the syn workload's SYNs inside VXLAN (VNI 4242; outer 198.51.100.1 -> .3, UDP 4789,
#            random outer source port), as a traffic-mirror target receives them: every SYN
#            takes the decapsulation programs' tail calls (124 bytes; inner checksums are not
#            filled in, nobody checks them: B's stack drops the outer packet, not addressed to
#            it). tcpdump's filter for it is 'udp dst port 4789' (its SYN filter would match
#            nothing). Not in the default workloads.
# Sources stay inside 198.51.100.0/24 (the documentation range the namespaces use) rather than,
# say, 198.18.0.0/15: nothing here ever leaves the two namespaces either way.
#
# Rows (watchers), each run once per workload per round, in an order rotated every round:
#   none     nothing attached (what the sender and B's stack manage on their own);
#   tcpdump  tcpdump -Z root -i vb -w FILE 'tcp[tcpflags] & tcp-syn != 0' (default snaplen
#            262144, default 2 MiB buffer);
#   tc       capture --mode tc;   xdp   capture --mode xdp;   noflows   capture --mode tc --no-flows
#   guard    capture --mode tc --max-syn-rate GUARD_RATE (the flood guard; not in the default rows)
#   rotate   capture --mode tc --out-dir DIR --rotate ROTATE (a service's rotated tree, 1s by
#            default so that a short flood pays for several rotations; not in the default rows)
#   tc-L, xdp-L  capture --mode tc / xdp with the binary in $CAPTURE_L (L: letters, digits,
#            underscores), for a before/after comparison in one interleaved run, e.g.
#            ROWS="none tc tc-old" CAPTURE_old=/tmp/capture-before
#            (capture with its defaults otherwise: ring, 1 s flush, 10 s flow interval).
# Every watcher runs under GNU time inside B, so its rusage (user + sys over its whole life,
# peak RSS) is its own, not `ip netns exec`'s.
#
# Columns (medians over the rounds; every run is listed at the end of the report):
#   sent           packets trafgen says it sent (its exit report);
#   received at B  vb's rx_packets delta over the flood (sent - received = veth drops: the
#                  receive backlog or, with XDP, veth's NAPI ring was full);
#   rx/s           received at B / trafgen's own sending time;
#   seen           capture: SYN_SEEN (SYNs the hook saw); tcpdump: "received by filter";
#   kept           capture: SYN records drained from the ring and written; tcpdump: "captured";
#   counted drops  capture: ringbuf_full + syn_unparsed + sampled out (flood guard);
#                  tcpdump: "dropped by kernel";
#   identity       kept + counted drops == seen (capture also needs recorded == drained);
#   CPU flood      utime + stime from /proc/PID/stat from just before trafgen starts until
#                  DRAIN_SECS after it stops;
#   CPU to exit    rusage total (GNU time) minus the /proc reading taken before the flood: the
#                  flood, the drain and the clean stop (capture's last drain, flow snapshot and
#                  Parquet conversion), without start-up (BPF load, verifier);
#   CPU / 1M SYNs  CPU to exit / (kept / 1e6);
#   peak RSS       GNU time's %M (ru_maxrss).
# trafgen runs with --cpus 1, which pins it to CPU 0; veth hands packets to B within the
# sender's own softirq, so the receive path (B's hooks included) runs on CPU 0 as well and
# slows the sender: "received at B" is the throughput the watcher leaves. The watcher's user
# space mostly gets the other CPU.
#
# Also, at the start of each of the first TEST_ROUNDS rounds: BPF_PROG_TEST_RUN averages
# (bpftool prog run ... repeat TEST_REPEAT) of the TC ingress and XDP programs for one SYN and
# one pure ACK of one flow (frames built by build_frame), run while capture is attached (the
# programs must be loaded; capture keeps draining the ring), and capture's idle CPU and RSS
# (attached, no traffic, IDLE_SECS).
#
# Knobs (environment):
#   CAPTURE      capture binary (default: ROOT/target/release/capture)
#   ROUNDS       rounds (default 5)            FLOOD_SECS  seconds of flood per run (default 3)
#   WORKLOADS    default "syn ack1 ackmany"    ROWS        default "none tcpdump tc xdp noflows"
#   GUARD_RATE   --max-syn-rate of the guard row (default 100000 SYN records per second per CPU)
#   ROTATE       --rotate of the rotate row (default 1s)
#   ACK_FLOWS    flows of the ackmany workload (default 16384; < the 65536-entry flow table)
#   TEST_REPEAT  BPF_PROG_TEST_RUN repeat (default 1000000; 0 skips the test runs)
#   TEST_ROUNDS  rounds that start with the test runs and idle readings (default ROUNDS)
#   TEST_RING_MIB  --ring-mib of the capture attached for the test runs (default 256: it holds
#                a 1,000,000-SYN test run, so every SYN run takes the record path; capture's
#                default ring fills and part of the runs would take the cheaper full-ring
#                path). The idle readings come from a capture with its default ring, first.
#   SETTLE_SECS  pause between the watcher being ready and the flood (default 1)
#   DRAIN_SECS   pause between the end of the flood and the stop (default 1)
#   IDLE_SECS    idle measurement (default 2)
#   OUT_MD       report file (default ROOT/bench/flood-results.md; empty: stdout only)
#   KEEP_WORK=1  keep the work directory (logs, trafgen configs) for inspection
#
# Only the two namespaces are touched: the sysctls set (IPv6 off, forwarding off) are the
# namespaces' own and go with them; trafgen runs with --no-sock-mem (it would otherwise raise
# the host's net.core.[rw]mem_* for the run) and --notouch-irq. Everything created is removed on
# exit, whatever the exit; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAPTURE=${CAPTURE:-$ROOT/target/release/capture}
ROUNDS=${ROUNDS:-5}
FLOOD_SECS=${FLOOD_SECS:-3}
WORKLOADS=${WORKLOADS:-"syn ack1 ackmany"}
ROWS=${ROWS:-"none tcpdump tc xdp noflows"}
GUARD_RATE=${GUARD_RATE:-100000}
ROTATE=${ROTATE:-1s}
ACK_FLOWS=${ACK_FLOWS:-16384}
TEST_REPEAT=${TEST_REPEAT:-1000000}
TEST_ROUNDS=${TEST_ROUNDS:-$ROUNDS}
TEST_RING_MIB=${TEST_RING_MIB:-256}
SETTLE_SECS=${SETTLE_SECS:-1}
DRAIN_SECS=${DRAIN_SECS:-1}
IDLE_SECS=${IDLE_SECS:-2}
OUT_MD=${OUT_MD-$ROOT/bench/flood-results.md}
KEEP_WORK=${KEEP_WORK:-0}

die() { echo "error: $*" >&2; exit 2; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*) die "no arguments (knobs are environment variables; see --help)" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$CAPTURE" ] || die "$CAPTURE missing: cargo build --release -p capture (or set CAPTURE)"
for t in ip trafgen tcpdump bpftool timeout getconf awk; do
    command -v "$t" >/dev/null || die "$t not installed (trafgen: apt-get install netsniff-ng)"
done
/usr/bin/time -f %M true >/dev/null 2>&1 || die "GNU time (/usr/bin/time) missing: apt-get install time"
for n in "$ROUNDS" "$FLOOD_SECS" "$ACK_FLOWS" "$TEST_REPEAT" "$TEST_ROUNDS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "ROUNDS, FLOOD_SECS, ACK_FLOWS, TEST_REPEAT and TEST_ROUNDS are integers"
done
[[ $TEST_RING_MIB =~ ^[0-9]+$ ]] || die "TEST_RING_MIB is an integer (MiB, a power of two)"
[ "$ROUNDS" -ge 1 ] && [ "$FLOOD_SECS" -ge 1 ] || die "ROUNDS and FLOOD_SECS must be >= 1"
[ "$ACK_FLOWS" -ge 1 ] && [ "$ACK_FLOWS" -le 45000 ] || die "ACK_FLOWS must be in 1..45000"
for w in $WORKLOADS; do case $w in syn | ack1 | ackmany | vxsyn) ;; *) die "unknown workload $w" ;; esac; done
# The binary of a tc-L / xdp-L row: $CAPTURE_L.
alt_capture() {
    local var=CAPTURE_${1#*-}
    [[ ${1#*-} =~ ^[A-Za-z0-9_]+$ ]] && [ -n "${!var:-}" ] && [ -x "${!var}" ] || return 1
    echo "${!var}"
}
ALT_COMMAND=""
for r in $ROWS; do
    case $r in
    none | tcpdump | tc | xdp | noflows | guard | rotate) ;;
    tc-* | xdp-*)
        bin=$(alt_capture "$r") || die "row $r needs an executable CAPTURE_${r#*-}"
        ALT_COMMAND+=" CAPTURE_${r#*-}=$bin"
        ;;
    *) die "unknown row $r" ;;
    esac
done

# The command line that reproduces this run (knobs left at their defaults are spelt out when
# they shape the table, omitted otherwise).
COMMAND="ROUNDS=$ROUNDS FLOOD_SECS=$FLOOD_SECS WORKLOADS=\"$WORKLOADS\" ROWS=\"$ROWS\" ACK_FLOWS=$ACK_FLOWS TEST_REPEAT=$TEST_REPEAT TEST_ROUNDS=$TEST_ROUNDS TEST_RING_MIB=$TEST_RING_MIB GUARD_RATE=$GUARD_RATE"
[ "$ROTATE" != 1s ] && COMMAND+=" ROTATE=$ROTATE"
[ "$SETTLE_SECS" != 1 ] && COMMAND+=" SETTLE_SECS=$SETTLE_SECS"
[ "$DRAIN_SECS" != 1 ] && COMMAND+=" DRAIN_SECS=$DRAIN_SECS"
[ "$IDLE_SECS" != 2 ] && COMMAND+=" IDLE_SECS=$IDLE_SECS"
[ "$CAPTURE" != "$ROOT/target/release/capture" ] && COMMAND+=" CAPTURE=$CAPTURE"
COMMAND+="$ALT_COMMAND"
COMMAND="sudo $COMMAND bash bench/flood.sh"
NS_A=synscope-flood-$$-a
NS_B=synscope-flood-$$-b
WORK=$(mktemp -d "${TMPDIR:-/tmp}/synscope-flood.XXXXXX")
RUNS=$WORK/runs.tsv
TESTS=$WORK/tests.tsv
# The watcher currently running: GNU time's pid and the watcher's own (time's child).
TPID=""
WPID=""

cleanup() {
    set +e
    [ -n "$WPID" ] && kill -KILL "$WPID" 2>/dev/null
    [ -n "$TPID" ] && kill -KILL "$TPID" 2>/dev/null
    [ -n "$TPID" ] && wait "$TPID" 2>/dev/null
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    if [ "$KEEP_WORK" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- namespaces -----------------------------------------------------------------------------
ip netns add "$NS_A"
ip netns add "$NS_B"
for ns in "$NS_A" "$NS_B"; do
    # No IPv6: no neighbour discovery or MLD chatter on the link during the measurements.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# Explicit, whatever the netns defaults are: B must drop the flood, not route it anywhere.
ip netns exec "$NS_B" sysctl -qw net.ipv4.ip_forward=0
ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add 198.51.100.1/24 dev va
ip -n "$NS_B" addr add 198.51.100.2/24 dev vb
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
VB_MAC=$(ip -n "$NS_B" -o link show vb | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$VB_MAC" ] || die "no MAC address on vb"
ip -n "$NS_A" neigh add 198.51.100.3 lladdr "$VB_MAC" dev va nud permanent

CLK_TCK=$(getconf CLK_TCK)

# --- trafgen configurations -----------------------------------------------------------------
# trafgen's header functions fill lengths and the IPv4 and TCP checksums (recomputed per packet
# when a field is dynamic: drnd/dinc); B's stack would count a bad checksum as an error. Bytes
# after tcp() are TCP payload to trafgen, which is how the SYN's options get in (doff=10).
write_trafgen_configs() {
    local last_port=$((20000 + ACK_FLOWS - 1))
    cat >"$WORK/syn.trafgen" <<EOF
{
  eth(da=$VB_MAC),
  ipv4(sa=198.51.100.0, sa[3]=drnd(16, 254), da=198.51.100.3, id=drnd(), ttl=64, df),
  tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=64240, doff=10),
  /* mss 1460, sackOK, TS val 66051 ecr 0, nop, wscale 7 */
  0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03,
  0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07
}
EOF
    cat >"$WORK/ack1.trafgen" <<EOF
{
  eth(da=$VB_MAC),
  ipv4(sa=198.51.100.1, da=198.51.100.3, ttl=64, df),
  tcp(sp=40000, dp=80, seq=1000, aseq=2000, ack, win=502)
}
EOF
    cat >"$WORK/vxsyn.trafgen" <<EOF
{
  eth(da=$VB_MAC),
  ipv4(sa=198.51.100.1, da=198.51.100.3, ttl=64, df),
  udp(sp=drnd(), dp=4789),
  /* VXLAN: I flag, VNI 4242 */
  0x08, 0x00, 0x00, 0x00, 0x00, 0x10, 0x92, 0x00,
  /* inner Ethernet */
  0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00,
  /* inner IPv4: 198.51.100.x (random x: raw bytes take no range) -> .3, total 60, random
     id, DF, TTL 64, TCP */
  0x45, 0x00, 0x00, 0x3c, drnd(), drnd(), 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
  0xc6, 0x33, 0x64, drnd(), 0xc6, 0x33, 0x64, 0x03,
  /* inner TCP: random port and sequence -> 80, doff 10, SYN, win 64240 */
  drnd(), drnd(), 0x00, 0x50, drnd(), drnd(), drnd(), drnd(), 0x00, 0x00, 0x00, 0x00,
  0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
  /* mss 1460, sackOK, TS val 66051 ecr 0, nop, wscale 7 */
  0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03,
  0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07
}
EOF
    cat >"$WORK/ackmany.trafgen" <<EOF
{
  eth(da=$VB_MAC),
  ipv4(sa=198.51.100.1, da=198.51.100.3, ttl=64, df),
  tcp(sp=dinc(20000, $last_port), dp=80, seq=1000, aseq=2000, ack, win=502)
}
EOF
}
write_trafgen_configs

# --- BPF_PROG_TEST_RUN frames ---------------------------------------------------------------
# Internet checksum of a hex string (even number of hex digits), as 4 hex digits.
csum16() {
    local h=$1 s=0 i
    (( ${#h} % 4 )) && h+=00
    for ((i = 0; i < ${#h}; i += 4)); do s=$((s + 16#${h:i:4})); done
    while ((s >> 16)); do s=$(((s & 0xffff) + (s >> 16))); done
    printf '%04x' $((~s & 0xffff))
}
# Ethernet + IPv4 (198.51.100.1 -> .3, DF, TTL 64) + TCP, as hex. $1 = TCP header up to the
# checksum, $2 = what follows it (urgent pointer, options); both checksums are filled in.
build_frame() {
    local tcp_a=$1 tcp_b=$2 src=c6336401 dst=c6336403 tlen ip
    tlen=$(((${#tcp_a} + 4 + ${#tcp_b}) / 2))
    ip="4500$(printf %04x $((20 + tlen)))000040004006"
    ip+="$(csum16 "${ip}0000${src}${dst}")${src}${dst}"
    printf '%s' "020000000002020000000001""0800$ip$tcp_a"
    csum16 "${src}${dst}0006$(printf %04x "$tlen")${tcp_a}0000${tcp_b}"
    printf '%s\n' "$tcp_b"
}
hex_to_file() { printf "$(sed 's/../\\x&/g' <<<"$1")" >"$2"; }
# 40000 -> 80, seq 1, SYN, win 64240, doff 10; options as in the syn workload: 74 bytes.
hex_to_file "$(build_frame 9c4000500000000100000000a002faf0 0000020405b40402080a000102030000000001030307)" "$WORK/syn.bin"
# 40000 -> 80, seq 2, ack 2000, ACK, win 502, no options, no payload: 54 bytes.
hex_to_file "$(build_frame 9c40005000000002000007d0501001f6 0000)" "$WORK/ack.bin"
# The same SYN inside VXLAN (VNI 4242), 198.51.100.1:54321 -> .2:4789: 124 bytes.
hex_to_file "02000000000202000000000108004500006e000140004011e613c6336401c6336402d43112b5005a00000800000000109200$(od -An -v -tx1 "$WORK/syn.bin" | tr -d ' \n')" "$WORK/vxsyn.bin"
[ "$(stat -c %s "$WORK/syn.bin")" = 74 ] && [ "$(stat -c %s "$WORK/ack.bin")" = 54 ] &&
    [ "$(stat -c %s "$WORK/vxsyn.bin")" = 124 ] || die "test frames have the wrong size"

# From here on a missing figure (a grep that finds nothing) must not abort the run: it shows
# up as "?" in the report. Steps that must work check themselves and die.
set +e

# utime+stime of PID in clock ticks ("" if gone).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
ticks_to_s() { awk -v t="$1" -v h="$CLK_TCK" 'BEGIN { if (t == "") print "?"; else printf "%.2f", t / h }'; }
vb_stat() { ip netns exec "$NS_B" cat "/sys/class/net/vb/statistics/$1"; }
# First child of PID (GNU time's child is the watcher).
child_of() {
    local c=""
    read -r c _ <"/proc/$1/task/$1/children" 2>/dev/null
    [ -n "$c" ] || c=$(pgrep -P "$1" | head -1)
    echo "$c"
}
# Number after the text $2 in file $1 (first match), "" if absent.
# (trafgen starts its report lines with a carriage return.)
num_after() { tr '\r' '\n' <"$1" 2>/dev/null | grep -o "$2 [0-9]*" | head -1 | awk '{print $NF}'; }
num_before() { tr '\r' '\n' <"$1" 2>/dev/null | grep -o "^ *[0-9]* $2" | head -1 | awk '{print $1}'; }

# Starts a watcher in B under GNU time: $1 = log file (stderr; GNU time writes $1.time),
# rest = command. Sets TPID, WPID; waits (<= 20 s) for the watcher to say it is ready
# (capture: "attached ...", tcpdump: "listening on ...").
start_watcher() {
    local logf=$1 i
    shift
    ip netns exec "$NS_B" /usr/bin/time -o "$logf.time" -f '%U %S %M' "$@" 2>"$logf" &
    TPID=$!
    WPID=""
    for i in $(seq 200); do
        [ -n "$WPID" ] || WPID=$(child_of "$TPID")
        if [ -n "$WPID" ] && grep -q -e '^attached' -e 'listening on' "$logf" 2>/dev/null; then
            return 0
        fi
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$logf" >&2
    die "watcher did not start: $*"
}
# SIGINT to the watcher itself (GNU time ignores SIGINT while it waits), then wait <= 60 s for
# the clean stop (capture converts its journals to Parquet then). Sets STOP_SECS.
stop_watcher() {
    local t0 i
    t0=$(date +%s.%N)
    kill -INT "$WPID" 2>/dev/null
    for i in $(seq 600); do
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$TPID" 2>/dev/null; then
        log "warning: watcher $WPID did not stop within 60 s; killed"
        kill -KILL "$WPID" 2>/dev/null
    fi
    wait "$TPID" 2>/dev/null
    STOP_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    TPID=""
    WPID=""
}
# "user sys maxrss_kib" from GNU time's output (its last line; a line before it may say the
# command exited non-zero or was killed).
time_figures() { tail -1 "$1" 2>/dev/null; }

# --- BPF_PROG_TEST_RUN and idle -------------------------------------------------------------
# Program ids of the watcher's BPF programs (from its fds: other synscope programs may be loaded
# on this machine by someone else), the one whose kernel name (<= 15 chars) is $2.
prog_id_named() {
    local id name
    for id in $(grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un); do
        name=$(bpftool prog show id "$id" 2>/dev/null | sed -n '1s/.* name \([^ ]*\) .*/\1/p')
        [ "$name" = "$2" ] && { echo "$id"; return 0; }
    done
}
# One round of test runs and idle readings, for each hook: $1 = round. Appends to $TESTS:
# round, mode, program, id, attachment, idle RSS KiB, idle CPU %, SYN ns, ACK ns, SYN seen,
# SYN recorded, ring full, VXLAN SYN ns.
test_round() {
    local round=$1 mode prog base t0 t1 rss att id f out ns idle ns_syn=- ns_ack=- ns_vxsyn=-
    local seen=- rec=- full=-
    for mode in tc xdp; do
        prog=synscope_tc
        [ "$mode" = xdp ] && prog=synscope_xdp
        base=$WORK/testrun-$round-$mode
        log "  capture --mode $mode: idle ${IDLE_SECS} s, then BPF_PROG_TEST_RUN x $TEST_REPEAT"
        start_watcher "$base-idle.log" "$CAPTURE" --iface vb --mode "$mode" --out "$base-idle.parquet"
        sleep 0.5
        t0=$(cpu_ticks "$WPID")
        sleep "$IDLE_SECS"
        t1=$(cpu_ticks "$WPID")
        rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$WPID/status" 2>/dev/null)
        idle=$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" -v s="$IDLE_SECS" 'BEGIN { printf "%.1f", 100 * (b - a) / h / s }')
        att=$(grep -o 'as [a-z0-9+ ]*;' "$base-idle.log" | head -1 | sed 's/^as //; s/;$//')
        stop_watcher
        rm -f "$base-idle".parquet* "$base-idle".flows.parquet*
        start_watcher "$base.log" "$CAPTURE" --iface vb --mode "$mode" --out "$base.parquet" --ring-mib "$TEST_RING_MIB"
        sleep 0.5
        id=$(prog_id_named "$WPID" "$prog")
        [ -n "$id" ] || die "no program named $prog among capture's fds (bpftool prog show)"
        if [ "$TEST_REPEAT" -gt 0 ]; then
            # The SYN first: every run reserves a ring record until the ring is full (capture
            # drains it meanwhile); the ACK only updates the one flow the SYN created; the
            # VXLAN SYN (a record each too) takes the decapsulation programs' tail calls.
            for f in syn ack vxsyn; do
                out=$(timeout 600 bpftool prog run id "$id" data_in "$WORK/$f.bin" repeat "$TEST_REPEAT" 2>&1)
                ns=$(grep -o 'duration (average): [0-9]*' <<<"$out" | grep -o '[0-9]*$')
                [ -n "$ns" ] || log "bpftool prog run failed: $out"
                eval "ns_$f=\${ns:-?}"
            done
        fi
        stop_watcher
        rm -f "$base".parquet* "$base".flows.parquet*
        if [ "$TEST_REPEAT" -gt 0 ]; then
            seen=$(num_after "$base.log" "SYN seen")
            rec=$(num_after "$base.log" "recorded")
            full=$(num_after "$base.log" "ring full)")
            log "    SYN ${ns_syn} ns, ACK ${ns_ack} ns, VXLAN SYN ${ns_vxsyn} ns; SYN seen ${seen:-?}, recorded ${rec:-?}, ring full ${full:-?}"
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$prog" "$id" \
            "$att" "${rss:-?}" "$idle" "$ns_syn" "$ns_ack" "${seen:-?}" "${rec:-?}" "${full:-?}" \
            "$ns_vxsyn" >>"$TESTS"
    done
}

# --- floods ---------------------------------------------------------------------------------
# One run: $1 round, $2 workload, $3 row. Appends a line to $RUNS.
run_one() {
    local round=$1 wl=$2 row=$3 base=$WORK/r$1-$2-$3
    local c1="" cpre="" rx0 rx1 tx0 tx1 sent secs
    local seen=- kept=- drops=- ident=- cpu_flood=- cpu_work=- cpu_total=- rss=- tcp=- stop=-
    case $row in
    none) ;;
    tcpdump)
        local filter='tcp[tcpflags] & tcp-syn != 0'
        [ "$wl" = vxsyn ] && filter='udp dst port 4789'
        start_watcher "$base.log" tcpdump -Z root -i vb -w "$base.pcap" "$filter"
        ;;
    tc) start_watcher "$base.log" "$CAPTURE" --iface vb --mode tc --out "$base.parquet" ;;
    xdp) start_watcher "$base.log" "$CAPTURE" --iface vb --mode xdp --out "$base.parquet" ;;
    noflows) start_watcher "$base.log" "$CAPTURE" --iface vb --mode tc --no-flows --out "$base.parquet" ;;
    guard) start_watcher "$base.log" "$CAPTURE" --iface vb --mode tc --max-syn-rate "$GUARD_RATE" --out "$base.parquet" ;;
    tc-* | xdp-*) start_watcher "$base.log" "$(alt_capture "$row")" --iface vb --mode "${row%%-*}" --out "$base.parquet" ;;
    rotate) start_watcher "$base.log" "$CAPTURE" --iface vb --mode tc --out-dir "$base.tree" --rotate "$ROTATE" ;;
    esac
    sleep "$SETTLE_SECS"
    [ -n "$WPID" ] && cpre=$(cpu_ticks "$WPID")
    rx0=$(vb_stat rx_packets)
    tx0=$(vb_stat tx_packets)
    # SIGINT: trafgen stops its workers and prints what it sent; -k: bounded even if it hangs.
    timeout -k 5 -s INT "$FLOOD_SECS" ip netns exec "$NS_A" \
        trafgen --dev va --conf "$WORK/$wl.trafgen" --cpus 1 --no-sock-mem --notouch-irq \
        >"$base.trafgen.out" 2>&1
    sleep "$DRAIN_SECS"
    rx1=$(vb_stat rx_packets)
    tx1=$(vb_stat tx_packets)
    [ -n "$WPID" ] && c1=$(cpu_ticks "$WPID")
    sent=$(num_before "$base.trafgen.out" "packets outgoing")
    # "2 sec, 983885 usec on CPU0 (1502720 packets)": trafgen's own sending time.
    secs=$(grep -o '[0-9]* sec, [0-9]* usec on CPU' "$base.trafgen.out" | head -1 |
        awk '{ printf "%.3f", $1 + $3 / 1e6 }')
    if [ -n "$TPID" ]; then
        stop_watcher
        stop=$STOP_SECS
        read -r u s m < <(time_figures "$base.log.time")
        if [ -n "$m" ]; then
            cpu_total=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
            cpu_work=$(awk -v t="$cpu_total" -v p="$cpre" -v h="$CLK_TCK" 'BEGIN { if (p == "") print "?"; else printf "%.2f", t - p / h }')
            rss=$(awk -v k="$m" 'BEGIN { printf "%.1f", k / 1024 }')
        fi
        [ -n "$cpre" ] && [ -n "$c1" ] && cpu_flood=$(ticks_to_s $((c1 - cpre)))
    fi
    case $row in
    tcpdump)
        kept=$(num_before "$base.log" "packets captured")
        seen=$(num_before "$base.log" "packets received by filter")
        drops=$(num_before "$base.log" "packets dropped by kernel")
        ;;
    tc | xdp | noflows | guard | rotate | tc-* | xdp-*)
        seen=$(num_after "$base.log" "SYN seen")
        local rec full unp samp
        rec=$(num_after "$base.log" "recorded")
        kept=$(num_after "$base.log" "drained")
        full=$(num_after "$base.log" "ring full)")
        unp=$(num_after "$base.log" "unparsed")
        tcp=$(num_after "$base.log" "TCP packets")
        samp=$(num_after "$base.log" "sampled out")
        [ -n "$full" ] && [ -n "$unp" ] && drops=$((full + unp + ${samp:-0}))
        [ -n "$rec" ] && [ "$rec" != "$kept" ] && log "  recorded $rec != drained $kept"
        ;;
    esac
    if [ "$row" != none ]; then
        ident=no
        [ -n "$kept" ] && [ -n "$drops" ] && [ -n "$seen" ] && [ $((kept + drops)) = "$seen" ] && ident=yes
        [ "$row" != tcpdump ] && [ "${rec:-x}" != "$kept" ] && ident=no
        : "${kept:=?}" "${seen:=?}" "${drops:=?}" "${tcp:=?}"
    fi
    local replies=$((tx1 - tx0))
    [ "$replies" -gt 10 ] && log "  warning: B sent $replies packets during the flood (expected none)"
    local rx=$((rx1 - rx0))
    local rxps cpm
    rxps=$(awk -v r="$rx" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print "?" }')
    cpm=$(awk -v c="$cpu_work" -v k="$kept" 'BEGIN { if (k ~ /^[0-9]+$/ && k > 0 && c ~ /^[0-9.]+$/) printf "%.2f", c / k * 1e6; else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$wl" "$row" "${sent:-?}" "${secs:-?}" "$rx" "$rxps" "$seen" "$kept" "$drops" \
        "$ident" "$cpu_flood" "$cpu_work" "$cpm" "$rss" "$cpu_total" "$tcp" "$stop" >>"$RUNS"
    log "  round $round $wl/$row: sent ${sent:-?}, rx $rx ($rxps/s), seen $seen, kept $kept, drops $drops, identity $ident, CPU flood $cpu_flood s, to exit $cpu_work s, RSS $rss MiB, stop $stop s"
    rm -f "$base.pcap" "$base".parquet* "$base".flows.parquet*
}

read -r -a WL_LIST <<<"$WORKLOADS"
read -r -a ROW_LIST <<<"$ROWS"
nwl=${#WL_LIST[@]}
nrow=${#ROW_LIST[@]}
: >"$RUNS"
: >"$TESTS"
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r of $ROUNDS"
    [ "$r" -le "$TEST_ROUNDS" ] && test_round "$r"
    # Interleaved: every (workload, row) once per round; the order of rows (and of workloads)
    # rotates from round to round, so a slow minute on this shared machine does not always
    # hit the same row.
    for ((i = 0; i < nwl; i++)); do
        wl=${WL_LIST[$(((i + r - 1) % nwl))]}
        for ((j = 0; j < nrow; j++)); do
            run_one "$r" "$wl" "${ROW_LIST[$(((j + r - 1) % nrow))]}"
        done
    done
done

# --- report ---------------------------------------------------------------------------------
# Median of the numbers on stdin, one a line ("-" if none); integers stay integers, others get
# $1 decimals (default 2).
med() {
    grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g | awk -v d="${1:-2}" '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (v[1] ~ /\./) printf("%." d "f\n", m); else printf "%.0f\n", m }'
}
# Median of column $3 of $RUNS over the runs of workload $1 with watcher $2; $4 = decimals.
median() { awk -F'\t' -v w="$1" -v r="$2" -v c="$3" '$2 == w && $3 == r { print $c }' "$RUNS" | med "${4:-2}"; }
# Column $2 of $TESTS for hook $1: median, or every value (comma-separated) with $3 = all.
tests_col() {
    if [ "${3:-}" = all ]; then
        awk -F'\t' -v m="$1" -v c="$2" '$1 != "" && $2 == m { printf "%s%s", (n++ ? ", " : ""), $c } END { print "" }' "$TESTS"
    else
        awk -F'\t' -v m="$1" -v c="$2" '$2 == m { print $c }' "$TESTS" | med 1
    fi
}
identity() {
    awk -F'\t' -v w="$1" -v r="$2" '$2 == w && $3 == r { n++; if ($11 == "yes") y++; if ($11 == "-") d++ }
        END { if (d == n) print "-"; else if (y == n) print "yes"; else printf "no (%d of %d)\n", n - y, n }' "$RUNS"
}
wl_label() {
    case $1 in
    syn) echo "SYN flood, random src addr+port" ;;
    ack1) echo "pure ACKs, one flow" ;;
    ackmany) echo "pure ACKs, $ACK_FLOWS flows" ;;
    vxsyn) echo "SYN flood in VXLAN, random inner src addr+port" ;;
    esac
}
row_label() {
    case $1 in
    none) echo "nothing attached" ;;
    tcpdump) echo "tcpdump -w, SYN filter" ;;
    tc) echo "capture --mode tc" ;;
    xdp) echo "capture --mode xdp" ;;
    noflows) echo "capture --mode tc --no-flows" ;;
    guard) echo "capture --mode tc --max-syn-rate $GUARD_RATE" ;;
    tc-* | xdp-*) echo "capture --mode ${1%%-*} (\$CAPTURE_${1#*-})" ;;
    rotate) echo "capture --mode tc --out-dir --rotate $ROTATE" ;;
    esac
}
git_rev=$(git --no-optional-locks -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
{
    echo "# capture flood benchmark (bench/flood.sh)"
    echo
    echo "- command: \`$COMMAND\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- kernel: $(uname -r)"
    echo "- CPU: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
    echo "- capture: \`$CAPTURE\` ($("$CAPTURE" --version 2>/dev/null || echo '?')), tree $git_rev"
    echo "- $(trafgen -v 2>/dev/null | head -1), $(tcpdump --version 2>&1 | head -1), $(bpftool version 2>/dev/null | head -1)"
    echo "- $ROUNDS rounds, interleaved (order rotated each round); ${FLOOD_SECS} s of trafgen per run (--cpus 1, pinned to CPU 0); medians"
    echo
    echo "## Floods (medians)"
    echo
    echo "sent = trafgen's count; received at B = vb rx_packets delta; rx/s = received / trafgen's sending"
    echo "time. seen / kept / counted drops: capture = SYN_SEEN / SYN records drained and written /"
    echo "ring full + unparsed; tcpdump = received by filter / captured / dropped by kernel. CPU flood ="
    echo "user+sys (/proc/PID/stat) from the start of the flood to ${DRAIN_SECS} s after it; CPU to exit ="
    echo "rusage total minus start-up (adds the clean stop: last drain, flow snapshot, Parquet"
    echo "conversion); CPU / 1M SYNs = CPU to exit per million SYNs kept; peak RSS = ru_maxrss."
    echo "Each column is its own median (a row's figures may come from different rounds)."
    echo
    echo "| workload | watcher | sent | received at B | rx/s | seen | kept | counted drops | kept + drops == seen | CPU s flood | CPU s to exit | CPU s / 1M SYNs kept | peak RSS MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    for wl in "${WL_LIST[@]}"; do
        for row in "${ROW_LIST[@]}"; do
            echo "| $(wl_label "$wl") | $(row_label "$row") | $(median "$wl" "$row" 4) | $(median "$wl" "$row" 6) | $(median "$wl" "$row" 7) | $(median "$wl" "$row" 8) | $(median "$wl" "$row" 9) | $(median "$wl" "$row" 10) | $(identity "$wl" "$row") | $(median "$wl" "$row" 12) | $(median "$wl" "$row" 13) | $(median "$wl" "$row" 14) | $(median "$wl" "$row" 15 1) |"
        done
    done
    echo
    if [ "$TEST_REPEAT" -gt 0 ] && [ -s "$TESTS" ]; then
        echo "## BPF_PROG_TEST_RUN (\`bpftool prog run id ID data_in FRAME repeat $TEST_REPEAT\`)"
        echo
        echo "Average ns per run as the kernel reports it (median over $(awk 'END { print NR / 2 }' "$TESTS") rounds, each round's value"
        echo "after it), with capture attached (ring $TEST_RING_MIB MiB) and draining. SYN: 74 bytes, one"
        echo "flow; each run reserves a ring record, and once the ring is full the cheaper ring-full"
        echo "path runs instead (the split is shown: a ring that holds every run keeps the figure pure)."
        echo "Pure ACK: 54 bytes, the same flow (flow-counter update only). VXLAN SYN: the same SYN in"
        echo "VXLAN (124 bytes; the hook's program, then two tail calls: the UDP tunnel header, the inner"
        echo "frame), run after the SYNs, so the ring is as full as they left it."
        echo
        echo "| program | SYN ns | SYN, each round | SYN runs recorded / ring full, each round | pure ACK ns | ACK, each round | VXLAN SYN ns | VXLAN SYN, each round |"
        echo "|---|---:|---|---|---:|---|---:|---|"
        for mode in tc xdp; do
            echo "| $(awk -F'\t' -v m="$mode" '$2 == m { print $3 " (" $5 ")"; exit }' "$TESTS") | $(tests_col "$mode" 8) | $(tests_col "$mode" 8 all) | $(awk -F'\t' -v m="$mode" '$2 == m { printf "%s%s / %s", (n++ ? ", " : ""), $11, $12 } END { print "" }' "$TESTS") | $(tests_col "$mode" 9) | $(tests_col "$mode" 9 all) | $(tests_col "$mode" 13) | $(tests_col "$mode" 13 all) |"
        done
        echo
    fi
    if [ -s "$TESTS" ]; then
        echo "## capture idle (attached, no traffic, ${IDLE_SECS} s; median over the rounds)"
        echo
        echo "| capture | RSS MiB | CPU % |"
        echo "|---|---:|---:|"
        for mode in tc xdp; do
            echo "| capture --mode $mode ($(awk -F'\t' -v m="$mode" '$2 == m { print $5; exit }' "$TESTS")) | $(awk -F'\t' -v m="$mode" '$2 == m && $6 ~ /^[0-9]+$/ { print $6 / 1024 }' "$TESTS" | med 1) | $(tests_col "$mode" 7) |"
        done
        echo
    fi
    echo "## Every run"
    echo
    echo "| round | workload | watcher | sent | trafgen s | received at B | rx/s | seen | kept | drops | identity | CPU s flood | CPU s to exit | CPU s / 1M kept | peak RSS MiB | CPU s total | TCP packets (hook) | stop s |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' -v OFS=' | ' '{ $1 = $1; print "| " $0 " |" }' "$RUNS"
} >"$WORK/results.md"
cat "$WORK/results.md"
if [ -n "$OUT_MD" ]; then
    cp "$WORK/results.md" "$OUT_MD" && log "wrote $OUT_MD"
fi
