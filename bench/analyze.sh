#!/usr/bin/env bash
# Times analyze against p0f 3.09b on the same >= 1 GiB Ethernet pcap built from real captures.
#
# usage: bench/analyze.sh [WORKDIR] [SIZE_MIB]
#   WORKDIR   where the generated files go (default /tmp/synscope-bench; needs ~2.5 GiB)
#   SIZE_MIB  size of the generated pcap (default 1024)
# Env: PCAPS (default ../shared/pcaps beside the workspace), THREADS (analyze --threads,
#      default all cores), KEEP=1 keeps the generated files.
#
# Prints a Markdown table: wall time, max RSS, MB/s, packets/s (captures) and records/s
# (the recording), for `cat`, `p0f -r`, `analyze` (json, table, p0f log lines) on the pcap,
# and `analyze --format json` on the recording `analyze --records` made from it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/synscope-bench}
size=${2:-1024}
pcaps=${PCAPS:-$root/../shared/pcaps}
threads=${THREADS:-$(nproc)}
mkdir -p "$work"
pcap=$work/bench.pcap
rec=$work/bench.parquet

command -v p0f >/dev/null || { echo "p0f not installed" >&2; exit 1; }
(cd "$root" && cargo build --release -p analyze >&2)
analyze=$root/target/release/analyze

if [ ! -s "$pcap" ] || [ "$(stat -c %s "$pcap")" -lt $((size * 1024 * 1024)) ]; then
  python3 "$root/bench/make_bench_pcap.py" "$pcaps" "$pcap" --size-mib "$size" >&2
fi
rm -f "$rec" "$work/bench.flows.parquet"
"$analyze" --quiet --records "$rec" "$pcap"

bytes=$(stat -c %s "$pcap")
rec_bytes=$(stat -c %s "$rec")
summary=$("$analyze" --quiet --format json "$rec" | python3 -c '
import json,sys; d=json.load(sys.stdin)["summary"]["totals"]; print(d["syn"]+d["syn_ack"])')
records=$summary
packets=$("$analyze" --quiet --format json "$pcap" | python3 -c '
import json,sys; print(json.load(sys.stdin)["summary"]["totals"]["packets"])')

# Runs a command 3 times (after one warm-up read of the file) and keeps the fastest wall time;
# prints "seconds max_rss_kib".
best() {
  local out best_t="" best_m=""
  for _ in 1 2 3; do
    /usr/bin/time -o "$work/time.txt" -f '%e %M' "$@" >/dev/null 2>/dev/null
    out=$(tail -1 "$work/time.txt")
    local t=${out% *} m=${out#* }
    if [ -z "$best_t" ] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; best_m=$m; fi
  done
  echo "$best_t $best_m"
}

cat "$pcap" "$rec" >/dev/null
r_cat=$(best cat "$pcap")
r_p0f=$(best p0f -r "$pcap" -o "$work/p0f.log")
r_json=$(best "$analyze" --quiet --threads "$threads" --format json "$pcap")
r_table=$(best "$analyze" --quiet --threads "$threads" "$pcap")
r_p0fmt=$(best "$analyze" --quiet --threads "$threads" --format p0f "$pcap")
r_rec=$(best "$analyze" --quiet --threads "$threads" --format json "$rec")

row() { # name "secs rss" bytes count unit
  local name=$1 t=${2% *} m=${2#* } b=$3 n=$4 unit=$5
  awk -v name="$name" -v t="$t" -v m="$m" -v b="$b" -v n="$n" -v unit="$unit" 'BEGIN{
    if (t <= 0) t = 0.01;
    printf "| %s | %.2f | %.0f | %.0f | %.0f %s/s |\n", name, t, m/1024, b/1e6/t, n/t, unit }'
}

echo
echo "pcap: $bytes bytes, $packets packets; recording: $rec_bytes bytes, $records records;" \
     "$(nproc) cores, analyze --threads $threads"
echo
echo "| command | wall s | max RSS MB | MB/s | rate |"
echo "|---|---|---|---|---|"
row 'cat FILE.pcap > /dev/null' "$r_cat" "$bytes" "$packets" packets
row 'p0f -r FILE.pcap -o LOG' "$r_p0f" "$bytes" "$packets" packets
row 'analyze --format json FILE.pcap' "$r_json" "$bytes" "$packets" packets
row 'analyze FILE.pcap (table)' "$r_table" "$bytes" "$packets" packets
row 'analyze --format p0f FILE.pcap' "$r_p0fmt" "$bytes" "$packets" packets
row 'analyze --format json FILE.parquet' "$r_rec" "$rec_bytes" "$records" records
p0f_t=${r_p0f% *}
echo
for r in "json:${r_json% *}" "table:${r_table% *}" "p0f format:${r_p0fmt% *}"; do
  awk -v a="$p0f_t" -v name="${r%%:*}" -v b="${r##*:}" \
    'BEGIN{ if (b <= 0) b = 0.01; printf "analyze (%s, pcap) is %.1fx faster than p0f\n", name, a/b }'
done

[ "${KEEP:-0}" = 1 ] || rm -f "$pcap" "$rec" "$work/bench.flows.parquet" "$work/p0f.log"
