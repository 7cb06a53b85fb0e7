#!/usr/bin/env bash
# Regenerates fixtures/notebook/ (the notebook's default input) from the bundled real captures
# in fixtures/pcap/, with our own tools only, the way a user makes a recording from old
# traffic: `analyze --records` turns the captures into one recording (day.parquet plus its
# day.flows.parquet sibling), then `analyze --out` fingerprints that recording.
#
# Usage: bash notebooks/make-fixtures.sh [PATH/TO/analyze]   (default: builds target/release/analyze)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ge 1 ]]; then
  analyze=$(realpath "$1")
else
  cargo build --release -q -p analyze
  analyze=$(pwd)/target/release/analyze
fi

out=fixtures/notebook
mkdir -p "$out"
# Relative paths on purpose: the recording's `synscope.interface` metadata and the results'
# `source_file` column keep the names given here, and a checkout path would leak into them.
rm -f "$out/day.parquet" "$out/day.flows.parquet" "$out/day.results.parquet"
"$analyze" --records "$out/day.parquet" fixtures/pcap
(cd "$out" && "$analyze" -q --out day.results.parquet day.parquet >/dev/null)
ls -l "$out"/*.parquet
