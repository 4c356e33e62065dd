"""Writes quire's tokenizer oracle fixtures with the Hugging Face `tokenizers` library
(Python package, Rust core; pinned in tools/python/requirements.txt) as the independent
reference.

  build/venv/bin/python tools/oracle/gen_fixtures.py [N] [--no-coverage] [--out DIR]

The corpus is corpus.make_corpus(N) (N = 10000: the same strings the former Node
generator wrote) followed, unless --no-coverage, by corpus.unicode_coverage() (every
Unicode block and general category). Output, under tests/fixtures/tokenizer/oracle/
(or DIR):
  corpus.jsonl     one JSON string per line (the text to encode)
  NAME.ids         line i: ids of corpus[i] with add_special_tokens=False, each id as exactly
                   3 characters of the base64 alphabet A-Za-z0-9+/ (6 bits each, most
                   significant first: id = c0*4096 + c1*64 + c2), no separators; this keeps
                   the fixtures small (ids < 262144)
  NAME.dec         one line per decoded string (the first N_DEC strings, then every string from
                   manifest "decoded_tail_from" on, i.e. the Unicode coverage strings):
                   decode(ids, skip_special_tokens=False): "=" when it equals the string
                   exactly, otherwise the decoded text as a JSON string
  NAME.decs        one line per decoded string (same strings): decode(ids with add_special_tokens=True,
                   skip_special_tokens=True): "=" when it equals the NAME.dec text of line i,
                   otherwise the decoded text as a JSON string
  manifest.json    per tokenizer: where the tokenizer quire loads lives (format json:
                   tokenizer.json, gguf: a GGUF vocabulary), which .ids/.dec files hold its
                   expected output ("ids") and for how many corpus strings ("n_strings"), the
                   ids the post-processor adds with add_special_tokens=True (prefix/suffix,
                   checked on every string here; any string where that does not hold is
                   listed in full under "special_exceptions"), and what was overridden
                   (truncation/padding).

MiniLM's tokenizer.json enables truncation and padding to 128; both are disabled for
every tokenizer here so the ids are complete and unpadded. JSON strings are written as
JavaScript's JSON.stringify writes them (raw UTF-8, \\u00XX for other C0 controls).
"""
import json
import os
import sys
import tempfile

import tokenizers
from tokenizers import Tokenizer

from corpus import make_corpus, unicode_coverage
from gguf_to_tokenizer_json import gpt2_tokenizer_json, read_gguf
from verify_same_vocab import same_bert, same_spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
SHARED = os.path.normpath(os.path.join(ROOT, '..', 'shared'))  # only the SPM model, an input of the vocabulary check
# The ../shared/models files the tests use are committed under tests/fixtures/models (same path).
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')
N_DEC = 2000
B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def jstr(s):
    return json.dumps(s, ensure_ascii=False)


def pack_ids(ids):
    out = []
    for v in ids:
        if not 0 <= v < 262144:
            raise ValueError(f'id {v} does not fit 3 base64 digits')
        out.append(B64[v >> 12] + B64[(v >> 6) & 63] + B64[v & 63])
    return ''.join(out)


def gpt2_reference():
    fd, tmp = tempfile.mkstemp(prefix='quire-oracle-gpt2-', suffix='.json')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(gpt2_tokenizer_json(read_gguf(os.path.join(FIXTURES, 'models/vocab-fixtures/ggml-vocab-gpt-2.gguf'))),
                  f, ensure_ascii=False)
    return tmp


