/* The decoder state: slots, KV cache, activation buffers, graphs and the
 * batching of steps; the per-architecture block (tensors and forward pass)
 * is arch.c's qr_decoder_forward.
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
 *   pairs selected on the device instead of whole logits rows.
 *
 * Tensor parallelism (a group model of qr_model_load_tp, m->tp ranks): the
 * state holds one state per rank (its KV heads only) and runs a step on
 * every rank at once, one thread each, the ranks summing their partial
 * products through the group's communicator (decoder_tp.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/decoder_internal.h"

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
    qr_dec_acts *a = &st->a;
    qr_tensor *ts[] = {&a->x, &a->h, &a->q, &a->k, &a->v, &a->att, &a->o, &a->gate, &a->up, &a->last, &a->logits};
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
    qr_shard s = qr_model_shard(st->m);
    qr_dec_acts *a = &st->a;
    qr_dtype at = be->act_dtype;
    int64_t d = c->d_model, dq = (int64_t)s.n_head * c->head_dim, dkv = (int64_t)s.n_kv_head * c->head_dim;
    int rc;
    if ((rc = qr_be_tensor_alloc(be, at, nt, d, &a->x)) || (rc = qr_be_tensor_alloc(be, at, nt, d, &a->h)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, dq, &a->q)) || (rc = qr_be_tensor_alloc(be, at, nt, dkv, &a->k)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, dkv, &a->v)) || (rc = qr_be_tensor_alloc(be, at, nt, dq, &a->att)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, d, &a->o)) || (rc = qr_be_tensor_alloc(be, at, nt, s.d_ff, &a->gate)) ||
        (rc = qr_be_tensor_alloc(be, at, nt, s.d_ff, &a->up)) || (rc = qr_be_tensor_alloc(be, at, ns, d, &a->last)) ||
        (rc = qr_be_tensor_alloc(be, at, ns, s.vocab, &a->logits)))
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
    if (!st->len) {
        rc = qr_fail(QR_ENOMEM, "decoder state");
        goto fail;
    }
    if (m->tp > 1) { /* a group: one state per rank */
        if ((rc = qr_dec_tp_create(st)))
            goto fail;
        *out = st;
        return QR_OK;
    }
    st->a.kc = calloc((size_t)c->n_layer, sizeof *st->a.kc);
    st->a.vc = calloc((size_t)c->n_layer, sizeof *st->a.vc);
    if (!st->a.kc || !st->a.vc) {
        rc = qr_fail(QR_ENOMEM, "decoder state");
        goto fail;
    }
    /* the KV cache of this rank's KV heads only */
    int64_t rows = (int64_t)n_slots * n_ctx, dkv = (int64_t)qr_model_shard(m).n_kv_head * c->head_dim;
    for (int l = 0; l < c->n_layer; l++)
        if ((rc = qr_be_tensor_alloc(m->be, m->be->act_dtype, rows, dkv, &st->a.kc[l])) ||
            (rc = qr_be_tensor_alloc(m->be, m->be->act_dtype, rows, dkv, &st->a.vc[l]))) {
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
    qr_dec_tp_free(st->tp);
    free_acts(st);
    qr_backend *be = st->m->be;
    for (int l = 0; l < st->m->cfg.n_layer; l++) {
        if (st->a.kc)
            free_t(be, &st->a.kc[l]);
        if (st->a.vc)
            free_t(be, &st->a.vc[l]);
    }
    free(st->a.kc);
    free(st->a.vc);
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
    for (int r = 0; st->tp && r < st->m->tp; r++)
        qr_decoder_slot_truncate(qr_dec_tp_rank(st->tp, r), slot, n);
    return QR_OK;
}

uint64_t qr_decoder_kv_bytes(const qr_decoder_state *st, int rank)
{
    if (st->tp)
        return rank >= 0 && rank < st->m->tp ? qr_decoder_kv_bytes(qr_dec_tp_rank(st->tp, rank), 0) : 0;
    if (rank != 0 || !st->a.kc)
        return 0;
    uint64_t b = 0;
    for (int l = 0; l < st->m->cfg.n_layer; l++)
        b += (uint64_t)st->a.kc[l].rows * st->a.kc[l].row_bytes + (uint64_t)st->a.vc[l].rows * st->a.vc[l].row_bytes;
    return b;
}

