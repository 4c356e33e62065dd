"""HTTP/1.1 persistent connections (issue 13, item 9): one client connection
(Python's http.client, which reopens silently when the server closes) carries
requests to every route, error answers (404, 405, 401, 415, 400), POSTs with
a body, SSE answers (extractive and generated), a streamed generation and,
where the build has them, the Ollama routes (HEAD /, NDJSON /api/generate),
and stays the same
TCP connection throughout: no response says `Connection: close`, the socket
http.client holds is the same object after every response, and the server's
own count of accepted connections (quire_http_connections_total in /metrics)
moves by exactly one. The exceptions that do close are checked too: a
Content-Length over the body limit (413, the body is not read) and an HTTP/1.0
request without keep-alive."""
import http.client
import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai"))
from harness import Test, build_store, start_server, write_token  # noqa: E402


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def send_until_close(srv, request):
    """Sends request (bytes) on a new connection; everything the server sends until it closes."""
    s = socket.create_connection((srv.host, srv.port), timeout=30)
    s.sendall(request)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got


def one_connection(t, srv, steps, label):
    """Sends steps (what, method, path, body, headers, status) on one http.client connection."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    sock = None
    for what, method, path, body, headers, want in steps:
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as ex:
            t.ok(False, f"{label}{what}: answered on the kept-alive connection", repr(ex))
            conn.close()
            continue
        t.ok(r.status == want, f"{label}{what}: {want}", f"{r.status} {data[:300]}")
        ch = (r.getheader("Connection") or "").lower()
        t.ok("close" not in ch and not r.will_close, f"{label}{what}: the connection stays open (no Connection: close)",
             f"Connection: {ch!r}, will_close {r.will_close}")
        if r.getheader("Content-Type", "").startswith("text/event-stream"):
            t.ok(data.rstrip().endswith("data: [DONE]"), f"{label}{what}: the stream ends with data: [DONE]", data[-300:])
        if r.getheader("Content-Type", "").startswith("application/x-ndjson"):
            last = data.strip().split("\n")[-1] if data.strip() else ""
            try:
                done = json.loads(last).get("done") is True
            except ValueError:
                done = False
            t.ok(done, f"{label}{what}: the NDJSON stream ends with a done object", data[-300:])
        if sock is None:
            sock = conn.sock
        t.ok(conn.sock is not None and conn.sock is sock, f"{label}{what}: same socket as the first request")
    conn.close()


def main():
    t = Test("keepalive")
    st = build_store(t, embedder=False)
    tok_file, tok = write_token(t)
    srv = start_server(t, store=st, llm=True, token_file=tok_file, log_level="warn")
    auth = {"Authorization": f"Bearer {tok}"}
    jh = dict(auth, **{"Content-Type": "application/json"})

    def fresh_metrics():
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        c.request("GET", "/metrics", headers=auth)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return text

    # the Ollama routes where this build has them (GET /api/version answers 200)
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    c.request("GET", "/api/version", headers=auth)
    r = c.getresponse()
    r.read()
    c.close()
    ollama = r.status == 200

    m0 = fresh_metrics()
    c0 = metric(m0, "quire_http_connections_total")
    t.ok(c0 is not None and metric(m0, "quire_http_connections_open") is not None,
         "/metrics has quire_http_connections_total and quire_http_connections_open", m0[-2000:])

    search = json.dumps({"query": "build from source", "k": 3})
    steps = [
        ("GET /health", "GET", "/health", None, {}, 200),
        ("GET /ready", "GET", "/ready", None, auth, 200),
        ("GET /metrics", "GET", "/metrics", None, auth, 200),
        ("GET /v1/models", "GET", "/v1/models", None, auth, 200),
        ("POST /v1/search", "POST", "/v1/search", search, jh, 200),
        ("unknown route", "GET", "/no/such/route", None, auth, 404),
        ("wrong method", "GET", "/v1/search", None, auth, 405),
        ("POST with a body and no token", "POST", "/v1/search", search, {"Content-Type": "application/json"}, 401),
        ("POST with a body and a wrong token", "POST", "/v1/search", search,
         {"Content-Type": "application/json", "Authorization": "Bearer nope"}, 401),
        ("POST text/plain", "POST", "/v1/search", search, dict(auth, **{"Content-Type": "text/plain"}), 415),
        ("POST invalid JSON", "POST", "/v1/search", '{"query": ', jh, 400),
        ("POST k 0", "POST", "/v1/search", json.dumps({"query": "x", "k": 0}), jh, 400),
        ("POST /v1/ask", "POST", "/v1/ask",
         json.dumps({"question": "how do I build from source?", "k": 2, "max_tokens": 8, "temperature": 0}), jh, 200),
        ("POST /v1/ask, streamed", "POST", "/v1/ask",
         json.dumps({"question": "how do I build from source?", "k": 2, "max_tokens": 8, "temperature": 0,
                     "stream": True}), jh, 200),
        ("POST /v1/completions", "POST", "/v1/completions",
         json.dumps({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}), jh, 200),
        ("POST /v1/chat/completions, streamed", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "Tell a story."}], "max_tokens": 8,
                     "temperature": 0, "stream": True}), jh, 200),
        ("DELETE of an unknown document", "DELETE", "/v1/documents/999999", None, auth, 404),
        ("POST /v1/search again", "POST", "/v1/search", search, jh, 200),
    ]
    if ollama:
        gen = {"model": "stories260K", "prompt": "Once upon a time", "options": {"num_predict": 8, "temperature": 0}}
        steps[-1:-1] = [
            ("HEAD / (ollama heartbeat)", "HEAD", "/", None, auth, 200),
            ("GET /api/tags", "GET", "/api/tags", None, auth, 200),
            ("POST /api/generate, NDJSON stream", "POST", "/api/generate", json.dumps(gen), jh, 200),
            ("POST /api/generate, not streamed", "POST", "/api/generate", json.dumps(dict(gen, stream=False)), jh, 200),
            ("POST /api/generate, unknown model", "POST", "/api/generate", json.dumps(dict(gen, model="nope")), jh, 404),
        ]
    else:
        t.note("no Ollama routes in this build (GET /api/version is not 200): their steps are left out")
    one_connection(t, srv, steps, "")

    m1 = fresh_metrics()
    c1 = metric(m1, "quire_http_connections_total")
    # the two /metrics scrapes use a connection each; the steps one
    t.eq(None if c0 is None or c1 is None else c1 - c0, 2.0,
         f"{len(steps)} requests on one connection: quire_http_connections_total +2 (them and one scrape)")

    # exceptions that close: a Content-Length over the limit is refused unread ...
    got = send_until_close(srv, f"POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                           "Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n".encode())
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    t.ok(head.startswith("HTTP/1.1 413") and re.search(r"(?im)^connection: close", head) is not None,
         "Content-Length over the limit: 413, Connection: close, and the server closes", head)
    # ... and HTTP/1.0 without Connection: keep-alive closes after the answer
    got = send_until_close(srv, b"GET /health HTTP/1.0\r\n\r\n")
    t.ok(got.startswith(b"HTTP/1.") and b" 200 " in got.split(b"\r\n", 1)[0],
         "HTTP/1.0 GET /health: 200, then the server closes", got[:200].decode("latin-1"))

    srv.stop_clean()

    # without a model /v1/ask answers extractively (its SSE body is built at once)
    ex = start_server(t, store=st, log_level="warn")
    h = {"Content-Type": "application/json"}
    q = {"question": "how do I build from source?", "k": 2}
    one_connection(t, ex, [
        ("POST /v1/ask", "POST", "/v1/ask", json.dumps(q), h, 200),
        ("POST /v1/ask, streamed", "POST", "/v1/ask", json.dumps(dict(q, stream=True)), h, 200),
        ("unknown route", "GET", "/nope", None, {}, 404),
        ("POST /v1/search", "POST", "/v1/search", json.dumps({"query": "first record"}), h, 200),
    ], "extractive: ")
    ex.stop_clean("extractive server exits 0 on SIGTERM")
    t.done()


if __name__ == "__main__":
    main()
