#!/usr/bin/env bash
# Installs, once, the LibTorch that tch 0.26 (som-segment's `torch` feature) links against,
# and prints the environment that points cargo at it.
#
#   eval "$(tools/setup-libtorch.sh --env)"      # install if missing, then export
#   cargo test -p som-segment --features torch
#
# PyPI only ships the CUDA build of torch 2.13.0; CPU use needs three packages of it
# (about 1.2 GB; see DESIGN §7), installed with --no-deps into a venv that lives outside
# the clone, in ${SOM_CACHE:-$HOME/.cache/som}/libtorch-2.13.0, and is reused when present.
# Set LIBTORCH yourself to skip all of this (any LibTorch 2.13.0 directory works).
#
# Options:
#   --env     print only `export` lines on stdout (progress goes to stderr)
#   --check   exit 0 if the install is present and complete, 1 otherwise (installs nothing)
set -euo pipefail

VERSION=2.13.0
PACKAGES=("torch==$VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85")
CACHE="${SOM_CACHE:-$HOME/.cache/som}"
DIR="$CACHE/libtorch-$VERSION"
STAMP="$DIR/.som-complete"
PYTHON="${PYTHON:-python3}"

mode=install
case "${1:-}" in
    --env) mode=env ;;
    --check) mode=check ;;
    "") ;;
    *) echo "setup-libtorch.sh: unknown option '$1' (expected --env or --check)" >&2; exit 2 ;;
esac

torch_dir() {
    local d
    for d in "$DIR"/lib/python3*/site-packages/torch; do
        if [ -f "$d/lib/libtorch_cpu.so" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

complete() {
    [ -f "$STAMP" ] && torch_dir >/dev/null
}

if [ "$mode" = check ]; then
    complete
    exit $?
fi

if ! complete; then
    echo "setup-libtorch: installing torch $VERSION (CPU subset, ~1.2 GB) into $DIR" >&2
    rm -rf "$DIR"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$DIR" >&2
    "$DIR/bin/pip" install --no-deps --disable-pip-version-check --quiet "${PACKAGES[@]}" >&2
    torch_dir >/dev/null || { echo "setup-libtorch: torch installed but libtorch_cpu.so not found under $DIR" >&2; exit 1; }
    date -u +%Y-%m-%dT%H:%M:%SZ >"$STAMP"
    echo "setup-libtorch: done" >&2
fi

LIBTORCH_DIR="$(torch_dir)"
if [ "$mode" = env ]; then
    echo "export LIBTORCH='$LIBTORCH_DIR'"
    echo "export LD_LIBRARY_PATH='$LIBTORCH_DIR/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
else
    echo "LibTorch $VERSION is ready. For cargo:"
    echo "  export LIBTORCH='$LIBTORCH_DIR'"
    echo "(binaries built with som-segment's torch feature carry an rpath to \$LIBTORCH/lib;"
    echo " others need LD_LIBRARY_PATH='$LIBTORCH_DIR/lib')"
fi
