"""Renders a chat template with jinja2 exactly as transformers' apply_chat_template
does (transformers/utils/chat_template_utils.py, _cached_compile_jinja_template):
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, a {% generation %} block that renders its body, and
the globals/filters transformers adds (raise_exception, strftime_now, tojson
without HTML escaping, dict, a namespace that refuses underscore names).
strftime_now is bound to a fixed DATE so fixtures are reproducible.

template_vars() applies what apply_chat_template does to its inputs before
rendering: message keys whose value is None are dropped, reasoning fields are
aliased, tools and documents are always passed (None when absent), and the
special tokens are those of the tokenizer's special_tokens_map (None omitted)."""
import json
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

DATE = {"year": 2024, "month": 7, "day": 26, "hour": 13, "minute": 5}
FIXED_NOW = datetime(DATE["year"], DATE["month"], DATE["day"], DATE["hour"], DATE["minute"])
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class Raised(jinja2.exceptions.TemplateError):
    """What raise_exception() throws, told apart from other template errors."""


def _raise_exception(message):
    raise Raised(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


class _TemplateDict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}."
            )


class _Generation(jinja2.ext.Extension):
    # transformers' AssistantTracker without tracking: {% generation %}body{% endgeneration %} renders body
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


_ENV = environment()


def render(source, variables):
    """The template's output for variables (a dict); raises on template errors."""
    return _ENV.from_string(source).render(**variables)


def template_vars(messages, add_generation_prompt, tokens, tools=None, documents=None, extra=None):
    """The variables apply_chat_template(messages, tools=, documents=, add_generation_prompt=, **extra)
    hands the template of a tokenizer whose special tokens are tokens (a dict, None values left out)."""
    msgs = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        reasoning = next((m[k] for k in REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        msgs.append(m)
    v = {k: t for k, t in tokens.items() if t is not None}
    v.update(extra or {})
    v.update(messages=msgs, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt)
    return v
