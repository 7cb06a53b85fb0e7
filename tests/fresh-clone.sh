#!/usr/bin/env bash
# The README's two commands, exactly as a new user runs them: in a fresh clone of HEAD, in a
# temporary folder with no ../shared beside it, without the SYNSCOPE_REQUIRE_* switches, and
# with p0f on PATH (the users most likely to try synscope have it). The commands are read
# from README.md itself, so the README and this check cannot drift apart.
#
# Passes when both commands exit 0, the first prints a report, and the second shows in its
# visible output which tests it could not run here and why (at least the shared-corpus ones:
# the clone has no corpus).
#
# usage: bash tests/fresh-clone.sh
# The clone builds into its own target folder, as a new user's would: a target folder shared
# with another checkout of the same workspace gets artifacts that cargo treats as the same
# crates (its hashes use paths relative to the workspace), and a crate compiled in one
# checkout, with that checkout's paths in env!("CARGO_MANIFEST_DIR"), is then reused by the
# other.
set -euo pipefail
unset CARGO_TARGET_DIR
root=$(cd "$(dirname "$0")/.." && pwd)

fail() {
    echo "FAIL (fresh clone): $*" >&2
    exit 1
}

command -v p0f >/dev/null || fail "p0f is not on PATH (apt-get install p0f): this check needs it"

mapfile -t commands < <(sed -n '/^## Two commands/,/^## [^T]/p' "$root/README.md" | grep -E '^cargo ')
[[ ${#commands[@]} -eq 2 ]] ||
    fail "expected two commands under README's '## Two commands', found ${#commands[@]}"

work=$(mktemp -d /tmp/synscope-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/synscope"
cd "$work/synscope"
[[ ! -e ../shared ]] || fail "$work/shared exists"

# A user's shell has none of CI's switches.
for v in $(env | sed -n 's/^\(SYNSCOPE_[A-Z_]*\)=.*/\1/p'); do
    unset "$v"
done

for i in 0 1; do
    echo "== fresh clone: ${commands[$i]}"
    if ! bash -c "${commands[$i]}" >"$work/out-$i" 2>"$work/err-$i"; then
        tail -n 60 "$work/err-$i" >&2
        tail -n 60 "$work/out-$i" >&2
        fail "\`${commands[$i]}\` exited non-zero"
    fi
done

report_lines=$(wc -l <"$work/out-0")
((report_lines > 20)) || fail "the report has only $report_lines lines"
echo "report: $report_lines lines"

# cargo prints each test binary's result lines on stdout.
grep -E '^test result: ' "$work/out-1" | awk '
    { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) g += $(i-1) } }
    END { printf "tests: %d passed, %d failed, %d ignored\n", p, f, g }'
grep -q 'ignored (needs the shared capture corpus' "$work/out-1" ||
    fail "no test said it was ignored for want of the shared corpus"
grep -q '^SKIPPED [0-9]* test(s) that cannot run here' "$work/out-1" ||
    fail "no SKIPPED summary line in the test output"
echo "skipped here, as the test output says:"
grep -E '^  [a-z0-9_]+: needs ' "$work/out-1" | sort -u | sed 's/^/ /'
echo "fresh clone: both README commands pass"
