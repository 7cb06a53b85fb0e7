#!/usr/bin/env bash
# Times analyze against p0f 3.09b on the same >= 1 GiB Ethernet pcap built from real captures.
#
# usage: bench/analyze.sh [WORKDIR] [SIZE_MIB]
#   WORKDIR   where the generated files go (default /tmp/synscope-bench; needs ~3.5 GiB)
#   SIZE_MIB  size of the generated pcap (default 1024)
# Env: PCAPS (default ../shared/pcaps beside the workspace), THREADS (analyze --threads,
#      default all cores), ROUNDS (default 7), PROFILE (cargo profile of the analyze build,
#      default dist), KEEP=1 keeps the generated files.
#
# Prints a Markdown table for `cat`, `p0f -r`, `analyze` (json, table, p0f log lines, ndjson)
# on the pcap, `analyze --format json` on a pcapng of the same packets (bench/pcap_to_pcapng.py;
# p0f cannot read pcapng) and on the recording `analyze --records` made from the pcap, and
# the first stages of analyze's pcap reader alone (formats' `pcap_stages` example: read and
# frame; read, frame and parse, on the same threads), which bound what a full run can take: the
# median and the best wall time over ROUNDS rounds, max RSS, and MB/s and packets/s (captures)
# or records/s (the recording) at the median. Each round runs every command once, in turn,
# so that a slow or fast moment of a shared machine falls on all of them alike; every run
# follows a read of its input (the page cache hot) and p0f's log is deleted before each run.
# Then each analyze command's speed-up over p0f, and the CPU it ran on.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/synscope-bench}
size=${2:-1024}
pcaps=${PCAPS:-$root/../shared/pcaps}
threads=${THREADS:-$(nproc)}
rounds=${ROUNDS:-7}
mkdir -p "$work"
pcap=$work/bench.pcap
rec=$work/bench.parquet
ng=$work/bench.pcapng

command -v p0f >/dev/null || { echo "p0f not installed (apt-get install p0f)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time not installed (apt-get install time)" >&2; exit 1; }
# The `dist` profile (fat LTO, see Cargo.toml) is the build to ship; PROFILE=release compares.
profile=${PROFILE:-dist}
(cd "$root" && cargo build --profile "$profile" -p analyze >&2)
(cd "$root" && cargo build --profile "$profile" -p formats --example pcap_stages >&2)
analyze=$root/target/$profile/analyze
stages=$root/target/$profile/examples/pcap_stages

if [ ! -s "$pcap" ] || [ "$(stat -c %s "$pcap")" -lt $((size * 1024 * 1024)) ]; then
  python3 "$root/bench/make_bench_pcap.py" "$pcaps" "$pcap" --size-mib "$size" >&2
fi
if [ ! -s "$ng" ] || [ "$ng" -ot "$pcap" ]; then
  python3 "$root/bench/pcap_to_pcapng.py" "$pcap" "$ng" >&2
fi
rm -f "$rec" "$work/bench.flows.parquet"
"$analyze" --quiet --records "$rec" "$pcap"

