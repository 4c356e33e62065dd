"""Anchor for bench/bench_tokenizer: the Hugging Face tokenizers library (Rust core, Python
binding) encoding the same SciFact corpus lines, one call per document, no special tokens,
single thread (RAYON_NUM_THREADS=1, set here before the import), both per document and as
one batch call.

  build/venv/bin/python tools/oracle/bench_anchor.py [SHARED_DIR]
"""
import json
import os
import sys
import time

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'fixtures')

os.environ.setdefault('RAYON_NUM_THREADS', '1')
from tokenizers import Tokenizer  # noqa: E402  (after RAYON_NUM_THREADS)


def main(shared):
    with open(f'{shared}/data/scifact/corpus.jsonl', encoding='utf-8') as f:
        docs = [f"{o['title']}\n{o['text']}" for o in (json.loads(l) for l in f if l.strip())]
    nbytes = sum(len(d.encode('utf-8')) for d in docs)
    files = {
        'minilm': f'{FIXTURES}/models/all-MiniLM-L6-v2-tokenizer/tokenizer.json',
        'qwen2.5': f'{FIXTURES}/models/qwen2.5-tokenizer/tokenizer.json',
        'llama3': f'{FIXTURES}/models/llama3-tokenizer/tokenizer.json',
    }
    for name, path in files.items():
        tok = Tokenizer.from_file(path)
        tok.no_padding()
        tok.no_truncation()
        # encode: one call per document; encode_batch: one call for all (less binding overhead).
        for mode in ('encode', 'encode_batch'):
            best, ntok = float('inf'), 0
            for _ in range(3):
                t0 = time.perf_counter()
                if mode == 'encode':
                    ntok = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
                else:
                    ntok = sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
                best = min(best, time.perf_counter() - t0)
            print(f'{name:<8} scifact  {mode:<12} {nbytes / 1e6 / best:.2f} MB/s  '
                  f'({len(docs)} docs, {nbytes / 1e6:.2f} MB, {ntok} tokens)')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared'))
