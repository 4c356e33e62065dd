/* A decoder step over a tensor-parallel group (qr_model_load_tp): every rank
 * holds its shard and its own decoder state (KV cache of its KV heads,
 * activations of its heads / FFN columns / vocabulary rows). A step runs on
 * all ranks at once, on the model's parked rank threads (rank 0 on the
 * caller's thread; runtime/dist/rank_pool.h); the forward pass (arch.c) calls
 * the all-reduce hook below after each row-parallel product and after the
 * embedding: the (T, d) partial sums are summed over the ranks through the
 * group's communicator, in place (NCCL on device buffers, or the host
 * communicator on CPU ranks' host memory) or staged (download, sum, upload:
 * CUDA backends sharing one GPU, a build without NCCL).
 *
 * The logits stay split by vocabulary: for top-k (greedy is k = 1) each
 * rank selects its k best (value, id) pairs and the caller's thread merges
 * the n*k candidates (value descending, lowest id first among equal values,
 * as the backend topk op orders them), never gathering whole rows; whole
 * logits rows are asked for only by a sampler (temperature, top-p, min-p,
 * repetition penalty), and are then assembled from each rank's columns, so
 * sampling sees exactly the distribution one rank would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/dist/comm.h"
#include "runtime/dist/rank_pool.h"
#include "runtime/models/decoder_internal.h"

/* One rank's thread: its state, the all-reduce staging buffer and what the
 * step hands back (logits columns or top-k candidates, the error). */
typedef struct {
    qr_decoder_state *st;
    qr_comm *comm;
    int rank;
    float *buf;          // all-reduce staging (cap floats)
    int64_t cap;
    /* per step */
    int64_t T;
    int n_seq, k;
    bool head, want_logits;
    float *lg;           // (n_seq, vocab of the rank) when want_logits
    int64_t lg_cap;
    int32_t *cand_ids;   // (n_seq, k) global ids
    float *cand_vals;    // (n_seq, k)
    int rc;
    char err[512];
} rank_job;

struct qr_dec_tp {
    int n;
    qr_rank_pool *pool;  // the model's parked rank threads
    rank_job *jobs;      // n
};

qr_decoder_state *qr_dec_tp_rank(qr_dec_tp *tp, int r) { return tp->jobs[r].st; }

/* The all-reduce hook: t (rows, cols) of this rank's backend summed over the
 * ranks. A communicator that works in place (NCCL on device memory, the host
 * one over CPU ranks' host memory) sums the tensor's own buffer, ordered on
 * the rank's stream; otherwise it is staged: download, sum, upload. */
static int allreduce(void *ctx, qr_tensor *t)
{
    rank_job *j = ctx;
    qr_backend *be = j->st->m->be;
    int64_t n = t->rows * t->cols;
    if (j->comm->in_place) {
        size_t es = t->dtype == QR_F32 ? 4 : t->dtype == QR_BF16 ? 2 : 0;
        if (!es || t->row_bytes != (size_t)t->cols * es)
            return qr_fail(QR_EINTERNAL, "tensor parallel: in-place all-reduce of a %s tensor with row stride %zu "
                           "(%lld columns)", qr_dtype_name(t->dtype), t->row_bytes, (long long)t->cols);
        /* the host communicator reads the memory from this thread: the rank's
         * queue must have run first (free on the CPU, whose ops are synchronous);
         * NCCL orders itself on the rank's stream */
        int rc = strcmp(j->comm->ops->name, "nccl") ? qr_be_sync(be) : QR_OK;
        return rc ? rc : qr_comm_allreduce(j->comm, j->rank, t->data, n, t->dtype);
    }
    if (n > j->cap) {
        float *b = realloc(j->buf, (size_t)n * sizeof(float));
        if (!b)
            return qr_fail(QR_ENOMEM, "tensor parallel: %lld floats of all-reduce staging", (long long)n);
        j->buf = b;
        j->cap = n;
    }
    int rc;
    if ((rc = be->ops->download(be, t, 0, j->buf, t->rows)) ||
        (rc = qr_comm_allreduce(j->comm, j->rank, j->buf, n, QR_F32)) ||
        (rc = be->ops->upload(be, t, 0, j->buf, t->rows)))
        return rc;
    return QR_OK;
}

