/* The decoder's per-architecture block: which tensors a Llama-family model
 * has (one table: names, shapes, how tensor parallelism splits them) and the
 * forward pass over them. The decoder state (slots, KV cache, activation
 * buffers, graphs, batching) is decoder.c's; a new architecture or a new way
 * to split changes this file.
 *
 * Architectures served by the Llama table: llama (Llama 2/3, SmolLM2,
 * TinyLlama), mistral (the same tensors and block; config.c maps it to
 * QR_ARCH_LLAMA) and qwen2 (the same names plus q/k/v biases, which the table
 * marks as required by cfg.qkv_bias, and usually tied embeddings). gemma3 is
 * not known to config.c yet.
 *
 *   x = embed(ids)
 *   per layer: h = RMSNorm(x); q,k,v = h.Wq/Wk/Wv (+bias); RoPE(q, k);
 *              K/V appended to the cache; x += Attn(q, K, V).Wo
 *              h = RMSNorm(x); x += (silu(h.Wg) * h.Wu).Wd
 *   logits = RMSNorm(x_last) . W_lm^T   (only each sequence's last row)
 *
 * Tensor parallelism (Megatron, as vLLM's llama.py): Wq/Wk/Wv split by rows
 * (heads; K/V by KV head, replicated when the ranks outnumber them), Wo split
 * by columns (row-parallel: each rank's product is a partial sum, all-reduced);
 * Wg/Wu by rows, Wd by columns (all-reduced); embedding and LM head by
 * vocabulary rows (the embedding's partial rows are all-reduced; the logits
 * stay split and the decoder merges candidates); norms replicated; the
 * output biases of Wo and Wd are held by rank 0 only, so the sum adds them
 * once. Precision: f32 / f16 / bf16 slices hold exactly the whole model's
 * values; with int8 (per-output-row scales quantized at load) a column slice
 * of Wo / Wd gets the scale of its own part of the row, so TP > 1 rounds
 * those weights differently from TP = 1 (as accurately or more). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model_internal.h"

/* Sizes a table entry names (whole model; the split picks the rank's part). */
enum { DIM_1, DIM_D, DIM_Q, DIM_KV, DIM_FF, DIM_V };
/* How an entry is split over ranks. */
enum {
    SPLIT_NONE,   /* replicated */
    SPLIT_Q,      /* rows (vector elements) by query head */
    SPLIT_KV,     /* rows (vector elements) by KV head */
    SPLIT_FF,     /* rows (vector elements) by FFN column */
    SPLIT_Q_COL,  /* columns by query head (row-parallel Wo) */
    SPLIT_FF_COL, /* columns by FFN column (row-parallel Wd) */
    SPLIT_VOCAB,  /* rows by vocabulary id */
    SPLIT_RANK0,  /* rank 0 holds it whole, the others nothing (biases after a row-parallel product) */
};
/* When an optional entry is required. */
enum { NEED_ALWAYS, NEED_QKV_BIAS, NEED_O_BIAS, NEED_MLP_BIAS, NEED_UNTIED };

typedef struct {
    const char *hf, *gguf; /* names; per-layer ones hold one %d */
    bool layer;            /* in qr_layer (else in qr_model) */
    size_t off;            /* offsetof the qr_tensor */
    unsigned char rows, cols, split, need;
    bool mat;              /* matmul weight at the model's dtype (else f32) */
    int flags;             /* QR_W_VEC, QR_W_PERM_Q/K */
} wspec;

#define M_(f) false, offsetof(qr_model, f)
#define L_(f) true, offsetof(qr_layer, f)

/* The Llama family (llama, mistral, qwen2): HF name, GGUF name, where,
 * shape, split, when required, weight type, flags. */
