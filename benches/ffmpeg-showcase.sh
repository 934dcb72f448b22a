#!/usr/bin/env bash
# The showcase pipeline (pipeline.toml) as one ffmpeg command, the reference the benchmarks
# compare against: first 30 s, 1280x720 fit and pad, logo top-left at half size and 0.9 opacity,
# outlined "ANB" bottom-right at 0.8 opacity, x264 veryfast CRF 23 high profile yuv420p,
# AAC 128 kbit/s, index at the front. The input is limited to 30 s (`-t` before `-i`), so
# ffmpeg reads no more than it needs either. Usage: ffmpeg-showcase.sh IN OUT
# THREADS=N sets the decoder's, the filters' and x264's threads by the rules `anb process
# --threads N` applies (ffmpeg's automatic counts ignore CPU quotas): libavcodec N frame
# threads, x264 N × 3 / 2 (at least 1), filters N.
# The text matches what `textoverlay` draws for the pipeline's "Sans Bold" 28 with a 24 px
# margin: the same bounding box within 2 px (textoverlay's 178 x 62 px at 1280x720, this one
# 178 x 60; right edges 32 px and bottoms 46-47 px from the frame's, measured on a flat clip),
# so both encoders get the same picture.
set -euo pipefail
cd "$(dirname "$0")/.."
in=$1 out=$2
threads_in=() threads_filter=() threads_out=()
if [[ -n "${THREADS:-}" ]]; then
  decoder=$THREADS
  encoder=$(( THREADS * 3 / 2 > 1 ? THREADS * 3 / 2 : 1 ))
  threads_in=(-threads "$decoder")
  threads_filter=(-filter_threads "$THREADS" -filter_complex_threads "$THREADS")
  threads_out=(-threads "$encoder")
fi
ffmpeg -v error -y "${threads_filter[@]}" "${threads_in[@]}" -t 30 -i "$in" -filter_complex \
  "[0:v]scale=1280:720:force_original_aspect_ratio=decrease:flags=${SCALE_FLAGS:-bicubic},pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1[base];\
movie=assets/anb-logo.png,scale=iw/2:ih/2,format=rgba,colorchannelmixer=aa=0.9[logo];\
[base][logo]overlay=16:16,drawtext=text=ANB:fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:\
fontsize=75:fontcolor=white@0.8:borderw=2:bordercolor=black@0.8:shadowx=1:shadowy=1:x=w-tw-30:y=h-th-49[v]" \
  -map "[v]" -map "0:a?" -c:v libx264 -preset veryfast -crf 23 -profile:v high -pix_fmt yuv420p \
  -c:a aac -b:a 128k "${threads_out[@]}" -movflags +faststart "$out"
