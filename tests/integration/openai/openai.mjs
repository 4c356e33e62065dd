// The official `openai` npm client (pinned in package.json / package-lock.json,
// installed here at test time with `npm ci`; SKIP 77 when that fails, e.g. no
// registry) against the real `quire serve` with a bearer token, used as a
// user would with baseURL pointing at the server:
//  - models.list;
//  - completions.create (greedy, stories260K) = `quire generate --prompt`;
//    streamed the same;
//  - chat.completions.create, streamed and not: = `quire generate` on the
//    plain prompt (stories260K has no chat template: contents joined by
//    newlines), same text both ways, usage adds up, same finish_reason;
//  - embeddings.create with the client's default encoding (it asks for
//    base64 and decodes) and with encoding_format "float": both = `quire
//    embed` within 1e-5;
//  - errors surface as the client's typed errors: AuthenticationError for a
//    wrong key, BadRequestError with param for max_tokens -1.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Test, buildStore, startServer, writeToken, quire, STORIES, EMBEDDER, SKIP } from '../lib/harness.mjs';
import { maxAbsDiff } from '../lib/compare.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

function install() {
    const pkg = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'));
    const want = pkg.dependencies.openai;
    const have = path.join(here, 'node_modules', 'openai', 'package.json');
    if (fs.existsSync(have) && JSON.parse(fs.readFileSync(have, 'utf8')).version === want) return want;
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel', 'error'], { cwd: here, encoding: 'utf8', timeout: 240000 });
    if (r.status !== 0) {
        console.log(`SKIP: npm ci of openai@${want} failed (no npm registry?):\n${(r.stderr || String(r.error)).slice(-1500)}`);
        process.exit(SKIP);
    }
    return want;
}

function cliGenerate(prompt, n) {
    const r = quire(['generate', '--model', STORIES, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(n), '--log-level', 'error']);
    return r.status === 0 ? r.stdout.replace(/\n$/, '') : null;
}

