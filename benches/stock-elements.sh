#!/usr/bin/env bash
# Our three hand-written GStreamer elements against the stock element each replaces, on the
# 60 s 1080p reference input with the showcase pipeline: for each, alternating pairs of the
# pipeline as shipped and the same pipeline with that one element swapped for GStreamer's.
#
#   anbh264dec  vs avdec_h264  GST_PLUGIN_FEATURE_RANK ranks avdec_h264 above ours
#   anbscale    vs videoscale  the resize stage replaced by a `gst` stage doing the same work
#                              (videoflip video-direction=auto for auto_rotate, Catmull-Rom)
#   anbx264enc  vs x264enc     the encode stage's `element = "x264enc"`
#
# Each pair's runs are adjacent in time, so the median of the per-pair ratios is what it
# reports (a noisy host's drift cancels within a pair). One untimed run per variant checks,
# from GStreamer's state log, that the stock element ran and ours did not. Quality (SSIM and
# PSNR against the source) is measured on the last pair's outputs: the scaler changes the picture.
#
#   RUNS=5 benches/stock-elements.sh
#
# Writes target/bench-report/stock-elements.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/media.sh
source benches/lib/media.sh
input="$inputs/clip-60s-1080p.mp4"
threads=${THREADS:-$(nproc)}

pipeline_variant "$work/ours.toml" 'pass'
pipeline_variant "$work/x264enc.toml" 'i = stage("encode"); blocks[i] = blocks[i].replace("type = \"encode\"\n", "type = \"encode\"\nelement = \"x264enc\"\n", 1)'
pipeline_variant "$work/videoscale.toml" "threads = $threads"'
i = stage("resize")
size = dict(re.findall(r"(?m)^(width|height)\s*=\s*(\d+)", blocks[i]))
assert re.search(r"(?m)^mode\s*=\s*\"fit\"", blocks[i]) and re.search(r"(?m)^auto_rotate\s*=\s*true", blocks[i])
blocks[i] = ("[[stage]]\ntype = \"gst\"\nvideo = \"videoconvert n-threads=%s ! video/x-raw,format=I420 ! "
    "videoflip video-direction=auto ! videoscale method=catrom n-threads=%s ! "
    "capsfilter caps=video/x-raw,width=%s,height=%s,pixel-aspect-ratio=1/1\"\n\n" % (threads, threads, size["width"], size["height"]))'

# Each comparison: name, stock element, our element, pipeline file, environment for the stock run.
comparisons=(
  "decoder|avdec_h264|anbh264dec|ours|GST_PLUGIN_FEATURE_RANK=avdec_h264:MAX"
  "scaler|videoscale|anbscale|videoscale|"
  "encoder|x264enc|anbx264enc|x264enc|"
)

# One run; "wall rss cpu". $1 pipeline name, $2 output, $3 environment (VAR=value or empty).
run() { measure env ${3:+"$3"} "$ANB" process "$input" "$2" --pipeline "$work/$1.toml" --threads "$threads"; }

# Whether an element made by a factory reached PLAYING in one run of the pipeline, from
# GStreamer's state log (elements are named after their factory: anbscale0, avdec_h264-0).
ran() { grep -Eq "<$1-?[0-9]+> completed state change to PLAYING" "$work/states.log"; }
check_swap() { # pipeline env stock ours
  GST_DEBUG=GST_STATES:4 GST_DEBUG_NO_COLOR=1 env ${2:+"$2"} "$ANB" process "$input" "$work/check.mp4" \
    --pipeline "$work/$1.toml" --threads "$threads" >/dev/null 2>"$work/states.log"
  ran "$3" || { echo "$1: no $3 ran" >&2; exit 1; }
  if ran "$4"; then echo "$1: $4 still ran" >&2; exit 1; fi
}

