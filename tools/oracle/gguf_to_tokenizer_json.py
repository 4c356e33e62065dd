"""Builds a Hugging Face tokenizer.json (GPT-2 layout) from the vocabulary of a GGUF file
whose tokenizer.ggml.model is "gpt2" and tokenizer.ggml.pre "gpt-2"/"default", so the
Hugging Face `tokenizers` library can serve as the reference for quire's GGUF loader:

  pre_tokenizer ByteLevel(add_prefix_space=false, use_regex=true), model BPE (vocab =
  tokenizer.ggml.tokens by index, merges = tokenizer.ggml.merges in order), decoder and
  post-processor ByteLevel, control tokens (token_type 3) as special added tokens.

  python gguf_to_tokenizer_json.py ggml-vocab-gpt-2.gguf out.json

read_gguf() returns the metadata key/values (via the `gguf` package, pinned in
tools/python/requirements.txt); the tensor infos are not needed here.
"""
import json
import sys

import gguf


def read_gguf(path):
    reader = gguf.GGUFReader(path, 'r')
    return {name: field.contents() for name, field in reader.fields.items()}


def gpt2_tokenizer_json(kv):
    if kv.get('tokenizer.ggml.model') != 'gpt2':
        raise ValueError('not a gpt2 vocabulary')
    pre = kv.get('tokenizer.ggml.pre', 'default')
    if pre not in ('gpt-2', 'default'):
        raise ValueError(f'pre-tokenizer {pre}: only gpt-2 here')
    tokens = kv['tokenizer.ggml.tokens']
    types = kv.get('tokenizer.ggml.token_type') or [1] * len(tokens)
    bl = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i, t in enumerate(tokens) if types[i] == 3],
        'normalizer': None, 'pre_tokenizer': bl, 'post_processor': bl, 'decoder': bl,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': {t: i for i, t in enumerate(tokens)}, 'merges': kv['tokenizer.ggml.merges']},
    }


if __name__ == '__main__':
    src, dst = sys.argv[1:3]
    kv = read_gguf(src)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(json.dumps(gpt2_tokenizer_json(kv), ensure_ascii=False) + '\n')
    print(f"{dst}: {len(kv['tokenizer.ggml.tokens'])} tokens, {len(kv['tokenizer.ggml.merges'])} merges")
