#!/usr/bin/env bash
# --dtype as-stored | q8_0 | q4_k: the load line names the bytes per type and every
# conversion (tests/fixtures/qlayout/gen_tiny_llama.py's one-layer llama GGUFs, no
# tokenizer: generate stops after loading, which is all this looks at). Expected
# sizes: rows x blocks per row x block bytes of the file's shapes (d 256, 4 heads of
# 64, 2 KV heads, FFN 512, vocab 256), written out below.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}/qlayout
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
line() { "$Q" generate --model "$1" --dtype "$2" --device cpu --prompt "" --max-tokens 1 2>&1 | grep -F "weights $2:"; }
has() { grep -qF -- "$2" <<<"$1" && ok || bad "expected '$2' in: $1"; }
mib() { python3 -c "print('%.2f MiB' % (($1) / 1048576))"; }

# matmul + embedding elements: embd, output (256 x 256 each), q 256x256, k/v 128x256, o 256x256, gate/up/down 512x256
E="2*256*256 + 256*256 + 2*128*256 + 256*256 + 3*512*256"
out=$(line "$F/tiny_k23.gguf" as-stored)
has "$out" "converted: 1 q2_k tensor as q4_k, 1 q3_k tensor as q4_k"
# q8_0: everything but attn_v (128 x 256) and ffn_down (256 x 512); those two as q4_k
has "$out" "q8_0 $(mib "($E - 128*256 - 256*512) * 34 // 32")"
has "$out" "q4_k $(mib "(128*256 + 256*512) * 144 // 256")"
out=$(line "$F/tiny_kept.gguf" as-stored)
has "$out" "file tensors"
grep -q "converted" <<<"$out" && bad "tiny_kept as-stored converted something: $out" || ok
for t in q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k; do has "$out" "$t "; done
out=$(line "$F/tiny_kept.gguf" q4_k)
has "$out" "q4_k $(mib "($E) * 144 // 256")"
out=$(line "$F/tiny_kept.gguf" q8_0)
has "$out" "q8_0 $(mib "($E) * 34 // 32")"
grep -q "converted" <<<"$out" && bad "q8_0 converted something: $out" || ok

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
