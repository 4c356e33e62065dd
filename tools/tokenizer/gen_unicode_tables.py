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
  NUMERIC Digits(individual_digits) splits "a" c "b" into three  (Rust char::is_numeric)
  WORD   an added token with single_word does not match right after c (Rust regex \w)
  COMPAT NFKD(c) != NFD(c): the compatibility decomposition
  COMP2  c is the second code point of a primary composite P (NFC(NFD(P)) == P, the pair
         from Python's unicodedata, whose mappings are stable across versions)
  CCC    canonical combining class != 0, as HF's NFD reorders: c is nonzero when NFD swaps
         c U+0334 (ccc 1) or U+0301 (ccc 230) c; its value v is the one for which neither
         c p nor p c is swapped, p a probe mark of class v

The flags are a two-stage table (blocks of 128 code points, deduplicated); combining
classes, decompositions and lowercase mappings are sorted arrays for binary search.
"""
import json
import os
import unicodedata

import tokenizers
from tokenizers import Tokenizer
from tokenizers import normalizers as N
from tokenizers import pre_tokenizers as P

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(ROOT, 'runtime', 'tokenizer', 'tok_unicode_tables.h')

FLAGS = ['CTRL', 'WS', 'CJK', 'MN', 'MARK', 'PUNCT', 'DECOMP', 'LOWER', 'CCC', 'NUMERIC', 'COMPAT', 'COMP2', 'WORD']
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
    nfd, nfc, nfkd, accents, lower = N.NFD(), N.NFC(), N.NFKD(), N.StripAccents(), N.Lowercase()
    bert_pre, punct, digits = P.BertPreTokenizer(), P.Punctuation(), P.Digits(individual_digits=True)
    flags = [0] * 0x110000
    decomp, kdecomp, comp, lowers, ccc = {}, {}, {}, {}, {}
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
            if not 0xAC00 <= c <= 0xD7A3 and nfc.normalize_str(d) == ch:  # a primary composite
                m = unicodedata.decomposition(ch).split()
                assert len(m) == 2 and not m[0].startswith('<'), f'composite U+{c:04X}: {m}'
                comp[(int(m[0], 16), int(m[1], 16))] = c
        elif strip.normalize_str(ch) == '':
            f |= bit['MN']
        k = nfkd.normalize_str(ch)
        if k != d:
            f |= bit['COMPAT']
            kdecomp[c] = [ord(x) for x in k]
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
        if len(digits.pre_tokenize_str(f'a{ch}b')) == 3:
            f |= bit['NUMERIC']
        flags[c] = f
    for a, b in comp:
        flags[b] |= bit['COMP2']
    # single_word: "Q" (a single_word added token) is not matched in c + "Q" when c is a word character.
    stub = {'version': '1.0', 'truncation': None, 'padding': None,
            'added_tokens': [{'id': 1, 'content': 'Q', 'single_word': True, 'lstrip': False, 'rstrip': False,
                              'normalized': False, 'special': False}],
            'normalizer': None, 'pre_tokenizer': None, 'post_processor': None, 'decoder': None,
            'model': {'type': 'WordLevel', 'vocab': {'[UNK]': 0, 'Q': 1}, 'unk_token': '[UNK]'}}
    tok = Tokenizer.from_str(json.dumps(stub))
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for c, e in zip(cps, tok.encode_batch([chr(c) + 'Q' for c in cps], add_special_tokens=False)):
        if 1 not in e.ids:
            flags[c] |= bit['WORD']
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
    return flags, decomp, kdecomp, comp, lowers, ccc


# Regex classes. tokenizer.json Split patterns (and ByteLevel's GPT-2 pattern) run on
# Oniguruma, the Whitespace pre-tokenizer on Rust's regex crate; quire runs both on PCRE2,
# whose Unicode tables may be older. Each class is written as PCRE2 properties (BASE,
# whose code points under Unicode 14, the oldest PCRE2 quire supports, must all be in the
# HF set) plus the HF code points those properties miss, as explicit ranges.
REGEX_CLASSES = {
    # name: (probe pattern or 'whitespace', PCRE2 properties, Unicode 14 categories of BASE, extra code points)
    'L': (r'\p{L}', r'\p{L}', ('L',), ()),
    'N': (r'\p{N}', r'\p{N}', ('N',), ()),
    'D': (r'\d', r'\p{Nd}', ('Nd',), ()),
    'W': (r'\w', r'\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}', ('L', 'M', 'Nd', 'Nl', 'Pc'), ()),
    'RUST_W': ('whitespace', r'\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200c}\x{200d}', ('L', 'M', 'Nd', 'Nl', 'Pc'),
               (0x200C, 0x200D)),
}


def regex_classes():
    from tokenizers import Regex
    ws = P.Whitespace()
    out = {}
    for name, (probe, props, cats, extra) in REGEX_CLASSES.items():
        if probe == 'whitespace':  # one piece: c is a word character between a and b
            hf = {c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
                  and len(ws.pre_tokenize_str(f'a{chr(c)}b')) == 1}
        else:
            sp = P.Split(Regex(probe), 'isolated')
            hf = {c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
                  and len(sp.pre_tokenize_str(f'\x01{chr(c)}\x01')) == 3}
        base = {c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
                and unicodedata.category(chr(c)).startswith(cats)} | set(extra)
        assert base <= hf, f'{name}: PCRE2 properties match {len(base - hf)} code points HF does not'
        ranges = []
        for c in sorted(hf - base):
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
        text = [f'\\x{{{a:x}}}' if a == b else f'\\x{{{a:x}}}-\\x{{{b:x}}}' for a, b in ranges]
        out[name] = (props, text, len(hf), len(hf - base), len(ranges))
    return out


def c_array(ctype, name, values, per_line, fmt):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append('    ' + ', '.join(fmt(v) for v in values[i:i + per_line]) + ',')
    return f'static const {ctype} {name}[{len(values)}] = {{\n' + '\n'.join(lines) + '\n};\n'


def main():
    flags, decomp, kdecomp, comp, lowers, ccc = derive()
    blocks, index = {}, []
    for b in range(0, 0x110000, BLOCK):
        key = tuple(flags[b:b + BLOCK])
        if key not in blocks:
            blocks[key] = len(blocks)
        index.append(blocks[key])
    stage2 = [v for key in sorted(blocks, key=blocks.get) for v in key]
    def pack(table):
        cps, at, pool = sorted(table), [], []
        for c in cps:
            d = table[c]
            assert len(d) < 32 and len(pool) < (1 << 26)
            at.append(len(pool) << 5 | len(d))
            pool.extend(d)
        return cps, at, pool

    dec_cps, dec_at, pool = pack(decomp)
    kdec_cps, kdec_at, kpool = pack(kdecomp)
    comp_keys = sorted(comp)
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
    out.append(' * with off = qr_u_decomp_at[k] >> 5, len = qr_u_decomp_at[k] & 31. */')
    out.append(c_array('uint32_t', 'qr_u_decomp_cp', dec_cps, 10, lambda v: f'0x{v:x}'))
    out.append(c_array('uint32_t', 'qr_u_decomp_at', dec_at, 12, str))
    out.append(c_array('uint32_t', 'qr_u_decomp_pool', pool, 10, lambda v: f'0x{v:x}'))
    out.append('/* Compatibility decompositions (full, as NFKD gives them) where they differ from the')
    out.append(' * canonical ones; same layout. */')
    out.append(c_array('uint32_t', 'qr_u_kdecomp_cp', kdec_cps, 10, lambda v: f'0x{v:x}'))
    out.append(c_array('uint32_t', 'qr_u_kdecomp_at', kdec_at, 12, str))
    out.append(c_array('uint32_t', 'qr_u_kdecomp_pool', kpool, 10, lambda v: f'0x{v:x}'))
    out.append('/* Canonical compositions (Hangul excepted): key first << 21 | second, sorted; the composite. */')
    out.append(c_array('uint64_t', 'qr_u_comp_key', [a << 21 | b for a, b in comp_keys], 6, lambda v: f'0x{v:x}ull'))
    out.append(c_array('uint32_t', 'qr_u_comp_to', [comp[k] for k in comp_keys], 10, lambda v: f'0x{v:x}'))
    out.append('/* Simple lowercase mappings: (code point << 0) pairs, sorted; U+0130 → "i\\u0307" is special. */')
    out.append(c_array('uint32_t', 'qr_u_lower_cp', [a for a, _ in low], 10, lambda v: f'0x{v:x}'))
    out.append(c_array('uint32_t', 'qr_u_lower_to', [b for _, b in low], 10, lambda v: f'0x{v:x}'))
    out.append('/* Nonzero canonical combining classes: code point << 8 | class, sorted. */')
    out.append(c_array('uint32_t', 'qr_u_ccc', [a << 8 | b for a, b in cc], 8, lambda v: f'0x{v:x}'))
    out.append('#endif')
    with open(OUT, 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')

    rx = regex_classes()
    lines = ['/* Generated by tools/tokenizer/gen_unicode_tables.py from the Hugging Face `tokenizers` '
             f'Python package {tokenizers.__version__}: do not edit.',
             ' * The contents of regex character classes as HF matches them (Oniguruma for tokenizer.json',
             ' * patterns, Rust regex for the Whitespace pre-tokenizer): PCRE2 properties plus the code',
             ' * points of newer Unicode versions they miss (explicit ranges; see the generator). */',
             '#ifndef QR_TOK_REGEX_CLASSES_H', '#define QR_TOK_REGEX_CLASSES_H', '']
    for name, (props, text, n, n_extra, n_ranges) in rx.items():
        lines.append(f'/* {n} code points, {n_extra} of them in {n_ranges} extra ranges */')
        cesc = lambda t: t.replace('\\', '\\\\')  # regex text -> C string literal
        lines.append(f'#define QR_RX_{name} "{cesc(props)}"' + (' \\' if text else ''))
        row = []
        for k, tok in enumerate(text):
            row.append(tok)
            if len(''.join(row)) > 80 or k == len(text) - 1:
                lines.append(f'    "{cesc("".join(row))}"' + (' \\' if k < len(text) - 1 else ''))
                row = []
        lines.append('')
    lines.append('#endif')
    rx_out = os.path.join(ROOT, 'runtime', 'tokenizer', 'tok_regex_classes.h')
    with open(rx_out, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    print(rx_out + ': ' + ', '.join(f'{k} +{v[3]} code points' for k, v in rx.items()))
    print(f'{OUT}: {len(blocks)} distinct blocks of {BLOCK}, {len(dec_cps)} decompositions ({len(pool)} code points), '
          f'{len(kdec_cps)} compatibility decompositions ({len(kpool)}), {len(comp_keys)} compositions, '
          f'{len(low)} lowercase mappings, {len(cc)} combining classes; ' + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
