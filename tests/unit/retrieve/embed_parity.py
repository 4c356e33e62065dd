#!/usr/bin/env python3
"""Embedding parity with the real all-MiniLM-L6-v2: quire embed (qr_embed_texts, the call ingest and
search use) against sentence-transformers (SentenceTransformer(DIR, device="cpu").encode, torch on
the CPU) on the committed texts of embed_parity_texts.jsonl (gen_embed_texts.py makes them: long
texts truncated at max_seq_length 256, short, unicode, code).

Asserts, per text, cosine(quire f32, reference) >= 0.99999, with quire run in batches that mix
lengths (padding) as ingest runs them. Reports min/mean cosine for --dtype bf16 and int8 on the
first N_LOW texts and asserts only a sane floor there (0.99 bf16, 0.98 int8).

Environment: QUIRE_BIN, QUIRE_PYTHON (this interpreter), QUIRE_MODELS. Exit 77 (skip) when the
model or the Python packages are missing."""
import json
import os
import subprocess
import sys
import time

import real_model

here = os.path.dirname(os.path.abspath(__file__))
quire = os.environ.get("QUIRE_BIN")
model = real_model.minilm()
try:
    import numpy as np
    from sentence_transformers import SentenceTransformer
except ImportError as e:
    real_model.skip(f"{e}: run tools/pydeps.sh")

N_LOW = int(os.environ.get("EMBED_PARITY_N_LOW", "64"))
FLOORS = {"bf16": 0.99, "int8": 0.98}
threads = os.environ.get("EMBED_PARITY_THREADS", "2")

path = os.path.join(here, "embed_parity_texts.jsonl")
with open(path, encoding="utf-8") as f:
    lines = [l for l in f.read().split("\n") if l]
texts = [json.loads(l) for l in lines]
assert len(texts) >= 500, len(texts)


def run_quire(dtype, n):
    t0 = time.time()
    p = subprocess.run([quire, "embed", "--model", model, "--jsonl", "--batch", "16", "--dtype", dtype,
                        "--threads", threads, "--log-level", "warn"],
                       input=("\n".join(lines[:n]) + "\n").encode(), capture_output=True)
    if p.returncode:
        sys.exit(f"quire embed --dtype {dtype}: exit {p.returncode}: {p.stderr.decode()[-2000:]}")
    v = np.array([json.loads(l) for l in p.stdout.decode().split("\n") if l], dtype=np.float64)
    assert v.shape == (n, 384), v.shape
    return v, time.time() - t0


def cosines(a, b):
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


import torch
torch.set_num_threads(int(threads))
t0 = time.time()
st = SentenceTransformer(model, device="cpu")
assert st.max_seq_length == 256, st.max_seq_length
ref = st.encode(texts, batch_size=32, convert_to_numpy=True).astype(np.float64)
t_ref = time.time() - t0

q32, t32 = run_quire("f32", len(texts))
c = cosines(q32, ref)
ntok = [len(st.tokenizer(t)["input_ids"]) for t in texts]
nlong = sum(n > 256 for n in ntok)
print(f"{len(texts)} texts ({nlong} longer than 256 tokens, longest {max(ntok)}); reference {t_ref:.1f} s, "
      f"quire f32 {t32:.1f} s")
print(f"f32:  min cosine {c.min():.9f} (1 - min {1 - c.min():.2e}) mean {c.mean():.9f} (text {int(c.argmin())}); "
      f"max |norm - 1| {np.abs(np.linalg.norm(q32, axis=1) - 1).max():.2e}")
fails = [(i, c[i]) for i in range(len(texts)) if not c[i] >= 0.99999]
for i, v in fails[:20]:
    print(f"FAIL: text {i} (line {i + 1}, {ntok[i]} tokens): cosine {v:.9f}: {texts[i][:80]!r}")
for dt, floor in FLOORS.items():
    q, t = run_quire(dt, N_LOW)
    cd = cosines(q, ref[:N_LOW])
    print(f"{dt}: min cosine {cd.min():.6f} mean {cd.mean():.6f} over the first {N_LOW} texts ({t:.1f} s)")
    if not cd.min() >= floor:
        fails.append((dt, cd.min()))
        print(f"FAIL: {dt} min cosine {cd.min():.6f} below the floor {floor}")
sys.exit(1 if fails else 0)
