/* Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM2, TinyLlama):
 *   x = embed(ids)
 *   per layer: h = RMSNorm(x); q,k,v = h.Wq/Wk/Wv (+bias); RoPE(q, k);
 *              K/V appended to the cache; x += Attn(q, K, V).Wo
 *              h = RMSNorm(x); x += (silu(h.Wg) * h.Wu).Wd
 *   logits = RMSNorm(x_last) . W_lm^T   (only each sequence's last row)
 *
 * A step packs the new tokens of several sequences (prefill chunks and single
 * decode tokens mixed) into one (T, d) activation; attention reads each
 * sequence's cache slot through qr_attn_seq descriptors, causal from the
 * sequence's current length.
 *
 * Optional backend ops (backend.h), used only when the backend has them:
 * - graph_begin/end/launch: a step of single tokens (every sequence n = 1,
 *   the decode steps) is captured once per batch size into a graph and
 *   replayed afterwards; the host arrays it reads (ids, positions, cache
 *   rows, descriptors) are this state's own buffers, rewritten before each
 *   replay. Graphs are dropped when the activation buffers are reallocated.
 *   A capture that fails turns graphs off for the state (logged once).
 * - topk: qr_decoder_step_topk returns each sequence's k best (id, logit)
 *   pairs selected on the device instead of whole logits rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model_internal.h"

/* Decode-step graphs kept per state (distinct batch sizes; oldest replaced). */
#define QR_DEC_GRAPHS 8

struct qr_decoder_state {
    qr_model *m;
    int n_slots, n_ctx;
    int32_t *len;          // (n_slots) tokens cached per slot
    qr_tensor *kc, *vc;    // n_layer each: (n_slots*n_ctx, n_kv*hd)
    /* activations, sized for cap_tok tokens and cap_seq sequences */
    int64_t cap_tok;
    int cap_seq;
    qr_tensor x, h, q, k, v, att, o, gate, up; // (T, d) (T, d) (T, dq) (T, dkv) (T, dkv) (T, dq) (T, d) (T, ff) (T, ff)
    qr_tensor last, logits;                    // (S, d) (S, vocab)
    /* host scratch */
    int32_t *ids, *pos, *dst_rows, *last_rows;
    qr_attn_seq *as;
    /* captured decode steps, by batch size (optional backend graph ops) */
    qr_be_graph *graph[QR_DEC_GRAPHS];
    int graph_nseq[QR_DEC_GRAPHS];
    int graph_next;
    bool graphs_off;
};

static void free_t(qr_backend *be, qr_tensor *t)
{
    if (t->data)
        qr_be_tensor_free(be, t);
    memset(t, 0, sizeof *t);
}

static void free_graphs(qr_decoder_state *st)
{
    qr_backend *be = st->m->be;
    for (int i = 0; i < QR_DEC_GRAPHS; i++) {
        if (st->graph[i])
            be->ops->graph_free(be, st->graph[i]);
        st->graph[i] = NULL;
        st->graph_nseq[i] = 0;
    }
}

static void free_acts(qr_decoder_state *st)
{
    qr_backend *be = st->m->be;
    free_graphs(st); /* they hold the activation buffers' addresses */
    qr_tensor *ts[] = {&st->x, &st->h, &st->q, &st->k, &st->v, &st->att, &st->o, &st->gate, &st->up,
                       &st->last, &st->logits};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        free_t(be, ts[i]);
    free(st->ids);
    free(st->pos);
    free(st->dst_rows);
    free(st->last_rows);
    free(st->as);
    st->ids = st->pos = st->dst_rows = st->last_rows = NULL;
    st->as = NULL;
    st->cap_tok = 0;
    st->cap_seq = 0;
}

