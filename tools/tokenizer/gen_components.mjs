// Writes tests/fixtures/tokenizer/components.json: reference ids and decodes from the
// Hugging Face `tokenizers` library (npm, Rust core) for tokenizer.json variants that
// exercise pipeline components the shipped tokenizers do not use (other normalizers,
// pre-tokenizers and split behaviours, Metaspace schemes, unk/fuse_unk, BPE subword
// prefix/suffix, added-token options, post-processors, decoders).
//
//   cd tools/oracle && npm ci && node ../tokenizer/gen_components.mjs
//
// A variant = a base tokenizer.json (shared or fixtures: tests/fixtures/..., the shared ones
// copied there from ../shared with the same path,
// or an inline "tiny" model) with top-level keys replaced ("set"), model keys replaced
// ("model"; with "model_keep" the model object is first reduced to the listed keys), and
// added tokens appended ("added"). The C test (test_tok_components.c)
// applies the same edits with jansson and compares quire's output with:
//   ids      encode(text, addSpecialTokens=false)
//   ids_sp   encode(text, addSpecialTokens=true)        (variants with "special": true)
//   dec      decode(ids, skipSpecialTokens=false)        (variants with "decode": true)
//   dec_sp   decode(ids_sp, skipSpecialTokens=true)      (both flags)
// Variants with "special_as_text" are encoded by quire with QR_TOK_SPECIAL_AS_TEXT.
// Truncation and padding are disabled everywhere.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const req = createRequire(path.join(root, 'tools', 'oracle', 'package.json'));
const { Tokenizer } = req('tokenizers');
const version = req('tokenizers/package.json').version;

const W = '\u2581';
const tiny = (extra) => {
    // A hand-made BPE over "abcdefgh" with subword prefix "##" or suffix "</w>".
    const letters = 'abcdefgh'.split('');
    const vocab = { '[UNK]': 0 };
    const add = (t) => { if (!(t in vocab)) vocab[t] = Object.keys(vocab).length; };
    const merges = [];
    if (extra.prefix) {
        letters.forEach((c) => { add(c); add('##' + c); });
        for (const [a, b] of [['a', '##b'], ['##c', '##d'], ['ab', '##cd'], ['e', '##f'], ['##g', '##h'], ['##e', '##f'], ['ef', '##gh'], ['##a', '##b']]) {
            merges.push([a, b]);
            add(a + b.slice(2));
        }
    } else {
        letters.forEach((c) => { add(c); add(c + '</w>'); });
        for (const [a, b] of [['a', 'b'], ['c', 'd</w>'], ['ab', 'cd</w>'], ['e', 'f'], ['g', 'h</w>'], ['ef', 'gh</w>'], ['a', 'b</w>']]) {
            merges.push([a, b]);
            add(a + b);
        }
    }
    return {
        version: '1.0', truncation: null, padding: null,
        added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
        normalizer: null,
        pre_tokenizer: { type: 'WhitespaceSplit' },
        post_processor: null,
        decoder: null,
        model: {
            type: 'BPE', dropout: null, unk_token: '[UNK]',
            continuing_subword_prefix: extra.prefix ? '##' : null,
            end_of_word_suffix: extra.prefix ? null : '</w>',
            fuse_unk: !!extra.fuse, byte_fallback: false, ignore_merges: false, vocab, merges,
        },
    };
};

