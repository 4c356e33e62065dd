// Checks that a GGUF vocabulary is the same vocabulary as a reference tokenizer, so the
// reference's expected ids apply to it (used by gen_fixtures.mjs before aliasing):
//   SentencePiece: tokenizer.ggml.tokens / scores / token_type equal the tokenizer.model
//                  pieces / scores (as float32) / types, id by id;
//   BERT:          tokenizer.ggml.tokens equal the tokenizer.json WordPiece vocabulary after
//                  llama.cpp's converter mapping ("##x" → "x", "[X]" kept, "x" → "▁x").
//
//   node verify_same_vocab.mjs   (checks the pairs used by the fixtures)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGguf } from './gguf_to_tokenizer_json.mjs';
import { parseModel } from './spm_to_tokenizer_json.mjs';

export function sameSpm(ggufPath, modelPath) {
    const kv = readGguf(ggufPath);
    const { pieces } = parseModel(modelPath);
    const t = kv['tokenizer.ggml.tokens'], s = kv['tokenizer.ggml.scores'], ty = kv['tokenizer.ggml.token_type'];
    if (t.length !== pieces.length) return `${t.length} vs ${pieces.length} tokens`;
    for (let i = 0; i < t.length; i++) {
        if (t[i] !== pieces[i].piece || Math.fround(s[i]) !== Math.fround(pieces[i].score) || ty[i] !== pieces[i].type)
            return `id ${i} differs`;
    }
    return null;
}

export function sameBert(ggufPath, jsonPath) {
    const t = readGguf(ggufPath)['tokenizer.ggml.tokens'];
    const vocab = JSON.parse(fs.readFileSync(jsonPath, 'utf8')).model.vocab;
    const byId = [];
    for (const [k, v] of Object.entries(vocab)) byId[v] = k;
    const phantom = (w) => (w.startsWith('[') && w.endsWith(']') ? w : w.startsWith('##') ? w.slice(2) : '\u2581' + w);
    if (t.length !== byId.length) return `${t.length} vs ${byId.length} tokens`;
    for (let i = 0; i < t.length; i++) if (t[i] !== phantom(byId[i])) return `id ${i} differs`;
    return null;
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'models');
    const spm = path.join(shared, 'llama2-spm-tokenizer/tokenizer.model');
    const checks = [
        ['llama-spm', sameSpm(path.join(shared, 'vocab-fixtures/ggml-vocab-llama-spm.gguf'), spm)],
        ['tiny-random-llama-2', sameSpm(path.join(shared, 'tiny-random-llama-2/llama-2-tiny-random.gguf'), spm)],
        ['bert-bge', sameBert(path.join(shared, 'vocab-fixtures/ggml-vocab-bert-bge.gguf'),
            path.join(shared, 'all-MiniLM-L6-v2-tokenizer/tokenizer.json'))],
    ];
    for (const [n, r] of checks) console.log(`${n}: ${r ? 'DIFFERENT: ' + r : 'same vocabulary'}`);
    process.exit(checks.some((c) => c[1]) ? 1 : 0);
}
