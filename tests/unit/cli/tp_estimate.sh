#!/usr/bin/env bash
# quire estimate --tp N's per-GPU weight bytes equal what a real tensor-parallel
# load holds per rank: `quire generate --tp N --device cpu` prints each rank's
# measured weight bytes (qr_model_rank_weight_bytes, the backend tensors it
# loaded); every rank must hold at most the estimate and the largest exactly
# it. Structure fixtures (llama3, mistral, qwen2-tp with q/k/v biases and tied
# embeddings; TP 4 replicates KV heads) and stories260K (GGUF), at f32, bf16 and
# int8 (the token table and its zero row at --dtype, int8 with its row scales); a split
# the rule refuses (stories260K's FFN 172 over 8) is refused by both (exit 5).
# Each rank's line also gives its KV cache for one sequence of --ctx positions:
# equal (to the 3 digits printed) to estimate's per-GPU KV cache at --ctx 64,
# --kv-dtype f32 (the CPU keeps f32 KV), batch 1.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

check() { # check MODEL N [DTYPE]
  local m=$1 n=$2 dt=${3:-f32}
  if ! "$Q" estimate --model "$m" --dtype "$dt" --tp "$n" --ctx 64 --kv-dtype f32 --json > "$T/est.json" 2> "$T/err"; then
    bad "$m tp $n $dt: estimate: $(cat "$T/err")"; return
  fi
  if ! "$Q" generate --model "$m" --device cpu --tp "$n" --dtype "$dt" --ctx 64 --ids --prompt "1 2 3" --max-tokens 1 \
       --temperature 0 --log-level info > /dev/null 2> "$T/gen"; then
    bad "$m tp $n $dt: generate: $(tail -3 "$T/gen")"; return
  fi
  if python3 - "$T/est.json" "$T/gen" "$n" <<'PY'; then ok; else bad "$m tp $n $dt"; fi
import json, re, sys
pg = json.load(open(sys.argv[1]))["per_gpu"]
est = pg["weights"]
n = int(sys.argv[3])
log = open(sys.argv[2]).read()
unit = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
kvs = [float(v) * unit[u] for v, u in re.findall(r"holds weights .*?, KV cache ([0-9.]+) (B|kB|MB|GB) \(one sequence", log)]
if len(kvs) != n or any(abs(k - pg["kv_cache"]) > 0.005 * pg["kv_cache"] for k in kvs):
    sys.exit(f"KV cache per rank {kvs}; estimate per GPU {pg['kv_cache']}")
ranks = {int(r): int(b) for r, b in re.findall(r"tensor-parallel rank (\d+) of %d on the CPU holds weights [^(]*\((\d+) bytes\)" % n,
                                               open(sys.argv[2]).read())}
if sorted(ranks) != list(range(n)):
    sys.exit(f"rank lines {sorted(ranks)} (expected 0..{n - 1})")
if max(ranks.values()) != est or any(b > est for b in ranks.values()):
    sys.exit(f"estimate per GPU {est} bytes; ranks hold {ranks}")
print(f"tp {n}: estimate {est} bytes per GPU = the largest rank's measured weights")
PY
}

for m in llama3 mistral qwen2-tp; do
  for n in 2 4; do check "$F/models/$m" $n; done
done
S=$F/models/stories260K/stories260K.gguf
for n in 2 4; do check "$S" $n; done
for dt in bf16 int8; do
  check "$F/models/qwen2-tp" 2 $dt; check "$F/models/llama3" 4 $dt; check "$S" 2 $dt
done
"$Q" estimate --model "$S" --dtype f32 --tp 8 > /dev/null 2> "$T/e1"; r1=$?
"$Q" generate --model "$S" --device cpu --tp 8 --ids --prompt "1 2" --max-tokens 1 > /dev/null 2> "$T/e2"; r2=$?
[ $r1 = 5 ] && [ $r2 = 5 ] && grep -qF "FFN size (172)" "$T/e1" && grep -qF "FFN size (172)" "$T/e2" && ok ||
  bad "tp 8 refusal: estimate $r1 $(cat "$T/e1"); generate $r2 $(cat "$T/e2")"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
