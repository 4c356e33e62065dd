#!/usr/bin/env bash
# Configures (once) and builds quire in ./build. Extra arguments go to meson setup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build "$@"
fi
ninja -C build
