#!/usr/bin/env bash
# What the poster stage costs: `anb process` on the 60 s 1080p reference input with the showcase
# pipeline, and with the same pipeline minus its `poster` stage, in alternating pairs. Prints
# the medians of wall time and peak RSS of each, and the poster's share.
#
#   RUNS=5 benches/poster-cost.sh
#
# Writes target/bench-report/poster-cost.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
ANB=${ANB:-target/release/anb}
inputs=target/bench-inputs
report=target/bench-report
mkdir -p "$report"
benches/gen-inputs.sh "$inputs"
input="$inputs/clip-60s-1080p.mp4"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The showcase pipeline without the [[stage]] whose type is "poster", its relative file paths
# made absolute (a pipeline's paths are relative to its own folder).
python3 - pipeline.toml "$work/no-poster.toml" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'path = "(?!/)', 'path = "' + os.getcwd() + '/', text)
blocks = re.split(r"(?m)^(?=\[\[stage\]\])", text)
kept = [b for b in blocks if not re.search(r'(?m)^type\s*=\s*"poster"', b)]
assert len(kept) == len(blocks) - 1, "the showcase pipeline has one poster stage"
open(sys.argv[2], "w").write("".join(kept))
PY

measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$ANB" process "$input" "$work/out.mp4" --pipeline "$1" >/dev/null 2>"$work/stderr" \
    || { cat "$work/stderr" >&2; return 1; }
  cat "$work/time"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/with"; : >"$work/without"; : >"$work/with_rss"; : >"$work/without_rss"
for i in $(seq "$RUNS"); do
  read -r w wrss < <(measure pipeline.toml)
  test -s "$work/out.poster.jpg" || { echo "the showcase pipeline wrote no poster" >&2; exit 1; }
  rm -f "$work/out.poster.jpg"
  read -r n nrss < <(measure "$work/no-poster.toml")
  test ! -e "$work/out.poster.jpg" || { echo "the pipeline without the stage wrote a poster" >&2; exit 1; }
  echo "$w" >>"$work/with"; echo "$wrss" >>"$work/with_rss"; echo "$n" >>"$work/without"; echo "$nrss" >>"$work/without_rss"
  echo "  pair $i: with poster $w s ($((wrss / 1024)) MiB), without $n s ($((nrss / 1024)) MiB)" >&2
done
with=$(median <"$work/with"); without=$(median <"$work/without")
with_rss=$(median <"$work/with_rss"); without_rss=$(median <"$work/without_rss")
share=$(awk -v w="$with" -v n="$without" 'BEGIN { printf "%.1f", (w / n - 1) * 100 }')
echo "Poster: ${with} s against ${without} s (${share} %), peak ${with_rss} KiB against ${without_rss} KiB (medians of $RUNS pairs)"
cat >"$report/poster-cost.json" <<JSON
{"runs": $RUNS, "with_poster_wall_secs": $with, "without_poster_wall_secs": $without, "wall_added_percent": $share,
 "with_poster_peak_rss_kib": $with_rss, "without_poster_peak_rss_kib": $without_rss}
JSON
