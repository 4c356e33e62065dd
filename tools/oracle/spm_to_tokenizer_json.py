"""Converts a SentencePiece BPE model (tokenizer.model, protobuf) into a Hugging Face
tokenizer.json of the Llama-2 / TinyLlama / Mistral kind ("legacy" SentencePiece-style
BPE with byte fallback), the same shape transformers' Llama converter produces:

  normalizer     Sequence[Prepend("▁"), Replace(" " → "▁")]
  pre_tokenizer  null
  model          BPE(vocab = pieces by id, merges below, unk "<unk>", fuse_unk, byte_fallback)
  post_processor TemplateProcessing: single "<s> $A", pair "<s> $A <s> $B"
  decoder        Sequence[Replace("▁" → " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  added_tokens   ids 0, 1, 2 (<unk>, <s>, </s>), special, not normalized

Merges are derived from the vocabulary and the scores: every split of a piece (at a
code-point boundary) into two pieces that are both in the vocabulary is a merge; the
merges of one piece are ordered by (id of left, id of right), pieces in id order, and the
whole list is then stably sorted by the piece's score, highest first. This is the rule by
which the Hugging Face converter turns a score-based SentencePiece vocabulary into
rank-ordered BPE merges.

  python spm_to_tokenizer_json.py tokenizer.model out/tokenizer.json

The protobuf is parsed here directly (ModelProto: 1 = repeated SentencePiece
{1 piece, 2 score (float), 3 type}, 2 = TrainerSpec, 3 = NormalizerSpec).
"""
import json
import struct
import sys


def _fields(buf):
    """Yields (field, wire_type, value): value is an int (varint), bytes (length-delimited)
    or the raw 4/8 bytes (fixed32/fixed64)."""
    pos, end = 0, len(buf)

    def varint():
        nonlocal pos
        v = shift = 0
        while True:
            if pos >= end:
                raise ValueError('truncated varint')
            b = buf[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    while pos < end:
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            yield field, wt, varint()
        elif wt == 1:
            yield field, wt, buf[pos:pos + 8]
            pos += 8
        elif wt == 2:
            n = varint()
            if pos + n > end:
                raise ValueError('truncated length-delimited field')
            yield field, wt, buf[pos:pos + n]
            pos += n
        elif wt == 5:
            yield field, wt, buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f'unsupported wire type {wt}')


def parse_model(path):
    with open(path, 'rb') as f:
        buf = f.read()
    pieces, trainer, normalizer = [], {}, {}
    for f, wt, v in _fields(buf):
        if f == 1 and wt == 2:
            p = {'piece': '', 'score': 0.0, 'type': 1}  # type NORMAL unless given
            for pf, pwt, pv in _fields(v):
                if pf == 1 and pwt == 2:
                    p['piece'] = pv.decode('utf-8')
                elif pf == 2 and pwt == 5:
                    p['score'] = struct.unpack('<f', pv)[0]
                elif pf == 3 and pwt == 0:
                    p['type'] = pv
            pieces.append(p)
        elif f == 2 and wt == 2:
            for tf, twt, tv in _fields(v):
                if tf == 3 and twt == 0:
                    trainer['model_type'] = tv  # 1 UNIGRAM, 2 BPE
                if tf == 35 and twt == 0:
                    trainer['byte_fallback'] = tv != 0
                if tf == 40 and twt == 0:
                    trainer['unk_id'] = tv
                if tf == 41 and twt == 0:
                    trainer['bos_id'] = tv
                if tf == 42 and twt == 0:
                    trainer['eos_id'] = tv
                if tf == 45 and twt == 2:
                    trainer['unk_piece'] = tv.decode('utf-8')
        elif f == 3 and wt == 2:
            for nf, nwt, nv in _fields(v):
                if nf == 1 and nwt == 2:
                    normalizer['name'] = nv.decode('utf-8')
                if nf == 3 and nwt == 0:
                    normalizer['add_dummy_prefix'] = nv != 0
                if nf == 4 and nwt == 0:
                    normalizer['remove_extra_whitespaces'] = nv != 0
    return {'pieces': pieces, 'trainer': trainer, 'normalizer': normalizer}


