"""Renders every chat template in tests/fixtures/models/chat-templates (or argv[1]),
plus the one embedded in SmolLM2-135M-Instruct-Q4_1.gguf (GGUF key
tokenizer.chat_template) when $QUIRE_MODELS / ~/.cache/quire/models has it,
with jinja2 exactly as transformers' apply_chat_template renders (render.py)
for a fixed set of conversations, and writes tests/fixtures/chat/oracle.json
(or argv[2]): one case per (template, conversation, add_generation_prompt)
with the exact output, or the error when the template raises.

Each case is cross-checked against transformers itself: a tokenizer is built
for every template (a PreTrainedTokenizerFast with the model's special tokens
and the template; for the GGUF, transformers' own GGUF tokenizer loader) and
apply_chat_template(tokenize=False) must give the same text or fail the same
way. Exits 1 when they disagree. strftime_now is bound to render.DATE in both.

Usage: python gen_fixtures.py [template_dir] [out.json]"""
import copy
import json
import os
import sys
from unittest import mock

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import render  # noqa: E402

repo = os.path.abspath(os.path.join(here, "../.."))
tdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "tests/fixtures/models/chat-templates")
out_file = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo, "tests/fixtures/chat/oracle.json")
models = os.environ.get("QUIRE_MODELS") or os.path.expanduser("~/.cache/quire/models")
GGUF = "SmolLM2-135M-Instruct-Q4_1.gguf"

# Special tokens as the models' tokenizer_config.json define them (None: the model has none).
TOKENS = {
    "Qwen-Qwen2.5-7B-Instruct.jinja": {"bos_token": None, "eos_token": "<|im_end|>"},
    "Qwen-Qwen3-0.6B.jinja": {"bos_token": None, "eos_token": "<|im_end|>"},
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "google-gemma-2-2b-it.jinja": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "ibm-granite-granite-3.3-2B-Instruct.jinja": {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"},
    "meta-llama-Llama-3.1-8B-Instruct.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "meta-llama-Llama-3.2-3B-Instruct.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "microsoft-Phi-3.5-mini-instruct.jinja": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": {"bos_token": "<s>", "eos_token": "</s>"},
}


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


def S(c):
    return {"role": "system", "content": c}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city, in \"quotes\" — ünïcode",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "single_user": {"messages": [U("Hello!")]},
    "system_user": {"messages": [S("You are a helpful assistant."), U("What is 2+2?")]},
    "multi_turn": {"messages": [U("Hi, who are you?"), A("I am an assistant."), U("Tell me a joke.")]},
    "system_multi_turn": {"messages": [S("Be brief."), U("Capital of France?"), A("Paris."), U("And of Italy?")]},
    "assistant_last": {"messages": [U("Say hi."), A("Hi!")]},
    "unicode_quotes_braces": {"messages": [U("Ünïcödé 日本語 emoji 😀 \"double\" 'single' `tick` {braces} {{ not jinja }} "
                                             "{% nor this %} back\\slash\nline two\n\n\ttabbed")]},
    "padded_whitespace": {"messages": [S("  system with spaces  \n"), U("\n  padded user text \t\n"), A("  answer  "), U(" again ")]},
    "think_history": {"messages": [U("Why is the sky blue?"),
                                   A("<think>\nRayleigh scattering.\n</think>\n\nBecause of Rayleigh scattering."),
                                   U("And sunsets?")]},
    "empty_content": {"messages": [U(""), A(""), U("x")]},
    "long_multi_turn": {"messages": [S("sys"), U("u1"), A("a1"), U("u2"), A("a2"), U("u3"), A("a3"), U("u4")]},
    "with_tools": {"messages": [U("What's the weather in Paris?")], "tools": [WEATHER_TOOL]},
    # expected errors on templates that require alternation or forbid roles
    "two_users": {"messages": [U("first"), U("second")]},
    "assistant_first": {"messages": [A("I speak first."), U("ok")]},
    "system_only": {"messages": [S("Only a system prompt.")]},
    # tool calling: assistant tool_calls (arguments as a dict), tool results
    "tool_call_round": {
        "messages": [
            U("What's the weather in Paris?"),
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call12345", "type": "function", "function": {
                "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
            {"role": "tool", "content": "{\"temp\": 22}", "tool_call_id": "call12345", "name": "get_weather"},
        ],
        "tools": [WEATHER_TOOL],
    },
    # content null, as the OpenAI API sends with tool_calls: transformers drops the key
    "tool_call_null_content": {
        "messages": [
            U("Weather in Rome and Oslo?"),
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "callaaaaa", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                {"id": "callbbbbb", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
            {"role": "tool", "content": "18", "tool_call_id": "callaaaaa"},
            {"role": "tool", "content": "3", "tool_call_id": "callbbbbb"},
            A("Rome 18, Oslo 3."),
            U("Thanks"),
        ],
    },
    # template-specific variables
    "qwen3_no_thinking": {"messages": [U("Quick answer: 1+1?")], "vars": {"enable_thinking": False}},
    "reasoning_content": {"messages": [U("q1"), {"role": "assistant", "content": "a1", "reasoning_content": "r1"}, U("q2")]},
    "granite_documents": {
        "messages": [U("Summarize the documents.")],
        "documents": [{"doc_id": 1, "text": "First doc."}, {"doc_id": "two", "text": "Second doc."}],
        "vars": {"controls": {"citations": True}},
    },
    "granite_thinking": {"messages": [U("Think about it.")], "vars": {"thinking": True}},
    "llama_date_and_builtin": {"messages": [U("Search the web.")],
                               "vars": {"date_string": "01 Jan 2025", "builtin_tools": ["brave_search", "code_interpreter"]}},
}


def gguf_template(path):
    """(template, {"bos_token", "eos_token"}) as quire reads them from a GGUF: tokenizer.chat_template
    and the token strings at tokenizer.ggml.{bos,eos}_token_id."""
    import gguf
    r = gguf.GGUFReader(path)

    def field(key):
        f = r.fields.get(key)
        return None if f is None else f.parts[f.data[0]]
    tokens = field("tokenizer.ggml.tokens")  # noqa: F841 - indexed below through r.fields
    tf = r.fields["tokenizer.ggml.tokens"]
    toks = {}
    for name in ("bos", "eos"):
        idx = field(f"tokenizer.ggml.{name}_token_id")
        toks[f"{name}_token"] = None if idx is None else bytes(tf.parts[tf.data[int(idx[0])]]).decode()
    return bytes(field("tokenizer.chat_template")).decode(), toks


def hf_tokenizer(template, tokens):
    """A transformers tokenizer carrying the template and special tokens (the vocabulary is irrelevant
    to apply_chat_template(tokenize=False))."""
    from tokenizers import Tokenizer, models as tmodels
    from transformers import PreTrainedTokenizerFast
    vocab = {"<unk>": 0}
    for t in tokens.values():
        if t is not None:
            vocab.setdefault(t, len(vocab))
    tk = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tmodels.WordLevel(vocab, unk_token="<unk>")),
                                 unk_token=None, **{k: v for k, v in tokens.items() if v is not None})
    tk.chat_template = template
    return tk


