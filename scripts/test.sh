#!/usr/bin/env bash
# Runs crow's whole test suite (unit tests of every crate and the integration tests in tests/), after the
# idempotent set-up (scripts/setup.sh; scripts/setup-tools.sh for the clients the tests drive crow with:
# Python grpcio, schemathesis, Chromium and playwright-core), clippy with the project's rules, the
# README's main job (scripts/demo.sh, checked by scripts/demo-check.sh), then the fuzz targets for a fixed
# number of iterations (scripts/fuzz.sh). This is what CI runs. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-tools.sh
cargo test --workspace --all-targets "$@"
# The code rules (clippy.toml, [workspace.lints]) hold everywhere.
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The README's first command, the main job, runs as a new user would run it.
scripts/demo-check.sh
scripts/fuzz.sh
