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
