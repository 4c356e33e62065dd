"""Seeded random templates over the Jinja subset quire supports (generate/jinja.h),
rendered with jinja2 set up as transformers' apply_chat_template (render.py):
writes tests/fixtures/chat/jinja_random.json (or argv[1]), one case per
template with jinja2's output, or "error" with jinja2's exception when it
raises. tests/unit/generate/test_jinja_random.c renders each with quire:
outputs must be identical, and quire must fail where jinja2 fails.
Usage: python gen_random.py [out.json] [count] [seed]"""
import json
import os
import random
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import render  # noqa: E402

out_file = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../tests/fixtures/chat/jinja_random.json")
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 9

VARS = {
    "s": "  Hello, Wörld! ",
    "u": "ünï 😀 'q' \"dq\" \\ \n tab\t",
    "e": "",
    "n": 7,
    "neg": -3,
    "f": 2.5,
    "z": 0,
    "t": True,
    "no": None,
    "xs": [3, 1, 2],
    "ws": ["b", "A", "c", "a"],
    "mixed": [1, "a", None, True, 2.0, [1, 2], {"k": "v"}],
    "d": {"b": 2, "a": 1, "C": [1, {"x": None}]},
    "ms": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
           {"role": "assistant", "content": "yo", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
           {"role": "user"}],
}
NAMES = list(VARS) + ["missing"]

STR_LITS = ["'a'", "\"b\"", "''", "'x y'", "'Ünï'", "'it\\'s'", "\"q\\\"d\"", "'\\n'", "'A-b c'", "'Ǆx'"]  # not ß: quire's case mapping is 1:1
NUM_LITS = ["0", "1", "2", "-1", "3", "10", "0.5", "1.0", "-2.5", "1e3", "7"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "boolean", "mapping", "iterable",
         "sequence", "odd", "even", "true", "false", "lower", "upper"]


class G:
    def __init__(self, r):
        self.r = r

    def atom(self, depth):
        r = self.r
        k = r.random()
        if k < 0.3:
            return r.choice(NAMES)
        if k < 0.45:
            return r.choice(STR_LITS)
        if k < 0.6:
            return r.choice(NUM_LITS)
        if k < 0.68:
            return r.choice(["true", "false", "none", "True", "None"])
        if k < 0.78 and depth > 0:
            return "[" + ", ".join(self.expr(depth - 1) for _ in range(r.randint(0, 3))) + "]"
        if k < 0.84 and depth > 0:
            return "{" + ", ".join(f"{r.choice(STR_LITS)}: {self.expr(depth - 1)}" for _ in range(r.randint(0, 2))) + "}"
        if k < 0.9:
            return r.choice(["d.a", "d['b']", "d.C[1].x", "ms[1].content", "ms[-1].role", "ms[0]['role']",
                             "xs[0]", "xs[-1]", "ws[1:]", "ws[::-1]", "s[2:5]", "u[0]", "ms[2].tool_calls[0].arguments",
                             "xs[5]", "d.nope", "(ms|length)", "loopless"])
        return "(" + self.expr(depth - 1) + ")" if depth > 0 else r.choice(NAMES)

    def postfix(self, e, depth):
        r = self.r
        k = r.random()
        if k < 0.45:
            return self.filt(e, depth)
        if k < 0.7:
            return self.method(e, depth)
        if k < 0.85:
            # parenthesized: jinja2 would read a following expression as the test's argument
            return f"({e} is {'not ' if r.random() < 0.3 else ''}{r.choice(TESTS)})"
        return e

    def filt(self, e, depth):
        r = self.r
        f = r.choice([
            "length", "upper", "lower", "trim", "title", "capitalize", "join", "join(', ')", "first", "last",
            "list", "reverse", "sort", "sort(reverse=true)", "unique", "tojson", "tojson(indent=2)",
            "tojson(sort_keys=true)", "string", "int", "float", "abs", "round", "round(1)", "round(1, 'floor')",
            "default('D')", "default('D', true)", "items", "dictsort", "select", "reject", "select('odd')",
            "reject('none')", "selectattr('role', 'equalto', 'user')", "rejectattr('content')",
            "map(attribute='role')", "map('upper')", "map('length')", "replace('l', 'L')", "indent(2)", "count", "safe", "tojson(ensure_ascii=true)"])
        return f"{e} | {f}"

    def method(self, e, depth):
        r = self.r
        m = r.choice(["strip()", "strip('H ')", "lstrip()", "rstrip('! ')", "upper()", "lower()", "title()",
                      "capitalize()", "split()", "split(',')", "split('l', 1)", "startswith('He')",
                      "endswith(('x', '! '))", "replace('l', '_')", "get('a')", "get('zz', 0)", "items()",
                      "keys()", "values()"])
        return f"{e}.{m}"

    def expr(self, depth=2):
        r = self.r
        k = r.random()
        if depth <= 0 or k < 0.35:
            a = self.atom(depth)
            return self.postfix(a, depth) if r.random() < 0.5 else a
        if k < 0.75:
            op = r.choice(["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=",
                           "and", "or", "in", "not in"])
            return f"{self.expr(depth - 1)} {op} {self.expr(depth - 1)}"
        if k < 0.82:
            return f"(not {self.expr(depth - 1)})"  # bare after an operator, jinja2 reads `not` as a name
        if k < 0.9:
            return f"{self.expr(depth - 1)} if {self.expr(depth - 1)} else {self.expr(depth - 1)}"
        return self.postfix(self.atom(depth), depth)

    def ws(self):
        return self.r.choice(["", " ", "  ", "\n", " \n", "\n  ", "\t", "\n\n", "x", " x\n", "\r\n"])

    def tag(self, body):
        r = self.r
        left = r.choice(["", "", "-", "+"])
        right = r.choice(["", "", "-"])
        return "{%" + left + " " + body + " " + right + "%}"

    def structure(self, depth=2):
        """Text, whitespace, comments and block tags with -/+ whitespace control: trim_blocks,
        lstrip_blocks and the tags' own stripping."""
        r = self.r
        parts = []
        for _ in range(r.randint(1, 4)):
            k = r.random()
            parts.append(self.ws())
            if k < 0.25:
                parts.append("{{" + r.choice(["", "-"]) + " " + r.choice(["n", "'v'", "s", "xs | length"]) + " " +
                             r.choice(["", "-"]) + "}}")
            elif k < 0.4:
                parts.append("{#" + r.choice(["", "-"]) + " c " + r.choice(["", "-"]) + "#}")
            elif k < 0.65 and depth > 0:
                parts.append(self.tag("if " + r.choice(["t", "no", "n > 3", "e"])) + self.structure(depth - 1) +
                             (self.tag("else") + self.structure(depth - 1) if r.random() < 0.4 else "") +
                             self.tag("endif"))
            elif k < 0.85 and depth > 0:
                parts.append(self.tag("for x in " + r.choice(["xs", "ws[:2]", "[]"])) + self.structure(depth - 1) +
                             self.ws() + "{{ x }}" + self.tag("endfor"))
            elif depth > 0:
                parts.append(self.tag("set v = " + r.choice(["1", "'a'", "xs"])) + self.ws() + "{{ v }}")
            parts.append(self.ws())
        return "".join(parts)

    def template(self):
        r = self.r
        if r.random() < 0.25:
            return self.structure()
        k = r.random()
        e = self.expr(r.randint(1, 3))
        if k < 0.55:
            return "{{ " + e + " }}"
        if k < 0.7:
            return ("{% for x in " + r.choice(["xs", "ws", "ms", "d", "s", "d.items()", "mixed", "[]", "missing"]) +
                    " %}[{{ loop.index }}{{ loop.first }}{{ loop.last }}:{{ x }}]{% if " + self.expr(1) +
                    " %}{% continue %}{% endif %}<{{ " + self.expr(1) + " }}>{% else %}none{% endfor %}")
        if k < 0.8:
            return ("{% set ns = namespace(v=" + self.expr(1) + ") %}{% for m in ms %}{% set ns.v = " +
                    self.expr(1).replace("x", "m.role") + " %}{% endfor %}{{ ns.v }}")
        if k < 0.9:
            return "{% if " + e + " %}T{% elif " + self.expr(1) + " %}E{% else %}F{% endif %}"
        return "{% set a, b = " + self.expr(1) + ", " + self.expr(1) + " %}{{ a }}|{{ b }}|{{ " + self.expr(1) + " }}"


