/* Model loading: config + tokenizer + weights onto a backend.
 *
 * Tensor names are looked up in Hugging Face spelling (with the "bert." /
 * "model." prefixes some checkpoints carry) and in llama.cpp's GGUF spelling;
 * every shape is checked against the config before anything is converted.
 *
 * GGUF Q/K permutation. llama.cpp computes RoPE on llama-arch models in the
 * original Meta layout, rotating adjacent pairs (2i, 2i+1) of each head; its
 * HF converter therefore permutes the rows of q_proj / k_proj, per head:
 *   W.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(n_head*hd, in)
 * so GGUF row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i (j in {0,1}).
 * Our backend rotates HF-style halves (i, i + hd/2), so on load we invert it:
 * HF row h*hd + j*hd/2 + i <- GGUF row h*hd + 2i + j. K uses n_kv_head heads.
 * llama2.c checkpoints (stories260K) were trained in the Meta layout and are
 * written to GGUF unchanged, so the same inversion applies; the stories260K
 * greedy-decode test proves it. Qwen2 GGUF uses NEOX (half) rotation already
 * and is not permuted. */
#include "runtime/models/model_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/log.h"

enum {
    W_OPTIONAL = 1,  /* absent is fine: the tensor is left empty */
    W_VEC = 2,       /* 1-D in the file: (n) loaded as (1, n) */
    W_PERM_Q = 4,    /* undo GGUF's RoPE row permutation with n_head heads */
    W_PERM_K = 8,    /* ... with n_kv_head heads */
    W_EMBED = 16,    /* the token embedding table: embed op (and matmul when tied) */
};

typedef struct {
    qr_model *m;
    bool gguf;
    size_t staging_peak;  /* largest host buffer needed while loading */
    uint64_t type_bytes[QR_DTYPE_COUNT];        /* backend bytes per loaded type (int8: with scales) */
    int conv[QR_DTYPE_COUNT][QR_DTYPE_COUNT];   /* tensors converted [from][to] by the type choice */
    uint64_t file_bytes;                        /* file bytes of the tensors loaded */
} loader;

/* Finds the first candidate present. Candidates may hold one %d (the layer).
 * HF candidates are also tried with the "bert." and "model." prefixes. */
static const qr_wtensor *find_cand(const loader *L, const char *const *cands, int layer, char *name_out,
                                   size_t name_cap)
{
    static const char *const prefixes[] = {"", "bert.", "model."};
    char base[256], full[320];
    for (size_t c = 0; cands[c]; c++) {
        snprintf(base, sizeof base, cands[c], layer);
        size_t np = L->gguf ? 1 : sizeof prefixes / sizeof prefixes[0];
        for (size_t p = 0; p < np; p++) {
            snprintf(full, sizeof full, "%s%s", prefixes[p], base);
            const qr_wtensor *t = qr_wsrc_find(L->m->src, full);
            if (t) {
                snprintf(name_out, name_cap, "%s", full);
                return t;
            }
        }
    }
    snprintf(base, sizeof base, cands[0], layer);
    snprintf(name_out, name_cap, "%s", base);
    return NULL;
}

static void add_bytes(loader *L, const qr_tensor *t)
{
    uint64_t b = (uint64_t)t->rows * t->row_bytes;
    if (t->dtype == QR_I8)
        b += (uint64_t)t->rows * sizeof(float);
    L->m->weight_bytes += b;
    if ((unsigned)t->dtype < QR_DTYPE_COUNT)
        L->type_bytes[t->dtype] += b;
}

/* The type a matmul weight or token table of file type `st` and `cols`
 * columns is loaded as, for the model's --dtype `want`:
 * - f32/f16/bf16/int8: that type (as before: the backends make all four);
 * - q8_0/q4_k: that GGUF block type, quantized at load (quantize.c), where
 *   the backend computes with it and cols is whole blocks; else q8_0, else f32;
 * - as-stored: the file's type where the backend computes with it; Q2_K and
 *   Q3_K become Q4_K (no 2-3 bit kernels); a type the backend lacks becomes
 *   q8_0 (GGUF blocks: CUDA keeps Q8_0) or f32.
 * Every departure from `want` (or from the file type for as-stored) is
 * counted in L->conv and named on the load line. */
