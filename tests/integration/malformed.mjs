// The malformed-request corpus (tests/integration/malformed/*.http, format in
// its README.md): each raw request goes to a real `quire serve` over a plain
// TCP socket; the answer must have the expected status (and, for quire's own
// errors, a JSON error naming the field), and the server must still answer
// GET /health afterwards. At the end SIGTERM must give exit code 0.
//   node malformed.mjs [CASE_SUBSTRING...]   (run only matching cases)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Test, buildStore, writeToken, startServer, rawExchange, parseResponse } from './lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const corpusDir = path.join(here, 'malformed');

// Limits the server runs with here, so the corpus does not depend on defaults.
export const LIMITS = {
    body: 65536,      // bytes
    string: 8192,     // bytes per JSON string
    inputs: 256,      // /v1/embeddings input array
    messages: 128,    // /v1/chat/completions messages
    idle: 2,          // seconds a connection may stay silent
};

// Expands ${...} in text; vars: token, len. Inside ${rep:N:TEXT} the TEXT
// may hold escapes (\n \r \t \\ \} \xHH) and further ${...}.
export function expand(text, vars, inner = false) {
    const out = [];
    let i = 0, lit = '';
    const flush = () => { if (lit) out.push(Buffer.from(lit, 'utf8')); lit = ''; };
    while (i < text.length) {
        if (inner && text[i] === '\\') {
            flush();
            const c = text[i + 1];
            if (c === 'x') { out.push(Buffer.from([parseInt(text.slice(i + 2, i + 4), 16)])); i += 4; continue; }
            out.push(Buffer.from({ n: '\n', r: '\r', t: '\t' }[c] ?? c, 'utf8'));
            i += 2;
            continue;
        }
        if (!text.startsWith('${', i)) { lit += text[i++]; continue; }
        flush();
        // the matching unescaped }, nested ${ counted
        let k = i + 2, depth = 1;
        for (; k < text.length; k++) {
            if (text[k] === '\\') { k++; continue; }
            if (text.startsWith('${', k)) { depth++; k++; continue; }
            if (text[k] === '}' && --depth === 0) break;
        }
        if (k >= text.length) throw new Error(`unterminated \${ at ${i}`);
        const body = text.slice(i + 2, k);
        if (body === 'token') out.push(Buffer.from(vars.token, 'utf8'));
        else if (body === 'len') out.push(Buffer.from(String(vars.len), 'utf8'));
        else if (body.startsWith('rep:')) {
            const m = /^rep:(\d+):([\s\S]*)$/.exec(body);
            const piece = expand(m[2], vars, true);
            out.push(Buffer.concat(Array(Number(m[1])).fill(piece)));
        } else if (body.startsWith('x:')) {
            out.push(Buffer.from(body.slice(2).replace(/\s+/g, ''), 'hex'));
        } else throw new Error(`unknown expansion \${${body}}`);
        i = k + 1;
    }
    flush();
    return Buffer.concat(out);
}