static const wspec llama_tensors[] = {
    {"model.embed_tokens.weight", "token_embd.weight", M_(tok_embd), DIM_V, DIM_D, SPLIT_VOCAB, NEED_ALWAYS, true, QR_W_EMBED},
    {"model.norm.weight", "output_norm.weight", M_(out_norm), DIM_1, DIM_D, SPLIT_NONE, NEED_ALWAYS, false, QR_W_VEC},
    {"lm_head.weight", "output.weight", M_(lm_head), DIM_V, DIM_D, SPLIT_VOCAB, NEED_UNTIED, true, 0},
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", L_(attn_norm_w), DIM_1, DIM_D, SPLIT_NONE,
     NEED_ALWAYS, false, QR_W_VEC},
    {"model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", L_(wq), DIM_Q, DIM_D, SPLIT_Q, NEED_ALWAYS,
     true, QR_W_PERM_Q},
    {"model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", L_(wk), DIM_KV, DIM_D, SPLIT_KV, NEED_ALWAYS,
     true, QR_W_PERM_K},
    {"model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", L_(wv), DIM_KV, DIM_D, SPLIT_KV, NEED_ALWAYS,
     true, 0},
    {"model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", L_(wo), DIM_D, DIM_Q, SPLIT_Q_COL,
     NEED_ALWAYS, true, 0},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", L_(ffn_norm_w), DIM_1, DIM_D,
     SPLIT_NONE, NEED_ALWAYS, false, QR_W_VEC},
    {"model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", L_(w_gate), DIM_FF, DIM_D, SPLIT_FF,
     NEED_ALWAYS, true, 0},
    {"model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", L_(w_up), DIM_FF, DIM_D, SPLIT_FF, NEED_ALWAYS,
     true, 0},
    {"model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", L_(w_down), DIM_D, DIM_FF, SPLIT_FF_COL,
     NEED_ALWAYS, true, 0},
    /* biases: required when the config says so; loaded if present otherwise */
    {"model.layers.%d.self_attn.q_proj.bias", "blk.%d.attn_q.bias", L_(bq), DIM_1, DIM_Q, SPLIT_Q, NEED_QKV_BIAS,
     false, QR_W_VEC | QR_W_PERM_Q},
    {"model.layers.%d.self_attn.k_proj.bias", "blk.%d.attn_k.bias", L_(bk), DIM_1, DIM_KV, SPLIT_KV, NEED_QKV_BIAS,
     false, QR_W_VEC | QR_W_PERM_K},
    {"model.layers.%d.self_attn.v_proj.bias", "blk.%d.attn_v.bias", L_(bv), DIM_1, DIM_KV, SPLIT_KV, NEED_QKV_BIAS,
     false, QR_W_VEC},
    {"model.layers.%d.self_attn.o_proj.bias", "blk.%d.attn_output.bias", L_(bo), DIM_1, DIM_D, SPLIT_RANK0,
     NEED_O_BIAS, false, QR_W_VEC},
    {"model.layers.%d.mlp.gate_proj.bias", "blk.%d.ffn_gate.bias", L_(b_gate), DIM_1, DIM_FF, SPLIT_FF,
     NEED_MLP_BIAS, false, QR_W_VEC},
    {"model.layers.%d.mlp.up_proj.bias", "blk.%d.ffn_up.bias", L_(b_up), DIM_1, DIM_FF, SPLIT_FF, NEED_MLP_BIAS,
     false, QR_W_VEC},
    {"model.layers.%d.mlp.down_proj.bias", "blk.%d.ffn_down.bias", L_(b_down), DIM_1, DIM_D, SPLIT_RANK0,
     NEED_MLP_BIAS, false, QR_W_VEC},
};

qr_shard qr_model_shard(const qr_model *m)
{
    if (m->sh.n > 1)
        return m->sh;
    qr_shard s;
    qr_shard_plan(&m->cfg, 0, 1, &s); /* cannot fail for n = 1 */
    return s;
}

int qr_shard_plan(const qr_model_config *c, int rank, int n, qr_shard *out)
{
    int H = c->n_head, KV = c->n_kv_head, FF = c->d_ff, V = c->vocab_size;
    if (n < 1 || rank < 0 || rank >= n)
        return qr_fail(QR_EINVAL, "tensor parallel: rank %d of %d", rank, n);
    int per = (V + n - 1) / n; /* vocabulary rows per rank: ceil, the last rank may hold fewer */
    if (n > 1 && (H % n || FF % n || KV <= 0 || (KV % n && n % KV) || (int64_t)(n - 1) * per >= V))
        return qr_fail(QR_EUNSUPPORTED, "cannot shard %s over %d ranks with tensor parallelism: needs attention "
                       "heads (%d) and FFN size (%d) divisible by %d, KV heads (%d) divisible by it or dividing it, "
                       "and vocabulary rows (%d) for every rank at %d per rank", c->arch_name, n, H, FF, n, KV, V, per);
    qr_shard s = {.rank = rank, .n = n};
    s.n_head = H / n;
    s.head0 = rank * s.n_head;
    if (KV % n == 0) {
        s.n_kv_head = KV / n;
        s.kv_head0 = rank * s.n_kv_head;
    } else { /* more ranks than KV heads: rank r holds KV head r * KV / n */
        s.n_kv_head = 1;
        s.kv_head0 = (int32_t)((int64_t)rank * KV / n);
    }
    s.d_ff = FF / n;
    s.ff0 = rank * s.d_ff;
    s.vocab0 = rank * per;
    s.vocab = V - s.vocab0 < per ? V - s.vocab0 : per;
    *out = s;
    return QR_OK;
}