static qr_dtype pick_type(loader *L, qr_dtype st, int64_t cols, int flags)
{
    qr_model *m = L->m;
    qr_dtype want = m->dtype;
    if (want == QR_F32 || want == QR_F16 || want == QR_BF16 || want == QR_I8)
        return want;
    bool tied = (flags & W_EMBED) && m->cfg.tie_embeddings && m->cfg.arch != QR_ARCH_BERT;
#define OK_T(t) (qr_be_supports(m->be, (flags & W_EMBED) ? QR_BE_OP_EMBED : QR_BE_OP_MATMUL, (t)) &&          \
                 (!tied || qr_be_supports(m->be, QR_BE_OP_MATMUL, (t))) && cols % qr_dtype_block(t) == 0)
    qr_dtype t = want == QR_AS_STORED ? st : want;
    if (want == QR_AS_STORED && (t == QR_Q2_K || t == QR_Q3_K))
        t = QR_Q4_K;
    qr_dtype pick = OK_T(t) ? t : OK_T(QR_Q8_0) && (t == QR_Q4_K || qr_dtype_is_block(st)) ? QR_Q8_0 : QR_F32;
#undef OK_T
    qr_dtype from = want == QR_AS_STORED ? st : want;
    if (pick != from && (unsigned)from < QR_DTYPE_COUNT)
        L->conv[from][pick]++;
    return pick;
}

/* Loads one tensor: checks its shape is (rows, cols) ((cols) for W_VEC), undoes
 * the GGUF RoPE permutation if asked, converts to `want` on the backend. */
static int load_w(loader *L, const char *const *cands, int layer, int64_t rows, int64_t cols, qr_dtype want,
                  int flags, qr_tensor *out)
{
    qr_model *m = L->m;
    char name[320];
    const qr_wtensor *t = find_cand(L, cands, layer, name, sizeof name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (flags & W_OPTIONAL)
            return QR_OK;
        return qr_fail(QR_ENOTFOUND, "%s: tensor '%s' not found", m->path, name);
    }
    bool ok;
    if (flags & W_VEC)
        ok = (t->n_dims == 1 && t->shape[0] == cols) || (t->n_dims == 2 && t->shape[0] == 1 && t->shape[1] == cols);
    else
        ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!ok) {
        char found[96] = "(";
        for (int i = 0; i < t->n_dims && i < 4; i++)
            snprintf(found + strlen(found), sizeof found - strlen(found), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        snprintf(found + strlen(found), sizeof found - strlen(found), ")");
        if (flags & W_VEC)
            return qr_fail(QR_EFORMAT, "%s: tensor '%s': expected shape (%lld), found %s", t->file, name,
                           (long long)cols, found);
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': expected shape (%lld, %lld), found %s", t->file, name,
                       (long long)rows, (long long)cols, found);
    }
    if (flags & W_VEC)
        rows = 1;
    if (want == m->dtype && !(flags & W_VEC))
        want = pick_type(L, t->dtype, cols, flags);
    L->file_bytes += t->nbytes;
    const void *src = t->data;
    void *staged = NULL;
    int perm_heads = (flags & W_PERM_Q) ? m->cfg.n_head : (flags & W_PERM_K) ? m->cfg.n_kv_head : 0;
    if (perm_heads && L->gguf && m->cfg.arch == QR_ARCH_LLAMA) {
        /* Units permuted: rows of a matrix, or elements of a bias vector. */
        int64_t n_units = (flags & W_VEC) ? cols : rows;
        size_t ub = (flags & W_VEC) ? qr_dtype_row_bytes(t->dtype, 1) : qr_dtype_row_bytes(t->dtype, cols);
        int hd = m->cfg.head_dim, half = hd / 2;
        if (ub == 0 || t->nbytes != ub * (size_t)n_units || n_units != (int64_t)perm_heads * hd)
            return qr_fail(QR_EFORMAT, "%s: tensor '%s': cannot un-permute %lld rows of %s", t->file, name,
                           (long long)n_units, qr_dtype_name(t->dtype));
        staged = malloc(t->nbytes);
        if (!staged)
            return qr_fail(QR_ENOMEM, "%s: tensor '%s': %zu bytes", t->file, name, t->nbytes);
        const char *s = t->data;
        char *d = staged;
        for (int h = 0; h < perm_heads; h++)
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < half; i++)
                    memcpy(d + ((size_t)h * hd + (size_t)j * half + i) * ub, s + ((size_t)h * hd + 2 * i + j) * ub,
                           ub);
        src = staged;
        if (t->nbytes > L->staging_peak)
            L->staging_peak = t->nbytes;
    }
    int rc = m->be->ops->weight_load(m->be, src, t->dtype, rows, cols, want, staged == NULL, out);
    free(staged);
    if (rc) {
        memset(out, 0, sizeof *out);
        return qr_fail(rc, "%s: tensor '%s' (%s -> %s): %s", t->file, name, qr_dtype_name(t->dtype),
                       qr_dtype_name(want), qr_last_error());
    }
    add_bytes(L, out);
    return QR_OK;
}

