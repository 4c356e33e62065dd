// Shared harness of the integration tests: runs the real `quire serve` binary
// (QUIRE_BIN from the meson test environment) on a free loopback port and
// talks to it over real sockets. No mocks: the store is built here with
// `quire ingest` from tests/fixtures/ingest (hybrid: BM25 + vectors from the
// random-weight MiniLM-shaped embedder tests/fixtures/models/bert_minilm), the
// LLM is tests/fixtures/models/stories260K.
//
//   const t = new Test('name');           // temp dir, pass/fail counting
//   const st = buildStore(t);             // quire ingest into t.dir/store
//   const srv = await startServer(t, {store: st, llm: true, embedder: true});
//   const r = await srv.request('POST', '/v1/search', {query: 'x'});
//   await srv.stop();                     // SIGTERM; exit code must be 0
//   t.done();                             // prints the tally, exits 0/1
//
// Readiness is `quire wait ENDPOINT_FILE` (what batch scripts use), never a
// sleep; the endpoint file is written by the server itself.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const QUIRE = process.env.QUIRE_BIN;
export const FIXTURES = process.env.QUIRE_FIXTURES;
export const STORIES = FIXTURES ? path.resolve(FIXTURES, 'models/stories260K/stories260K.gguf') : null;
export const EMBEDDER = FIXTURES ? path.resolve(FIXTURES, 'models/bert_minilm') : null;
export const INGEST_DIR = FIXTURES ? path.resolve(FIXTURES, 'ingest') : null;
export const SKIP = 77;

export class Test {
    constructor(name) {
        if (!QUIRE || !FIXTURES) {
            console.error('QUIRE_BIN and QUIRE_FIXTURES must be set (run through meson test)');
            process.exit(1);
        }
        this.name = name;
        // until `quire serve` is in the build there is nothing to test
        const h = spawnSync(QUIRE, ['serve', '--help'], { encoding: 'utf8' });
        if (/unknown command/.test(h.stderr || '')) {
            console.log('SKIP: this quire has no serve command');
            process.exit(SKIP);
        }
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `qr_it_${name}_`));
        this.passes = 0;
        this.fails = 0;
        this.servers = [];
        process.on('exit', () => {
            for (const s of this.servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
            if (!process.env.QR_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
            else console.log(`kept ${this.dir}`);
        });
    }
    ok(cond, what, detail) {
        if (cond) {
            this.passes++;
        } else {
            this.fails++;
            console.error(`FAIL: ${what}${detail !== undefined ? `\n      ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`.slice(0, 4000) : ''}`);
        }
        return !!cond;
    }
    eq(got, want, what) {
        const g = JSON.stringify(got), w = JSON.stringify(want);
        return this.ok(g === w, what, `got  ${g}\n      want ${w}`);
    }
    note(msg) {
        console.log(msg);
    }
    done() {
        console.log(`${this.name}: ${this.passes} passed, ${this.fails} failed`);
        process.exit(this.fails === 0 && this.passes > 0 ? 0 : 1);
    }
    skip(why) {
        console.log(`SKIP: ${why}`);
        process.exit(SKIP);
    }
}

// Runs the quire binary synchronously; returns {status, stdout, stderr}.
export function quire(args, opts = {}) {
    const r = spawnSync(QUIRE, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// quire ingest of tests/fixtures/ingest into DIR/store (hybrid store with the
// MiniLM-shaped embedder; 120-token chunks because the fixture's tokenizer
// stops at 128 positions). Returns the store path.
export function buildStore(t, name = 'store', { embedder = true } = {}) {
    const st = path.join(t.dir, name);
    const args = ['ingest', INGEST_DIR, '--store', st, '--chunk-tokens', '120', '--chunk-overlap', '16', '--json',
        '--log-level', 'error'];
    if (embedder) args.push('--embedder', EMBEDDER);
    const r = quire(args);
    if (r.status !== 0) throw new Error(`quire ingest failed (${r.status}): ${r.stderr}`);
    return st;
}

export function writeToken(t, token = 'it-secret-0123456789abcdef') {
    const f = path.join(t.dir, 'token');
    fs.writeFileSync(f, token + '\n', { mode: 0o600 });
    return { file: f, token };
}

// Starts `quire serve` on 127.0.0.1:0 and waits with `quire wait`. Options:
//   store (path), llm (bool: stories260K), embedder (bool), tokenFile,
//   token (sent by request() unless overridden), extra (array of flags),
//   env (object), waitTimeout (s), listen (HOST:PORT, default 127.0.0.1:0).
export async function startServer(t, o = {}) {
    const ep = path.join(t.dir, `endpoint-${t.servers.length}.json`);
    const log = path.join(t.dir, `server-${t.servers.length}.log`);
    const args = ['serve', '--listen', o.listen || '127.0.0.1:0', '--endpoint-file', ep, '--log-level', o.logLevel || 'info'];
    if (o.store) args.push('--store', o.store);
    if (o.llm) args.push('--model', STORIES);
    if (o.embedder) args.push('--embedder', EMBEDDER);
    if (o.tokenFile) args.push('--token-file', o.tokenFile);
    if (o.extra) args.push(...o.extra);
    const fd = fs.openSync(log, 'w');
    const proc = spawn(QUIRE, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...(o.env || {}) } });
    fs.closeSync(fd);
    const srv = new Server(t, proc, ep, log, o.token || null, args);
    t.servers.push(srv);
    const w = await runAsync(QUIRE, ['wait', ep, '--timeout', String(o.waitTimeout || 60)]);
    if (w.status !== 0 || proc.exitCode !== null) {
        const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : '';
        throw new Error(`server not ready (quire wait exit ${w.status}: ${w.stderr.trim()})\n` +
            `quire ${args.join(' ')}\nserver log:\n${tail}`);
    }
    srv.readEndpoint();
    return srv;
}

