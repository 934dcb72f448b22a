#!/usr/bin/env bash
# Pipeline benchmark: `anb process` with the showcase pipeline against the ffmpeg command line
# doing the same work (same x264 preset and CRF, same input), and the streaming figures (peak
# RSS and bytes read) on a 1-minute and a 10-minute 1080p input. Medians of RUNS runs.
#
#   benches/pipeline.sh                 # RUNS=5
#   RUNS=3 THREADS=2 benches/pipeline.sh
#
# Writes target/bench-report/pipeline.json. Wall times are of this machine; read ratios, not
# absolute seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/media.sh
source benches/lib/media.sh
one="$inputs/clip-60s-1080p.mp4"
ten="$inputs/clip-600s-1080p.mp4"



anb_args=()
[[ -n "${THREADS:-}" ]] && anb_args+=(--threads "$THREADS")

echo "Speed: 60 s 1080p input -> showcase output, $RUNS runs each, alternating" >&2
: >"$work/anb"; : >"$work/ffmpeg"; : >"$work/anb_cpu"; : >"$work/ffmpeg_cpu"; : >"$work/pair"
: >"$work/anb_rss"; : >"$work/ffmpeg_rss"
for i in $(seq "$RUNS"); do
  read -r a arss acpu < <(measure "$ANB" process "$one" "$work/anb.mp4" --json "${anb_args[@]}")
  read -r f frss fcpu < <(THREADS=${THREADS:-} measure benches/ffmpeg-showcase.sh "$one" "$work/ffmpeg.mp4")
  echo "$a" >>"$work/anb"; echo "$acpu" >>"$work/anb_cpu"; echo "$arss" >>"$work/anb_rss"
  echo "$f" >>"$work/ffmpeg"; echo "$fcpu" >>"$work/ffmpeg_cpu"; echo "$frss" >>"$work/ffmpeg_rss"
  awk -v a="$a" -v f="$f" 'BEGIN { print a / f }' >>"$work/pair"
  echo "  run $i: anb $a s ($acpu s CPU, $((arss / 1024)) MiB), ffmpeg $f s ($fcpu s CPU, $((frss / 1024)) MiB)" >&2
done
anb_wall=$(median <"$work/anb")
ffmpeg_wall=$(median <"$work/ffmpeg")
anb_cpu=$(median <"$work/anb_cpu")
ffmpeg_cpu=$(median <"$work/ffmpeg_cpu")
anb_rss=$(median <"$work/anb_rss")
ffmpeg_rss=$(median <"$work/ffmpeg_rss")
pair_ratio=$(median <"$work/pair")
ratio=$(awk -v a="$anb_wall" -v f="$ffmpeg_wall" 'BEGIN { printf "%.3f", a / f }')

echo "Quality: SSIM and PSNR of the last run's outputs against the source scaled by ffmpeg" >&2
python3 benches/quality.py "$one" "$work/anb.mp4" "$work/ffmpeg.mp4" >"$work/quality"
read -r anb_ssim anb_psnr ffmpeg_ssim ffmpeg_psnr quality_flag < <(python3 - "$work/quality" <<'PY'
import json, sys
sys.path.insert(0, "benches")
import quality
anb, ffmpeg = (json.loads(line) for line in open(sys.argv[1]))
print(anb["ssim"], anb["psnr_db"], ffmpeg["ssim"], ffmpeg["psnr_db"], str(quality.flag(anb, ffmpeg)).lower())
PY
)
anb_size=$(stat -c %s "$work/anb.mp4")
ffmpeg_size=$(stat -c %s "$work/ffmpeg.mp4")

echo "Streaming: peak RSS and bytes read, 1-minute vs 10-minute input" >&2
stream_row() { # input -> "median_rss_kib bytes_read input_size"
  : >"$work/rss"
  for _ in $(seq "$RUNS"); do
    read -r _ rss _ < <(measure "$ANB" process "$1" "$work/s.mp4" --json "${anb_args[@]}")
    echo "$rss" >>"$work/rss"
  done
  local read size
  read=$(sed -n 's/.*"bytes_read":\([0-9]*\).*/\1/p' "$work/stdout")
  size=$(stat -c %s "$1")
  echo "$(median <"$work/rss") $read $size"
}
read -r rss1 read1 size1 < <(stream_row "$one")
read -r rss10 read10 size10 < <(stream_row "$ten")