/* Grows the activation buffers to hold T tokens of S sequences. */
static int ensure_acts(qr_decoder_state *st, int64_t T, int S)
{
    if (T <= st->cap_tok && S <= st->cap_seq)
        return QR_OK;
    int64_t nt = T > st->cap_tok ? T : st->cap_tok;
    int ns = S > st->cap_seq ? S : st->cap_seq;
    if (nt < 16)
        nt = 16;
    free_acts(st);
    qr_backend *be = st->m->be;
    const qr_model_config *c = &st->m->cfg;
    qr_dtype at = be->act_dtype;
    int64_t d = c->d_model, dq = (int64_t)c->n_head * c->head_dim, dkv = (int64_t)c->n_kv_head * c->head_dim;
    int rc;
    if ((rc = qr_be_tensor_alloc(be, at, nt, d, &st->x)) || (rc = qr_be_tensor_alloc(be, at, nt, d, &st->h)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, dq, &st->q)) || (rc = qr_be_tensor_alloc(be, at, nt, dkv, &st->k)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, dkv, &st->v)) || (rc = qr_be_tensor_alloc(be, at, nt, dq, &st->att)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, d, &st->o)) || (rc = qr_be_tensor_alloc(be, at, nt, c->d_ff, &st->gate)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, c->d_ff, &st->up)) || (rc = qr_be_tensor_alloc(be, at, ns, d, &st->last)) ||
        (rc = qr_be_tensor_alloc(be, at, ns, c->vocab_size, &st->logits)))
        goto fail;
    st->ids = malloc((size_t)nt * sizeof(int32_t));
    st->pos = malloc((size_t)nt * sizeof(int32_t));
    st->dst_rows = malloc((size_t)nt * sizeof(int32_t));
    st->last_rows = malloc((size_t)ns * sizeof(int32_t));
    st->as = malloc((size_t)ns * sizeof(qr_attn_seq));
    if (!st->ids || !st->pos || !st->dst_rows || !st->last_rows || !st->as) {
        rc = qr_fail(QR_ENOMEM, "decoder: activations for %lld tokens", (long long)nt);
        goto fail;
    }
    st->cap_tok = nt;
    st->cap_seq = ns;
    return QR_OK;
fail:
    free_acts(st);
    return rc;
}

int qr_decoder_state_create(qr_model *m, int n_slots, int n_ctx, qr_decoder_state **out)
{
    const qr_model_config *c = &m->cfg;
    if (c->arch == QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: generation needs a decoder model (this one is %s)", m->path,
                       c->arch_name);
    if (n_slots <= 0 || n_ctx <= 0)
        return qr_fail(QR_EINVAL, "decoder state: n_slots %d and n_ctx %d must be positive", n_slots, n_ctx);
    if (n_ctx > c->max_pos)
        return qr_fail(QR_ELIMIT, "decoder state: context %d exceeds the model's %d positions", n_ctx, c->max_pos);
    if ((int64_t)n_slots * n_ctx > INT32_MAX)
        return qr_fail(QR_ELIMIT, "decoder state: %d slots x %d positions is too many rows", n_slots, n_ctx);
    qr_decoder_state *st = calloc(1, sizeof *st);
    int rc;
    if (!st)
        return qr_fail(QR_ENOMEM, "decoder state");
    st->m = m;
    st->n_slots = n_slots;
    st->n_ctx = n_ctx;
    st->len = calloc((size_t)n_slots, sizeof *st->len);
    st->kc = calloc((size_t)c->n_layer, sizeof *st->kc);
    st->vc = calloc((size_t)c->n_layer, sizeof *st->vc);
    if (!st->len || !st->kc || !st->vc) {
        rc = qr_fail(QR_ENOMEM, "decoder state");
        goto fail;
    }
    int64_t rows = (int64_t)n_slots * n_ctx, dkv = (int64_t)c->n_kv_head * c->head_dim;
    for (int l = 0; l < c->n_layer; l++)
        if ((rc = qr_be_tensor_alloc(m->be, m->be->act_dtype, rows, dkv, &st->kc[l])) ||
            (rc = qr_be_tensor_alloc(m->be, m->be->act_dtype, rows, dkv, &st->vc[l]))) {
            rc = qr_fail(rc, "decoder state: KV cache %d x %d for layer %d: %s", n_slots, n_ctx, l, qr_last_error());
            goto fail;
        }
    *out = st;
    return QR_OK;
fail:
    qr_decoder_state_free(st);
    return rc;
}

