#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh ${CI:+-Dwerror=true}
meson test -C build --print-errorlogs --num-processes "$(nproc)"