records=$("$analyze" --quiet --format json "$rec" | python3 -c '
import json,sys; d=json.load(sys.stdin)["summary"]["totals"]; print(d["syn"]+d["syn_ack"])')
packets=$("$analyze" --quiet --format json "$pcap" | python3 -c '
import json,sys; print(json.load(sys.stdin)["summary"]["totals"]["packets"])')

python3 - "$analyze" "$stages" "$threads" "$rounds" "$pcap" "$rec" "$work/p0f.log" "$packets" \
  "$records" "$ng" <<'PY'
import os, statistics, subprocess, sys, time

analyze, stages, threads, rounds, pcap, rec, log, packets, records, ng = sys.argv[1:]
rounds, packets, records = int(rounds), int(packets), int(records)
a = [analyze, "--quiet", "--threads", threads]
# (name, argv, input file, count, unit)
commands = [
    ("`cat FILE.pcap > /dev/null`", ["cat", pcap], pcap, packets, "packets"),
    ("`p0f -r FILE.pcap -o LOG` (3.09b)", ["p0f", "-r", pcap, "-o", log], pcap, packets, "packets"),
    ("`analyze --format json FILE.pcap`", a + ["--format", "json", pcap], pcap, packets, "packets"),
    ("`analyze FILE.pcap` (table report)", a + [pcap], pcap, packets, "packets"),
    ("`analyze --format p0f FILE.pcap`", a + ["--format", "p0f", pcap], pcap, packets, "packets"),
    ("`analyze --format ndjson FILE.pcap`", a + ["--format", "ndjson", pcap], pcap, packets,
     "packets"),
    ("`analyze --format json FILE.pcapng`", a + ["--format", "json", ng], ng, packets, "packets"),
    ("`analyze --format json FILE.parquet`", a + ["--format", "json", rec], rec, records, "records"),
]
# analyze's reader alone, on as many threads: not commands a user runs, the floor under them.
floors = [
    ("reader stage: read + frame (`pcap_stages FILE.pcap N read`)",
     [stages, pcap, threads, "read"], pcap, packets, "packets"),
    ("reader stages: read + frame + parse (`pcap_stages FILE.pcap N parse`)",
     [stages, pcap, threads, "parse"], pcap, packets, "packets"),
]
analyzes = commands[2:]
commands += floors

def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass

rss_file = log + ".rss"

def run(argv):
    """Wall seconds and max RSS (KiB) of one run, output to /dev/null.

    GNU time reports the RSS: a child's `ru_maxrss` as seen from here would include the
    pages of this Python process it was forked from."""
    with open(os.devnull, "wb") as null:
        start = time.perf_counter()
        status = subprocess.call(["/usr/bin/time", "-o", rss_file, "-f", "%M"] + argv,
                                 stdout=null, stderr=null)
        wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{argv[0]} failed with status {status}")
    with open(rss_file) as f:
        return wall, int(f.read().split()[-1])

walls = {name: [] for name, *_ in commands}
rss = {name: 0 for name, *_ in commands}
for r in range(rounds):
    for name, argv, path, _, _ in commands:
        if os.path.exists(log):
            os.remove(log)
        warm(path)
        w, m = run(argv)
        walls[name].append(w)
        rss[name] = max(rss[name], m)
    print(f"round {r + 1}/{rounds} done", file=sys.stderr)

def cpu_model():
    """The CPU's name: runs on different machines are not comparable (the copy out of the
    page cache, the largest part of a replay, ran 2-4x slower on one VM than on another)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"

size = {p: os.path.getsize(p) for p in (pcap, ng, rec)}
print()
print(f"pcap: {size[pcap]:,} bytes, {packets:,} packets; pcapng: {size[ng]:,} bytes; "
      f"recording: {size[rec]:,} bytes, "
      f"{records:,} records; {os.cpu_count()} cores ({cpu_model()}), "
      f"analyze --threads {threads}; {rounds} rounds")
print()
print("| command | median s | best s | max RSS MB | MB/s (median) | rate (median) |")
print("|---|---|---|---|---|---|")
med = {n: statistics.median(w) for n, w in walls.items()}
best = {n: min(w) for n, w in walls.items()}
for name, _, path, count, unit in commands:
    t = med[name]
    print(f"| {name} | {t:.3f} | {best[name]:.3f} | {rss[name] / 1024:.0f} | "
          f"{size[path] / 1e6 / t:.0f} | {count / t / 1e6:.2f} M {unit}/s |")
print()
p0f = commands[1][0]
for name, *_ in analyzes:
    what = {analyzes[-1][0]: " (the same packets' SYNs, recorded)",
            analyzes[-2][0]: " (the same packets as pcapng, which p0f cannot read)"}.get(name, "")
    print(f"{name}{what}: {med[p0f] / med[name]:.1f}x faster than p0f (medians), "
          f"{best[p0f] / best[name]:.1f}x (best runs)")
print()
print(f"10x p0f is {med[p0f] / 10:.3f} s (median); analyze's reader alone takes "
      + ", ".join(f"{med[n]:.3f} s ({n.split(' (')[0]})" for n, *_ in floors)
      + f": {med[floors[-1][0]] / (med[p0f] / 10):.0%} of it, before the flow table, the "
      "engine, the summary and rendering, which share the same cores")
PY

rm -f "$work/p0f.log.rss"
[ "${KEEP:-0}" = 1 ] || rm -f "$pcap" "$ng" "$rec" "$work/bench.flows.parquet" "$work/p0f.log"