json="{\"runs\": $RUNS, \"threads\": $threads"
for comparison in "${comparisons[@]}"; do
  IFS='|' read -r name stock ours pipeline env <<<"$comparison"
  check_swap "$pipeline" "$env" "$stock" "$ours"
  echo "$ours against $stock, $RUNS pairs" >&2
  for f in ours stock ours_rss stock_rss ours_cpu stock_cpu wall_ratio cpu_ratio; do : >"$work/$f"; done
  for i in $(seq "$RUNS"); do
    read -r o orss ocpu < <(run ours "$work/ours.mp4" "")
    read -r s srss scpu < <(run "$pipeline" "$work/stock.mp4" "$env")
    echo "$o" >>"$work/ours"; echo "$orss" >>"$work/ours_rss"; echo "$ocpu" >>"$work/ours_cpu"
    echo "$s" >>"$work/stock"; echo "$srss" >>"$work/stock_rss"; echo "$scpu" >>"$work/stock_cpu"
    awk -v a="$o" -v b="$s" 'BEGIN { print a / b }' >>"$work/wall_ratio"
    awk -v a="$ocpu" -v b="$scpu" 'BEGIN { print a / b }' >>"$work/cpu_ratio"
    echo "  pair $i: $ours $o s ($ocpu s CPU, $((orss / 1024)) MiB), $stock $s s ($scpu s CPU, $((srss / 1024)) MiB)" >&2
  done
  python3 benches/quality.py "$input" "$work/ours.mp4" "$work/stock.mp4" >"$work/quality"
  read -r ossim opsnr sssim spsnr < <(python3 -c '
import json, sys
ours, stock = (json.loads(line) for line in open(sys.argv[1]))
print(ours["ssim"], ours["psnr_db"], stock["ssim"], stock["psnr_db"])' "$work/quality")
  obytes=$(stat -c %s "$work/ours.mp4"); sbytes=$(stat -c %s "$work/stock.mp4")
  wall=$(median <"$work/wall_ratio"); cpu=$(median <"$work/cpu_ratio")
  orss=$(median <"$work/ours_rss"); srss=$(median <"$work/stock_rss")
  owall=$(median <"$work/ours"); swall=$(median <"$work/stock")
  ocpu=$(median <"$work/ours_cpu"); scpu=$(median <"$work/stock_cpu")
  awk -v n="$ours" -v s="$stock" -v w="$wall" -v c="$cpu" -v orss="$orss" -v srss="$srss" -v os="$ossim" -v ss="$sssim" \
      -v op="$opsnr" -v sp="$spsnr" -v ow="$owall" -v sw="$swall" -v oc="$ocpu" -v sc="$scpu" -v ob="$obytes" -v sb="$sbytes" 'BEGIN {
    printf "%-11s wall %6.2f s vs %6.2f s (%+.1f %%)  CPU %6.2f s vs %6.2f s (%+.1f %%)  peak %6.1f vs %6.1f MiB (%+.1f)  SSIM %.5f vs %.5f  PSNR %.2f vs %.2f dB  %.2f vs %.2f MB\n",
      n, ow, sw, (w - 1) * 100, oc, sc, (c - 1) * 100, orss / 1024, srss / 1024, (orss - srss) / 1024, os, ss, op, sp, ob / 1e6, sb / 1e6
  }'
  json+=", \"$name\": {\"ours\": \"$ours\", \"stock\": \"$stock\", \"wall_ratio\": $wall, \"cpu_ratio\": $cpu,"
  json+=" \"ours_wall_secs\": $owall, \"stock_wall_secs\": $swall, \"ours_cpu_secs\": $ocpu, \"stock_cpu_secs\": $scpu,"
  json+=" \"ours_peak_rss_kib\": $orss, \"stock_peak_rss_kib\": $srss,"
  json+=" \"ours_ssim\": $ossim, \"stock_ssim\": $sssim, \"ours_psnr_db\": $opsnr, \"stock_psnr_db\": $spsnr,"
  json+=" \"ours_output_bytes\": $obytes, \"stock_output_bytes\": $sbytes}"
done
echo "$json}" >"$report/stock-elements.json"
echo "Wrote $report/stock-elements.json (ratios are ours / stock, medians of the pairs)" >&2