int qr_model_tp_check(const qr_model_config *c, int n)
{
    qr_shard s;
    return qr_shard_plan(c, 0, n, &s);
}

static int64_t dim_of(const qr_model_config *c, int dim)
{
    switch (dim) {
    case DIM_D: return c->d_model;
    case DIM_Q: return (int64_t)c->n_head * c->head_dim;
    case DIM_KV: return (int64_t)c->n_kv_head * c->head_dim;
    case DIM_FF: return c->d_ff;
    case DIM_V: return c->vocab_size;
    default: return 1;
    }
}

/* This rank's slice of an entry (n = 0: whole); false: the rank holds none. */
static bool slice_of(const wspec *w, const qr_shard *s, const qr_model_config *c, qr_wslice *sl)
{
    int64_t hd = c->head_dim;
    memset(sl, 0, sizeof *sl);
    if (s->n <= 1)
        return true;
    switch (w->split) {
    case SPLIT_Q: *sl = (qr_wslice){0, s->head0 * hd, s->n_head * hd}; break;
    case SPLIT_KV: *sl = (qr_wslice){0, s->kv_head0 * hd, s->n_kv_head * hd}; break;
    case SPLIT_FF: *sl = (qr_wslice){0, s->ff0, s->d_ff}; break;
    case SPLIT_Q_COL: *sl = (qr_wslice){1, s->head0 * hd, s->n_head * hd}; break;
    case SPLIT_FF_COL: *sl = (qr_wslice){1, s->ff0, s->d_ff}; break;
    case SPLIT_VOCAB: *sl = (qr_wslice){0, s->vocab0, s->vocab}; break;
    case SPLIT_RANK0: return s->rank == 0;
    default: break;
    }
    return true;
}

int qr_load_decoder(qr_loader *L)
{
    qr_model *m = L->m;
    const qr_model_config *c = &m->cfg;
    qr_shard s = m->sh;
    bool need[] = {[NEED_ALWAYS] = true, [NEED_QKV_BIAS] = c->qkv_bias, [NEED_O_BIAS] = c->attn_out_bias,
                   [NEED_MLP_BIAS] = c->mlp_bias, [NEED_UNTIED] = !c->tie_embeddings};
    for (int l = -1; l < c->n_layer; l++) {
        for (size_t i = 0; i < sizeof llama_tensors / sizeof llama_tensors[0]; i++) {
            const wspec *w = &llama_tensors[i];
            if (w->layer != (l >= 0) || (w->need == NEED_UNTIED && c->tie_embeddings))
                continue;
            char *base = w->layer ? (char *)&m->layers[l] : (char *)m;
            qr_tensor *t = (qr_tensor *)(base + w->off);
            qr_wslice sl;
            if (!slice_of(w, &s, c, &sl))
                continue; /* SPLIT_RANK0 on another rank: left empty */
            int flags = w->flags | (need[w->need] ? 0 : QR_W_OPTIONAL);
            /* a sharded embedding gets a zero row for the ids of other ranks */
            if (w->off == offsetof(qr_model, tok_embd) && !w->layer && s.n > 1)
                flags |= QR_W_ZERO_ROW;
            int rc = qr_load_w(L, (const char *const[]){w->hf, w->gguf, NULL}, l, dim_of(c, w->rows),
                               dim_of(c, w->cols), &sl, w->mat ? m->dtype : QR_F32, flags, t);
            if (rc)
                return rc;
        }
    }
    if (c->tie_embeddings) {
        /* the LM head is the embedding table without the zero row */
        m->lm_head = m->tok_embd;
        m->lm_head.rows = s.n > 1 ? s.vocab : c->vocab_size;
        m->lm_head.owned = false;
        m->lm_head_tied = true;
    }
    return QR_OK;
}

/* x += o, then h = RMSNorm(x) * w: the backend's fused op where it has one
 * (one pass over x instead of three), else add then rmsnorm (same result). */
static int add_norm(qr_backend *be, qr_tensor *x, const qr_tensor *o, const qr_tensor *w, float eps, qr_tensor *h)
{
    const qr_backend_ops *ops = be->ops;
    if (ops->add_rmsnorm)
        return ops->add_rmsnorm(be, x, o, w, eps, h);
    int rc = ops->add(be, x, o);
    return rc ? rc : ops->rmsnorm(be, x, w, eps, h);
}

static const qr_tensor *opt(const qr_tensor *t) { return qr_tensor_present(t) ? t : NULL; }

/* y[i] = x . W[i]^T + b[i] for weights that share x: one call where the
 * backend has matmul_n (the CPU: x quantized once, one dispatch), else one
 * matmul each. */
