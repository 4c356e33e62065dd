#!/usr/bin/python3
"""Independent float64 reference for quire's model parity tests.

A from-scratch PyTorch (CPU, float64) implementation of the forward passes of the
Hugging Face `transformers` classes quire mirrors, written from their documented
semantics (not importing or copying transformers):

  BertModel + sentence-transformers Pooling(mean) + Normalize
      embeddings = LayerNorm(word[id] + position[arange] + token_type[0])
      per layer (post-LN): a = LayerNorm(x + Wo.softmax(QK^T/sqrt(hd) + mask).V)
                           x = LayerNorm(a + W2.gelu_erf(W1.a + b1) + b2)
      pooling = sum(x * mask) / max(sum(mask), 1e-9); then x / max(||x||2, 1e-12)
  LlamaForCausalLM (also Mistral, Qwen2 = Llama + q/k/v bias)
      RMSNorm: x * rsqrt(mean(x^2) + eps) * w (computed in float32 by HF for
               half-precision models; here everything is float64)
      RoPE: rotate_half form, cos/sin of (pos * inv_freq) duplicated over both
            halves; inv_freq = theta^(-2i/d), with the "llama3" rope_scaling
            (_compute_llama3_parameters: wavelen thresholds and smooth blend)
      attention: causal, scale hd^-0.5, GQA by repeat_kv (head h uses kv head
                 h // (n_head / n_kv_head))
      MLP: down(silu(gate(x)) * up(x)); logits = lm_head(norm(x)), lm_head =
           embed_tokens when tie_word_embeddings
      greedy continuation: argmax of the last position, full recompute each step
      (no KV cache, so the cache path of the runtime is checked independently)

Commands
  ref_models.py gen OUTDIR      writes the parity fixtures (one directory per model:
                                config.json, model.safetensors, tokenizer files,
                                inputs + expected outputs in expected.json)
  ref_models.py check OUTDIR    reloads every fixture from disk and recomputes its
                                expected outputs (round-trip check of the files)
  ref_models.py sensitivity OUTDIR   how far plausible implementation mistakes (interleaved
                                RoPE, no llama3 scaling, wrong GQA grouping, no q/k/v bias,
                                tanh GELU, CLS pooling, ...) move each fixture's outputs
  ref_models.py selftest        cross-checks the reference against independent code
                                (torch.nn.TransformerEncoderLayer, scalar llama3 rule, ...)

Only numpy and torch (Debian python3-numpy, python3-torch) are needed:
  /usr/bin/python3 tools/reference/ref_models.py gen tests/fixtures/models
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
DT = torch.float64

# ---------------------------------------------------------------- safetensors

_ST_DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def save_safetensors(path, tensors):
    """tensors: list of (name, np.ndarray float32). Header padded to 8 bytes."""
    hdr = {"__metadata__": {"format": "pt"}}
    off = 0
    blobs = []
    for name, a in tensors:
        a = np.ascontiguousarray(a, dtype="<f4")
        b = a.tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        s, t = e["data_offsets"]
        raw = data[base + s:base + t]
        if e["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.dtype(_ST_DT[e["dtype"]]).newbyteorder("<"))
        out[name] = torch.tensor(a.astype(np.float64).reshape(e["shape"]), dtype=DT)
    return out


# ---------------------------------------------------------------- BERT

def bert_embed(cfg, W, seqs, pooling="mean", normalize=True):
    """seqs: list of token id lists (special tokens included). Runs them as one
    right-padded batch with an attention mask, as BertModel does. -> (n, d)."""
    n = len(seqs)
    L = max(len(s) for s in seqs)
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = d // nh
    eps = cfg["layer_norm_eps"]
    pad = cfg.get("pad_token_id", 0)
    ids = torch.full((n, L), pad, dtype=torch.long)
    mask = torch.zeros(n, L, dtype=DT)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (d,), W[p + ".weight"], W[p + ".bias"], eps)

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][torch.arange(L)][None]
         + W["embeddings.token_type_embeddings.weight"][0][None, None])
    x = ln(x, "embeddings.LayerNorm")
    # additive mask over keys: 0 for real tokens, finfo.min for padding (HF's extended mask)
    add_mask = (1.0 - mask)[:, None, None, :] * torch.finfo(DT).min
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def heads(t):
            return t.view(n, L, nh, hd).transpose(1, 2)  # (n, nh, L, hd)

        q = heads(lin(x, p + "attention.self.query"))
        k = heads(lin(x, p + "attention.self.key"))
        v = heads(lin(x, p + "attention.self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + add_mask
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(n, L, d)
        x = ln(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        if "gelu_tanh" in MUT:
            h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        else:
            h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))  # exact GELU ("gelu")
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    if "cls_pooling" in MUT:
        pooling = "cls"
    if pooling == "mean":
        pooled = (x * mask[..., None]).sum(1) / torch.clamp(mask.sum(1, keepdim=True), min=1e-9)
    elif pooling == "cls":
        pooled = x[:, 0]
    else:
        raise ValueError(pooling)
    if normalize:
        pooled = pooled / torch.clamp(pooled.norm(dim=1, keepdim=True), min=1e-12)
    return pooled


# ---------------------------------------------------------------- Llama family

def rope_inv_freq(cfg):
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    theta = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=DT) / hd)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "llama3":
            factor = rs["factor"]
            lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            lo_wl, hi_wl = old / lo, old / hi
            wl = 2 * math.pi / inv
            scaled = torch.where(wl > lo_wl, inv / factor, inv)
            smooth = (old / wl - lo) / (hi - lo)
            blended = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wl >= hi_wl) & (wl <= lo_wl)
            inv = torch.where(medium, blended, scaled)
        elif kind == "linear":
            inv = inv / rs["factor"]
        elif kind != "default":
            raise ValueError("rope_scaling %r not supported by the reference" % kind)
    return inv


MUT = set()  # deliberate deviations for the sensitivity command (empty = the real semantics)


def llama_logits(cfg, W, ids):
    """Logits (n, vocab) for every position of one sequence, full causal attention."""
    n = len(ids)
    d = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or d // nh
    eps = cfg["rms_norm_eps"]
    qwen2 = cfg["model_type"] == "qwen2"
    tied = cfg.get("tie_word_embeddings", False)

    def rms(x, w):
        e = eps * 100 if "eps_x100" in MUT else eps
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + e) * w

    def lin(x, p, bias=False):
        y = x @ W[p + ".weight"].T
        return y + W[p + ".bias"] if bias else y

    inv = rope_inv_freq(dict(cfg, rope_scaling=None) if "no_rope_scaling" in MUT else cfg)
    pos = torch.arange(n, dtype=DT)
    ang = pos[:, None] * inv[None]  # (n, hd/2)
    emb = torch.cat([ang, ang], dim=-1)
    if "interleaved_rope" in MUT:
        emb = ang.repeat_interleave(2, dim=-1)
    cos, sin = emb.cos(), emb.sin()  # (n, hd)

    def rotate_half(t):
        if "interleaved_rope" in MUT:  # GPT-J / GGUF pairing (2i, 2i+1)
            r = torch.stack([-t[..., 1::2], t[..., 0::2]], dim=-1).reshape(t.shape)
            return r
        return torch.cat([-t[..., hd // 2:], t[..., :hd // 2]], dim=-1)

    def rope(t):  # (heads, n, hd)
        return t * cos[None] + rotate_half(t) * sin[None]

    causal = torch.triu(torch.full((n, n), float("-inf"), dtype=DT), diagonal=1)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms(x, W[p + "input_layernorm.weight"])
        qb = qwen2 and "no_qkv_bias" not in MUT
        q = lin(h, p + "self_attn.q_proj", qb).view(n, nh, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj", qb).view(n, nkv, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj", qb).view(n, nkv, hd).transpose(0, 1)
        q, k = rope(q), rope(k)
        rep = nh // nkv  # repeat_kv: each kv head serves rep consecutive query heads
        if "gqa_modulo" in MUT:  # head h -> kv head h % n_kv (wrong grouping)
            k, v = k.repeat(rep, 1, 1), v.repeat(rep, 1, 1)
        else:
            k = k.repeat_interleave(rep, dim=0)
            v = v.repeat_interleave(rep, dim=0)
        s = q @ k.transpose(-1, -2) * hd ** -0.5 + causal
        a = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(n, nh * hd)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(torch.nn.functional.silu(g) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    return x @ head.T


def greedy(cfg, W, prompt, n_new):
    ids = list(prompt)
    margins = []
    for _ in range(n_new):
        last = llama_logits(cfg, W, ids)[-1]
        top = torch.topk(last, 2).values
        margins.append(float(top[0] - top[1]) / float(last.abs().max()))  # relative to max|logit|
        ids.append(int(torch.argmax(last)))
    return ids[len(prompt):], margins


# ---------------------------------------------------------------- fixtures

def bytes_to_unicode():
    """GPT-2 byte-level alphabet: printable bytes map to themselves, the rest to 256+k."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    m, k = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + k)
            k += 1
    return m


