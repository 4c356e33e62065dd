"""Verifies every hand-written expectation in tests/fixtures/chat/jinja_unit.json
with jinja2 set up as transformers' apply_chat_template sets it up (render.py,
fixed date for strftime_now). Exits 1 on any disagreement.
Usage: python check_unit.py [jinja_unit.json]"""
import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render import render  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../tests/fixtures/chat/jinja_unit.json")
with open(path, encoding="utf-8") as f:
    cases = json.load(f)["cases"]
bad = 0
for c in cases:
    out = err = None
    try:
        out = render(c["template"], copy.deepcopy(c.get("vars", {})))
    except Exception as e:  # noqa: BLE001 - any template error is an outcome to compare
        err = f"{type(e).__name__}: {e}"
    if "error" in c:
        ok = err is not None
    else:
        ok = err is None and out == c["expected"]
    if not ok:
        bad += 1
        want = c["expected"] if "expected" in c else "error: " + c["error"]
        got = "error: " + err if err is not None else out
        print(f"MISMATCH {c['name']}: expected {json.dumps(want, ensure_ascii=False)}, jinja2 {json.dumps(got, ensure_ascii=False)}")
print(f"{len(cases) - bad} of {len(cases)} expectations confirmed by jinja2 {__import__('jinja2').__version__}")
sys.exit(1 if bad else 0)
