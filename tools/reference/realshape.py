#!/usr/bin/python3
"""Compares quire's outputs (from dump_logits) with the torch float64 reference on a
full-size random-weight model (written by tools/mkmodel), e.g. the SmolLM2-135M,
Qwen2.5-0.5B and all-MiniLM-L6-v2 shapes. See realshape.sh.

  realshape.py MODEL_DIR QUIRE_OUT.f32 IDS [IDS...]     (IDS: comma-separated ids)

Decoder: QUIRE_OUT holds (n, vocab) logits of every position of the one IDS list;
prints max|dlogit|/max|logit| and whether the arg-max agrees at every position.
Encoder: QUIRE_OUT holds (n_seq, d) pooled normalized embeddings; prints min cosine
and max|diff|."""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models as R  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    d, out = sys.argv[1], sys.argv[2]
    seqs = [[int(x) for x in a.split(",")] for a in sys.argv[3:]]
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = R.load_safetensors(os.path.join(d, "model.safetensors"))
    got = torch.tensor(np.fromfile(out, dtype="<f4").astype(np.float64))
    name = os.path.basename(os.path.normpath(d))
    if cfg["model_type"] == "bert":
        norm = os.path.exists(os.path.join(d, "modules.json")) and "Normalize" in open(
            os.path.join(d, "modules.json")).read()
        want = R.bert_embed(cfg, W, seqs, normalize=norm)
        got = got.view(want.shape)
        cos = float(torch.nn.functional.cosine_similarity(got, want, dim=1).min())
        print("%s: %d sequences (lengths %s): min cosine %.9f, max|diff| %.3g"
              % (name, len(seqs), [len(s) for s in seqs], cos, float((got - want).abs().max())))
    else:
        want = R.llama_logits(cfg, W, seqs[0])
        got = got.view(want.shape)
        rel = float((got - want).abs().max() / want.abs().max())
        same = bool((got.argmax(1) == want.argmax(1)).all())
        top = torch.topk(want, 2, dim=1).values
        gap = float(((top[:, 0] - top[:, 1]) / want.abs().max()).min())
        print("%s: %d positions: max|dlogit|/max|logit| %.3g (max|logit| %.3g), arg-max equal at every position: %s "
              "(smallest reference top-2 gap %.3g relative)" % (name, len(seqs[0]), rel, float(want.abs().max()),
                                                                 same, gap))


if __name__ == "__main__":
    main()
