#!/usr/bin/env bash
# Retrieval a newcomer sees working: held-out hit@5 of `quire search` (default options) over the
# Slurm HTML docs (Debian slurm-wlm-doc) for the "held" half of bench/slurm_qa/questions.tsv
# (questions written from the pages, each with the pages that answer it; the "tune" half chose
# the defaults). A question is a hit when one of its pages is among the 5 passages printed.
#
#   slurm_qa.sh bm25|hybrid QUESTIONS_DIR MIN_HITS
#
# bm25: ingests the docs into a temporary BM25-only store (about a second).
# hybrid: ingests with the real all-MiniLM-L6-v2 ($QUIRE_MODELS, tools/models.sh): it embeds
# ~3000 passages, minutes on a CPU; skipped (77) when the model is absent.
# Skipped (77) when the docs are absent (tools/deps.sh installs slurm-wlm-doc).
set -u
mode=${1:?bm25|hybrid}; qdir=${2:?questions dir}; min=${3:?min hits}
Q=${QUIRE_BIN:?}
docs=/usr/share/doc/slurm-wlm/html
if [ ! -f "$docs/faq.html" ]; then
  echo "SKIP: $docs absent (Debian package slurm-wlm-doc; tools/deps.sh installs it)"; exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: no python3 for $qdir/hit5.py"; exit 77; }
emb=()
if [ "$mode" = hybrid ]; then
  m="${QUIRE_MODELS:-}/all-MiniLM-L6-v2"
  if [ ! -f "$m/model.safetensors" ]; then
    echo "SKIP: $m absent: run tools/models.sh"; exit 77
  fi
  emb=(--embedder "$m")
elif [ "$mode" != bm25 ]; then
  echo "slurm_qa.sh: mode must be bm25 or hybrid, not $mode" >&2; exit 2
fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
t0=$(date +%s)
if ! "$Q" ingest "$docs" --store "$T/store" --log-level error "${emb[@]}" > "$T/ingest.log" 2>&1; then
  echo "FAIL: ingest: $(tail -5 "$T/ingest.log")"; exit 1
fi
echo "$mode: $(tail -1 "$T/ingest.log") ($(( $(date +%s) - t0 )) s)"
# default search options: no QUIRE_* option from the environment may change them
for v in $(env | grep -o '^QUIRE_[A-Z0-9_]*' | grep -v '^QUIRE_\(BIN\|SHARED\|FIXTURES\|PYTHON\|MODELS\)$'); do
  unset "$v"
done
python3 "$qdir/hit5.py" --quire "$Q" --store "$T/store" --split held --min-hits "$min"
