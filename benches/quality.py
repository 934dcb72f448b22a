#!/usr/bin/env python3
"""SSIM and PSNR of processed outputs against one reference, with ffmpeg's `ssim` and `psnr` filters.

The reference is the source as the showcase pipeline frames it, made by ffmpeg: the first 30 s,
fit into 1280x720 with swscale's bicubic (padded if the aspect differs), in 4:2:0. The
watermark's two corners (the logo top-left, the "ANB" text bottom-right) are painted black on
both sides before comparing: anb's and ffmpeg's overlays differ by design, and what is measured
is the encode. Both sides start at timestamp 0, so frame n meets frame n.

    benches/quality.py SOURCE OUTPUT...        # one JSON object per output on stdout
"""

import json
import re
import subprocess
import sys

WIDTH, HEIGHT, SECONDS = 1280, 720, 30
# Logo: 150x60 at (16, 16); text: a 178x62 box 32 px from the right and 46 px from the bottom.
# Both with a margin for anti-aliasing and the text's outline and shadow.
MASKS = [(0, 0, 190, 92), (WIDTH - 250, HEIGHT - 130, 250, 130)]
# anb's SSIM may be at most this far below ffmpeg's for a row to count as equal quality.
SSIM_TOLERANCE = 0.002


def masked(label):
    boxes = ",".join(f"drawbox=x={x}:y={y}:w={w}:h={h}:color=black:t=fill" for x, y, w, h in MASKS)
    return f"setpts=PTS-STARTPTS,format=yuv420p,{boxes},split[{label}1][{label}2]"


def measure(source, output):
    graph = ";".join([
        f"[0:v]{masked('d')}",
        f"[1:v]scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease:flags=bicubic,"
        f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2,setsar=1,{masked('r')}",
        "[d1][r1]ssim", "[d2][r2]psnr",
    ])
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-v", "info", "-i", str(output), "-t", str(SECONDS), "-i", str(source),
         "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"ffmpeg could not compare {output}: {run.stderr[-2000:]}")
    ssim = re.search(r"SSIM Y:([\d.]+).* All:([\d.]+)", run.stderr)
    psnr = re.search(r"PSNR y:([\d.]+).* average:([\d.]+|inf)", run.stderr)
    if not ssim or not psnr:
        raise RuntimeError(f"no SSIM/PSNR summary for {output}: {run.stderr[-2000:]}")
    return {"ssim": float(ssim.group(2)), "ssim_y": float(ssim.group(1)),
            "psnr_db": float(psnr.group(2)), "psnr_y_db": float(psnr.group(1))}


def flag(anb, ffmpeg):
    """Whether anb's output counts as worse than ffmpeg's (SSIM more than the tolerance below)."""
    return anb["ssim"] < ffmpeg["ssim"] - SSIM_TOLERANCE


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for out in sys.argv[2:]:
        print(json.dumps({"output": out, **measure(sys.argv[1], out)}))