def hf_render(tk, conv, agp):
    kw = dict(conv.get("vars", {}))
    if "tools" in conv:
        kw["tools"] = conv["tools"]
    if "documents" in conv:
        kw["documents"] = conv["documents"]
    with mock.patch("transformers.utils.chat_template_utils.datetime") as dt:
        dt.now.return_value = render.FIXED_NOW
        return tk.apply_chat_template(copy.deepcopy(conv["messages"]), tokenize=False, add_generation_prompt=agp, **kw)


def outcome(fn):
    import jinja2
    try:
        return {"output": fn()}
    except render.Raised as e:
        return {"error": str(e), "raised": True}
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:  # transformers' raise_exception()
            return {"error": str(e), "raised": True}
        return {"error": f"{type(e).__name__}: {e}", "raised": False}
    except Exception as e:  # noqa: BLE001 - a template error is an outcome
        return {"error": f"{type(e).__name__}: {e}", "raised": False}


def main():
    import jinja2
    import transformers
    templates = []  # (name, source, tokens, hf tokenizer)
    for f in sorted(os.listdir(tdir)):
        if f.endswith(".jinja"):
            with open(os.path.join(tdir, f), encoding="utf-8") as fh:
                src = fh.read()
            tok = TOKENS.get(f, {"bos_token": "<s>", "eos_token": "</s>"})
            templates.append((f, src, tok, hf_tokenizer(src, tok)))
    gpath = os.path.join(models, GGUF)
    gguf_info = None
    if os.path.exists(gpath):
        src, tok = gguf_template(gpath)
        from transformers import AutoTokenizer
        # transformers' own GGUF reader builds the tokenizer: its chat_template and special tokens must be ours
        hf = AutoTokenizer.from_pretrained(os.path.dirname(gpath), gguf_file=GGUF)
        assert hf.chat_template == src, "transformers reads another chat template from the GGUF"
        assert (hf.bos_token, hf.eos_token) == (tok["bos_token"], tok["eos_token"]), (hf.bos_token, hf.eos_token, tok)
        name = "gguf:" + GGUF
        templates.append((name, src, tok, hf))
        TOKENS[name] = tok
        gguf_info = {"template": name, "file": GGUF, "chat_template": src}
    else:
        print(f"warning: {gpath} absent (run tools/models.sh): its template is left out", file=sys.stderr)

    conv_vars = {}
    for cname, conv in CONVERSATIONS.items():
        # what the template sees besides add_generation_prompt and the special tokens
        v = render.template_vars(conv["messages"], False, {}, conv.get("tools"), conv.get("documents"), conv.get("vars"))
        del v["add_generation_prompt"]
        conv_vars[cname] = v
    cases, nerr, bad = [], 0, 0
    for name, src, tok, hf in templates:
        for cname, conv in CONVERSATIONS.items():
            for agp in (True, False):
                v = render.template_vars(conv["messages"], agp, tok, conv.get("tools"), conv.get("documents"),
                                         conv.get("vars"))
                ours = outcome(lambda: render.render(src, copy.deepcopy(v)))
                theirs = outcome(lambda: hf_render(hf, conv, agp))
                same = ours.get("output") == theirs.get("output") and ("error" in ours) == ("error" in theirs)
                if "error" in ours and same:
                    same = ours == theirs
                if not same:
                    bad += 1
                    print(f"DIFFERS from apply_chat_template: {name} / {cname} / agp={agp}\n  jinja2: {ours}\n"
                          f"  transformers: {theirs}")
                nerr += "error" in ours
                cases.append({"template": name, "conversation": cname, "add_generation_prompt": agp, **ours})
    out = {
        "generator": f"tools/jinja_oracle/gen_fixtures.py with jinja2 {jinja2.__version__} set up as transformers "
                     f"{transformers.__version__} apply_chat_template (checked against it)",
        "date": render.DATE,
        "tokens": TOKENS,
        "conversations": CONVERSATIONS,
        "template_vars": conv_vars,
        "gguf": gguf_info,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(out_file), exist_ok=True)
    with open(out_file, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases ({nerr} expected errors) from {len(templates)} templates -> {out_file}; "
          f"{len(cases) - bad} identical to apply_chat_template")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
