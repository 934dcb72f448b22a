#!/usr/bin/env bash
# Run every test against real services: PostgreSQL and moto (S3 + SQS) on loopback, started by
# scripts/services.sh if they are not running and stopped afterwards if this script started them.
# Each test that needs PostgreSQL makes its own database (anb_t_*); leftovers are dropped here.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=1
log=$(mktemp)
drop_test_databases() {
  psql "$TEST_ANB_POSTGRES_URL" -tAc "select datname from pg_database where datname like 'anb\_t\_%'" 2>/dev/null |
    while read -r db; do psql "$TEST_ANB_POSTGRES_URL" -qc "drop database if exists \"$db\" with (force)" || true; done
}
cleanup() {
  drop_test_databases || true
  scripts/services.sh stop
  rm -f "$log"
}
# The deployment's static checks first: they take seconds once .venv-lint exists.
scripts/lint-deploy.sh
# Formatting and clippy with warnings as errors (a minute or two once the crates are built).
scripts/lint-rust.sh
scripts/services.sh start
trap cleanup EXIT
# shellcheck source=/dev/null
source target/test-services.env
drop_test_databases
status=0
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
