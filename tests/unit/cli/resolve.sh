#!/usr/bin/env bash
# Model arguments through qr_model_resolve, from the command line: a Hugging
# Face id found in a Hugging Face cache laid out as huggingface_hub writes it
# (HF_HUB_CACHE/models--ORG--NAME/{refs/main,snapshots/<hash>/}), and
# ollama:NAME[:TAG] through an Ollama store (OLLAMA_MODELS/manifests/... ->
# blobs/sha256-<hex>), both built here from tests/fixtures/models files with symlinks.
# Missing ones exit 4 with a message that says how to fetch them.
set -u
Q=${QUIRE_BIN:?}; F=${QUIRE_FIXTURES:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }

hash=0123456789abcdef0123456789abcdef01234567
repo=$T/hf/models--Qwen--Qwen2.5-0.5B-Instruct
mkdir -p "$repo/refs" "$repo/snapshots/$hash"
printf '%s' "$hash" > "$repo/refs/main"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json; do
  ln -s "$F/models/qwen2.5-tokenizer/$f" "$repo/snapshots/$hash/$f"
done
got=$(printf 'Hello world' | HF_HUB_CACHE=$T/hf "$Q" tokenize --model Qwen/Qwen2.5-0.5B-Instruct 2>"$T/err")
[ "$got" = "[9707, 1879]" ] && ok || bad "HF id tokenize: $got $(cat "$T/err")"
got=$(HF_HUB_CACHE=$T/hf "$Q" estimate --model Qwen/Qwen2.5-0.5B-Instruct --dtype bf16 --json 2>"$T/err" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"])')
[ "$got" = "494032768" ] && ok || bad "HF id estimate params: $got $(cat "$T/err")"
# HF_HOME/hub is the fallback
mkdir -p "$T/home" && ln -s "$T/hf" "$T/home/hub"
got=$(printf 'Hello world' | env -u HF_HUB_CACHE HF_HOME=$T/home "$Q" tokenize --model Qwen/Qwen2.5-0.5B-Instruct 2>&1)
[ "$got" = "[9707, 1879]" ] && ok || bad "HF_HOME: $got"
out=$(HF_HUB_CACHE=$T/hf "$Q" tokenize --model Qwen/Qwen9-1B < /dev/null 2>&1); rc=$?
[ $rc = 4 ] && grep -qF "huggingface-cli download Qwen/Qwen9-1B" <<<"$out" && ok || bad "missing HF id: $rc $out"

digest=$(sha256sum "$F/models/stories260K/stories260K.gguf" | cut -d' ' -f1)
man=$T/ollama/manifests/registry.ollama.ai/library/stories/260k
mkdir -p "$(dirname "$man")" "$T/ollama/blobs"
ln -s "$F/models/stories260K/stories260K.gguf" "$T/ollama/blobs/sha256-$digest"
printf '{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":1}]}' \
  "$digest" > "$man"
got=$(OLLAMA_MODELS=$T/ollama "$Q" generate --model ollama:stories:260k --prompt "" --temperature 0 --max-tokens 60 --ids 2>"$T/err" | tail -n 1 | tr -d ' ')
want=$(sed -n 1p "$F/models/stories260K/greedy_from_bos_60.ref.txt" | tr -d ' ')
[ "$got" = "$want" ] && ok || bad "ollama generate: $got $(cat "$T/err")"
out=$(OLLAMA_MODELS=$T/ollama "$Q" generate --model ollama:llama3.2 --prompt x 2>&1); rc=$?
[ $rc = 4 ] && grep -qF "ollama pull llama3.2:latest" <<<"$out" && ok || bad "missing ollama: $rc $out"
out=$("$Q" generate --model "ollama:a/b/c/d" --prompt x 2>&1); rc=$?
[ $rc = 2 ] && grep -qF "expected ollama:NAME" <<<"$out" && ok || bad "malformed ollama: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
