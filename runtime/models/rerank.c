/* Cross-encoder scoring: HF BertForSequenceClassification.
 *
 *   ids   = [CLS] q [SEP] p [SEP]       token_type_ids 0 ... 0 | 1 ... 1
 *   h     = BERT encoder (same layers as encoder.c), h_CLS = row 0   // (d)
 *   pool  = tanh(W_p h_CLS + b_p)       W_p: pooler.dense.weight   // (d, d)
 *   logit = W_c pool + b_c              W_c: classifier.weight     // (n_labels, d)
 * The score is logit[0] (ms-marco cross-encoders have one label).
 *
 * The encoder stack is run here rather than through encoder.c because the
 * embedding path always uses token type 0; the pooler and classifier are
 * small and run on the host in f32 from the mapped weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model_internal.h"

static int head_tensor(qr_model *m, const char *name, int64_t rows, int64_t cols, float **out)
{
    const char *pre[] = {"", "bert."};
    const qr_wtensor *t = NULL;
    char full[256];
    for (size_t i = 0; i < 2 && !t; i++) {
        snprintf(full, sizeof full, "%s%s", pre[i], name);
        t = qr_wsrc_find(m->src, full);
    }
    if (!t)
        return qr_fail(QR_EFORMAT, "%s: tensor %s missing (not a sequence-classification cross-encoder?)", m->path,
                       name);
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->shape[i];
    if ((rows >= 0 && t->shape[0] != rows) || n % (cols > 0 ? cols : 1) != 0 || (rows < 0 && t->n_dims > 2))
        return qr_fail(QR_EFORMAT, "%s: tensor %s: unexpected shape", t->file, t->name);
    if (cols > 0 && t->n_dims == 2 && t->shape[1] != cols)
        return qr_fail(QR_EFORMAT, "%s: tensor %s: %lld columns, expected %lld", t->file, t->name,
                       (long long)t->shape[1], (long long)cols);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f)
        return qr_fail(QR_ENOMEM, "%s: tensor %s", m->path, name);
    int rc = qr_convert_to_f32(t->dtype, t->data, n, f);
    if (rc) {
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int qr_rerank_ids(qr_model *m, const int32_t *q, int32_t nq, const int32_t *const *p, const int32_t *plen, int n,
                  int32_t cls, int32_t sep, float *out)
{
    const qr_model_config *c = &m->cfg;
    if (c->arch != QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: reranking needs a BERT cross-encoder (this one is %s)", m->path,
                       c->arch_name);
    if (n < 0 || nq < 0 || (nq && !q) || (n > 0 && (!p || !plen)) || !out)
        return qr_fail(QR_EINVAL, "qr_rerank: bad arguments");
    if (c->type_vocab_size < 2)
        return qr_fail(QR_EFORMAT, "%s: type_vocab_size %d: a cross-encoder needs token types 0 and 1", m->path,
                       c->type_vocab_size);
    int32_t lim = qr_embed_seq_limit(m);
    if (lim < 4)
        return qr_fail(QR_EINVAL, "%s: sequence limit %d too small", m->path, lim);
    int64_t d = c->d_model;
    float *wp = NULL, *bp = NULL, *wc = NULL, *bc = NULL, *h = NULL;
    int32_t *ids = NULL, *pos = NULL, *types = NULL;
    qr_attn_seq *as = NULL;
    int rc;
    if ((rc = head_tensor(m, "pooler.dense.weight", d, d, &wp)) || (rc = head_tensor(m, "pooler.dense.bias", d, 0, &bp)) ||
        (rc = head_tensor(m, "classifier.weight", -1, d, &wc)) || (rc = head_tensor(m, "classifier.bias", -1, 0, &bc)))
        goto fail;
    int64_t cap = QR_BERT_MAX_BATCH_TOKENS > lim ? QR_BERT_MAX_BATCH_TOKENS : lim;
    ids = malloc((size_t)cap * sizeof *ids);
    pos = malloc((size_t)cap * sizeof *pos);
    types = malloc((size_t)cap * sizeof *types);
    as = malloc((size_t)(n > 0 ? n : 1) * sizeof *as);
    h = malloc((size_t)(n > 0 ? n : 1) * (size_t)d * sizeof *h);
    if (!ids || !pos || !types || !as || !h) {
        rc = qr_fail(QR_ENOMEM, "qr_rerank: %d pairs", n);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        for (int32_t j = 0; j < plen[i]; j++)
            if (p[i][j] < 0 || p[i][j] >= c->vocab_size) {
                rc = qr_fail(QR_EINVAL, "qr_rerank: passage %d: id %d outside the vocabulary", i, p[i][j]);
                goto fail;
            }
    for (int32_t j = 0; j < nq; j++)
        if (q[j] < 0 || q[j] >= c->vocab_size) {
            rc = qr_fail(QR_EINVAL, "qr_rerank: query id %d outside the vocabulary", q[j]);
            goto fail;
        }
    if (cls < 0 || cls >= c->vocab_size || sep < 0 || sep >= c->vocab_size) {
        rc = qr_fail(QR_EINVAL, "qr_rerank: special ids %d/%d outside the vocabulary", cls, sep);
        goto fail;
    }
    for (int i0 = 0; i0 < n;) {
        int64_t T = 0;
        int ns = 0;
        for (int i = i0; i < n; i++) {
            /* HF "longest_first" truncation: drop from the longer part (the passage on ties) */
            int32_t a = nq, b = plen[i];
            while (a + b > lim - 3) {
                if (a > b)
                    a--;
                else
                    b--;
            }
            int32_t len = a + b + 3;
            if (T + len > cap)
                break;
            int32_t *x = ids + T, *ty = types + T;
            int32_t o = 0;
            x[o] = cls;
            ty[o++] = 0;
            for (int32_t j = 0; j < a; j++, o++) {
                x[o] = q[j];
                ty[o] = 0;
            }
            x[o] = sep;
            ty[o++] = 0;
            for (int32_t j = 0; j < b; j++, o++) {
                x[o] = p[i][j];
                ty[o] = 1;
            }
            x[o] = sep;
            ty[o++] = 1;
            for (int32_t j = 0; j < len; j++)
                pos[T + j] = j;
            as[ns] = (qr_attn_seq){.q_start = (int32_t)T, .n_q = len, .q_pos0 = 0, .kv_start = (int32_t)T, .n_kv = len};
            T += len;
            ns++;
        }
        /* hidden state of each sequence's [CLS] token, un-normalised: (ns, d) */
        if ((rc = qr_bert_forward(m, ids, pos, types, T, as, ns, QR_POOL_CLS, false, h + (size_t)i0 * d)))
            goto fail;
        i0 += ns;
    }
    /* pooler + classifier on the host (double accumulation) */
    float *t = malloc((size_t)d * sizeof *t);
    if (!t) {
        rc = qr_fail(QR_ENOMEM, "qr_rerank");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const float *x = h + (size_t)i * d;
        for (int64_t r = 0; r < d; r++) {
            double s = bp[r];
            const float *w = wp + (size_t)r * d;
            for (int64_t j = 0; j < d; j++)
                s += (double)w[j] * x[j];
            t[r] = (float)tanh(s);
        }
        double s = bc[0];
        for (int64_t j = 0; j < d; j++)
            s += (double)wc[j] * t[j];
        out[i] = (float)s;
    }
    free(t);
