#!/usr/bin/env bash
# Reference inputs for the benchmarks, generated with GStreamer and cached under target/:
#   clip-60s-1080p.mp4   60 s 1080p30 H.264 (~10 Mbit/s: moving bars under film-like noise, so the
#                        decoder works as hard as on real footage) + AAC, index at the end
#   clip-600s-1080p.mp4  the same clip ten times (stream copy), 10 minutes, index at the end
set -euo pipefail
dir=${1:-target/bench-inputs}
mkdir -p "$dir"
one="$dir/clip-60s-1080p.mp4"
ten="$dir/clip-600s-1080p.mp4"
if [[ ! -s "$one" ]]; then
  echo "Generating $one (takes a few minutes once)..." >&2
  gst-launch-1.0 -q \
    compositor name=c sink_1::alpha=0.1 ! video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 ! \
      x264enc speed-preset=veryfast bitrate=10000 key-int-max=60 ! h264parse ! queue ! mux. \
    videotestsrc num-buffers=1800 pattern=smpte horizontal-speed=3 ! video/x-raw,width=1920,height=1080,framerate=30/1 ! c. \
    videotestsrc num-buffers=1800 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=30/1 ! c. \
    audiotestsrc num-buffers=2813 samplesperbuffer=1024 wave=ticks ! audio/x-raw,rate=48000,channels=2 ! \
      avenc_aac bitrate=128000 ! aacparse ! queue ! mux. \
    mp4mux name=mux faststart=false ! filesink location="$one.tmp"
  mv "$one.tmp" "$one"
fi
if [[ ! -s "$ten" ]]; then
  echo "Generating $ten..." >&2
  list=$(mktemp)
  for _ in $(seq 10); do echo "file '$(realpath "$one")'"; done > "$list"
  ffmpeg -v error -y -f concat -safe 0 -i "$list" -c copy -f mp4 "$ten.tmp"
  rm -f "$list"
  mv "$ten.tmp" "$ten"
fi
