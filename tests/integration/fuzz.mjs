// Seeded mutation fuzzing of the real server (deterministic: the same seed
// sends the same requests). Valid requests for every JSON route are mutated
// (a value anywhere in the body replaced by another type or an extreme, keys
// dropped or added, bytes flipped, inserted or cut) and sent over raw TCP.
// Every answer must be a complete HTTP response with a status the contract
// allows for bad input (2xx, 400, 404, 405, 411, 413, 415, 422, 503) and a
// JSON body; never a 500, a hang or a dropped connection; /health must answer
// after every 50 requests and at the end; SIGTERM then gives exit 0.
//   node fuzz.mjs [N=600] [SEED=1]
import { Test, buildStore, startServer, writeToken, rawExchange, parseResponse } from './lib/harness.mjs';

const N = Number(process.argv[2] || 600);
let seed = Number(process.argv[3] || 1) >>> 0 || 1;
function rnd() { // xorshift32
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const VALID = [
    ['/v1/search', { query: 'build from source', k: 3, filters: { path: '*.md', meta: { lang: 'en' } } }],
    ['/v1/ask', { question: 'How do I build Quire?', k: 2, max_tokens: 4, temperature: 0, top_p: 0.9, top_k: 10, seed: 3, stream: false }],
    ['/v1/ask', { question: 'How do I build Quire?', k: 2, max_tokens: 4, stream: true }],
    ['/v1/embeddings', { model: 'e', input: ['hello', 'world'], encoding_format: 'float' }],
    ['/v1/chat/completions', { model: 'm', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi' }], max_tokens: 4,
        temperature: 0.5, top_p: 0.9, seed: 1, stop: ['x', 'y'], stream: false, stream_options: { include_usage: true } }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], max_completion_tokens: 4, stream: true }],
    ['/v1/completions', { model: 'm', prompt: 'Once', max_tokens: 4, temperature: 0, stop: 'x', stream: false }],
    ['/v1/documents', { text: 'A fuzzed document about wombats.', name: 'fuzz/w.txt', meta: { lang: 'en' } }],
];
const EXTREMES = [null, true, false, 0, -1, 1, 1.5, -0.0, 1e308, -1e308, 2 ** 53 + 2, 2 ** 31, -(2 ** 63), '', 'x', 'é'.repeat(300),
    'a'.repeat(5000), [], [1], ['a'], {}, { a: 1 }, [[[[[[[[[[]]]]]]]]]], '\u0000', '\ud83d\ude80', '../../etc/passwd', '%s%n%x'];

function paths(v, p = []) {
    const out = [p];
    if (v && typeof v === 'object') for (const k of Object.keys(v)) out.push(...paths(v[k], [...p, k]));
    return out;
}
function setAt(obj, p, val) {
    if (!p.length) return val;
    const c = structuredClone(obj);
    let o = c;
    for (const k of p.slice(0, -1)) o = o[k];
    o[p[p.length - 1]] = val;
    return c;
}
function delAt(obj, p) {
    if (!p.length) return obj;
    const c = structuredClone(obj);
    let o = c;
    for (const k of p.slice(0, -1)) o = o[k];
    if (Array.isArray(o)) o.splice(Number(p[p.length - 1]), 1); else delete o[p[p.length - 1]];
    return c;
}

function mutate(body) {
    const kind = rnd();
    if (kind < 0.5) return Buffer.from(JSON.stringify(setAt(body, pick(paths(body)), pick(EXTREMES))));
    if (kind < 0.6) return Buffer.from(JSON.stringify(delAt(body, pick(paths(body)))));
    if (kind < 0.65) return Buffer.from(JSON.stringify({ ...body, [pick(['zz', '', 'k'.repeat(300), '\u00ff'])]: pick(EXTREMES) }));
    const b = Buffer.from(JSON.stringify(body));
    const i = Math.floor(rnd() * b.length);
    if (kind < 0.75) { b[i] ^= 1 << Math.floor(rnd() * 8); return b; }
    if (kind < 0.85) return b.subarray(0, i);
    const ins = Buffer.from([pick([0x00, 0xff, 0x22, 0x5c, 0x7b, 0x5b, 0x80, 0xc3, 0x0a])]);
    return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
}

const ALLOWED = new Set([200, 201, 400, 404, 405, 411, 413, 415, 422, 503]);

async function main() {
    const t = new Test('fuzz');
    const tok = writeToken(t);
    const store = buildStore(t);
    const srv = await startServer(t, { store, llm: true, embedder: true, tokenFile: tok.file, token: tok.token,
        extra: ['--max-gen-tokens', '16', '--max-body-bytes', '65536'] });
    const byStatus = {};
    let bad = 0;
    for (let n = 0; n < N; n++) {
        const [route, body] = pick(VALID);
        const data = mutate(body);
        const head = `POST ${route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok.token}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${data.length}\r\nConnection: close\r\n\r\n`;
        const r = await rawExchange(srv.host, srv.port, Buffer.concat([Buffer.from(head), data]), { timeout: 20000, oneResponse: false });
        const p = parseResponse(r.raw);
        byStatus[p.status || 'none'] = (byStatus[p.status || 'none'] || 0) + 1;
        let ok = p.status && ALLOWED.has(p.status);
        if (ok && p.status >= 400) {
            try { ok = typeof JSON.parse(p.body).error.message === 'string'; } catch { ok = false; }
        }
        if (!ok && bad++ < 10) {
            t.ok(false, `request ${n}: ${route} ${JSON.stringify(data.toString('latin1')).slice(0, 300)}`,
                `status ${p.status}, ${r.timedOut ? 'timed out' : r.closed ? 'closed' : r.error}: ${String(p.body).slice(0, 300)}`);
        }
        if (n % 50 === 49 && !t.ok(await srv.health(), `/health after ${n + 1} fuzzed requests`, srv.log().slice(-1500))) break;
    }
    t.note(`statuses: ${JSON.stringify(byStatus)}`);
    t.ok(bad === 0, `${N} fuzzed requests (seed ${process.argv[3] || 1}): every answer allowed (${JSON.stringify(byStatus)})`, `${bad} not`);
    t.ok(await srv.health(), '/health at the end');
    await srv.stopClean();
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
