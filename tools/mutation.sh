#!/bin/sh
# Mutation testing of the sync engine with the conformance suite alone as the test: how many
# plausible bugs of src/engine/ (cargo-mutants' mutants: replaced return values, flipped
# operators, deleted statements) the suite catches. MUTANTS.md has the figures measured.
#
#   tools/mutation.sh                    every mutant of src/engine/ (hours: see MUTANTS.md)
#   tools/mutation.sh --shard 1/64       every 64th of them (the sample of MUTANTS.md)
#   tools/mutation.sh --file src/engine/session/hello.rs
#   tools/mutation.sh --list             list the mutants without testing them
#
# Extra arguments go to cargo-mutants. `--test=conformance` goes to every cargo command (a
# --cargo-test-arg would not reach the build, which would then build every test target).
# Each mutant is built with the `mutants` profile of Cargo.toml (release, but opt-level 1 and
# incremental for this crate: about 10 s a mutant instead of two minutes; dependencies stay
# fully optimised and are built once) and judged by
# `cargo test --profile mutants --test conformance the_reference_passes_and_every_must_is_covered`:
# the full suite (every scenario, the audit, the requirement coverage) against the mutated
# reference, as `presence-sync conformance` runs it, with a hub of 100 peers.
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`). It mutates the tree in place
# (--in-place, so the release build in target/ is reused): do not edit or build in this tree
# while it runs; an interrupted run may leave a mutation behind (look for
# "~ changed by cargo-mutants ~"). Results go to mutants.out/ (outcomes.json, caught.txt,
# missed.txt, timeout.txt, unviable.txt). Run it in the background, niced: it is slow.
set -eu
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || {
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 2
}
# Without --file: the whole engine. A shard takes every n-th mutant (round robin), so that a
# sample spreads over every file instead of one function.
scope="--file=src/engine/**/*.rs"
sharding=""
for a in "$@"; do
    case "$a" in
        --file|--file=*|-f) scope="" ;;
        --shard|--shard=*) sharding="--sharding=round-robin" ;;
    esac
done
# shellcheck disable=SC2086 # $scope and $sharding are lists of options
# The first build of the profile compiles every dependency (about 10 minutes): done here,
# without the per-mutant build timeout, which would otherwise kill it again and again.
nice -n 15 cargo build --profile mutants --test conformance
# Bounds::memory (a worst-case formula no code of the session calls) is left out: MUTANTS.md.
exec nice -n 15 cargo mutants --in-place --baseline=skip $scope $sharding \
    --exclude-re 'Bounds::memory' \
    --timeout=60 --build-timeout=600 \
    --profile=mutants \
    --cargo-arg=--test=conformance \
    "$@" \
    -- the_reference_passes_and_every_must_is_covered
