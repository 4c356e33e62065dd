// GET /metrics of the real server after known traffic: the text passes
// Prometheus's own `promtool check metrics` (Debian package prometheus), and
// counters moved by exactly the traffic sent between two scrapes: requests by
// route and status code, latency histogram counts (+Inf bucket = count),
// generation tokens in/out (prompt tokens counted independently with
// `quire tokenize --add-special`), embedding input tokens, scheduler
// outcomes and generated tokens.
import { spawnSync } from 'node:child_process';
import { Test, buildStore, startServer, quire, parseMetrics, metricSum, STORIES, EMBEDDER } from './lib/harness.mjs';

function tokenCount(model, texts) {
    const r = quire(['tokenize', '--model', model, '--add-special', '--jsonl', '--log-level', 'error'],
        { input: texts.map((s) => JSON.stringify(s)).join('\n') + '\n' });
    if (r.status !== 0) return null;
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l).length);
}

function promtool(t, text, what) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (r.error) return t.ok(false, `${what}: promtool runs (install the Debian package prometheus, tools/deps.sh)`, String(r.error));
    return t.ok(r.status === 0, `${what}: promtool check metrics passes`, `${r.stdout}${r.stderr}`);
}

async function main() {
    const t = new Test('metrics');
    const store = buildStore(t);
    const srv = await startServer(t, { store, llm: true, embedder: true });

    const m0 = await srv.metrics();
    t.ok(m0.status === 200 && /^text\/plain; version=0\.0\.4/.test(m0.headers['content-type'] || ''),
        '/metrics: 200 text/plain; version=0.0.4', `${m0.status} ${m0.headers['content-type']}`);
    promtool(t, m0.text, 'fresh server');

    // --- known traffic ---
    const prompt = 'Once upon a time';
    const N_OUT = 10;
    const texts = ['hello world', 'a', 'Quire runs offline.'];
    let ok = 0;
    for (const q of ['build from source', 'first record', 'numbered item']) {
        const r = await srv.request('POST', '/v1/search', { query: q, k: 2 });
        ok += r.status === 200;
    }
    t.ok(ok === 3, '3 searches answered 200');
    for (let i = 0; i < 2; i++) {
        const r = await srv.request('POST', '/v1/search', { query: 'x', k: 0 });
        t.ok(r.status === 400, 'search with k 0: 400', r.text);
    }
    let r = await srv.request('GET', '/no/such/route');
    t.ok(r.status === 404, 'unknown route: 404', r.text);
    r = await srv.request('POST', '/v1/embeddings', { input: texts });
    t.ok(r.status === 200, 'embeddings of 3 texts: 200', r.text.slice(0, 300));
    const embUsage = r.json && r.json.usage ? r.json.usage.prompt_tokens : null;
    r = await srv.request('POST', '/v1/completions', { prompt, max_tokens: N_OUT, temperature: 0 });
    t.ok(r.status === 200 && r.json.usage && r.json.usage.completion_tokens === N_OUT, `completion of ${N_OUT} tokens: 200`, r.text.slice(0, 300));

    const m1 = await srv.metrics();
    promtool(t, m1.text, 'after traffic');
    const a = m0.samples, b = m1.samples;
    const delta = (name, labels = {}) => (metricSum(b, name, labels) ?? NaN) - (metricSum(a, name, labels) ?? 0);
    const req = 'quire_http_requests_total';
    t.eq(delta(req, { route: '/v1/search', code: '200' }), 3, 'requests_total{/v1/search,200} +3');
    t.eq(delta(req, { route: '/v1/search', code: '400' }), 2, 'requests_total{/v1/search,400} +2');
    t.eq(delta(req, { code: '404' }), 1, 'requests_total{code=404} +1 (the unknown route)');
    t.eq(delta(req, { route: '/v1/embeddings', code: '200' }), 1, 'requests_total{/v1/embeddings,200} +1');
    t.eq(delta(req, { route: '/v1/completions', code: '200' }), 1, 'requests_total{/v1/completions,200} +1');
    t.eq(delta(req, { route: '/metrics', code: '200' }), 1, 'requests_total{/metrics,200} +1 (the first scrape)');
    const h = 'quire_http_request_duration_seconds';
    t.eq(delta(`${h}_count`, { route: '/v1/search' }), 5, 'latency histogram count{/v1/search} +5');
    t.eq(metricSum(b, `${h}_bucket`, { route: '/v1/search', le: '+Inf' }), metricSum(b, `${h}_count`, { route: '/v1/search' }),
        'latency +Inf bucket = count');
    t.ok(delta(`${h}_sum`, { route: '/v1/search' }) > 0, 'latency sum grew');

    const nPrompt = tokenCount(STORIES, [prompt]);
    t.ok(nPrompt && r.json && r.json.usage.prompt_tokens === nPrompt[0],
        `usage.prompt_tokens = quire tokenize --add-special (${nPrompt})`, JSON.stringify(r.json && r.json.usage));
    t.eq(delta('quire_tokens_total', { direction: 'in' }), nPrompt ? nPrompt[0] : -1, 'tokens_total{in} + prompt tokens');
    t.eq(delta('quire_tokens_total', { direction: 'out' }), N_OUT, `tokens_total{out} +${N_OUT}`);
    const nEmb = tokenCount(EMBEDDER, texts);
    const sumEmb = nEmb ? nEmb.reduce((x, y) => x + y, 0) : -1;
    t.eq(delta('quire_embedding_tokens_total'), sumEmb, `embedding_tokens_total + ${sumEmb} (quire tokenize of the 3 inputs)`);
    t.eq(embUsage, sumEmb, 'embeddings usage.prompt_tokens = the same count');
    t.eq(delta('quire_sched_requests_total', { outcome: 'submitted' }), 1, 'sched submitted +1');
    t.eq(delta('quire_sched_requests_total', { outcome: 'finished' }), 1, 'sched finished +1');
    t.eq(delta('quire_sched_requests_total', { outcome: 'cancelled' }), 0, 'sched cancelled +0');
    t.eq(delta('quire_sched_generated_tokens_total'), N_OUT, `sched generated tokens +${N_OUT}`);
    t.eq(delta('quire_sched_prompt_tokens_total'), nPrompt ? nPrompt[0] : -1, 'sched prompt tokens + prompt tokens');
    t.eq(metricSum(b, 'quire_up'), 1, 'quire_up 1');
    t.eq(metricSum(b, 'quire_ready'), 1, 'quire_ready 1');
    t.eq(metricSum(b, 'quire_sched_running'), 0, 'nothing running after the completion');
    t.ok(metricSum(b, 'quire_sched_batch_size_count') >= N_OUT - 1, 'batch size histogram counted the decode steps',
        String(metricSum(b, 'quire_sched_batch_size_count')));
    // every sample line parsed (no stray lines) and no NaN values
    const lines = m1.text.split('\n').filter((l) => l && !l.startsWith('#'));
    t.eq(lines.length, b.size, 'every sample line parses, no duplicate series');
    t.ok([...b.values()].every((v) => Number.isFinite(v.value)), 'all sample values finite');

    await srv.stopClean();
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
