#!/usr/bin/env bash
# Installs (idempotently) everything the real-server suite needs, into the cache directory
# (${VLLM_CLIENT_CACHE:-$HOME/.cache/vllm-client-ci}), never into the repository:
#   - llama.cpp's `llama-server`, built from the source vendored in the pinned llama-cpp-python
#     sdist (CPU only, no network features), reused when present;
#   - a venv with `gguf` and a tiny random-weight llama model written by make_tiny_gguf.py;
#   - a venv with the pinned LiteLLM proxy.
# Needs only Python 3 (with venv/pip) and a C/C++ toolchain. `install.sh llama|model|litellm`
# installs one part.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
mkdir -p "$CACHE_DIR"
# One install at a time per cache directory (two checkouts may share it).
exec 9>"$CACHE_DIR/.install.lock"
flock 9

make_venv() { # dir
  if [ ! -x "$1/bin/python" ]; then
    log "creating venv $1"
    "$PYTHON" -m venv "$1"
    "$1/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  fi
}

install_tools() {
  if [ -f "$TOOLS_VENV/.ok" ]; then return; fi
  make_venv "$TOOLS_VENV"
  local pkgs=("gguf==$GGUF_VERSION" "numpy==$NUMPY_VERSION")
  if ! command -v cmake >/dev/null; then pkgs+=("cmake==$CMAKE_VERSION"); fi
  log "installing ${pkgs[*]} into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "${pkgs[@]}"
  touch "$TOOLS_VENV/.ok"
}

need_cxx() {
  if command -v c++ >/dev/null && command -v make >/dev/null; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "no C/C++ toolchain: installing g++ and make with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make >/dev/null
  else
    die "llama-server is built from source: install a C/C++ compiler and make"
  fi
}

install_llama() {
  if [ -x "$LLAMA_SERVER" ]; then log "llama-server $LLAMA_CPP_PYTHON_VERSION: cached"; return; fi
  need_cxx
  install_tools
  local cmake=cmake
  command -v cmake >/dev/null || cmake="$TOOLS_VENV/bin/cmake"
  local work="$CACHE_DIR/build-llama.cpp-$LLAMA_CPP_PYTHON_VERSION"
  rm -rf "$work" && mkdir -p "$work"
  log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
  # Only this package as source: `--no-binary :all:` would also build its build dependencies
  # (cmake, ninja) from source while pip prepares the sdist's metadata.
  "$TOOLS_VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python --dest "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
  local src
  src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
  [ -f "$src/CMakeLists.txt" ] || die "no vendor/llama.cpp in the sdist"
  log "building llama-server (CPU only, -j${VLLM_REAL_JOBS:-2}); this takes a while the first time"
  "$cmake" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON >"$work/cmake.log" 2>&1 || { tail -50 "$work/cmake.log"; die "cmake configure failed"; }
  "$cmake" --build "$work/build" --target llama-server -j"${VLLM_REAL_JOBS:-2}" >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; die "llama-server build failed (log: $work/build.log)"; }
  mkdir -p "$LLAMA_DIR/bin"
  cp "$work/build/bin/llama-server" "$LLAMA_SERVER.tmp" && mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
  rm -rf "$work"
  log "llama-server installed: $LLAMA_SERVER"
}

install_model() {
  if [ -f "$TINY_MODEL" ]; then log "tiny model: cached"; return; fi
  install_tools
  mkdir -p "$(dirname "$TINY_MODEL")"
  "$TOOLS_VENV/bin/python" "$here/make_tiny_gguf.py" "$TINY_MODEL.tmp"
  mv "$TINY_MODEL.tmp" "$TINY_MODEL"
  log "tiny model written: $TINY_MODEL ($(du -h "$TINY_MODEL" | cut -f1))"
}

install_litellm() {
  if [ -f "$LITELLM_VENV/.ok" ]; then log "litellm $LITELLM_VERSION: cached"; return; fi
  make_venv "$LITELLM_VENV"
  log "installing litellm[proxy]==$LITELLM_VERSION"
  "$LITELLM_VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
  touch "$LITELLM_VENV/.ok"
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(llama model litellm)
for part in "${parts[@]}"; do
  case "$part" in
    llama) install_llama ;;
    model) install_model ;;
    litellm) install_litellm ;;
    tools) install_tools ;;
    *) die "unknown part: $part (llama, model, litellm)" ;;
  esac
done
