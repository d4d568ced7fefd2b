#!/usr/bin/env bash
# Mutation testing with cargo-mutants: every given source file is mutated (operators flipped,
# returns replaced, conditions negated...) and its own crate's tests are run against each mutant.
# A mutant the tests fail on is "caught"; one they pass on is "missed" (a gap in the tests, or an
# equivalent mutant); "unviable" ones do not build.
#
#   tools/mutants.sh FILE...                   e.g. tools/mutants.sh som-lmm/src/parse.rs
#   tools/mutants.sh --iterate FILE...         retest only what the last run of FILE did not catch
#   MUTANTS_TESTS="--lib --test parser_props" tools/mutants.sh som-lmm/src/parse.rs
#                                              build and run only these test targets (much faster:
#                                              each mutant rebuilds only them; default: all of the
#                                              crate's tests, doctests included)
#   MUTANTS_JOBS=2 tools/mutants.sh ...        parallel builds (default 1: the machine is shared)
#   MUTANTS_ARGS="--in-place" tools/mutants.sh ...
#                                              more cargo-mutants options (--in-place: mutate this
#                                              checkout and reuse its target/, no scratch copy and no
#                                              full rebuild per file; only in your own worktree)
#
# Results of the last full run, and what became of each missed mutant: tools/mutants-results.md.
# Each FILE gets its own results folder, target/mutants/<file with / as _>/mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt, outcomes.json), and a summary line.
# cargo-mutants builds in a scratch copy of the workspace, so the checkout is never modified
# (unless MUTANTS_ARGS has --in-place).
# Installs the pinned cargo-mutants when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$VERSION"; then
    cargo install --locked cargo-mutants --version "$VERSION"
fi

extra=()
if [ "${1:-}" = "--iterate" ]; then
    extra+=(--iterate)
    shift
fi
if [ "$#" -eq 0 ]; then
    sed -n '2,24p' "$0"
    exit 2
fi

test_args=()
for a in ${MUTANTS_TESTS:-}; do
    test_args+=("--cargo-arg=$a")
done
jobs=(--jobs "${MUTANTS_JOBS:-1}")
for a in ${MUTANTS_ARGS:-}; do
    test_args+=("$a")
    # An in-place run is one build at a time; cargo-mutants refuses --jobs with it.
    [ "$a" = "--in-place" ] && jobs=()
done

status=0
for file in "$@"; do
    if [ ! -f "$file" ]; then
        echo "$file: no such file" >&2
        exit 2
    fi
    out="target/mutants/${file//\//_}"
    mkdir -p "$out"
    echo "==> cargo mutants on $file (results in $out/mutants.out)"
    cargo mutants --file "$file" --output "$out" "${jobs[@]}" \
        --test-workspace=false "${extra[@]}" "${test_args[@]}" || status=$?
    dir="$out/mutants.out"
    count() { [ -f "$dir/$1.txt" ] && wc -l <"$dir/$1.txt" | tr -d ' ' || echo 0; }
    echo "$file: caught $(count caught), missed $(count missed), timeout $(count timeout), unviable $(count unviable)"
    if [ "$(count missed)" != 0 ]; then
        echo "missed mutants:"
        sed 's/^/  /' "$dir/missed.txt"
    fi
done
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts, 4 when the unmutated tests fail.
exit "$status"
