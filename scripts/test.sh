#!/usr/bin/env bash
# Runs crow's whole test suite (unit tests of every crate and the integration tests in tests/), after the
# idempotent set-up. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