def special(tid, content):
    return {"id": tid, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def wordpiece_tokenizer(vocab_size):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks = list(specials)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    toks += chars + ["##" + c for c in chars]
    syll = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of",
            "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le"]
    i = 0
    while len(toks) < vocab_size:  # deterministic filler words and continuations
        a, b = syll[i % len(syll)], syll[(i // len(syll)) % len(syll)]
        w = a + b if (i // (len(syll) ** 2)) % 2 == 0 else "##" + a + b
        if i >= 2 * len(syll) ** 2:
            w = "w%d" % i
        if w not in toks:
            toks.append(w)
        i += 1
    vocab = {t: j for j, t in enumerate(toks)}
    single = [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(j, t) for j, t in enumerate(specials)],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair,
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def bpe_tokenizer(vocab_size, specials):
    """Byte-level BPE: 256 byte symbols, merges of frequent English pairs, then the
    special tokens at the top ids (like Llama-3 / Qwen2)."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    letters = "etaoinshrdlucmfwypvbgk"
    cands = ["\u0120" + c for c in letters] + [a + b for a in letters for b in letters]
    n_merge = vocab_size - 256 - len(specials)
    for c in cands[:n_merge]:
        a, b = (c[0], c[1:]) if c[0] == "\u0120" else (c[0], c[1])
        merges.append(a + " " + b)
        vocab[a + b] = len(vocab)
    assert len(vocab) == vocab_size - len(specials)
    added = []
    for t in specials:
        vocab[t] = len(vocab)
        added.append(special(vocab[t], t))
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


# Small random-weight models with the structure of real configurations.
BERT_MINILM = {
    "_note": "all-MiniLM-L6-v2 structure (BertModel, gelu, eps 1e-12, absolute positions, 2 token types), small dims",
    "architectures": ["BertModel"], "model_type": "bert", "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 64, "initializer_range": 0.02,
    "intermediate_size": 256, "layer_norm_eps": 1e-12, "max_position_embeddings": 128,
    "num_attention_heads": 4, "num_hidden_layers": 2, "pad_token_id": 0,
    "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": 1000,
}
LLAMA3 = {
    "_note": "Llama-3.1 structure: GQA 4:1, llama3 rope_scaling (original_max_position_embeddings shrunk to 64 so "
             "all three frequency bands are active at short positions), untied lm_head, two eos ids",
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "mlp_bias": False,
    "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4,
    "num_key_value_heads": 1, "num_hidden_layers": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64, "rope_type": "llama3"},
    "tie_word_embeddings": False, "vocab_size": 512, "bos_token_id": 509, "eos_token_id": [510, 511],
    "torch_dtype": "float32",
}
QWEN2 = {
    "_note": "Qwen2.5-0.5B structure: q/k/v bias, tied embeddings, GQA 7:1, theta 1e6, eps 1e-6; hidden 56 and "
             "intermediate 152 are not multiples of 16 on purpose (SIMD tails)",
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 56,
    "intermediate_size": 152, "num_attention_heads": 7, "num_key_value_heads": 1, "num_hidden_layers": 2,
    "max_position_embeddings": 512, "max_window_layers": 2, "sliding_window": 512, "use_sliding_window": False,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None, "tie_word_embeddings": True,
    "vocab_size": 512, "bos_token_id": 509, "eos_token_id": 510, "torch_dtype": "float32",
}
MISTRAL = {
    "_note": "Mistral-7B-v0.2+ structure: GQA 4:1, head_dim 8, theta 1e6, no sliding window, untied lm_head",
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_act": "silu", "hidden_size": 64,
    "intermediate_size": 224, "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 2,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "sliding_window": None,
    "tie_word_embeddings": False, "vocab_size": 512, "bos_token_id": 509, "eos_token_id": 510,
    "torch_dtype": "float32",
}


def make_bert_weights(cfg, rng):
    d, ff, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    T = []

    def nrm(shape, std):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def lnw(p):
        T.append((p + ".weight", (1.0 + nrm((d,), 0.1))))
        T.append((p + ".bias", nrm((d,), 0.1)))

    T.append(("embeddings.word_embeddings.weight", nrm((V, d), 0.5)))
    T.append(("embeddings.position_embeddings.weight", nrm((cfg["max_position_embeddings"], d), 0.5)))
    T.append(("embeddings.token_type_embeddings.weight", nrm((cfg["type_vocab_size"], d), 0.5)))
    lnw("embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        for m in ("query", "key", "value"):
            T.append((p + "attention.self.%s.weight" % m, nrm((d, d), 0.25 if m != "value" else 1 / 8)))
            T.append((p + "attention.self.%s.bias" % m, nrm((d,), 0.1)))
        T.append((p + "attention.output.dense.weight", nrm((d, d), 1 / math.sqrt(d))))
        T.append((p + "attention.output.dense.bias", nrm((d,), 0.1)))
        lnw(p + "attention.output.LayerNorm")
        T.append((p + "intermediate.dense.weight", nrm((ff, d), 1 / math.sqrt(d))))
        T.append((p + "intermediate.dense.bias", nrm((ff,), 0.1)))
        T.append((p + "output.dense.weight", nrm((d, ff), 1 / math.sqrt(ff))))
        T.append((p + "output.dense.bias", nrm((d,), 0.1)))
        lnw(p + "output.LayerNorm")
    T.append(("pooler.dense.weight", nrm((d, d), 1 / math.sqrt(d))))  # unused by pooling, saved by HF
    T.append(("pooler.dense.bias", nrm((d,), 0.1)))
    return T


def make_llama_weights(cfg, rng):
    d, ff, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = d // nh
    qwen2 = cfg["model_type"] == "qwen2"
    T = []

    def nrm(shape, std):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    # tied: a small embedding keeps the residual from being dominated by the input token
    # (a model that only repeats its input would not test the layers)
    tied = cfg.get("tie_word_embeddings", False)
    T.append(("model.embed_tokens.weight", nrm((V, d), 0.15 if tied else 1.0)))
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        T.append((p + "input_layernorm.weight", 1.0 + nrm((d,), 0.1)))
        # q/k a bit larger than 1/sqrt(d) so attention is peaked, not uniform
        T.append((p + "self_attn.q_proj.weight", nrm((nh * hd, d), 2 / math.sqrt(d))))
        T.append((p + "self_attn.k_proj.weight", nrm((nkv * hd, d), 2 / math.sqrt(d))))
        T.append((p + "self_attn.v_proj.weight", nrm((nkv * hd, d), 1 / math.sqrt(d))))
        if qwen2:
            T.append((p + "self_attn.q_proj.bias", nrm((nh * hd,), 0.5)))
            T.append((p + "self_attn.k_proj.bias", nrm((nkv * hd,), 0.5)))
            T.append((p + "self_attn.v_proj.bias", nrm((nkv * hd,), 0.5)))
        T.append((p + "self_attn.o_proj.weight", nrm((d, nh * hd), 1 / math.sqrt(nh * hd))))
        T.append((p + "post_attention_layernorm.weight", 1.0 + nrm((d,), 0.1)))
        T.append((p + "mlp.gate_proj.weight", nrm((ff, d), 1 / math.sqrt(d))))
        T.append((p + "mlp.up_proj.weight", nrm((ff, d), 1 / math.sqrt(d))))
        T.append((p + "mlp.down_proj.weight", nrm((d, ff), 1 / math.sqrt(ff))))
    T.append(("model.norm.weight", 1.0 + nrm((d,), 0.1)))
    if not tied:
        T.append(("lm_head.weight", nrm((V, d), 1 / math.sqrt(d) * 3)))
    return T


def to_torch(T):
    return {k: torch.tensor(v.astype(np.float64), dtype=DT) for k, v in T}


def write_json(path, obj, compact=False):
    with open(path, "w") as f:
        if compact:  # big float arrays: one line per top-level key
            f.write("{\n" + ",\n".join(json.dumps(k) + ": " + json.dumps(v, separators=(",", ":"))
                                       for k, v in obj.items()) + "\n}\n")
        else:
            json.dump(obj, f, indent=1)
            f.write("\n")


def floats(t):
    """float64 tensor -> nested lists of floats rounded to 9 significant digits
    (enough to hold float32 exactly; the tests compare at 1e-3 relative)."""
    def r(x):
        return [r(y) for y in x] if isinstance(x, list) else float("%.9g" % x)
    return r(t.tolist())


def gen_bert(out, name, cfg, seed):
    rng = np.random.default_rng(seed)
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    T = make_bert_weights(cfg, rng)
    save_safetensors(os.path.join(d, "model.safetensors"), T)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "tokenizer.json"), wordpiece_tokenizer(cfg["vocab_size"]))
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_json(os.path.join(d, "sentence_bert_config.json"), {"max_seq_length": 128, "do_lower_case": False})
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": cfg["hidden_size"], "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    # sequences of unequal lengths: [CLS] ... [SEP], ids from the whole vocabulary
    lens = [3, 17, 9, 40, 1 + 1, 64]
    seqs = []
    for n in lens:
        body = rng.integers(5, cfg["vocab_size"], size=max(n - 2, 0)).tolist()
        seqs.append([2] + body + [3])
    emb = bert_embed(cfg, to_torch(T), seqs)
    # each sequence alone must give the same vector (padding must not leak)
    for i, s in enumerate(seqs):
        alone = bert_embed(cfg, to_torch(T), [s])[0]
        assert torch.allclose(alone, emb[i], atol=1e-12), "padding leaks in the reference"
    write_json(os.path.join(d, "expected.json"), {
        "kind": "encoder", "reference": "tools/reference/ref_models.py (torch float64)", "seed": seed,
        "pooling": "mean", "normalize": True, "inputs": seqs, "embeddings": floats(emb)}, compact=True)


def gen_decoder(out, name, cfg, seed, prompt_len=12, n_new=16):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    eos = cfg["eos_token_id"] if isinstance(cfg["eos_token_id"], list) else [cfg["eos_token_id"]]
    # Re-draw until the greedy continuation is well separated from ties (top-2 gap at least
    # 3e-3 max|logit|, three times the logits tolerance) and never hits eos, so a runtime
    # within tolerance must reproduce it exactly.
    for attempt in range(100):
        rng = np.random.default_rng(seed + attempt)
        T = make_llama_weights(cfg, rng)
        W = to_torch(T)
        prompt = [cfg["bos_token_id"]] + rng.integers(0, 509, size=prompt_len - 1).tolist()
        cont, margins = greedy(cfg, W, prompt, n_new)
        if min(margins) > 3e-3 and not any(t in eos for t in cont) and len(set(cont)) > 3:
            break
    else:
        raise RuntimeError("no well-separated greedy continuation for " + name)
    logits = llama_logits(cfg, W, prompt)
    full = llama_logits(cfg, W, prompt + cont)
    save_safetensors(os.path.join(d, "model.safetensors"), T)
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "generation_config.json"),
               {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": False})
    write_json(os.path.join(d, "tokenizer.json"),
               bpe_tokenizer(cfg["vocab_size"], ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]))
    write_json(os.path.join(d, "expected.json"), {
        "kind": "decoder", "reference": "tools/reference/ref_models.py (torch float64)",
        "seed": seed + attempt, "prompt": prompt, "logits_all": floats(logits),
        "greedy": cont, "greedy_rel_margins": [round(m, 6) for m in margins],
        # logits at the last prompt position and at every generated position (prompt + greedy),
        # for the KV-cache decode path: row j = position prompt_len - 1 + j
        "logits_decode": floats(full[prompt_len - 1:])}, compact=True)


FIXTURES = [("bert_minilm", BERT_MINILM, 1001, "bert"), ("llama3", LLAMA3, 2001, "dec"),
            ("qwen2", QWEN2, 3001, "dec"), ("mistral", MISTRAL, 4001, "dec")]


def check(out):
    worst = 0.0
    for name, _, _, kind in FIXTURES:
        d = os.path.join(out, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        exp = json.load(open(os.path.join(d, "expected.json")))
        W = load_safetensors(os.path.join(d, "model.safetensors"))
        if kind == "bert":
            got = bert_embed(cfg, W, exp["inputs"])
            err = float((got - torch.tensor(exp["embeddings"])).abs().max())
        else:
            got = llama_logits(cfg, W, exp["prompt"])
            err = float((got - torch.tensor(exp["logits_all"])).abs().max())
            cont, _ = greedy(cfg, W, exp["prompt"], len(exp["greedy"]))
            assert cont == exp["greedy"], name + ": greedy differs"
        print("%-12s max|diff| %.3g" % (name, err))
        worst = max(worst, err)
    assert worst < 1e-6
    print("ok")


def sensitivity(out):
    """How far each plausible implementation mistake moves the committed fixtures'
    outputs, in the units the parity tests bound (1 - cosine; max|dlogit|/max|logit|)."""
    muts = {"bert": ["gelu_tanh", "cls_pooling"],
            "dec": ["interleaved_rope", "no_rope_scaling", "gqa_modulo", "no_qkv_bias", "eps_x100"]}
    for name, _, _, kind in FIXTURES:
        d = os.path.join(out, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        exp = json.load(open(os.path.join(d, "expected.json")))
        W = load_safetensors(os.path.join(d, "model.safetensors"))
        for m in muts[kind]:
            MUT.clear()
            MUT.add(m)
            if kind == "bert":
                got = bert_embed(cfg, W, exp["inputs"])
                want = torch.tensor(exp["embeddings"])
                cos = torch.nn.functional.cosine_similarity(got, want, dim=1).min()
                print("%-12s %-17s 1 - min cosine %.3g (test bound 1e-5), max|diff| %.3g (f32 test bound 5e-6)"
                      % (name, m, 1 - float(cos), float((got - want).abs().max())))
            else:
                want = torch.tensor(exp["logits_all"])
                got = llama_logits(cfg, W, exp["prompt"])
                rel = float((got - want).abs().max() / want.abs().max())
                print("%-12s %-17s max|dlogit|/max|logit| %.3g (test bound 1e-3)" % (name, m, rel))
    MUT.clear()


def selftest():
    """Cross-checks the reference against code it does not share:
    - BERT layers vs torch.nn.TransformerEncoderLayer (post-LN, exact GELU, key padding mask);
    - llama3 inv_freq vs a scalar transcription of the published Llama 3.1 rule;
    - rotate_half RoPE vs complex rotation of the pairs (i, i + d/2), and the
      relative-position property of q.k under RoPE;
    - causal masking of the decoders by prefix invariance."""
    rng = np.random.default_rng(7)
    cfg = dict(BERT_MINILM, num_hidden_layers=1)
    T = make_bert_weights(cfg, rng)
    W = to_torch(T)
    d, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    layer = torch.nn.TransformerEncoderLayer(d, nh, cfg["intermediate_size"], dropout=0.0, activation="gelu",
                                             layer_norm_eps=cfg["layer_norm_eps"], batch_first=True,
                                             norm_first=False, dtype=DT)
    p = "encoder.layer.0."
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat([W[p + "attention.self.%s.weight" % m]
                                                        for m in ("query", "key", "value")]))
        layer.self_attn.in_proj_bias.copy_(torch.cat([W[p + "attention.self.%s.bias" % m]
                                                      for m in ("query", "key", "value")]))
        layer.self_attn.out_proj.weight.copy_(W[p + "attention.output.dense.weight"])
        layer.self_attn.out_proj.bias.copy_(W[p + "attention.output.dense.bias"])
        layer.norm1.weight.copy_(W[p + "attention.output.LayerNorm.weight"])
        layer.norm1.bias.copy_(W[p + "attention.output.LayerNorm.bias"])
        layer.linear1.weight.copy_(W[p + "intermediate.dense.weight"])
        layer.linear1.bias.copy_(W[p + "intermediate.dense.bias"])
        layer.linear2.weight.copy_(W[p + "output.dense.weight"])
        layer.linear2.bias.copy_(W[p + "output.dense.bias"])
        layer.norm2.weight.copy_(W[p + "output.LayerNorm.weight"])
        layer.norm2.bias.copy_(W[p + "output.LayerNorm.bias"])
    layer.eval()
    seqs = [[2, 10, 20, 30, 3], [2, 40, 3], [2, 7, 8, 9, 10, 11, 12, 3]]
    L = max(map(len, seqs))
    ids = torch.zeros(len(seqs), L, dtype=torch.long)
    pad = torch.ones(len(seqs), L, dtype=torch.bool)
    for i, sq in enumerate(seqs):
        ids[i, :len(sq)] = torch.tensor(sq)
        pad[i, :len(sq)] = False
    x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:L][None]
         + W["embeddings.token_type_embeddings.weight"][0])
    x = torch.nn.functional.layer_norm(x, (d,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"],
                                       cfg["layer_norm_eps"])
    with torch.no_grad():
        y = layer(x, src_key_padding_mask=pad)
    m = (~pad).to(DT)[..., None]
    pooled = (y * m).sum(1) / m.sum(1)
    pooled = pooled / pooled.norm(dim=1, keepdim=True)
    err = float((pooled - bert_embed(cfg, W, seqs)).abs().max())
    print("bert layer vs torch.nn.TransformerEncoderLayer: max|diff| %.3g" % err)
    assert err < 1e-10

    rs = LLAMA3["rope_scaling"]
    hd = LLAMA3["hidden_size"] // LLAMA3["num_attention_heads"]
    want = []
    for i in range(0, hd, 2):
        f = 1.0 / LLAMA3["rope_theta"] ** (i / hd)
        wl = 2 * math.pi / f
        lo_wl = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
        hi_wl = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
        if wl < hi_wl:
            want.append(f)
        elif wl > lo_wl:
            want.append(f / rs["factor"])
        else:
            sm = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (
                rs["high_freq_factor"] - rs["low_freq_factor"])
            want.append((1 - sm) * f / rs["factor"] + sm * f)
    got = rope_inv_freq(LLAMA3)
    err = float((got - torch.tensor(want)).abs().max())
    n_mid = sum(1 for i in range(len(want)) if want[i] != 1.0 / LLAMA3["rope_theta"] ** (2 * i / hd)
                and abs(want[i] * rs["factor"] - 1.0 / LLAMA3["rope_theta"] ** (2 * i / hd)) > 1e-15)
    print("llama3 inv_freq vs scalar rule: max|diff| %.3g (%d of %d frequencies blended)" % (err, n_mid, len(want)))
    assert err < 1e-15 and n_mid >= 1

    # rotate_half RoPE == complex rotation of (x[i], x[i + d/2]) by pos * inv_freq[i]
    inv = rope_inv_freq(LLAMA3)
    q = torch.tensor(rng.normal(size=hd))
    k = torch.tensor(rng.normal(size=hd))

    def rope1(v, pos):
        ang = pos * inv
        c, s_ = torch.cat([ang, ang]).cos(), torch.cat([ang, ang]).sin()
        return v * c + torch.cat([-v[hd // 2:], v[:hd // 2]]) * s_

    z = torch.complex(q[:hd // 2], q[hd // 2:]) * torch.exp(1j * 5 * inv)
    err = float((torch.cat([z.real, z.imag]) - rope1(q, 5)).abs().max())
    rel = abs(float(rope1(q, 9) @ rope1(k, 4)) - float(rope1(q, 25) @ rope1(k, 20)))
    print("rope vs complex pairs (i, i+d/2): %.3g; relative-position invariance: %.3g" % (err, rel))
    assert err < 1e-12 and rel < 1e-12

    # causal: logits of a prefix do not depend on later tokens
    for c in (LLAMA3, QWEN2, MISTRAL):
        W = to_torch(make_llama_weights(c, np.random.default_rng(1)))
        ids = [509, 5, 6, 7, 8, 9, 10]
        a = llama_logits(c, W, ids)
        b = llama_logits(c, W, ids[:4])
        assert float((a[:4] - b).abs().max()) < 1e-12
    print("causal prefix invariance: ok")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "selftest":
        return selftest()
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check", "sensitivity"):
        sys.exit(__doc__)
    out = sys.argv[2]
    if sys.argv[1] == "sensitivity":
        return sensitivity(out)
    if sys.argv[1] == "check":
        return check(out)
    for name, cfg, seed, kind in FIXTURES:
        if kind == "bert":
            gen_bert(out, name, cfg, seed)
        else:
            gen_decoder(out, name, cfg, seed)
        print("wrote", os.path.join(out, name))
    check(out)


if __name__ == "__main__":
    main()
