"""Writes runtime/tokenizer/tok_unicode_tables.h: the Unicode data of quire's Hugging Face
normalizers and pre-tokenizers, derived empirically from the Hugging Face `tokenizers`
Python package (pinned in tools/python/requirements.txt) over every code point, so that
quire matches HF's (older, per-crate) Unicode versions exactly instead of utf8proc's.

  build/venv/bin/python tools/tokenizer/gen_unicode_tables.py

HF builds these from several Rust crates of different Unicode versions: BertNormalizer's
clean_text uses unicode_categories' is_other (Cc/Cf/Co; unassigned code points are
kept), its strip_accents that crate's is_mark_nonspacing after NFD; NFD/NFC/... and
StripAccents come from unicode-normalization-alignments (no decompositions newer than
Unicode 12, e.g. U+11938 stays); Lowercase and White_Space from Rust's std (Unicode 16);
BertPreTokenizer and Punctuation split on unicode_categories' is_punctuation. The
probes, per code point c (surrogates excluded):

  CTRL   BertNormalizer(clean_text) turns c into ""             (Cc/Cf/Co, U+0000, U+FFFD)
  WS     BertPreTokenizer splits "a" c "b" into ["a", "b"]       (char::is_whitespace)
  CJK    BertNormalizer(handle_chinese_chars) turns c into " c "
  MN     NFD(c) == c and BertNormalizer(strip_accents) turns c into ""
  MARK   StripAccents turns c into ""
  PUNCT  BertPreTokenizer splits "a" c "b" into ["a", c, "b"]    (Punctuation splits the same)
  DECOMP NFD(c) != c: the decomposition (Hangul syllables are algorithmic, checked here)
  LOWER  Lowercase(c) != c: the lowercase (U+0130 → "i̇" is the only multi-code-point one)
  CCC    canonical combining class != 0, as HF's NFD reorders: c is nonzero when NFD swaps
         c U+0334 (ccc 1) or U+0301 (ccc 230) c; its value v is the one for which neither
         c p nor p c is swapped, p a probe mark of class v

The flags are a two-stage table (blocks of 128 code points, deduplicated); combining
classes, decompositions and lowercase mappings are sorted arrays for binary search.
"""
import os
import unicodedata

import tokenizers
from tokenizers import normalizers as N
from tokenizers import pre_tokenizers as P

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(ROOT, 'runtime', 'tokenizer', 'tok_unicode_tables.h')

FLAGS = ['CTRL', 'WS', 'CJK', 'MN', 'MARK', 'PUNCT', 'DECOMP', 'LOWER', 'CCC']
BLOCK = 128


def hangul_nfd(c):
    s = c - 0xAC00
    out = [0x1100 + s // 588, 0x1161 + (s % 588) // 28]
    if s % 28:
        out.append(0x11A7 + s % 28)
    return ''.join(map(chr, out))


def derive():
    clean = N.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    cjk = N.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = N.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    nfd, accents, lower = N.NFD(), N.StripAccents(), N.Lowercase()
    bert_pre, punct = P.BertPreTokenizer(), P.Punctuation()
    flags = [0] * 0x110000
    decomp, lowers, ccc = {}, {}, {}
    bit = {name: 1 << i for i, name in enumerate(FLAGS)}
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        f = 0
        r = clean.normalize_str(ch)
        if r == '':
            f |= bit['CTRL']
        elif r != ch and r != ' ':
            raise AssertionError(f'clean_text U+{c:04X} -> {r!r}')
        if cjk.normalize_str(ch) == f' {ch} ':
            f |= bit['CJK']
        d = nfd.normalize_str(ch)
        if d != ch:
            f |= bit['DECOMP']
            if 0xAC00 <= c <= 0xD7A3:
                assert d == hangul_nfd(c), f'Hangul U+{c:04X}'
            else:
                decomp[c] = [ord(x) for x in d]
        elif strip.normalize_str(ch) == '':
            f |= bit['MN']
        if accents.normalize_str(ch) == '':
            f |= bit['MARK']
        lo = lower.normalize_str(ch)
        if lo != ch:
            f |= bit['LOWER']
            if len(lo) != 1:
                assert c == 0x130 and lo == 'i\u0307', f'multi-code-point lowercase U+{c:04X}'
            else:
                lowers[c] = ord(lo)
        pieces = bert_pre.pre_tokenize_str(f'a{ch}b')
        if len(pieces) == 3:
            f |= bit['PUNCT']
        elif len(pieces) == 2:
            f |= bit['WS']
        assert (len(punct.pre_tokenize_str(f'a{ch}b')) == 3) == (len(pieces) == 3), f'Punctuation U+{c:04X}'
        flags[c] = f
    # BERT strip_accents = NFD then drop MN: check that on every decomposable character.
    for c, d in decomp.items():
        want = ''.join(chr(x) for x in d if not flags[x] & bit['MN'])
        assert strip.normalize_str(chr(c)) == want, f'strip_accents U+{c:04X}'

    # Combining classes of NFD-stable characters (decomposed ones never reach reordering).
    def swapped(a, b):
        return nfd.normalize_str(a + b) == b + a

    nonzero = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and not flags[c] & bit['DECOMP']
               and (swapped(chr(c), '\u0334') or swapped('\u0301', chr(c)))]
    # One probe mark per class value, among marks HF knows (nonzero above).
    probes = {}
    for c in nonzero:
        v = unicodedata.combining(chr(c))
        if v and v not in probes:
            probes[v] = chr(c)
    for c in nonzero:
        ch = chr(c)
        vals = [v for v, p in probes.items() if p == ch or (not swapped(ch, p) and not swapped(p, ch))]
        assert len(vals) == 1, f'ccc of U+{c:04X}: {vals}'
        ccc[c] = vals[0]
        flags[c] |= bit['CCC']
    return flags, decomp, lowers, ccc