int qr_dec_tp_create(qr_decoder_state *st)
{
    qr_model *m = st->m;
    qr_dec_tp *tp = calloc(1, sizeof *tp);
    if (!tp || !(tp->jobs = calloc((size_t)m->tp, sizeof *tp->jobs))) {
        free(tp);
        return qr_fail(QR_ENOMEM, "tensor parallel: decoder state");
    }
    tp->n = m->tp;
    tp->pool = m->pool;
    st->tp = tp;
    for (int r = 0; r < m->tp; r++) {
        rank_job *j = &tp->jobs[r];
        j->comm = m->comm;
        j->rank = r;
        int rc = qr_decoder_state_create(m->ranks[r], st->n_slots, st->n_ctx, &j->st);
        if (rc)
            return qr_fail(rc, "tensor parallel: rank %d: %s", r, qr_last_error());
        /* the hook waits for the other ranks: it cannot be captured into a graph */
        j->st->a.allreduce = allreduce;
        j->st->a.ar_ctx = j;
        j->st->graphs_off = true;
    }
    return QR_OK;
}

void qr_dec_tp_free(qr_dec_tp *tp)
{
    if (!tp)
        return;
    for (int r = 0; r < tp->n; r++) {
        qr_decoder_state_free(tp->jobs[r].st);
        free(tp->jobs[r].buf);
        free(tp->jobs[r].lg);
        free(tp->jobs[r].cand_ids);
        free(tp->jobs[r].cand_vals);
    }
    free(tp->jobs);
    free(tp);
}

/* True when (v, id) ranks before (w, jd): larger value, then lower id. */
static bool before(float v, int32_t id, float w, int32_t jd) { return v > w || (v == w && id < jd); }

/* The k best of n values (host), ordered as the backend topk op orders them. */
static void host_topk(const float *x, int64_t n, int k, int32_t id0, int32_t *ids, float *vals)
{
    int have = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = id0 + (int32_t)i;
        if (have == k && !before(x[i], id, vals[k - 1], ids[k - 1]))
            continue;
        int p = have < k ? have++ : k - 1;
        while (p > 0 && before(x[i], id, vals[p - 1], ids[p - 1])) {
            vals[p] = vals[p - 1];
            ids[p] = ids[p - 1];
            p--;
        }
        vals[p] = x[i];
        ids[p] = id;
    }
}

/* This rank's part of the step's results, on its thread. */
static int rank_results(rank_job *j)
{
    qr_decoder_state *st = j->st;
    qr_backend *be = st->m->be;
    qr_shard s = qr_model_shard(st->m);
    qr_tensor lg = qr_dec_logits(st, j->n_seq);
    int64_t n = (int64_t)j->n_seq * s.vocab;
    int rc;
    if (!j->want_logits && j->k == 0)
        return qr_be_sync(be);
    if (n > j->lg_cap) {
        float *b = realloc(j->lg, (size_t)n * sizeof(float));
        if (!b)
            return qr_fail(QR_ENOMEM, "tensor parallel: logits of %lld floats", (long long)n);
        j->lg = b;
        j->lg_cap = n;
    }
    if ((rc = be->ops->download(be, &lg, 0, j->lg, j->n_seq)) || (rc = qr_be_sync(be)))
        return rc;
    if (j->k > 0) {
        int kk = j->k < s.vocab ? j->k : s.vocab;
        free(j->cand_ids);
        free(j->cand_vals);
        j->cand_ids = malloc((size_t)j->n_seq * (size_t)kk * sizeof(int32_t));
        j->cand_vals = malloc((size_t)j->n_seq * (size_t)kk * sizeof(float));
        if (!j->cand_ids || !j->cand_vals)
            return qr_fail(QR_ENOMEM, "tensor parallel: top-k candidates");
        for (int i = 0; i < j->n_seq; i++)
            host_topk(j->lg + (size_t)i * s.vocab, s.vocab, kk, s.vocab0, j->cand_ids + (size_t)i * kk,
                      j->cand_vals + (size_t)i * kk);
    }
    return QR_OK;
}