awk -v a="$anb_wall" -v f="$ffmpeg_wall" -v r="$ratio" -v runs="$RUNS" -v ac="$anb_cpu" -v fc="$ffmpeg_cpu" -v pr="$pair_ratio" \
    -v as="$anb_ssim" -v ap="$anb_psnr" -v fs="$ffmpeg_ssim" -v fp="$ffmpeg_psnr" -v flag="$quality_flag" \
    -v arss="$anb_rss" -v frss="$ffmpeg_rss" -v asz="$anb_size" -v fsz="$ffmpeg_size" \
    -v rss1="$rss1" -v rss10="$rss10" -v read1="$read1" -v size1="$size1" -v read10="$read10" -v size10="$size10" 'BEGIN {
  printf "\n%-44s %10s %10s %12s\n", "speed (median of " runs " runs)", "wall s", "CPU s", "peak RSS MiB"
  printf "%-44s %10.2f %10.2f %12.1f\n", "anb process, showcase pipeline", a, ac, arss / 1024
  printf "%-44s %10.2f %10.2f %12.1f\n", "ffmpeg, same work", f, fc, frss / 1024
  printf "%-44s %10.3f %10.3f   (target <= 0.90)\n", "ratio anb / ffmpeg", r, ac / fc
  printf "%-44s %10.3f\n", "median of the per-run wall-time ratios", pr
  printf "\n%-44s %10s %10s %10s\n", "quality vs the source (watermarks masked)", "SSIM", "PSNR dB", "size MB"
  printf "%-44s %10.5f %10.2f %10.2f\n", "anb", as, ap, asz / 1e6
  printf "%-44s %10.5f %10.2f %10.2f\n", "ffmpeg", fs, fp, fsz / 1e6
  printf "%-44s %10.5f   %s\n\n", "SSIM anb - ffmpeg (flagged below -0.002)", as - fs, (flag == "true" ? "FLAGGED: anb is worse" : "ok")
  printf "%-22s %14s %14s %10s\n", "streaming", "peak RSS MiB", "read MB", "read %"
  printf "%-22s %14.1f %14.1f %9.1f%%\n", "1-minute input", rss1 / 1024, read1 / 1e6, 100 * read1 / size1
  printf "%-22s %14.1f %14.1f %9.1f%%\n", "10-minute input", rss10 / 1024, read10 / 1e6, 100 * read10 / size10
  printf "%-22s %14.2f   (target within 1.2)\n", "RSS 10 min / 1 min", rss10 / rss1
}'
cat >"$report/pipeline.json" <<JSON
{"runs": $RUNS, "anb_wall_secs": $anb_wall, "ffmpeg_wall_secs": $ffmpeg_wall, "ratio": $ratio,
 "anb_cpu_secs": $anb_cpu, "ffmpeg_cpu_secs": $ffmpeg_cpu, "median_pair_ratio": $pair_ratio,
 "anb_ssim": $anb_ssim, "anb_psnr_db": $anb_psnr, "ffmpeg_ssim": $ffmpeg_ssim, "ffmpeg_psnr_db": $ffmpeg_psnr,
 "anb_rss_kib": $anb_rss, "ffmpeg_rss_kib": $ffmpeg_rss, "quality_flagged": $quality_flag, "anb_output_bytes": $anb_size, "ffmpeg_output_bytes": $ffmpeg_size,
 "rss_kib_1min": $rss1, "rss_kib_10min": $rss10,
 "bytes_read_1min": $read1, "input_bytes_1min": $size1, "bytes_read_10min": $read10, "input_bytes_10min": $size10}
JSON
echo "Wrote $report/pipeline.json" >&2
