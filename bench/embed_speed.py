#!/usr/bin/env python3
"""Embedding speed, real all-MiniLM-L6-v2 on the CPU: quire (`quire embed --jsonl`, the
qr_embed_texts call ingest uses) against sentence-transformers (SentenceTransformer.encode, torch),
same texts, same thread count, same run, alternating quire / reference for R rounds.

  bench/embed_speed.py [--quire build/cli/quire] [--model DIR] [--threads 2] [--rounds 3]
                       [--batch 32] [--shared ../shared] [--n-long 256] [--n-short 512]

Sets (from ../shared/data): "long" = the first --n-long (256) SciFact documents, title + " " + text (most cut at
256 tokens); "short" = the first --n-short (512) NQ-open questions. Tokens = ids the model runs after truncation,
special tokens included (the sentence-transformers tokenizer counts them; quire's are the same ids,
as tests/unit/retrieve/embed_parity.py checks).

quire's time: wall time of the `quire embed` process minus its start-up (the best of 3 runs that embed
one short text: process start, model load), so both sides time embedding only; quire's includes
reading stdin and printing 384 floats per text as JSON. Reference: wall time of encode() with the
model loaded, batch_size = --batch, torch.set_num_threads(--threads). Best of R rounds per side.
CPU time (user + system, all threads: the quire child's rusage, the reference's process_time()) is
printed too: on a shared, loaded machine it is steadier than wall time (spinning threads count).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ap.add_argument("--quire", default=os.path.join(root, "build", "cli", "quire"))
ap.add_argument("--model", default=os.path.expanduser("~/.cache/quire/models/all-MiniLM-L6-v2"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
ap.add_argument("--n-long", type=int, default=256)
ap.add_argument("--n-short", type=int, default=512)
a = ap.parse_args()

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

torch.set_num_threads(a.threads)
data = os.path.join(a.shared, "data")
with open(os.path.join(data, "scifact", "corpus.jsonl")) as f:
    long = [(d["title"] + " " + d["text"]).strip() for d in map(json.loads, [next(f) for _ in range(a.n_long)])]
with open(os.path.join(data, "nq_open", "NQ-open.dev.jsonl")) as f:
    short = [json.loads(next(f))["question"] for _ in range(a.n_short)]

st = SentenceTransformer(a.model, device="cpu")


def quire_run(texts):
    inp = ("\n".join(json.dumps(t) for t in texts) + "\n").encode()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([a.quire, "embed", "--model", a.model, "--jsonl", "--batch", str(a.batch), "--threads",
                        str(a.threads), "--log-level", "warn"], input=inp, capture_output=True)
    dt = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(p.stderr.decode())
    return dt, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, p.stdout


su = [quire_run(["a"]) for _ in range(3)]
startup, startup_cpu = min(x[0] for x in su), min(x[1] for x in su)
print(f"quire start-up (process + model load, one short text): {startup:.3f} s wall, {startup_cpu:.3f} s CPU; threads {a.threads}, "
      f"batch {a.batch}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
print(f"load average before: {os.getloadavg()}")
for name, texts in (("long", long), ("short", short)):
    ntok = sum(min(len(ids), st.max_seq_length) for ids in st.tokenizer(texts)["input_ids"])
    tq, tr, cq, cr = [], [], [], []
    for r in range(a.rounds):
        dt, dc, out = quire_run(texts)
        tq.append(dt - startup)
        cq.append(dc - startup_cpu)
        t0, p0 = time.perf_counter(), time.process_time()
        ref = st.encode(texts, batch_size=a.batch, convert_to_numpy=True)
        tr.append(time.perf_counter() - t0)
        cr.append(time.process_time() - p0)
    q = np.array([json.loads(l) for l in out.decode().split("\n") if l])
    cmin = float(((q * ref).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(ref, axis=1)).min())
    bq, br = min(tq), min(tr)
    print(f"{name}: {len(texts)} texts, {ntok} tokens | quire {bq:.2f} s = {len(texts) / bq:.1f} texts/s, "
          f"{ntok / bq:.0f} tokens/s | sentence-transformers {br:.2f} s = {len(texts) / br:.1f} texts/s, "
          f"{ntok / br:.0f} tokens/s | ratio {br / bq:.2f}x | rounds quire {[round(x, 2) for x in tq]} "
          f"reference {[round(x, 2) for x in tr]} | min cosine {cmin:.7f}")
    print(f"{name} CPU time (all threads): quire {min(cq):.2f} s = {ntok / min(cq):.0f} tokens/CPU-s | "
          f"sentence-transformers {min(cr):.2f} s = {ntok / min(cr):.0f} tokens/CPU-s | ratio {min(cr) / min(cq):.2f}x")
print(f"load average after: {os.getloadavg()}")
