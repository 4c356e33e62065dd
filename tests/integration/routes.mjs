// Every route of `quire serve` against the real binary, with values checked
// against the CLI on the same store and models (the CLI is the independent
// path here: a different front door over the same library, run as its own
// process): /v1/search = `quire search --json`, /v1/ask = `quire ask --json`
// (extractive on a server without an LLM, stories260K greedy on one with it),
// /v1/completions = `quire generate` (greedy), /v1/embeddings = `quire embed`
// (within 1e-5), SSE framing of /v1/ask, /v1/completions and
// /v1/chat/completions (pieces add up to the non-streamed text; with a stop
// string too), seeded sampling = `quire generate --seed`, chat on the
// template-less stories260K = `quire generate` on the plain prompt, documents
// posted by text, by server-side file and by directory become searchable
// under the ids POST returns, GET /v1/documents lists the store as `quire
// info` counts it (paged by cursor, filtered by path glob), DELETE removes a
// document and a posted text's STORE/posted file (which then does not come
// back with a re-ingest) but never a user's file, /health, /ready,
// /v1/models, /metrics content type.
import fs from 'node:fs';
import path from 'node:path';
import { Test, buildStore, startServer, quire, STORIES, EMBEDDER } from './lib/harness.mjs';
import { diffJSON, maxAbsDiff } from './lib/compare.mjs';

const TIMINGS = ['seconds', 'prefill_s', 'decode_s', 'timings_s', 'created', 'id', 'system_fingerprint'];
const Q1 = 'How do I build Quire from source?';

function cliJSON(t, args, what) {
    const r = quire([...args, '--json', '--log-level', 'error']);
    t.ok(r.status === 0, `${what}: CLI exit 0`, r.stderr);
    try { return JSON.parse(r.stdout); } catch { return null; }
}

function cliGenerate(prompt, n) {
    const r = quire(['generate', '--model', STORIES, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(n),
        '--log-level', 'error']);
    return r.status === 0 ? r.stdout.replace(/\n$/, '') : null;
}

function cliEmbed(texts) {
    const r = quire(['embed', '--model', EMBEDDER, '--jsonl', '--log-level', 'error'],
        { input: texts.map((s) => JSON.stringify(s)).join('\n') + '\n' });
    return r.status === 0 ? r.stdout.trim().split('\n').map((l) => JSON.parse(l)) : null;
}

