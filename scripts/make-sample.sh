#!/usr/bin/env bash
# Generate an H.264/AAC MP4 with GStreamer: OUT SECONDS WIDTHxHEIGHT [FPS]. The index (moov) is at
# the end of the file, as phones and most encoders write it.
set -euo pipefail
out=$1 secs=$2 size=$3 fps=${4:-30}
w=${size%x*} h=${size#*x}
frames=$((secs * fps))
audio_buffers=$((secs * 48000 / 1024 + 1))
gst-launch-1.0 -q \
  videotestsrc num-buffers="$frames" pattern=ball motion=sweep ! \
    "video/x-raw,format=I420,width=$w,height=$h,framerate=$fps/1" ! \
    x264enc speed-preset=veryfast key-int-max=$((fps * 2)) ! h264parse ! queue ! mux. \
  audiotestsrc num-buffers="$audio_buffers" samplesperbuffer=1024 wave=ticks ! audio/x-raw,rate=48000,channels=2 ! \
    avenc_aac ! aacparse ! queue ! mux. \
  mp4mux name=mux ! filesink location="$out"
