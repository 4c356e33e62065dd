"""Writes tests/fixtures/tokenizer/unicode_hf.json: for normalizers and pre-tokenizers whose
Unicode data quire takes from tok_unicode_tables.h, the Hugging Face `tokenizers` output
over every code point, as 64-bit FNV-1a hashes per region of 4096 code points (the
fixture stays small; a mismatch names the region, and this script's --show REGION NAME
prints HF's output there for a closer look).

  build/venv/bin/python tools/tokenizer/gen_unicode_fixture.py [--show REGION NAME]

Region r is the string of code points r*4096 .. r*4096+4095 in order, surrogates left
out, as one input (so canonical reordering across neighbours is covered too).
Normalizers: the hash of normalize_str(region). Pre-tokenizers: the hash of the pieces of
pre_tokenize_str(region) joined by NUL bytes. single_word: the hash of the ids (decimal,
joined by ",") of the region with "Q " after every code point, "Q" an added token with
single_word (matched only where the code point before it is not a word character). test_tok_unicode.c loads each "tokenizer"
below (a WordLevel stub carrying the component) with quire and compares.
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(ROOT, 'tests', 'fixtures', 'tokenizer', 'unicode_hf.json')
REGION = 4096


def bert(clean, cjk, strip, lower):
    return {'type': 'BertNormalizer', 'clean_text': clean, 'handle_chinese_chars': cjk, 'strip_accents': strip,
            'lowercase': lower}


# name -> (normalizer, pre_tokenizer); exactly one of them is set. Both None: the added token
# "Q" with single_word (see ADDED) is looked for after every code point.
CONFIGS = {
    'bert': (bert(True, True, True, True), None),  # MiniLM's normalizer
    'bert_clean': (bert(True, False, False, False), None),
    'bert_chinese': (bert(False, True, False, False), None),
    'bert_strip': (bert(False, False, True, False), None),
    'bert_lower': (bert(False, False, False, True), None),
    'nfd': ({'type': 'NFD'}, None),
    'nfkd': ({'type': 'NFKD'}, None),
    'nfc': ({'type': 'NFC'}, None),
    'nfkc': ({'type': 'NFKC'}, None),
    'lowercase': ({'type': 'Lowercase'}, None),
    'strip_accents': ({'type': 'StripAccents'}, None),
    'nfd_strip_accents': ({'type': 'Sequence', 'normalizers': [{'type': 'NFD'}, {'type': 'StripAccents'}]}, None),
    'bert_pre': (None, {'type': 'BertPreTokenizer'}),
    'punctuation': (None, {'type': 'Punctuation', 'behavior': 'Isolated'}),
    'whitespace_split': (None, {'type': 'WhitespaceSplit'}),
    'whitespace': (None, {'type': 'Whitespace'}),
    'digits': (None, {'type': 'Digits', 'individual_digits': True}),
    'byte_level': (None, {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}),
    **{f'split_{k}': (None, {'type': 'Split', 'pattern': {'Regex': rx}, 'behavior': 'Isolated', 'invert': False})
       for k, rx in [('L', r'\p{L}+'), ('N', r'\p{N}'), ('d', r'\d+'), ('w', r'\w+'), ('s', r'\s+'),
                     ('not_LN', r'[^\s\p{L}\p{N}]+'), ('PL', r'\P{L}+'), ('W', r'\W+'), ('D', r'\D+')]},
    'single_word': (None, None),
    # Qwen2.5's pre-tokenizer pattern
    'split_qwen': (None, {'type': 'Split', 'pattern': {'Regex': r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
                          'behavior': 'Isolated', 'invert': False}),
}


ADDED = {'id': 1, 'content': 'Q', 'single_word': True, 'lstrip': False, 'rstrip': False, 'normalized': False,
         'special': False}


def stub(normalizer, pre_tokenizer):
    added = [{'id': 0, 'content': '[UNK]', 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True}]
    vocab = {'[UNK]': 0}
    if normalizer is None and pre_tokenizer is None:
        added.append(ADDED)
        vocab['Q'] = 1
    return {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
            'normalizer': normalizer, 'pre_tokenizer': pre_tokenizer, 'post_processor': None, 'decoder': None,
            'model': {'type': 'WordLevel', 'vocab': vocab, 'unk_token': '[UNK]'}}


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def region_text(r):
    return ''.join(chr(c) for c in range(r * REGION, (r + 1) * REGION) if not 0xD800 <= c <= 0xDFFF)


def output(tok, text):
    if tok.normalizer is not None:
        return tok.normalizer.normalize_str(text).encode('utf-8')
    if tok.pre_tokenizer is not None:
        return b'\0'.join(p.encode('utf-8') for p, _ in tok.pre_tokenizer.pre_tokenize_str(text))
    # single_word: ids of every code point followed by "Q ", as decimal numbers joined by ","
    ids = tok.encode(''.join(c + 'Q ' for c in text), add_special_tokens=False).ids
    return ','.join(map(str, ids)).encode('ascii')


def main(argv):
    toks = {name: (Tokenizer.from_str(json.dumps(stub(*cfg))), stub(*cfg)) for name, cfg in CONFIGS.items()}
    if argv[:1] == ['--show']:
        r, name = int(argv[1]), argv[2]
        print(output(toks[name][0], region_text(r)).decode('utf-8', 'backslashreplace').encode('unicode_escape').decode())
        return
    n_regions = 0x110000 // REGION
    texts = [region_text(r) for r in range(n_regions)]
    out = {'generator': 'tools/tokenizer/gen_unicode_fixture.py', 'reference': f'tokenizers (Python) {tokenizers.__version__}',
           'region': REGION, 'n_regions': n_regions, 'hash': 'FNV-1a 64 of the UTF-8 output (pre-tokenizers: pieces joined by NUL)',
           'configs': []}
    for name, (tok, js) in toks.items():
        out['configs'].append({'name': name, 'tokenizer': js,
                               'hashes': [f'{fnv1a64(output(tok, t)):016x}' for t in texts]})
        print(name, file=sys.stderr)
    with open(OUT, 'w', encoding='utf-8') as f:
        f.write(json.dumps(out, indent=1, ensure_ascii=False) + '\n')
    print(f'wrote {OUT} ({os.path.getsize(OUT)} bytes)', file=sys.stderr)


if __name__ == '__main__':
    main(sys.argv[1:])
