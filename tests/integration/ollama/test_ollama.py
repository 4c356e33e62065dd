"""The official `ollama` Python client (pinned in tools/python/requirements.txt;
QUIRE_PYTHON is the venv tools/pydeps.sh builds) against the real `quire serve`
(stories260K + the MiniLM-shaped fixture embedder, a bearer token passed as a
header), used as a user would with host pointing at the server. References are
quire's OpenAI routes and `quire embed`, which the it_openai test holds to the
openai client and to quire generate:
 - list() names both models Ollama-style (NAME:latest) with the file's size;
   show() gives capabilities and the server's context; GET /api/version;
   HEAD / (the ollama CLI's heartbeat);
 - chat(), greedy, streamed and not = POST /v1/chat/completions with the same
   messages and max tokens (text, token counts, done_reason = finish_reason);
   the stream's pieces add up to the same text, only the last is done; with a
   model name without ":latest", with the name as --model gave it;
 - generate(), greedy, streamed and not, and raw = POST /v1/completions (the
   model has no chat template: the prompt alone after BOS);
 - without "stream" the body is NDJSON (Ollama streams by default), also when
   the request is sent as curl -d sends it (a form Content-Type);
 - embed() = POST /v1/embeddings of the same texts, identical floats, and =
   `quire embed` within 1e-5; dimensions cuts and renormalises; truncate=False
   refuses an over-long input; embeddings() (legacy) = /v1/embeddings;
 - errors as ResponseError with Ollama's status: unknown model 404 "model 'x'
   not found", format / tools / think 400, chat with the embedder and embed
   with the LLM 400, options.num_ctx over the server's context 400, a wrong
   token 401; the error body is {"error": "message"};
 - a client that closes a stream, or leaves before a non-streamed answer,
   cancels the generation (client_cancels_total +1, nothing left running);
 - with SmolLM2-135M-Instruct (tools/models.sh; left out when absent) the
   chat template path: chat() = /v1/chat/completions.
Exits 77 (SKIP) when the ollama package is missing."""
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "openai"))
from harness import (EMBEDDER, STORIES, Test, build_store, quire, skip, start_server,  # noqa: E402
                     write_token)

try:
    import ollama
except ImportError:
    skip(f"the ollama package is missing in {sys.executable}: run tools/pydeps.sh")

