#!/usr/bin/env python3
"""Random-weight Llama-architecture GGUF files for the quantized-weights anchor benchmark
(bench/quant/run.sh), written with the `gguf` package (GGUFWriter; Q8_0 through gguf.quants).

  make_gguf.py OUTDIR SHAPE TYPE      SHAPE: smollm2-135m | qwen0.5b;  TYPE: F16 | Q8_0

Shapes (the issue's): both with a 32000-token SentencePiece-style vocabulary (<unk>, <s>, </s>,
256 byte tokens, then filler pieces) and tied embeddings (no output.weight: token_embd is the
LM head, as in both real models):
  smollm2-135m: hidden 576, 30 layers, 9 / 3 heads (head 64), FFN 1536, rope base 1e5
  qwen0.5b:     hidden 896, 24 layers, 14 / 2 heads (head 64), FFN 4864, rope base 1e6
                (Qwen2.5-0.5B's sizes as a plain Llama: no q/k/v biases)
Weights: normal(0, 0.02) from numpy's default_rng(seed 1), norms 1. F16 stores every 2-D
tensor as float16; Q8_0 quantizes every 2-D tensor with gguf.quants.quantize (llama.cpp's
reference Q8_0 rounding). Norms stay F32. Q4_K_M is not written here (gguf.quants has no Q4_K
quantizer): run.sh makes it from the F16 file with llama.cpp's llama-quantize.
Output: OUTDIR/SHAPE-TYPE.gguf (kept when it already exists).
"""
import os
import sys

import numpy as np
import gguf

SHAPES = {
    "smollm2-135m": dict(hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, ctx=8192, rope=1e5),
    "qwen0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, ffn=4864, ctx=32768, rope=1e6),
}
VOCAB = 32000


def vocab():
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE] * 256
    n_fill = VOCAB - len(toks)
    toks += ["\u2581w%d" % i for i in range(n_fill)]
    types += [gguf.TokenType.NORMAL] * n_fill
    scores = [0.0] * 259 + [-float(i) for i in range(n_fill)]
    return toks, scores, types


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in SHAPES or sys.argv[3] not in ("F16", "Q8_0"):
        raise SystemExit(__doc__)
    out, shape, qtype = sys.argv[1:]
    s = SHAPES[shape]
    path = os.path.join(out, "%s-%s.gguf" % (shape, qtype))
    if os.path.exists(path):
        print(path, "exists")
        return
    rng = np.random.default_rng(1)
    h, hd = s["hidden"], s["hidden"] // s["heads"]
    w = gguf.GGUFWriter(path + ".tmp", "llama")
    w.add_name("random %s %s" % (shape, qtype))
    w.add_context_length(s["ctx"])
    w.add_embedding_length(h)
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(s["rope"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(VOCAB)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if qtype == "F16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    toks, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def mat(name, rows, cols):
        a = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02)
        if qtype == "F16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def norm(name):
        w.add_tensor(name, np.ones(h, dtype=np.float32))

    mat("token_embd.weight", VOCAB, h)
    norm("output_norm.weight")
    kv = s["kv_heads"] * hd
    for i in range(s["layers"]):
        b = "blk.%d." % i
        norm(b + "attn_norm.weight")
        mat(b + "attn_q.weight", h, h)
        mat(b + "attn_k.weight", kv, h)
        mat(b + "attn_v.weight", kv, h)
        mat(b + "attn_output.weight", h, h)
        norm(b + "ffn_norm.weight")
        mat(b + "ffn_gate.weight", s["ffn"], h)
        mat(b + "ffn_up.weight", s["ffn"], h)
        mat(b + "ffn_down.weight", h, s["ffn"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.rename(path + ".tmp", path)
    print(path)


if __name__ == "__main__":
    main()
