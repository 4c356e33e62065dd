#!/usr/bin/env bash
# Model benchmarks: builds quire, writes random-weight models of real shapes with
# tools/mkmodel into $QUIRE_BENCH_DIR (default /tmp/quire-bench; ~3.5 GB, never
# committed) and runs bench/bench_models in one process, so the memory bandwidth
# and the model speeds come from the same run. Figures go to bench/RESULTS.md.
#
#   bench/run_models.sh [extra bench_models args, e.g. --dtypes f32 --decode 32]
#   bench/run_models.sh --models-only      (only write the models)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${QUIRE_BENCH_DIR:-/tmp/quire-bench}
mkdir -p "$out"
[ -f build/build.ninja ] || meson setup build
ninja -C build tools/mkmodel bench/bench_models >/dev/null

# SmolLM2-135M (HuggingFaceTB/SmolLM2-135M config.json, the fields a loader reads)
cat > "$out/smollm2-135m.config.json" <<'JSON'
{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
  "num_attention_heads": 9, "num_key_value_heads": 3, "attention_bias": false,
  "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000,
  "rope_scaling": null, "tie_word_embeddings": true, "vocab_size": 49152,
  "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16"
}
JSON
mk() { # name config [dtype]: skip when already there
    [ -f "$out/$1/model.safetensors" ] || ./build/tools/mkmodel --seed 1 ${3:+--dtype $3} "$2" "$out/$1"
}
mk minilm-l6 tests/fixtures/models/all-MiniLM-L6-v2-tokenizer/config.json
mk smollm2-135m "$out/smollm2-135m.config.json"
mk qwen2.5-0.5b tests/fixtures/models/qwen2.5-tokenizer/config.json
[ "${1:-}" = --models-only ] && exit 0

echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(git rev-parse --short HEAD)"
./build/bench/bench_models --encoder "$out/minilm-l6" \
    --decoder "SmolLM2-135M shape=$out/smollm2-135m" \
    --decoder "Qwen2.5-0.5B shape=$out/qwen2.5-0.5b" "$@"
