#!/usr/bin/env python3
"""Random-weight models of real configurations, written with transformers'
save_pretrained (and sentence-transformers' module files for the
encoders), for the parity checks and the embedding benchmarks of
bench/gpu/run.sh. The configurations are copied from the public
config.json files (fields a loader reads); nothing is downloaded.

  make_models.py OUTDIR [--with-8b] [--only NAME,NAME...]

Encoders get a synthetic WordPiece vocab.txt (special tokens + w<i>) so
sentence-transformers can build its tokenizer; quire reads token ids only.
Decoders are saved in float32 (parity in f32 and bf16 starts from the same
numbers). --with-8b also writes the Llama-3-8B shape (32 GB in f32:
only where the disk allows)."""
import json
import os
import sys

import torch
import transformers as tf

BERT = {
    "minilm-l6": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                      vocab_size=30522, max_position_embeddings=512, pooling="mean", normalize=True),
    "bge-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                     vocab_size=30522, max_position_embeddings=512, pooling="cls", normalize=True),
}

LLAMA = {
    "qwen2.5-0.5b": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                   max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                                   tie_word_embeddings=True)),
    "llama3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                                  max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                                  tie_word_embeddings=True, head_dim=64,
                                  rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                "original_max_position_embeddings": 8192,
                                                "rope_type": "llama3"})),
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                   max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                                   tie_word_embeddings=True)),
}
LLAMA_8B = ("llama", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                          num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
                          rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False))


def write_vocab(path, n):
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with open(path, "w") as f:
        for i in range(n):
            f.write((special[i] if i < len(special) else f"w{i}") + "\n")


def make_bert(out, name, spec):
    d = os.path.join(out, name)
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    cfg = tf.BertConfig(**{k: v for k, v in spec.items() if k not in ("pooling", "normalize")},
                        hidden_act="gelu", type_vocab_size=2, layer_norm_eps=1e-12)
    torch.manual_seed(1)
    model = tf.BertModel(cfg, add_pooling_layer=False).eval()
    model.save_pretrained(d, safe_serialization=True)
    write_vocab(os.path.join(d, "vocab.txt"), cfg.vocab_size)
    tok = tf.BertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(d)
    # sentence-transformers layout: Transformer -> Pooling -> Normalize
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if spec["normalize"]:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump(mods, f, indent=2)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": cfg.hidden_size,
                   "pooling_mode_cls_token": spec["pooling"] == "cls",
                   "pooling_mode_mean_tokens": spec["pooling"] == "mean",
                   "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 512, "do_lower_case": False}, f)
    return d


def make_llama(out, name, arch, spec):
    d = os.path.join(out, name)
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    cls_cfg, cls_model = (tf.Qwen2Config, tf.Qwen2ForCausalLM) if arch == "qwen2" else (tf.LlamaConfig,
                                                                                        tf.LlamaForCausalLM)
    cfg = cls_cfg(**spec, hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="float32")
    torch.manual_seed(1)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = cls_model(cfg)
    model.eval().to("cpu").save_pretrained(d, safe_serialization=True, max_shard_size="100GB")
    return d


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    out = sys.argv[1]
    only = None  # --only a,b: just those (bench/gpu/session.sh keeps to the small ones)
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
        unknown = only - set(BERT) - set(LLAMA) - {"llama3-8b"}
        if unknown:
            print("make_models.py: unknown model(s):", ", ".join(sorted(unknown)), file=sys.stderr)
            return 2
    os.makedirs(out, exist_ok=True)
    for name, spec in BERT.items():
        if only is None or name in only:
            print("wrote", make_bert(out, name, spec), flush=True)
    for name, (arch, spec) in LLAMA.items():
        if only is None or name in only:
            print("wrote", make_llama(out, name, arch, spec), flush=True)
    if "--with-8b" in sys.argv:
        print("wrote", make_llama(out, "llama3-8b", *LLAMA_8B), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