void qr_decoder_state_free(qr_decoder_state *st)
{
    if (!st)
        return;
    free_acts(st);
    qr_backend *be = st->m->be;
    for (int l = 0; l < st->m->cfg.n_layer; l++) {
        if (st->kc)
            free_t(be, &st->kc[l]);
        if (st->vc)
            free_t(be, &st->vc[l]);
    }
    free(st->kc);
    free(st->vc);
    free(st->len);
    free(st);
}

int qr_decoder_slot_len(const qr_decoder_state *st, int slot)
{
    if (slot < 0 || slot >= st->n_slots)
        return qr_fail(QR_EINVAL, "decoder: slot %d outside 0..%d", slot, st->n_slots - 1);
    return st->len[slot];
}

int qr_decoder_slot_truncate(qr_decoder_state *st, int slot, int n)
{
    if (slot < 0 || slot >= st->n_slots)
        return qr_fail(QR_EINVAL, "decoder: slot %d outside 0..%d", slot, st->n_slots - 1);
    if (n < 0)
        return qr_fail(QR_EINVAL, "decoder: truncate to %d", n);
    if (n < st->len[slot])
        st->len[slot] = n;
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

/* Enqueues the forward pass of T packed tokens (host descriptors already
 * filled) up to the LM head's logits of each sequence's last row (when
 * head). Enqueues only: nothing here waits or reads results, so the same
 * calls can be captured into a graph. */
static int forward(qr_decoder_state *st, int64_t T, int n_seq, bool head)
{
    qr_model *m = st->m;
    qr_backend *be = m->be;
    const qr_backend_ops *ops = be->ops;
    const qr_model_config *c = &m->cfg;
    int rc;
    /* Views of the activations with T rows (buffers may be larger). */
    qr_tensor x = st->x, h = st->h, q = st->q, k = st->k, v = st->v, att = st->att, o = st->o, gate = st->gate,
              up = st->up, last = st->last, lg = st->logits;
    x.rows = h.rows = q.rows = k.rows = v.rows = att.rows = o.rows = gate.rows = up.rows = T;
    last.rows = lg.rows = n_seq;
    x.owned = h.owned = q.owned = k.owned = v.owned = att.owned = o.owned = gate.owned = up.owned = false;
    last.owned = lg.owned = false;

    float scale = 1.0f / sqrtf((float)c->head_dim);
    if ((rc = ops->embed(be, &m->tok_embd, st->ids, T, &x)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
        const qr_layer *y = &m->layers[l];
        const qr_tensor *bq = qr_tensor_present(&y->bq) ? &y->bq : NULL;
        const qr_tensor *bk = qr_tensor_present(&y->bk) ? &y->bk : NULL;
        const qr_tensor *bv = qr_tensor_present(&y->bv) ? &y->bv : NULL;
        const qr_tensor *bo = qr_tensor_present(&y->bo) ? &y->bo : NULL;
        const qr_tensor *bg = qr_tensor_present(&y->b_gate) ? &y->b_gate : NULL;
        const qr_tensor *bu = qr_tensor_present(&y->b_up) ? &y->b_up : NULL;
        const qr_tensor *bd = qr_tensor_present(&y->b_down) ? &y->b_down : NULL;
        /* h = RMSNorm(x): for layers after the first, already made by the
         * previous layer's residual add (add_norm) */
        if ((l == 0 && (rc = ops->rmsnorm(be, &x, &y->attn_norm_w, c->norm_eps, &h))) ||
            (rc = ops->matmul(be, &h, &y->wq, bq, &q)) || (rc = ops->matmul(be, &h, &y->wk, bk, &k)) ||
            (rc = ops->matmul(be, &h, &y->wv, bv, &v)) ||
            (rc = ops->rope(be, &q, c->n_head, c->head_dim, st->pos, m->inv_freq)) ||
            (rc = ops->rope(be, &k, c->n_kv_head, c->head_dim, st->pos, m->inv_freq)) ||
            (rc = ops->copy_rows(be, &k, NULL, &st->kc[l], st->dst_rows, T)) ||
            (rc = ops->copy_rows(be, &v, NULL, &st->vc[l], st->dst_rows, T)) ||
            (rc = ops->attention(be, &q, &st->kc[l], &st->vc[l], st->as, n_seq, c->n_head, c->n_kv_head, c->head_dim,
                                 scale, true, &att)) ||
            (rc = ops->matmul(be, &att, &y->wo, bo, &o)) ||
            (rc = add_norm(be, &x, &o, &y->ffn_norm_w, c->norm_eps, &h)) ||
            (rc = ops->matmul(be, &h, &y->w_gate, bg, &gate)) || (rc = ops->matmul(be, &h, &y->w_up, bu, &up)) ||
            (rc = ops->silu_mul(be, &gate, &up)) || (rc = ops->matmul(be, &gate, &y->w_down, bd, &o)))
            return rc;
        if (l + 1 < c->n_layer)
            rc = add_norm(be, &x, &o, &m->layers[l + 1].attn_norm_w, c->norm_eps, &h);
        else
            rc = ops->add(be, &x, &o);
        if (rc)
            return rc;
    }
    /* Only the rows whose logits are wanted go through the final norm and LM head. */
    if ((rc = ops->copy_rows(be, &x, st->last_rows, &last, NULL, n_seq)) ||
        (rc = ops->rmsnorm(be, &last, &m->out_norm, c->norm_eps, &last)))
        return rc;
    if (head && (rc = ops->matmul(be, &last, &m->lm_head, NULL, &lg)))
        return rc;
    return QR_OK;
}

/* A decode step through a graph captured for this batch size (captured now
 * if there is none yet). *ran = false when graphs cannot be used: the
 * caller runs forward() itself. */
static int forward_graph(qr_decoder_state *st, int n_seq, bool *ran)
{
    qr_backend *be = st->m->be;
    const qr_backend_ops *ops = be->ops;
    *ran = false;
    qr_be_graph *g = NULL;
    for (int i = 0; i < QR_DEC_GRAPHS; i++)
        if (st->graph[i] && st->graph_nseq[i] == n_seq)
            g = st->graph[i];
    if (!g) {
        int rc = ops->graph_begin(be);
        if (rc) {
            QR_INFO("decoder: graphs off for this state: %s", qr_last_error());
            st->graphs_off = true;
            return QR_OK;
        }
        int frc = forward(st, n_seq, n_seq, true);
        char why[256];
        snprintf(why, sizeof why, "%s", frc ? qr_last_error() : "");
        int erc = ops->graph_end(be, &g);
        if (frc || erc) {
            /* Whatever failed (an op that cannot be captured, or an argument
             * error that the uncaptured run will report again), the step runs
             * without a graph, and so do the later ones. */
            if (!erc)
                ops->graph_free(be, g);
            QR_INFO("decoder: graphs off for this state: %s", frc ? why : qr_last_error());
            st->graphs_off = true;
            return QR_OK;
        }
        int slot = st->graph_next;
        st->graph_next = (st->graph_next + 1) % QR_DEC_GRAPHS;
        if (st->graph[slot])
            ops->graph_free(be, st->graph[slot]);
        st->graph[slot] = g;
        st->graph_nseq[slot] = n_seq;
    }
    int rc = ops->graph_launch(be, g);
    if (!rc)
        *ran = true;
    return rc;
}

void qr_decoder_set_graphs(qr_decoder_state *st, bool on)
{
    if (!on)
        free_graphs(st);
    st->graphs_off = !on;
}

/* One step: logits (n_seq, vocab) to the host when logits is not NULL, and
 * the k best (id, logit) pairs per sequence when k > 0 (backend topk). */
static int step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits, int k, int32_t *top_ids,
                float *top_vals)
{
    qr_model *m = st->m;
    qr_backend *be = m->be;
    const qr_backend_ops *ops = be->ops;
    const qr_model_config *c = &m->cfg;
    int rc;
    if (n_seq <= 0 || !seqs)
        return qr_fail(QR_EINVAL, "decoder step: no sequences");
    int64_t T = 0;
    for (int i = 0; i < n_seq; i++) {
        const qr_dec_seq *s = &seqs[i];
        if (s->slot < 0 || s->slot >= st->n_slots)
            return qr_fail(QR_EINVAL, "decoder step: sequence %d: slot %d outside 0..%d", i, s->slot, st->n_slots - 1);
        if (s->n <= 0 || !s->ids)
            return qr_fail(QR_EINVAL, "decoder step: sequence %d has no tokens", i);
        for (int k2 = 0; k2 < i; k2++)
            if (seqs[k2].slot == s->slot)
                return qr_fail(QR_EINVAL, "decoder step: slot %d appears twice", s->slot);
        if ((int64_t)st->len[s->slot] + s->n > st->n_ctx)
            return qr_fail(QR_ELIMIT, "decoder step: slot %d: %d cached + %d new tokens exceed the context of %d",
                           s->slot, st->len[s->slot], s->n, st->n_ctx);
        for (int32_t j = 0; j < s->n; j++)
            if (s->ids[j] < 0 || s->ids[j] >= c->vocab_size)
                return qr_fail(QR_EINVAL, "decoder step: token id %d outside the vocabulary (%d)", s->ids[j],
                               c->vocab_size);
        T += s->n;
    }
    if ((rc = ensure_acts(st, T, n_seq)))
        return rc;

    /* host descriptors */
    int64_t t = 0;
    for (int i = 0; i < n_seq; i++) {
        const qr_dec_seq *s = &seqs[i];
        int32_t p0 = st->len[s->slot], base = s->slot * st->n_ctx;
        memcpy(st->ids + t, s->ids, (size_t)s->n * sizeof(int32_t));
        for (int32_t j = 0; j < s->n; j++) {
            st->pos[t + j] = p0 + j;
            st->dst_rows[t + j] = base + p0 + j;
        }
        st->as[i] = (qr_attn_seq){.q_start = (int32_t)t, .n_q = s->n, .q_pos0 = p0, .kv_start = base,
                                  .n_kv = p0 + s->n};
        st->last_rows[i] = (int32_t)(t + s->n - 1);
        t += s->n;
    }

    bool head = logits || k > 0;
    bool ran = false;
    if (head && T == n_seq && ops->graph_begin && !st->graphs_off && (rc = forward_graph(st, n_seq, &ran)))
        return rc;
    if (!ran && (rc = forward(st, T, n_seq, head)))
        return rc;
    qr_tensor lg = st->logits;
    lg.rows = n_seq;
    lg.owned = false;
    if (logits && (rc = ops->download(be, &lg, 0, logits, n_seq)))
        return rc;
    if (k > 0 && (rc = ops->topk(be, &lg, n_seq, k, top_ids, top_vals)))
        return rc;
    if ((rc = qr_be_sync(be)))
        return rc;
    for (int i = 0; i < n_seq; i++)
        st->len[seqs[i].slot] += seqs[i].n;
    return QR_OK;
}

int qr_decoder_step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits)
{
    return step(st, seqs, n_seq, logits, 0, NULL, NULL);
}

bool qr_decoder_has_topk(const qr_decoder_state *st) { return st->m->be->ops->topk != NULL; }

int qr_decoder_step_topk(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, int k, int32_t *ids, float *vals)
{
    if (!st->m->be->ops->topk)
        return qr_fail(QR_EUNSUPPORTED, "decoder: the %s backend has no device-side top-k", st->m->be->ops->name);
    if (k < 1 || k > QR_BE_TOPK_MAX || k > st->m->cfg.vocab_size || !ids)
        return qr_fail(QR_EINVAL, "decoder: top-k of %d outside 1..%d", k, QR_BE_TOPK_MAX);
    return step(st, seqs, n_seq, NULL, k, ids, vals);
}
