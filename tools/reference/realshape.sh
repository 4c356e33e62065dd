#!/usr/bin/env bash
# Parity at real model sizes: random-weight SmolLM2-135M, Qwen2.5-0.5B and
# all-MiniLM-L6-v2 shapes (written by tools/mkmodel, as bench/run_models.sh does),
# quire's outputs (dump_logits) vs the torch float64 reference (realshape.py).
# Needs /usr/bin/python3 with numpy + torch and ~8 GB of memory for Qwen2.5-0.5B.
#
#   tools/reference/realshape.sh [DTYPE...]      (default: f32 bf16 int8)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${QUIRE_BENCH_DIR:-/tmp/quire-bench}
dtypes=${*:-f32 bf16 int8}
ninja -C build tools/mkmodel tools/dump_logits >/dev/null
bash bench/run_models.sh --models-only
py=/usr/bin/python3
dec="1,2023,517,11,9906,30,88,4410,1234,40000,77,5,600,31000,12,999"
enc1="101,7592,2088,1010,2023,2003,1037,3231,102"
enc2="101,$(seq -s, 2000 2060),102"
enc3="101,2023,102"
for dt in $dtypes; do
  echo "== $dt"
  for m in smollm2-135m qwen2.5-0.5b; do
    ./build/tools/dump_logits "$out/$m" "$dt" "$out/$m.$dt.f32" "$dec"
    $py tools/reference/realshape.py "$out/$m" "$out/$m.$dt.f32" "$dec"
  done
  ./build/tools/dump_logits "$out/minilm-l6" "$dt" "$out/minilm-l6.$dt.f32" "$enc1" "$enc2" "$enc3"
  $py tools/reference/realshape.py "$out/minilm-l6" "$out/minilm-l6.$dt.f32" "$enc1" "$enc2" "$enc3"
done
