#!/usr/bin/env bash
# What the encode stage's `lookahead_frames` costs and saves: the reference job (60 s 1080p
# input, showcase pipeline) at each lookahead, in alternating rounds, with its peak RSS, wall
# time, output size and quality (benches/quality.py). A shorter lookahead also makes smaller
# files at the same CRF, so each setting also runs once at CRF 22 and its SSIM is interpolated
# at the size of the preset's output: the gap at equal size. Medians of RUNS rounds.
#
#   benches/lookahead.sh                          # RUNS=3, THREADS=2, LOOKAHEADS="preset 6 5 4"
#   RUNS=5 THREADS=1 LOOKAHEADS="preset 4 3" benches/lookahead.sh
#
# Needs the release binary (cargo build --release --bin anb). Writes
# target/bench-report/lookahead-<THREADS>.json and the chart lookahead.png. Not part of
# `make bench`: it runs the job 16 times per thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
# shellcheck source=lib/media.sh
source benches/lib/media.sh
THREADS=${THREADS:-2}
LOOKAHEADS=${LOOKAHEADS:-preset 6 5 4}
one="$inputs/clip-60s-1080p.mp4"

# Runs the job at lookahead $1 (`preset`: the stage's default) and CRF $2, writing $3; prints
# "wall_secs peak_rss_kib cpu_secs".
job() {
  (
    if [[ $1 != preset ]]; then export ANB_STAGE_ENCODE_LOOKAHEAD_FRAMES=$1; fi
    export ANB_STAGE_ENCODE_CRF=$2
    measure "$ANB" process "$one" "$3" --threads "$THREADS"
  )
}

echo "Lookahead: ${LOOKAHEADS// /, } at $THREADS threads, $RUNS alternating rounds" >&2
for i in $(seq "$RUNS"); do
  for la in $LOOKAHEADS; do
    read -r wall rss _ < <(job "$la" 23 "$work/la-$la.mp4")
    echo "$la $wall $rss" >>"$work/runs"
    echo "  round $i, lookahead $la: $wall s, $((rss / 1024)) MiB" >&2
  done
done
echo "Quality at CRF 23, and at CRF 22 for the equal-size comparison" >&2
for la in $LOOKAHEADS; do
  job "$la" 22 "$work/la-$la-crf22.mp4" >/dev/null
  python3 benches/quality.py "$one" "$work/la-$la.mp4" "$work/la-$la-crf22.mp4" |
    sed "s/^/$la /" >>"$work/quality"
done

python3 - "$work" "$THREADS" "$report/lookahead-$THREADS.json" "$LOOKAHEADS" <<'PY'
import json, os, statistics, sys
work, threads, out, order = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
runs = {}
for line in open(os.path.join(work, "runs")):
    la, wall, rss = line.split()
    runs.setdefault(la, []).append((float(wall), int(rss)))
quality = {}
for line in open(os.path.join(work, "quality")):
    la, row = line.split(" ", 1)
    quality.setdefault(la, []).append(json.loads(row))
rows = []
for la in order:
    at23, at22 = quality[la]
    size23 = os.path.getsize(at23["output"])
    size22 = os.path.getsize(at22["output"])
    rows.append({
        "lookahead": la, "wall_secs": statistics.median(w for w, _ in runs[la]),
        "peak_rss_mib": statistics.median(r for _, r in runs[la]) / 1024,
        "ssim": at23["ssim"], "psnr_db": at23["psnr_db"], "size_bytes": size23,
        "ssim_crf22": at22["ssim"], "size_crf22_bytes": size22,
    })
base = rows[0]
print(f"\n{'lookahead':>10} {'wall s':>8} {'RSS MiB':>9} {'SSIM':>9} {'PSNR dB':>8} {'size MB':>8} {'SSIM at equal size':>20}")
for row in rows:
    # SSIM on the line through this setting's CRF 23 and CRF 22 outputs, at the first row's size.
    slope = (row["ssim_crf22"] - row["ssim"]) / (row["size_crf22_bytes"] - row["size_bytes"])
    row["ssim_at_base_size"] = row["ssim"] + slope * (base["size_bytes"] - row["size_bytes"])
    row["ssim_gap_at_base_size"] = row["ssim_at_base_size"] - base["ssim"]
    print(f"{row['lookahead']:>10} {row['wall_secs']:8.2f} {row['peak_rss_mib']:9.1f} {row['ssim']:9.5f} "
          f"{row['psnr_db']:8.2f} {row['size_bytes'] / 1e6:8.2f} {row['ssim_gap_at_base_size']:+20.4f}")
json.dump({"threads": threads, "rows": rows}, open(out, "w"), indent=2)
print(f"Wrote {out}", file=sys.stderr)
PY
# The chart holds every thread count measured so far (one JSON per count).
python3 benches/lookahead_chart.py "$report"/lookahead-*.json