class _StrFormat(Exception):
    pass


def _no_str_format_env():
    """render's environment, but `str % x` (printf-style formatting, which quire does not implement) raises
    _StrFormat so such cases are left out."""
    env = render.environment()
    env.intercepted_binops = frozenset(["%"])

    def call_binop(context, operator, left, right):
        if operator == "%" and isinstance(left, str):
            raise _StrFormat()
        return left % right
    env.call_binop = call_binop
    return env


def main():
    import jinja2
    env = _no_str_format_env()
    g = G(random.Random(SEED))
    cases, seen = [], set()
    while len(cases) < COUNT:
        src = g.template()
        if src in seen or re.search(r"-\s*\(?\s*\d[\d.e]*\s*\)?\s*\*\*", src):
            # a negative constant as the base of **: jinja2 compiles -2 ** x as -(2 ** x), a code-generation quirk
            continue
        seen.add(src)
        try:
            out = env.from_string(src).render(**json.loads(json.dumps(VARS)))
            if any(k in out.lower() for k in ("<generator object", " at 0x", "j)", "markup(", "&#39;", "&#34;", "&amp;",
                                              "&lt;", "&gt;")):
                # printed generator addresses, complex numbers, Markup (|safe) and the HTML escaping it applies
                # to what is added to it: CPython / markupsafe details quire does not copy
                continue
            c = {"template": src, "expected": out}
        except (jinja2.exceptions.TemplateSyntaxError, _StrFormat):
            continue  # the grammar made something jinja2 does not parse: not a semantics case
        except Exception as ex:  # noqa: BLE001 - a run-time error is an outcome quire must match
            c = {"template": src, "error": f"{type(ex).__name__}: {ex}"}
        cases.append(c)
    doc = {"generator": f"tools/jinja_oracle/gen_random.py (seed {SEED}) with jinja2 {jinja2.__version__} as "
                        "transformers' apply_chat_template sets it up",
           "vars": VARS, "cases": cases}
    with open(out_file, "w", encoding="utf-8") as fh:
        fh.write("{\n \"generator\": " + json.dumps(doc["generator"]) + ",\n \"vars\": " +
                 json.dumps(VARS, ensure_ascii=False) + ",\n \"cases\": [\n" +
                 ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases) + "\n ]\n}\n")
    nerr = sum("error" in c for c in cases)
    print(f"{len(cases)} random templates ({nerr} raise in jinja2) -> {out_file}")


if __name__ == "__main__":
    main()
