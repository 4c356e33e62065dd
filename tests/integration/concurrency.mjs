// Concurrent use of the real server:
//  - 12 greedy completions at once (8 slots: continuous batching, some
//    queued), each equal to `quire generate` on its own prompt, whatever
//    runs beside it; the batch-size histogram saw steps with more than one
//    sequence;
//  - 32 searches at once, each equal to `quire search --json`;
//  - many requests on one kept-alive connection;
//  - documents posted and deleted while searches run: no search fails;
//  - a client that gives up on a NON-streamed generation also cancels it
//    (its slot is freed, client_cancels_total counts it);
//  - the in-flight limit (--max-inflight 2) answers the overflow with 503 +
//    Retry-After, never an error or a crash, and serves again after;
//  - connection exhaustion (slowloris): 200 idle half-open connections do not
//    stop /health from answering within 5 s, and --idle-timeout closes them.
import http from 'node:http';
import net from 'node:net';
import { Test, buildStore, startServer, quire, metricSum, STORIES } from './lib/harness.mjs';
import { diffJSON } from './lib/compare.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cliGenerate(prompt, n) {
    const r = quire(['generate', '--model', STORIES, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(n), '--log-level', 'error']);
    return r.status === 0 ? r.stdout.replace(/\n$/, '') : null;
}

async function batching(t, store) {
    const srv = await startServer(t, { store, llm: true, extra: ['--slots', '8', '--queue', '16'] });
    const prompts = ['Once upon a time', 'The dog', 'Lily and Ben', 'One day', 'The sun was', 'A little bird', 'Tom had a',
        'Sara wanted', 'The big tree', 'Mom said', 'It was a rainy', 'The cat and'];
    const lens = prompts.map((_, i) => 40 + 13 * i);
    const want = prompts.map((p, i) => cliGenerate(p, lens[i]));
    const m0 = (await srv.metrics()).samples;
    const got = await Promise.all(prompts.map((p, i) => srv.request('POST', '/v1/completions', { prompt: p, max_tokens: lens[i], temperature: 0 })));
    let same = 0;
    for (const [i, r] of got.entries()) {
        const txt = r.json && r.json.choices ? r.json.choices[0].text : `${r.status} ${r.text.slice(0, 200)}`;
        if (t.eq(txt, want[i], `concurrent completion ${i} (${JSON.stringify(prompts[i])}, ${lens[i]} tokens) = quire generate`)) same++;
    }
    const m1 = (await srv.metrics()).samples;
    const steps = (metricSum(m1, 'quire_sched_batch_size_count') ?? 0) - (metricSum(m0, 'quire_sched_batch_size_count') ?? 0);
    const single = (metricSum(m1, 'quire_sched_batch_size_bucket', { le: '1' }) ?? 0) - (metricSum(m0, 'quire_sched_batch_size_bucket', { le: '1' }) ?? 0);
    t.ok(steps > 0 && single < steps, `decode steps batched several sequences (${steps - single} of ${steps} steps had more than one)`);
    t.note(`${same}/12 concurrent greedy completions equal quire generate`);

    await srv.stopClean('batching server exits 0');
}

async function nonStreamedCancel(t, store) {
    const srv = await startServer(t, { store, llm: true, extra: ['--slots', '1'] });
    // a client that gives up on a non-streamed generation
    const c0 = metricSum((await srv.metrics()).samples, 'quire_client_cancels_total') ?? 0;
    const req = http.request({ host: srv.host, port: srv.port, method: 'POST', path: '/v1/completions', agent: false,
        headers: { 'Content-Type': 'application/json' } });
    req.on('error', () => {});
    req.end(JSON.stringify({ prompt: 'Once', max_tokens: 2000, temperature: 0 }));
    await sleep(150);
    req.destroy();
    let cancelled = false;
    for (let i = 0; i < 50 && !cancelled; i++) {
        await sleep(100);
        const m = (await srv.metrics()).samples;
        cancelled = (metricSum(m, 'quire_client_cancels_total') ?? 0) - c0 === 1 && metricSum(m, 'quire_sched_running') === 0;
    }
    t.ok(cancelled, 'a client that disconnects from a non-streamed generation cancels it (client_cancels_total +1, nothing running)');
    await srv.stopClean('cancel server exits 0');
}

