#!/usr/bin/env bash
# The README's first command: installs dependencies, builds, and runs quire's
# main job on a default that needs no preparation: a greedy story from the
# stories260K model in ../shared (set QUIRE_QUICKSTART_MODEL to use another).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
model=${QUIRE_QUICKSTART_MODEL:-../shared/models/stories260K/stories260K.gguf}
if [ ! -e "$model" ]; then
  echo "quickstart: $model not found (it ships in ../shared beside this checkout);" \
       "set QUIRE_QUICKSTART_MODEL to a model directory, .gguf file, HF id or ollama:NAME" >&2
  exit 4
fi
./build/cli/quire version
prompt="Once upon a time"
echo "prompt: $prompt"   # quire prints only the completion (load and timing lines go to stderr)
./build/cli/quire generate --model "$model" --prompt "$prompt" --temperature 0 --max-tokens 60
