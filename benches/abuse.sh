#!/usr/bin/env bash
# `anb serve` attacked on loopback by benches/abuse.py (bounded in clients and time): one line
# per attack with status counts, RSS growth, /health's worst latency and whether the server is
# alive, as medians of RUNS runs (default 3). Writes target/bench-report/abuse.json.
#   benches/abuse.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x target/release/anb ]] || cargo build --release --bin anb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each run's server keeps its files in its own folder; the pipeline is the repository's.
for run in $(seq 0 $(( ${1:-3} - 1 ))); do
  mkdir -p "$work/run$run" && cp -r pipeline.toml assets "$work/run$run/"
done
python3 benches/abuse.py "$PWD/target/release/anb" "$work" "${1:-3}"