# Reference tokenizers run by HF here. base: "shared" (copied from ../shared) or "fixtures", both under tests/fixtures
# (QUIRE_FIXTURES), as the C test resolves them; n: only the first n corpus strings.
# gpt2: HF has no GPT-2 tokenizer.json here, so one is built from the GGUF vocabulary
# (gguf_to_tokenizer_json.py; it reproduces all 46 ggml-vocab-gpt-2 cases) into a
# temporary file, and quire is tested by loading the GGUF itself.
TOKENIZERS = [
    {'name': 'minilm', 'base': 'shared', 'rel': 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json'},
    {'name': 'qwen2.5', 'base': 'shared', 'rel': 'models/qwen2.5-tokenizer/tokenizer.json'},
    {'name': 'llama3', 'base': 'shared', 'rel': 'models/llama3-tokenizer/tokenizer.json'},
    {'name': 'llama2', 'base': 'fixtures', 'rel': 'tokenizer/llama2-tokenizer.json'},
    {'name': 'gpt-2.gguf', 'base': 'shared', 'rel': 'models/vocab-fixtures/ggml-vocab-gpt-2.gguf', 'format': 'gguf',
     'reference': gpt2_reference},
]
# GGUF vocabularies identical to a reference above (checked by verify_same_vocab.py:
# pieces, scores and types; BERT pieces after undoing the converter's "▁"/"##" mapping)
# reuse its ids: quire loads the GGUF, the expected ids are the reference's.
SPM_MODEL = os.path.join(SHARED, 'models/llama2-spm-tokenizer/tokenizer.model')
MINILM_JSON = os.path.join(FIXTURES, 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json')
ALIASES = [
    {'name': 'bert-bge.gguf', 'ids': 'minilm', 'base': 'shared', 'rel': 'models/vocab-fixtures/ggml-vocab-bert-bge.gguf',
     'same': lambda f: same_bert(f, MINILM_JSON)},
    {'name': 'llama-spm.gguf', 'ids': 'llama2', 'base': 'shared', 'rel': 'models/vocab-fixtures/ggml-vocab-llama-spm.gguf',
     'same': lambda f: same_spm(f, SPM_MODEL)},
    {'name': 'tiny-random-llama-2.gguf', 'ids': 'llama2', 'base': 'shared',
     'rel': 'models/tiny-random-llama-2/llama-2-tiny-random.gguf', 'same': lambda f: same_spm(f, SPM_MODEL)},
    # format json2gguf: the C test writes a GGUF vocabulary from this tokenizer.json the way
    # llama.cpp's converter does (tokens by id, special added tokens as control, other added
    # tokens as user-defined, merges, tokenizer.ggml.pre = pre) and loads that.
    {'name': 'qwen2.5.json2gguf', 'ids': 'qwen2.5', 'format': 'json2gguf', 'pre': 'qwen2', 'base': 'shared',
     'rel': 'models/qwen2.5-tokenizer/tokenizer.json', 'same': lambda f: None},
    {'name': 'llama3.json2gguf', 'ids': 'llama3', 'format': 'json2gguf', 'pre': 'llama-bpe', 'base': 'shared',
     'rel': 'models/llama3-tokenizer/tokenizer.json', 'same': lambda f: None},
]


def resolve(t):
    return os.path.join(FIXTURES, t['rel'])


def find_subarray(hay, needle):
    for i in range(len(hay) - len(needle) + 1):
        if hay[i:i + len(needle)] == needle:
            return i
    return -1


def write_lines(path, lines):
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv):
    n, coverage, out_dir = 10000, True, os.path.join(ROOT, 'tests', 'fixtures', 'tokenizer', 'oracle')
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == '--no-coverage':
            coverage = False
        elif a == '--out':
            out_dir = args.pop(0)
        else:
            n = int(a)
    os.makedirs(out_dir, exist_ok=True)
    corpus = make_corpus(n) + (unicode_coverage() if coverage else [])
    write_lines(os.path.join(out_dir, 'corpus.jsonl'), [jstr(s) for s in corpus])

    manifest = {
        'generator': 'tools/oracle/gen_fixtures.py',
        'reference': f'tokenizers (Python) {tokenizers.__version__}',
        'n_strings': len(corpus),
        'n_generated': n,
        'tokenizers': [],
    }
    for t in TOKENIZERS:
        file = t['reference']() if 'reference' in t else resolve(t)
        tok = Tokenizer.from_file(file)
        if 'reference' in t:
            os.unlink(file)
        texts = corpus[:t.get('n', len(corpus))]
        # Decoded: the first N_DEC strings and the coverage strings after the generated ones.
        head = min(N_DEC, len(texts))
        tail_from = max(head, min(n, len(texts)))
        dec_idx = list(range(head)) + list(range(tail_from, len(texts)))
        n_dec = len(dec_idx)
        tok.no_truncation()
        tok.no_padding()
        plain = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        with_sp = [e.ids for e in tok.encode_batch(texts, add_special_tokens=True)]

        # Learn the post-processor's prefix/suffix from one plain word.
        probe = tok.encode('hello', add_special_tokens=True).ids
        core = tok.encode('hello', add_special_tokens=False).ids
        at = find_subarray(probe, core)
        if at < 0:
            raise RuntimeError(f"{t['name']}: cannot locate core ids in the special encoding")
        prefix, suffix = probe[:at], probe[at + len(core):]
        exceptions = [{'index': i, 'ids': got} for i, got in enumerate(with_sp) if got != prefix + plain[i] + suffix]

        dec, decs = [], []
        same = same_skip = 0
        for i in dec_idx:
            d = tok.decode(plain[i], skip_special_tokens=False)
            if d == corpus[i]:
                dec.append('=')
                same += 1
            else:
                dec.append(jstr(d))
            ds = tok.decode(with_sp[i], skip_special_tokens=True)
            if ds == d:
                decs.append('=')
                same_skip += 1
            else:
                decs.append(jstr(ds))
        write_lines(os.path.join(out_dir, f"{t['name']}.ids"), [pack_ids(x) for x in plain])
        write_lines(os.path.join(out_dir, f"{t['name']}.dec"), dec)
        write_lines(os.path.join(out_dir, f"{t['name']}.decs"), decs)
        n_ids = sum(len(x) for x in plain)
        manifest['tokenizers'].append({
            'name': t['name'],
            'format': t.get('format', 'json'),
            'base': t['base'],
            'path': t['rel'],
            'ids': t['name'],
            'n_strings': len(texts),
            'overrides': {'truncation': 'disabled', 'padding': 'disabled'},
            'special_prefix': prefix,
            'special_suffix': suffix,
            'special_exceptions': exceptions,
            'n_ids': n_ids,
            'n_decoded': n_dec,
            'decoded_head': head,
            'decoded_tail_from': tail_from,
            'decode_roundtrip_exact': same,
        })
        print(f"{t['name']}: {n_ids} ids, {len(exceptions)} special exceptions, "
              f"decode == input for {same}/{n_dec}, skip-special decode == decode for {same_skip}")
    for a in ALIASES:
        src = next(e for e in manifest['tokenizers'] if e['name'] == a['ids'])
        diff = a['same'](os.path.join(FIXTURES, a['rel']))
        if diff:
            raise RuntimeError(f"{a['name']}: not the vocabulary of {a['ids']}: {diff}")
        entry = {**src, 'name': a['name'], 'format': a.get('format', 'gguf'), 'base': a['base'], 'path': a['rel'],
                 'ids': a['ids']}
        if 'pre' in a:
            entry['pre'] = a['pre']
        manifest['tokenizers'].append(entry)
    with open(os.path.join(out_dir, 'manifest.json'), 'w', encoding='utf-8') as f:
        f.write(json.dumps(manifest, indent=1, ensure_ascii=False) + '\n')


if __name__ == '__main__':
    main(sys.argv[1:])
