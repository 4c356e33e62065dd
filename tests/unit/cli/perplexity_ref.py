#!/usr/bin/env python3
"""Reference perplexity of a text for a GGUF Llama-family model, computed with Hugging Face
transformers the way llama.cpp's perplexity tool (tools/perplexity/perplexity.cpp) does, for
tests/unit/cli/perplexity.sh (run at test time with QUIRE_PYTHON).

  perplexity_ref.py MODEL.gguf TEXT N_CTX OUT.json [MAX_CHUNKS]

- tokens: the whole text through SmolLM2's tokenizer pipeline rebuilt from the GGUF
  (tools/reference/smollm_ref.py: pipeline_tokenizer), a BOS in front when the GGUF's
  tokenizer.ggml.add_bos_token says so (llama.cpp's common_tokenize with add_special);
- n_chunk = n_tokens // N_CTX chunks (at most MAX_CHUNKS, as quire's --chunks); each chunk run alone (one forward pass, float32 weights
  dequantized by transformers' GGUF loader), its first token replaced by BOS when add_bos;
- first = N_CTX // 2: the logits at positions first .. N_CTX-2 score tokens first+1 .. N_CTX-1;
  NLL from log_softmax in float64;
- ppl = exp(mean NLL), err = ppl * sqrt((E[NLL^2] - E[NLL]^2) / (n - 1)).

OUT.json: {"tokens", "chunks", "scored", "bos", "ppl", "ppl_err", "nll", "top1", "running_ppl"}.
Exit 77 (SKIP) when the python packages are missing.
"""
import json
import math
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")
try:
    import torch
    import gguf
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                    "tools", "reference"))
    from smollm_ref import pipeline_tokenizer
except ImportError as e:
    print("SKIP: python packages missing (%s): run tools/pydeps.sh" % e)
    sys.exit(77)

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()


@torch.no_grad()
def main():
    if len(sys.argv) not in (5, 6):
        raise SystemExit(__doc__)
    path, text_path, n_ctx, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)  # a shared 2-core machine: torch's pool spins against the others
    r = gguf.GGUFReader(path)
    f = r.fields.get("tokenizer.ggml.add_bos_token")
    add_bos = bool(f.contents()) if f is not None else False
    bos = int(r.fields["tokenizer.ggml.bos_token_id"].contents())
    with open(text_path, encoding="utf-8") as fh:
        text = fh.read()
    ids = pipeline_tokenizer(path).encode(text, add_special_tokens=False).ids
    if add_bos:
        ids = [bos] + ids
    d, name = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    n_chunk = len(ids) // n_ctx
    if len(sys.argv) == 6:
        n_chunk = min(n_chunk, int(sys.argv[5]))
    first = n_ctx // 2
    nll = nll2 = 0.0
    n = top1 = 0
    running = []
    for c in range(n_chunk):
        tok = list(ids[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            tok[0] = bos
        logits = model(torch.tensor([tok])).logits[0, first:n_ctx - 1].double()
        target = torch.tensor(tok[first + 1:n_ctx])
        lp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
        nll += float(-lp.sum())
        nll2 += float((lp * lp).sum())
        n += len(target)
        top1 += int((logits.argmax(dim=-1) == target).sum())
        running.append(math.exp(nll / n))
    mean = nll / n
    var = nll2 / n - mean * mean
    ppl = math.exp(mean)
    res = {"tokens": len(ids), "chunks": n_chunk, "scored": n, "bos": add_bos, "ppl": ppl,
           "ppl_err": ppl * math.sqrt(var / (n - 1)) if var > 0 else 0.0, "nll": mean,
           "top1": top1 / n, "running_ppl": running}
    with open(out, "w") as fh:
        json.dump(res, fh)


if __name__ == "__main__":
    main()