#define CANDS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int load_bert(loader *L)
{
    qr_model *m = L->m;
    const qr_model_config *c = &m->cfg;
    int64_t d = c->d_model, ff = c->d_ff;
    qr_dtype wt = m->dtype;
    int rc;
    if ((rc = load_w(L, CANDS("embeddings.word_embeddings.weight", "token_embd.weight"), 0, c->vocab_size, d, wt,
                     W_EMBED, &m->tok_embd)) ||
        (rc = load_w(L, CANDS("embeddings.position_embeddings.weight", "position_embd.weight"), 0, c->max_pos, d,
                     QR_F32, 0, &m->pos_embd)) ||
        (rc = load_w(L, CANDS("embeddings.token_type_embeddings.weight", "token_types.weight"), 0,
                     c->type_vocab_size, d, QR_F32, 0, &m->type_embd)) ||
        (rc = load_w(L, CANDS("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma", "token_embd_norm.weight"),
                     0, 1, d, QR_F32, W_VEC, &m->embd_norm_w)) ||
        (rc = load_w(L, CANDS("embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta", "token_embd_norm.bias"), 0,
                     1, d, QR_F32, W_VEC, &m->embd_norm_b)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        qr_layer *y = &m->layers[l];
        if ((rc = load_w(L, CANDS("encoder.layer.%d.attention.self.query.weight", "blk.%d.attn_q.weight"), l, d, d,
                         wt, 0, &y->wq)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.self.query.bias", "blk.%d.attn_q.bias"), l, 1, d,
                         QR_F32, W_VEC, &y->bq)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.self.key.weight", "blk.%d.attn_k.weight"), l, d, d,
                         wt, 0, &y->wk)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.self.key.bias", "blk.%d.attn_k.bias"), l, 1, d,
                         QR_F32, W_VEC, &y->bk)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.self.value.weight", "blk.%d.attn_v.weight"), l, d, d,
                         wt, 0, &y->wv)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.self.value.bias", "blk.%d.attn_v.bias"), l, 1, d,
                         QR_F32, W_VEC, &y->bv)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.output.dense.weight", "blk.%d.attn_output.weight"), l,
                         d, d, wt, 0, &y->wo)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.output.dense.bias", "blk.%d.attn_output.bias"), l, 1,
                         d, QR_F32, W_VEC, &y->bo)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.output.LayerNorm.weight",
                                  "encoder.layer.%d.attention.output.LayerNorm.gamma", "blk.%d.attn_output_norm.weight"),
                         l, 1, d, QR_F32, W_VEC, &y->attn_norm_w)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.attention.output.LayerNorm.bias",
                                  "encoder.layer.%d.attention.output.LayerNorm.beta", "blk.%d.attn_output_norm.bias"),
                         l, 1, d, QR_F32, W_VEC, &y->attn_norm_b)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.intermediate.dense.weight", "blk.%d.ffn_up.weight"), l, ff, d,
                         wt, 0, &y->w_up)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.intermediate.dense.bias", "blk.%d.ffn_up.bias"), l, 1, ff,
                         QR_F32, W_VEC, &y->b_up)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.output.dense.weight", "blk.%d.ffn_down.weight"), l, d, ff, wt,
                         0, &y->w_down)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.output.dense.bias", "blk.%d.ffn_down.bias"), l, 1, d, QR_F32,
                         W_VEC, &y->b_down)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.output.LayerNorm.weight", "encoder.layer.%d.output.LayerNorm.gamma",
                                  "blk.%d.layer_output_norm.weight"),
                         l, 1, d, QR_F32, W_VEC, &y->ffn_norm_w)) ||
            (rc = load_w(L, CANDS("encoder.layer.%d.output.LayerNorm.bias", "encoder.layer.%d.output.LayerNorm.beta",
                                  "blk.%d.layer_output_norm.bias"),
                         l, 1, d, QR_F32, W_VEC, &y->ffn_norm_b)))
            return rc;
    }
    return QR_OK;
}

