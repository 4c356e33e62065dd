"""Checks that a GGUF vocabulary is the same vocabulary as a reference tokenizer, so the
reference's expected ids apply to it (used by gen_fixtures.py before aliasing):
  SentencePiece: tokenizer.ggml.tokens / scores / token_type equal the tokenizer.model
                 pieces / scores (as float32) / types, id by id;
  BERT:          tokenizer.ggml.tokens equal the tokenizer.json WordPiece vocabulary after
                 llama.cpp's converter mapping ("##x" → "x", "[X]" kept, "x" → "▁x").

  python verify_same_vocab.py   (checks the pairs used by the fixtures)
"""
import json
import os
import struct
import sys

from gguf_to_tokenizer_json import read_gguf
from spm_to_tokenizer_json import parse_model


def _f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def same_spm(gguf_path, model_path):
    kv = read_gguf(gguf_path)
    pieces = parse_model(model_path)['pieces']
    t, s, ty = kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.scores'], kv['tokenizer.ggml.token_type']
    if len(t) != len(pieces):
        return f'{len(t)} vs {len(pieces)} tokens'
    for i, p in enumerate(pieces):
        if t[i] != p['piece'] or _f32(s[i]) != _f32(p['score']) or ty[i] != p['type']:
            return f'id {i} differs'
    return None


def same_bert(gguf_path, json_path):
    t = read_gguf(gguf_path)['tokenizer.ggml.tokens']
    with open(json_path, encoding='utf-8') as f:
        vocab = json.load(f)['model']['vocab']
    by_id = [None] * (max(vocab.values()) + 1)
    for k, v in vocab.items():
        by_id[v] = k

    def phantom(w):
        if w.startswith('[') and w.endswith(']'):
            return w
        return w[2:] if w.startswith('##') else '\u2581' + w

    if len(t) != len(by_id):
        return f'{len(t)} vs {len(by_id)} tokens'
    for i, w in enumerate(by_id):
        if w is None or t[i] != phantom(w):
            return f'id {i} differs'
    return None


if __name__ == '__main__':
    here = os.path.dirname(os.path.abspath(__file__))
    spm = os.path.join(here, '..', '..', '..', 'shared', 'models', 'llama2-spm-tokenizer/tokenizer.model')
    shared = os.path.join(here, '..', '..', 'tests', 'fixtures', 'models')  # copies of ../shared/models
    checks = [
        ('llama-spm', same_spm(os.path.join(shared, 'vocab-fixtures/ggml-vocab-llama-spm.gguf'), spm)),
        ('tiny-random-llama-2', same_spm(os.path.join(shared, 'tiny-random-llama-2/llama-2-tiny-random.gguf'), spm)),
        ('bert-bge', same_bert(os.path.join(shared, 'vocab-fixtures/ggml-vocab-bert-bge.gguf'),
                               os.path.join(shared, 'all-MiniLM-L6-v2-tokenizer/tokenizer.json'))),
    ]
    for n, r in checks:
        print(f"{n}: {'DIFFERENT: ' + r if r else 'same vocabulary'}")
    sys.exit(1 if any(r for _, r in checks) else 0)
