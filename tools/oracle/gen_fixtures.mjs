// Writes quire's tokenizer oracle fixtures with the Hugging Face `tokenizers`
// library (npm package, Rust core) as the independent reference.
//
//   cd tools/oracle && npm ci && node gen_fixtures.mjs [N]
//
// Output, under tests/fixtures/tokenizer/oracle/:
//   corpus.jsonl     one JSON string per line (the text to encode), N lines
//   NAME.ids         line i: ids of corpus[i] with addSpecialTokens=false, each id as exactly
//                    3 characters of the base64 alphabet A-Za-z0-9+/ (6 bits each, most
//                    significant first: id = c0*4096 + c1*64 + c2), no separators; this keeps
//                    the fixtures small (ids < 262144)
//   NAME.dec         line i (for the first N_DEC strings): decode(ids of line i,
//                    skipSpecialTokens=false): "=" when it equals corpus[i] exactly,
//                    otherwise the decoded text as a JSON string
//   NAME.decs        line i (same strings): decode(ids with addSpecialTokens=true,
//                    skipSpecialTokens=true): "=" when it equals the NAME.dec text of line i,
//                    otherwise the decoded text as a JSON string
//   manifest.json    per tokenizer: where the tokenizer quire loads lives (format json:
//                    tokenizer.json, gguf: a GGUF vocabulary), which .ids/.dec files hold its
//                    expected output ("ids") and for how many corpus strings ("n_strings"), the ids the post-processor
//                    adds with addSpecialTokens=true (prefix/suffix, checked on every string
//                    here; any string where that does not hold is listed in full under
//                    "special_exceptions"), and what was overridden (truncation/padding).
//
// MiniLM's tokenizer.json enables truncation and padding to 128; both are
// disabled for every tokenizer here so the ids are complete and unpadded.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import tokenizers from 'tokenizers';
import { makeCorpus } from './corpus.mjs';
import { readGguf, gpt2TokenizerJson } from './gguf_to_tokenizer_json.mjs';
import { sameBert, sameSpm } from './verify_same_vocab.mjs';

const { Tokenizer } = tokenizers;
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
// base "shared" and "fixtures" both resolve under tests/fixtures (the ../shared/models files the
// tests use are committed in tests/fixtures/models with the same path); only SPM_MODEL, an input of
// the vocabulary check, is read from ../shared.
const fixtures = path.join(root, 'tests', 'fixtures');
const shared = path.resolve(root, '..', 'shared');
const outDir = path.join(root, 'tests', 'fixtures', 'tokenizer', 'oracle');
const N = parseInt(process.argv[2] || '10000', 10);
const N_DEC = 2000;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const packIds = (ids) => ids.map((v) => {
    if (v < 0 || v >= 262144) throw new Error(`id ${v} does not fit 3 base64 digits`);
    return B64[v >> 12] + B64[(v >> 6) & 63] + B64[v & 63];
}).join('');
const version = createRequire(import.meta.url)('tokenizers/package.json').version;

