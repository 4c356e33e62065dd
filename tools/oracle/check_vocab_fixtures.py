"""Checks a tokenizer.json against llama.cpp-style vocab fixtures with the Hugging Face
`tokenizers` library: FILE.inp holds test strings, each followed by a line
"__ggml_vocab_test__"; line i of FILE.out holds the expected ids of string i (no special
tokens), space-separated (with a leading space).

  python check_vocab_fixtures.py tokenizer.json ../../tests/fixtures/models/vocab-fixtures/ggml-vocab-llama-spm.gguf
"""
import sys

from tokenizers import Tokenizer


def read_vocab_fixture(base):
    with open(base + '.inp', encoding='utf-8', newline='') as f:
        parts = f.read().split('\n__ggml_vocab_test__\n')
    if parts[-1] != '':
        raise ValueError(f'{base}.inp: does not end with a separator line')
    parts.pop()
    with open(base + '.out', encoding='utf-8', newline='') as f:
        out = f.read().split('\n')
    if out and out[-1] == '':
        out.pop()
    if len(out) != len(parts):
        raise ValueError(f'{base}: {len(parts)} strings but {len(out)} id lines')
    return [(text, [int(x) for x in out[i].split()]) for i, text in enumerate(parts)]


if __name__ == '__main__':
    json_path, base = sys.argv[1:3]
    tok = Tokenizer.from_file(json_path)
    tok.no_truncation()
    tok.no_padding()
    cases = read_vocab_fixture(base)
    bad = 0
    for text, ids in cases:
        got = tok.encode(text, add_special_tokens=False).ids
        if got != ids:
            bad += 1
            print(f'MISMATCH {text!r}\n  want {" ".join(map(str, ids))}\n  got  {" ".join(map(str, got))}')
    print(f'{json_path} vs {base}: {len(cases) - bad}/{len(cases)} identical')
    sys.exit(1 if bad else 0)
