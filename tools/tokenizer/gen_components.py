"""Writes tests/fixtures/tokenizer/components.json: reference ids and decodes from the
Hugging Face `tokenizers` library (Python package, Rust core; pinned in
tools/python/requirements.txt) for tokenizer.json variants that exercise pipeline
components the shipped tokenizers do not use (other normalizers, pre-tokenizers and split
behaviours, Metaspace schemes, unk/fuse_unk, BPE subword prefix/suffix, added-token
options, post-processors, decoders).

  build/venv/bin/python tools/tokenizer/gen_components.py

A variant = a base tokenizer.json (shared: ../shared/..., fixtures: tests/fixtures/...,
or an inline "tiny" model) with top-level keys replaced ("set"), model keys replaced
("model"; with "model_keep" the model object is first reduced to the listed keys), and
added tokens appended ("added"). The C test (test_tok_components.c) applies the same
edits with jansson and compares quire's output with:
  ids      encode(text, add_special_tokens=False)
  ids_sp   encode(text, add_special_tokens=True)        (variants with "special": true)
  dec      decode(ids, skip_special_tokens=False)       (variants with "decode": true)
  dec_sp   decode(ids_sp, skip_special_tokens=True)     (both flags)
Variants with "special_as_text" are encoded by quire with QR_TOK_SPECIAL_AS_TEXT.
Truncation and padding are disabled everywhere. The texts are TARGETED below plus
strings of tests/fixtures/tokenizer/oracle/corpus.jsonl (its first 110 and every 331st
after that), so regenerate the oracle corpus first.
"""
import copy
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))

W = '\u2581'


def tiny(prefix, fuse=False):
    """A hand-made BPE over "abcdefgh" with subword prefix "##" or suffix "</w>"."""
    letters = list('abcdefgh')
    vocab = {'[UNK]': 0}

    def add(t):
        if t not in vocab:
            vocab[t] = len(vocab)

    merges = []
    if prefix:
        for c in letters:
            add(c)
            add('##' + c)
        for a, b in [('a', '##b'), ('##c', '##d'), ('ab', '##cd'), ('e', '##f'), ('##g', '##h'), ('##e', '##f'),
                     ('ef', '##gh'), ('##a', '##b')]:
            merges.append([a, b])
            add(a + b[2:])
    else:
        for c in letters:
            add(c)
            add(c + '</w>')
        for a, b in [('a', 'b'), ('c', 'd</w>'), ('ab', 'cd</w>'), ('e', 'f'), ('g', 'h</w>'), ('ef', 'gh</w>'),
                     ('a', 'b</w>')]:
            merges.append([a, b])
            add(a + b)
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': 0, 'content': '[UNK]', 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True}],
        'normalizer': None,
        'pre_tokenizer': {'type': 'WhitespaceSplit'},
        'post_processor': None,
        'decoder': None,
        'model': {
            'type': 'BPE', 'dropout': None, 'unk_token': '[UNK]',
            'continuing_subword_prefix': '##' if prefix else None,
            'end_of_word_suffix': None if prefix else '</w>',
            'fuse_unk': fuse, 'byte_fallback': False, 'ignore_merges': False, 'vocab': vocab, 'merges': merges,
        },
    }