// Reference tokenizers run by HF here. base: "shared" (copied from ../shared) or "fixtures",
// both under tests/fixtures (QUIRE_FIXTURES) as the C test resolves them; n: only the first n corpus strings.
// gpt2: HF has no GPT-2 tokenizer.json here, so one is built from the GGUF vocabulary
// (gguf_to_tokenizer_json.mjs; it reproduces all 46 ggml-vocab-gpt-2 cases) into a
// temporary file, and quire is tested by loading the GGUF itself.
const TOKENIZERS = [
    { name: 'minilm', base: 'shared', rel: 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json' },
    { name: 'qwen2.5', base: 'shared', rel: 'models/qwen2.5-tokenizer/tokenizer.json' },
    { name: 'llama3', base: 'shared', rel: 'models/llama3-tokenizer/tokenizer.json' },
    { name: 'llama2', base: 'fixtures', rel: 'tokenizer/llama2-tokenizer.json' },
    { name: 'gpt-2.gguf', base: 'shared', rel: 'models/vocab-fixtures/ggml-vocab-gpt-2.gguf', format: 'gguf', n: 3000,
        reference: () => {
            const tmp = path.join(os.tmpdir(), `quire-oracle-gpt2-${process.pid}.json`);
            fs.writeFileSync(tmp, JSON.stringify(gpt2TokenizerJson(readGguf(path.join(fixtures, 'models/vocab-fixtures/ggml-vocab-gpt-2.gguf')))));
            return tmp;
        } },
];
// GGUF vocabularies identical to a reference above (checked by verify_same_vocab.mjs:
// pieces, scores and types; BERT pieces after undoing the converter's "▁"/"##" mapping)
// reuse its ids: quire loads the GGUF, the expected ids are the reference's.
const SPM_MODEL = 'models/llama2-spm-tokenizer/tokenizer.model';
const MINILM_JSON = 'models/all-MiniLM-L6-v2-tokenizer/tokenizer.json';
const ALIASES = [
    { name: 'bert-bge.gguf', ids: 'minilm', base: 'shared', rel: 'models/vocab-fixtures/ggml-vocab-bert-bge.gguf',
        same: (f) => sameBert(f, path.join(fixtures, MINILM_JSON)) },
    { name: 'llama-spm.gguf', ids: 'llama2', base: 'shared', rel: 'models/vocab-fixtures/ggml-vocab-llama-spm.gguf',
        same: (f) => sameSpm(f, path.join(shared, SPM_MODEL)) },
    { name: 'tiny-random-llama-2.gguf', ids: 'llama2', base: 'shared',
        rel: 'models/tiny-random-llama-2/llama-2-tiny-random.gguf', same: (f) => sameSpm(f, path.join(shared, SPM_MODEL)) },
    // format json2gguf: the C test writes a GGUF vocabulary from this tokenizer.json the way
    // llama.cpp's converter does (tokens by id, special added tokens as control, other added
    // tokens as user-defined, merges, tokenizer.ggml.pre = pre) and loads that.
    { name: 'qwen2.5.json2gguf', ids: 'qwen2.5', format: 'json2gguf', pre: 'qwen2', base: 'shared',
        rel: 'models/qwen2.5-tokenizer/tokenizer.json', same: () => null },
    { name: 'llama3.json2gguf', ids: 'llama3', format: 'json2gguf', pre: 'llama-bpe', base: 'shared',
        rel: 'models/llama3-tokenizer/tokenizer.json', same: () => null },
];

const resolve = (t) => path.join(fixtures, t.rel);

async function encodeAll(tok, texts, addSpecialTokens) {
    const out = [];
    const B = 512;
    for (let i = 0; i < texts.length; i += B) {
        const encs = await tok.encodeBatch(texts.slice(i, i + B), { addSpecialTokens });
        for (const e of encs) out.push(e.getIds());
    }
    return out;
}

function findSubarray(hay, needle) {
    for (let i = 0; i + needle.length <= hay.length; i++) {
        let ok = true;
        for (let j = 0; j < needle.length && ok; j++) ok = hay[i + j] === needle[j];
        if (ok) return i;
    }
    return -1;
}

async function main() {
    fs.mkdirSync(outDir, { recursive: true });
    const corpus = makeCorpus(N);
    fs.writeFileSync(path.join(outDir, 'corpus.jsonl'), corpus.map((s) => JSON.stringify(s)).join('\n') + '\n');

    const manifest = {
        generator: 'tools/oracle/gen_fixtures.mjs',
        reference: `tokenizers (npm) ${version}`,
        n_strings: corpus.length,
        tokenizers: [],
    };
    for (const t of TOKENIZERS) {
        const file = t.reference ? t.reference() : resolve(t);
        const tok = Tokenizer.fromFile(file);
        const texts = corpus.slice(0, t.n || corpus.length);
        const nDec = Math.min(N_DEC, texts.length);
        tok.disableTruncation();
        tok.disablePadding();
        const plain = await encodeAll(tok, texts, false);
        const withSp = await encodeAll(tok, texts, true);

        // Learn the post-processor's prefix/suffix from one plain word.
        const probe = (await tok.encode('hello', null, { addSpecialTokens: true })).getIds();
        const core = (await tok.encode('hello', null, { addSpecialTokens: false })).getIds();
        const at = findSubarray(probe, core);
        if (at < 0) throw new Error(`${t.name}: cannot locate core ids in the special encoding`);
        const prefix = probe.slice(0, at);
        const suffix = probe.slice(at + core.length);
        const exceptions = [];
        for (let i = 0; i < texts.length; i++) {
            const want = prefix.concat(plain[i], suffix);
            const got = withSp[i];
            if (got.length !== want.length || got.some((v, j) => v !== want[j])) exceptions.push({ index: i, ids: got });
        }

        const dec = [], decs = [];
        let same = 0, sameSkip = 0;
        for (let i = 0; i < nDec; i++) {
            const d = await tok.decode(plain[i], false);
            if (d === corpus[i]) {
                dec.push('=');
                same++;
            } else {
                dec.push(JSON.stringify(d));
            }
            const ds = await tok.decode(withSp[i], true);
            if (ds === d) {
                decs.push('=');
                sameSkip++;
            } else {
                decs.push(JSON.stringify(ds));
            }
        }
        if (t.reference) fs.unlinkSync(file);
        fs.writeFileSync(path.join(outDir, `${t.name}.ids`), plain.map(packIds).join('\n') + '\n');
        fs.writeFileSync(path.join(outDir, `${t.name}.dec`), dec.join('\n') + '\n');
        fs.writeFileSync(path.join(outDir, `${t.name}.decs`), decs.join('\n') + '\n');
        const n_ids = plain.reduce((a, x) => a + x.length, 0);
        manifest.tokenizers.push({
            name: t.name,
            format: t.format || 'json',
            base: t.base,
            path: t.rel,
            ids: t.name,
            n_strings: texts.length,
            overrides: { truncation: 'disabled', padding: 'disabled' },
            special_prefix: prefix,
            special_suffix: suffix,
            special_exceptions: exceptions,
            n_ids,
            n_decoded: nDec,
            decode_roundtrip_exact: same,
        });
        console.log(`${t.name}: ${n_ids} ids, ${exceptions.length} special exceptions, ` +
            `decode == input for ${same}/${nDec}, skip-special decode == decode for ${sameSkip}`);
    }
    for (const a of ALIASES) {
        const src = manifest.tokenizers.find((e) => e.name === a.ids);
        const diff = a.same(path.join(fixtures, a.rel));
        if (diff) throw new Error(`${a.name}: not the vocabulary of ${a.ids}: ${diff}`);
        manifest.tokenizers.push({ ...src, name: a.name, format: a.format || 'gguf', ...(a.pre ? { pre: a.pre } : {}),
            base: a.base, path: a.rel, ids: a.ids });
    }
    fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