CTX = 256
SMOL = "SmolLM2-135M-Instruct-Q4_1.gguf"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def http(srv, method, path, body=None, token=None, ctype="application/json"):
    """(status, headers, body text) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def openai_post(srv, token, path, body):
    """POST to an OpenAI route naming the model as GET /v1/models does (LLM first, then the embedder)."""
    st, _, text = http(srv, "GET", "/v1/models", token=token)
    ids = [m["id"] for m in json.loads(text)["data"]] if st == 200 else ["?"]
    body = dict(body, model=ids[-1] if path == "/v1/embeddings" else ids[0])
    st, _, text = http(srv, "POST", path, body, token)
    return json.loads(text) if st == 200 else {"error": text, "status": st}


def expect_error(t, what, status, fn, contains=None):
    try:
        fn()
        t.ok(False, f"{what}: refused")
    except ollama.ResponseError as err:
        t.ok(err.status_code == status and isinstance(err.error, str) and (contains is None or contains in err.error),
             f"{what}: ResponseError {status}" + (f" saying {contains!r}" if contains else ""),
             f"{err.status_code} {err.error!r}")


def check_models(t, srv, client, token):
    ms = client.list().models
    names = [m.model for m in ms]
    t.eq(names, ["stories260K:latest", "bert_minilm:latest"], "list(): both models, Ollama-style names")
    if ms:
        t.eq(int(ms[0].size), os.path.getsize(STORIES), "list(): the LLM's size is its file's")
        t.eq(ms[0].details.family, "llama", "list(): the LLM's family is its architecture")
    sh = client.show("stories260K")
    t.eq(list(sh.capabilities or []), ["completion"], "show(LLM): capabilities")
    t.eq((sh.modelinfo or {}).get("llama.context_length"), CTX, "show(LLM): context length = the server's --ctx")
    t.eq(list(client.show("bert_minilm:latest").capabilities or []), ["embedding"], "show(embedder): capabilities")
    st, _, text = http(srv, "GET", "/api/version", token=token)
    t.ok(st == 200 and re.match(r"^\d+\.\d+\.\d+$", json.loads(text).get("version", "")),
         "GET /api/version: a version number", text)
    st, _, _ = http(srv, "HEAD", "/", token=token)
    t.eq(st, 200, "HEAD / (the ollama CLI's heartbeat)")


def check_chat(t, srv, client, token):
    messages = [{"role": "system", "content": "You tell short stories."},
                {"role": "user", "content": "Tell me about a cat."}]
    n = 32
    want = openai_post(srv, token, "/v1/chat/completions",
                       {"model": "x", "messages": messages, "max_tokens": n, "temperature": 0})
    wtext = want["choices"][0]["message"]["content"] if "choices" in want else None
    t.ok(wtext, "/v1/chat/completions reference", want)
    r = client.chat(model="stories260K:latest", messages=messages, options={"temperature": 0, "num_predict": n})
    t.eq(r.message.content, wtext, f"chat() (greedy {n}) = /v1/chat/completions")
    t.eq(r.message.role, "assistant", "chat(): role assistant")
    t.ok(r.done and r.prompt_eval_count == want["usage"]["prompt_tokens"]
         and r.eval_count == want["usage"]["completion_tokens"],
         "chat(): done, prompt_eval_count and eval_count = the OpenAI usage", r.model_dump_json())
    t.eq(r.done_reason, want["choices"][0]["finish_reason"], "chat(): done_reason = finish_reason")
    t.ok(r.total_duration and r.total_duration > 0 and r.eval_duration is not None and r.eval_duration >= 0
         and r.load_duration == 0 and r.total_duration >= r.eval_duration,
         "chat(): durations in nanoseconds", r.model_dump_json())
    t.ok(RFC3339.match(r.created_at or ""), f"chat(): created_at RFC 3339 UTC ({r.created_at})")
    t.eq(r.model, "stories260K:latest", "chat(): model echoes the request's name")
    parts = list(client.chat(model="stories260K", messages=messages, stream=True,
                             options={"temperature": 0, "num_predict": n}))
    t.eq("".join(p.message.content for p in parts), wtext, "chat(stream=True): pieces add up to the same text")
    t.ok(parts and parts[-1].done and not any(p.done for p in parts[:-1]) and parts[-1].message.content == ""
         and parts[-1].eval_count == r.eval_count and parts[-1].done_reason == r.done_reason,
         "chat(stream=True): only the last object is done, with the counts", [p.model_dump() for p in parts[-2:]])
    # the name as --model gave it (a path) is a name too
    r2 = client.chat(model=STORIES, messages=messages, options={"temperature": 0, "num_predict": n})
    t.eq(r2.message.content, wtext, "chat() with the model's path as its name")
    # an empty message list loads the model (Ollama's answer)
    r3 = client.chat(model="stories260K", messages=[])
    t.ok(r3.done and r3.done_reason == "load", "chat() with no messages: done_reason load", r3.model_dump_json())


def check_generate(t, srv, client, token):
    for prompt, n in (("Once upon a time", 24), ("Tim and Sue", 16)):
        want = openai_post(srv, token, "/v1/completions",
                           {"model": "x", "prompt": prompt, "max_tokens": n, "temperature": 0})
        wtext = want["choices"][0]["text"] if "choices" in want else None
        t.ok(wtext, "/v1/completions reference", want)
        r = client.generate(model="stories260K", prompt=prompt, options={"temperature": 0, "num_predict": n})
        t.eq(r.response, wtext, f"generate({prompt!r}) (greedy {n}) = /v1/completions")
        t.ok(r.prompt_eval_count == want["usage"]["prompt_tokens"]
             and r.eval_count == want["usage"]["completion_tokens"]
             and r.done_reason == want["choices"][0]["finish_reason"],
             f"generate({prompt!r}): counts and done_reason = the OpenAI ones", r.model_dump_json())
        parts = list(client.generate(model="stories260K", prompt=prompt, stream=True,
                                     options={"temperature": 0, "num_predict": n}))
        t.eq("".join(p.response for p in parts), wtext, f"generate({prompt!r}, stream=True) = /v1/completions")
        t.ok(parts[-1].done and not any(p.done for p in parts[:-1]), "generate stream: only the last is done")
        raw = client.generate(model="stories260K", prompt=prompt, raw=True,
                              options={"temperature": 0, "num_predict": n})
        t.eq(raw.response, wtext, f"generate({prompt!r}, raw=True) = /v1/completions")
    # stop strings end the text before them, as on the OpenAI route
    want = openai_post(srv, token, "/v1/completions",
                       {"model": "x", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0,
                        "stop": ["girl"]})
    r = client.generate(model="stories260K", prompt="Once upon a time",
                         options={"temperature": 0, "num_predict": 24, "stop": ["girl"]})
    t.eq(r.response, want["choices"][0]["text"] if "choices" in want else want, "generate() with options.stop")
    # no "stream" field: NDJSON, as Ollama streams by default; sent as curl -d sends it
    ref = client.generate(model="stories260K", prompt="Once upon a time",
                          options={"temperature": 0, "num_predict": 24}).response
    for ctype in ("application/json", "application/x-www-form-urlencoded"):
        st, hdr, text = http(srv, "POST", "/api/generate",
                             {"model": "stories260K", "prompt": "Once upon a time",
                              "options": {"temperature": 0, "num_predict": 24}}, token, ctype)
        lines = [json.loads(x) for x in text.splitlines() if x.strip()] if st == 200 else []
        t.ok(st == 200 and hdr.get("Content-Type", "").startswith("application/x-ndjson") and len(lines) >= 2
             and lines[-1].get("done") is True and text.endswith("\n"),
             f"POST /api/generate without stream ({ctype}): an NDJSON stream", f"{st} {hdr} {text[:500]}")
        t.eq("".join(x.get("response", "") for x in lines), ref, f"NDJSON stream ({ctype}) = the unstreamed response")


def vec_diff(a, b):
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def check_embed(t, srv, client, token):
    inputs = ["hello world", "Quire runs offline. It needs a C compiler.", "The numbat eats termites."]
    want = openai_post(srv, token, "/v1/embeddings", {"model": "x", "input": inputs, "encoding_format": "float"})
    wv = [d["embedding"] for d in sorted(want.get("data", []), key=lambda d: d["index"])]
    t.ok(len(wv) == 3, "/v1/embeddings reference", want)
    r = client.embed(model="bert_minilm", input=inputs)
    got = [list(v) for v in r.embeddings]
    t.ok(got == wv, "embed() = /v1/embeddings of the same texts, identical floats",
         f"max |diff| {max((vec_diff(a, b) for a, b in zip(got, wv)), default=-1)}")
    t.ok(r.prompt_eval_count == want["usage"]["prompt_tokens"], "embed(): prompt_eval_count = usage.prompt_tokens",
         f"{r.prompt_eval_count} vs {want.get('usage')}")
    c = quire(["embed", "--model", EMBEDDER, "--jsonl", "--log-level", "error"],
              input="".join(json.dumps(x) + "\n" for x in inputs))
    ref = [json.loads(x) for x in c.stdout.split("\n") if x.strip()] if c.returncode == 0 else []
    worst = max((vec_diff(a, b) for a, b in zip(got, ref)), default=float("inf")) if len(ref) == 3 else float("inf")
    t.ok(worst <= 1e-5, f"embed() = quire embed within 1e-5 (max |diff| {worst:.2e})", c.stderr)
    # one text alone (a batch pads its texts: a text's floats may differ in the last bits with its batch)
    want1 = openai_post(srv, token, "/v1/embeddings", {"model": "x", "input": inputs[1], "encoding_format": "float"})
    w1 = want1["data"][0]["embedding"] if "data" in want1 else None
    one = client.embed(model="bert_minilm:latest", input=inputs[1])
    t.ok(len(one.embeddings) == 1 and list(one.embeddings[0]) == w1, "embed() of one string = /v1/embeddings of it")
    t.ok(vec_diff(one.embeddings[0], wv[1]) <= 1e-5, "embed() of one string = its vector in the batch within 1e-5")
    d8 = client.embed(model="bert_minilm", input=inputs[0], dimensions=8)
    norm = math.sqrt(sum(x * x for x in wv[0][:8]))
    t.ok(len(d8.embeddings[0]) == 8 and vec_diff(d8.embeddings[0], [x / norm for x in wv[0][:8]]) <= 1e-6,
         "embed(dimensions=8): the first 8 values renormalised", d8.embeddings)
    legacy = client.embeddings(model="bert_minilm", prompt=inputs[1])
    t.ok(list(legacy.embedding) == w1, "embeddings() (legacy route) = /v1/embeddings")
    long_text = "termites " * 2000
    expect_error(t, "embed(truncate=False) of an over-long input", 400,
                 lambda: client.embed(model="bert_minilm", input=long_text, truncate=False), "context length")
    t.ok(len(client.embed(model="bert_minilm", input=long_text).embeddings[0]) == len(wv[0]),
         "embed() of an over-long input is truncated by default")


def check_errors(t, srv, client, token):
    msgs = [{"role": "user", "content": "hi"}]
    expect_error(t, "chat with an unknown model", 404, lambda: client.chat(model="nope", messages=msgs),
                 "model 'nope' not found")
    expect_error(t, "generate with an unknown model", 404, lambda: client.generate(model="llama3.2", prompt="x"),
                 "model 'llama3.2' not found")
    expect_error(t, "embed with an unknown model", 404, lambda: client.embed(model="all-minilm", input="x"))
    expect_error(t, "format json", 400, lambda: client.chat(model="stories260K", messages=msgs, format="json"),
                 "format")
    expect_error(t, "generate with a format schema", 400,
                 lambda: client.generate(model="stories260K", prompt="x", format={"type": "object"}), "format")
    tool = {"type": "function", "function": {"name": "f", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}}
    expect_error(t, "tools", 400, lambda: client.chat(model="stories260K", messages=msgs, tools=[tool]), "tools")
    expect_error(t, "think", 400, lambda: client.chat(model="stories260K", messages=msgs, think=True), "thinking")
    expect_error(t, "chat with the embedder", 400, lambda: client.chat(model="bert_minilm", messages=msgs),
                 "does not support chat")
    expect_error(t, "embed with the LLM", 400, lambda: client.embed(model="stories260K", input="x"),
                 "does not support embeddings")
    expect_error(t, f"options.num_ctx over the server's {CTX}", 400,
                 lambda: client.chat(model="stories260K", messages=msgs, options={"num_ctx": CTX * 2}), "num_ctx")
    expect_error(t, "options.presence_penalty (not in quire)", 400,
                 lambda: client.chat(model="stories260K", messages=msgs, options={"presence_penalty": 1.5}),
                 "presence_penalty")
    bad = ollama.Client(host=srv.base, headers={"Authorization": "Bearer wrong"})
    expect_error(t, "a wrong token", 401, lambda: bad.list())
    st, _, text = http(srv, "POST", "/api/pull", {"model": "llama3.2"}, token)
    t.ok(st == 404 and isinstance(json.loads(text).get("error"), str), "an /api/ route quire lacks: 404 in Ollama's shape",
         f"{st} {text}")
    st, _, text = http(srv, "POST", "/api/chat", {"model": "nope", "messages": msgs}, token)
    t.ok(st == 404 and json.loads(text) == {"error": "model 'nope' not found"},
         "the error body is Ollama's {\"error\": message}", text)


def metric(srv, name):
    _, _, text = http(srv, "GET", "/metrics")
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def check_cancel(t, store):
    """A client that closes an NDJSON stream (or gives up waiting for a non-streamed
    answer) cancels its generation, as on the SSE routes."""
    import http.client
    srv = start_server(t, store=store, llm=True, extra=["--slots", "1"])
    for stream in (True, False):
        c0 = metric(srv, "quire_client_cancels_total") or 0
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        conn.request("POST", "/api/generate", json.dumps(
            {"model": "stories260K", "prompt": "Once", "stream": stream,
             "options": {"temperature": 0, "num_predict": -1}}), {"Content-Type": "application/json"})
        if stream:
            resp = conn.getresponse()
            first = json.loads(resp.readline())
            t.ok(first.get("done") is False, "a long NDJSON stream started", first)
        else:
            time.sleep(0.15)
        conn.sock.shutdown(2)
        conn.close()
        cancelled = False
        for _ in range(50):
            time.sleep(0.1)
            if (metric(srv, "quire_client_cancels_total") or 0) - c0 == 1 and metric(srv, "quire_sched_running") == 0:
                cancelled = True
                break
        t.ok(cancelled, f"a client that leaves a {'streamed' if stream else 'non-streamed'} /api/generate cancels it "
             "(client_cancels_total +1, nothing running)")
    srv.stop_clean("cancel server exits 0 on SIGTERM")


def check_smol(t, models_dir, store):
    """SmolLM2's chat template through /api/chat = /v1/chat/completions."""
    path = os.path.join(models_dir, SMOL)
    if not os.path.exists(path):
        t.note(f"note: {path} absent (run tools/models.sh): the chat-template check is left out")
        return
    srv = start_server(t, store=store, llm=path, embedder=True, extra=["--ctx", "512"])
    client = ollama.Client(host=srv.base, timeout=120)
    name = client.list().models[0].model
    t.eq(name, "SmolLM2-135M-Instruct-Q4_1:latest", "list(): SmolLM2's Ollama-style name")
    for messages in ([{"role": "user", "content": "What is the capital of France?"}],
                     [{"role": "system", "content": "Answer in one word."},
                      {"role": "user", "content": "Name a colour."}]):
        want = openai_post(srv, None, "/v1/chat/completions",
                           {"model": "x", "messages": messages, "max_tokens": 8, "temperature": 0})
        r = client.chat(model=name, messages=messages, options={"temperature": 0, "num_predict": 8})
        t.eq(r.message.content, want["choices"][0]["message"]["content"] if "choices" in want else want,
             f"SmolLM2 chat() (greedy 8, {len(messages)} messages) = /v1/chat/completions (its chat template)")
        t.eq(r.prompt_eval_count, want.get("usage", {}).get("prompt_tokens"), "SmolLM2 chat(): same prompt tokens")
    # generate() renders the prompt as one user message through the template
    g = client.generate(model="SmolLM2-135M-Instruct-Q4_1", prompt="Name a colour.", system="Answer in one word.",
                        options={"temperature": 0, "num_predict": 8})
    t.eq(g.response, r.message.content, "SmolLM2 generate(system, prompt) = chat() with those two messages")
    srv.stop_clean("SmolLM2 server exits 0 on SIGTERM")


def main():
    t = Test("ollama")
    from importlib.metadata import version
    t.note(f"ollama {version('ollama')}")
    store = build_store(t)
    token_file, token = write_token(t)
    srv = start_server(t, store=store, llm=True, embedder=True, token_file=token_file,
                       extra=["--max-gen-tokens", "64", "--ctx", str(CTX)])
    client = ollama.Client(host=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    check_models(t, srv, client, token)
    check_chat(t, srv, client, token)
    check_generate(t, srv, client, token)
    check_embed(t, srv, client, token)
    check_errors(t, srv, client, token)
    srv.stop_clean()
    check_cancel(t, store)
    check_smol(t, os.environ.get("QUIRE_MODELS") or os.path.expanduser("~/.cache/quire/models"), store)
    t.done()


if __name__ == "__main__":
    main()
