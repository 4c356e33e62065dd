#!/usr/bin/env python3
"""quire eval retrieval --protocol mteb against an independent reference computed the same way
with sentence-transformers + numpy, on a subset of SciFact (../shared/data/scifact): the first
N_QUERIES judged test queries (by id), their relevant documents and N_OTHER other documents drawn
with a fixed seed. Reference: SentenceTransformer(DIR, device="cpu").encode of
(title + " " + text).strip() and of each query, cosine similarity (numpy), top 1000 with the query's
own id dropped, nDCG@10 as trec_eval computes it (gain = level, ties by docno descending).
Asserts |nDCG@10(quire) - nDCG@10(reference)| <= 0.005 and the same documents and queries counted.

Environment: QUIRE_BIN, QUIRE_PYTHON, QUIRE_MODELS, QUIRE_SHARED. Exit 77 (skip) without the
data, the model or the Python packages."""
import json
import math
import os
import random
import subprocess
import sys
import tempfile

import real_model

N_QUERIES, N_OTHER = 40, 160
quire = os.environ.get("QUIRE_BIN")
src = real_model.shared_data("scifact")
model = real_model.minilm()
try:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
except ImportError as e:
    real_model.skip(f"{e}: run tools/pydeps.sh")


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


# ---- the subset ----
qrels = {}
with open(os.path.join(src, "qrels", "test.tsv")) as f:
    next(f)
    for line in f:
        q, d, r = line.rstrip("\n").split("\t")
        qrels.setdefault(q, {})[d] = int(r)
qids = sorted(qrels, key=lambda q: (len(q), q))[:N_QUERIES]
qrels = {q: qrels[q] for q in qids}
corpus = jsonl(os.path.join(src, "corpus.jsonl"))
rel_ids = {d for q in qids for d in qrels[q]}
others = [d for d in corpus if d["_id"] not in rel_ids]
docs = [d for d in corpus if d["_id"] in rel_ids] + random.Random(9).sample(others, N_OTHER)
queries = [q for q in jsonl(os.path.join(src, "queries.jsonl")) if q["_id"] in qrels]

tmp = tempfile.mkdtemp(prefix="quire-eval-mteb-")
os.makedirs(os.path.join(tmp, "qrels"))
with open(os.path.join(tmp, "corpus.jsonl"), "w") as f:
    for d in docs:
        f.write(json.dumps({"_id": d["_id"], "title": d.get("title", ""), "text": d["text"]}) + "\n")
with open(os.path.join(tmp, "queries.jsonl"), "w") as f:
    for q in queries:
        f.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")
with open(os.path.join(tmp, "qrels", "test.tsv"), "w") as f:
    f.write("query-id\tcorpus-id\tscore\n")
    for q in qids:
        for d, r in qrels[q].items():
            f.write(f"{q}\t{d}\t{r}\n")

# ---- quire ----
p = subprocess.run([quire, "eval", "retrieval", "--beir", tmp, "--embedder", model, "--protocol", "mteb", "--json",
                    "--threads", "2", "--log-level", "warn"], capture_output=True, text=True)
if p.returncode:
    sys.exit(f"quire eval: exit {p.returncode}: {p.stderr[-2000:]}")
j = json.loads(p.stdout)

# ---- reference ----
torch.set_num_threads(2)
st = SentenceTransformer(model, device="cpu")
dv = st.encode([(d.get("title", "") + " " + d["text"]).strip() for d in docs], batch_size=32, convert_to_numpy=True)
qv = st.encode([q["text"] for q in queries], batch_size=32, convert_to_numpy=True)
dv = dv / np.linalg.norm(dv, axis=1, keepdims=True)
qv = qv / np.linalg.norm(qv, axis=1, keepdims=True)
S = qv @ dv.T  # (queries, docs) cosine


def ndcg10(qid, run):
    run = sorted(run, key=lambda x: x[0], reverse=True)  # docno descending first (stable sorts) ...
    run = sorted(run, key=lambda x: x[1], reverse=True)  # ... then score descending: trec_eval's order
    rel = qrels.get(qid, {})
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, (d, s) in enumerate(run[:10]) if rel.get(d, 0) > 0)
    ideal = sorted((r for r in rel.values() if r > 0), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


per = {}
for qi, q in enumerate(queries):
    order = np.argsort(-S[qi], kind="stable")[:1001]
    run = [(docs[k]["_id"], float(S[qi, k])) for k in order if docs[k]["_id"] != q["_id"]][:1000]
    per[q["_id"]] = ndcg10(q["_id"], run)
ref = sum(per.get(q, 0.0) for q in qids) / len(qids)
got = j["metrics"]["ndcg@10"]
print(f"SciFact subset: {len(docs)} docs, {len(qids)} queries; nDCG@10 quire {got:.5f}, "
      f"sentence-transformers + numpy {ref:.5f}, |diff| {abs(got - ref):.5f}")
ok = abs(got - ref) <= 0.005 and j["docs"] == len(docs) and j["queries"] == len(qids) and j["protocol"] == "mteb"
subprocess.run(["rm", "-rf", tmp])
if not ok:
    print(f"FAIL: {json.dumps(j)}")
sys.exit(0 if ok else 1)