def derive_merges(pieces):
    ids = {p['piece']: i for i, p in enumerate(pieces)}
    merges = []
    for p in pieces:
        cps = p['piece']  # a Python str indexes code points, not UTF-16 units
        local = [(cps[:k], cps[k:], p['score']) for k in range(1, len(cps)) if cps[:k] in ids and cps[k:] in ids]
        local.sort(key=lambda m: (ids[m[0]], ids[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: -m[2])  # stable: equal scores keep the order above
    return [f'{l} {r}' for l, r, _ in merges]


def _js_key_order(d):
    """The key order JSON.stringify gives an object built by insertion: keys that are array
    indices ("0".."4294967294", no leading zeros) first in numeric order, then the rest in
    insertion order. Kept so the committed tokenizer.json (first written by the Node
    version of this script) is reproduced byte for byte."""
    def is_index(k):
        return k.isascii() and k.isdigit() and (k == '0' or k[0] != '0') and int(k) < 4294967295
    idx = sorted((k for k in d if is_index(k)), key=int)
    return {**{k: d[k] for k in idx}, **{k: v for k, v in d.items() if not is_index(k)}}


def to_tokenizer_json(model):
    pieces = model['pieces']

    def special(i):
        return {'id': i, 'content': pieces[i]['piece'], 'single_word': False, 'lstrip': False, 'rstrip': False,
                'normalized': False, 'special': True}

    bos = pieces[1]['piece']
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [special(0), special(1), special(2)],
        'normalizer': {'type': 'Sequence', 'normalizers': [
            {'type': 'Prepend', 'prepend': '▁'},
            {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'},
        ]},
        'pre_tokenizer': None,
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': bos, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
            'pair': [{'SpecialToken': {'id': bos, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                     {'SpecialToken': {'id': bos, 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
            'special_tokens': {bos: {'id': bos, 'ids': [1], 'tokens': [bos]}},
        },
        'decoder': {'type': 'Sequence', 'decoders': [
            {'type': 'Replace', 'pattern': {'String': '▁'}, 'content': ' '},
            {'type': 'ByteFallback'},
            {'type': 'Fuse'},
            {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0},
        ]},
        'model': {
            'type': 'BPE', 'dropout': None, 'unk_token': pieces[0]['piece'], 'continuing_subword_prefix': None,
            'end_of_word_suffix': None, 'fuse_unk': True, 'byte_fallback': True, 'ignore_merges': False,
            'vocab': _js_key_order({p['piece']: i for i, p in enumerate(pieces)}), 'merges': derive_merges(pieces),
        },
    }


def main(argv):
    if len(argv) != 2:
        sys.exit('usage: python spm_to_tokenizer_json.py tokenizer.model tokenizer.json')
    src, dst = argv
    model = parse_model(src)
    p = model['pieces']
    # This converter implements the Llama-2 layout only; refuse anything else.
    if model['trainer'].get('model_type') != 2:
        sys.exit(f'{src}: not a BPE SentencePiece model')
    if not model['trainer'].get('byte_fallback'):
        sys.exit(f'{src}: byte_fallback is off')
    if p[0]['type'] != 2 or p[1]['type'] != 3 or p[2]['type'] != 3:
        sys.exit(f'{src}: ids 0-2 are not <unk>, <s>, </s>')
    out = to_tokenizer_json(model)
    # Compact separators and raw UTF-8, as JSON.stringify wrote the committed file.
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(json.dumps(out, ensure_ascii=False, separators=(',', ':')) + '\n')
    print(f"{dst}: {len(p)} pieces, {len(out['model']['merges'])} merges; trainer {json.dumps(model['trainer'])}, "
          f"normalizer {json.dumps(model['normalizer'])}")


if __name__ == '__main__':
    main(sys.argv[1:])
