#!/usr/bin/env bash
# quire generate on tests/fixtures/models/stories260K/stories260K.gguf: a 60-step
# greedy decode from BOS (empty prompt) must reproduce the reference ids in
# greedy_from_bos_60.ref.txt (line 1) and its text (line 2). Also: the load
# line states the precision, --dtype is honoured, stop strings, limits and
# bad arguments give the documented exit codes.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
M=$F/models/stories260K/stories260K.gguf
REF=$F/models/stories260K/greedy_from_bos_60.ref.txt
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

if ! "$Q" generate --model "$M" --prompt "" --temperature 0 --max-tokens 60 --ids > "$T/out" 2> "$T/err"; then
  bad "generate failed: $(cat "$T/err")"
else
  want_ids=$(sed -n 1p "$REF" | tr -d ' ')
  got_ids=$(tail -n 1 "$T/out" | tr -d ' ')
  [ "$got_ids" = "$want_ids" ] && ok || bad "ids differ:\n got  $got_ids\n want $want_ids"
  # text: everything before the ids line; the reference text starts with a space
  got_text=$(head -n -1 "$T/out")
  want_text=$(sed -n 2p "$REF")
  [ "$(echo "$got_text" | sed 's/^ *//')" = "$(echo "$want_text" | sed 's/^ *//')" ] && ok \
    || bad "text differs:\n got  [$got_text]\n want [$want_text]"
  grep -qE "weights f32 (→|->) f32" "$T/err" && ok || bad "load line without precision: $(cat "$T/err")"
  echo "greedy 60 from BOS: $(tail -n 1 "$T/out" | head -c 60)..."
fi

# --json: the same greedy ids and text as one object, nothing streamed before it
if "$Q" generate --model "$M" --prompt "" --temperature 0 --max-tokens 60 --json > "$T/json" 2>/dev/null; then
  got=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(json.dumps(j["ids"]).replace(" ","")); print(j["finish"], j["prompt_tokens"], j["completion_tokens"]); print(j["text"].strip())' "$T/json")
  [ "$(sed -n 1p <<<"$got")" = "$(sed -n 1p "$REF" | tr -d ' ')" ] && ok || bad "--json ids: $got"
  [ "$(sed -n 2p <<<"$got")" = "length 1 60" ] && ok || bad "--json counts: $got"
  [ "$(sed -n 3p <<<"$got")" = "$(sed -n 2p "$REF" | sed 's/^ *//')" ] && ok || bad "--json text: $got"
  [ "$(wc -l < "$T/json")" = 1 ] && ok || bad "--json printed more than one line"
else
  bad "generate --json failed"
fi

# explicit dtype appears in the load line; bf16 weights still produce a story
out=$("$Q" generate --model "$M" --prompt "Once upon" --temperature 0 --max-tokens 8 --dtype bf16 2>&1 >/dev/null)
grep -qE "weights f32 (→|->) bf16" <<<"$out" && grep -qF "flag --dtype" <<<"$out" && ok || bad "bf16 load line: $out"
# a stop string ends the completion before it ("Lily" is in the greedy story)
out=$("$Q" generate --model "$M" --prompt "" --temperature 0 --max-tokens 60 --stop "Lily" --ids 2>/dev/null)
text=$(head -n 1 <<<"$out")
case "$text" in *"named"*) ! grep -q Lily <<<"$text" && ok || bad "stop string kept: $text";; *) bad "stop: $text";; esac
# --max-tokens bounds
out=$("$Q" generate --model "$M" --prompt x --max-tokens 0 2>&1); rc=$?
[ $rc = 2 ] && grep -qF "max-tokens: 0 is below the minimum 1" <<<"$out" && ok || bad "max-tokens 0: $rc $out"
out=$("$Q" generate --model "$M" --prompt x --max-tokens 100 --ctx 50 2>&1); rc=$?
[ $rc = 2 ] && grep -qF "exceed ctx = 50" <<<"$out" && ok || bad "ctx limit: $rc $out"
out=$("$Q" generate --model "$M" --prompt x --dtype q4 2>&1); rc=$?
[ $rc = 2 ] && grep -qF "not one of f32|bf16|f16|int8" <<<"$out" && ok || bad "bad dtype: $rc $out"
out=$("$Q" generate --model "$T/missing.gguf" --prompt x 2>&1); rc=$?
[ $rc = 4 ] && grep -qF "missing.gguf" <<<"$out" && ok || bad "missing model: $rc $out"
out=$("$Q" generate --model "$M" --prompt x --device cuda:0 2>&1); rc=$?
# exit 5 when this build has no CUDA or this machine no usable GPU (tests/unit/cuda covers the GPU case)
[ $rc = 5 ] && grep -qE "without the CUDA backend|no usable CUDA device" <<<"$out" && ok ||
  grep -q "GPU cuda:0" <<<"$out" && ok || bad "cuda: $rc $out"
printf 'not a model' > "$T/bad.gguf"
out=$("$Q" generate --model "$T/bad.gguf" --prompt x 2>&1); rc=$?
[ $rc != 0 ] && [ $rc -lt 128 ] && grep -qF "bad.gguf" <<<"$out" && ok || bad "corrupt model: $rc $out"

out=$("$Q" generate --help 2>&1); rc=$?
[ $rc = 0 ] && grep -qF -- "--max-tokens N" <<<"$out" && grep -qF "default 256" <<<"$out" && ok || bad "help: $rc $out"
out=$("$Q" estimate --help 2>&1); rc=$?
[ $rc = 0 ] && grep -qF -- "--tp N|auto" <<<"$out" && ok || bad "estimate help: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
