#!/usr/bin/env python3
"""Parity fixtures computed by the real Hugging Face `transformers` package.

Needs python3 with torch, numpy and transformers (the project's GPU machines have
them; a GPU is not needed, everything runs on the CPU in float64). See README.md.

  hf_fixtures.py verify FIXDIR   for every fixture under FIXDIR (tests/fixtures/models):
                                 load its model.safetensors with transformers, recompute
                                 the outputs for the inputs in expected.json, write them to
                                 expected.hf.json (same format) and print the differences
                                 from the torch reference (expected.json). Exit 1 if they
                                 disagree beyond 1e-6 relative or the greedy ids differ.
  hf_fixtures.py gen OUTDIR      writes NEW fixtures: each model built by
                                 AutoModel*.from_config(config) with transformers' own
                                 classes, re-initialised with the same scales as
                                 ref_models.py, saved with save_pretrained(safetensors),
                                 and expected.json computed by transformers, reusing the
                                 inputs of tests/fixtures/models/<name>/expected.json.

Format (as written by ref_models.py):
  encoder: {"kind": "encoder", "pooling": "mean", "normalize": true,
            "inputs": [[ids incl. [CLS]/[SEP]], ...], "embeddings": [[d floats], ...]}
  decoder: {"kind": "decoder", "prompt": [ids], "logits_all": [[vocab] per prompt position],
            "greedy": [16 ids], "greedy_rel_margins": [...],
            "logits_decode": [[vocab] for positions len(prompt)-1 .. len(prompt)+15]}
"""
import json
import math
import os
import shutil
import sys

import torch

DT = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AUX = ["tokenizer.json", "generation_config.json", "modules.json", "sentence_bert_config.json",
       "1_Pooling/config.json"]


def floats(t):
    def r(x):
        return [r(y) for y in x] if isinstance(x, list) else float("%.9g" % x)
    return r(t.tolist())


def write_json(path, obj):
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(json.dumps(k) + ": " + json.dumps(v, separators=(",", ":"))
                                   for k, v in obj.items()) + "\n}\n")


