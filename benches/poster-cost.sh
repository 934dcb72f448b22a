#!/usr/bin/env bash
# What the poster stage costs: `anb process` on the 60 s 1080p reference input with the showcase
# pipeline, and with the same pipeline minus its `poster` stage, in alternating pairs. Prints
# the medians of wall time, CPU time and peak RSS of each, and the poster's share as the median
# of the per-pair ratios (the two runs of a pair are adjacent in time, so a noisy host's drift
# cancels out better than between the two sides' medians).
#
#   RUNS=5 benches/poster-cost.sh
#
# Writes target/bench-report/poster-cost.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/media.sh
source benches/lib/media.sh
input="$inputs/clip-60s-1080p.mp4"

# The showcase pipeline without its `poster` stage.
pipeline_variant "$work/no-poster.toml" 'del blocks[stage("poster")]'

# One run of the reference input through a pipeline file.
run() { measure "$ANB" process "$input" "$work/out.mp4" --pipeline "$1"; }

: >"$work/with"; : >"$work/without"; : >"$work/with_rss"; : >"$work/without_rss"
: >"$work/with_cpu"; : >"$work/without_cpu"; : >"$work/wall_ratio"; : >"$work/cpu_ratio"
for i in $(seq "$RUNS"); do
  read -r w wrss wcpu < <(run pipeline.toml)
  test -s "$work/out.poster.jpg" || { echo "the showcase pipeline wrote no poster" >&2; exit 1; }
  rm -f "$work/out.poster.jpg"
  read -r n nrss ncpu < <(run "$work/no-poster.toml")
  test ! -e "$work/out.poster.jpg" || { echo "the pipeline without the stage wrote a poster" >&2; exit 1; }
  echo "$w" >>"$work/with"; echo "$wrss" >>"$work/with_rss"; echo "$n" >>"$work/without"; echo "$nrss" >>"$work/without_rss"
  echo "$wcpu" >>"$work/with_cpu"; echo "$ncpu" >>"$work/without_cpu"
  awk -v a="$w" -v b="$n" 'BEGIN { print a / b }' >>"$work/wall_ratio"
  awk -v a="$wcpu" -v b="$ncpu" 'BEGIN { print a / b }' >>"$work/cpu_ratio"
  echo "  pair $i: with poster $w s ($wcpu s CPU, $((wrss / 1024)) MiB), without $n s ($ncpu s CPU, $((nrss / 1024)) MiB)" >&2
done
with=$(median <"$work/with"); without=$(median <"$work/without")
with_rss=$(median <"$work/with_rss"); without_rss=$(median <"$work/without_rss")
with_cpu=$(median <"$work/with_cpu"); without_cpu=$(median <"$work/without_cpu")
share=$(median <"$work/wall_ratio" | awk '{ printf "%.1f", ($1 - 1) * 100 }')
cpu_share=$(median <"$work/cpu_ratio" | awk '{ printf "%.1f", ($1 - 1) * 100 }')
echo "Poster: wall ${with} s against ${without} s, CPU ${with_cpu} s against ${without_cpu} s (medians of $RUNS pairs);"
echo "  added: ${share} % wall, ${cpu_share} % CPU (median of the pairs' ratios); peak ${with_rss} KiB against ${without_rss} KiB"
cat >"$report/poster-cost.json" <<JSON
{"runs": $RUNS, "with_poster_wall_secs": $with, "without_poster_wall_secs": $without, "wall_added_percent": $share,
 "with_poster_cpu_secs": $with_cpu, "without_poster_cpu_secs": $without_cpu, "cpu_added_percent": $cpu_share,
 "with_poster_peak_rss_kib": $with_rss, "without_poster_peak_rss_kib": $without_rss}
JSON
