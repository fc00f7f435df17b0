#!/usr/bin/env bash
# Builds llama.cpp's own `llama-mtmd-cli` from the very llama.cpp source that crow links (the copy vendored
# in the llama-cpp-sys-2 crate), for `crow bench describe` to compare against. Not needed to run crow.
# Output: target/llama-mtmd-cli/bin/llama-mtmd-cli. Idempotent; several minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/llama-mtmd-cli
[ -x "$OUT/bin/llama-mtmd-cli" ] && { echo "$OUT/bin/llama-mtmd-cli"; exit 0; }
cargo fetch --quiet
SYS=$(cargo metadata --format-version 1 --quiet | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "llama-cpp-sys-2"))')
# The crate vendors a trimmed tree (most tools lack their CMakeLists): copy it and keep only tools/mtmd.
SRC="target/llama-mtmd-cli-src"
rm -rf "$SRC" "$OUT"
mkdir -p "$OUT"
cp -r "$(dirname "$SYS")/llama.cpp" "$SRC"
printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(mtmd)\n' > "$SRC/tools/CMakeLists.txt"
# The same settings llama-cpp-sys-2 uses for crow's dev build, so the comparison is like for like.
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGGML_NATIVE=OFF -DGGML_OPENMP=ON \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$OUT" --target llama-mtmd-cli -j "$(nproc)" >/dev/null
echo "$OUT/bin/llama-mtmd-cli"