async function main() {
    const t = new Test('openai');
    const version = install();
    const { default: OpenAI } = await import('openai');
    t.note(`openai ${version}`);
    const store = buildStore(t);
    const tok = writeToken(t);
    const srv = await startServer(t, { store, llm: true, embedder: true, tokenFile: tok.file, token: tok.token });
    const client = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: tok.token, maxRetries: 0, timeout: 60000 });

    // models
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    t.ok(models.length === 2, `models.list: ${JSON.stringify(models)}`);
    const llm = models.find((m) => /stories/i.test(m)) || models[0];
    const emb = models.find((m) => m !== llm) || models[0];

    // completions = quire generate
    for (const [prompt, n] of [['Once upon a time', 24], ['Tim and Sue', 16]]) {
        const want = cliGenerate(prompt, n);
        const c = await client.completions.create({ model: llm, prompt, max_tokens: n, temperature: 0 });
        t.eq(c.choices[0].text, want, `completions.create ${JSON.stringify(prompt)} (greedy ${n}) = quire generate`);
        t.ok(c.usage && c.usage.completion_tokens === n && c.choices[0].finish_reason === 'length', 'completion usage and finish_reason', JSON.stringify(c));
        const s = await client.completions.create({ model: llm, prompt, max_tokens: n, temperature: 0, stream: true });
        let text = '';
        for await (const ch of s) text += ch.choices[0]?.text || '';
        t.eq(text, want, `completions.create stream ${JSON.stringify(prompt)} = quire generate`);
    }

    // chat completions, streamed and not
    const messages = [{ role: 'system', content: 'You tell short stories.' }, { role: 'user', content: 'Tell me about a cat.' }];
    const c = await client.chat.completions.create({ model: llm, messages, max_tokens: 32, temperature: 0 });
    const content = c.choices[0].message.content;
    t.ok(c.object === 'chat.completion' && c.choices[0].message.role === 'assistant' && typeof content === 'string' && content.length > 0,
        'chat.completions.create: assistant content', JSON.stringify(c));
    // no chat template in stories260K: the plain prompt format joins the contents with newlines
    t.eq(content, cliGenerate(messages.map((m) => m.content).join('\n'), 32),
        'chat.completions.create (greedy 32) = quire generate on the contents joined by newlines');
    t.ok(c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens && c.usage.completion_tokens <= 32, 'chat usage adds up', JSON.stringify(c.usage));
    const s = await client.chat.completions.create({ model: llm, messages, max_tokens: 32, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null, role = null;
    for await (const ch of s) {
        if (ch.usage) usage = ch.usage;
        const ch0 = ch.choices[0];
        if (!ch0) continue;
        role = role || ch0.delta.role;
        text += ch0.delta.content || '';
        finish = ch0.finish_reason || finish;
    }
    t.eq(text, content, 'chat stream: deltas add up to the non-streamed content (greedy)');
    t.eq(finish, c.choices[0].finish_reason, 'chat stream: same finish_reason');
    t.eq(role, 'assistant', 'chat stream: role in the first delta');
    t.eq(usage && usage.completion_tokens, c.usage.completion_tokens, 'chat stream: include_usage chunk');
    // the chat prompt is rendered from the messages: a different conversation gives a different prompt
    const c2 = await client.chat.completions.create({ model: llm, messages: [{ role: 'user', content: 'x' }], max_tokens: 4, temperature: 0 });
    t.ok(c2.usage.prompt_tokens < c.usage.prompt_tokens, `prompt_tokens follow the messages (${c2.usage.prompt_tokens} < ${c.usage.prompt_tokens})`);

    // embeddings = quire embed
    const inputs = ['hello world', 'Quire runs offline. It needs a C compiler.', 'The numbat eats termites.'];
    const r = quire(['embed', '--model', EMBEDDER, '--jsonl', '--log-level', 'error'], { input: inputs.map((x) => JSON.stringify(x)).join('\n') + '\n' });
    const want = r.status === 0 ? r.stdout.trim().split('\n').map((l) => JSON.parse(l)) : null;
    t.ok(want && want.length === 3, 'quire embed reference', r.stderr);
    for (const fmt of [undefined, 'float']) {
        const label = fmt ? `encoding_format ${fmt}` : "the client's default encoding (base64)";
        try {
            const e = await client.embeddings.create({ model: emb, input: inputs, ...(fmt ? { encoding_format: fmt } : {}) });
            const got = e.data.sort((x, y) => x.index - y.index).map((d) => Array.from(d.embedding));
            const worst = want ? Math.max(...got.map((g, i) => maxAbsDiff(g, want[i]))) : Infinity;
            t.ok(got.length === 3 && worst <= 1e-5, `embeddings.create with ${label} = quire embed within 1e-5 (max |diff| ${worst.toExponential(2)})`);
            t.ok(e.usage && e.usage.prompt_tokens > 0, `embeddings usage (${label})`, JSON.stringify(e.usage));
        } catch (err) {
            t.ok(false, `embeddings.create with ${label}`, `${err.status} ${err.message}`);
        }
    }
    const one = await client.embeddings.create({ model: emb, input: inputs[0], encoding_format: 'float' });
    t.ok(want && maxAbsDiff(one.data[0].embedding, want[0]) <= 1e-5, 'embeddings.create of one string');

    // typed errors
    try {
        await new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list();
        t.ok(false, 'a wrong key is refused');
    } catch (err) {
        t.ok(err instanceof OpenAI.AuthenticationError && err.status === 401, 'wrong key: AuthenticationError 401', `${err.constructor.name} ${err.status}`);
    }
    try {
        await client.chat.completions.create({ model: llm, messages, max_tokens: -1 });
        t.ok(false, 'max_tokens -1 is refused');
    } catch (err) {
        t.ok(err instanceof OpenAI.BadRequestError && err.status === 400 && err.param === 'max_tokens',
            'max_tokens -1: BadRequestError 400 with param max_tokens', `${err.constructor.name} ${err.status} ${err.param} ${err.message}`);
    }
    await srv.stopClean();
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