static void rank_main(void *arg)
{
    rank_job *j = arg;
    j->rc = qr_dec_run(j->st, j->T, j->n_seq, j->head);
    if (!j->rc)
        j->rc = rank_results(j);
    if (j->rc) {
        snprintf(j->err, sizeof j->err, "%s", qr_last_error());
        qr_comm_abort(j->comm); /* the other ranks stop waiting for this one */
    }
}

/* Runs every rank's job; the first failing rank's error (a rank that only
 * saw the abort reports after the one that caused it). */
static int run_ranks(qr_dec_tp *tp)
{
    void *args[256];
    for (int r = 0; r < tp->n; r++)
        args[r] = &tp->jobs[r];
    qr_rank_pool_run(tp->pool, rank_main, args);
    int bad = -1;
    for (int r = 0; r < tp->n; r++)
        if (tp->jobs[r].rc && (bad < 0 || (tp->jobs[bad].rc == QR_ECANCELED && tp->jobs[r].rc != QR_ECANCELED)))
            bad = r;
    if (bad < 0)
        return QR_OK;
    qr_comm_reset(tp->jobs[0].comm);
    return qr_fail(tp->jobs[bad].rc, "tensor parallel: rank %d: %s", bad, tp->jobs[bad].err);
}

/* The n*k candidates of a sequence merged into its k best. */
static void merge_topk(qr_dec_tp *tp, int i, int k, int32_t *ids, float *vals)
{
    int32_t best_id[QR_BE_TOPK_MAX];
    float best_val[QR_BE_TOPK_MAX];
    int have = 0;
    for (int r = 0; r < tp->n; r++) {
        rank_job *j = &tp->jobs[r];
        int kk = k < qr_model_shard(j->st->m).vocab ? k : qr_model_shard(j->st->m).vocab;
        for (int c = 0; c < kk; c++) {
            int32_t id = j->cand_ids[(size_t)i * kk + c];
            float v = j->cand_vals[(size_t)i * kk + c];
            if (have == k && !before(v, id, best_val[k - 1], best_id[k - 1]))
                continue;
            int p = have < k ? have++ : k - 1;
            while (p > 0 && before(v, id, best_val[p - 1], best_id[p - 1])) {
                best_val[p] = best_val[p - 1];
                best_id[p] = best_id[p - 1];
                p--;
            }
            best_val[p] = v;
            best_id[p] = id;
        }
    }
    memcpy(ids + (size_t)i * k, best_id, (size_t)k * sizeof(int32_t));
    if (vals)
        memcpy(vals + (size_t)i * k, best_val, (size_t)k * sizeof(float));
}

int qr_dec_tp_step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits, int k, int32_t *ids,
                   float *vals)
{
    qr_dec_tp *tp = st->tp;
    int64_t T = 0;
    int rc;
    for (int r = 0; r < tp->n; r++) {
        rank_job *j = &tp->jobs[r];
        if ((rc = qr_dec_prepare(j->st, seqs, n_seq, &T)))
            return rc; /* the same checks on every rank: rank 0 reports */
        /* ids of this rank's vocabulary rows; the others read its zero row */
        qr_shard s = qr_model_shard(j->st->m);
        for (int64_t t = 0; t < T; t++) {
            int32_t id = j->st->ids[t];
            j->st->ids[t] = id >= s.vocab0 && id < s.vocab0 + s.vocab ? id - s.vocab0 : s.vocab;
        }
        j->T = T;
        j->n_seq = n_seq;
        j->k = k;
        j->head = logits || k > 0;
        j->want_logits = logits != NULL;
        j->rc = 0;
    }
    if ((rc = run_ranks(tp)))
        return rc;
    int V = st->m->cfg.vocab_size;
    for (int r = 0; logits && r < tp->n; r++) {
        qr_shard s = qr_model_shard(tp->jobs[r].st->m);
        for (int i = 0; i < n_seq; i++)
            memcpy(logits + (size_t)i * V + s.vocab0, tp->jobs[r].lg + (size_t)i * s.vocab,
                   (size_t)s.vocab * sizeof(float));
    }
    for (int i = 0; k > 0 && i < n_seq; i++)
        merge_topk(tp, i, k, ids, vals);
    for (int r = 0; r < tp->n; r++)
        qr_dec_commit(tp->jobs[r].st, seqs, n_seq);
    qr_dec_commit(st, seqs, n_seq);
    return QR_OK;
}
