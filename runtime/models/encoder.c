/* BERT-family encoder: embeddings -> N x (self-attention, add & LayerNorm,
 * GELU FFN, add & LayerNorm) -> pooling -> optional L2 normalisation.
 *
 * Sequences of unequal lengths are packed row after row with no padding (a
 * batch of T total tokens is a (T, d) activation); attention runs per
 * sequence through qr_attn_seq descriptors, non-causal, and pooling reads only
 * each sequence's own rows — exactly what HF computes with an attention mask,
 * without spending work on padding.
 *
 * Truncation: sequences longer than the limit (max_seq_length, else
 * max_position_embeddings) keep their first limit-1 ids and their last id, so a
 * BERT "[CLS] content [SEP]" keeps its [SEP], as HF does (it truncates the
 * content, then adds the special tokens). qr_embed_texts keeps the tokens the
 * post-processor appends (found by tokenizing a probe with and without special
 * tokens) the same way; a special token of the content itself ([UNK] last
 * before the cut) is content and is cut like any other. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model_internal.h"


int qr_embed_seq_limit(const qr_model *m)
{
    int lim = m->cfg.max_pos;
    if (m->cfg.max_seq_length > 0 && m->cfg.max_seq_length < lim)
        lim = m->cfg.max_seq_length;
    return lim;
}

typedef struct {
    qr_tensor x, tmp, q, k, v, att, ff, pooled;
} enc_bufs;

static void enc_free(qr_backend *be, enc_bufs *b)
{
    qr_tensor *ts[] = {&b->x, &b->tmp, &b->q, &b->k, &b->v, &b->att, &b->ff, &b->pooled};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i]->data)
            qr_be_tensor_free(be, ts[i]);
    memset(b, 0, sizeof *b);
}

/* x += y, then out = LayerNorm(x) * gamma + beta: the backend's fused op
 * where it has one (one pass instead of three), else add then layernorm. */
static int add_norm(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *gamma, const qr_tensor *beta,
                    float eps, qr_tensor *out)
{
    const qr_backend_ops *ops = be->ops;
    if (ops->add_layernorm)
        return ops->add_layernorm(be, x, y, gamma, beta, eps, out);
    int rc = ops->add(be, x, y);
    return rc ? rc : ops->layernorm(be, x, gamma, beta, eps, out);
}

int qr_bert_forward(qr_model *m, const int32_t *ids, const int32_t *pos, const int32_t *types, int64_t T,
                    const qr_attn_seq *seqs, int n_seq, qr_pool_mode pooling, bool normalize, float *out)
{
    qr_backend *be = m->be;
    const qr_backend_ops *ops = be->ops;
    const qr_model_config *c = &m->cfg;
    int64_t d = c->d_model;
    qr_dtype at = be->act_dtype;
    enc_bufs b;
    memset(&b, 0, sizeof b);
    int rc;
    if ((rc = qr_be_tensor_alloc(be, at, T, d, &b.x)) || (rc = qr_be_tensor_alloc(be, at, T, d, &b.tmp)) ||
        (rc = qr_be_tensor_alloc(be, at, T, d, &b.q)) || (rc = qr_be_tensor_alloc(be, at, T, d, &b.k)) ||
        (rc = qr_be_tensor_alloc(be, at, T, d, &b.v)) || (rc = qr_be_tensor_alloc(be, at, T, d, &b.att)) ||
        (rc = qr_be_tensor_alloc(be, at, T, c->d_ff, &b.ff)) || (rc = qr_be_tensor_alloc(be, at, n_seq, d, &b.pooled)))
        goto fail;

    /* embeddings: word + position + token type, then LayerNorm */
    if ((rc = ops->embed(be, &m->tok_embd, ids, T, &b.x)) || (rc = ops->embed(be, &m->pos_embd, pos, T, &b.tmp)) ||
        (rc = ops->add(be, &b.x, &b.tmp)) || (rc = ops->embed(be, &m->type_embd, types, T, &b.tmp)) ||
        (rc = add_norm(be, &b.x, &b.tmp, &m->embd_norm_w, &m->embd_norm_b, c->norm_eps, &b.x)))
        goto fail;

    float scale = 1.0f / sqrtf((float)c->head_dim);
    for (int l = 0; l < c->n_layer; l++) {
        const qr_layer *y = &m->layers[l];
        if ((rc = ops->matmul(be, &b.x, &y->wq, &y->bq, &b.q)) || (rc = ops->matmul(be, &b.x, &y->wk, &y->bk, &b.k)) ||
            (rc = ops->matmul(be, &b.x, &y->wv, &y->bv, &b.v)) ||
            (rc = ops->attention(be, &b.q, &b.k, &b.v, seqs, n_seq, c->n_head, c->n_head, c->head_dim, scale, false,
                                 &b.att)) ||
            (rc = ops->matmul(be, &b.att, &y->wo, &y->bo, &b.tmp)) ||
            (rc = add_norm(be, &b.tmp, &b.x, &y->attn_norm_w, &y->attn_norm_b, c->norm_eps, &b.x)) ||
            (rc = ops->matmul(be, &b.x, &y->w_up, &y->b_up, &b.ff)) || (rc = ops->gelu(be, &b.ff)) ||
            (rc = ops->matmul(be, &b.ff, &y->w_down, &y->b_down, &b.tmp)) ||
            (rc = add_norm(be, &b.tmp, &b.x, &y->ffn_norm_w, &y->ffn_norm_b, c->norm_eps, &b.x)))
            goto fail;
    }
    if ((rc = ops->pool(be, &b.x, seqs, n_seq, pooling, &b.pooled)))
        goto fail;
    if (normalize && (rc = ops->l2norm(be, &b.pooled)))
        goto fail;
    if ((rc = ops->download(be, &b.pooled, 0, out, n_seq)) || (rc = qr_be_sync(be)))
        goto fail;
fail:
    enc_free(be, &b);
    return rc;
}

