#!/usr/bin/env bash
# quire eval perplexity against an independent reference: tests/unit/cli/perplexity_ref.py
# computes llama.cpp's perplexity (chunks of --ctx tokens, second half scored, exp(mean NLL)
# and its +/-) with Hugging Face transformers from the same GGUF (SmolLM2-135M-Instruct Q4_1,
# dequantized to float32 by transformers' loader) on tests/fixtures/perplexity/tides.txt at
# ctx 128 (the first 3 of its 6 chunks). quire --dtype f32 must give the same token count, chunks and scored positions, ppl
# within 1e-4 relative, the +/- within 1e-3 relative, every running (per-chunk) ppl within 1e-4,
# and the top-1 accuracy within one position (arg-max near-ties). Also: --compare-dtype f32
# against itself (in the same run) gives agreement 1 and KL 0; bad input gives the documented exit codes with
# messages naming the file or the limit.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
M=${QUIRE_MODELS:-$HOME/.cache/quire/models}/SmolLM2-135M-Instruct-Q4_1.gguf
PY=${QUIRE_PYTHON:-}
TXT=$F/perplexity/tides.txt
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$M" ] || { echo "SKIP: $M absent: run tools/models.sh"; exit 77; }
[ -n "$PY" ] && [ -x "$PY" ] || { echo "SKIP: no QUIRE_PYTHON: run tools/pydeps.sh"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

# the reference in the background while quire computes its side
"$PY" "$HERE/perplexity_ref.py" "$M" "$TXT" 128 "$T/ref.json" 3 > "$T/ref.out" 2>&1 &
ref_pid=$!
if ! "$Q" eval perplexity "$TXT" --model "$M" --ctx 128 --chunks 3 --dtype f32 --compare-dtype f32 --threads 2 --json > "$T/q.json" 2> "$T/q.err"; then
  bad "quire eval perplexity failed: $(cat "$T/q.err")"
fi
wait "$ref_pid"; rrc=$?
if [ "$rrc" = 77 ]; then cat "$T/ref.out"; exit 77; fi
if [ "$rrc" != 0 ]; then
  bad "reference failed ($rrc): $(tail -n 20 "$T/ref.out")"
elif [ -s "$T/q.json" ]; then
  if out=$("$PY" - "$T/q.json" "$T/ref.json" <<'EOF'
import json, sys
q, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print("quire ppl %.6f +/- %.6f top-1 %.4f | reference ppl %.6f +/- %.6f top-1 %.4f | %d tokens, %d chunks, %d scored"
      % (q["ppl"], q["ppl_err"], q["top1"], r["ppl"], r["ppl_err"], r["top1"], r["tokens"], r["chunks"], r["scored"]))
errs = []
for k in ("tokens", "chunks", "scored", "bos"):
    if q[k] != r[k]:
        errs.append("%s: quire %r, reference %r" % (k, q[k], r[k]))
rel = abs(q["ppl"] / r["ppl"] - 1)
print("ppl relative difference %.3g" % rel)
if rel > 1e-4:
    errs.append("ppl relative difference %.3g > 1e-4" % rel)
if abs(q["ppl_err"] / r["ppl_err"] - 1) > 1e-3:
    errs.append("ppl_err %.6f vs %.6f" % (q["ppl_err"], r["ppl_err"]))
if len(q["running_ppl"]) != len(r["running_ppl"]) or any(
        abs(a / b - 1) > 1e-4 for a, b in zip(q["running_ppl"], r["running_ppl"])):
    errs.append("running ppl %r vs %r" % (q["running_ppl"], r["running_ppl"]))
if abs(q["top1"] - r["top1"]) * r["scored"] > 1.0 + 1e-9:
    errs.append("top-1 %.4f vs %.4f (more than one position apart)" % (q["top1"], r["top1"]))
# the --compare-dtype f32 run beside it: the same logits, so agreement 1, KL 0, the same ppl
c = q["compare"]
if not (c["top1_agreement"] == 1.0 and c["kl_mean"] == 0.0 and c["ppl"] == q["ppl"] and c["top1"] == q["top1"]):
    errs.append("--compare-dtype f32 against f32: %r" % c)
for e in errs:
    print("MISMATCH " + e)
sys.exit(1 if errs else 0)
EOF
  ); then ok; echo "$out"; else bad "$out"; fi
fi

# bad input: exit code and a message naming the file or the limit
expect() { # code pattern args...
  local want=$1 pat=$2; shift 2
  "$Q" eval perplexity "$@" > /dev/null 2> "$T/e.err"; local rc=$?
  [ "$rc" = "$want" ] && grep -q -- "$pat" "$T/e.err" && ok || bad "eval perplexity $*: rc $rc (want $want), stderr: $(cat "$T/e.err")"
}
expect 4 "$T/missing.txt" "$T/missing.txt" --model "$M"
expect 3 "max-file-bytes 100" "$TXT" --model "$M" --max-file-bytes 100
head -c 400 "$TXT" > "$T/short.txt"
expect 3 "short.txt: .* tokens; a context of 128 needs at least 256" "$T/short.txt" --model "$M" --ctx 128
expect 2 "ctx 100000: outside" "$TXT" --model "$M" --ctx 100000
expect 2 "exactly one text FILE" --model "$M"
expect 2 "compare-dtype int3" "$TXT" --model "$M" --compare-dtype int3

echo "perplexity: $passes passed, $fails failed"
[ "$fails" = 0 ]
