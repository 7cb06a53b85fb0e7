#!/usr/bin/env bash
# Compares analyze binaries (builds of different commits) on the same inputs, interleaved:
# the "is it slower?" check for a change to the replay path. Not a test: it measures and
# prints a Markdown table.
#
# usage: bench/analyze-ab.sh LABEL=BINARY... -- INPUT...
#   LABEL=BINARY  an analyze binary and the name its column gets (e.g. before=/tmp/analyze-old)
#   INPUT         capture files or recordings (e.g. the 1 GiB pcap bench/analyze.sh makes)
# Env: ROUNDS (default 7), THREADS (analyze --threads, default all cores),
#      FORMATS (default "json p0f").
#
# Each round runs every (input, format) with every binary, rotating which binary goes first,
# so a slow or fast moment of a shared machine falls on all of them alike; every run follows a
# read of its input (page cache hot). Per cell: the median and best wall time, and the median
# CPU time (perf stat's task-clock: user + sys of every thread) over the rounds; then each
# binary's median wall and CPU over the first binary's. Outputs go to /dev/null: compare them
# with scripts/compare-analyze.sh.
set -euo pipefail

rounds=${ROUNDS:-7}
threads=${THREADS:-$(nproc)}
formats=${FORMATS:-"json p0f"}
labels=() bins=() inputs=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  labels+=("${1%%=*}")
  bins+=("$(realpath "${1#*=}")")
  shift
done
[ "${1:-}" = -- ] && shift
inputs=("$@")
if [ ${#bins[@]} -lt 2 ] || [ ${#inputs[@]} -eq 0 ]; then
  echo "usage: $0 LABEL=BINARY LABEL=BINARY... -- INPUT..." >&2
  exit 2
fi
command -v perf >/dev/null || { echo "perf not installed (apt-get install linux-perf)" >&2; exit 2; }
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 2; }; done

runs=$(mktemp)
trap 'rm -f "$runs" "$runs.perf"' EXIT
n=${#bins[@]}
for ((r = 0; r < rounds; r++)); do
  for input in "${inputs[@]}"; do
    for fmt in $formats; do
      for ((j = 0; j < n; j++)); do
        i=$(((j + r) % n))
        cat "$input" >/dev/null
        t0=$(date +%s%N)
        perf stat -x, -e task-clock -o "$runs.perf" \
          "${bins[$i]}" --quiet --threads "$threads" --format "$fmt" "$input" >/dev/null
        t1=$(date +%s%N)
        cpu_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$runs.perf")
        printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$input")" "$fmt" "${labels[$i]}" \
          "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')" \
          "$(awk -v m="$cpu_ms" 'BEGIN { printf "%.4f", m / 1000 }')" >>"$runs"
      done
    done
  done
  echo "round $((r + 1))/$rounds done" >&2
done

# med FILE-COLUMN: median of the numbers on stdin.
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { awk -F'\t' -v i="$1" -v f="$2" -v l="$3" -v c="$4" '$1 == i && $2 == f && $3 == l { print $c }' "$runs"; }

echo "$rounds rounds, --threads $threads, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) ($(nproc) CPUs)"
echo
header="| input | format |"
rule="|---|---|"
for l in "${labels[@]}"; do
  header+=" $l median s | $l best s | $l CPU s |"
  rule+="---:|---:|---:|"
done
for l in "${labels[@]:1}"; do
  header+=" $l / ${labels[0]} wall | CPU |"
  rule+="---:|---:|"
done
echo "$header"
echo "$rule"
for input in "${inputs[@]}"; do
  name=$(basename "$input")
  for fmt in $formats; do
    row="| $name | $fmt |"
    base=$(cell "$name" "$fmt" "${labels[0]}" 4 | med)
    base_cpu=$(cell "$name" "$fmt" "${labels[0]}" 5 | med)
    for l in "${labels[@]}"; do
      row+=" $(cell "$name" "$fmt" "$l" 4 | med) | $(cell "$name" "$fmt" "$l" 4 | sort -g | head -1) | $(cell "$name" "$fmt" "$l" 5 | med) |"
    done
    for l in "${labels[@]:1}"; do
      row+=" $(awk -v a="$(cell "$name" "$fmt" "$l" 4 | med)" -v b="$base" 'BEGIN { printf "%.3f", a / b }') |"
      row+=" $(awk -v a="$(cell "$name" "$fmt" "$l" 5 | med)" -v b="$base_cpu" 'BEGIN { printf "%.3f", a / b }') |"
    done
    echo "$row"
  done
done
