#!/usr/bin/env bash
# Runs crow's whole test suite after the idempotent set-up (scripts/setup.sh; scripts/setup-tools.sh for
# the servers and clients the tests drive crow with: PostgreSQL, nats-server, Python grpcio,
# schemathesis, Chromium and playwright-core): the unit tests of every crate and the integration tests in
# tests/, linted with the project's clippy rules on the same build; then, alone, the tests that need the
# machine to themselves; the README's main job (scripts/demo.sh, checked by scripts/demo-check.sh); and the
# fuzz targets for a fixed number of iterations (scripts/fuzz.sh). This is what CI runs. Arguments go to
# the first `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-tools.sh
# The code rules (clippy.toml, [workspace.lints]) hold everywhere: the workspace's crates are compiled
# by clippy-driver (scripts/clippy-rustc), so building the tests is the lint run and a lint or a warning
# fails it. (`cargo clippy --workspace --all-targets -- -D warnings` checks the same, by hand.)
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$CLIPPY_DRIVER" ] || rustup component add clippy
export CLIPPY_DRIVER RUSTC_WORKSPACE_WRAPPER="$PWD/scripts/clippy-rustc"
# One build from scratch gains nothing from incremental caches, which would double the workspace's
# share of target/ (disk is what ran out first on CI, not time).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --all-targets "$@"
# Tests that need the machine to themselves run alone, one after the other: the randomized fault schedule
# over a whole cluster (tests/chaos.rs, minutes of faults on every dependency) and the runbook's lab
# cluster (tests/runbook.rs, on the fixed ports and directory the docs name).
cargo test --test tests -- --ignored --test-threads=1 chaos:: runbook::
# The README's first command, the main job, runs as a new user would run it (its build is the tests').
scripts/demo-check.sh
# What the build left on disk, for when a later step runs out of it.
echo "test: target/ holds $(du -sh target | cut -f1); $(df -h --output=avail . | tail -n 1 | tr -d ' ') free"
# The fuzz crate is a workspace of its own, built with sanitizer flags: plain rustc.
env -u RUSTC_WORKSPACE_WRAPPER scripts/fuzz.sh