export function runAsync(cmd, args, opts = {}) {
    return new Promise((resolve) => {
        const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
        let stdout = '', stderr = '';
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        p.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
    });
}

// The endpoint file: JSON {"host", "port", "token_file"?} or lines KEY=VALUE;
// both are read so the harness does not depend on the exact format.
export function parseEndpoint(text) {
    text = text.trim();
    try {
        const j = JSON.parse(text);
        return { host: j.host, port: Number(j.port), tokenFile: j.token_file ?? j.tokenFile ?? null, raw: j };
    } catch {
        const kv = {};
        for (const line of text.split('\n')) {
            const m = /^\s*([A-Za-z_]+)\s*[=:]\s*(.*?)\s*$/.exec(line);
            if (m) kv[m[1].toLowerCase()] = m[2];
        }
        return { host: kv.host, port: Number(kv.port), tokenFile: kv.token_file || kv.token || null, raw: kv };
    }
}

export class Server {
    constructor(t, proc, endpointFile, logFile, token, args) {
        this.t = t;
        this.proc = proc;
        this.endpointFile = endpointFile;
        this.logFile = logFile;
        this.token = token;
        this.args = args;
        this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    }
    readEndpoint() {
        const e = parseEndpoint(fs.readFileSync(this.endpointFile, 'utf8'));
        this.endpoint = e;
        this.host = e.host === '0.0.0.0' || !e.host ? '127.0.0.1' : e.host;
        this.port = e.port;
        this.base = `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
    }
    log() {
        return fs.readFileSync(this.logFile, 'utf8');
    }
    alive() {
        return this.proc.exitCode === null && this.proc.signalCode === null;
    }
    // One HTTP request on its own connection. body: object (sent as JSON),
    // string/Buffer (sent as is) or undefined. Returns {status, headers, text, json}.
    request(method, p, body, { headers = {}, token, timeout = 60000 } = {}) {
        return new Promise((resolve, reject) => {
            const h = { ...headers };
            const tok = token === undefined ? this.token : token;
            if (tok) h.Authorization = `Bearer ${tok}`;
            let data;
            if (body !== undefined) {
                data = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
                if (!('Content-Type' in h)) h['Content-Type'] = 'application/json';
                h['Content-Length'] = data.length;
            }
            const req = http.request({ host: this.host, port: this.port, method, path: p, headers: h, agent: false, timeout },
                (res) => {
                    const parts = [];
                    res.on('data', (d) => parts.push(d));
                    res.on('end', () => {
                        const text = Buffer.concat(parts).toString('utf8');
                        let json = null;
                        try { json = JSON.parse(text); } catch { /* not JSON */ }
                        resolve({ status: res.statusCode, headers: res.headers, text, json });
                    });
                    res.on('error', reject);
                });
            req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within ${timeout} ms`)));
            req.on('error', reject);
            if (data) req.write(data);
            req.end();
        });
    }
    // A streaming request: resolves with {status, headers, events (parsed
    // `data:` payloads; '[DONE]' kept as the string), raw}.
    stream(method, p, body, opts = {}) {
        return this.request(method, p, body, opts).then((r) => ({ ...r, events: parseSSE(r.text), raw: r.text }));
    }
    async health() {
        try {
            const r = await this.request('GET', '/health', undefined, { token: null, timeout: 10000 });
            return r.status === 200 && r.json && r.json.status === 'ok';
        } catch {
            return false;
        }
    }
    metrics() {
        return this.request('GET', '/metrics').then((r) => ({ ...r, samples: parseMetrics(r.text) }));
    }
    // SIGTERM and wait: resolves {code, signal, seconds}.
    async stop(signal = 'SIGTERM', waitMs = 30000) {
        const t0 = Date.now();
        if (this.alive()) this.proc.kill(signal);
        const r = await Promise.race([this.exited, new Promise((res) => setTimeout(() => res(null), waitMs))]);
        if (!r) {
            this.proc.kill('SIGKILL');
            return { code: null, signal: 'timeout', seconds: (Date.now() - t0) / 1000 };
        }
        return { ...r, seconds: (Date.now() - t0) / 1000 };
    }
    // stop() and assert a clean exit (code 0, no signal), showing the log if not.
    async stopClean(what = 'server exits 0 on SIGTERM') {
        const r = await this.stop();
        this.t.ok(r.code === 0 && r.signal === null, what, `exit ${JSON.stringify(r)}\n${this.log().slice(-3000)}`);
        return r;
    }
}