static int matmul_shared(qr_backend *be, const qr_tensor *x, int n, const qr_tensor *const *w,
                         const qr_tensor *const *b, qr_tensor *const *y)
{
    if (be->ops->matmul_n)
        return be->ops->matmul_n(be, x, n, w, b, y);
    int rc = QR_OK;
    for (int i = 0; i < n && !rc; i++)
        rc = be->ops->matmul(be, x, w[i], b[i], y[i]);
    return rc;
}

/* Sums a partial (T, d) product over the ranks (nothing when unsharded). */
static int reduce(qr_dec_acts *a, qr_tensor *t)
{
    return a->allreduce ? a->allreduce(a->ar_ctx, t) : QR_OK;
}

/* One layer: attention then FFN, leaving the layer's FFN output in a->o
 * (partial sums reduced) for the caller's residual add. a->h holds
 * RMSNorm(x) with this layer's attention norm on entry. */
static int layer(qr_model *m, const qr_shard *s, qr_dec_acts *a, int l, int n_seq)
{
    qr_backend *be = m->be;
    const qr_backend_ops *ops = be->ops;
    const qr_model_config *c = &m->cfg;
    const qr_layer *y = &m->layers[l];
    float scale = 1.0f / sqrtf((float)c->head_dim);
    const qr_tensor *qkv_w[] = {&y->wq, &y->wk, &y->wv}, *qkv_b[] = {opt(&y->bq), opt(&y->bk), opt(&y->bv)};
    const qr_tensor *gu_w[] = {&y->w_gate, &y->w_up}, *gu_b[] = {opt(&y->b_gate), opt(&y->b_up)};
    qr_tensor *qkv[] = {&a->q, &a->k, &a->v}, *gu[] = {&a->gate, &a->up};
    int rc;
    if ((rc = matmul_shared(be, &a->h, 3, qkv_w, qkv_b, qkv)) ||
        (rc = ops->rope(be, &a->q, s->n_head, c->head_dim, a->pos, m->inv_freq)) ||
        (rc = ops->rope(be, &a->k, s->n_kv_head, c->head_dim, a->pos, m->inv_freq)) ||
        (rc = ops->copy_rows(be, &a->k, NULL, &a->kc[l], a->dst_rows, a->k.rows)) ||
        (rc = ops->copy_rows(be, &a->v, NULL, &a->vc[l], a->dst_rows, a->v.rows)) ||
        (rc = ops->attention(be, &a->q, &a->kc[l], &a->vc[l], a->as, n_seq, s->n_head, s->n_kv_head, c->head_dim,
                             scale, true, &a->att)) ||
        (rc = ops->matmul(be, &a->att, &y->wo, opt(&y->bo), &a->o)) || (rc = reduce(a, &a->o)) ||
        (rc = add_norm(be, &a->x, &a->o, &y->ffn_norm_w, c->norm_eps, &a->h)) ||
        (rc = matmul_shared(be, &a->h, 2, gu_w, gu_b, gu)) ||
        (rc = ops->silu_mul(be, &a->gate, &a->up)) ||
        (rc = ops->matmul(be, &a->gate, &y->w_down, opt(&y->b_down), &a->o)) || (rc = reduce(a, &a->o)))
        return rc;
    return QR_OK;
}

int qr_decoder_forward(qr_model *m, qr_dec_acts *a, int64_t T, int n_seq, bool head)
{
    qr_backend *be = m->be;
    const qr_backend_ops *ops = be->ops;
    const qr_model_config *c = &m->cfg;
    qr_shard s = qr_model_shard(m);
    int rc;
    /* embedding rows: whole on one rank; sharded, rows of other ranks' ids are 0 and the sum is exact */
    if ((rc = ops->embed(be, &m->tok_embd, a->ids, T, &a->x)) || (s.n > 1 && (rc = reduce(a, &a->x))) ||
        (rc = ops->rmsnorm(be, &a->x, &m->layers[0].attn_norm_w, c->norm_eps, &a->h)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        if ((rc = layer(m, &s, a, l, n_seq)))
            return rc;
        if (l + 1 < c->n_layer)
            rc = add_norm(be, &a->x, &a->o, &m->layers[l + 1].attn_norm_w, c->norm_eps, &a->h);
        else
            rc = ops->add(be, &a->x, &a->o);
        if (rc)
            return rc;
    }
    /* Only the rows whose logits are wanted go through the final norm and LM head. */
    if ((rc = ops->copy_rows(be, &a->x, a->last_rows, &a->last, NULL, n_seq)) ||
        (rc = ops->rmsnorm(be, &a->last, &m->out_norm, c->norm_eps, &a->last)))
        return rc;
    if (head && (rc = ops->matmul(be, &a->last, &m->lm_head, NULL, &a->logits)))
        return rc;
    return QR_OK;
}
