// Life-cycle and security of the real server:
//  - auth with --token-file: /health open, every other route 401 (with
//    WWW-Authenticate: Bearer) without or with a wrong token, 200 with it; the
//    endpoint file names the token file but never holds the token; an empty
//    or blank token file is refused at start, a missing one is created 0600;
//  - a non-loopback --listen without a token file creates one (mode 0600),
//    says where, and enforces it;
//  - a client that disconnects during a streamed generation frees its slot
//    (--slots 1: the next request is served), /metrics counts the cancel;
//  - bounded queue: --slots 1 --queue 1 with one running and one waiting
//    generation refuses the next with 503, Retry-After and overloaded_error;
//  - SIGTERM during generations: exit 0 within the grace period, streams end,
//    the store is intact (CLI search gives the same results as before, a
//    document posted just before is on disk); SIGINT exits 0 too;
//  - draining with a long grace: the in-flight generation finishes; meanwhile
//    the server still accepts connections and /ready answers 503 "draining"
//    (Retry-After 5) on every poll, /health 200, new work 503 + Retry-After on
//    a kept-alive connection and on a new one; the process then exits 0.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Test, buildStore, startServer, writeToken, quire, parseSSE, metricSum, runAsync, QUIRE } from './lib/harness.mjs';

// A streamed request whose events can be watched while it runs.
function openStream(srv, p, body) {
    const data = Buffer.from(JSON.stringify(body));
    const h = { 'Content-Type': 'application/json', 'Content-Length': data.length };
    if (srv.token) h.Authorization = `Bearer ${srv.token}`;
    let raw = '', status = null, headers = null, firstResolve;
    const first = new Promise((r) => (firstResolve = r));
    const req = http.request({ host: srv.host, port: srv.port, method: 'POST', path: p, headers: h, agent: false });
    const done = new Promise((resolve) => {
        req.on('response', (res) => {
            status = res.statusCode;
            headers = res.headers;
            res.on('data', (d) => {
                raw += d;
                if (/\n\n/.test(raw)) firstResolve(true);
            });
            res.on('end', () => { firstResolve(false); resolve({ status, headers, raw, events: parseSSE(raw), ended: true }); });
            res.on('error', () => { firstResolve(false); resolve({ status, headers, raw, events: parseSSE(raw), ended: false }); });
            res.on('close', () => { firstResolve(false); resolve({ status, headers, raw, events: parseSSE(raw), ended: res.complete }); });
        });
        req.on('error', (e) => { firstResolve(false); resolve({ status, headers, raw, events: parseSSE(raw), error: e.code }); });
    });
    req.end(data);
    return { first, done, destroy: () => req.destroy(), get status() { return status; } };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const LONG = { prompt: 'Once', max_tokens: 2000, temperature: 0, stream: true };

async function auth(t, store) {
    const tok = writeToken(t);
    const srv = await startServer(t, { store, tokenFile: tok.file, token: tok.token });
    const ep = fs.readFileSync(srv.endpointFile, 'utf8');
    t.ok(!ep.includes(tok.token), 'the endpoint file does not contain the token');
    t.ok(srv.endpoint.tokenFile && path.resolve(srv.endpoint.tokenFile) === path.resolve(tok.file), 'the endpoint file names the token file', ep);
    let r = await srv.request('GET', '/health', undefined, { token: null });
    t.ok(r.status === 200, '/health without a token: 200', r.text);
    const routes = [['GET', '/ready'], ['GET', '/metrics'], ['GET', '/v1/models'], ['POST', '/v1/search', { query: 'build', k: 1 }],
        ['POST', '/v1/ask', { question: 'How do I build it?', k: 1 }]];
    for (const [m, p, b] of routes) {
        for (const [bad, label] of [[null, 'no token'], [tok.token.slice(0, -1) + 'X', 'wrong token'], ['', 'empty token']]) {
            r = await srv.request(m, p, b, { token: bad });
            t.ok(r.status === 401 && /^Bearer/i.test(r.headers['www-authenticate'] || '') && r.json && r.json.error &&
                r.json.error.type === 'authentication_error', `${m} ${p} with ${label}: 401 + WWW-Authenticate: Bearer`,
            `${r.status} ${r.headers['www-authenticate']} ${r.text}`);
        }
        r = await srv.request(m, p, b);
        t.ok(r.status === 200, `${m} ${p} with the token: 200`, r.text.slice(0, 300));
    }
    await srv.stopClean('auth server exits 0');

    // a token file that is empty or blank is refused (no silent "no auth"); a missing one is created
    for (const [name, text] of [['empty', ''], ['blank', '  \n\n']]) {
        const f = path.join(t.dir, `token-${name}`);
        fs.writeFileSync(f, text, { mode: 0o600 });
        const ep = path.join(t.dir, `ep-${name}.json`);
        const r = await runAsync(QUIRE, ['serve', '--store', store, '--listen', '127.0.0.1:0', '--token-file', f, '--endpoint-file', ep], { timeout: 20000 });
        t.ok(r.status !== 0 && r.signal === null && !fs.existsSync(ep) && r.stderr.includes(f),
            `an ${name} token file: serve refuses to start, naming the file (exit ${r.status})`, r.stderr);
    }
    const nf = path.join(t.dir, 'sub-token-new');
    const s2 = await startServer(t, { store, tokenFile: nf });
    t.ok(fs.existsSync(nf) && (fs.statSync(nf).mode & 0o777) === 0o600, 'a missing --token-file is created with mode 0600');
    const tok2 = fs.existsSync(nf) ? fs.readFileSync(nf, 'utf8').split('\n')[0].trim() : '';
    t.ok(tok2.length >= 32, `the created token is long (${tok2.length} characters)`);
    let r2 = await s2.request('GET', '/ready', undefined, { token: null });
    t.ok(r2.status === 401, 'created token file: no token, 401', r2.text);
    r2 = await s2.request('GET', '/ready', undefined, { token: tok2 });
    t.ok(r2.status === 200, 'created token file: its token, 200', r2.text);
    await s2.stopClean('created-token server exits 0');
}

async function generatedToken(t, store) {
    const srv = await startServer(t, { store, listen: '0.0.0.0:0' });
    const tf = srv.endpoint.tokenFile;
    t.ok(tf && fs.existsSync(tf), 'non-loopback listen without --token-file: a token file is created and named in the endpoint file',
        JSON.stringify(srv.endpoint.raw));
    if (tf && fs.existsSync(tf)) {
        const st = fs.statSync(tf);
        t.eq((st.mode & 0o777).toString(8), '600', 'the created token file has mode 0600');
        const token = fs.readFileSync(tf, 'utf8').split('\n')[0].trim();
        t.ok(token.length >= 32, `the created token is long (${token.length} characters)`);
        t.ok(srv.log().includes(tf), 'the server log says where the token file is', srv.log().slice(-1000));
        let r = await srv.request('GET', '/v1/models', undefined, { token: null });
        t.ok(r.status === 401, 'without the created token: 401', r.text);
        r = await srv.request('GET', '/v1/models', undefined, { token });
        t.ok(r.status === 200, 'with the created token: 200', r.text);
    }
    await srv.stopClean('0.0.0.0 server exits 0');
}

async function disconnectAndQueue(t, store) {
    const srv = await startServer(t, { store, llm: true, extra: ['--slots', '1', '--queue', '1'] });
    const m0 = (await srv.metrics()).samples;
    // 1. a streamed generation whose client goes away after the first event
    const s1 = openStream(srv, '/v1/completions', LONG);
    t.ok(await s1.first, 'long streamed completion: first event arrives');
    s1.destroy();
    const t0 = Date.now();
    let r = await srv.request('POST', '/v1/completions', { prompt: 'The dog', max_tokens: 8, temperature: 0 }, { timeout: 30000 });
    t.ok(r.status === 200 && r.json.usage.completion_tokens === 8, `after the disconnect the only slot serves the next request (${Date.now() - t0} ms)`, r.text.slice(0, 300));
    let m1 = (await srv.metrics()).samples;
    const d = (m, name, l = {}) => (metricSum(m, name, l) ?? NaN) - (metricSum(m0, name, l) ?? 0);
    t.eq(d(m1, 'quire_client_cancels_total'), 1, 'client_cancels_total +1');
    t.eq(d(m1, 'quire_sched_requests_total', { outcome: 'cancelled' }), 1, 'sched cancelled +1');
    t.ok(d(m1, 'quire_sched_generated_tokens_total') < 2000 + 8, `the cancelled generation stopped early (${d(m1, 'quire_sched_generated_tokens_total')} tokens generated in all)`);
    t.eq(metricSum(m1, 'quire_sched_running'), 0, 'no generation running afterwards');

    // 2. bounded queue: one running, one waiting, the third is refused
    const a = openStream(srv, '/v1/completions', LONG);
    t.ok(await a.first, 'generation A runs');
    const b = openStream(srv, '/v1/completions', { ...LONG, prompt: 'One day' });
    await sleep(200);
    r = await srv.request('POST', '/v1/completions', { prompt: 'Hi', max_tokens: 4, temperature: 0 });
    t.ok(r.status === 503 && Number(r.headers['retry-after']) >= 1 && r.json && r.json.error && r.json.error.type === 'overloaded_error',
        'slots 1 + queue 1 full: the next generation gets 503, Retry-After, overloaded_error', `${r.status} ${r.headers['retry-after']} ${r.text}`);
    a.destroy();
    b.destroy();
    await sleep(300);
    r = await srv.request('POST', '/v1/completions', { prompt: 'Hi', max_tokens: 4, temperature: 0 }, { timeout: 30000 });
    t.ok(r.status === 200, 'after both clients left, generations are served again', r.text.slice(0, 300));
    m1 = (await srv.metrics()).samples;
    t.ok(d(m1, 'quire_requests_refused_total') >= 1 || d(m1, 'quire_sched_requests_total', { outcome: 'refused_busy' }) >= 1,
        'the refusal is counted');
    t.eq(d(m1, 'quire_client_cancels_total'), 3, 'client_cancels_total +3 in all (s1, A, B)');
    await srv.stopClean('slots-1 server exits 0');
}

async function sigterm(t, store) {
    // every chunk of the store (k 50 > 17 chunks, no near-duplicate dropping, no MMR: dense k-NN returns them all), and its counts
    const allChunks = () => {
        const r = quire(['search', 'build from source', '--store', store, '--json', '-k', '50', '--dup-threshold', '1.5', '--mmr-lambda', '1', '--max-per-doc', '0', '--log-level', 'error']);
        if (r.status !== 0) return null;
        const m = new Map();
        for (const x of JSON.parse(r.stdout).results) m.set(x.chunk_id, `${x.path}|${x.byte_start}|${x.byte_end}|${x.text}`);
        return m;
    };
    const counts = () => { const r = quire(['info', '--store', store, '--json']); return r.status === 0 ? JSON.parse(r.stdout).counts : null; };
    const before = allChunks(), countsBefore = counts();
    const GRACE = 2;
    const srv = await startServer(t, { store, llm: true, extra: ['--slots', '1', '--grace', String(GRACE)] });
    let r = await srv.request('POST', '/v1/documents', { text: 'Echidnas lay eggs. The echidna is a monotreme.', name: 'zoo/echidna.txt' });
    t.ok(r.status === 201, 'document posted before SIGTERM: 201', r.text.slice(0, 300));
    // one running generation, two queued: 6000 tokens will not fit in the grace period
    const streams = [openStream(srv, '/v1/completions', LONG), openStream(srv, '/v1/completions', { ...LONG, prompt: 'One day' }),
        openStream(srv, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 2000, temperature: 0, stream: true })];
    t.ok(await streams[0].first, 'generation running when SIGTERM arrives');
    await sleep(100);
    const st = await srv.stop('SIGTERM', (GRACE + 15) * 1000);
    t.ok(st.code === 0 && st.signal === null, `SIGTERM during generations: exit 0 (${JSON.stringify(st)})`, srv.log().slice(-2000));
    t.ok(st.seconds <= GRACE + 5, `exited within the grace period + 5 s (${st.seconds.toFixed(2)} s, grace ${GRACE} s)`);
    const ends = await Promise.race([Promise.all(streams.map((s) => s.done)), sleep(5000).then(() => null)]);
    t.ok(ends !== null, 'every client stream ended (none left hanging)');
    if (ends) {
        for (const [i, e] of ends.entries()) {
            const last = e.events[e.events.length - 1];
            const clean = e.status === 503 || last === '[DONE]' || (last && typeof last === 'object' && (last.error || (last.choices && last.choices[0] && last.choices[0].finish_reason)));
            t.ok(e.error === 'ECONNRESET' || e.status === 503 || clean || e.status === 200,
                `stream ${i} ended with a response (status ${e.status}, last event ${JSON.stringify(last)?.slice(0, 120)})`);
        }
    }
    t.ok(/drain|SIGTERM|shutting/i.test(srv.log()), 'the log reports the drain', srv.log().slice(-800));
    // the store is intact
    const countsAfter = counts();
    t.ok(countsAfter && countsBefore && countsAfter.docs === countsBefore.docs + 1 && countsAfter.chunks === countsBefore.chunks + 1 &&
        countsAfter.vectors === countsAfter.chunks, `quire info after SIGTERM: one more doc and chunk, vectors = chunks (${JSON.stringify(countsAfter)})`,
    JSON.stringify(countsBefore));
    const after = allChunks();
    const lost = before && after ? [...before].filter(([id, v]) => after.get(id) !== v) : ['no search'];
    t.ok(before && before.size === countsBefore.chunks && lost.length === 0,
        `every one of the ${before?.size} original chunks is intact (same id, path, span, text; found by dense search)`, JSON.stringify(lost).slice(0, 500));
    const e = JSON.parse(quire(['search', 'echidna monotreme', '--store', store, '--json', '-k', '1', '--log-level', 'error']).stdout || 'null');
    t.ok(e && e.results[0] && /echidna/.test(e.results[0].path), 'the document posted before SIGTERM is on disk', JSON.stringify(e).slice(0, 300));

    // SIGINT: same clean exit, and the endpoint file tells a new server apart
    const s2 = await startServer(t, { store });
    const st2 = await s2.stop('SIGINT');
    t.ok(st2.code === 0 && st2.signal === null, `SIGINT: exit 0 (${JSON.stringify(st2)})`, s2.log().slice(-1000));
    // quire wait on a dead server's endpoint file fails instead of hanging
    const w = await runAsync(QUIRE, ['wait', s2.endpointFile, '--timeout', '2']);
    t.ok(w.status !== 0, `quire wait on a stopped server fails (exit ${w.status})`, w.stderr);
}

