#!/usr/bin/env bash
# Runs crow's whole test suite (unit tests of every crate and the integration tests in tests/), after the
# idempotent set-up (scripts/setup.sh; scripts/setup-tools.sh for the clients the tests drive crow with:
# Python grpcio, schemathesis, Chromium and playwright-core), clippy with the project's rules (on the
# same build), the README's main job (scripts/demo.sh, checked by scripts/demo-check.sh), then the fuzz targets for a fixed
# number of iterations (scripts/fuzz.sh). This is what CI runs. Arguments go to `cargo test`.
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
cargo test --workspace --all-targets "$@"
# The README's first command, the main job, runs as a new user would run it (its build is the tests').
scripts/demo-check.sh
# The fuzz crate is a workspace of its own, built with sanitizer flags: plain rustc.
env -u RUSTC_WORKSPACE_WRAPPER scripts/fuzz.sh