BASES = {
    'wp': {'base': 'shared', 'rel': 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json'},
    'bl': {'base': 'shared', 'rel': 'models/qwen2.5-tokenizer/tokenizer.json'},
    'spm': {'base': 'fixtures', 'rel': 'tokenizer/llama2-tokenizer.json'},
    'tiny_prefix': {'inline': tiny(prefix=True)},
    'tiny_suffix': {'inline': tiny(prefix=False, fuse=True)},
}

WS = { 'type': 'WhitespaceSplit' }
V = [
    # WordPiece / BERT
    { 'name': 'wp_default', 'base': 'wp', 'special': True, 'decode': True },
    { 'name': 'wp_bert_nolower', 'base': 'wp', 'set': { 'normalizer': { 'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True, 'strip_accents': True, 'lowercase': False } } },
    { 'name': 'wp_bert_raw', 'base': 'wp', 'set': { 'normalizer': { 'type': 'BertNormalizer', 'clean_text': False, 'handle_chinese_chars': False, 'strip_accents': False, 'lowercase': True } } },
    { 'name': 'wp_nfkc_lower_strip', 'base': 'wp', 'set': { 'normalizer': { 'type': 'Sequence', 'normalizers': [{ 'type': 'NFKC' }, { 'type': 'Lowercase' }, { 'type': 'StripAccents' }] } } },
    { 'name': 'wp_nfd_replace', 'base': 'wp', 'set': { 'normalizer': { 'type': 'Sequence', 'normalizers': [{ 'type': 'NFD' }, { 'type': 'StripAccents' }, { 'type': 'Lowercase' }, { 'type': 'Strip', 'strip_left': True, 'strip_right': True }, { 'type': 'Replace', 'pattern': { 'Regex': '\\d+' }, 'content': '0' }, { 'type': 'Replace', 'pattern': { 'String': 'o' }, 'content': 'oo' }] } } },
    { 'name': 'wp_nfkd_strip_left', 'base': 'wp', 'set': { 'normalizer': { 'type': 'Sequence', 'normalizers': [{ 'type': 'NFKD' }, { 'type': 'Lowercase' }, { 'type': 'Strip', 'strip_left': True, 'strip_right': False }] } } },
    { 'name': 'wp_whitespace', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Whitespace' } } },
    { 'name': 'wp_wsplit', 'base': 'wp', 'set': { 'pre_tokenizer': WS } },
    *[{ 'name': 'wp_punct_' + b, 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [WS, { 'type': 'Punctuation', 'behavior': b }] } } }
      for b in ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']],
    { 'name': 'wp_digits_individual', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [WS, { 'type': 'Digits', 'individual_digits': True }] } } },
    { 'name': 'wp_digits_grouped', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [{ 'type': 'Digits', 'individual_digits': False }, WS] } } },
    { 'name': 'wp_split_dash', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [WS, { 'type': 'Split', 'pattern': { 'String': '-' }, 'behavior': 'Isolated', 'invert': False }] } } },
    { 'name': 'wp_split_space_removed', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Split', 'pattern': { 'String': ' ' }, 'behavior': 'Removed', 'invert': False } } },
    { 'name': 'wp_split_vowels_invert', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [WS, { 'type': 'Split', 'pattern': { 'Regex': '[aeiou]+' }, 'behavior': 'MergedWithNext', 'invert': True }] } } },
    { 'name': 'wp_split_regex_prev', 'base': 'wp', 'set': { 'pre_tokenizer': { 'type': 'Split', 'pattern': { 'Regex': '\\s+|[.,!?]' }, 'behavior': 'MergedWithPrevious', 'invert': False } } },
    { 'name': 'wp_bertproc', 'base': 'wp', 'special': True, 'decode': True, 'set': { 'post_processor': { 'type': 'BertProcessing', 'sep': ['[SEP]', 102], 'cls': ['[CLS]', 101] }, 'decoder': { 'type': 'WordPiece', 'prefix': '##', 'cleanup': False } } },
    { 'name': 'wp_robertaproc', 'base': 'wp', 'special': True, 'set': { 'post_processor': { 'type': 'RobertaProcessing', 'sep': ['[SEP]', 102], 'cls': ['[CLS]', 101], 'trim_offsets': True, 'add_prefix_space': False } } },
    { 'name': 'wp_added', 'base': 'wp', 'special': True, 'decode': True, 'added': [
        { 'id': 30522, 'content': '<ent>', 'single_word': False, 'lstrip': True, 'rstrip': True, 'normalized': False, 'special': False },
        { 'id': 30523, 'content': 'Foo Bar', 'single_word': True, 'lstrip': False, 'rstrip': False, 'normalized': True, 'special': False },
        { 'id': 2088, 'content': 'world', 'single_word': True, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True },
        { 'id': 30524, 'content': 'ing', 'single_word': False, 'lstrip': False, 'rstrip': True, 'normalized': True, 'special': False },
    ] },
    # SentencePiece-style BPE (Llama-2 vocabulary)
    { 'name': 'spm_default', 'base': 'spm', 'special': True, 'decode': True },
    { 'name': 'spm_meta_always', 'base': 'spm', 'decode': True, 'set': { 'normalizer': None, 'pre_tokenizer': { 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'always', 'split': False }, 'decoder': { 'type': 'Sequence', 'decoders': [{ 'type': 'ByteFallback' }, { 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'always', 'split': False }] } } },
    { 'name': 'spm_meta_first_split', 'base': 'spm', 'decode': True, 'special': True, 'set': { 'normalizer': None, 'pre_tokenizer': { 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'first', 'split': True }, 'decoder': { 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'first', 'split': True } } },
    { 'name': 'spm_meta_never', 'base': 'spm', 'decode': True, 'set': { 'normalizer': None, 'pre_tokenizer': { 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'never', 'split': True }, 'decoder': { 'type': 'Sequence', 'decoders': [{ 'type': 'Metaspace', 'replacement': W, 'prepend_scheme': 'never', 'split': True }, { 'type': 'ByteFallback' }, { 'type': 'Fuse' }] } } },
    { 'name': 'spm_unk_fused', 'base': 'spm', 'decode': True, 'model': { 'byte_fallback': False, 'fuse_unk': True } },
    { 'name': 'spm_unk_unfused', 'base': 'spm', 'model': { 'byte_fallback': False, 'fuse_unk': False } },
    { 'name': 'spm_added', 'base': 'spm', 'special': True, 'decode': True, 'added': [
        { 'id': 32000, 'content': '<x>', 'single_word': False, 'lstrip': True, 'rstrip': False, 'normalized': False, 'special': True },
        { 'id': 32001, 'content': '[ab]', 'single_word': False, 'lstrip': False, 'rstrip': True, 'normalized': False, 'special': False },
        { 'id': 32002, 'content': 'hello', 'single_word': True, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': False },
    ] },
    { 'name': 'spm_dec_replace_strip', 'base': 'spm', 'decode': True, 'set': { 'decoder': { 'type': 'Sequence', 'decoders': [{ 'type': 'Replace', 'pattern': { 'Regex': W + '+' }, 'content': ' ' }, { 'type': 'ByteFallback' }, { 'type': 'Fuse' }, { 'type': 'Strip', 'content': ' ', 'start': 2, 'stop': 0 }] } } },
    # Byte-level BPE (Qwen2.5 vocabulary)
    { 'name': 'bl_default', 'base': 'bl', 'special': True, 'decode': True },
    { 'name': 'bl_gpt2', 'base': 'bl', 'decode': True, 'set': { 'normalizer': None, 'pre_tokenizer': { 'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True }, 'decoder': { 'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True } } },
    { 'name': 'bl_gpt2_noprefix', 'base': 'bl', 'set': { 'normalizer': None, 'pre_tokenizer': { 'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True } } },
    { 'name': 'bl_digits', 'base': 'bl', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [{ 'type': 'Digits', 'individual_digits': True }, { 'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': True }] } } },
    { 'name': 'bl_prefix_each_split', 'base': 'bl', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [{ 'type': 'WhitespaceSplit' }, { 'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': False, 'use_regex': False }] } } },
    { 'name': 'bl_split_ws_prev', 'base': 'bl', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [{ 'type': 'Split', 'pattern': { 'Regex': '\\s+' }, 'behavior': 'MergedWithPrevious', 'invert': False }, { 'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False }] } } },
    { 'name': 'bl_split_punct_contig', 'base': 'bl', 'set': { 'pre_tokenizer': { 'type': 'Sequence', 'pretokenizers': [{ 'type': 'Split', 'pattern': { 'Regex': '\\p{P}' }, 'behavior': 'Contiguous', 'invert': False }, { 'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False }] } } },
    { 'name': 'bl_ignore_merges', 'base': 'bl', 'model': { 'ignore_merges': True } },
    { 'name': 'bl_nfkd_lower', 'base': 'bl', 'set': { 'normalizer': { 'type': 'Sequence', 'normalizers': [{ 'type': 'NFKD' }, { 'type': 'Lowercase' }] } } },
    { 'name': 'bl_post_seq', 'base': 'bl', 'special': True, 'decode': True, 'set': { 'post_processor': { 'type': 'Sequence', 'processors': [{ 'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False }, { 'type': 'TemplateProcessing', 'single': [{ 'SpecialToken': { 'id': '<|im_start|>', 'type_id': 0 } }, { 'Sequence': { 'id': 'A', 'type_id': 0 } }, { 'SpecialToken': { 'id': '<|im_end|>', 'type_id': 0 } }], 'pair': [{ 'Sequence': { 'id': 'A', 'type_id': 0 } }, { 'Sequence': { 'id': 'B', 'type_id': 1 } }], 'special_tokens': { '<|im_start|>': { 'id': '<|im_start|>', 'ids': [151644], 'tokens': ['<|im_start|>'] }, '<|im_end|>': { 'id': '<|im_end|>', 'ids': [151645], 'tokens': ['<|im_end|>'] } } }] } } },
    { 'name': 'bl_no_decoder', 'base': 'bl', 'decode': True, 'set': { 'decoder': None } },
    # QR_TOK_SPECIAL_AS_TEXT (HF encode_special_tokens = True): the reference is the same
    # tokenizer without its special added tokens (so they are not matched in text);
    # quire loads the unmodified file and passes the flag.
    { 'name': 'wp_special_as_text', 'base': 'wp', 'special': True, 'special_as_text': True },
    { 'name': 'spm_special_as_text', 'base': 'spm', 'special': True, 'special_as_text': True },
    { 'name': 'bl_special_as_text', 'base': 'bl', 'special': True, 'special_as_text': True, 'set': { 'post_processor': { 'type': 'TemplateProcessing', 'single': [{ 'SpecialToken': { 'id': '<|im_start|>', 'type_id': 0 } }, { 'Sequence': { 'id': 'A', 'type_id': 0 } }], 'pair': [{ 'Sequence': { 'id': 'A', 'type_id': 0 } }, { 'Sequence': { 'id': 'B', 'type_id': 1 } }], 'special_tokens': { '<|im_start|>': { 'id': '<|im_start|>', 'ids': [151644], 'tokens': ['<|im_start|>'] } } } } },
    # WordLevel model (MiniLM vocabulary as a word list), no decoder; BPEDecoder; CTC decoder
    { 'name': 'wl_minilm', 'base': 'wp', 'decode': True, 'model_keep': ['vocab'], 'model': { 'type': 'WordLevel', 'unk_token': '[UNK]' }, 'set': { 'pre_tokenizer': WS, 'decoder': None } },
    { 'name': 'wp_ctc', 'base': 'wp', 'decode': True, 'set': { 'decoder': { 'type': 'CTC', 'pad_token': '[PAD]', 'word_delimiter_token': '|', 'cleanup': True } } },
    { 'name': 'tiny_suffix_bpedec', 'base': 'tiny_suffix', 'decode': True, 'set': { 'decoder': { 'type': 'BPEDecoder', 'suffix': '</w>' } } },
    # Tiny BPE models: continuing_subword_prefix, end_of_word_suffix, unk fusing
    { 'name': 'tiny_prefix', 'base': 'tiny_prefix', 'decode': True },
    { 'name': 'tiny_suffix', 'base': 'tiny_suffix', 'decode': True },
]

TARGETED = [
    'abcd efgh abcdefgh ab cd ef gh', 'abxcd hhh gfe', 'a-b--c d—e', '  leading and trailing  ', 'Foo Bar foo bar FOO BAR',
    'xFoo Bar', 'hello world, worldly world_ world!', 'a <ent> b<ent>c  <ent>  d', 'ringing sing ing', 'x<x> <x>  y',
    '[ab]  z [ab]', 'hello hellos ahello hello', 'He said: "don\'t!" ... ok?!', 'call 0800-555-1234 or 12,345.67',
    'ÉCOLE Ünïcödé ﬁ ² ㎏ Ⅻ', '  \t spaced   out\n\n', 'x' + '-' * 30 + 'y', 'İstanbul ΣΑΣ ß',
]


def load_base(name):
    b = BASES[name]
    if 'inline' in b:
        return copy.deepcopy(b['inline'])
    p = os.path.join(ROOT, 'tests', 'fixtures', b['rel'])  # 'shared' bases were copied there from ../shared
    with open(p, encoding='utf-8') as f:
        return json.load(f)


def apply_variant(j, v):
    j['truncation'] = None
    j['padding'] = None
    for k, x in v.get('set', {}).items():
        j[k] = x
    if 'model_keep' in v:
        j['model'] = {k: j['model'][k] for k in v['model_keep']}
    for k, x in v.get('model', {}).items():
        j['model'][k] = x
    if 'added' in v:
        j['added_tokens'] = j['added_tokens'] + v['added']
    if v.get('special_as_text'):
        j['added_tokens'] = [a for a in j['added_tokens'] if not a['special']]
    return j


def main():
    with open(os.path.join(ROOT, 'tests', 'fixtures', 'tokenizer', 'oracle', 'corpus.jsonl'), encoding='utf-8') as f:
        corpus = [json.loads(l) for l in f.read().split('\n') if l]
    texts = TARGETED + corpus[:110] + [s for i, s in enumerate(corpus) if i >= 110 and i % 331 == 0]

    out = {'generator': 'tools/tokenizer/gen_components.py', 'reference': f'tokenizers (Python) {tokenizers.__version__}',
           'bases': {}, 'texts': texts, 'variants': []}
    for k, b in BASES.items():
        out['bases'][k] = {'inline': b['inline']} if 'inline' in b else {'base': b['base'], 'path': b['rel']}
    for v in V:
        tok = Tokenizer.from_str(json.dumps(apply_variant(load_base(v['base']), v), ensure_ascii=False))
        cases = []
        for text in texts:
            c = {'ids': tok.encode(text, add_special_tokens=False).ids}
            if v.get('special'):
                c['ids_sp'] = tok.encode(text, add_special_tokens=True).ids
            if v.get('decode'):
                c['dec'] = tok.decode(c['ids'], skip_special_tokens=False)
                if v.get('special'):
                    c['dec_sp'] = tok.decode(c['ids_sp'], skip_special_tokens=True)
            cases.append(c)
        rec = {'name': v['name'], 'base': v['base'], 'cases': cases}
        for k in ('set', 'model', 'model_keep', 'added', 'special', 'decode', 'special_as_text'):
            if k in v:
                rec[k] = v[k]
        out['variants'].append(rec)
        print(f"{v['name']}: {sum(len(c['ids']) for c in cases)} ids", file=sys.stderr)
    dst = os.path.join(ROOT, 'tests', 'fixtures', 'tokenizer', 'components.json')
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(json.dumps(out, ensure_ascii=False, separators=(',', ':')) + '\n')
    print(f'wrote {dst} ({os.path.getsize(dst)} bytes, {len(texts)} texts, {len(V)} variants)', file=sys.stderr)


if __name__ == '__main__':
    main()
