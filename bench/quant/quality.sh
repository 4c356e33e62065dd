#!/usr/bin/env bash
# Perplexity of a real quantized model at each quire dtype, against --dtype f32 on the same
# chunks (quire eval perplexity --compare-dtype: ppl, top-1 accuracy, top-1 agreement, mean KL).
# Figures go to bench/RESULTS.md, "Quantized weights: quality".
#
#   bench/quant/quality.sh [MODEL.gguf] [dtypes]     defaults: SmolLM2-135M-Instruct-Q4_1.gguf, "bf16 int8"
#   env: QUIRE_SHARED (../shared: the text), PPL_CTX (512), PPL_CHUNKS (6), PPL_DOCS (40), THREADS (2)
#
# The text is made at run time (never committed): the title and text of the first PPL_DOCS
# documents of the BEIR SciFact corpus (QUIRE_SHARED/data/scifact/corpus.jsonl), joined by blank
# lines. Add as-stored (or q8_0 / q4_k) to the dtypes once the build knows them.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-$HOME/.cache/quire/models/SmolLM2-135M-Instruct-Q4_1.gguf}
dtypes=${2:-bf16 int8}
shared=${QUIRE_SHARED:-$(cd .. && pwd)/shared}
ctx=${PPL_CTX:-512}; chunks=${PPL_CHUNKS:-6}; docs=${PPL_DOCS:-40}; threads=${THREADS:-2}
corpus=$shared/data/scifact/corpus.jsonl
[ -f "$corpus" ] || { echo "quality.sh: $corpus absent (set QUIRE_SHARED)" >&2; exit 1; }
[ -f "$model" ] || { echo "quality.sh: $model absent: run tools/models.sh" >&2; exit 1; }
ninja -C build cli/quire >/dev/null
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
python3 - "$corpus" "$docs" > "$T/scifact.txt" <<'EOF'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    docs = [json.loads(next(f)) for _ in range(int(sys.argv[2]))]
sys.stdout.write("\n\n".join(d["title"] + "\n" + d["text"] for d in docs))
EOF
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# text: first $docs SciFact documents ($(wc -c < "$T/scifact.txt") bytes); ctx $ctx, $chunks chunks; model $model"
echo "| dtype | ppl | +/- | vs f32 | top-1 accuracy | top-1 agreement with f32 | mean KL(f32 ‖ dtype) |"
echo "|---|---|---|---|---|---|---|"
first=1
for d in $dtypes; do
    ./build/cli/quire eval perplexity "$T/scifact.txt" --model "$model" --ctx "$ctx" --chunks "$chunks" \
        --threads "$threads" --dtype f32 --compare-dtype "$d" --json --log-level warn > "$T/$d.json"
    python3 - "$T/$d.json" "$first" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1])); c = j["compare"]
if sys.argv[2] == "1":
    print("| f32 | %.4f | %.4f | — | %.4f | — | — |" % (j["ppl"], j["ppl_err"], j["top1"]))
print("| %s | %.4f | %.4f | %+.3f%% | %.4f | %.4f | %.6f |" % (c["dtype"], c["ppl"], c["ppl_err"],
      100 * c["delta_ppl_rel"], c["top1"], c["top1_agreement"], c["kl_mean"]))
print("#   (%s: %d tokens scored, %.0f s for both runs)" % (c["dtype"], j["scored"], j["seconds"]), file=sys.stderr)
EOF
    first=0
done
