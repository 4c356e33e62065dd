#!/usr/bin/env python3
"""Reference outputs of a real GGUF chat model (SmolLM2-135M-Instruct Q4_1) from Hugging Face
transformers, for tests/unit/parity/test_smollm.c (run at test time with QUIRE_PYTHON).

  smollm_ref.py MODEL.gguf IN.json OUTDIR

transformers reads the GGUF itself (AutoTokenizer / AutoModelForCausalLM with gguf_file=),
dequantizing Q4_1 / Q8_0 to float32: the same numbers quire uses with --dtype f32.

IN.json (written by the test):
  {"strings": [text, ...],                 texts to tokenize without special tokens
   "strings_file": path,                   more of them, one JSON string per line (optional)
   "chats": [[{"role", "content"}, ...]],  conversations for tokenizer.chat_template
   "n_greedy": 64,                         greedy tokens per conversation (eos not special)
   "logits_chats": [i, ...]}               conversations whose full logits are written

OUTDIR/ref.json:
  {"vocab": V,
   "strings": [{"hf": ids, "pipeline": ids}],  hf: transformers' tokenizer built from the
        GGUF; pipeline: a tokenizers.Tokenizer built here from the GGUF vocabulary and merges
        with SmolLM2's own tokenizer.json pipeline, Sequence[Digits(individual_digits=true),
        ByteLevel(add_prefix_space=false)] (transformers' GGUF converter drops the Digits
        step; the two agree when no merge joins a digit to what precedes it)
   "chats": [{"text": rendered prompt (apply_chat_template), "ids": its pipeline ids (the
              template writes the special tokens; nothing added), "ids_hf": apply_chat_template's
              own ids (transformers' tokenizer),
              "greedy": n_greedy ids (generate, do_sample=False, eos disabled),
              "decoded", "decoded_skip": their text by the pipeline's ByteLevel decoder, with and
              without the special tokens,
              "top2": [[top1 id, top2 id, top1-top2 gap, max|logit|] per greedy step]}],
   "logits": [{"chat": i, "n": rows, "row0": first row in logits.f32}]}
OUTDIR/imported: created (empty) once the packages are imported: the test waits for it
  (or for the script's exit) before starting its own computation.
OUTDIR/logits.f32: for each entry of "logits", the logits (n, V) little-endian float32 of
  every position of ids + greedy[:-1] (prompt and continuation), from one forward pass.

Exit 77 (SKIP) when transformers / tokenizers / gguf cannot be imported.
"""
import json
import os
import sys
import time


def skip(msg):
    print("SKIP: %s: run tools/pydeps.sh" % msg)
    sys.exit(77)


os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a progress bar
try:
    import numpy as np
    import torch
    import gguf
    import tokenizers
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
except ImportError as e:
    skip("python packages missing (%s)" % e)

hf_logging.disable_progress_bar()  # the test's log keeps the numbers, not progress bars
hf_logging.set_verbosity_error()


def pipeline_tokenizer(path):
    """SmolLM2's Hugging Face tokenizer pipeline rebuilt from the GGUF's vocabulary."""
    r = gguf.GGUFReader(path)
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
    pre = r.fields["tokenizer.ggml.pre"].contents()
    if pre != "smollm":
        raise SystemExit("%s: tokenizer.ggml.pre is %r, this reference models \"smollm\"" % (path, pre))
    t = Tokenizer(models.BPE({s: i for i, s in enumerate(toks)}, merges))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    # control tokens (type 3) are the special added tokens of SmolLM2's tokenizer.json
    t.add_special_tokens([AddedToken(toks[i], special=True, normalized=False)
                          for i in range(len(toks)) if types[i] == 3])
    return t


