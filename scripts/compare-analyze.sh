#!/usr/bin/env bash
# Runs two analyze binaries over the same captures, in every output mode, and compares what
# they write byte for byte: a refactor that must not change any output is checked with it.
#
# usage: scripts/compare-analyze.sh OLD_ANALYZE NEW_ANALYZE [INPUT_DIR...]
#   INPUT_DIR  folders of captures (default: fixtures/pcap and ../shared/pcaps)
#
# For every capture file, and once for each whole folder (the summary over many inputs), both
# binaries write stdout, stderr and the exit status for each --format (table, json, ndjson,
# csv, p0f), the --out results Parquet file and the --records recording with its
# .flows.parquet companion. The Parquet files embed no time or absolute path, so they must be
# identical too. Prints the counts and every difference; exits 1 on any difference.
set -uo pipefail
old=$(realpath "$1") new=$(realpath "$2"); shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(fixtures/pcap ../shared/pcaps)
work=$(mktemp -d /tmp/compare-analyze.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/old" "$work/new"

runs=0 files=0 diffs=0
# run_both NAME ARGS...: runs both binaries with ARGS (OUT in an argument becomes each
# binary's own output folder), then compares stdout, stderr, status and written files.
run_both() {
  local name=$1; shift
  for side in old new; do
    local bin=$old; [ $side = new ] && bin=$new
    local dir=$work/$side
    rm -rf "$dir"; mkdir -p "$dir"
    local args=("${@//OUT/$dir}")
    "$bin" --quiet "${args[@]}" >"$dir/stdout" 2>"$dir/stderr"
    echo $? >"$dir/status"
    # stderr names the binary's own output folder: make it the same for both
    sed -i "s#$dir#OUT#g" "$dir/stderr"
  done
  runs=$((runs + 1))
  local all
  all=$( (cd "$work/old" && ls; cd "$work/new" && ls) | sort -u)
  for f in $all; do
    files=$((files + 1))
    if ! cmp -s "$work/old/$f" "$work/new/$f"; then
      diffs=$((diffs + 1))
      echo "DIFF $name: $f"
    fi
  done
}

inputs=()
for d in "${dirs[@]}"; do
  while IFS= read -r f; do inputs+=("$f"); done < <(find "$d" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | sort)
done
echo "${#inputs[@]} capture files in ${dirs[*]}" >&2

compare_input() {
  local label=$1; shift
  for fmt in table json ndjson csv p0f; do
    run_both "$label --format $fmt" --keep-going --format "$fmt" "$@"
  done
  run_both "$label --out" --keep-going --format p0f --out OUT/results.parquet "$@"
  run_both "$label --records" --records OUT/rec.parquet "$@"
}

n=0
for f in "${inputs[@]}"; do
  compare_input "$f" "$f"
  n=$((n + 1)); [ $((n % 50)) = 0 ] && echo "$n/${#inputs[@]}" >&2
done
for d in "${dirs[@]}"; do
  compare_input "folder $d" "$d"
done
# A recording as input: what --records made of the bundled captures, replayed.
rec=$work/fixtures-rec
mkdir -p "$rec"
"$old" --quiet --records "$rec/day.parquet" fixtures/pcap 2>/dev/null
for fmt in table json p0f; do run_both "recording --format $fmt" --format "$fmt" "$rec"; done
run_both "recording --out" --out OUT/results.parquet "$rec"

echo "$runs runs of each binary, $files outputs compared, $diffs different"
[ $diffs = 0 ]
