// Checks a tokenizer.json against llama.cpp-style vocab fixtures with the Hugging Face
// `tokenizers` library: FILE.inp holds test strings, each followed by a line
// "__ggml_vocab_test__"; line i of FILE.out holds the expected ids of string i
// (no special tokens), space-separated (with a leading space).
//
//   node check_vocab_fixtures.mjs tokenizer.json ../../tests/fixtures/models/vocab-fixtures/ggml-vocab-llama-spm.gguf

import fs from 'node:fs';
import tokenizers from 'tokenizers';

export function readVocabFixture(base) {
    const inp = fs.readFileSync(`${base}.inp`, 'utf8');
    const parts = inp.split('\n__ggml_vocab_test__\n');
    if (parts[parts.length - 1] !== '') throw new Error(`${base}.inp: does not end with a separator line`);
    parts.pop();
    const out = fs.readFileSync(`${base}.out`, 'utf8').split('\n');
    if (out[out.length - 1] === '') out.pop();
    if (out.length !== parts.length) throw new Error(`${base}: ${parts.length} strings but ${out.length} id lines`);
    return parts.map((text, i) => ({ text, ids: out[i].trim() === '' ? [] : out[i].trim().split(/ +/).map(Number) }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const [json, base] = process.argv.slice(2);
    const tok = tokenizers.Tokenizer.fromFile(json);
    tok.disableTruncation();
    tok.disablePadding();
    const cases = readVocabFixture(base);
    let bad = 0;
    for (const c of cases) {
        const got = (await tok.encode(c.text, null, { addSpecialTokens: false })).getIds();
        if (got.join(' ') !== c.ids.join(' ')) {
            bad++;
            console.log(`MISMATCH ${JSON.stringify(c.text)}\n  want ${c.ids.join(' ')}\n  got  ${got.join(' ')}`);
        }
    }
    console.log(`${json} vs ${base}: ${cases.length - bad}/${cases.length} identical`);
    process.exit(bad ? 1 : 0);
}
