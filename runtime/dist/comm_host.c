/* The in-process communicator: N ranks, one thread each, host buffers.
 *
 * Each collective is three phases separated by a barrier: every rank posts
 * its buffer's address; then each rank works on its share (all-reduce: the
 * sum of its chunk of the elements, over the ranks in rank order 0..N-1,
 * into a shared scratch; all-gather / broadcast: copies from the posted
 * buffers into its own); then, for all-reduce, each copies the scratch back
 * into its buffer; the last barrier keeps the posted buffers and scratch
 * alive until every rank is done with them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/dist/comm.h"

#define MAX_RANKS 256

typedef struct {
    qr_comm base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;          /* ranks at the current barrier */
    uint64_t generation;  /* barriers completed */
    bool aborted;
    const void *posted[MAX_RANKS];
    float *scratch;       /* all-reduce sums, grown by rank 0 before the first barrier */
    int64_t scratch_n;
} host_comm;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits until all ranks arrive; QR_ECANCELED once the communicator is aborted. */
static int barrier(qr_comm *cb, int rank)
{
    host_comm *c = (host_comm *)cb;
    (void)rank;
    pthread_mutex_lock(&c->mu);
    uint64_t gen = c->generation;
    if (!c->aborted && ++c->arrived == c->base.n_ranks) {
        c->arrived = 0;
        c->generation++;
        pthread_cond_broadcast(&c->cv);
    }
    while (!c->aborted && c->generation == gen)
        pthread_cond_wait(&c->cv, &c->mu);
    bool ab = c->aborted;
    pthread_mutex_unlock(&c->mu);
    return ab ? qr_fail(QR_ECANCELED, "communicator: another rank failed") : QR_OK;
}

static void host_abort(qr_comm *cb)
{
    host_comm *c = (host_comm *)cb;
    pthread_mutex_lock(&c->mu);
    c->aborted = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void host_reset(qr_comm *cb)
{
    host_comm *c = (host_comm *)cb;
    pthread_mutex_lock(&c->mu);
    c->aborted = false;
    c->arrived = 0;
    pthread_mutex_unlock(&c->mu);
}

static void count(qr_comm *c, int rank, bool ar, int64_t bytes, double t0)
{
    if (rank != 0)
        return;
    if (ar) {
        c->stats.n_allreduce++;
        c->stats.allreduce_bytes += (uint64_t)bytes;
    } else {
        c->stats.n_other++;
    }
    c->stats.seconds += now_s() - t0;
}

static float elem(const void *p, int64_t i, qr_dtype dt)
{
    return dt == QR_F32 ? ((const float *)p)[i] : qr_bf16_to_f32(((const uint16_t *)p)[i]);
}

static int host_allreduce(qr_comm *cb, int rank, void *buf, int64_t n, qr_dtype dt)
{
    host_comm *c = (host_comm *)cb;
    int N = cb->n_ranks, rc;
    if (dt != QR_F32 && dt != QR_BF16)
        return qr_fail(QR_EINVAL, "communicator: all-reduce of %s (f32 or bf16)", qr_dtype_name(dt));
    if (n < 0 || (n > 0 && !buf))
        return qr_fail(QR_EINVAL, "communicator: all-reduce of %lld elements", (long long)n);
    double t0 = now_s();
    if (N == 1 || n == 0) {
        count(cb, rank, true, n * (dt == QR_F32 ? 4 : 2), t0);
        return QR_OK;
    }
    c->posted[rank] = buf;
    if (rank == 0 && n > c->scratch_n) {
        float *s = realloc(c->scratch, (size_t)n * sizeof(float));
        if (!s) {
            host_abort(cb);
            return qr_fail(QR_ENOMEM, "communicator: %lld floats of scratch", (long long)n);
        }
        c->scratch = s;
        c->scratch_n = n;
    }
    if ((rc = barrier(cb, rank)))
        return rc;
    /* this rank's chunk, summed in rank order */
    int64_t per = (n + N - 1) / N, lo = per * rank, hi = lo + per < n ? lo + per : n;
    for (int64_t i = lo; i < hi; i++) {
        float s = elem(c->posted[0], i, dt);
        for (int r = 1; r < N; r++)
            s += elem(c->posted[r], i, dt);
        c->scratch[i] = s;
    }
    if ((rc = barrier(cb, rank)))
        return rc;
    if (dt == QR_F32) {
        memcpy(buf, c->scratch, (size_t)n * sizeof(float));
    } else {
        uint16_t *b = buf;
        for (int64_t i = 0; i < n; i++)
            b[i] = qr_f32_to_bf16(c->scratch[i]);
    }
    rc = barrier(cb, rank);
    count(cb, rank, true, n * (dt == QR_F32 ? 4 : 2), t0);
    return rc;
}

static int host_allgather(qr_comm *cb, int rank, const void *send, int64_t nbytes, void *recv)
{
    host_comm *c = (host_comm *)cb;
    double t0 = now_s();
    int rc;
    if (nbytes < 0)
        return qr_fail(QR_EINVAL, "communicator: all-gather of %lld bytes", (long long)nbytes);
    c->posted[rank] = send;
    if ((rc = barrier(cb, rank)))
        return rc;
    for (int r = 0; r < cb->n_ranks; r++)
        if (nbytes)
            memcpy((char *)recv + (size_t)r * (size_t)nbytes, c->posted[r], (size_t)nbytes);
    rc = barrier(cb, rank);
    count(cb, rank, false, 0, t0);
    return rc;
}

static int host_broadcast(qr_comm *cb, int rank, void *buf, int64_t nbytes, int root)
{
    host_comm *c = (host_comm *)cb;
    double t0 = now_s();
    int rc;
    if (root < 0 || root >= cb->n_ranks || nbytes < 0)
        return qr_fail(QR_EINVAL, "communicator: broadcast from rank %d of %d", root, cb->n_ranks);
    if (rank == root)
        c->posted[root] = buf;
    if ((rc = barrier(cb, rank)))
        return rc;
    if (rank != root && nbytes)
        memcpy(buf, c->posted[root], (size_t)nbytes);
    rc = barrier(cb, rank);
    count(cb, rank, false, 0, t0);
    return rc;
}

static int host_barrier(qr_comm *cb, int rank)
{
    double t0 = now_s();
    int rc = barrier(cb, rank);
    count(cb, rank, false, 0, t0);
    return rc;
}

static void host_destroy(qr_comm *cb)
{
    host_comm *c = (host_comm *)cb;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->scratch);
    free(c);
}

static const qr_comm_ops host_ops = {
    .name = "host",
    .allreduce = host_allreduce,
    .allgather = host_allgather,
    .broadcast = host_broadcast,
    .barrier = host_barrier,
    .abort = host_abort,
    .reset = host_reset,
    .destroy = host_destroy,
};

int qr_comm_host_create(int n_ranks, qr_comm **out)
{
    if (n_ranks < 1 || n_ranks > MAX_RANKS)
        return qr_fail(QR_EINVAL, "communicator: %d ranks (1..%d)", n_ranks, MAX_RANKS);
    host_comm *c = calloc(1, sizeof *c);
    if (!c)
        return qr_fail(QR_ENOMEM, "communicator");
    c->base.ops = &host_ops;
    c->base.n_ranks = n_ranks;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    *out = &c->base;
    return QR_OK;
}