const BASES = {
    wp: { base: 'shared', rel: 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json' },
    bl: { base: 'shared', rel: 'models/qwen2.5-tokenizer/tokenizer.json' },
    spm: { base: 'fixtures', rel: 'tokenizer/llama2-tokenizer.json' },
    tiny_prefix: { inline: tiny({ prefix: true }) },
    tiny_suffix: { inline: tiny({ prefix: false, fuse: true }) },
};

const ws = { type: 'WhitespaceSplit' };
const V = [
    // WordPiece / BERT
    { name: 'wp_default', base: 'wp', special: true, decode: true },
    { name: 'wp_bert_nolower', base: 'wp', set: { normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: true, lowercase: false } } },
    { name: 'wp_bert_raw', base: 'wp', set: { normalizer: { type: 'BertNormalizer', clean_text: false, handle_chinese_chars: false, strip_accents: false, lowercase: true } } },
    { name: 'wp_nfkc_lower_strip', base: 'wp', set: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'StripAccents' }] } } },
    { name: 'wp_nfd_replace', base: 'wp', set: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }, { type: 'Replace', pattern: { Regex: '\\d+' }, content: '0' }, { type: 'Replace', pattern: { String: 'o' }, content: 'oo' }] } } },
    { name: 'wp_nfkd_strip_left', base: 'wp', set: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: false }] } } },
    { name: 'wp_whitespace', base: 'wp', set: { pre_tokenizer: { type: 'Whitespace' } } },
    { name: 'wp_wsplit', base: 'wp', set: { pre_tokenizer: ws } },
    ...['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].map((b) => (
        { name: 'wp_punct_' + b, base: 'wp', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [ws, { type: 'Punctuation', behavior: b }] } } })),
    { name: 'wp_digits_individual', base: 'wp', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [ws, { type: 'Digits', individual_digits: true }] } } },
    { name: 'wp_digits_grouped', base: 'wp', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: false }, ws] } } },
    { name: 'wp_split_dash', base: 'wp', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [ws, { type: 'Split', pattern: { String: '-' }, behavior: 'Isolated', invert: false }] } } },
    { name: 'wp_split_space_removed', base: 'wp', set: { pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'Removed', invert: false } } },
    { name: 'wp_split_vowels_invert', base: 'wp', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [ws, { type: 'Split', pattern: { Regex: '[aeiou]+' }, behavior: 'MergedWithNext', invert: true }] } } },
    { name: 'wp_split_regex_prev', base: 'wp', set: { pre_tokenizer: { type: 'Split', pattern: { Regex: '\\s+|[.,!?]' }, behavior: 'MergedWithPrevious', invert: false } } },
    { name: 'wp_bertproc', base: 'wp', special: true, decode: true, set: { post_processor: { type: 'BertProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101] }, decoder: { type: 'WordPiece', prefix: '##', cleanup: false } } },
    { name: 'wp_robertaproc', base: 'wp', special: true, set: { post_processor: { type: 'RobertaProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101], trim_offsets: true, add_prefix_space: false } } },
    { name: 'wp_added', base: 'wp', special: true, decode: true, added: [
        { id: 30522, content: '<ent>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: false },
        { id: 30523, content: 'Foo Bar', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
        { id: 2088, content: 'world', single_word: true, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: 30524, content: 'ing', single_word: false, lstrip: false, rstrip: true, normalized: true, special: false },
    ] },
    // SentencePiece-style BPE (Llama-2 vocabulary)
    { name: 'spm_default', base: 'spm', special: true, decode: true },
    { name: 'spm_meta_always', base: 'spm', decode: true, set: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: W, prepend_scheme: 'always', split: false }, decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: W, prepend_scheme: 'always', split: false }] } } },
    { name: 'spm_meta_first_split', base: 'spm', decode: true, special: true, set: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: W, prepend_scheme: 'first', split: true }, decoder: { type: 'Metaspace', replacement: W, prepend_scheme: 'first', split: true } } },
    { name: 'spm_meta_never', base: 'spm', decode: true, set: { normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: W, prepend_scheme: 'never', split: true }, decoder: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: W, prepend_scheme: 'never', split: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] } } },
    { name: 'spm_unk_fused', base: 'spm', decode: true, model: { byte_fallback: false, fuse_unk: true } },
    { name: 'spm_unk_unfused', base: 'spm', model: { byte_fallback: false, fuse_unk: false } },
    { name: 'spm_added', base: 'spm', special: true, decode: true, added: [
        { id: 32000, content: '<x>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
        { id: 32001, content: '[ab]', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
        { id: 32002, content: 'hello', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false },
    ] },
    { name: 'spm_dec_replace_strip', base: 'spm', decode: true, set: { decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { Regex: W + '+' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 0 }] } } },
    // Byte-level BPE (Qwen2.5 vocabulary)
    { name: 'bl_default', base: 'bl', special: true, decode: true },
    { name: 'bl_gpt2', base: 'bl', decode: true, set: { normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } } },
    { name: 'bl_gpt2_noprefix', base: 'bl', set: { normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } } },
    { name: 'bl_digits', base: 'bl', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }] } } },
    { name: 'bl_prefix_each_split', base: 'bl', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: false }] } } },
    { name: 'bl_split_ws_prev', base: 'bl', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithPrevious', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] } } },
    { name: 'bl_split_punct_contig', base: 'bl', set: { pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{P}' }, behavior: 'Contiguous', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] } } },
    { name: 'bl_ignore_merges', base: 'bl', model: { ignore_merges: true } },
    { name: 'bl_nfkd_lower', base: 'bl', set: { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Lowercase' }] } } },
    { name: 'bl_post_seq', base: 'bl', special: true, decode: true, set: { post_processor: { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }, { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|im_end|>', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [151644], tokens: ['<|im_start|>'] }, '<|im_end|>': { id: '<|im_end|>', ids: [151645], tokens: ['<|im_end|>'] } } }] } } },
    { name: 'bl_no_decoder', base: 'bl', decode: true, set: { decoder: null } },
    // QR_TOK_SPECIAL_AS_TEXT (HF encode_special_tokens = true): the reference is the same
    // tokenizer without its special added tokens (so they are not matched in text);
    // quire loads the unmodified file and passes the flag.
    { name: 'wp_special_as_text', base: 'wp', special: true, special_as_text: true },
    { name: 'spm_special_as_text', base: 'spm', special: true, special_as_text: true },
    { name: 'bl_special_as_text', base: 'bl', special: true, special_as_text: true, set: { post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [151644], tokens: ['<|im_start|>'] } } } } },
    // WordLevel model (MiniLM vocabulary as a word list), no decoder; BPEDecoder; CTC decoder
    { name: 'wl_minilm', base: 'wp', decode: true, model_keep: ['vocab'], model: { type: 'WordLevel', unk_token: '[UNK]' }, set: { pre_tokenizer: ws, decoder: null } },
    { name: 'wp_ctc', base: 'wp', decode: true, set: { decoder: { type: 'CTC', pad_token: '[PAD]', word_delimiter_token: '|', cleanup: true } } },
    { name: 'tiny_suffix_bpedec', base: 'tiny_suffix', decode: true, set: { decoder: { type: 'BPEDecoder', suffix: '</w>' } } },
    // Tiny BPE models: continuing_subword_prefix, end_of_word_suffix, unk fusing
    { name: 'tiny_prefix', base: 'tiny_prefix', decode: true },
    { name: 'tiny_suffix', base: 'tiny_suffix', decode: true },
];

const TARGETED = [
    'abcd efgh abcdefgh ab cd ef gh', 'abxcd hhh gfe', 'a-b--c d—e', '  leading and trailing  ', 'Foo Bar foo bar FOO BAR',
    'xFoo Bar', 'hello world, worldly world_ world!', 'a <ent> b<ent>c  <ent>  d', 'ringing sing ing', 'x<x> <x>  y',
    '[ab]  z [ab]', 'hello hellos ahello hello', 'He said: "don\'t!" ... ok?!', 'call 0800-555-1234 or 12,345.67',
    'ÉCOLE Ünïcödé ﬁ ² ㎏ Ⅻ', '  \t spaced   out\n\n', 'x' + '-'.repeat(30) + 'y', 'İstanbul ΣΑΣ ß',
];

function loadBase(name) {
    const b = BASES[name];
    if (b.inline) return JSON.parse(JSON.stringify(b.inline));
    const p = path.join(root, 'tests', 'fixtures', b.rel);
    return JSON.parse(fs.readFileSync(p, 'utf8'));
}

function applyVariant(j, v) {
    j.truncation = null;
    j.padding = null;
    for (const [k, x] of Object.entries(v.set || {})) j[k] = x;
    if (v.model_keep) j.model = Object.fromEntries(v.model_keep.map((k) => [k, j.model[k]]));
    for (const [k, x] of Object.entries(v.model || {})) j.model[k] = x;
    if (v.added) j.added_tokens = j.added_tokens.concat(v.added);
    if (v.special_as_text) j.added_tokens = j.added_tokens.filter((a) => !a.special);
    return j;
}

const corpusLines = fs.readFileSync(path.join(root, 'tests', 'fixtures', 'tokenizer', 'oracle', 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l.length);
const texts = TARGETED.concat(corpusLines.slice(0, 110).map((l) => JSON.parse(l)), corpusLines.filter((_, i) => i >= 110 && i % 331 === 0).map((l) => JSON.parse(l)));

const out = { generator: 'tools/tokenizer/gen_components.mjs', reference: `tokenizers (npm) ${version}`, bases: {}, texts, variants: [] };
for (const [k, b] of Object.entries(BASES)) out.bases[k] = b.inline ? { inline: b.inline } : { base: b.base, path: b.rel };
for (const v of V) {
    const json = JSON.stringify(applyVariant(loadBase(v.base), v));
    const tok = Tokenizer.fromString(json);
    const cases = [];
    for (const text of texts) {
        const e = await tok.encode(text, null, { addSpecialTokens: false });
        const c = { ids: Array.from(e.getIds()) };
        if (v.special) c.ids_sp = Array.from((await tok.encode(text, null, { addSpecialTokens: true })).getIds());
        if (v.decode) {
            c.dec = await tok.decode(c.ids, false);
            if (v.special) c.dec_sp = await tok.decode(c.ids_sp, true);
        }
        cases.push(c);
    }
    const rec = { name: v.name, base: v.base, cases };
    for (const k of ['set', 'model', 'model_keep', 'added', 'special', 'decode', 'special_as_text']) if (v[k] !== undefined) rec[k] = v[k];
    out.variants.push(rec);
    process.stderr.write(`${v.name}: ${cases.reduce((a, c) => a + c.ids.length, 0)} ids\n`);
}
const dst = path.join(root, 'tests', 'fixtures', 'tokenizer', 'components.json');
fs.writeFileSync(dst, JSON.stringify(out) + '\n');
process.stderr.write(`wrote ${dst} (${fs.statSync(dst).size} bytes, ${texts.length} texts, ${V.length} variants)\n`);