/* Embeds n sequences after truncation to `lim`, keeping `tail[i]` trailing ids. */
static int embed_run(qr_model *m, const int32_t *const *seqs, const int32_t *lens, const int *tail, int n,
                     float *out)
{
    const qr_model_config *c = &m->cfg;
    int lim = qr_embed_seq_limit(m);
    int64_t d = c->d_model;
    int32_t *ids = NULL, *pos = NULL, *types = NULL;
    qr_attn_seq *as = NULL;
    float *res = NULL;
    int rc = QR_OK;
    if (c->arch != QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: embedding needs an encoder model (this one is %s)", m->path,
                       c->arch_name);
    if (n < 0 || (n > 0 && (!seqs || !lens)) || !out)
        return qr_fail(QR_EINVAL, "qr_embed: bad arguments");
    for (int i = 0; i < n; i++) {
        if (lens[i] <= 0 || !seqs[i])
            return qr_fail(QR_EINVAL, "qr_embed: sequence %d is empty", i);
        for (int32_t j = 0; j < lens[i]; j++)
            if (seqs[i][j] < 0 || seqs[i][j] >= c->vocab_size)
                return qr_fail(QR_EINVAL, "qr_embed: sequence %d: id %d outside the vocabulary (%d)", i,
                               seqs[i][j], c->vocab_size);
    }
    int64_t cap = QR_BERT_MAX_BATCH_TOKENS > lim ? QR_BERT_MAX_BATCH_TOKENS : lim;
    ids = malloc((size_t)cap * sizeof *ids);
    pos = malloc((size_t)cap * sizeof *pos);
    types = calloc((size_t)cap, sizeof *types); /* token type 0 everywhere */
    as = malloc((size_t)(n > 0 ? n : 1) * sizeof *as);
    res = malloc((size_t)(n > 0 ? n : 1) * (size_t)d * sizeof *res);
    if (!ids || !pos || !types || !as || !res) {
        rc = qr_fail(QR_ENOMEM, "qr_embed: %d sequences", n);
        goto fail;
    }
    for (int i0 = 0; i0 < n;) {
        int64_t T = 0;
        int ns = 0;
        for (int i = i0; i < n; i++) {
            int32_t len = lens[i] < lim ? lens[i] : lim;
            if (T + len > cap)
                break;
            int keep_tail = lens[i] > lim ? (tail[i] < lim ? tail[i] : lim - 1) : 0;
            int32_t head = len - keep_tail;
            memcpy(ids + T, seqs[i], (size_t)head * sizeof *ids);
            if (keep_tail)
                memcpy(ids + T + head, seqs[i] + lens[i] - keep_tail, (size_t)keep_tail * sizeof *ids);
            for (int32_t j = 0; j < len; j++)
                pos[T + j] = j;
            as[ns] = (qr_attn_seq){.q_start = (int32_t)T, .n_q = len, .q_pos0 = 0, .kv_start = (int32_t)T, .n_kv = len};
            T += len;
            ns++;
        }
        if ((rc = qr_bert_forward(m, ids, pos, types, T, as, ns, m->cfg.pooling, m->cfg.normalize,
                                   res + (size_t)i0 * d)))
            goto fail;
        i0 += ns;
    }
    memcpy(out, res, (size_t)n * (size_t)d * sizeof *out);
fail:
    free(ids);
    free(pos);
    free(types);
    free(as);
    free(res);
    return rc;
}