fail:
    free(wp);
    free(bp);
    free(wc);
    free(bc);
    free(h);
    free(ids);
    free(pos);
    free(types);
    free(as);
    return rc;
}

int qr_rerank_scores(qr_model *m, const char *query, size_t qlen, const char *const *passages, const size_t *plens,
                     int n, float *out)
{
    if (!m->tok)
        return qr_fail(QR_EINVAL, "%s: the reranker has no tokenizer; use qr_rerank_ids", m->path);
    if (n < 0 || (n > 0 && (!passages || !plens)) || (!query && qlen))
        return qr_fail(QR_EINVAL, "qr_rerank_scores: bad arguments");
    int32_t cls = qr_tokenizer_find(m->tok, "[CLS]"), sep = qr_tokenizer_find(m->tok, "[SEP]");
    if (cls < 0 || sep < 0)
        return qr_fail(QR_EFORMAT, "%s: tokenizer has no [CLS]/[SEP] token", m->path);
    int32_t *q = NULL, **p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    int32_t *pl = calloc((size_t)(n > 0 ? n : 1), sizeof *pl);
    size_t k = 0;
    int rc = 0;
    if (!p || !pl) {
        rc = qr_fail(QR_ENOMEM, "qr_rerank_scores");
        goto fail;
    }
    if ((rc = qr_tokenize(m->tok, query ? query : "", qlen, false, &q, &k)))
        goto fail;
    if (k > INT32_MAX / 2) {
        rc = qr_fail(QR_ELIMIT, "qr_rerank_scores: query of %zu tokens", k);
        goto fail;
    }
    int32_t nq = (int32_t)k;
    for (int i = 0; i < n; i++) {
        if ((rc = qr_tokenize(m->tok, passages[i], plens[i], false, &p[i], &k)))
            goto fail;
        if (k > INT32_MAX / 2) {
            rc = qr_fail(QR_ELIMIT, "qr_rerank_scores: passage of %zu tokens", k);
            goto fail;
        }
        pl[i] = (int32_t)k;
    }
    rc = qr_rerank_ids(m, q, nq, (const int32_t *const *)p, pl, n, cls, sep, out);
fail:
    free(q);
    if (p)
        for (int i = 0; i < n; i++)
            free(p[i]);
    free(p);
    free(pl);
    return rc;
}
