#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine, doing its own setup.
#
#   tools/test.sh            # format check, clippy, all tests, then the `torch` feature's tests
#
# The default-feature part needs nothing but cargo. The `torch` part installs, once,
# the LibTorch that tch 0.26 links against (torch 2.13.0 from PyPI, CPU subset, into
# ${SOM_CACHE:-~/.cache/som}; see tools/setup-libtorch.sh) and reuses it afterwards.
# Set SOM_SKIP_TORCH=1 to stop after the default-feature part.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "Chromium for the som serve browser test (Debian's package, installed when missing)"
if ! command -v "${SOM_CHROMIUM:-chromium}" >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

step "cargo test (workspace, default features)"
cargo test --workspace

step "cargo doc (missing docs and broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

if [ "${SOM_SKIP_TORCH:-0}" = 1 ]; then
    echo "SOM_SKIP_TORCH=1: skipping the torch feature"
    exit 0
fi

step "LibTorch 2.13.0 for tch (installed once, then reused)"
eval "$(tools/setup-libtorch.sh --env)"

step "cargo clippy (torch feature)"
cargo clippy -p som-segment -p som-cli -p som-benches --features som-segment/torch,som-cli/torch,som-benches/torch --all-targets -- -D warnings

step "cargo test (torch feature: SAM parity, checkpoints, automatic mask generator)"
cargo test -p som-segment -p som-cli --features som-segment/torch,som-cli/torch
