#!/usr/bin/env bash
# Runs crow's whole test suite (unit tests of every crate and the integration tests in tests/), after the
# idempotent set-up, then the fuzz targets for a fixed number of iterations (scripts/fuzz.sh). This is
# what CI runs. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
scripts/fuzz.sh