static int load_llama(loader *L)
{
    qr_model *m = L->m;
    const qr_model_config *c = &m->cfg;
    int64_t d = c->d_model, ff = c->d_ff, dq = (int64_t)c->n_head * c->head_dim,
            dkv = (int64_t)c->n_kv_head * c->head_dim;
    qr_dtype wt = m->dtype;
    int qb = c->qkv_bias ? 0 : W_OPTIONAL, ob = c->attn_out_bias ? 0 : W_OPTIONAL, mb = c->mlp_bias ? 0 : W_OPTIONAL;
    int rc;
    if ((rc = load_w(L, CANDS("model.embed_tokens.weight", "token_embd.weight"), 0, c->vocab_size, d, wt, W_EMBED,
                     &m->tok_embd)) ||
        (rc = load_w(L, CANDS("model.norm.weight", "output_norm.weight"), 0, 1, d, QR_F32, W_VEC, &m->out_norm)))
        return rc;
    if (c->tie_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head.owned = false;
        m->lm_head_tied = true;
    } else if ((rc = load_w(L, CANDS("lm_head.weight", "output.weight"), 0, c->vocab_size, d, wt, 0, &m->lm_head))) {
        return rc;
    }
    for (int l = 0; l < c->n_layer; l++) {
        qr_layer *y = &m->layers[l];
        if ((rc = load_w(L, CANDS("model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight"), l, 1, d,
                         QR_F32, W_VEC, &y->attn_norm_w)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight"), l, dq, d, wt,
                         W_PERM_Q, &y->wq)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight"), l, dkv, d, wt,
                         W_PERM_K, &y->wk)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight"), l, dkv, d, wt,
                         0, &y->wv)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight"), l, d, dq,
                         wt, 0, &y->wo)) ||
            (rc = load_w(L, CANDS("model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight"), l, 1,
                         d, QR_F32, W_VEC, &y->ffn_norm_w)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight"), l, ff, d, wt, 0,
                         &y->w_gate)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight"), l, ff, d, wt, 0,
                         &y->w_up)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight"), l, d, ff, wt, 0,
                         &y->w_down)))
            return rc;
        /* Biases: required when the config says so; loaded if present otherwise. */
        if ((rc = load_w(L, CANDS("model.layers.%d.self_attn.q_proj.bias", "blk.%d.attn_q.bias"), l, 1, dq, QR_F32,
                         W_VEC | W_PERM_Q | qb, &y->bq)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.k_proj.bias", "blk.%d.attn_k.bias"), l, 1, dkv, QR_F32,
                         W_VEC | W_PERM_K | qb, &y->bk)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.v_proj.bias", "blk.%d.attn_v.bias"), l, 1, dkv, QR_F32,
                         W_VEC | qb, &y->bv)) ||
            (rc = load_w(L, CANDS("model.layers.%d.self_attn.o_proj.bias", "blk.%d.attn_output.bias"), l, 1, d,
                         QR_F32, W_VEC | ob, &y->bo)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.gate_proj.bias", "blk.%d.ffn_gate.bias"), l, 1, ff, QR_F32,
                         W_VEC | mb, &y->b_gate)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.up_proj.bias", "blk.%d.ffn_up.bias"), l, 1, ff, QR_F32,
                         W_VEC | mb, &y->b_up)) ||
            (rc = load_w(L, CANDS("model.layers.%d.mlp.down_proj.bias", "blk.%d.ffn_down.bias"), l, 1, d, QR_F32,
                         W_VEC | mb, &y->b_down)))
            return rc;
    }
    return QR_OK;
}

