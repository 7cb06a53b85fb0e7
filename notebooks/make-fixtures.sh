#!/usr/bin/env bash
# Regenerates fixtures/notebook/ (the notebook's default input) from the bundled real captures
# in fixtures/pcap/, with our own tools only, the way a user makes a recording from old
# traffic: `analyze --records` turns the captures into one recording (day.parquet plus its
# day.flows.parquet and day.payload.parquet siblings), then `analyze --out` fingerprints that
# recording (its HTTP lines come from the payload file).
#
# Usage: bash notebooks/make-fixtures.sh [PATH/TO/analyze [OUT_DIR]]
#   PATH/TO/analyze  default (or given as ""): builds target/release/analyze first
#   OUT_DIR          default fixtures/notebook; another directory makes the same files there, e.g.
#                    for CI (.ci/run) to compare them with the committed ones
set -euo pipefail
# Arguments are paths from the caller's working directory: resolve them before the cd.
analyze=${1:+$(realpath "$1")}
out=$(realpath -m "${2:-$(dirname "$0")/../fixtures/notebook}")
cd "$(dirname "$0")/.."

if [[ -z $analyze ]]; then
  cargo build --release -q -p analyze
  analyze=$(pwd)/target/release/analyze
fi

mkdir -p "$out"
# Relative paths on purpose: the recording's `synscope.interface` metadata and the results'
# `source_file` column keep the names given here (the captures from the checkout's root, the
# recording from OUT_DIR), so neither a checkout path nor OUT_DIR leaks into the files.
rm -f "$out/day.parquet" "$out/day.flows.parquet" "$out/day.payload.parquet" "$out/day.results.parquet"
"$analyze" --records "$out/day.parquet" fixtures/pcap
(cd "$out" && "$analyze" -q --out day.results.parquet day.parquet >/dev/null)
ls -l "$out"/*.parquet