async function searches(t, store) {
    const srv = await startServer(t, { store, embedder: true });
    const qs = ['build from source', 'first record', 'numbered item', 'three pages', 'option default', 'sample code function',
        'latin html page', 'second item continues'];
    const want = new Map(qs.map((q) => [q, JSON.parse(quire(['search', q, '--store', store, '--json', '-k', '4', '--log-level', 'error']).stdout).results]));
    const all = [];
    for (let i = 0; i < 32; i++) all.push(srv.request('POST', '/v1/search', { query: qs[i % qs.length], k: 4 }));
    const rs = await Promise.all(all);
    const bad = rs.map((r, i) => (r.status === 200 ? diffJSON(r.json.results, want.get(qs[i % qs.length]), { ignore: ['seconds'] }) : `status ${r.status} ${r.text.slice(0, 200)}`)).filter(Boolean);
    t.ok(bad.length === 0, `32 concurrent searches all equal quire search --json (${32 - bad.length}/32)`, bad[0]);

    // keep-alive: 50 POST requests on one connection (every route and error: keepalive.py)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    let okCount = 0;
    for (let i = 0; i < 50; i++) {
        const r = await new Promise((resolve, reject) => {
            const body = JSON.stringify({ query: qs[i % qs.length], k: 2 });
            const q = http.request({ host: srv.host, port: srv.port, method: 'POST', path: '/v1/search', agent,
                headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
                sockets.add(res.socket);
                let d = '';
                res.on('data', (x) => (d += x));
                res.on('end', () => resolve({ status: res.statusCode, d }));
            });
            q.on('error', reject);
            q.end(body);
        });
        okCount += r.status === 200;
        if (r.status !== 200) t.note(`keep-alive request ${i}: ${r.status} ${r.d.slice(0, 200)}`);
    }
    agent.destroy();
    t.ok(okCount === 50 && sockets.size === 1, `50 requests on one kept-alive connection (${okCount} ok, ${sockets.size} socket(s))`);

    // documents posted and deleted while searches run
    let stop = false, fails = [], nSearch = 0;
    const loop = (async () => {
        while (!stop) {
            const r = await srv.request('POST', '/v1/search', { query: 'wombat burrow', k: 3 });
            nSearch++;
            if (r.status !== 200) fails.push(`${r.status} ${r.text.slice(0, 200)}`);
        }
    })();
    const ids = [];
    for (let i = 0; i < 5; i++) {
        const r = await srv.request('POST', '/v1/documents', { text: `Wombat number ${i} digs a burrow. Wombats are marsupials.`, name: `zoo/wombat${i}.txt` });
        t.ok(r.status === 201, `document ${i} posted during searches: 201`, r.text.slice(0, 200));
        const s = await srv.request('POST', '/v1/search', { query: `wombat number ${i}`, k: 1 });
        if (s.json && s.json.results && s.json.results[0]) ids.push(s.json.results[0].doc_id);
    }
    for (const id of ids) {
        const r = await srv.request('DELETE', `/v1/documents/${id}`);
        t.ok(r.status === 200, `document ${id} deleted during searches: 200`, r.text);
    }
    stop = true;
    await loop;
    t.ok(fails.length === 0 && nSearch > 5, `${nSearch} searches during 5 posts and ${ids.length} deletes: none failed`, fails[0]);
    const after = await srv.request('POST', '/v1/search', { query: 'wombat burrow marsupials', k: 5 });
    t.ok(after.status === 200 && !after.json.results.some((x) => /wombat/.test(x.path)), 'all posted documents are gone after their deletes', after.text.slice(0, 300));
    await srv.stopClean('search server exits 0');
}

async function inflight(t, store) {
    const srv = await startServer(t, { store, embedder: true, extra: ['--max-inflight', '2'] });
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => srv.request('POST', '/v1/embeddings', { input: Array(64).fill(`text number ${i} `.repeat(20)) })));
    const by = {};
    for (const r of rs) by[r.status] = (by[r.status] || 0) + 1;
    const refused = rs.filter((r) => r.status === 503);
    t.ok(rs.every((r) => r.status === 200 || r.status === 503) && refused.length >= 1 && by[200] >= 2,
        `40 concurrent embedding requests with --max-inflight 2: only 200 or 503, both seen (${JSON.stringify(by)})`);
    t.ok(refused.every((r) => Number(r.headers['retry-after']) >= 1 && r.json && r.json.error && r.json.error.type === 'overloaded_error'),
        '503s carry Retry-After and overloaded_error', refused[0] && `${refused[0].headers['retry-after']} ${refused[0].text}`);
    const r = await srv.request('POST', '/v1/embeddings', { input: 'after the burst' });
    t.ok(r.status === 200, 'served again after the burst', r.text.slice(0, 200));
    await srv.stopClean('in-flight server exits 0');
}

async function slowloris(t, store) {
    const IDLE = 2;
    const srv = await startServer(t, { store, extra: ['--idle-timeout', String(IDLE)] });
    const socks = [];
    const closedAt = [];
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) {
        const s = net.connect({ host: srv.host, port: srv.port });
        s.on('error', () => {});
        s.on('close', () => closedAt.push(Date.now() - t0));
        s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
        socks.push(s);
    }
    await sleep(500);
    const t1 = Date.now();
    let ok = false;
    try {
        const r = await srv.request('GET', '/health', undefined, { timeout: 5000 });
        ok = r.status === 200;
    } catch { /* timed out */ }
    t.ok(ok, `/health answers within 5 s while 200 idle half-open connections are held (${Date.now() - t1} ms)`);
    // the idle timeout closes them all
    for (let i = 0; i < 100 && closedAt.length < socks.length; i++) await sleep(100);
    t.ok(closedAt.length === socks.length && Math.max(...closedAt) <= IDLE * 1000 + 5000,
        `the idle timeout (${IDLE} s) closed all 200 half-open connections (${closedAt.length} closed, last after ${Math.max(0, ...closedAt)} ms)`);
    for (const s of socks) s.destroy();
    await sleep(200);
    t.ok(await srv.health(), '/health answers after they are gone');
    await srv.stopClean('slowloris server exits 0');
}

async function main() {
    const t = new Test(`concurrency${process.argv.length > 2 ? `_${process.argv.slice(2).join('_')}` : ''}`);
    const store = buildStore(t);
    const only = process.argv.slice(2); // sections to run (all by default)
    for (const [name, f] of [['batching', batching], ['cancel', nonStreamedCancel], ['searches', searches], ['inflight', inflight],
        ['slowloris', slowloris]]) {
        if (only.length && !only.includes(name)) continue;
        try {
            await f(t, store);
        } catch (e) {
            t.ok(false, `${name}: ${e.stack}`);
        }
    }
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
