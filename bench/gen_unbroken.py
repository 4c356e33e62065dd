#!/usr/bin/env python3
"""Writes deterministic ~SIZE-byte texts for the ingest rows of bench/RESULTS.md
(linear-time chunking, issue 13): prose.txt (sentences, blank-line paragraphs),
data.csv (rows, no sentence break anywhere: one text unit) and slurmd.log (log
lines, no sentence break). Usage: gen_unbroken.py DIR [SIZE_MB=20]"""
import os
import random
import sys

out = sys.argv[1]
size = int(float(sys.argv[2] if len(sys.argv) > 2 else 20) * 1_000_000)
os.makedirs(out, exist_ok=True)
r = random.Random(13)


def w(lo=2, hi=9):
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(lo, hi)))


def write(name, piece):
    parts, n = [], 0
    while n < size:
        s = piece()
        parts.append(s)
        n += len(s)
    with open(os.path.join(out, name), "w") as f:
        f.write("".join(parts))


write("prose.txt", lambda: " ".join(
    (w().capitalize() + " " + " ".join(w() for _ in range(r.randint(5, 20))) + ".") for _ in range(r.randint(2, 6)))
    + "\n\n")
write("data.csv", lambda: f"{r.randint(0, 10**6)},{w(1, 9)},{r.randint(0, 999)}.{r.randint(0, 99999)},"
      f"{r.choice(['true', 'false'])}\n")
write("slurmd.log", lambda: f"2026-12-07T01:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z node{r.randint(1, 512)} "
      f"slurmd[{r.randint(100, 99999)}]: job {r.randint(10**5, 10**7)} state=RUNNING user={w(6, 6)} "
      f"mem={r.randint(1, 10**5)}M\n")
