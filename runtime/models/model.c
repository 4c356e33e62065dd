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
#include "runtime/dist/comm.h"
#include "runtime/dist/rank_pool.h"

/* Short names for the flags of model_internal.h in the tables below. */
#define W_OPTIONAL QR_W_OPTIONAL
#define W_VEC QR_W_VEC
#define W_PERM_Q QR_W_PERM_Q
#define W_PERM_K QR_W_PERM_K
#define W_EMBED QR_W_EMBED

typedef qr_loader loader;

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
 *   q8_0 (GGUF blocks) or f32.
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

/* Takes slice sl of t (rows x cols; for a vector, elements [off, off+n) of
 * its cols, ub bytes each) and, with zero_row, one more row of zeros: *src
 * then points at the slice (into the mapping when it is contiguous and no
 * row is added, else into *staged, malloc'd) and *rows / *cols are its shape. */
static int take_slice(loader *L, const qr_wtensor *t, const char *name, bool vec, const qr_wslice *sl, bool zero_row,
                      const void **src, void **staged, int64_t *rows, int64_t *cols)
{
    const char *base = t->data;
    *src = base;
    *staged = NULL;
    if (sl && sl->n > 0 && (sl->axis == 0 || vec)) {
        /* rows (a vector's elements): one contiguous range of the file */
        size_t ub = vec ? qr_dtype_row_bytes(t->dtype, 1) : qr_dtype_row_bytes(t->dtype, *cols);
        if (sl->off < 0 || sl->off + sl->n > (vec ? *cols : *rows) || ub == 0)
            return qr_fail(QR_EINVAL, "%s: tensor '%s': slice [%lld, +%lld) outside it", t->file, name,
                           (long long)sl->off, (long long)sl->n);
        *src = base + (size_t)sl->off * ub;
        if (vec)
            *cols = sl->n;
        else
            *rows = sl->n;
    } else if (sl && sl->n > 0) {
        /* columns: the same byte range of every row, read with the file's row stride */
        int blk = qr_dtype_block(t->dtype);
        if (blk <= 0 || sl->off % blk || sl->n % blk || sl->off < 0 || sl->off + sl->n > *cols)
            return qr_fail(QR_EUNSUPPORTED, "%s: tensor '%s' (%s): columns [%lld, +%lld) of %lld cannot be split "
                           "on its blocks of %d", t->file, name, qr_dtype_name(t->dtype), (long long)sl->off,
                           (long long)sl->n, (long long)*cols, blk);
        size_t rb = qr_dtype_row_bytes(t->dtype, *cols), ob = qr_dtype_row_bytes(t->dtype, sl->off),
               nb = qr_dtype_row_bytes(t->dtype, sl->n);
        char *d = malloc((size_t)*rows * nb + (zero_row ? nb : 0));
        if (!d)
            return qr_fail(QR_ENOMEM, "%s: tensor '%s': column slice", t->file, name);
        for (int64_t r = 0; r < *rows; r++)
            memcpy(d + (size_t)r * nb, base + (size_t)r * rb + ob, nb);
        *src = *staged = d;
        *cols = sl->n;
    }
    if (zero_row) {
        /* all-zero bytes are 0.0 in every storage type (float or ggml blocks, whose scales are then 0) */
        size_t rb = qr_dtype_row_bytes(t->dtype, *cols), nb = (size_t)*rows * rb;
        char *d = *staged ? realloc(*staged, nb + rb) : malloc(nb + rb);
        if (!d)
            return qr_fail(QR_ENOMEM, "%s: tensor '%s': zero row", t->file, name);
        if (!*staged)
            memcpy(d, *src, nb);
        memset(d + nb, 0, rb);
        *src = *staged = d;
        *rows += 1;
    }
    if (*staged && (size_t)*rows * qr_dtype_row_bytes(t->dtype, *cols) > L->staging_peak)
        L->staging_peak = (size_t)*rows * qr_dtype_row_bytes(t->dtype, *cols);
    return QR_OK;
}

/* GGUF Q/K rows back to HF's half-rotation order (see the top of this file),
 * for n_units rows (or vector elements) of ub bytes forming whole heads. */
static int unpermute(loader *L, const qr_wtensor *t, const char *name, const void *src, int64_t n_units, size_t ub,
                     void **out)
{
    int hd = L->m->cfg.head_dim, half = hd / 2;
    if (ub == 0 || n_units % hd)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': cannot un-permute %lld rows of %s", t->file, name,
                       (long long)n_units, qr_dtype_name(t->dtype));
    char *d = malloc((size_t)n_units * ub);
    if (!d)
        return qr_fail(QR_ENOMEM, "%s: tensor '%s': %zu bytes", t->file, name, (size_t)n_units * ub);
    const char *s = src;
    for (int64_t h = 0; h < n_units / hd; h++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < half; i++)
                memcpy(d + ((size_t)h * hd + (size_t)j * half + i) * ub, s + ((size_t)h * hd + 2 * i + j) * ub, ub);
    if ((size_t)n_units * ub > L->staging_peak)
        L->staging_peak = (size_t)n_units * ub;
    *out = d;
    return QR_OK;
}

