#!/bin/sh
# Writes the output of `presence-sync conformance` on the default workload into README.md,
# between the lines `<!-- sample: conformance (tools/readme-sample.sh) -->` and
# `<!-- /sample -->`. tests/readme.rs fails when the README's copy differs from what the suite
# prints, so run this after a change that moves a figure of the report.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The report goes to stdout; progress to stderr. A failing run is written too (and reported).
status=0
target/release/presence-sync conformance >"$out" 2>/dev/null || status=$?
python3 - "$out" <<'PY'
import sys
report = open(sys.argv[1], encoding="utf-8").read().rstrip("\n")
path = "README.md"
text = open(path, encoding="utf-8").read()
begin = "<!-- sample: conformance (tools/readme-sample.sh) -->\n"
end = "<!-- /sample -->"
i = text.index(begin) + len(begin)
j = text.index(end, i)
new = text[:i] + "```text\n" + report + "\n```\n" + text[j:]
if new != text:
    open(path, "w", encoding="utf-8").write(new)
    print("README.md: sample updated")
else:
    print("README.md: sample already current")
PY
if [ "$status" -ne 0 ]; then
    echo "the conformance run exited with status $status" >&2
    exit "$status"
fi
