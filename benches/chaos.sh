#!/usr/bin/env bash
# The fault soak of the job path (benches/chaos.py): PostgreSQL behind a TCP proxy the script
# cuts, moto S3/SQS with a dead-letter queue, anb web and two anb workers killed at random,
# uploads throughout; then it waits for quiet and checks nothing was lost, doubled or stuck.
# Loopback only, bounded. One run per seed (default three: 11 22 33), each prints its summary
# as a JSON line; target/bench-report/chaos.jsonl collects them.
#   benches/chaos.sh [seed ...]          SOAK_SECONDS=240 by default
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/web.sh
[[ -x target/release/anb ]] || cargo build --release --bin anb
bench_services
work=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$work"' EXIT
scripts/make-sample.sh "$work/clip.mp4" 4 320x240
mkdir -p target/bench-report
: > target/bench-report/chaos.jsonl
status=0
for seed in "${@:-11 22 33}"; do
  for s in $seed; do
    dir="$work/seed-$s"
    mkdir -p "$dir" && cp "$work/clip.mp4" "$dir/"
    if .venv/bin/python benches/chaos.py "$PWD/target/release/anb" "$dir" "$s" "${SOAK_SECONDS:-240}" | tee "$dir/out.txt"; then :; else status=1; fi
    grep '^{' "$dir/out.txt" >> target/bench-report/chaos.jsonl || true
  done
done
exit $status
