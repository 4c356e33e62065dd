#!/usr/bin/env bash
# quire estimate on tests/fixtures/models/qwen2.5-tokenizer (config.json, no weight
# files: sizes must come from the config alone) and on stories260K.gguf (GGUF
# tensor headers). The expected numbers are computed here, independently, from
# the config values with the accounting documented in cli/estimate.c and
# README.md, written out in Python below.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

QW=$F/models/qwen2.5-tokenizer
check() { # check LABEL MODEL_DIR_OR_FILE PYTHON_CONFIG_EXPR -- quire estimate args...
  local label=$1 model=$2 cfg=$3; shift 4
  if ! "$Q" estimate --model "$model" --json "$@" > "$T/got.json" 2> "$T/err"; then
    bad "$label: quire estimate failed: $(cat "$T/err")"; return
  fi
  if python3 - "$T/got.json" "$cfg" "$@" <<'PY'; then ok; else bad "$label"; fi
import json, math, sys
got = json.load(open(sys.argv[1]))
cfg = eval(sys.argv[2])          # dict of the model's sizes (read from config.json by the caller)
args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
dtype = args.get("--dtype", "f32"); kvd = args.get("--kv-dtype", "f32")
ctx = int(args.get("--ctx", 4096)); B = int(args.get("--batch", 1)); N = int(args.get("--tp", args.get("--gpus", 1)))  # --gpus: the deprecated name of --tp
head = float(args.get("--headroom", 10))
d, L, H, KV, ff, V = cfg["d"], cfg["L"], cfg["H"], cfg["KV"], cfg["ff"], cfg["V"]
hd = d // H
bert = cfg.get("bert", False)
# matrices (rows, cols) per kind
mat, kvm, emb, vec = [], [], [(V, d)], []   # the token table at --dtype, as the matmuls
if bert:   # BERT: word embeddings; position/token-type tables f32; post-LN layers with biases, no pooler
    vec += [cfg["P"] * d, cfg["TV"] * d, 2 * d]
    for _ in range(L):
        mat += [(d, d), (d, d), (ff, d), (d, ff)]
        kvm += [(d, d), (d, d)]
        vec += [3 * d + d + ff + d, 4 * d]
for _ in range(0 if bert else L):
    mat += [(H * hd, d), (d, H * hd), (ff, d), (ff, d), (d, ff)]
    kvm += [(KV * hd, d), (KV * hd, d)]
    vec += [2 * d] + ([H * hd + 2 * KV * hd] if cfg["bias"] else [])
vec += [] if bert else [d]
if not cfg["tied"] and not bert:
    mat.append((V, d))
def wbytes(ms):   # matmul weights at --dtype; int8 adds one f32 scale per output row
    e = sum(r * c for r, c in ms); rows = sum(r for r, c in ms)
    return {"f32": 4 * e, "bf16": 2 * e, "f16": 2 * e, "int8": e + 4 * rows}[dtype]
w_mat, w_kv, w_emb = wbytes(mat), wbytes(kvm), wbytes(emb)
w_vec = 4 * sum(vec)
kvl = KV // N if KV % N == 0 else 1
weights = w_mat + w_kv + w_emb + w_vec
# int8 row scales of the column-split Wo and Wd (d rows each per layer): every rank holds all d rows
cs = 4 * 2 * L * d if N > 1 and not bert and dtype == "int8" else 0
weights_g = -(-(w_mat - cs) // N) + cs + w_kv * kvl // KV + -(-w_emb // N) + w_vec
if N > 1 and not bert:
    # as runtime/models/arch.c splits a decoder: q/k/v biases go with their heads (q 1/N, k/v like
    # the KV heads), and each rank's embedding slice has one zero row (ids of other ranks read it)
    if cfg["bias"]:
        weights_g -= 4 * L * ((H * hd + 2 * KV * hd) - (H * hd // N + 2 * kvl * hd))
    weights_g += wbytes([(1, d)])   # that zero row, at the table's type
kvb = 4 if kvd == "f32" else 2
kv = 0 if bert else 2 * L * ctx * B * KV * hd * kvb      # encoders keep no KV cache
kv_g = 0 if bert else 2 * L * ctx * B * kvl * hd * kvb
ntok = B * ctx
if bert:   # one encoder pass of batch x ctx tokens: hidden + residual, q + attention out, k + v, 2 ff
    ws = 4 * ntok * (2 * d + 2 * H * hd + 2 * KV * hd + 2 * ff)
    ws_g = 4 * ntok * (2 * d + 2 * H * hd // N + 2 * kvl * hd + 2 * ff // N)
else:      # decoder step buffers (decoder.c): prompts go 512 tokens a step, beside B - 1 decode tokens;
           # x, h, o (3 d), q + att, k + v, gate + up per token; per sequence a last row and f32 logits
    T = min(ntok, 512 + B - 1)
    ws = 4 * (T * (3 * d + 2 * H * hd + 2 * KV * hd + 2 * ff) + B * (d + V))
    ws_g = 4 * (T * (3 * d + 2 * H * hd // N + 2 * kvl * hd + 2 * ff // N) + B * (d + -(-V // N)))
params = sum(r * c for r, c in mat + kvm + emb) + sum(vec)
want = {"weights": weights, "kv_cache": kv, "workspace": ws, "total": weights + kv + ws}
want_g = {"weights": weights_g, "kv_cache": kv_g, "workspace": ws_g, "total": weights_g + kv_g + ws_g}
fits = {str(s): want_g["total"] <= s * 2**30 * (1 - head / 100) for s in (16, 24, 40, 48, 80, 141)}
errs = []
if got["params"] != params: errs.append(f"params {got['params']} != {params}")
for k in want:
    if got["bytes"][k] != want[k]: errs.append(f"{k} {got['bytes'][k]} != {want[k]}")
    if got["per_gpu"][k] != want_g[k]: errs.append(f"per-GPU {k} {got['per_gpu'][k]} != {want_g[k]}")
if got["fits_gib"] != fits: errs.append(f"fits {got['fits_gib']} != {fits}")
if got["dtype"] != dtype or got["tp"] != N or got["gpus"] != N: errs.append("echoed settings")
print(f"{' '.join(sys.argv[3:])}: total {got['bytes']['total']/2**30:.3f} GiB, per GPU {got['per_gpu']['total']/2**30:.3f} GiB"
      + (" OK" if not errs else " MISMATCH: " + "; ".join(errs)))
sys.exit(1 if errs else 0)
PY
}

# Qwen2.5-0.5B from its config.json (read here by Python, not by quire)
QCFG=$(python3 -c "
import json; c = json.load(open('$QW/config.json'))
print(repr(dict(d=c['hidden_size'], L=c['num_hidden_layers'], H=c['num_attention_heads'],
  KV=c['num_key_value_heads'], ff=c['intermediate_size'], V=c['vocab_size'],
  tied=c['tie_word_embeddings'], bias=c['model_type'] == 'qwen2')))")
check qwen-f32 "$QW" "$QCFG" -- --dtype f32
check qwen-bf16 "$QW" "$QCFG" -- --dtype bf16 --ctx 32768
check qwen-int8 "$QW" "$QCFG" -- --dtype int8 --ctx 8192 --batch 4
check qwen-f16-tp2 "$QW" "$QCFG" -- --dtype f16 --tp 2 --kv-dtype bf16
check qwen-int8-tp2-b16 "$QW" "$QCFG" -- --dtype int8 --tp 2 --ctx 32768 --batch 16 --headroom 5
check qwen-bf16-big "$QW" "$QCFG" -- --dtype bf16 --ctx 131072 --batch 64
# stories260K: sizes from the GGUF tensor headers; the expected side uses the
# published shape (models/README.md): dim 64, 5 layers, 8 heads / 4 KV heads,
# FFN 172, vocab 512, separate output.weight, no biases
SCFG="dict(d=64, L=5, H=8, KV=4, ff=172, V=512, tied=False, bias=False)"
check stories-f32 "$F/models/stories260K/stories260K.gguf" "$SCFG" -- --dtype f32 --ctx 256
check stories-int8-tp4 "$F/models/stories260K/stories260K.gguf" "$SCFG" -- --dtype int8 --ctx 256 --tp 4
check stories-bf16-tp2 "$F/models/stories260K/stories260K.gguf" "$SCFG" -- --dtype bf16 --ctx 512 --gpus 2  # the deprecated name of --tp

# BERT (all-MiniLM-L6-v2): config only (the tokenizer directory copied from ../shared), and
# tensor headers of the random-weight fixture with the same structure
bcfg() { python3 -c "
import json; c = json.load(open('$1/config.json'))
print(repr(dict(d=c['hidden_size'], L=c['num_hidden_layers'], H=c['num_attention_heads'],
  KV=c['num_attention_heads'], ff=c['intermediate_size'], V=c['vocab_size'], P=c['max_position_embeddings'],
  TV=c['type_vocab_size'], tied=False, bias=True, bert=True)))"; }
MINI=$F/models/all-MiniLM-L6-v2-tokenizer
check minilm-f32 "$MINI" "$(bcfg "$MINI")" -- --dtype f32 --ctx 256 --batch 32
check minilm-int8-tp2 "$MINI" "$(bcfg "$MINI")" -- --dtype int8 --ctx 128 --batch 8 --tp 2
BF=$F/models/bert_minilm
check bert-fixture-bf16 "$BF" "$(bcfg "$BF")" -- --dtype bf16 --ctx 64 --batch 4

# --dtype as-stored / q8_0 on the real SmolLM2 Q4_1 GGUF: bytes by type against the
# tensor types and byte counts the `gguf` package reads from the file (1-D tensors
# are loaded f32; q8_0: 34 bytes per 32 values, every row here is whole blocks)
SM=${QUIRE_MODELS:-/nonexistent}/SmolLM2-135M-Instruct-Q4_1.gguf
PY=${QUIRE_PYTHON:-}
if [ -f "$SM" ] && [ -n "$PY" ] && "$PY" -c "import gguf" 2>/dev/null; then
  if "$Q" estimate --model "$SM" --dtype as-stored --json > "$T/as-stored.json" 2> "$T/err" &&
     "$Q" estimate --model "$SM" --dtype q8_0 --json > "$T/q8_0.json" 2>> "$T/err" &&
     "$PY" - "$SM" "$T" <<'PY'; then ok; else bad "smollm as-stored/q8_0: $(cat "$T/err")"; fi
import json, sys
import numpy as np
from gguf import GGUFReader
tensors = GGUFReader(sys.argv[1]).tensors
for dt in ("as-stored", "q8_0"):
    got = json.load(open(f"{sys.argv[2]}/{dt}.json"))
    want = {}
    for t in tensors:
        n = int(np.prod(t.shape))
        if len(t.shape) < 2 or min(t.shape) == 1:
            key, b = "f32", 4 * n
        elif dt == "q8_0":
            key, b = "q8_0", n // 32 * 34
        else:
            key, b = t.tensor_type.name.lower(), int(t.n_bytes)
        want[key] = want.get(key, 0) + b
    if got.get("bytes_by_type") != want or got["bytes"]["weights"] != sum(want.values()):
        print(dt, "got", got.get("bytes_by_type"), got["bytes"]["weights"], "want", want, file=sys.stderr)
        sys.exit(1)
PY
else
  echo "SKIP (part): SmolLM2 as-stored estimate: run tools/models.sh and tools/pydeps.sh"
fi

# text output names the parts and the GPU sizes
out=$("$Q" estimate --model "$QW" --dtype bf16 2>&1)
for w in "weights" "kv cache" "workspace" "total" "config (no weight files found)" "141 GB yes" "16 GB yes" \
         "peak resident on the CPU" "code and libraries "; do
  grep -qF "$w" <<<"$out" && ok || bad "text output lacks '$w': $out"
done
# 14 heads do not split over 4 GPUs
out=$("$Q" estimate --model "$QW" --dtype bf16 --tp 4 2>&1); rc=$?
[ $rc = 5 ] && grep -qF "heads (14)" <<<"$out" && grep -qF "flag --tp" <<<"$out" && ok || bad "tp 4: exit $rc: $out"
# the deprecated name: same figures (check above, stories-bf16-tp2), a warning naming the new one;
# also as QUIRE_GPUS and as a config key
out=$("$Q" estimate --model "$QW" --dtype bf16 --gpus 4 2>&1); rc=$?
[ $rc = 5 ] && grep -qF "heads (14)" <<<"$out" && grep -qF '"gpus" is deprecated' <<<"$out" && ok ||
  bad "gpus 4: exit $rc: $out"
# the JSON less "process": its tokenizer bytes are measured (resident memory) and vary by a page
nomeasure() { python3 -c "import json, sys; j = json.load(sys.stdin); j.pop('process'); print(json.dumps(j, sort_keys=True))"; }
a=$("$Q" estimate --model "$QW" --dtype bf16 --tp 2 --json 2>/dev/null | nomeasure)
b=$(QUIRE_GPUS=2 "$Q" estimate --model "$QW" --dtype bf16 --json 2>/dev/null | nomeasure)
printf 'gpus = 2\n' > "$T/old.conf"
c=$("$Q" estimate --config "$T/old.conf" --model "$QW" --dtype bf16 --json 2>/dev/null | nomeasure)
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && grep -qF '"tp": 2' <<<"$a" && ok || bad "QUIRE_GPUS / gpus key: $b $c"
# --tp auto: every visible GPU; none or one here (CI has none): the figures of --tp 1
if [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -le 1 ]; then
  a=$("$Q" estimate --model "$QW" --dtype bf16 --tp auto --json 2>/dev/null | nomeasure)
  b=$("$Q" estimate --model "$QW" --dtype bf16 --tp 1 --json 2>/dev/null | nomeasure)
  [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "--tp auto without GPUs: $a"
fi
out=$("$Q" estimate --model "$QW" --dtype int4 2>&1); rc=$?
[ $rc = 2 ] && grep -qF '"int4" is not one of f32|bf16|f16|int8' <<<"$out" && ok || bad "bad dtype: exit $rc: $out"
out=$("$Q" estimate --model "$T/nothing-here" 2>&1); rc=$?
[ $rc = 4 ] && ok || bad "missing model: exit $rc: $out"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
