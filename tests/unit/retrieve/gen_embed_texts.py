#!/usr/bin/env python3
"""Writes embed_parity_texts.jsonl (beside this script): the texts of the embedding parity test
(embed_parity.py), one JSON string per line, chosen to cover what an embedder meets:

  - long scientific abstracts (SciFact corpus, title + " " + text) and long arguments (ArguAna
    queries), most beyond all-MiniLM-L6-v2's max_seq_length of 256 tokens (truncation);
  - NQ-open questions and XQuAD paragraphs (short and medium English);
  - short texts: empty, single characters, words, numbers, punctuation, white space only;
  - unicode: accented Latin, Greek, Cyrillic, CJK, Korean, Arabic, Hebrew, Devanagari, Thai, emoji,
    control and zero-width characters, combining marks of Unicode <= 12 (the newest combining
    marks are tokenizer work of their own: tests/unit/tokenizer);
  - code: lines and functions from this repository's C, Python, shell, meson and config files;
  - a few texts thousands of tokens long.

Usage: gen_embed_texts.py SHARED_DIR   (SHARED_DIR = ../shared; run from anywhere)
Deterministic: fixed seed, files read in a fixed order. The output is committed, so the test
needs neither ../shared nor this script."""
import json
import os
import random
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, "..", "..", ".."))
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared")
rng = random.Random(9)
out = []


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


data = os.path.join(shared, "data")
corpus = jsonl(os.path.join(data, "scifact", "corpus.jsonl"))
for d in rng.sample(corpus, 90):
    out.append((d["title"] + " " + d["text"]).strip())
args = jsonl(os.path.join(data, "arguana", "queries.jsonl"))
for d in rng.sample(args, 40):
    out.append(d["text"])
nq = jsonl(os.path.join(data, "nq_open", "NQ-open.dev.jsonl"))
for d in rng.sample(nq, 140):
    out.append(d["question"])
with open(os.path.join(data, "xquad_en", "xquad.en.json"), encoding="utf-8") as f:
    paras = [p["context"] for a in json.load(f)["data"] for p in a["paragraphs"]]
for p in rng.sample(paras, 50):
    out.append(p)

short = ["", " ", "\t\n", "a", "A", "I", "?", "!!!", "...", "0", "42", "3.14159", "1e-9", "-17", "x", "ok",
         "hello", "Hello, world!", "GPU", "nDCG@10", "e.g.", "U.S.A.", "don't", "can't won't", "C++", "#include",
         "foo_bar_baz", "CamelCaseIdentifier", "http://example.com/a?b=c&d=e", "user@example.org",
         "2026-12-07T00:00:00Z", "$HOME/.cache", "--batch 32", "()", "[]{}<>", "a b c d e f g", "the",
         "unaffable", "supercalifragilisticexpialidocious", "ok ok ok ok ok ok ok ok ok ok", "Slurm",
         "sbatch --gres=gpu:2", "srun -n 4 hostname", "MPI_Allreduce", "CUDA_VISIBLE_DEVICES=0,1",
         "How do I request two GPUs for a batch job?", "what is the capital of france", "COVID-19", "p < 0.05",
         "α", "€", "½", "™", "🙂", "中", "ß", "Å", "İ", "ﬁ"]
out.extend(short)

uni = ["Café déjà vu, naïve façade, coöperate, São Paulo, Zürich, Ærøskøbing, Łódź, Kraków",
       "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
       "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
       "日本語のテキスト：東京は日本の首都です。ひらがなとカタカナと漢字。",
       "中文文本：机器学习是人工智能的一个分支，研究计算机如何从数据中学习。",
       "한국어 텍스트: 다람쥐 헌 쳇바퀴에 타고파. 서울은 대한민국의 수도입니다.",
       "العربية: نص عربي للاختبار مع علامات التشكيل مَرْحَبًا بِكُمْ",
       "עברית: טקסט בעברית לבדיקה, שָׁלוֹם עֲלֵיכֶם",
       "हिन्दी: यह एक परीक्षण वाक्य है। नमस्ते दुनिया",
       "ไทย: ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
       "Emoji: 👍🏽 👨‍👩‍👧‍👦 🇫🇷 🧪 ❤️ ✨ 🚀 — mixed with text 😀 and numbers 123",
       "Zero\u200bwidth\u200cjoiner\u200dtest and soft\u00adhyphen and non\u00a0breaking space",
       "Control\u0007chars\u001bhere\u0000and there\u007f",
       "Combining: e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 A\u030a (decomposed) vs é à ö ñ ç Å",
       "Full-width: ＡＢＣ１２３ ｈｅｌｌｏ，ｗｏｒｌｄ！ and half-width ｶﾀｶﾅ",
       "Math: ∀x∈ℝ, ∃y: x² + y² ≤ 1; ∑ᵢ aᵢ = ∫₀¹ f(t) dt; √2 ≈ 1.414; ∞ ≠ ℵ₀",
       "Ligatures and compat: ﬁnance ﬂow Ⅻ ① ㍿ ℌ ℵ",
       "Turkish dotted İstanbul and dotless ı; German Straße; Dutch ĳ; Greek final ς",
       "Vietnamese: Tiếng Việt có dấu: Hà Nội, Hồ Chí Minh, phở bò",
       "Mixed scripts: The word 'мир' means 'peace' and 'world'; 和平 (hépíng) is peace in Chinese.",
       "Symbols: © ® ™ § ¶ † ‡ • … ‰ ′ ″ ‹ › « » „ “ ” ‘ ’ ‐ – — ― ~ ¦",
       "Currency: $ € £ ¥ ₹ ₽ ₩ ₿ ¢ ₪ ₫",
       "Armenian Հայերեն, Georgian ქართული, Ethiopic ኢትዮጵያ, Tamil தமிழ், Bengali বাংলা",
       "Private use \ue000\ue001 and unassigned-ish \u0378 and surrogate-free astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
       "Tabs\tand\nnewlines\r\nand   multiple    spaces",
       "Ａ long line of CJK 漢字 " * 40,
       "Ünïcödé " * 120]
out.extend(uni)
# random mixes drawn from the blocks above
pool = "".join(uni[:24])
for i in range(40):
    n = rng.randint(5, 200)
    out.append("".join(rng.choice(pool) for _ in range(n)))

code_files = ["index/eval.c", "cli/eval.c", "common/options.c", "tools/models.sh", "meson.build", "configs/quire.conf",
              "tools/pydeps.sh", "tests/unit/retrieve/gen_embed_texts.py"]
snips = []
for rel in code_files:
    p = os.path.join(root, rel)
    if not os.path.exists(p):
        continue
    with open(p, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for _ in range(8):
        a = rng.randrange(len(lines))
        b = min(len(lines), a + rng.choice([1, 3, 10, 40, 120]))
        s = "\n".join(lines[a:b])
        if s.strip():
            snips.append(s)
out.extend(snips[:60])

# very long: whole abstracts joined (thousands of tokens), truncated at 256 by both sides
for i in range(6):
    out.append(" ".join((d["title"] + " " + d["text"]) for d in rng.sample(corpus, 8)))

dst = os.path.join(here, "embed_parity_texts.jsonl")
with open(dst, "w", encoding="utf-8") as f:
    for t in out:
        f.write(json.dumps(t, ensure_ascii=False) + "\n")
print(f"{dst}: {len(out)} texts")