@torch.no_grad()
def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    path, inp, out = sys.argv[1:]
    # One thread: on a shared 2-core machine torch's thread pool spins against the other
    # processes (measured 20x slower with 2 threads under load).
    torch.set_num_threads(1)
    req = json.load(open(inp, encoding="utf-8"))
    open(os.path.join(out, "imported"), "w").close()  # the test starts its own side now
    t0 = time.time()
    d, name = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    pipe = pipeline_tokenizer(path)
    t1 = time.time()
    c1 = time.process_time()

    n_greedy = int(req["n_greedy"])
    res = {"vocab": int(model.config.vocab_size), "strings": [], "chats": [], "logits": []}
    strings = list(req["strings"])
    if req.get("strings_file"):
        with open(req["strings_file"], encoding="utf-8") as f:
            strings += [json.loads(line) for line in f if line.strip()]
    if strings:
        hf = tok(strings, add_special_tokens=False)["input_ids"]
        pl = [e.ids for e in pipe.encode_batch(strings, add_special_tokens=False)]
        res["strings"] = [{"hf": list(x), "pipeline": y} for x, y in zip(hf, pl)]

    # Conversations of similar lengths share a left-padded batch: on the CPU one generate over
    # a batch costs about what 4 single-sequence ones do. Padding changes float rounding only
    # (masked positions get zero attention weight); the per-step top-2 gaps are reported.
    gc = model.generation_config
    gc.eos_token_id = None  # n_greedy tokens whatever comes: quire's side ignores eos too
    gc.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    gc.do_sample = False
    gc.max_new_tokens = gc.min_new_tokens = n_greedy
    gc.output_logits = gc.return_dict_in_generate = True
    chats = []
    for msgs in req["chats"]:
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids_hf = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"]
        chats.append({"text": text, "ids": pipe.encode(text, add_special_tokens=False).ids, "ids_hf": list(ids_hf)})
    order = sorted(range(len(chats)), key=lambda i: len(chats[i]["ids"]))
    batches = []
    for i in order:
        if batches and len(chats[i]["ids"]) <= 2 * len(chats[batches[-1][0]]["ids"]):
            batches[-1].append(i)
        else:
            batches.append([i])
    for batch in batches:
        L = max(len(chats[i]["ids"]) for i in batch)
        x = torch.full((len(batch), L), gc.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), L), dtype=torch.long)
        for b, i in enumerate(batch):
            n = len(chats[i]["ids"])
            x[b, L - n:] = torch.tensor(chats[i]["ids"])
            mask[b, L - n:] = 1
        g = model.generate(x, attention_mask=mask, generation_config=gc)
        for b, i in enumerate(batch):
            c = chats[i]
            c["greedy"] = g.sequences[b, L:].tolist()
            c["decoded"] = pipe.decode(c["greedy"], skip_special_tokens=False)
            c["decoded_skip"] = pipe.decode(c["greedy"], skip_special_tokens=True)
            c["top2"] = []
            for step in g.logits:
                v, k = torch.topk(step[b].float(), 2)
                c["top2"].append([int(k[0]), int(k[1]), float(v[0] - v[1]), float(step[b].abs().max())])
    res["chats"] = chats
    t2 = time.time()
    c2 = time.process_time()

    row = 0
    with open(os.path.join(out, "logits.f32"), "wb") as f:
        for ci in req["logits_chats"]:
            c = res["chats"][ci]
            seq = c["ids"] + c["greedy"][:-1]
            lg = model(torch.tensor([seq])).logits[0].float().numpy()
            f.write(np.ascontiguousarray(lg, dtype="<f4").tobytes())
            res["logits"].append({"chat": ci, "n": len(seq), "row0": row})
            row += len(seq)
    with open(os.path.join(out, "ref.json"), "w", encoding="utf-8") as f:
        json.dump(res, f)
    print("smollm_ref: load %.1f s (cpu %.1f), tokenize + %d chats x %d greedy %.1f s (cpu %.1f), logits of %d "
          "positions %.1f s (cpu %.1f) (torch %s, transformers %s, tokenizers %s)"
          % (t1 - t0, c1, len(req["chats"]), n_greedy, t2 - t1, c2 - c1, row, time.time() - t2,
             time.process_time() - c2, torch.__version__,
                                                          __import__("transformers").__version__,
                                                          tokenizers.__version__))


if __name__ == "__main__":
    main()
