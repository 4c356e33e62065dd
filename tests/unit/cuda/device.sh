#!/usr/bin/env bash
# --device auto|cpu|cuda[:N] through `quire embed` on the MiniLM-shaped fixture,
# in whichever case this machine is (argument 1: 1 if the build has CUDA):
# - built without CUDA: cuda* exits 5 saying so; auto runs on the CPU quietly;
# - built with CUDA, no usable GPU (this dev machine and CI): auto runs on the
#   CPU with exactly ONE line saying why (CUDA's own message), with the same
#   output as --device cpu; cuda, cuda:0 and QUIRE_DEVICE=cuda exit 5 with the
#   reason;
# - GPUs present: auto lists them (one line each) and says which it uses.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
BUILT=${1:?}
M=$F/models/bert_minilm
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
emb() { printf '"rend"\n' | "$Q" embed --model "$M" --jsonl "$@"; }

emb --device cpu >"$T/cpu.out" 2>"$T/cpu.err"; rc=$?
[ $rc = 0 ] && [ -s "$T/cpu.out" ] && ! grep -q "device" "$T/cpu.err" && ok || bad "cpu: $rc $(cat "$T/cpu.err")"
emb --device auto >"$T/auto.out" 2>"$T/auto.err"; rc=$?
gpu=0; grep -q "^quire embed: GPU cuda:" "$T/auto.err" && gpu=1

if [ "$BUILT" = 0 ]; then
  [ $rc = 0 ] && cmp -s "$T/cpu.out" "$T/auto.out" && [ "$(grep -c "device" "$T/auto.err")" = 1 ] &&
    grep -qF "this build has only the CPU backend" "$T/auto.err" && ok || bad "auto, not built: $rc $(cat "$T/auto.err")"
  for d in cuda cuda:0; do
    out=$(emb --device $d 2>&1 >/dev/null); rc=$?
    [ $rc = 5 ] && grep -qF "built without the CUDA backend" <<<"$out" && ok || bad "$d, not built: $rc $out"
  done
elif [ $gpu = 0 ]; then
  # the one line (no other line about devices or GPUs), and the CPU's answer
  lines=$(grep -ciE "device|gpu" "$T/auto.err")
  [ $rc = 0 ] && cmp -s "$T/cpu.out" "$T/auto.out" && ok || bad "auto, no GPU: rc $rc or output differs from cpu"
  [ "$lines" = 1 ] && grep -qE "^quire: warning: device auto: no usable GPU \(.+\([0-9]+\)\); running on the CPU$" \
    "$T/auto.err" && ok || bad "auto, no GPU: expected one line saying why, got: $(cat "$T/auto.err")"
  grep -qE "cudaGetDeviceCount|device [0-9]+:" "$T/auto.err" && ok || bad "auto: reason lacks the CUDA call"
  for d in cuda cuda:0 cuda:3; do
    out=$(emb --device $d 2>&1 >/dev/null); rc=$?
    [ $rc = 5 ] && grep -qF "quire embed: device $d (" <<<"$out" && grep -qF "no usable CUDA device: " <<<"$out" \
      && [ "$(wc -l <<<"$out")" = 1 ] && ok || bad "$d, no GPU: $rc $out"
  done
  out=$(printf '"rend"\n' | QUIRE_DEVICE=cuda "$Q" embed --model "$M" --jsonl 2>&1 >/dev/null); rc=$?
  [ $rc = 5 ] && grep -qF "QUIRE_DEVICE" <<<"$out" && ok || bad "QUIRE_DEVICE=cuda, no GPU: $rc $out"
  # generate (a decoder) takes the same path
  out=$("$Q" generate --model "$F/models/llama3" --prompt x --max-tokens 1 --device cuda 2>&1 >/dev/null); rc=$?
  [ $rc = 5 ] && grep -qF "no usable CUDA device" <<<"$out" && ok || bad "generate --device cuda, no GPU: $rc $out"
else
  echo "GPU present:"; cat "$T/auto.err"
  grep -qF " used" "$T/auto.err" && ok || bad "auto with GPU: no line says which GPU is used"
  grep -qF "holds weights" "$T/auto.err" && ok || bad "auto with GPU: no line says what the GPU holds"
  # the embedding on the GPU (f32) is the CPU's within f32 rounding
  [ $rc = 0 ] && python3 - "$T/cpu.out" "$T/auto.out" <<'PY' && ok || bad "auto with GPU: embedding differs from cpu"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and all(len(x) == len(y) for x, y in zip(a, b))
d = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x, y))
print("max |gpu - cpu| =", d)
sys.exit(0 if d <= 1e-4 else 1)
PY
  n=$(grep -c "^quire embed: GPU cuda:" "$T/auto.err")
  out=$(emb --device "cuda:$n" 2>&1 >/dev/null); rc=$?
  [ $rc = 5 ] && grep -qF "no such usable CUDA device" <<<"$out" && ok || bad "cuda:$n of $n GPUs: $rc $out"
fi
# act-dtype (config file / QUIRE_ACT_DTYPE): bf16 activations on a GPU, nothing on the CPU
out=$(printf '"rend"\n' | QUIRE_ACT_DTYPE=bf16 "$Q" embed --model "$M" --jsonl --device auto 2>"$T/bf.err" >"$T/bf.out"); rc=$?
if [ $gpu = 0 ]; then
  [ $rc = 0 ] && cmp -s "$T/cpu.out" "$T/bf.out" && ok || bad "act-dtype bf16 on the CPU: $rc $(cat "$T/bf.err")"
else
  [ $rc = 0 ] && python3 - "$T/cpu.out" "$T/bf.out" <<'PY' && ok || bad "act-dtype bf16 on the GPU: $rc $(cat "$T/bf.err")"
import json, math, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
for x, y in zip(a, b):
    cos = sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
    print("bf16 activations: cosine to cpu", cos)
    assert cos >= 0.999
PY
fi
out=$(printf '"rend"\n' | QUIRE_ACT_DTYPE=f16 "$Q" embed --model "$M" --jsonl 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && grep -qF "act-dtype" <<<"$out" && ok || bad "act-dtype f16: $rc $out"
# bad values are usage errors whatever the build
out=$(emb --device cuda:x 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && ok || bad "cuda:x: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
