#!/usr/bin/env python3
"""Checks of the SmolLM2 reference itself (smollm_ref.py); not a test, takes minutes.

  smollm_selfcheck.py MODEL.gguf DIR

DIR holds in.json, ref.json and logits.f32 of one run, kept by
  build/tests/unit/parity/test_smollm tests/unit/parity/smollm_cases.json \
      tools/reference/smollm_ref.py DIR        (with QUIRE_PYTHON, QUIRE_MODELS, QUIRE_FIXTURES set)

1. The reference's greedy ids come from left-padded batches: each chat is generated again
   alone, unpadded, and must give the same 64 ids.
2. The float32 reference against the same model in float64: the arg-max of every greedy step
   (the reference ids fed back) must be the reference's id, near ties included (their float32
   and float64 top-2 gaps are printed), and the float32 logits' error is printed (it sizes the
   float32 rounding quire's own difference from the reference should be compared with).
Exit 1 if 1 or 2 fails.
"""
import json
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


@torch.no_grad()
def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    path, d = sys.argv[1:]
    torch.set_num_threads(1)
    ref = json.load(open(os.path.join(d, "ref.json"), encoding="utf-8"))
    req = json.load(open(os.path.join(d, "in.json"), encoding="utf-8"))
    n_greedy = int(req["n_greedy"])
    md, name = os.path.split(os.path.abspath(path))
    m = AutoModelForCausalLM.from_pretrained(md, gguf_file=name, dtype=torch.float32).eval()
    gc = m.generation_config
    gc.eos_token_id = None
    gc.pad_token_id = 2
    gc.do_sample = False
    gc.max_new_tokens = gc.min_new_tokens = n_greedy
    ok = True

    same = 0
    for i, c in enumerate(ref["chats"]):
        x = torch.tensor([c["ids"]])
        g = m.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)[0, len(c["ids"]):].tolist()
        same += g == c["greedy"]
        if g != c["greedy"]:
            t = next(t for t in range(n_greedy) if g[t] != c["greedy"][t])
            print("chat %d: unpadded generate differs at step %d (batched top2 %s)" % (i, t, c["top2"][t]))
    print("1. unpadded generate == the left-padded batches: %d/%d chats" % (same, len(ref["chats"])))
    ok &= same == len(ref["chats"])

    m = m.to(torch.float64)
    same, close = 0, []
    for i, c in enumerate(ref["chats"]):
        seq = c["ids"] + c["greedy"]
        lg = m(torch.tensor([seq])).logits[0, len(c["ids"]) - 1:-1]
        same += lg.argmax(-1).tolist() == c["greedy"]
        for t, (a, b, gap, mx) in enumerate(c["top2"]):
            if gap < 1e-3 * mx:
                v, k = torch.topk(lg[t], 2)
                close.append("chat %d step %d: f32 gap %.3g, f64 gap %.3g max|logit|, f64 arg-max %s" % (
                    i, t, gap / mx, float((v[0] - v[1]) / lg[t].abs().max()),
                    "agrees" if int(k[0]) == c["greedy"][t] else "DIFFERS"))
    print("2. float64 arg-max == the reference's greedy ids at every step: %d/%d chats" % (same, len(ref["chats"])))
    print("   near ties (top-2 gap < 1e-3 max|logit|):\n   " + "\n   ".join(close))
    ok &= same == len(ref["chats"])
    raw = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(-1, ref["vocab"])
    for e in ref["logits"]:
        c = ref["chats"][e["chat"]]
        lg = m(torch.tensor([c["ids"] + c["greedy"][:-1]])).logits[0].numpy()
        f32 = raw[e["row0"]:e["row0"] + e["n"]]
        rel = (np.abs(f32 - lg).max(1) / np.abs(lg).max(1)).max()
        print("   chat %d: float32 reference vs float64, max over positions of max|diff|/max|logit| %.3g"
              % (e["chat"], rel))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
