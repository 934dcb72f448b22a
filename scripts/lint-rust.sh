#!/usr/bin/env bash
# The Rust gates `make test` runs first: formatting (rustfmt.toml) and clippy with every warning
# an error. The workspace's few allowed lints are in the root Cargo.toml's [workspace.lints],
# each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
