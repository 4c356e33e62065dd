#!/usr/bin/env python3
"""hit@k of quire search over the Slurm HTML docs for the questions in questions.tsv.

A question is a hit when a page that answers it (column 2, file names under
/usr/share/doc/slurm-wlm/html) is the document of one of the k passages that
`quire search -k K` prints (what a user of `quire search` / `quire ask` sees).

  hit5.py --quire build/cli/quire --store STORE [--split tune|held|all] [-k 5]
          [--cmd search|ask] [--min-hits N] [-- extra quire flags]

--cmd ask counts the sources of `quire ask --json` (extractive without a model) instead: on a
BM25-only store ask searches with the question's keywords (question words dropped), as the
quickstart does.

Prints one line per miss (question, expected pages, pages returned) and a summary
line "hit@K SPLIT: H/N"; exits 1 when --min-hits is given and H < N_min."""
import argparse
import json
import os
import subprocess
import sys


def load(path, split):
    qs = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) != 3 or cols[0] not in ("tune", "held"):
                sys.exit(f"{path}:{ln}: want 3 tab-separated columns: tune|held, pages, question")
            if split in ("all", cols[0]):
                qs.append((cols[2], set(cols[1].split())))
    return qs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quire", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--split", default="held", choices=("tune", "held", "all"))
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--min-hits", type=int)
    ap.add_argument("--cmd", default="search", choices=("search", "ask"))
    ap.add_argument("--questions", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "questions.tsv"))
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    qs = load(a.questions, a.split)
    hits = 0
    for q, want in qs:
        cmd = [a.quire, a.cmd, q, "--store", a.store, "-k", str(a.k), "--json", "--log-level", "error"] + a.extra
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
        j = json.loads(p.stdout)
        rows = j["results"] if a.cmd == "search" else j["sources"] + j["dropped"]
        got = [os.path.basename(r["path"]) for r in rows]
        if want & set(got):
            hits += 1
        else:
            print(f"miss: {q} | want {' '.join(sorted(want))} | got {' '.join(got)}")
    print(f"hit@{a.k} {a.split}: {hits}/{len(qs)}")
    if a.min_hits is not None and hits < a.min_hits:
        print(f"FAIL: {hits} hits < {a.min_hits}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