int qr_embed_ids(qr_model *m, const int32_t *const *seqs, const int32_t *lens, int n, float *out)
{
    int *tail = malloc((size_t)(n > 0 ? n : 1) * sizeof *tail);
    if (!tail)
        return qr_fail(QR_ENOMEM, "qr_embed_ids");
    for (int i = 0; i < n; i++)
        tail[i] = 1; /* the [SEP] */
    int rc = embed_run(m, seqs, lens, tail, n, out);
    free(tail);
    return rc;
}

/* Number of ids the tokenizer's post-processor appends after the content (1
 * for BERT's "[CLS] $A [SEP]"): the probe "a" tokenized without and with
 * special tokens, the plain ids located inside the other. */
static int special_suffix(const qr_tokenizer *tok, int *out)
{
    int32_t *plain = NULL, *full = NULL;
    size_t np = 0, nf = 0;
    int rc;
    if ((rc = qr_tokenize(tok, "a", 1, false, &plain, &np)) || (rc = qr_tokenize(tok, "a", 1, true, &full, &nf)))
        goto out;
    *out = 0;
    for (size_t p = 0; np && p + np <= nf; p++)
        if (memcmp(full + p, plain, np * sizeof *plain) == 0) {
            *out = (int)(nf - p - np);
            break;
        }
out:
    free(plain);
    free(full);
    return rc;
}

int qr_embed_texts(qr_model *m, const char *const *texts, const size_t *lens, int n, float *out)
{
    if (!m->tok)
        return qr_fail(QR_EINVAL, "%s: the model has no tokenizer; use qr_embed_ids", m->path);
    if (n < 0 || (n > 0 && (!texts || !lens)))
        return qr_fail(QR_EINVAL, "qr_embed_texts: bad arguments");
    int32_t **ids = calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    int32_t *nids = calloc((size_t)(n > 0 ? n : 1), sizeof *nids);
    int *tail = calloc((size_t)(n > 0 ? n : 1), sizeof *tail);
    int rc = QR_OK;
    if (!ids || !nids || !tail) {
        rc = qr_fail(QR_ENOMEM, "qr_embed_texts: %d texts", n);
        goto fail;
    }
    int suffix = 0;
    if ((rc = special_suffix(m->tok, &suffix)))
        goto fail;
    for (int i = 0; i < n; i++) {
        size_t k;
        if ((rc = qr_tokenize(m->tok, texts[i], lens[i], true, &ids[i], &k)))
            goto fail;
        if (k == 0 || k > INT32_MAX) {
            rc = qr_fail(QR_EINVAL, "qr_embed_texts: text %d gives %zu tokens", i, k);
            goto fail;
        }
        nids[i] = (int32_t)k;
        /* the ids the post-processor appended survive truncation */
        tail[i] = suffix < nids[i] - 1 ? suffix : nids[i] - 1;
    }
    rc = embed_run(m, (const int32_t *const *)ids, nids, tail, n, out);
fail:
    if (ids)
        for (int i = 0; i < n; i++)
            free(ids[i]);
    free(ids);
    free(nids);
    free(tail);
    return rc;
}
