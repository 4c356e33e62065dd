#!/usr/bin/env python3
"""The reference side of bench/gpu/run.sh's speed comparisons, on the same GPU:

  hf_speed.py embed DIR --batch 256 --len 128
      sentence-transformers in fp16 (the model of DIR from make_models.py):
      the forward of its modules (Transformer -> Pooling -> Normalize) on a
      pre-tokenised batch of random ids, as quire's bench_gpu embed times its
      own (tokenisation excluded on both sides); tokens/s, best of 5.
  hf_speed.py decode --shape llama3-8b|... [--batch 1] [--prompt 128] [--tokens 128] [--compile]
      transformers generate() with a static KV cache (cache_implementation
      "static"), greedy, random bf16 weights initialised on the GPU (no
      files); --compile adds torch.compile of the forward as the
      transformers docs advise for static caches. tokens/s of the decode
      part (time of T tokens minus time of 1 token, i.e. the prefill)."""
import argparse
import sys
import time

import torch
import transformers as tf

SHAPES = {
    "llama3-8b": ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=False)),
    "llama3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                  max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True,
                                  head_dim=64)),
    "qwen2.5-0.5b": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                   max_position_embeddings=8192, rope_theta=1000000.0, tie_word_embeddings=True)),
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                   max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True)),
}


def embed(args):
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(args.dir, device="cuda")
    st.half()
    vocab = st[0].auto_model.config.vocab_size
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, vocab - 1, (args.batch, args.len), generator=g).cuda()
    feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    best = 1e30
    with torch.inference_mode():
        for r in range(6):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = st.forward(dict(feats))["sentence_embedding"]
            torch.cuda.synchronize()
            if r:
                best = min(best, time.perf_counter() - t0)
    print(f"sentence-transformers fp16 {args.dir} {args.batch}x{args.len}: {args.batch * args.len / best:.0f} tok/s "
          f"({best * 1e3:.1f} ms per batch, best of 5; out {tuple(out.shape)})", flush=True)


def decode(args):
    arch, spec = SHAPES[args.shape]
    cfg_cls, model_cls = (tf.Qwen2Config, tf.Qwen2ForCausalLM) if arch == "qwen2" else (tf.LlamaConfig,
                                                                                        tf.LlamaForCausalLM)
    cfg = cfg_cls(**spec, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(1)
    with torch.device("cuda"):
        model = model_cls(cfg).to(torch.bfloat16).eval()
    if args.compile:
        model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    g = torch.Generator().manual_seed(5)
    x = torch.randint(100, cfg.vocab_size - 1, (args.batch, args.prompt), generator=g).cuda()

    def gen(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False, cache_implementation="static",
                       eos_token_id=None, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        gen(args.tokens)  # warm-up (and compilation)
        t1 = min(gen(1) for _ in range(2))
        tn = min(gen(args.tokens) for _ in range(2))
    tps = args.batch * (args.tokens - 1) / (tn - t1)
    print(f"transformers generate static cache{' + compile' if args.compile else ''} {args.shape} bf16 "
          f"batch {args.batch}: {tps:.1f} tok/s decode (prefill {args.prompt}: {t1 * 1e3:.1f} ms)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("embed")
    e.add_argument("dir")
    e.add_argument("--batch", type=int, default=256)
    e.add_argument("--len", type=int, default=128)
    d = sub.add_parser("decode")
    d.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--prompt", type=int, default=128)
    d.add_argument("--tokens", type=int, default=128)
    d.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77
    embed(args) if args.mode == "embed" else decode(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
