#!/usr/bin/env bash
# quire tokenize --jsonl on the vocab fixtures (tests/fixtures/models/vocab-fixtures): every test string of
# ggml-vocab-{llama-bpe,qwen2}.gguf.inp, written as one JSON string per line,
# must give the ids on the matching line of the .out file (reference ids from
# the Hugging Face tokenizers library), through the llama3 / qwen2.5
# tokenizer.json directories. Also: the whole-stdin mode, --add-special, and
# malformed input (exit 3 naming the line).
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

for pair in llama3-tokenizer:ggml-vocab-llama-bpe qwen2.5-tokenizer:ggml-vocab-qwen2; do
  dir=$F/models/${pair%%:*}; stem=$F/models/vocab-fixtures/${pair##*:}.gguf
  # .inp: each case followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per case
  python3 - "$stem.inp" "$stem.out" "$T/in.jsonl" "$T/want.jsonl" <<'PY'
import json, sys
inp = open(sys.argv[1], encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
out = open(sys.argv[2], encoding="utf-8").read().split("\n")[:len(inp)]
assert len(inp) == len(out) >= 40, (len(inp), len(out))
with open(sys.argv[3], "w") as f:
    for s in inp:
        f.write(json.dumps(s) + "\n")
with open(sys.argv[4], "w") as f:
    for line in out:
        f.write(json.dumps([int(x) for x in line.split()]) + "\n")
PY
  if ! "$Q" tokenize --model "$dir" --jsonl < "$T/in.jsonl" > "$T/got.jsonl" 2> "$T/err"; then
    bad "${pair}: quire tokenize failed: $(cat "$T/err")"; continue
  fi
  res=$(python3 - "$T/got.jsonl" "$T/want.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
want = [json.loads(l) for l in open(sys.argv[2])]
same = sum(g == w for g, w in zip(got, want))
print(f"{same} {len(want)} {len(got)}")
PY
)
  read -r same n ngot <<<"$res"
  echo "$pair: $same/$n cases identical ($ngot output lines)"
  [ "$same" = "$n" ] && [ "$ngot" = "$n" ] && ok || bad "$pair: $same/$n identical, $ngot lines"
done

# whole stdin is one text (no --jsonl): "Hello world" -> Qwen2 ids 9707 1879 (vocab fixture case)
got=$(printf 'Hello world' | "$Q" tokenize --model "$F/models/qwen2.5-tokenizer")
[ "$got" = "[9707, 1879]" ] && ok || bad "whole-stdin: $got"
# --add-special on Llama-3 adds <|begin_of_text|> = 128000 first
got=$(printf '"Hello world"\n' | "$Q" tokenize --model "$F/models/llama3-tokenizer" --jsonl --add-special)
[ "$got" = "[128000, 9906, 1917]" ] && ok || bad "add-special: $got"

# malformed input
expect() {
  local code=$1 needle=$2; shift 3
  local out rc; out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, want $code: $out"; return; fi
  grep -qF -- "$needle" <<<"$out" && ok || bad "$* -> missing '$needle' in: $out"
}
M=$F/models/qwen2.5-tokenizer
printf '"ok"\n{"text": 1}\n' > "$T/bad1"; printf '"ok"\n"unterminated\n' > "$T/bad2"
expect 3 "stdin line 2: expected a JSON string" -- bash -c "\"$Q\" tokenize --model \"$M\" --jsonl < \"$T/bad1\""
expect 3 "stdin line 2" -- bash -c "\"$Q\" tokenize --model \"$M\" --jsonl < \"$T/bad2\""
printf '"%0300d"\n' 0 > "$T/long"
expect 3 "longer than max-line-bytes = 100" -- bash -c "\"$Q\" tokenize --model \"$M\" --jsonl --max-line-bytes 100 < \"$T/long\""
printf '"a"\n"b"\n"c"\n' > "$T/three"
expect 3 "more than max-lines = 2" -- bash -c "\"$Q\" tokenize --model \"$M\" --jsonl --max-lines 2 < \"$T/three\""
expect 4 "/nonexistent/model" -- bash -c "\"$Q\" tokenize --model /nonexistent/model < /dev/null"
expect 2 "no model given" -- bash -c "\"$Q\" tokenize < /dev/null"
expect 2 "not an option of this command" -- "$Q" tokenize --model "$M" --temperature 0
expect 0 "usage: quire tokenize" -- "$Q" tokenize --help

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