int qr_rope_inv_freq(const qr_model_config *c, float *out)
{
    int half = c->head_dim / 2;
    if (c->head_dim <= 0 || c->head_dim % 2)
        return qr_fail(QR_EINVAL, "rope: head_dim %d must be positive and even", c->head_dim);
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < half; i++) {
        /* transformers computes base ** (arange(0, dim, 2).float() / dim) in float32 */
        float expo = (float)(2 * i) / (float)c->head_dim;
        double f = 1.0 / pow((double)c->rope_theta, (double)expo);
        if (c->rope_scaling == QR_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == QR_ROPE_LLAMA3) {
            double old = c->rope_orig_max_pos, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double low_wl = old / lo, high_wl = old / hi, wl = 2 * pi / f;
            if (wl > low_wl) {
                f /= c->rope_factor;
            } else if (wl >= high_wl) { /* medium band: interpolate */
                double smooth = (old / wl - lo) / (hi - lo);
                f = (1 - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        out[i] = (float)f;
    }
    return QR_OK;
}

int qr_model_estimate(const qr_model_config *c, qr_dtype dtype, int64_t n_ctx, int64_t n_seq, int64_t n_tok,
                      qr_mem_estimate *out)
{
    if (!c || !out || n_ctx < 0 || n_seq < 0 || n_tok < 0)
        return qr_fail(QR_EINVAL, "estimate: bad arguments");
    if (dtype != QR_F32 && dtype != QR_BF16 && dtype != QR_F16 && dtype != QR_I8 && dtype != QR_Q8_0 &&
        dtype != QR_Q4_K && dtype != QR_AS_STORED)
        return qr_fail(QR_EINVAL, "estimate: dtype %s: expected f32, bf16, f16, int8, q8_0, q4_k or as-stored",
                       qr_dtype_name(dtype));
    /* bytes per weight element; q8_0/q4_k: every matrix in whole blocks (the
     * loader falls back for others); as-stored: the types are the file's,
     * not the config's: counted at 0 here (weights = norms/biases only), the
     * callers take the tensor headers' bytes */
    double eb = dtype == QR_F32 ? 4 : dtype == QR_I8 ? 1 : dtype == QR_AS_STORED ? 0
              : qr_dtype_is_block(dtype) ? (double)qr_dtype_block_bytes(dtype) / qr_dtype_block(dtype) : 2;
    double d = c->d_model, ff = c->d_ff, V = c->vocab_size, L = c->n_layer;
    double dq = (double)c->n_head * c->head_dim, dkv = (double)c->n_kv_head * c->head_dim;
    double rows = 0, elems = 0, f32 = 0; /* matmul-weight rows (int8 scales), elements; f32 elements */
    bool bert = c->arch == QR_ARCH_BERT;
    /* per layer: q, k, v, o, (gate,) up, down */
    double n_ffn = bert ? 2 : 3;
    elems += L * (dq * d + 2 * dkv * d + d * dq + n_ffn * ff * d);
    rows += L * (dq + 2 * dkv + d + (n_ffn - 1) * ff + d);
    elems += V * d; /* token embeddings */
    rows += V;
    if (!bert && !c->tie_embeddings) {
        elems += V * d;
        rows += V;
    }
    if (bert) {
        f32 += (double)c->max_pos * d + (double)c->type_vocab_size * d + 2 * d;
        f32 += L * (dq + 2 * dkv + d + ff + d + 4 * d); /* biases + 2 LayerNorms */
    } else {
        f32 += L * 2 * d + d; /* RMSNorm weights */
        if (c->qkv_bias)
            f32 += L * (dq + 2 * dkv);
        if (c->attn_out_bias)
            f32 += L * d;
        if (c->mlp_bias)
            f32 += L * (2 * ff + d);
    }
    qr_mem_estimate e;
    e.weights = (uint64_t)(elems * eb + (dtype == QR_I8 ? rows * 4 : 0) + f32 * 4);
    e.kv_cache = bert ? 0 : (uint64_t)(2.0 * L * dkv * 4 * (double)n_ctx * (double)n_seq);
    double T = (double)n_tok, act;
    if (bert)
        act = T * (6 * d + ff) + (double)n_seq * d; /* x, tmp, q, k, v, att, ff; pooled */
    else
        act = T * (3 * d + 2 * dq + 2 * dkv + 2 * ff) + (double)n_seq * (d + V); /* + last rows, logits */
    e.workspace = (uint64_t)(act * 4);
    *out = e;
    return QR_OK;
}

void qr_model_type_bytes_str(const uint64_t *bytes, char *buf, size_t len)
{
    uint64_t b[QR_DTYPE_COUNT];
    memcpy(b, bytes, sizeof b);
    size_t used = 0;
    buf[0] = '\0';
    for (;;) { /* largest first */
        int best = -1;
        for (int d = 0; d < QR_DTYPE_COUNT; d++)
            if (b[d] && (best < 0 || b[d] > b[best]))
                best = d;
        if (best < 0)
            break;
        int n = snprintf(buf + used, len - used, "%s%s %.2f MiB", used ? ", " : "", qr_dtype_name((qr_dtype)best),
                         b[best] / (1024.0 * 1024.0));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
        b[best] = 0;
    }
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int qr_model_load(const char *path, const qr_model_opts *opts, qr_backend *be, qr_model **out)
{
    qr_model *m = NULL;
    int rc;
    if (!path || !opts || !be || !out)
        return qr_fail(QR_EINVAL, "qr_model_load: NULL argument");
    if (opts->dtype != QR_F32 && opts->dtype != QR_BF16 && opts->dtype != QR_F16 && opts->dtype != QR_I8 &&
        opts->dtype != QR_Q8_0 && opts->dtype != QR_Q4_K && opts->dtype != QR_AS_STORED)
        return qr_fail(QR_EINVAL, "%s: dtype %s: expected f32, bf16, f16, int8, q8_0, q4_k or as-stored", path,
                       qr_dtype_name(opts->dtype));
    m = calloc(1, sizeof *m);
    if (!m)
        return qr_fail(QR_ENOMEM, "%s: model", path);
    m->be = be;
    m->dtype = opts->dtype;
    snprintf(m->path, sizeof m->path, "%s", path);

    if ((rc = qr_wsrc_open(path, &m->src)))
        goto fail;
    const qr_gguf *g = qr_wsrc_gguf(m->src);
    if (g)
        rc = qr_config_from_gguf(g, &m->cfg);
    else
        rc = qr_config_load(path, &m->cfg);
    if (rc)
        goto fail;

    /* Tokenizer: optional (test fixtures ship none); any present one must load. */
    bool has_tok;
    if (g) {
        has_tok = qr_gguf_has(g, "tokenizer.ggml.model");
    } else {
        char tp[4200];
        if (is_dir(path)) {
            snprintf(tp, sizeof tp, "%s/tokenizer.json", path);
        } else {
            snprintf(tp, sizeof tp, "%s", path);
            char *sl = strrchr(tp, '/');
            snprintf(sl ? sl + 1 : tp, sizeof tp - (size_t)(sl ? sl + 1 - tp : 0), "tokenizer.json");
        }
        has_tok = is_file(tp);
    }
    if (has_tok) {
        const char *tpath = path;
        char dir[4096];
        if (!g && !is_dir(path)) {
            snprintf(dir, sizeof dir, "%s", path);
            char *sl = strrchr(dir, '/');
            if (sl)
                *sl = 0;
            else
                snprintf(dir, sizeof dir, ".");
            tpath = dir;
        }
        rc = g ? qr_tokenizer_load_gguf(g, &m->tok) : qr_tokenizer_load(tpath, &m->tok);
        if (rc == QR_EUNSUPPORTED) {
            /* e.g. a vocabulary type we do not implement: ids still work */
            QR_WARN("%s: tokenizer not usable (%s); only id-based calls are available", path, qr_last_error());
            m->tok = NULL;
            rc = QR_OK;
        } else if (rc) {
            goto fail;
        }
        if (m->tok && qr_tokenizer_n_vocab(m->tok) > m->cfg.vocab_size)
            QR_WARN("%s: tokenizer has %d tokens but the model only %d embeddings", path,
                    qr_tokenizer_n_vocab(m->tok), m->cfg.vocab_size);
    } else {
        QR_INFO("%s: no tokenizer found; only id-based calls are available", path);
    }

    m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = qr_fail(QR_ENOMEM, "%s: layers", path);
        goto fail;
    }
    loader L = {.m = m, .gguf = g != NULL};
    rc = m->cfg.arch == QR_ARCH_BERT ? load_bert(&L) : load_llama(&L);
    if (rc)
        goto fail;

    if (m->cfg.arch != QR_ARCH_BERT) {
        int half = m->cfg.head_dim / 2;
        m->inv_freq = malloc((size_t)half * sizeof(float));
        if (!m->inv_freq) {
            rc = qr_fail(QR_ENOMEM, "%s: inv_freq", path);
            goto fail;
        }
        if ((rc = qr_rope_inv_freq(&m->cfg, m->inv_freq)))
            goto fail;
        /* GGUF llama-3 scaling: per-frequency divisors in rope_freqs.weight */
        const qr_wtensor *rf = qr_wsrc_find(m->src, "rope_freqs.weight");
        if (rf) {
            int64_t n = rf->n_dims == 1 ? rf->shape[0] : -1;
            float *div = n == half ? malloc((size_t)half * sizeof(float)) : NULL;
            if (n != half) {
                rc = qr_fail(QR_EFORMAT, "%s: tensor 'rope_freqs.weight': expected shape (%d)", rf->file, half);
                goto fail;
            }
            if (!div) {
                rc = qr_fail(QR_ENOMEM, "%s: rope_freqs", path);
                goto fail;
            }
            if ((rc = qr_convert_to_f32(rf->dtype, rf->data, half, div))) {
                free(div);
                goto fail;
            }
            for (int i = 0; i < half; i++)
                m->inv_freq[i] /= div[i];
            free(div);
        }
    }

    {
        /* Peak: weights + the largest staging buffer during load; then in use,
         * weights + KV cache + the workspace of one forward pass. */
        const qr_model_config *c = &m->cfg;
        qr_mem_estimate e1, e;
        bool bert = c->arch == QR_ARCH_BERT;
        int64_t ctx = c->max_pos, tok = bert ? 8192 : 512;
        qr_model_estimate(c, m->dtype, 1, 1, 0, &e1);
        qr_model_estimate(c, m->dtype, ctx, 1, tok, &e);
        double mib = 1024.0 * 1024.0, load_peak = (double)m->weight_bytes + L.staging_peak,
               run_peak = (double)m->weight_bytes + e.kv_cache + e.workspace;
        char types[256], convs[512];
        qr_model_type_bytes_str(L.type_bytes, types, sizeof types);
        convs[0] = '\0';
        for (int a = 0; a < QR_DTYPE_COUNT; a++)
            for (int b = 0; b < QR_DTYPE_COUNT; b++)
                if (L.conv[a][b]) {
                    size_t u = strlen(convs);
                    snprintf(convs + u, sizeof convs - u, "%s%d %s tensor%s as %s", u ? ", " : "; converted: ",
                             L.conv[a][b], qr_dtype_name((qr_dtype)a), L.conv[a][b] > 1 ? "s" : "",
                             qr_dtype_name((qr_dtype)b));
                }
        QR_INFO("%s: %s, %d layers, d %d; weights %s: %.2f MiB on backend %s (%s; file tensors %.2f MiB)%s; "
                "peak memory: %.2f MiB while "
                "loading, %.2f MiB running %s%lld tokens (KV cache %.1f KiB per token, workspace %.2f MiB)",
                path, c->arch_name, c->n_layer, c->d_model, qr_dtype_name(m->dtype), m->weight_bytes / mib,
                be->ops->name, types, L.file_bytes / mib, convs, load_peak / mib, run_peak / mib,
                bert ? "batches of " : "one sequence of ", (long long)(bert ? tok : ctx), e1.kv_cache / 1024.0,
                e.workspace / mib);
    }
    *out = m;
    return QR_OK;
fail:
    qr_model_free(m);
    return rc;
}

static void free_t(qr_backend *be, qr_tensor *t)
{
    if (t->data || t->scale)
        qr_be_tensor_free(be, t);
    memset(t, 0, sizeof *t);
}

void qr_model_free(qr_model *m)
{
    if (!m)
        return;
    qr_backend *be = m->be;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layer; l++) {
            qr_layer *y = &m->layers[l];
            qr_tensor *ts[] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->bq, &y->bk, &y->bv, &y->bo,
                               &y->w_gate, &y->w_up, &y->w_down, &y->b_gate, &y->b_up, &y->b_down,
                               &y->attn_norm_w, &y->attn_norm_b, &y->ffn_norm_w, &y->ffn_norm_b};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
                free_t(be, ts[i]);
        }
        free(m->layers);
    }
    if (!m->lm_head_tied)
        free_t(be, &m->lm_head);
    free_t(be, &m->tok_embd);
    free_t(be, &m->pos_embd);
    free_t(be, &m->type_embd);
    free_t(be, &m->embd_norm_w);
    free_t(be, &m->embd_norm_b);
    free_t(be, &m->out_norm);
    free(m->inv_freq);
    qr_tokenizer_free(m->tok);
    qr_wsrc_close(m->src);
    free(m);
}

const qr_model_config *qr_model_cfg(const qr_model *m) { return &m->cfg; }
const qr_tokenizer *qr_model_tokenizer(const qr_model *m) { return m->tok; }
uint64_t qr_model_weight_bytes(const qr_model *m) { return m->weight_bytes; }
