#!/usr/bin/env bash
# Configures (once) and builds quire in ./build. Extra arguments go to meson setup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
# The CUDA backend is built wherever the toolkit is (nvcc in /usr/local/cuda, as
# on CI and GPU nodes), GPU or not: the tests that need a GPU skip without one.
# nvcc goes on PATH for meson; nothing CUDA goes on LD_LIBRARY_PATH (the stub
# libcuda under lib64/stubs must never be what a binary loads at run time).
cuda=()
if [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  case " $* " in *" -Dcuda="*) ;; *) cuda=(-Dcuda=enabled) ;; esac
fi
if [ ! -f build/build.ninja ]; then
  meson setup build "${cuda[@]}" "$@"
fi
ninja -C build
