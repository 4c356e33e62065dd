#!/usr/bin/env bash
# The README's first command: installs what quire needs (Debian packages, including slurm-wlm-doc,
# the Slurm documentation as HTML and PDF), builds, ingests /usr/share/doc/slurm-wlm/html into
# ./quickstart-store and answers a question about it with citations.
#
# With no language model configured the answer is extractive (the best sentences of the top
# passages). To answer with an LLM, name one (a directory, .gguf file, HF id ORG/NAME from the HF
# cache, or ollama:NAME[:TAG]; see README "Using real models"):
#   QUIRE_QUICKSTART_MODEL=Qwen/Qwen2.5-0.5B-Instruct bash tools/quickstart.sh
# QUIRE_QUICKSTART_QUESTION replaces the question; QUIRE_QUICKSTART_STORE the store directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
docs=/usr/share/doc/slurm-wlm/html
if [ ! -d "$docs" ]; then
  echo "quickstart: $docs not found (tools/deps.sh installs the Debian package slurm-wlm-doc; if it is" \
       "installed, a dpkg path-exclude rule under /etc/dpkg/dpkg.cfg.d may drop /usr/share/doc)" >&2
  exit 4
fi
store=${QUIRE_QUICKSTART_STORE:-./quickstart-store}
question=${QUIRE_QUICKSTART_QUESTION:-"How do I request two GPUs for a batch job?"}
./build/cli/quire version
# Re-running is cheap: unchanged files are not read again.
./build/cli/quire ingest "$docs" --store "$store" --log-level warn
echo
echo "question: $question"   # quire prints the answer on stdout (load and timing lines go to stderr)
echo
if [ -n "${QUIRE_QUICKSTART_MODEL:-}" ]; then
  ./build/cli/quire ask "$question" --store "$store" --model "$QUIRE_QUICKSTART_MODEL" --temperature 0
else
  ./build/cli/quire ask "$question" --store "$store"
fi
