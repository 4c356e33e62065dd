// Anchor for bench/bench_tokenizer: the Hugging Face tokenizers library (Rust core, Node binding)
// encoding the same SciFact corpus lines, one call per document, no special tokens, single thread
// (RAYON_NUM_THREADS=1), both per document and as one batch call. Usage: node bench_anchor.mjs SHARED_DIR
import { Tokenizer } from 'tokenizers';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const shared = process.argv[2] || '../../../shared';   // SciFact from SHARED_DIR/data
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'fixtures');
const docs = readFileSync(`${shared}/data/scifact/corpus.jsonl`, 'utf8').split('\n').filter(Boolean)
  .map((l) => { const o = JSON.parse(l); return `${o.title}\n${o.text}`; });
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d), 0);
const files = {
  minilm: `${fixtures}/models/all-MiniLM-L6-v2-tokenizer/tokenizer.json`,
  'qwen2.5': `${fixtures}/models/qwen2.5-tokenizer/tokenizer.json`,
  llama3: `${fixtures}/models/llama3-tokenizer/tokenizer.json`,
};
for (const [name, path] of Object.entries(files)) {
  const tok = Tokenizer.fromFile(path);
  tok.setTruncation(1 << 30);
  tok.setPadding({ maxLength: 0 });
  tok.disablePadding();
  tok.disableTruncation();
  // encode: one async call per document; encodeBatch: one call for all (less binding overhead).
  for (const mode of ['encode', 'encodeBatch']) {
    let best = Infinity, ntok = 0;
    for (let r = 0; r < 3; r++) {
      const t0 = process.hrtime.bigint();
      ntok = 0;
      if (mode === 'encode') {
        for (const d of docs) ntok += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
      } else {
        for (const e of await tok.encodeBatch(docs, { addSpecialTokens: false })) ntok += e.getIds().length;
      }
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    console.log(`${name.padEnd(8)} scifact  ${mode.padEnd(11)} ${(bytes / 1e6 / best).toFixed(2)} MB/s  ` +
      `(${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, ${ntok} tokens)`);
  }
}