static int check_shape(const qr_wtensor *t, const char *name, int64_t rows, int64_t cols, bool vec)
{
    bool ok;
    if (vec)
        ok = (t->n_dims == 1 && t->shape[0] == cols) || (t->n_dims == 2 && t->shape[0] == 1 && t->shape[1] == cols);
    else
        ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (ok)
        return QR_OK;
    char found[96] = "(";
    for (int i = 0; i < t->n_dims && i < 4; i++)
        snprintf(found + strlen(found), sizeof found - strlen(found), "%s%lld", i ? ", " : "",
                 (long long)t->shape[i]);
    snprintf(found + strlen(found), sizeof found - strlen(found), ")");
    if (vec)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': expected shape (%lld), found %s", t->file, name,
                       (long long)cols, found);
    return qr_fail(QR_EFORMAT, "%s: tensor '%s': expected shape (%lld, %lld), found %s", t->file, name,
                   (long long)rows, (long long)cols, found);
}

int qr_load_w(loader *L, const char *const *cands, int layer, int64_t rows, int64_t cols, const qr_wslice *sl,
              qr_dtype want, int flags, qr_tensor *out)
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
    bool vec = flags & W_VEC;
    int rc = check_shape(t, name, rows, cols, vec);
    if (rc)
        return rc;
    if (vec)
        rows = 1;
    const void *src;
    void *staged = NULL, *perm = NULL;
    if ((rc = take_slice(L, t, name, vec, sl, flags & QR_W_ZERO_ROW, &src, &staged, &rows, &cols)))
        goto out;
    if (want == m->dtype && !(flags & W_VEC))
        want = pick_type(L, t->dtype, cols, flags);
    /* the file bytes this rank reads (a slice: its rows x columns) */
    L->file_bytes += sl ? (uint64_t)rows * qr_dtype_row_bytes(t->dtype, cols) : t->nbytes;
    if ((flags & (W_PERM_Q | W_PERM_K)) && L->gguf && m->cfg.arch == QR_ARCH_LLAMA) {
        /* Units permuted: rows of a matrix, or elements of a bias vector. */
        int64_t n_units = vec ? cols : rows;
        size_t ub = vec ? qr_dtype_row_bytes(t->dtype, 1) : qr_dtype_row_bytes(t->dtype, cols);
        if ((rc = unpermute(L, t, name, src, n_units, ub, &perm)))
            goto out;
        src = perm;
    }
    rc = m->be->ops->weight_load(m->be, src, t->dtype, rows, cols, want, !staged && !perm, out);
    if (rc) {
        memset(out, 0, sizeof *out);
        rc = qr_fail(rc, "%s: tensor '%s' (%s -> %s): %s", t->file, name, qr_dtype_name(t->dtype),
                     qr_dtype_name(want), qr_last_error());
        goto out;
    }
    add_bytes(L, out);
    /* Converted or copied (not the mapping itself, which small as-stored and
     * same-type loads alias): the file's pages read to make it are dropped,
     * so the process holds the weights once (tests/unit/cli/estimate_peak.sh
     * measures the peak). */
    if ((const char *)out->data < (const char *)t->data || (const char *)out->data >= (const char *)t->data + t->nbytes)
        qr_wsrc_release(m->src, t);
out:
    free(staged);
    free(perm);
    return rc;
}

