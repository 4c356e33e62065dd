"""Python side of the integration-test harness (the counterpart of ../lib/harness.mjs):
runs the real `quire serve` binary (QUIRE_BIN from the meson test environment)
on a free loopback port and talks to it over real sockets. The store is built
with `quire ingest` from tests/fixtures/ingest (hybrid: BM25 + vectors from the
MiniLM-shaped embedder tests/fixtures/models/bert_minilm); the LLM is
tests/fixtures/models/stories260K.

    t = Test("name")                       # temp dir, pass/fail counting
    st = build_store(t)                    # quire ingest into t.dir/store
    tok = write_token(t)                   # (file, token)
    srv = start_server(t, store=st, llm=True, embedder=True, token_file=tok[0])
    ...
    srv.stop_clean()                       # SIGTERM; exit code must be 0
    t.done()                               # prints the tally, exits 0/1

Readiness is `quire wait ENDPOINT_FILE` (what batch scripts use), never a
sleep; the endpoint file is written by the server itself."""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

QUIRE = os.environ.get("QUIRE_BIN")
FIXTURES = os.environ.get("QUIRE_FIXTURES")
STORIES = os.path.realpath(os.path.join(FIXTURES, "models/stories260K/stories260K.gguf")) if FIXTURES else None
EMBEDDER = os.path.realpath(os.path.join(FIXTURES, "models/bert_minilm")) if FIXTURES else None
INGEST_DIR = os.path.realpath(os.path.join(FIXTURES, "ingest")) if FIXTURES else None
SKIP = 77


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


class Test:
    def __init__(self, name):
        if not (QUIRE and FIXTURES):
            print("QUIRE_BIN and QUIRE_FIXTURES must be set (run through meson test)", file=sys.stderr)
            sys.exit(1)
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"qr_it_{name}_")
        self.passes = self.fails = 0
        self.servers = []
        atexit.register(self._cleanup)

    def _cleanup(self):
        for s in self.servers:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        if os.environ.get("QR_KEEP"):
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def ok(self, cond, what, detail=None):
        if cond:
            self.passes += 1
        else:
            self.fails += 1
            msg = f"FAIL: {what}"
            if detail is not None:
                msg += "\n      " + (detail if isinstance(detail, str) else json.dumps(detail, default=str))[:4000]
            print(msg, file=sys.stderr, flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, f"got  {got!r}\n      want {want!r}")

    def note(self, msg):
        print(msg, flush=True)

    def done(self):
        print(f"{self.name}: {self.passes} passed, {self.fails} failed", flush=True)
        sys.exit(0 if self.fails == 0 and self.passes > 0 else 1)


def quire(args, input=None, timeout=120):
    """Runs the quire binary; returns the CompletedProcess (text mode)."""
    return subprocess.run([QUIRE] + args, input=input, capture_output=True, text=True, timeout=timeout)


def build_store(t, name="store", embedder=True):
    """quire ingest of tests/fixtures/ingest into t.dir/name (120-token chunks: the fixture
    tokenizer stops at 128 positions). Returns the store path."""
    st = os.path.join(t.dir, name)
    args = ["ingest", INGEST_DIR, "--store", st, "--chunk-tokens", "120", "--chunk-overlap", "16", "--json",
            "--log-level", "error"]
    if embedder:
        args += ["--embedder", EMBEDDER]
    r = quire(args)
    if r.returncode != 0:
        raise RuntimeError(f"quire ingest failed ({r.returncode}): {r.stderr}")
    return st


def write_token(t, token="it-secret-0123456789abcdef"):
    f = os.path.join(t.dir, "token")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return f, token


class Server:
    def __init__(self, t, proc, endpoint_file, log_file, args):
        self.t, self.proc, self.endpoint_file, self.log_file, self.args = t, proc, endpoint_file, log_file, args

    def read_endpoint(self):
        with open(self.endpoint_file, encoding="utf-8") as f:
            e = json.load(f)
        host = e.get("host") or "127.0.0.1"
        self.host = "127.0.0.1" if host == "0.0.0.0" else host
        self.port = int(e["port"])
        self.base = f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    def log(self):
        with open(self.log_file, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, wait_s=30):
        """Signals the server and waits; returns its exit code (None when it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop_clean(self, what="server exits 0 on SIGTERM"):
        code = self.stop()
        self.t.ok(code == 0, what, f"exit {code}\n{self.log()[-3000:]}")
        return code


def start_server(t, store=None, llm=False, embedder=False, token_file=None, extra=(), wait_timeout=60,
                 listen="127.0.0.1:0", log_level="info"):
    """Starts `quire serve` on a free loopback port and waits for it with `quire wait`."""
    n = len(t.servers)
    ep = os.path.join(t.dir, f"endpoint-{n}.json")
    log = os.path.join(t.dir, f"server-{n}.log")
    args = ["serve", "--listen", listen, "--endpoint-file", ep, "--log-level", log_level]
    if store:
        args += ["--store", store]
    if llm:
        args += ["--model", llm if isinstance(llm, str) else STORIES]
    if embedder:
        args += ["--embedder", EMBEDDER]
    if token_file:
        args += ["--token-file", token_file]
    args += list(extra)
    with open(log, "w") as fh:
        proc = subprocess.Popen([QUIRE] + args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
    srv = Server(t, proc, ep, log, args)
    t.servers.append(srv)
    w = quire(["wait", ep, "--timeout", str(wait_timeout)], timeout=wait_timeout + 30)
    if w.returncode != 0 or proc.poll() is not None:
        raise RuntimeError(f"server not ready (quire wait exit {w.returncode}: {w.stderr.strip()})\n"
                           f"quire {' '.join(args)}\nserver log:\n{srv.log()[-3000:]}")
    srv.read_endpoint()
    return srv
