#!/usr/bin/env bash
# Runs crow's cargo-fuzz targets (fuzz/fuzz_targets: `frame`, `interaction`) for a fixed number of
# iterations each, from the checked-in seeds. Installs cargo-fuzz if missing. cargo-fuzz needs nightly
# compiler flags (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
#
#   scripts/fuzz.sh                 # 1,000,000 runs per target (what scripts/test.sh runs)
#   scripts/fuzz.sh 50000000        # longer, by hand
#   FUZZ_TIME=600 scripts/fuzz.sh   # or for a fixed time per target, in seconds
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
# OpenCV keeps process-wide caches alive until exit; they are not leaks of ours.
export ASAN_OPTIONS=detect_leaks=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in frame interaction; do
    mkdir -p "$work/$target"
    if [[ -n "${FUZZ_TIME:-}" ]]; then
        limit=(-max_total_time="$FUZZ_TIME")
    else
        limit=(-runs="$RUNS")
    fi
    echo "fuzz: $target, ${limit[*]}"
    # New inputs go to the scratch corpus; the checked-in seeds are read only.
    status=0
    cargo fuzz run -O --fuzz-dir fuzz "$target" "$work/$target" "fuzz/seeds/$target" -- \
        "${limit[@]}" -max_len=65536 -print_final_stats=1 >"$work/$target.log" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        tail -n 60 "$work/$target.log"
        echo "fuzz: $target FAILED (exit $status); the crashing input is under fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$work/$target.log"
done