/* Whole tensors (the encoder's). */
static int load_w(loader *L, const char *const *cands, int layer, int64_t rows, int64_t cols, qr_dtype want,
                  int flags, qr_tensor *out)
{
    return qr_load_w(L, cands, layer, rows, cols, NULL, want, flags, out);
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

/* Loads the whole model (n = 1) or rank `rank` of n's shard on be; a shard
 * skips the tokenizer (the group holds it). */
static int load_one(const char *path, const qr_model_opts *opts, qr_backend *be, int rank, int n, qr_model **out)
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

    if (n > 1 && (rc = qr_shard_plan(&m->cfg, rank, n, &m->sh))) {
        rc = qr_fail(rc, "%s: %s", path, qr_last_error());
        goto fail;
    }
    if (n > 1 && m->cfg.arch == QR_ARCH_BERT) {
        rc = qr_fail(QR_EUNSUPPORTED, "%s: tensor parallelism is for decoders (this model is %s)", path,
                     m->cfg.arch_name);
        goto fail;
    }

    /* Tokenizer: optional (test fixtures ship none); any present one must load. */
    bool has_tok;
    if (n > 1 && rank > 0) {
        has_tok = false;
    } else if (g) {
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
    } else if (rank == 0) {
        QR_INFO("%s: no tokenizer found; only id-based calls are available", path);
    }

    m->layers = calloc((size_t)m->cfg.n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = qr_fail(QR_ENOMEM, "%s: layers", path);
        goto fail;
    }
    loader L = {.m = m, .gguf = g != NULL};
    rc = m->cfg.arch == QR_ARCH_BERT ? load_bert(&L) : qr_load_decoder(&L);
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
        int64_t ctx = c->max_pos, tok = bert ? 8192 : QR_PREFILL_CHUNK;
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
        if (n > 1)
            QR_INFO("%s: tensor-parallel rank %d of %d: %d heads, %d KV heads (from %d), FFN %d, vocabulary "
                    "rows %d..%d; weights %.2f MiB on backend %s (%s)%s", path, rank, n, m->sh.n_head,
                    m->sh.n_kv_head, m->sh.kv_head0, m->sh.d_ff, m->sh.vocab0, m->sh.vocab0 + m->sh.vocab - 1,
                    m->weight_bytes / mib, be->ops->name, types, convs);
        else
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

int qr_model_load(const char *path, const qr_model_opts *opts, qr_backend *be, qr_model **out)
{
    return load_one(path, opts, be, 0, 1, out);
}

int qr_model_load_tp(const char *path, const qr_model_opts *opts, qr_backend *const *bes, int n, qr_model **out)
{
    if (!path || !opts || !bes || !out)
        return qr_fail(QR_EINVAL, "qr_model_load_tp: NULL argument");
    if (n < 1 || n > QR_TP_MAX)
        return qr_fail(QR_EINVAL, "%s: tensor parallelism over %d ranks (1..%d)", path, n, QR_TP_MAX);
    if (n == 1)
        return qr_model_load(path, opts, bes[0], out);
    qr_model *g = calloc(1, sizeof *g);
    int rc;
    if (!g || !(g->ranks = calloc((size_t)n, sizeof *g->ranks))) {
        free(g);
        return qr_fail(QR_ENOMEM, "%s: model group", path);
    }
    g->tp = n;
    /* every rank or none: a rank that fails frees the ranks loaded before it */
    for (int r = 0; r < n; r++)
        if ((rc = load_one(path, opts, bes[r], r, n, &g->ranks[r]))) {
            int dev = qr_backend_cuda_device(bes[r], NULL);
            char on[32] = "";
            if (dev >= 0)
                snprintf(on, sizeof on, " on GPU cuda:%d", dev);
            rc = qr_fail(rc, "tensor-parallel rank %d of %d (backend %s%s): %s", r, n, bes[r]->ops->name, on,
                         qr_last_error());
            goto fail;
        }
    if ((rc = qr_comm_create_for(bes, n, &g->comm, NULL)) || (rc = qr_rank_pool_create(n, &g->pool))) {
        rc = qr_fail(rc, "%s: tensor parallelism over %d ranks: %s", path, n, qr_last_error());
        goto fail;
    }
    qr_model *r0 = g->ranks[0];
    g->cfg = r0->cfg;
    g->be = r0->be;
    g->dtype = r0->dtype;
    g->tok = r0->tok; /* the group owns the tokenizer */
    r0->tok = NULL;
    snprintf(g->path, sizeof g->path, "%s", r0->path);
    for (int r = 0; r < n; r++)
        g->weight_bytes += g->ranks[r]->weight_bytes;
    *out = g;
    return QR_OK;
fail:
    qr_model_free(g);
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
    qr_rank_pool_free(m->pool); /* before the ranks: the NCCL communicator uses their streams */
    qr_comm_destroy(m->comm);
    m->comm = NULL;
    for (int r = 0; m->ranks && r < m->tp; r++) {
        qr_backend *rb = m->ranks[r] ? m->ranks[r]->be : NULL;
        qr_model_free(m->ranks[r]);
        if (m->owns_backends)
            qr_backend_destroy(rb);
    }
    free(m->ranks);
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
void qr_model_own_backends(qr_model *m)
{
    if (m->tp > 1)
        m->owns_backends = true;
}

void qr_model_comm_stats(qr_model *m, qr_comm_stats *out, bool reset)
{
    memset(out, 0, sizeof *out);
    if (!m->comm)
        return;
    *out = m->comm->stats;
    if (reset)
        memset(&m->comm->stats, 0, sizeof m->comm->stats);
}

int qr_model_tp(const qr_model *m) { return m->tp > 1 ? m->tp : 1; }

uint64_t qr_model_rank_weight_bytes(const qr_model *m, int rank)
{
    if (m->tp > 1)
        return rank >= 0 && rank < m->tp ? m->ranks[rank]->weight_bytes : 0;
    return rank == 0 ? m->weight_bytes : 0;
}