// Server-sent events: every `data:` line's payload, JSON-parsed where it is JSON.
export function parseSSE(text) {
    const out = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
        const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
        if (!data.length) continue;
        const s = data.join('\n');
        try { out.push(s === '[DONE]' ? s : JSON.parse(s)); } catch { out.push({ unparsed: s }); }
    }
    return out;
}

// Prometheus text format → Map "name{l="v",...}" → number (labels sorted),
// plus helpers to sum over label sets.
export function parseMetrics(text) {
    const m = new Map();
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const r = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
        if (!r) continue;
        const labels = {};
        if (r[3]) for (const lm of r[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
        const key = r[1] + '{' + Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',') + '}';
        m.set(key, { name: r[1], labels, value: Number(r[4]) });
    }
    return m;
}

// Sum of samples named `name` whose labels include all of `want`.
export function metricSum(samples, name, want = {}) {
    let s = 0, n = 0;
    for (const v of samples.values()) {
        if (v.name !== name) continue;
        if (Object.entries(want).every(([k, x]) => v.labels[k] === x)) { s += v.value; n++; }
    }
    return n ? s : null;
}

// A raw TCP exchange: sends `bytes` (Buffer or array of {data, delayMs}),
// optionally half-closes, then reads until the server closes or `timeout`
// ms pass or one full response arrived. Returns {raw (Buffer), closed, timedOut, ms}.
export function rawExchange(host, port, bytes, { timeout = 10000, halfClose = false, oneResponse = true } = {}) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const sock = net.connect({ host, port });
        const chunks = [];
        let finished = false;
        const finish = (how) => {
            if (finished) return;
            finished = true;
            clearTimeout(timer);
            sock.destroy();
            resolve({ raw: Buffer.concat(chunks), closed: how === 'closed', timedOut: how === 'timeout', error: how.error, ms: Date.now() - t0 });
        };
        const timer = setTimeout(() => finish('timeout'), timeout);
        sock.on('data', (d) => {
            chunks.push(d);
            if (oneResponse && parseResponse(Buffer.concat(chunks)).complete) finish('response');
        });
        sock.on('end', () => finish('closed'));
        sock.on('close', () => finish('closed'));
        sock.on('error', (e) => finish({ error: e.code || String(e) }));
        sock.on('connect', async () => {
            const parts = Buffer.isBuffer(bytes) ? [{ data: bytes }] : bytes;
            for (const p of parts) {
                if (p.delayMs) await new Promise((r) => setTimeout(r, p.delayMs));
                if (finished) return;
                sock.write(p.data);
            }
            if (halfClose) sock.end();
        });
    });
}

// Parses the first HTTP response in buf: {complete, status, headers, body}.
export function parseResponse(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return { complete: false };
    const head = buf.subarray(0, end).toString('latin1').split('\r\n');
    const sm = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
    if (!sm) return { complete: false, garbage: true };
    const headers = {};
    for (const l of head.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let body = buf.subarray(end + 4);
    let complete = false;
    if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        complete = body.length >= n;
        body = body.subarray(0, n);
    } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
        const out = [];
        let p = 0;
        for (;;) {
            const le = body.indexOf('\r\n', p);
            if (le < 0) break;
            const n = parseInt(body.subarray(p, le).toString('latin1'), 16);
            if (Number.isNaN(n)) break;
            if (n === 0) { complete = true; break; }
            if (body.length < le + 2 + n + 2) break;
            out.push(body.subarray(le + 2, le + 2 + n));
            p = le + 2 + n + 2;
        }
        body = Buffer.concat(out);
    }
    return { complete, status: Number(sm[1]), headers, body: body.toString('utf8') };
}