async function main() {
    const t = new Test('routes');
    const store = buildStore(t);
    const srv = await startServer(t, { store, llm: true, embedder: true });

    // --- health, ready, models, metrics ---
    let r = await srv.request('GET', '/health');
    t.ok(r.status === 200 && r.json && r.json.status === 'ok', 'GET /health', r.text);
    r = await srv.request('GET', '/ready');
    t.ok(r.status === 200 && r.json && r.json.status === 'ready', 'GET /ready is 200 ready', r.text);
    t.ok(r.json && typeof r.json.store === 'string' && path.resolve(r.json.store) === path.resolve(store),
        '/ready names the store', r.text);
    t.ok(r.json && r.json.llm && r.json.embedder, '/ready names the LLM and the embedder', r.text);
    r = await srv.request('GET', '/v1/models');
    const ids = r.json && Array.isArray(r.json.data) ? r.json.data.map((m) => m.id) : [];
    t.ok(r.status === 200 && r.json.object === 'list' && ids.length === 2, 'GET /v1/models lists two models', r.text);
    t.ok(r.json && r.json.data.every((m) => m.object === 'model' && m.owned_by === 'quire' && Number.isInteger(m.created)),
        '/v1/models entries are OpenAI model objects', r.text);
    r = await srv.request('GET', '/metrics');
    t.ok(r.status === 200 && /^text\/plain/.test(r.headers['content-type'] || '') && /# TYPE /.test(r.text),
        'GET /metrics is Prometheus text', `${r.status} ${r.headers['content-type']}`);

    // --- /v1/search = quire search --json ---
    for (const [body, flags] of [
        [{ query: Q1, k: 3 }, ['-k', '3']],
        [{ query: 'first record sentences', k: 5 }, ['-k', '5']],
        [{ query: 'build', k: 4, filters: { path: '*.md' } }, ['-k', '4', '--filter', 'path=*.md']],
        [{ query: 'nothing matches zzqxj', k: 2 }, ['-k', '2']],
        // question words dropped for BM25 on both sides (qr_question_keywords)
        [{ query: 'How do I build the first record?', k: 3 }, ['-k', '3']],
    ]) {
        const want = cliJSON(t, ['search', body.query, '--store', store, ...flags], `search ${body.query}`);
        r = await srv.request('POST', '/v1/search', body);
        t.ok(r.status === 200, `POST /v1/search ${JSON.stringify(body)}: 200`, r.text.slice(0, 500));
        if (r.status !== 200 || !want) continue;
        t.ok(r.json.query === body.query && r.json.k === body.k, '/v1/search echoes query and k', r.text.slice(0, 300));
        const d = diffJSON(r.json.results, want.results, { ignore: TIMINGS });
        t.ok(!d, `/v1/search ${JSON.stringify(body)} results = quire search --json (${want.results.length} results)`, d);
    }
    t.ok(true, 'search filter case ran');

    // --- /v1/ask with stories260K = quire ask --model (greedy) ---
    {
        const want = cliJSON(t, ['ask', Q1, '--store', store, '-k', '3', '--model', STORIES, '--temperature', '0',
            '--max-tokens', '16'], 'ask llm');
        r = await srv.request('POST', '/v1/ask', { question: Q1, k: 3, max_tokens: 16, temperature: 0 });
        t.ok(r.status === 200, 'POST /v1/ask (LLM): 200', r.text.slice(0, 500));
        if (r.status === 200 && want) {
            const d = diffJSON(r.json, want, { ignore: [...TIMINGS, 'model', 'store'] });
            t.ok(!d, '/v1/ask (stories260K, greedy) = quire ask --json', d);
            t.ok(r.json.mode === 'llm' && r.json.generation && r.json.generation.generated_tokens === 16,
                '/v1/ask LLM mode, 16 tokens', r.text.slice(0, 300));
        }
        // streamed: token events add up to the answer; then the answer object; then [DONE]
        const s = await srv.stream('POST', '/v1/ask', { question: Q1, k: 3, max_tokens: 16, temperature: 0, stream: true });
        t.ok(s.status === 200 && /^text\/event-stream/.test(s.headers['content-type'] || ''), '/v1/ask stream: 200 event-stream',
            `${s.status} ${s.headers['content-type']} ${s.raw.slice(0, 300)}`);
        const toks = s.events.filter((e) => e && e.type === 'token');
        const ans = s.events.filter((e) => e && e.type === 'answer');
        t.ok(toks.length >= 1 && ans.length === 1 && s.events[s.events.length - 1] === '[DONE]' &&
            s.events[s.events.length - 2] === ans[0], '/v1/ask stream: tokens, one answer, [DONE] last', `${toks.length} tokens, ${ans.length} answers: ${s.events.map((e) => e.type || e).join(',')}`);
        if (ans.length === 1 && want) {
            t.eq(toks.map((e) => e.text).join(''), ans[0].answer, '/v1/ask stream: token pieces add up to the answer');
            t.ok(!diffJSON(ans[0], want, { ignore: [...TIMINGS, 'model', 'store', 'type'] }),
                '/v1/ask stream: answer event = quire ask --json', diffJSON(ans[0], want, { ignore: [...TIMINGS, 'model', 'store', 'type'] }));
        }
    }

    // --- /v1/completions = quire generate (greedy), streamed and not ---
    for (const [prompt, n] of [['Once upon a time', 20], ['The cat', 12], ['', 30]]) {
        const want = cliGenerate(prompt, n);
        r = await srv.request('POST', '/v1/completions', { model: 'stories260K', prompt, max_tokens: n, temperature: 0 });
        t.ok(r.status === 200 && r.json && r.json.object === 'text_completion', `/v1/completions ${JSON.stringify(prompt)}: 200 text_completion`,
            r.text.slice(0, 400));
        if (r.status !== 200) continue;
        const c = r.json.choices && r.json.choices[0];
        t.eq(c && c.text, want, `/v1/completions ${JSON.stringify(prompt)} greedy ${n} = quire generate`);
        t.ok(c && c.finish_reason === 'length' && r.json.usage && r.json.usage.completion_tokens === n,
            `/v1/completions ${JSON.stringify(prompt)}: finish length, ${n} completion tokens`, JSON.stringify(r.json).slice(0, 400));
        const s = await srv.stream('POST', '/v1/completions', { prompt, max_tokens: n, temperature: 0, stream: true });
        const chunks = s.events.filter((e) => e && typeof e === 'object');
        t.ok(s.events[s.events.length - 1] === '[DONE]' && chunks.every((e) => e.object === 'text_completion'),
            `/v1/completions stream ${JSON.stringify(prompt)}: text_completion chunks then [DONE]`, s.raw.slice(-400));
        t.eq(chunks.map((e) => (e.choices && e.choices[0] ? e.choices[0].text || '' : '')).join(''), want,
            `/v1/completions stream ${JSON.stringify(prompt)}: pieces add up to quire generate`);
    }
    // stop string: the completion ends before it
    {
        const full = cliGenerate('', 60);
        r = await srv.request('POST', '/v1/completions', { prompt: '', max_tokens: 60, temperature: 0, stop: ['Lily'] });
        const txt = r.json && r.json.choices ? r.json.choices[0].text : null;
        t.ok(r.status === 200 && full && full.includes('Lily') && txt === full.slice(0, full.indexOf('Lily')) &&
            r.json.choices[0].finish_reason === 'stop', '/v1/completions stop ["Lily"] cuts before it, finish stop', r.text.slice(0, 400));
    }

    // streamed with a stop string: the pieces add up to the same cut text
    {
        const r1 = await srv.request('POST', '/v1/completions', { prompt: '', max_tokens: 60, temperature: 0, stop: 'Lily' });
        const s = await srv.stream('POST', '/v1/completions', { prompt: '', max_tokens: 60, temperature: 0, stop: 'Lily', stream: true });
        const chunks = s.events.filter((e) => e && typeof e === 'object' && e.choices);
        t.eq(chunks.map((e) => e.choices[0].text || '').join(''), r1.json ? r1.json.choices[0].text : null,
            '/v1/completions stream with stop "Lily" (a string): pieces add up to the non-streamed text');
        t.eq(chunks.length ? chunks[chunks.length - 1].choices[0].finish_reason : null, 'stop', 'streamed finish_reason stop');
    }
    // seeded sampling (temperature 0.8, seed 42, the other sampling options at their defaults)
    // draws the same tokens as quire generate with the same seed
    {
        const g = quire(['generate', '--model', STORIES, '--prompt', 'Once upon a time', '--max-tokens', '40', '--temperature', '0.8',
            '--seed', '42', '--log-level', 'error']);
        const want = g.status === 0 ? g.stdout.replace(/\n$/, '') : null;
        for (let i = 0; i < 2; i++) {
            r = await srv.request('POST', '/v1/completions', { prompt: 'Once upon a time', max_tokens: 40, temperature: 0.8, seed: 42 });
            t.eq(r.json && r.json.choices ? r.json.choices[0].text : r.text, want, `/v1/completions seed 42 temperature 0.8 = quire generate --seed 42 (run ${i + 1})`);
        }
    }
    // UTF-8 beyond ASCII goes through unchanged
    {
        const q = 'naïve café 🚀 build — 構築';
        r = await srv.request('POST', '/v1/search', { query: q, k: 2 });
        t.ok(r.status === 200 && r.json.query === q, '/v1/search echoes a non-ASCII query byte for byte', r.text.slice(0, 200));
    }

    // --- /v1/chat/completions: streamed pieces = non-streamed content ---
    {
        const body = { model: 'stories260K', messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 24, temperature: 0 };
        r = await srv.request('POST', '/v1/chat/completions', body);
        t.ok(r.status === 200 && r.json && r.json.object === 'chat.completion', '/v1/chat/completions: 200 chat.completion', r.text.slice(0, 400));
        const msg = r.json && r.json.choices ? r.json.choices[0].message : null;
        t.ok(msg && msg.role === 'assistant' && typeof msg.content === 'string' && msg.content.length > 0,
            '/v1/chat/completions: assistant message with content', JSON.stringify(msg));
        t.ok(r.json && r.json.usage && r.json.usage.completion_tokens > 0 && r.json.usage.prompt_tokens > 0 &&
            r.json.usage.total_tokens === r.json.usage.prompt_tokens + r.json.usage.completion_tokens, '/v1/chat/completions usage adds up',
            JSON.stringify(r.json && r.json.usage));
        // stories260K has no chat template: the plain prompt format joins the contents with "\n" (BOS
        // first, as any prompt), so the greedy answer is `quire generate` on that text
        {
            const conv = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Once there was a cat' }];
            const want = cliGenerate(conv.map((m) => m.content).join('\n'), 20);
            const rr = await srv.request('POST', '/v1/chat/completions', { messages: conv, max_tokens: 20, temperature: 0 });
            t.eq(rr.json && rr.json.choices ? rr.json.choices[0].message.content : rr.text, want,
                '/v1/chat/completions (no chat template: contents joined by newlines) greedy 20 = quire generate on that prompt');
        }
        const s = await srv.stream('POST', '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
        const chunks = s.events.filter((e) => e && typeof e === 'object');
        t.ok(s.status === 200 && /^text\/event-stream/.test(s.headers['content-type'] || ''), '/v1/chat/completions stream: event-stream', s.raw.slice(0, 300));
        t.ok(chunks.length >= 3 && chunks.every((e) => e.object === 'chat.completion.chunk') && s.events[s.events.length - 1] === '[DONE]',
            '/v1/chat/completions stream: chunks then [DONE]', s.raw.slice(-500));
        const withChoice = chunks.filter((e) => e.choices && e.choices.length);
        t.ok(withChoice.length && withChoice[0].choices[0].delta.role === 'assistant', 'first delta carries the role', JSON.stringify(withChoice[0]));
        const last = withChoice[withChoice.length - 1];
        t.ok(last && last.choices[0].finish_reason === (r.json ? r.json.choices[0].finish_reason : 'x'),
            'last choice chunk has the finish_reason of the non-streamed answer', JSON.stringify(last));
        t.eq(withChoice.map((e) => e.choices[0].delta.content || '').join(''), msg ? msg.content : null,
            '/v1/chat/completions stream: deltas add up to the non-streamed content');
        const usage = chunks.filter((e) => e.usage);
        t.ok(usage.length >= 1 && r.json && usage[usage.length - 1].usage.completion_tokens === r.json.usage.completion_tokens,
            'stream_options.include_usage: a usage chunk with the same completion tokens', JSON.stringify(usage));
    }

    // --- /v1/embeddings = quire embed ---
    {
        const texts = ['hello world', 'Quire runs offline. It needs a C compiler.', 'a'];
        const want = cliEmbed(texts);
        t.ok(want && want.length === 3, 'quire embed reference');
        r = await srv.request('POST', '/v1/embeddings', { model: 'bert_minilm', input: texts });
        t.ok(r.status === 200 && r.json && r.json.object === 'list' && r.json.data.length === 3, '/v1/embeddings [3 strings]: 200 list of 3', r.text.slice(0, 300));
        if (r.status === 200 && want) {
            const worst = Math.max(...r.json.data.map((d, i) => (d.index === i && d.object === 'embedding' ? maxAbsDiff(d.embedding, want[i]) : Infinity)));
            t.ok(worst <= 1e-5, `/v1/embeddings = quire embed within 1e-5 (max |diff| ${worst.toExponential(2)}, dim ${want[0].length})`);
            t.ok(r.json.usage && r.json.usage.prompt_tokens > 0 && r.json.usage.total_tokens === r.json.usage.prompt_tokens, 'embeddings usage', JSON.stringify(r.json.usage));
        }
        r = await srv.request('POST', '/v1/embeddings', { input: texts[1] });
        t.ok(r.status === 200 && want && maxAbsDiff(r.json.data[0].embedding, want[1]) <= 1e-5, '/v1/embeddings single string = quire embed', r.text.slice(0, 300));
    }

    // --- documents: GET lists the store (= quire info's counts), paged and filtered by
    // glob; POST names the documents it wrote; search finds them; DELETE removes
    // them, and a posted text's file under STORE/posted with it (a user's file stays) ---
    const realStore = fs.realpathSync(store);
    const postedFile = path.join(realStore, 'posted', 'zoo_quokka.txt.jsonl');
    const userDir = path.join(t.dir, 'userdocs');
    {
        const all = [];
        let cursor = null, pages = 0, bad = null;
        while (pages < 100) {
            r = await srv.request('GET', `/v1/documents?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`);
            pages++;
            const d = r.json && Array.isArray(r.json.data) ? r.json.data : null;
            if (r.status !== 200 || !d || d.length > 3 || r.json.object !== 'list') { bad = r.text.slice(0, 300); break; }
            all.push(...d);
            if (!r.json.has_more) { if (r.json.next_cursor !== null) bad = `last page: next_cursor ${r.json.next_cursor}`; break; }
            if (!d.length || r.json.next_cursor !== d[d.length - 1].id) { bad = `next_cursor ${r.json.next_cursor} is not the page's last id`; break; }
            cursor = r.json.next_cursor;
        }
        t.ok(!bad, 'GET /v1/documents?limit=3: pages of at most 3, next_cursor = last id, the last page without one', bad);
        const one = await srv.request('GET', '/v1/documents?limit=1000');
        const oneIds = one.json && one.json.data ? one.json.data.map((d) => d.id) : null;
        t.eq(all.map((d) => d.id), oneIds, 'pages of 3 add up to the one-page listing');
        t.ok(one.json && one.json.has_more === false && one.json.next_cursor === null, 'one page of 1000: has_more false', one.text.slice(0, 200));
        t.ok(all.every((d, i) => i === 0 || d.id > all[i - 1].id), 'listed by increasing id');
        t.eq(pages, Math.ceil(all.length / 3), `${all.length} documents in ${pages} pages of 3`);
        // the independent count: quire info on the same store (read while the server runs)
        const info = cliJSON(t, ['info', '--store', store], 'info');
        if (info) {
            t.eq(all.length, info.counts.docs, 'GET /v1/documents lists as many documents as quire info counts');
            t.eq(all.reduce((a, d) => a + d.chunks, 0), info.counts.chunks, 'the listed chunks add up to quire info\'s count');
            const fmt = {};
            for (const d of all) fmt[d.format] = (fmt[d.format] || 0) + 1;
            t.eq(Object.entries(fmt).sort(), Object.entries(info.formats).sort(), 'listed formats = quire info\'s formats');
        }
        // bytes and mtime are the source file's (a JSONL record's are its file's)
        const statBad = all.filter((d) => {
            const f = d.path.replace(/#L\d+$/, '');
            const st = fs.statSync(f, { bigint: true });
            const ns = st.mtimeNs;
            const iso = new Date(Number(ns / 1000000000n) * 1000).toISOString().slice(0, 19) + '.' +
                String(ns % 1000000000n).padStart(9, '0') + 'Z';
            return d.bytes !== Number(st.size) || d.mtime !== iso || typeof d.title !== 'string' || !Number.isInteger(d.chunks);
        });
        t.ok(all.length > 0 && statBad.length === 0, 'every entry: bytes and mtime (RFC 3339, ns) of its file, title, chunks',
            JSON.stringify(statBad[0]));
        // path glob (fnmatch, as the search filter): = the full listing filtered here, also paged
        const md = all.filter((d) => d.path.endsWith('.html')).map((d) => d.id);
        r = await srv.request('GET', `/v1/documents?path=${encodeURIComponent('*.html')}`);
        t.ok(md.length >= 2, `the store has several .html documents (${md.length})`);
        t.eq(r.json && r.json.data ? r.json.data.map((d) => d.id) : r.text, md, 'GET /v1/documents?path=*.html = the .html documents');
        const paged = [];
        cursor = 0;
        for (let i = 0; i < 20 && cursor !== null; i++) {
            r = await srv.request('GET', `/v1/documents?path=${encodeURIComponent('*.html')}&limit=1&cursor=${cursor}`);
            if (!r.json || !r.json.data) break;
            paged.push(...r.json.data.map((d) => d.id));
            cursor = r.json.next_cursor;
        }
        t.eq(paged, md, 'path=*.html one at a time through the cursor = the same documents');
        r = await srv.request('GET', `/v1/documents?path=${encodeURIComponent('/no/such/*')}`);
        t.ok(r.status === 200 && r.json.data.length === 0 && r.json.has_more === false, 'a glob matching nothing: an empty list', r.text);
        for (const [q, param] of [['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'], ['cursor=-1', 'cursor'],
            ['offset=3', 'offset'], ['path=', 'path']]) {
            r = await srv.request('GET', `/v1/documents?${q}`);
            t.ok(r.status === 400 && r.json && r.json.error.param === param && r.json.error.type === 'invalid_request_error',
                `GET /v1/documents?${q}: 400 naming ${param}`, r.text);
        }
        r = await srv.request('PUT', '/v1/documents', {});
        t.ok(r.status === 405 && r.headers.allow === 'GET, POST', 'PUT /v1/documents: 405, Allow: GET, POST', `${r.status} ${r.headers.allow}`);
    }
    {
        const text = 'The quokka is a small wallaby. Quokkas live on Rottnest Island and eat grasses.';
        r = await srv.request('POST', '/v1/documents', { text, name: 'zoo/quokka.txt', meta: { lang: 'en' } });
        t.ok(r.status === 201 && r.json, 'POST /v1/documents {text}: 201', r.text.slice(0, 400));
        const posted = r.json && r.json.documents ? r.json.documents : [];
        t.ok(posted.length === 1 && posted[0].path === `${postedFile}#L1` && posted[0].status === 'added' && posted[0].chunks === 1 &&
            Number.isInteger(posted[0].id) && r.json.documents_omitted === 0 && r.json.counts && r.json.counts.added === 1,
        'POST {text, meta}: the report names the one document written (id, STORE/posted/NAME.jsonl#L1, added, 1 chunk)', r.text.slice(0, 600));
        t.ok(fs.existsSync(postedFile), 'the posted text is kept as STORE/posted/zoo_quokka.txt.jsonl');
        r = await srv.request('POST', '/v1/search', { query: 'quokka wallaby', k: 2 });
        const top = r.json && r.json.results ? r.json.results[0] : null;
        t.ok(top && top.text === text && /quokka/.test(top.path), 'the posted text is the top search result', r.text.slice(0, 400));
        t.ok(top && posted[0] && top.doc_id === posted[0].id, 'its doc_id is the id POST returned', `${top && top.doc_id} vs ${posted[0] && posted[0].id}`);
        r = await srv.request('POST', '/v1/search', { query: 'quokka', k: 2, filters: { meta: { lang: 'en' } } });
        t.ok(r.status === 200 && r.json.results.length === 1 && r.json.results[0].text === text, 'meta filter finds the posted document only', r.text.slice(0, 400));
        r = await srv.request('GET', `/v1/documents?path=${encodeURIComponent('*/posted/*')}`);
        t.ok(r.status === 200 && r.json.data.length === 1 && r.json.data[0].id === (posted[0] && posted[0].id) &&
            JSON.stringify(r.json.data[0].meta) === '{"lang":"en"}', 'GET ?path=*/posted/* lists the posted text with its meta', r.text.slice(0, 400));
        // posting the same name again replaces that document (under a new id: ids name one version)
        const text2 = 'The quokka is a small wallaby of Rottnest Island that eats grasses and leaves.';
        r = await srv.request('POST', '/v1/documents', { text: text2, name: 'zoo/quokka.txt', meta: { lang: 'en' } });
        const repost = r.json && r.json.documents && r.json.documents.length === 1 ? r.json.documents[0] : null;
        t.ok(r.status === 201 && repost && repost.status === 'updated' && repost.path === `${postedFile}#L1`,
            'POST of the same name: one document, updated', r.text.slice(0, 400));
        r = await srv.request('GET', `/v1/documents?path=${encodeURIComponent(postedFile + '*')}`);
        t.ok(r.status === 200 && repost && r.json.data.length === 1 && r.json.data[0].id === repost.id,
            'GET lists only the replacement (the id POST returned)', r.text.slice(0, 400));
        r = await srv.request('POST', '/v1/documents', { text: 'The platypus lays eggs and hunts with electroreception.', name: 'zoo/platypus.txt' });
        t.ok(r.status === 201 && r.json.documents && r.json.documents.length === 1 &&
            r.json.documents[0].path === path.join(realStore, 'posted', 'zoo_platypus.txt'), 'POST {text} without meta: STORE/posted/NAME', r.text.slice(0, 400));
        // a server-side file
        const f = path.join(t.dir, 'numbat.md');
        fs.writeFileSync(f, '# Numbats\n\nThe numbat eats termites with a long sticky tongue.\n');
        r = await srv.request('POST', '/v1/documents', { path: f });
        t.ok(r.status === 201, 'POST /v1/documents {path}: 201', r.text.slice(0, 400));
        const nbDoc = r.json && r.json.documents ? r.json.documents[0] : null;
        t.ok(r.json && r.json.documents && r.json.documents.length === 1 && nbDoc.path === fs.realpathSync(f) && nbDoc.status === 'added',
            'POST {path: file}: names its document', r.text.slice(0, 400));
        r = await srv.request('POST', '/v1/search', { query: 'numbat termites', k: 1 });
        const nb = r.json && r.json.results ? r.json.results[0] : null;
        t.ok(nb && nb.path === f && /sticky tongue/.test(nb.text), 'the posted file is searchable', r.text.slice(0, 400));
        t.ok(nb && nbDoc && nb.doc_id === nbDoc.id, 'the file\'s doc_id is the id POST returned');
        // a server-side directory: every document of it, ids as GET lists them
        fs.mkdirSync(path.join(userDir, 'sub'), { recursive: true });
        const names = ['a.txt', 'b.md', 'sub/c.txt', 'sub/d.md'];
        names.forEach((n, i) => fs.writeFileSync(path.join(userDir, n), `Echidna note ${i}: spiny anteaters dig for ants.\n`));
        r = await srv.request('POST', '/v1/documents', { path: userDir });
        const dirDocs = r.json && r.json.documents ? r.json.documents : [];
        t.eq(dirDocs.map((d) => d.path).sort(), names.map((n) => path.join(fs.realpathSync(userDir), n)).sort(),
            'POST {path: dir}: one document per file');
        const lr = await srv.request('GET', `/v1/documents?path=${encodeURIComponent(fs.realpathSync(userDir) + '/*')}`);
        t.eq(lr.json ? lr.json.data.map((d) => d.id) : lr.text, dirDocs.map((d) => d.id).sort((a, b) => a - b),
            'GET ?path=DIR/* lists the ids POST returned');
        if (repost) {
            const id = repost.id;
            r = await srv.request('DELETE', `/v1/documents/${id}`);
            t.ok(r.status === 200 && r.json && r.json.deleted === id && r.json.chunks === 1 && r.json.removed_file === postedFile,
                `DELETE /v1/documents/${id} (posted text): 200, 1 chunk, removed_file names its STORE/posted file`, r.text);
            t.ok(!fs.existsSync(postedFile), 'DELETE of a posted text removes STORE/posted/zoo_quokka.txt.jsonl');
            r = await srv.request('POST', '/v1/search', { query: 'quokka wallaby', k: 5 });
            t.ok(r.status === 200 && !r.json.results.some((x) => x.doc_id === id || /quokka/.test(x.path)), 'deleted document no longer found', r.text.slice(0, 400));
            r = await srv.request('DELETE', `/v1/documents/${id}`);
            t.ok(r.status === 404, 'second DELETE: 404', r.text);
        }
        if (dirDocs.length) {
            r = await srv.request('DELETE', `/v1/documents/${dirDocs[0].id}`);
            t.ok(r.status === 200 && r.json.removed_file === null && fs.existsSync(dirDocs[0].path),
                'DELETE of a document from a user\'s path: 200, removed_file null, the file stays', r.text);
        }
        // a directory of 1003 files: the answer names the first 1000 and counts the rest
        const many = path.join(t.dir, 'many');
        fs.mkdirSync(many);
        for (let i = 0; i < 1003; i++) fs.writeFileSync(path.join(many, `n${String(i).padStart(4, '0')}.txt`), `Note ${i}.\n`);
        r = await srv.request('POST', '/v1/documents', { path: many }, { timeout: 120000 });
        t.ok(r.status === 201 && r.json.counts.added === 1003 && r.json.documents.length === 1000 && r.json.documents_omitted === 3 &&
            new Set(r.json.documents.map((d) => d.id)).size === 1000, 'POST {path: dir of 1003 files}: 1000 documents named, documents_omitted 3',
        r.text.slice(0, 300));
    }
    await srv.stopClean();
    // the store written through the server reads back with the CLI (flushed on exit)
    {
        const ir = quire(['info', '--store', store, '--json']);
        t.ok(ir.status === 0, 'quire info after serve: exit 0', ir.stderr);
        let info = null;
        try { info = JSON.parse(ir.stdout); } catch { /* reported below */ }
        t.ok(info && JSON.stringify(info).includes('"docs"'), 'quire info reads the store after the server exits', JSON.stringify(info).slice(0, 300));
        const s = cliJSON(t, ['search', 'numbat termites', '--store', store, '-k', '1'], 'search after serve');
        t.ok(s && s.results[0] && /numbat/.test(s.results[0].path), 'the file posted through the server is in the store on disk', JSON.stringify(s).slice(0, 300));
        // the deleted posted text does not come back with an ingest of STORE/posted (its file is gone)
        const ing = cliJSON(t, ['ingest', path.join(store, 'posted'), '--store', store, '--embedder', EMBEDDER], 'ingest STORE/posted');
        t.ok(ing && ing.counts && ing.counts.added === 0 && ing.counts.unchanged === 1, 're-ingest of STORE/posted: the platypus unchanged, nothing added',
            JSON.stringify(ing && ing.counts));
        const q = cliJSON(t, ['search', 'quokka wallaby Rottnest', '--store', store, '-k', '5'], 'search quokka after re-ingest');
        t.ok(q && !q.results.some((x) => /quokka/.test(x.path)), 'the deleted posted text is not back after the re-ingest', JSON.stringify(q).slice(0, 300));
    }

    // --- extractive /v1/ask on a server without an LLM = quire ask --json ---
    {
        const ex = await startServer(t, { store });
        r = await ex.request('GET', '/ready');
        t.ok(r.status === 200 && r.json.llm === null, '/ready without an LLM: llm null', r.text);
        const want = cliJSON(t, ['ask', Q1, '--store', store, '-k', '3'], 'ask extractive');
        r = await ex.request('POST', '/v1/ask', { question: Q1, k: 3 });
        t.ok(r.status === 200 && r.json.mode === 'extractive', '/v1/ask extractive: 200', r.text.slice(0, 400));
        if (r.status === 200 && want) {
            const d = diffJSON(r.json, want, { ignore: [...TIMINGS, 'store'] });
            t.ok(!d, '/v1/ask (extractive) = quire ask --json', d);
        }
        const s = await ex.stream('POST', '/v1/ask', { question: Q1, k: 3, stream: true });
        const ans = s.events.filter((e) => e && e.type === 'answer');
        t.ok(s.status === 200 && ans.length === 1 && s.events[s.events.length - 1] === '[DONE]' && want &&
            !diffJSON(ans[0], want, { ignore: [...TIMINGS, 'store', 'type'] }), '/v1/ask extractive streamed: the answer event = quire ask --json, then [DONE]',
        s.raw.slice(0, 600));
        t.eq(s.events.filter((e) => e && e.type === 'token').map((e) => e.text).join(''), want ? want.answer : null,
            '/v1/ask extractive streamed: token pieces add up to the answer');
        r = await ex.request('POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
        t.ok(r.status === 422 && r.json && r.json.error, '/v1/chat/completions without an LLM: 422', r.text);
        r = await ex.request('POST', '/v1/completions', { prompt: 'hi' });
        t.ok(r.status === 422 && r.json && r.json.error, '/v1/completions without an LLM: 422', r.text);
        await ex.stopClean('extractive server exits 0 on SIGTERM');
    }
    t.done();
}

main().catch((e) => { console.error(e); process.exit(1); });
