#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine, doing its own setup.
#
#   tools/test.sh            # format check, clippy, all tests (default features)
#
# Nothing here needs Python or network access beyond crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace, default features)"
cargo test --workspace

step "cargo doc (missing docs and broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
