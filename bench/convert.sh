#!/usr/bin/env bash
# Benchmark of capture's journal-to-Parquet conversion at a clean stop (issue 18). Not a test:
# it measures and reports.
#
#   cargo build --release -p capture --example convert_bench
#   bash bench/convert.sh                                   # the binary just built
#   ROUNDS=7 bash bench/convert.sh before=/tmp/cb-before now=target/release/examples/convert_bench
#
# Each argument is LABEL=PATH of a convert_bench binary (capture/examples/convert_bench.rs)
# built from some commit; with none, target/release/examples/convert_bench as "now". The
# first binary writes the journals of a SYN flood once (with SOURCES or FLOW_ENTRIES set it must
# be a convert_bench that knows --sources / --flow-entries, so name the newest first) (SYNS SYN records, random IPv4 sources
# and ports, one destination, Linux's SYN options; one flow row per SYN), then every round runs
# each binary's `convert` once, in an order rotated every round; every run is its own process,
# so its peak RSS is the conversion's alone. The journals are hard-linked into each run's own
# directory (the conversion deletes its journals), so every run reads the same bytes, from the
# page cache after the first.
#
# Columns (medians over the rounds):
#   CPU s          user + sys of the conversion (getrusage), both files;
#   CPU s / 1M     CPU s per million SYN records (the figure tcpdump's 0.11-0.15 s compares to);
#   wall s         the conversion's wall time;
#   peak RSS MiB   VmHWM of the process (it does nothing else);
#   SYN MiB, flows MiB   the Parquet files' sizes.
#
# Knobs (environment): ROUNDS (5), SYNS (1000000), WORK (a temporary directory, removed at
# the end unless KEEP_WORK=1), NICE (10: the machine is shared), FLOWS (1; 0 converts the SYN
# journal only, as `capture --no-flows` would), SOURCES (unset: random IPv4 sources; 239 is
# what bench/flood.sh sends), FLOW_ENTRIES (unset: one flow row per SYN; 65536 is what
# capture's default LRU flow table keeps per --flow-interval, so what bench/flood.sh records).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
SYNS=${SYNS:-1000000}
NICE=${NICE:-10}
FLOWS=${FLOWS:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "now=$here/target/release/examples/convert_bench"
labels=() bins=()
for a in "$@"; do
    labels+=("${a%%=*}")
    bins+=("${a#*=}")
    [ -x "${a#*=}" ] || { echo "not an executable: ${a#*=}" >&2; exit 1; }
done
WORK=${WORK:-$(mktemp -d /tmp/convert-bench.XXXXXX)}
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
RUNS="$WORK/runs.tsv"
: >"$RUNS"
flags=()
[ "$FLOWS" = 1 ] || flags+=(--no-flows)
shape=()
[ -z "${SOURCES:-}" ] || shape+=(--sources "$SOURCES")
[ -z "${FLOW_ENTRIES:-}" ] || shape+=(--flow-entries "$FLOW_ENTRIES")

nice -n "$NICE" "${bins[0]}" make "$WORK/journals" "$SYNS" "${shape[@]}" >/dev/null
flow_rows=$(nice -n "$NICE" "${bins[0]}" convert "$WORK/journals" | tr ' ' '\n' | awk -F= '$1 == "flow_rows" { print $2 }')
n=${#bins[@]}
for ((round = 0; round < ROUNDS; round++)); do
    for ((k = 0; k < n; k++)); do
        i=$(((k + round) % n))
        line=$(nice -n "$NICE" "${bins[$i]}" convert "$WORK/journals" "${flags[@]}")
        # key=value pairs -> one TSV row: round, label, the pairs' values in a fixed order.
        printf '%s\t%s' "$round" "${labels[$i]}" >>"$RUNS"
        for key in cpu_s cpu_s_per_M wall_s hwm_mib syn_bytes flow_bytes; do
            v=$(tr ' ' '\n' <<<"$line" | awk -F= -v k="$key" '$1 == k { print $2 }')
            printf '\t%s' "$v" >>"$RUNS"
        done
        printf '\n' >>"$RUNS"
    done
done

med() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
col() { awk -F'\t' -v l="$1" -v c="$2" '$2 == l { print $c }' "$RUNS" | med; }

echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- $SYNS SYN records from ${SOURCES:-random} sources$([ "$FLOWS" = 1 ] && echo " + $flow_rows flow rows" || echo ", no flow journal"); $ROUNDS rounds, order rotated each round, nice $NICE; medians"
echo
echo "| binary | CPU s | CPU s / 1M SYNs | wall s | peak RSS MiB | SYN MiB | flows MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for l in "${labels[@]}"; do
    printf '| %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f |\n' "$l" \
        "$(col "$l" 3)" "$(col "$l" 4)" "$(col "$l" 5)" "$(col "$l" 6)" \
        "$(col "$l" 7 | awk '{ print $1 / 1048576 }')" "$(col "$l" 8 | awk '{ print $1 / 1048576 }')"
done
echo
echo "every run (round, binary, CPU s, CPU s / 1M, wall s, peak RSS MiB, SYN bytes, flow bytes):"
sort -k2,2 -k1,1n "$RUNS" | sed 's/^/    /'
