#!/usr/bin/env bash
# The main job on the embedded default: set up, build, start a crow server (OpenCV describer, fresh data
# dir), stream a real sample video as a camera, then print the interaction records and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

VIDEO=${1:-examples/data/vtest.avi}
# The dev profile builds dependencies (OpenCV bindings, sled) optimised and shares its build with the tests.
cargo build --quiet --bin crow
CROW=target/debug/crow
DATA=$(mktemp -d)
LOG=$DATA/server.log
# Every call is authenticated: a fresh HS256 secret for this run (unless one is set), and a token for the
# demo organization that the client commands below present (CROW_TOKEN).
export CROW_JWT_SECRET=${CROW_JWT_SECRET:-$(head -c 32 /dev/urandom | base64)}
export CROW_TOKEN=$("$CROW" token --org demo-store --role admin --ttl 1h)
# Web/social events are processed in batches of 10 or after 30 s by default; the demo shortens the wait.
CROW_PIPELINE__INTERACTIONS__OUTBOX_BATCH_TIMEOUT_MS=500 \
  "$CROW" serve --data-dir "$DATA/db" --listen 127.0.0.1:0 --no-metrics >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null; rm -rf "$DATA"' EXIT

URL=""
for _ in $(seq 1 100); do
  URL=$(sed -n 's/^crow listening on //p' "$LOG")
  [ -n "$URL" ] && break
  kill -0 $SERVER_PID 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "server did not start"; cat "$LOG"; exit 1; }
echo "== server at $URL: a catalog, and camera 'entrance' with a display zone (mapped to sku-101) and a door line"
"$CROW" products upsert examples/catalog.json --org demo-store --server "$URL"
# Normalised coordinates (0..1, y down). A person is in the zone when their feet are; staying 2 s there is
# an interaction with the zone's products. Crossing the line leftwards counts "in", rightwards "out".
"$CROW" cameras set --org demo-store --camera entrance --server "$URL" \
  --zone "display-1:0.3,0.35 0.7,0.35 0.7,0.8 0.3,0.8:sku-101:2000" \
  --line "door:0.5,0 0.5,1"
echo "== streaming $VIDEO as camera 'entrance' of organization 'demo-store' (2 frames/s of footage)"
"$CROW" stream "$VIDEO" --org demo-store --camera entrance --fps 2 --server "$URL"
echo
echo "== a web event through CreateInteraction (durable outbox, then processed)"
"$CROW" interactions create --org demo-store --source web --wait --server "$URL" \
  --data '{"event": "add_to_cart", "product_id": "sku-101", "text": "Red running shoes, size 42"}'
echo
echo "== interactions (newest first)"
"$CROW" interactions list --org demo-store --all --server "$URL"
echo
echo "== summary"
"$CROW" summary --org demo-store --server "$URL"
