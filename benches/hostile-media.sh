#!/usr/bin/env bash
# Files built to hurt a worker, sent to `anb serve` on loopback (benches/hostile_media.py):
# per file, the code it is refused with, the time from the upload's answer to `failed`, and the
# server's peak RSS; then `anb process` on each file alone (wall time, peak RSS). Medians of
# RUNS runs (default 3). Writes target/bench-report/hostile-media.json.
#   benches/hostile-media.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x target/release/anb ]] || cargo build --release --bin anb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p target/bench-report
python3 benches/hostile_media.py "$PWD/target/release/anb" "$work" "${1:-3}" "$PWD"
