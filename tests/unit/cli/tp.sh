#!/usr/bin/env bash
# quire generate --tp N --device cpu (in-process tensor-parallel ranks) on
# stories260K (8 heads, 4 KV heads, FFN 172): TP 2 and 4 reproduce the
# 60-step greedy reference ids exactly and --tp auto on the CPU is one rank;
# TP 8 (FFN 172 is not divisible by 8) and TP 3 exit 5 naming the counts;
# bad --tp values exit 2.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
M=$F/models/stories260K/stories260K.gguf
REF=$F/models/stories260K/greedy_from_bos_60.ref.txt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
want_ids=$(sed -n 1p "$REF" | tr -d ' ')

for tp in 2 4 auto; do
  if "$Q" generate --model "$M" --prompt "" --temperature 0 --max-tokens 60 --ids --device cpu --tp $tp \
      > "$T/out" 2> "$T/err"; then
    got=$(tail -n 1 "$T/out" | tr -d ' ')
    [ "$got" = "$want_ids" ] && ok || bad "--tp $tp: ids differ:\n got  $got\n want $want_ids"
    if [ $tp = auto ]; then
      grep -q "tensor-parallel rank" "$T/err" && bad "--tp auto on the CPU split the model: $(cat "$T/err")" || ok
    else
      [ "$(grep -c "tensor-parallel rank [0-9]* of $tp on the CPU" "$T/err")" = $tp ] && ok \
        || bad "--tp $tp: no per-rank load lines: $(cat "$T/err")"
    fi
  else
    bad "--tp $tp failed: $(cat "$T/err")"
  fi
done

for tp in 8 3; do
  "$Q" generate --model "$M" --prompt "" --max-tokens 4 --device cpu --tp $tp > /dev/null 2> "$T/err"; rc=$?
  [ $rc = 5 ] && grep -q "cannot shard llama over $tp ranks.*heads (8) and FFN size (172)" "$T/err" && ok \
    || bad "--tp $tp: rc $rc, $(cat "$T/err")"
done

for v in 0 65 two -1; do
  "$Q" generate --model "$M" --prompt "" --max-tokens 4 --device cpu --tp "$v" > /dev/null 2> "$T/err"; rc=$?
  [ $rc = 2 ] && grep -q "tp" "$T/err" && ok || bad "--tp $v: rc $rc, $(cat "$T/err")"
done

echo "cli_tp: $passes passed, $fails failed"
[ $fails = 0 ]
