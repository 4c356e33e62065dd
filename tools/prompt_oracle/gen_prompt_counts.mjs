// Writes tests/fixtures/prompt/qwen_counts.json: for the question and sources in
// tests/fixtures/prompt/sources.json and k = 0..n sources, the prompt rendered with
// @huggingface/jinja from the Qwen2.5 chat template (tests/fixtures/models/qwen2.5-tokenizer)
// and its token count from the Hugging Face `tokenizers` library (encode without added
// special tokens, as apply_chat_template(tokenize=True) does). The user message format
// is written here independently from generate/prompt.c, following prompt.h.
//
//   (cd tools/oracle && npm ci) && (cd tools/jinja_oracle && npm ci)
//   node tools/prompt_oracle/gen_prompt_counts.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const reqTok = createRequire(path.join(root, 'tools', 'oracle', 'package.json'));
const reqJinja = createRequire(path.join(root, 'tools', 'jinja_oracle', 'package.json'));
const { Tokenizer } = reqTok('tokenizers');
const { Template } = reqJinja('@huggingface/jinja');

const INSTRUCTION =
  'Answer the question using only the numbered sources below. Cite the sources that support each ' +
  'statement with their numbers in square brackets, like [1] or [2, 3]. If the sources do not contain ' +
  'the answer, say so.';

const fx = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/prompt/sources.json'), 'utf8'));
const dir = path.join(root, 'tests', 'fixtures', 'models', 'qwen2.5-tokenizer');
const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
const tmpl = new Template(cfg.chat_template);

function label(s) {
  let l = s.path;
  if (s.title) l += ` "${s.title}"`;
  if (s.page > 0) l += `, page ${s.page}`;
  if (s.heading) l += `, section ${s.heading}`;
  return l;
}

function user(k) {
  let u = 'Sources:\n\n';
  for (let i = 0; i < k; i++) u += `[${i + 1}] ${label(fx.sources[i])}\n${fx.sources[i].text}\n\n`;
  if (k === 0) u += '(no sources)\n\n';
  return u + 'Question: ' + fx.question;
}

const out = [];
for (let k = 0; k <= fx.sources.length; k++) {
  const text = tmpl.render({
    messages: [{ role: 'system', content: INSTRUCTION }, { role: 'user', content: user(k) }],
    add_generation_prompt: true,
    bos_token: cfg.bos_token ?? null,
    eos_token: cfg.eos_token,
  });
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  out.push({ k, n_tokens: enc.getIds().length, text });
}
fs.writeFileSync(path.join(root, 'tests/fixtures/prompt/qwen_counts.json'), JSON.stringify(out, null, 1) + '\n');
console.log(out.map((o) => `${o.k}: ${o.n_tokens}`).join('\n'));
