#!/usr/bin/env python3
"""Parity of quire (CUDA and CPU backends) with Hugging Face transformers on
random-weight models of real configurations (bench/gpu/make_models.py):

- decoders: logits of the last prompt position (normalised error
  ||quire - hf|| / ||hf||, arg-max agreement) and 32 greedy ids from the
  prompt (no eos stop), in f32 and bf16; the greedy ids are compared only
  as far as the two references (HF f32 and quire CPU f32) agree, since
  near-ties flip arg-maxes under any change of summation order;
- encoders: pooled, normalised embeddings of a varlen batch (min cosine,
  normalised error) in f32 and f16.

  hf_parity.py --bench build-gpu/bench/bench_gpu --models DIR [--work TMP]

Prints one line per check and a last line `PARITY pass=N fail=M`."""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import transformers as tf

BOUNDS = {"f32": 1e-4, "bf16": 3e-2, "f16": 1e-2}


def nerr(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def hf_decoder(d, ids, dtype, gen):
    model = tf.AutoModelForCausalLM.from_pretrained(d, torch_dtype=dtype).cuda().eval()
    x = torch.tensor([ids], device="cuda")
    with torch.no_grad():
        logits = model(x).logits[0, -1].float().cpu().numpy()
        out = model.generate(x, max_new_tokens=gen, do_sample=False, min_new_tokens=gen, eos_token_id=None,
                             pad_token_id=0)
    del model
    torch.cuda.empty_cache()
    return logits, out[0, len(ids):].tolist()


def agree_len(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def check_decoder(args, name, results):
    d = os.path.join(args.models, name)
    cfg = tf.AutoConfig.from_pretrained(d)
    rng = np.random.default_rng(7)
    ids = rng.integers(100, cfg.vocab_size - 1, size=64).tolist()
    idf = os.path.join(args.work, f"{name}.ids.txt")
    with open(idf, "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    gen = 32
    ref = {}
    for dt, tdt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        ref[dt] = hf_decoder(d, ids, tdt, gen)
    pre = os.path.join(args.work, f"{name}.cpu.f32")
    run([args.bench, "logits", d, "--ids", idf, "--out", pre, "--gen", str(gen), "--dtype", "f32", "--cpu"])
    cpu_ids = [int(t) for t in open(pre + ".ids.txt").read().split()]
    ref_agree = agree_len(ref["f32"][1], cpu_ids)  # where the two references agree
    for dt in ("f32", "bf16"):
        pre = os.path.join(args.work, f"{name}.cuda.{dt}")
        run([args.bench, "logits", d, "--ids", idf, "--out", pre, "--gen", str(gen), "--dtype", dt])
        lg = np.fromfile(pre + ".logits.bin", dtype=np.float32)
        q_ids = [int(t) for t in open(pre + ".ids.txt").read().split()]
        e = nerr(lg, ref[dt][0])
        am = int(np.argmax(lg)) == int(np.argmax(ref[dt][0]))
        need = ref_agree if dt == "f32" else min(ref_agree, agree_len(ref["bf16"][1], ref["f32"][1]))
        got = agree_len(q_ids, ref[dt][1])
        ok = e <= BOUNDS[dt] and am and got >= min(need, gen)
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'} decoder {name} {dt}: logits nerr {e:.2e} (bound {BOUNDS[dt]:.0e}), "
              f"argmax {'same' if am else 'DIFFERENT'}, greedy agrees {got}/{gen} (references agree {need})",
              flush=True)


def check_encoder(args, name, results):
    d = os.path.join(args.models, name)
    cfg = tf.AutoConfig.from_pretrained(d)
    import json
    pool = json.load(open(os.path.join(d, "1_Pooling", "config.json")))
    rng = np.random.default_rng(11)
    lens = [5, 17, 64, 128, 300, 9]
    seqs = [[2] + rng.integers(1000, cfg.vocab_size - 1, size=n - 2).tolist() + [3] for n in lens]
    idf = os.path.join(args.work, f"{name}.ids.txt")
    with open(idf, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")
    for dt, tdt in (("f32", torch.float32), ("f16", torch.float16)):
        model = tf.AutoModel.from_pretrained(d, torch_dtype=tdt).cuda().eval()
        refs = []
        with torch.no_grad():
            for s in seqs:
                h = model(torch.tensor([s], device="cuda")).last_hidden_state[0].float()
                v = h[0] if pool["pooling_mode_cls_token"] else h.mean(0)
                refs.append(torch.nn.functional.normalize(v, dim=0).cpu().numpy())
        del model
        ref = np.stack(refs)
        out = os.path.join(args.work, f"{name}.cuda.{dt}.bin")
        run([args.bench, "embeds", d, "--ids", idf, "--out", out, "--dtype", dt])
        got = np.fromfile(out, dtype=np.float32).reshape(ref.shape)
        cos = float(np.min(np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))))
        e = nerr(got, ref)
        ok = e <= BOUNDS[dt] and cos > 1 - BOUNDS[dt]
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'} encoder {name} {dt}: nerr {e:.2e}, min cosine {cos:.6f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--work", default="/tmp/quire-parity")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    results = []
    for name in ("minilm-l6", "bge-base"):
        try:
            check_encoder(args, name, results)
        except Exception as e:  # report and go on with the other models
            results.append(False)
            print(f"FAIL encoder {name}: {e}", flush=True)
    for name in ("smollm2-135m", "qwen2.5-0.5b", "llama3.2-1b", "llama3-8b"):
        if not os.path.exists(os.path.join(args.models, name, "config.json")):
            print(f"skip decoder {name}: not written (make_models.py --with-8b)")
            continue
        try:
            check_decoder(args, name, results)
        except Exception as e:
            results.append(False)
            print(f"FAIL decoder {name}: {e}", flush=True)
    print(f"PARITY pass={sum(results)} fail={len(results) - sum(results)}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
