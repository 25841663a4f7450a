#!/usr/bin/env bash
# Installs Loom's dependencies (Debian packages, npm packages) and builds it. Idempotent.
# Usage: bash scripts/setup.sh        (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(build-essential cmake pkg-config libopenblas-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
      libgtest-dev libopenmpi-dev openmpi-bin fortunes fortunes-zh iproute2 libdnnl-dev
      clang libclang-rt-14-dev libomp-dev  # clang + its sanitizer/libFuzzer runtimes: scripts/fuzz.sh
      procps)  # pgrep: scripts/chaos.sh finds the ranks of a job
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from another source that bundles npm (and conflicts with Debian's npm package):
# ask for the commands, not the packages.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# GPT-2 vocabulary (gpt-tokenizer ships r50k_base.tiktoken) and the reference tokenizer the tests
# compare against (tiktoken, OpenAI's Rust tokenizer built to WASM), and llama.cpp (node-llama-cpp's
# prebuilt CPU build for linux-x64; its optional GPU builds are skipped) to run exported GGUF files.
NPM_PKGS=(gpt-tokenizer@4.0.0 tiktoken@1.0.22 node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1)
if [ ! -f .deps/node_modules/tiktoken/package.json ] || [ ! -f .deps/node_modules/gpt-tokenizer/package.json ] ||
   [ ! -f .deps/node_modules/node-llama-cpp/package.json ]; then
  echo "setup: installing npm packages ${NPM_PKGS[*]} into .deps/"
  mkdir -p .deps
  npm install --silent --no-audit --no-fund --omit=optional --save-exact --prefix .deps "${NPM_PKGS[@]}" >/dev/null
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "setup: built $BUILD_DIR/loom"