def c_array(ctype, name, values, per_line, fmt):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append('    ' + ', '.join(fmt(v) for v in values[i:i + per_line]) + ',')
    return f'static const {ctype} {name}[{len(values)}] = {{\n' + '\n'.join(lines) + '\n};\n'


def main():
    flags, decomp, lowers, ccc = derive()
    blocks, index = {}, []
    for b in range(0, 0x110000, BLOCK):
        key = tuple(flags[b:b + BLOCK])
        if key not in blocks:
            blocks[key] = len(blocks)
        index.append(blocks[key])
    stage2 = [v for key in sorted(blocks, key=blocks.get) for v in key]
    dec_cps = sorted(decomp)
    pool, dec_ent = [], []
    for c in dec_cps:
        d = decomp[c]
        assert len(d) <= 7 and len(pool) < (1 << 21)
        dec_ent.append((c, len(pool) << 3 | len(d)))
        pool.extend(d)
    low = sorted(lowers.items())
    cc = sorted(ccc.items())
    counts = {name: sum(1 for f in flags if f & (1 << i)) for i, name in enumerate(FLAGS)}

    out = ['/* Generated by tools/tokenizer/gen_unicode_tables.py from the Hugging Face `tokenizers` '
           f'Python package {tokenizers.__version__}: do not edit.',
           ' * Unicode data of HF\'s normalizers and pre-tokenizers, probed code point by code point',
           ' * (the generator explains each probe). Code points with each flag: ' +
           ', '.join(f'{k} {v}' for k, v in counts.items()) + '. */',
           '#ifndef QR_TOK_UNICODE_TABLES_H', '#define QR_TOK_UNICODE_TABLES_H', '', '#include <stdint.h>', '',
           '#include "runtime/tokenizer/tok_internal.h"', '']
    out.append('/* The flag bits are defined in tok_internal.h; these tables were generated for: */')
    for i, name in enumerate(FLAGS):
        out.append(f'#if QR_U_{name} != 0x{1 << i:03x}u')
        out.append(f'#error "QR_U_{name} differs from the generator\'s bit; rerun tools/tokenizer/gen_unicode_tables.py"')
        out.append('#endif')
    out.append(f'#define QR_U_BLOCK_SHIFT {BLOCK.bit_length() - 1}')
    out.append('')
    out.append('/* Flags of code point c: qr_u_flags[(qr_u_stage1[c >> QR_U_BLOCK_SHIFT] << QR_U_BLOCK_SHIFT) | '
               f'(c & {BLOCK - 1})]. */')
    assert len(blocks) <= 256
    out.append(c_array('uint8_t', 'qr_u_stage1', index, 20, str))
    out.append(c_array('uint16_t', 'qr_u_flags', stage2, 16, lambda v: f'0x{v:x}'))
    out.append('/* Canonical decompositions (full, already in canonical order), Hangul syllables excepted:')
    out.append(' * entry k: code point qr_u_decomp_cp[k], code points qr_u_decomp_pool[off .. off + len)')
    out.append(' * with off = qr_u_decomp_at[k] >> 3, len = qr_u_decomp_at[k] & 7. */')
    out.append(c_array('uint32_t', 'qr_u_decomp_cp', dec_cps, 10, lambda v: f'0x{v:x}'))
    out.append(c_array('uint32_t', 'qr_u_decomp_at', [e[1] for e in dec_ent], 12, str))
    out.append(c_array('uint32_t', 'qr_u_decomp_pool', pool, 10, lambda v: f'0x{v:x}'))
    out.append('/* Simple lowercase mappings: (code point << 0) pairs, sorted; U+0130 → "i\\u0307" is special. */')
    out.append(c_array('uint32_t', 'qr_u_lower_cp', [a for a, _ in low], 10, lambda v: f'0x{v:x}'))
    out.append(c_array('uint32_t', 'qr_u_lower_to', [b for _, b in low], 10, lambda v: f'0x{v:x}'))
    out.append('/* Nonzero canonical combining classes: code point << 8 | class, sorted. */')
    out.append(c_array('uint32_t', 'qr_u_ccc', [a << 8 | b for a, b in cc], 8, lambda v: f'0x{v:x}'))
    out.append('#endif')
    with open(OUT, 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')
    print(f'{OUT}: {len(blocks)} distinct blocks of {BLOCK}, {len(dec_cps)} decompositions ({len(pool)} code points), '
          f'{len(low)} lowercase mappings, {len(cc)} combining classes; ' + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
