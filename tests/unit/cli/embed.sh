#!/usr/bin/env bash
# quire embed --jsonl on tests/fixtures/models/bert_minilm (random-weight BERT
# with the all-MiniLM structure; expected.json holds embeddings computed by
# tools/reference/ref_models.py in torch float64 for fixed token-id inputs).
# Texts are rebuilt from the fixture's token ids (WordPiece pieces joined);
# a case is used when `quire tokenize --add-special` maps its text back to
# exactly the fixture's ids. Each embedding must match the reference with
# cosine >= 0.99999 and max |diff| <= 1e-4, batched (--batch 4) or not.
# Also: malformed input, bad dtype, output format (%.9g round-trips f32).
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
M=$F/models/bert_minilm
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

python3 - "$M" "$T/texts.jsonl" "$T/ids.jsonl" <<'PY'
import json, sys
m = sys.argv[1]
e = json.load(open(m + "/expected.json"))
vocab = json.load(open(m + "/tokenizer.json"))["model"]["vocab"]
inv = {v: k for k, v in vocab.items()}
with open(sys.argv[2], "w") as ft, open(sys.argv[3], "w") as fi:
    for ids in e["inputs"]:
        words = []
        for i in ids[1:-1]:               # drop [CLS] ... [SEP]
            p = inv[i]
            if p.startswith("##") and words:
                words[-1] += p[2:]
            else:
                words.append(p)
        ft.write(json.dumps(" ".join(words)) + "\n")
        fi.write(json.dumps(ids) + "\n")
PY
"$Q" tokenize --model "$M" --add-special --jsonl < "$T/texts.jsonl" > "$T/tok.jsonl" 2>"$T/err" || bad "tokenize: $(cat "$T/err")"
for batch in 1 4; do
  if ! "$Q" embed --model "$M" --jsonl --batch "$batch" < "$T/texts.jsonl" > "$T/emb.jsonl" 2>"$T/err"; then
    bad "embed --batch $batch: $(cat "$T/err")"; continue
  fi
  python3 - "$M/expected.json" "$T/tok.jsonl" "$T/ids.jsonl" "$T/emb.jsonl" "$batch" <<'PY' && ok || bad "embed --batch $batch vs reference"
import json, math, struct, sys
e = json.load(open(sys.argv[1]))
tok = [json.loads(l) for l in open(sys.argv[2])]
ids = [json.loads(l) for l in open(sys.argv[3])]
lines = open(sys.argv[4]).read().splitlines()
emb = [json.loads(l) for l in lines]
assert len(emb) == len(ids), (len(emb), len(ids))
used, worst_cos, worst_abs = 0, 1.0, 0.0
for t, i, got, want in zip(tok, ids, emb, e["embeddings"]):
    assert len(got) == len(want)
    if t != i:
        continue                                  # text does not map back to the fixture ids
    used += 1
    dot = sum(a * b for a, b in zip(got, want))
    cos = dot / math.sqrt(sum(a * a for a in got) * sum(b * b for b in want))
    worst_cos = min(worst_cos, cos)
    worst_abs = max(worst_abs, max(abs(a - b) for a, b in zip(got, want)))
# %.9g: every printed number round-trips to the same float32
for l in lines[:2]:
    for s in l.strip("[]").split(", "):
        f32 = struct.unpack("f", struct.pack("f", float(s)))[0]
        assert "%.9g" % f32 == s, s
print(f"batch {sys.argv[5]}: {used}/{len(ids)} fixture inputs reachable from text; "
      f"min cosine {worst_cos:.9f}, max |diff| {worst_abs:.2e}")
sys.exit(0 if used >= 3 and worst_cos >= 0.99999 and worst_abs <= 1e-4 else 1)
PY
done
# the load line states the precision
out=$(printf '"rend"\n' | "$Q" embed --model "$M" --jsonl --dtype bf16 2>&1 >/dev/null)
grep -qE "weights f32 (→|->) bf16" <<<"$out" && ok || bad "load line: $out"

# the embedder option (here from the environment) stands in for --model
a=$(printf '"rend"\n' | "$Q" embed --model "$M" --jsonl 2>/dev/null)
b=$(printf '"rend"\n' | QUIRE_EMBEDDER="$M" "$Q" embed --jsonl 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "embedder fallback: [$a] vs [$b]"

expect() {
  local code=$1 needle=$2; shift 3
  local out rc; out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$code" ]; then bad "$* -> exit $rc, want $code: $out"; return; fi
  grep -qF -- "$needle" <<<"$out" && ok || bad "$* -> missing '$needle' in: $out"
}
printf '"rend"\n["rend"]\n' > "$T/bad1"; printf 'rend\n' > "$T/bad2"
expect 3 "stdin line 2: expected a JSON string" -- bash -c "\"$Q\" embed --model \"$M\" --jsonl < \"$T/bad1\""
expect 3 "stdin line 1" -- bash -c "\"$Q\" embed --model \"$M\" --jsonl < \"$T/bad2\""
expect 2 '"fp8" is not one of f32|bf16|f16|int8' -- bash -c "\"$Q\" embed --model \"$M\" --jsonl --dtype fp8 < /dev/null"
expect 2 "batch: 0 is below the minimum 1" -- bash -c "\"$Q\" embed --model \"$M\" --jsonl --batch 0 < /dev/null"
expect 4 "no-such-model" -- bash -c "\"$Q\" embed --model \"$T/no-such-model\" --jsonl < /dev/null"
expect 0 "usage: quire embed" -- "$Q" embed --help

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
