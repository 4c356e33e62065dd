#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs quire's
# main job on a default that needs no preparation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
./build/cli/quire version
