#!/usr/bin/env bash
# Run every test. Later issues add the services the tests need (PostgreSQL, moto) here: each is
# started if it is not running and stopped afterwards if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