/* The activation buffers as views of T rows (the buffers may be larger). */
static qr_dec_acts views(qr_decoder_state *st, int64_t T, int n_seq)
{
    qr_dec_acts a = st->a;
    qr_tensor *tok[] = {&a.x, &a.h, &a.q, &a.k, &a.v, &a.att, &a.o, &a.gate, &a.up};
    for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++) {
        tok[i]->rows = T;
        tok[i]->owned = false;
    }
    a.last.rows = a.logits.rows = n_seq;
    a.last.owned = a.logits.owned = false;
    a.ids = st->ids;
    a.pos = st->pos;
    a.dst_rows = st->dst_rows;
    a.last_rows = st->last_rows;
    a.as = st->as;
    return a;
}

/* Enqueues the forward pass of T packed tokens (host descriptors already
 * filled): arch.c's block over this state's buffers. */
static int forward(qr_decoder_state *st, int64_t T, int n_seq, bool head)
{
    qr_dec_acts a = views(st, T, n_seq);
    return qr_decoder_forward(st->m, &a, T, n_seq, head);
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

int qr_dec_prepare(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, int64_t *T_out)
{
    const qr_model_config *c = &st->m->cfg;
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
    *T_out = T;
    return QR_OK;
}

int qr_dec_run(qr_decoder_state *st, int64_t T, int n_seq, bool head)
{
    const qr_backend_ops *ops = st->m->be->ops;
    bool ran = false;
    int rc;
    if (head && T == n_seq && ops->graph_begin && !st->graphs_off && !st->a.allreduce &&
        (rc = forward_graph(st, n_seq, &ran)))
        return rc;
    if (!ran && (rc = forward(st, T, n_seq, head)))
        return rc;
    return QR_OK;
}

qr_tensor qr_dec_logits(qr_decoder_state *st, int n_seq)
{
    qr_tensor lg = st->a.logits;
    lg.rows = n_seq;
    lg.owned = false;
    return lg;
}

void qr_dec_commit(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq)
{
    for (int i = 0; i < n_seq; i++)
        st->len[seqs[i].slot] += seqs[i].n;
}

/* One step: logits (n_seq, vocab) to the host when logits is not NULL, and
 * the k best (id, logit) pairs per sequence when k > 0 (backend topk). */
static int step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits, int k, int32_t *top_ids,
                float *top_vals)
{
    qr_backend *be = st->m->be;
    const qr_backend_ops *ops = be->ops;
    int64_t T;
    int rc;
    if (st->tp)
        return qr_dec_tp_step(st, seqs, n_seq, logits, k, top_ids, top_vals);
    if ((rc = qr_dec_prepare(st, seqs, n_seq, &T)) || (rc = qr_dec_run(st, T, n_seq, logits || k > 0)))
        return rc;
    qr_tensor lg = qr_dec_logits(st, n_seq);
    if (logits && (rc = ops->download(be, &lg, 0, logits, n_seq)))
        return rc;
    if (k > 0 && (rc = ops->topk(be, &lg, n_seq, k, top_ids, top_vals)))
        return rc;
    if ((rc = qr_be_sync(be)))
        return rc;
    qr_dec_commit(st, seqs, n_seq);
    return QR_OK;
}

int qr_decoder_step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits)
{
    return step(st, seqs, n_seq, logits, 0, NULL, NULL);
}

/* A group merges its ranks' candidates (any backend: host top-k when the
 * backend has none). */
bool qr_decoder_has_topk(const qr_decoder_state *st) { return st->tp || st->m->be->ops->topk != NULL; }

int qr_decoder_step_topk(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, int k, int32_t *ids, float *vals)
{
    if (!qr_decoder_has_topk(st))
        return qr_fail(QR_EUNSUPPORTED, "decoder: the %s backend has no device-side top-k", st->m->be->ops->name);
    if (k < 1 || k > QR_BE_TOPK_MAX || k > st->m->cfg.vocab_size || !ids)
        return qr_fail(QR_EINVAL, "decoder: top-k of %d outside 1..%d", k, QR_BE_TOPK_MAX);
    return step(st, seqs, n_seq, NULL, k, ids, vals);
}
