"""The official `openai` Python client (pinned in tools/python/requirements.txt;
QUIRE_PYTHON is the venv tools/pydeps.sh builds) against the real `quire serve`
with a bearer token, used as a user would with base_url pointing at the server:
 - models.list;
 - completions.create (greedy, stories260K) = `quire generate --json` (text,
   finish_reason, usage); streamed the same;
 - chat.completions.create, streamed and not: = `quire generate` on the plain
   prompt (stories260K has no chat template: contents joined by newlines),
   same text both ways, usage adds up, same finish_reason, role first;
 - embeddings.create with the client's default encoding (it asks for base64
   and decodes) and with encoding_format "float": both = `quire embed` within
   1e-5; one string as input;
 - errors surface as the client's typed errors: AuthenticationError 401 for a
   wrong key, NotFoundError / BadRequestError for an unknown model, and
   BadRequestError 400 naming the parameter for max_tokens -1 and over the
   server's limits (--max-gen-tokens, --max-messages, --max-inputs);
 - fields quire does not implement are refused, not ignored: BadRequestError
   400 naming the field with code "unsupported" (n=2, response_format
   json_object / json_schema, tools, tool_choice "required", functions,
   logprobs, top_logprobs, logit_bias, presence/frequency_penalty, audio;
   completions best_of=2, echo, suffix, logprobs=1), while their neutral
   values (response_format text, tool_choice "none", logprobs False, n=1,
   penalties 0) are answered as without them (same greedy text);
 - with SmolLM2-135M-Instruct (tools/models.sh; skipped when absent) a chat
   completion's prompt is the model's GGUF chat template rendered as
   transformers' apply_chat_template renders it: prompt_tokens equal the
   transformers tokenizer's count and the text equals `quire generate` on that
   rendered prompt.
Exits 77 (SKIP) when the openai package is missing."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EMBEDDER, STORIES, Test, build_store, quire, skip, start_server,  # noqa: E402
                     write_token)

try:
    import openai
except ImportError:
    skip(f"the openai package is missing in {sys.executable}: run tools/pydeps.sh")

MAX_GEN, MAX_MSGS, MAX_INPUTS = 64, 6, 4
SMOL = "SmolLM2-135M-Instruct-Q4_1.gguf"


def cli_generate(model, prompt, n):
    r = quire(["generate", "--model", model, "--prompt", prompt, "--temperature", "0", "--max-tokens", str(n),
               "--json", "--log-level", "error"])
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr}


def max_abs_diff(a, b):
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def check_completions(t, client, llm):
    for prompt, n in (("Once upon a time", 24), ("Tim and Sue", 16)):
        want = cli_generate(STORIES, prompt, n)
        c = client.completions.create(model=llm, prompt=prompt, max_tokens=n, temperature=0)
        t.eq(c.choices[0].text, want.get("text"), f"completions.create {prompt!r} (greedy {n}) = quire generate")
        t.ok(c.usage is not None and c.usage.completion_tokens == want.get("completion_tokens")
             and c.usage.prompt_tokens == want.get("prompt_tokens")
             and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens,
             "completion usage = quire generate's token counts", f"{c.usage} vs {want}")
        t.eq(c.choices[0].finish_reason, "length" if want.get("completion_tokens") == n else "stop",
             f"completion finish_reason {prompt!r}")
        text, finish = "", None
        for ch in client.completions.create(model=llm, prompt=prompt, max_tokens=n, temperature=0, stream=True):
            if ch.choices:
                text += ch.choices[0].text or ""
                finish = ch.choices[0].finish_reason or finish
        t.eq(text, want.get("text"), f"completions.create stream {prompt!r} = quire generate")
        t.eq(finish, c.choices[0].finish_reason, f"completions stream {prompt!r}: same finish_reason")


def check_chat(t, client, llm):
    messages = [{"role": "system", "content": "You tell short stories."},
                {"role": "user", "content": "Tell me about a cat."}]
    c = client.chat.completions.create(model=llm, messages=messages, max_tokens=32, temperature=0)
    content = c.choices[0].message.content
    t.ok(c.object == "chat.completion" and c.choices[0].message.role == "assistant" and isinstance(content, str)
         and content, "chat.completions.create: assistant content", c.model_dump_json())
    # no chat template in stories260K: the plain prompt format joins the contents with newlines
    want = cli_generate(STORIES, "\n".join(m["content"] for m in messages), 32)
    t.eq(content, want.get("text"), "chat.completions.create (greedy 32) = quire generate on the contents joined by newlines")
    t.ok(c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
         and c.usage.completion_tokens == want.get("completion_tokens"), "chat usage adds up", str(c.usage))
    text, finish, usage, role = "", None, None, None
    stream = client.chat.completions.create(model=llm, messages=messages, max_tokens=32, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for ch in stream:
        if ch.usage:
            usage = ch.usage
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        role = role or d.role
        text += d.content or ""
        finish = ch.choices[0].finish_reason or finish
    t.eq(text, content, "chat stream: deltas add up to the non-streamed content (greedy)")
    t.eq(finish, c.choices[0].finish_reason, "chat stream: same finish_reason")
    t.eq(role, "assistant", "chat stream: role in the first delta")
    t.eq(usage and usage.completion_tokens, c.usage.completion_tokens, "chat stream: include_usage chunk")
    c2 = client.chat.completions.create(model=llm, messages=[{"role": "user", "content": "x"}], max_tokens=4,
                                        temperature=0)
    t.ok(c2.usage.prompt_tokens < c.usage.prompt_tokens,
         f"prompt_tokens follow the messages ({c2.usage.prompt_tokens} < {c.usage.prompt_tokens})")
    return messages


def check_embeddings(t, client, emb):
    inputs = ["hello world", "Quire runs offline. It needs a C compiler.", "The numbat eats termites."]
    r = quire(["embed", "--model", EMBEDDER, "--jsonl", "--log-level", "error"],
              input="".join(json.dumps(x) + "\n" for x in inputs))
    want = [json.loads(line) for line in r.stdout.split("\n") if line.strip()] if r.returncode == 0 else None
    t.ok(want and len(want) == 3, "quire embed reference", r.stderr)
    for fmt in (None, "float"):
        label = f"encoding_format {fmt}" if fmt else "the client's default encoding (base64)"
        try:
            kw = {"encoding_format": fmt} if fmt else {}
            e = client.embeddings.create(model=emb, input=inputs, **kw)
            got = [d.embedding for d in sorted(e.data, key=lambda d: d.index)]
            worst = max(max_abs_diff(g, w) for g, w in zip(got, want)) if want else float("inf")
            t.ok(len(got) == 3 and worst <= 1e-5,
                 f"embeddings.create with {label} = quire embed within 1e-5 (max |diff| {worst:.2e})")
            t.ok(e.usage is not None and e.usage.prompt_tokens > 0, f"embeddings usage ({label})", str(e.usage))
        except openai.APIError as err:
            t.ok(False, f"embeddings.create with {label}", f"{type(err).__name__} {err}")
    one = client.embeddings.create(model=emb, input=inputs[0], encoding_format="float")
    t.ok(want and max_abs_diff(one.data[0].embedding, want[0]) <= 1e-5, "embeddings.create of one string")


def expect_error(t, what, cls, status, fn, param=None):
    try:
        fn()
        t.ok(False, f"{what}: refused")
    except openai.APIStatusError as err:
        got_param = (err.body or {}).get("param") if isinstance(err.body, dict) else None
        t.ok(isinstance(err, cls) and err.status_code == status and (param is None or got_param == param),
             f"{what}: {cls.__name__} {status}" + (f" with param {param}" if param else ""),
             f"{type(err).__name__} {err.status_code} param={got_param} {err}")


def check_errors(t, srv, client, llm, emb, token, messages):
    bad = openai.OpenAI(base_url=f"{srv.base}/v1", api_key="wrong", max_retries=0)
    expect_error(t, "wrong key", openai.AuthenticationError, 401, lambda: bad.models.list())
    expect_error(t, "wrong key on chat", openai.AuthenticationError, 401,
                 lambda: bad.chat.completions.create(model=llm, messages=messages, max_tokens=4))
    expect_error(t, "a prompt longer than the context", openai.BadRequestError, 400,
                 lambda: client.completions.create(model=llm, prompt="once upon a time " * 400, max_tokens=4))
    try:
        client.completions.create(model=llm, prompt="once upon a time " * 400, max_tokens=4)
    except openai.BadRequestError as err:
        t.eq(err.code, "context_length_exceeded", "a prompt longer than the context: code context_length_exceeded")
    expect_error(t, "max_tokens -1", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(model=llm, messages=messages, max_tokens=-1), "max_tokens")
    expect_error(t, f"max_tokens over --max-gen-tokens {MAX_GEN}", openai.BadRequestError, 400,
                 lambda: client.completions.create(model=llm, prompt="x", max_tokens=MAX_GEN + 1), "max_tokens")
    expect_error(t, f"{MAX_MSGS + 1} messages over --max-messages {MAX_MSGS}", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(
                     model=llm, messages=[{"role": "user", "content": str(i)} for i in range(MAX_MSGS + 1)],
                     max_tokens=4), "messages")
    expect_error(t, f"{MAX_INPUTS + 1} inputs over --max-inputs {MAX_INPUTS}", openai.BadRequestError, 400,
                 lambda: client.embeddings.create(model=emb, input=["a"] * (MAX_INPUTS + 1),
                                                  encoding_format="float"), "input")


UNSUPPORTED_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                                    "parameters": {"type": "object", "properties": {
                                                        "city": {"type": "string"}}}}}


def check_unsupported(t, client, llm, messages):
    chat = lambda **kw: client.chat.completions.create(model=llm, messages=messages, max_tokens=4, **kw)  # noqa: E731
    compl = lambda **kw: client.completions.create(model=llm, prompt="Once", max_tokens=4, **kw)  # noqa: E731
    cases = [
        ("chat n=2", "n", lambda: chat(n=2)),
        ("chat response_format json_object", "response_format", lambda: chat(response_format={"type": "json_object"})),
        ("chat response_format json_schema", "response_format", lambda: chat(response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})),
        ("chat tools", "tools", lambda: chat(tools=[UNSUPPORTED_TOOL])),
        ("chat tool_choice required", "tool_choice", lambda: chat(tool_choice="required")),
        ("chat functions", "functions", lambda: chat(functions=[UNSUPPORTED_TOOL["function"]])),
        ("chat logprobs", "logprobs", lambda: chat(logprobs=True)),
        ("chat top_logprobs", "top_logprobs", lambda: chat(top_logprobs=3)),
        ("chat logit_bias", "logit_bias", lambda: chat(logit_bias={"1": -100})),
        ("chat presence_penalty", "presence_penalty", lambda: chat(presence_penalty=0.5)),
        ("chat frequency_penalty", "frequency_penalty", lambda: chat(frequency_penalty=-0.5)),
        ("chat audio", "audio", lambda: chat(modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"})),
        ("completions n=2", "n", lambda: compl(n=2)),
        ("completions best_of=2", "best_of", lambda: compl(best_of=2)),
        ("completions echo", "echo", lambda: compl(echo=True)),
        ("completions suffix", "suffix", lambda: compl(suffix=" The end.")),
        ("completions logprobs=1", "logprobs", lambda: compl(logprobs=1)),
    ]
    for what, param, fn in cases:
        try:
            fn()
            t.ok(False, f"{what}: refused with 400 naming {param}")
        except openai.APIStatusError as err:
            t.ok(isinstance(err, openai.BadRequestError) and err.status_code == 400 and err.param == param
                 and err.code == "unsupported" and param in str(err),
                 f"{what}: BadRequestError 400, param {param}, code unsupported",
                 f"{type(err).__name__} {err.status_code} param={err.param} code={err.code} {err}")
    # the neutral values of those fields change nothing
    want = client.chat.completions.create(model=llm, messages=messages, max_tokens=8, temperature=0)
    got = client.chat.completions.create(model=llm, messages=messages, max_tokens=8, temperature=0, n=1,
                                         response_format={"type": "text"}, tool_choice="none", logprobs=False,
                                         presence_penalty=0, frequency_penalty=0, tools=[])
    t.eq(got.choices[0].message.content, want.choices[0].message.content,
         "chat with n=1, response_format text, tool_choice none, logprobs False, penalties 0, tools []: "
         "the same greedy text as without them")
    w2 = client.completions.create(model=llm, prompt="Once", max_tokens=8, temperature=0)
    g2 = client.completions.create(model=llm, prompt="Once", max_tokens=8, temperature=0, best_of=1, echo=False,
                                   logprobs=0, suffix="")
    t.eq(g2.choices[0].text, w2.choices[0].text, "completions with best_of 1, echo False, logprobs 0, suffix '': same text")


def check_no_llm(t, store, token_file, token, messages):
    """A server without --model: chat and completions surface 422 no_model as UnprocessableEntityError."""
    srv = start_server(t, store=store, embedder=True, token_file=token_file)
    client = openai.OpenAI(base_url=f"{srv.base}/v1", api_key=token, max_retries=0, timeout=60)
    ids = [m.id for m in client.models.list()]
    t.ok(len(ids) == 1, f"models.list without an LLM: the embedder only ({ids})")
    expect_error(t, "chat without a language model", openai.UnprocessableEntityError, 422,
                 lambda: client.chat.completions.create(model="any", messages=messages, max_tokens=4), "model")
    expect_error(t, "completions without a language model", openai.UnprocessableEntityError, 422,
                 lambda: client.completions.create(model="any", prompt="x", max_tokens=4), "model")
    srv.stop_clean("embedder-only server exits 0 on SIGTERM")


def check_smol_chat(t, models_dir, store):
    """SmolLM2's GGUF chat template through the server = transformers' apply_chat_template."""
    path = os.path.join(models_dir, SMOL)
    if not os.path.exists(path):
        t.note(f"note: {path} absent (run tools/models.sh): the chat-template check is left out")
        return
    if "no usable tokenizer" in cli_generate(path, "x", 1).get("error", ""):
        # quire does not read this GGUF's BPE tokenizer yet
        t.note(f"note: quire cannot tokenize {SMOL} yet: the chat-template check is left out")
        return
    try:
        from transformers import AutoTokenizer
    except ImportError:
        t.note("note: transformers missing (run tools/pydeps.sh): the chat-template check is left out")
        return
    tok = AutoTokenizer.from_pretrained(models_dir, gguf_file=SMOL)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    want = cli_generate(path, prompt, 8)
    srv = start_server(t, store=store, llm=path, embedder=True, extra=["--ctx", "512"])
    client = openai.OpenAI(base_url=f"{srv.base}/v1", api_key="unused", max_retries=0, timeout=120)
    model = client.models.list().data[0].id
    c = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    t.eq(c.usage.prompt_tokens, n_prompt, "SmolLM2 chat: prompt_tokens = transformers' tokens of apply_chat_template")
    t.eq(c.choices[0].message.content, want.get("text"),
         "SmolLM2 chat (greedy 8) = quire generate on transformers' apply_chat_template prompt")
    t.eq(want.get("prompt_tokens"), n_prompt, "quire generate tokenizes the rendered prompt as transformers does")
    srv.stop_clean("SmolLM2 server exits 0 on SIGTERM")


def main():
    t = Test("openai")
    t.note(f"openai {openai.__version__}")
    store = build_store(t)
    token_file, token = write_token(t)
    srv = start_server(t, store=store, llm=True, embedder=True, token_file=token_file,
                       extra=["--max-gen-tokens", str(MAX_GEN), "--max-messages", str(MAX_MSGS),
                              "--max-inputs", str(MAX_INPUTS), "--ctx", "256"])
    client = openai.OpenAI(base_url=f"{srv.base}/v1", api_key=token, max_retries=0, timeout=60)
    models = [m.id for m in client.models.list()]
    t.ok(len(models) == 2, f"models.list: {models}")
    llm = next((m for m in models if "stories" in m.lower()), models[0] if models else "")
    emb = next((m for m in models if m != llm), llm)
    check_completions(t, client, llm)
    messages = check_chat(t, client, llm)
    check_embeddings(t, client, emb)
    check_errors(t, srv, client, llm, emb, token, messages)
    check_unsupported(t, client, llm, messages)
    srv.stop_clean()
    check_no_llm(t, store, token_file, token, messages)
    check_smol_chat(t, os.environ.get("QUIRE_MODELS") or os.path.expanduser("~/.cache/quire/models"), store)
    t.done()


if __name__ == "__main__":
    main()