export function loadCase(file, token) {
    const src = fs.readFileSync(file, 'utf8');
    const lines = src.split('\n');
    const d = { name: path.basename(file, '.http'), expect: [], timeout: 10000, comment: [] };
    let n = 0;
    for (; n < lines.length && lines[n].startsWith('#'); n++) {
        const m = /^#\s*@(\w+)\s*(.*)$/.exec(lines[n]);
        if (!m) { d.comment.push(lines[n].replace(/^#\s?/, '')); continue; }
        const [, key, val] = m;
        if (key === 'expect') d.expect = val.split(/\s+/).map((x) => (x === 'close' || x === 'hold' ? x : Number(x)));
        else if (key === 'param') d.param = val.split('|').map((x) => (x === 'null' ? null : x));
        else if (key === 'code') d.code = val.trim();
        else if (key === 'type') d.type = val.trim();
        else if (key === 'header') { const [h, ...rest] = val.split(/\s+/); (d.headers ||= []).push([h.toLowerCase(), rest.join(' ')]); }
        else if (key === 'timeout') d.timeout = Number(val);
        else if (key === 'conns') d.conns = Number(val);
        else if (['nojson', 'raw', 'halfclose', 'hold'].includes(key)) d[key] = true;
        else if (key === 'known') d.known = val.trim() || true;
        else throw new Error(`${file}: unknown directive @${key}`);
    }
    let rest = lines.slice(n).join('\n');
    if (rest.endsWith('\n')) rest = rest.slice(0, -1);
    if (d.raw) {
        d.bytes = expand(rest.replace(/\n/g, '\r\n'), { token });
    } else {
        const sep = rest.indexOf('\n\n');
        const headText = (sep < 0 ? rest : rest.slice(0, sep)).replace(/\n+$/, '');
        const bodyText = sep < 0 ? '' : rest.slice(sep + 2);
        const body = expand(bodyText, { token });
        const head = expand(headText.split('\n').join('\r\n') + '\r\n\r\n', { token, len: body.length });
        d.bytes = Buffer.concat([head, body]);
    }
    if (!d.expect.length) throw new Error(`${file}: no @expect`);
    return d;
}

function checkAnswer(t, c, r) {
    const what = `${c.name}`;
    if (r.error && !r.raw.length) {
        return t.ok(c.expect.includes('close') && (r.error === 'ECONNRESET' || r.error === 'EPIPE'), what,
            `connection error ${r.error}, want ${c.expect.join('|')}`);
    }
    if (!r.raw.length) {
        // `hold`: still open, unanswered, when the client gives up after @timeout
        return t.ok(r.closed ? c.expect.includes('close') : r.timedOut && c.expect.includes('hold'), what,
            r.timedOut ? `no answer within ${c.timeout} ms (want ${c.expect.join('|')})` :
                `closed without an answer (want ${c.expect.join('|')})`);
    }
    const p = parseResponse(r.raw);
    if (!p.status) return t.ok(false, what, `not an HTTP response: ${JSON.stringify(r.raw.subarray(0, 200).toString('latin1'))}`);
    const problems = [];
    if (!c.expect.includes(p.status)) problems.push(`status ${p.status}, want ${c.expect.join('|')}`);
    for (const [h, v] of c.headers || []) {
        const got = p.headers[h];
        if (got === undefined || !got.toLowerCase().includes(v.toLowerCase())) problems.push(`header ${h}: ${got}, want ~${v}`);
    }
    if (!c.nojson && p.status >= 400) {
        let j = null;
        try { j = JSON.parse(p.body); } catch { /* below */ }
        const e = j && j.error;
        if (!/application\/json/.test(p.headers['content-type'] || '')) problems.push(`content-type ${p.headers['content-type']}`);
        if (!e || typeof e.message !== 'string' || !e.message || typeof e.type !== 'string') problems.push(`not a JSON error: ${p.body.slice(0, 300)}`);
        else {
            if (c.param && !c.param.includes(e.param ?? null)) problems.push(`param ${JSON.stringify(e.param)}, want ${c.param.join('|')} (message: ${e.message})`);
            if (c.code && e.code !== c.code) problems.push(`code ${JSON.stringify(e.code)}, want ${c.code}`);
            if (c.type && e.type !== c.type) problems.push(`type ${e.type}, want ${c.type}`);
        }
    }
    return t.ok(!problems.length, what, problems.join('; ') + (problems.length ? `\n      body: ${p.body.slice(0, 300)}` : ''));
}

async function runCase(t, srv, c) {
    if (c.hold) {
        const n = c.conns || 1;
        const pending = [];
        for (let i = 0; i < n; i++) pending.push(rawExchange(srv.host, srv.port, c.bytes, { timeout: c.timeout, halfClose: c.halfclose }));
        // while these connections are held open, the server answers others
        await new Promise((r) => setTimeout(r, 300));
        t.ok(await srv.health(), `${c.name}: /health answers while ${n} connection(s) are held open`);
        const rs = await Promise.all(pending);
        for (const r of rs) if (!checkAnswer(t, c, r)) break;
        const slowest = Math.max(...rs.map((r) => r.ms));
        t.ok(slowest <= LIMITS.idle * 1000 + 4000, `${c.name}: closed within the idle timeout + 4 s (${slowest} ms, idle ${LIMITS.idle} s)`);
    } else {
        const r = await rawExchange(srv.host, srv.port, c.bytes, { timeout: c.timeout, halfClose: c.halfclose });
        checkAnswer(t, c, r);
    }
    t.ok(await srv.health(), `${c.name}: server answers /health afterwards`, srv.alive() ? 'alive but no answer' : `server died:\n${srv.log().slice(-2000)}`);
}

async function main() {
    const t = new Test(process.argv.includes('--known') ? 'malformed_known' : 'malformed');
    // --known: only the cases marked @known (open server bugs; meson runs them as should_fail)
    const known = process.argv.includes('--known');
    const filter = process.argv.slice(2).filter((a) => a !== '--known');
    const files = fs.readdirSync(corpusDir).filter((f) => f.endsWith('.http')).sort()
        .filter((f) => !filter.length || filter.some((s) => f.includes(s)));
    const tok = writeToken(t);
    const all = files.map((f) => loadCase(path.join(corpusDir, f), tok.token));
    const cases = all.filter((c) => !!c.known === known);
    for (const c of all) if (c.known && !known) t.note(`known server bug, run by it_malformed_known: ${c.name}: ${c.known}`);
    const store = buildStore(t);
    const srv = await startServer(t, {
        store, llm: true, embedder: true, tokenFile: tok.file, token: tok.token,
        extra: ['--max-body-bytes', String(LIMITS.body), '--max-string-bytes', String(LIMITS.string),
            '--max-inputs', String(LIMITS.inputs), '--max-messages', String(LIMITS.messages), '--idle-timeout', String(LIMITS.idle)],
    });
    t.note(`${cases.length} cases against ${srv.base}`);
    for (const c of cases) {
        if (!srv.alive()) { t.ok(false, `${c.name}: not run, the server is gone`); continue; }
        await runCase(t, srv, c);
    }
    await srv.stopClean();
    t.done();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main().catch((e) => { console.error(e); process.exit(1); });