@torch.no_grad()
def hf_encoder(model, seqs):
    """BertModel on a right-padded batch + mean pooling over the mask + L2 normalize
    (what sentence-transformers' Transformer, Pooling(mean), Normalize modules do)."""
    L = max(map(len, seqs))
    ids = torch.zeros(len(seqs), L, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask[..., None].to(out.dtype)
    pooled = (out * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


@torch.no_grad()
def hf_decoder(model, prompt, n_new):
    ids = torch.tensor([prompt])
    logits_all = model(input_ids=ids).logits[0]
    # greedy with transformers' own KV cache, one token at a time, no eos stop
    out = model(input_ids=ids, use_cache=True)
    past, last = out.past_key_values, out.logits[0, -1]
    cont, margins = [], []
    for _ in range(n_new):
        top = torch.topk(last, 2).values
        margins.append(float(top[0] - top[1]) / float(last.abs().max()))
        t = int(torch.argmax(last))
        cont.append(t)
        out = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
        past, last = out.past_key_values, out.logits[0, -1]
    full = model(input_ids=torch.tensor([prompt + cont])).logits[0]
    return logits_all, cont, margins, full[len(prompt) - 1:]


def load(d, cfg):
    from transformers import AutoModel, AutoModelForCausalLM
    cls = AutoModel if cfg["model_type"] == "bert" else AutoModelForCausalLM
    kw = {"torch_dtype": DT}
    try:
        return cls.from_pretrained(d, attn_implementation="eager", **kw).eval()
    except TypeError:  # older transformers without attn_implementation
        return cls.from_pretrained(d, **kw).eval()


def compute(d, model, cfg, exp):
    res = {"kind": exp["kind"], "reference": "transformers %s (float64, eager attention)" % _tf_version()}
    if exp["kind"] == "encoder":
        emb = hf_encoder(model, exp["inputs"])
        res.update(pooling="mean", normalize=True, inputs=exp["inputs"], embeddings=floats(emb))
    else:
        la, cont, margins, ld = hf_decoder(model, exp["prompt"], len(exp["greedy"]))
        res.update(prompt=exp["prompt"], logits_all=floats(la), greedy=cont,
                   greedy_rel_margins=[round(m, 6) for m in margins], logits_decode=floats(ld))
    return res


def _tf_version():
    import transformers
    return transformers.__version__


def compare(name, ref, hf):
    ok = True
    if ref["kind"] == "encoder":
        a, b = torch.tensor(ref["embeddings"], dtype=DT), torch.tensor(hf["embeddings"], dtype=DT)
        cos = float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())
        err = float((a - b).abs().max())
        print("%-12s embeddings: min cosine %.12f, max|diff| %.3g" % (name, cos, err))
        ok = err < 1e-6
    else:
        for key in ("logits_all", "logits_decode"):
            a, b = torch.tensor(ref[key], dtype=DT), torch.tensor(hf[key], dtype=DT)
            rel = float((a - b).abs().max()) / float(a.abs().max())
            print("%-12s %s: max|diff|/max|logit| %.3g" % (name, key, rel))
            ok = ok and rel < 1e-6
        same = ref["greedy"] == hf["greedy"]
        print("%-12s greedy ids identical: %s" % (name, same))
        ok = ok and same
    return ok


def verify(fixdir):
    ok = True
    for name in sorted(os.listdir(fixdir)):
        d = os.path.join(fixdir, name)
        if not os.path.isfile(os.path.join(d, "expected.json")):
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        ref = json.load(open(os.path.join(d, "expected.json")))
        hf = compute(d, load(d, cfg), cfg, ref)
        write_json(os.path.join(d, "expected.hf.json"), hf)
        ok = compare(name, ref, hf) and ok
    print("HF parity of the torch reference:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


def reinit(model, cfg):
    """Same scales as ref_models.py (HF's 0.02 init gives near-uniform attention and
    near-tied logits, which would test little)."""
    g = torch.Generator().manual_seed(12345)
    tied = cfg.get("tie_word_embeddings", False)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n or "layernorm" in n or n.endswith("norm.weight"):
                if n.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g, dtype=DT))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=DT))
            elif "embed" in n:
                std = 0.5 if cfg["model_type"] == "bert" else (0.15 if tied else 1.0)
                p.copy_(std * torch.randn(p.shape, generator=g, dtype=DT))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=DT))
            else:
                std = 1 / math.sqrt(p.shape[1])
                if any(s in n for s in ("q_proj", "k_proj", "query", "key")):
                    std *= 2
                if "lm_head" in n:
                    std *= 3
                p.copy_(std * torch.randn(p.shape, generator=g, dtype=DT))
    return model


def gen(outdir):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    src = os.path.join(REPO, "tests", "fixtures", "models")
    for name in sorted(os.listdir(src)):
        s = os.path.join(src, name)
        if not os.path.isfile(os.path.join(s, "expected.json")):
            continue
        cfgd = json.load(open(os.path.join(s, "config.json")))
        exp = json.load(open(os.path.join(s, "expected.json")))
        conf = AutoConfig.from_pretrained(s)
        cls = AutoModel if cfgd["model_type"] == "bert" else AutoModelForCausalLM
        model = reinit(cls.from_config(conf, torch_dtype=DT), cfgd).eval()
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        model.to(torch.float32).save_pretrained(d, safe_serialization=True)
        for a in AUX:
            if os.path.exists(os.path.join(s, a)):
                os.makedirs(os.path.dirname(os.path.join(d, a)), exist_ok=True)
                shutil.copy(os.path.join(s, a), os.path.join(d, a))
        # recompute from the saved float32 weights, exactly what the runtime will load
        res = compute(d, load(d, cfgd), cfgd, exp)
        write_json(os.path.join(d, "expected.json"), res)
        print("wrote", d)
    return 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("verify", "gen"):
        sys.exit(__doc__)
    sys.exit(verify(sys.argv[2]) if sys.argv[1] == "verify" else gen(sys.argv[2]))


if __name__ == "__main__":
    main()
