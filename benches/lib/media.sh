# Shared by the benches that run `anb process` on the reference inputs (pipeline.sh,
# poster-cost.sh). Source it from a script that has `set -euo pipefail` and runs from the
# project root. Sets RUNS (default 5), ANB (the release binary), inputs, report and a scratch
# folder `work` removed on exit, and makes sure the reference inputs exist.
RUNS=${RUNS:-5}
ANB=${ANB:-target/release/anb}
inputs=target/bench-inputs
report=target/bench-report
mkdir -p "$report"
benches/gen-inputs.sh "$inputs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Runs a command; prints "wall_secs peak_rss_kib cpu_secs" (its stdout and stderr go to $work).
measure() {
  if ! /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr"; then
    cat "$work/stderr" >&2
    return 1
  fi
  awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$work/time"
}

# A variant of the showcase pipeline, written to $1: its [[stage]] tables are a Python list
# `blocks` that the statement $2 edits (`stage("poster")` is the index of the one stage of that
# type), and its relative paths are made absolute, since a pipeline's paths are relative to its
# own folder and a variant lives in $work.
pipeline_variant() {
  python3 - pipeline.toml "$1" "$2" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'path = "(?!/)', 'path = "' + os.getcwd() + '/', text)
blocks = re.split(r"(?m)^(?=\[\[stage\]\])", text)
def stage(kind):
    found = [i for i, b in enumerate(blocks) if re.search(r'(?m)^type\s*=\s*"%s"' % kind, b)]
    assert len(found) == 1, "the showcase pipeline has one %s stage" % kind
    return found[0]
exec(sys.argv[3])
open(sys.argv[2], "w").write("".join(blocks))
PY
}
