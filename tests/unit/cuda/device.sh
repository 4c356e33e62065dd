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
  n=$(grep -c "^quire embed: GPU cuda:" "$T/auto.err")
  out=$(emb --device "cuda:$n" 2>&1 >/dev/null); rc=$?
  [ $rc = 5 ] && grep -qF "no such usable CUDA device" <<<"$out" && ok || bad "cuda:$n of $n GPUs: $rc $out"
fi
# bad values are usage errors whatever the build
out=$(emb --device cuda:x 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && ok || bad "cuda:x: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
