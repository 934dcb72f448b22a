#!/usr/bin/env bash
# Run every test. Later issues add the services the tests need (PostgreSQL, moto) here: each is
# started if it is not running and stopped afterwards if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=1
cargo test --workspace --all-targets --no-fail-fast