// SIGTERM with a long grace: in-flight work finishes while /ready says
// "draining"; new work gets 503 + Retry-After.
async function drain(t, store) {
    const srv = await startServer(t, { store, llm: true, extra: ['--slots', '1', '--grace', '15'] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (p, b) => new Promise((resolve) => {
        const d = JSON.stringify(b);
        const q = http.request({ host: srv.host, port: srv.port, method: 'POST', path: p, agent,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(d) } }, (res) => {
            let x = '';
            res.on('data', (y) => (x += y));
            res.on('end', () => { let j = null; try { j = JSON.parse(x); } catch { /* */ } resolve({ status: res.statusCode, headers: res.headers, json: j, text: x }); });
        });
        q.on('error', (e) => resolve({ error: e.code }));
        q.end(d);
    });
    let r = await post('/v1/search', { query: 'build', k: 1 });
    t.ok(r.status === 200, 'kept-alive connection: first search 200', r.text);
    const long = srv.request('POST', '/v1/completions', { prompt: 'Once', max_tokens: 1500, temperature: 0 }, { timeout: 30000 });
    await sleep(150);
    const t0 = Date.now();
    let longDone = false;
    const lp = long.catch((e) => ({ status: e.code })).then((x) => { longDone = true; return x; });
    srv.proc.kill('SIGTERM');
    await sleep(100);
    const polls = [await srv.request('GET', '/ready', undefined, { timeout: 3000 }).catch((e) => ({ error: e.code }))];
    t.ok(!longDone, 'the generation still runs at the first /ready poll after SIGTERM');
    await sleep(200);
    r = await post('/v1/search', { query: 'build', k: 1 });
    t.ok(r.status === 503 && Number(r.headers['retry-after']) >= 1 && r.json && r.json.error && r.json.error.type === 'overloaded_error',
        'while draining, new work on a kept-alive connection: 503 + Retry-After, overloaded_error', JSON.stringify(r).slice(0, 300));
    r = await srv.request('POST', '/v1/search', { query: 'build', k: 1 }, { timeout: 3000 }).catch((e) => ({ error: e.code }));
    t.ok(r.status === 503 && Number(r.headers['retry-after']) >= 1 && r.json && r.json.error && r.json.error.code === 'draining',
        'while draining, new work on a new connection: 503 + Retry-After, code draining', JSON.stringify(r).slice(0, 300));
    r = await srv.request('GET', '/health', undefined, { timeout: 3000 }).catch((e) => ({ error: e.code }));
    t.ok(r.status === 200, 'while draining, /health on a new connection: 200 (the process runs)', JSON.stringify(r).slice(0, 300));
    // the listener stays open until the in-flight work is done: pollers see "draining"
    while (!longDone && polls.length < 200) {
        const p = await srv.request('GET', '/ready', undefined, { timeout: 3000 }).catch((e) => ({ error: e.code }));
        if (p.error === 'ECONNREFUSED') break; // the drain is over (the listener closes once the work is done)
        if (!longDone) polls.push(p);
        await sleep(20);
    }
    t.ok(polls.length >= 1 && polls.every((p) => p.status === 503 && p.json && p.json.status === 'draining' && p.headers['retry-after'] === '5'),
        `while draining, /ready on new connections: 503 {"status": "draining"}, Retry-After 5 (${polls.length} polls while the generation ran)`,
        JSON.stringify(polls.find((p) => !(p.status === 503 && p.json && p.json.status === 'draining')) || polls[0]).slice(0, 300));
    const lr = await lp;
    t.ok(lr.status === 200 && lr.json && lr.json.usage.completion_tokens === 1500,
        'the in-flight non-streamed generation (1500 tokens) finishes within the grace period', `${lr.status} ${String(lr.text).slice(0, 200)}`);
    const ex = await Promise.race([srv.exited, sleep(20000).then(() => null)]);
    t.ok(ex && ex.code === 0 && ex.signal === null, `exit 0 after the drain (${((Date.now() - t0) / 1000).toFixed(2)} s after SIGTERM)`, JSON.stringify(ex));
    agent.destroy();
}

async function main() {
    const t = new Test('lifecycle');
    const store = buildStore(t);
    for (const [name, f] of [['auth', auth], ['generated token', generatedToken], ['disconnect/queue', disconnectAndQueue], ['sigterm', sigterm],
        ['drain', drain]]) {
        try {
            await f(t, store);
        } catch (e) {
            t.ok(false, `${name}: ${e.message}`);
        }
    }
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
