#!/usr/bin/env bash
# Runs the README's main job (scripts/demo.sh) and checks what a new user is told to expect from it: CCTV
# records from the sample video, one with the zone's product from dwell evidence, the web event from the
# outbox, and the summary. Part of scripts/test.sh, so the quick start cannot go stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
scripts/demo.sh >"$out" 2>&1 || { cat "$out"; echo "demo-check: scripts/demo.sh failed"; exit 1; }
fail() { cat "$out"; echo "demo-check: $1"; exit 1; }
grep -q '^sent [0-9]* frames' "$out" || fail "no stream report"
grep -Eq ' cctv .*products sku-101' "$out" || fail "no cctv record with product sku-101 (the zone's dwell evidence)"
grep -Eq ' web .*add-to-cart' "$out" || fail "no web record from the outbox"
grep -Eq '^organization demo-store: [0-9]+ interactions \(web 1, cctv [1-9][0-9]*, social 0\)' "$out" || fail "no summary line"
echo "demo-check: ok ($(grep -cE 'Z +cctv ' "$out") cctv records)"
