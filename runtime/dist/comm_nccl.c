/* The NCCL communicator: one rank per GPU of this process (ncclCommInitAll),
 * buffers in device memory, each collective enqueued on its rank's stream
 * (the rank's CUDA backend stream), so it orders with the model's kernels
 * without a host wait. Built with the meson feature `nccl`.
 *
 * The model uses it (qr_comm_create_for, qr_comm_choose) when every rank of
 * a group is a CUDA backend on its own GPU: the decoder's all-reduces run in
 * place on the activation's device buffer, one host thread per GPU (the
 * model's rank pool). A failing rank aborts every rank's communicator (the
 * others' kernels would otherwise wait for it forever); reset, called when no
 * rank is inside a collective, creates them again (ncclCommInitAll).
 *
 * UNVERIFIED: compiled only; no machine this was written on has two GPUs.
 * Multi-node (ranks from srun, the unique id through the shared file
 * system) is designed in DESIGN.md and not built. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/dist/comm.h"

typedef struct {
    qr_comm base;
    bool aborted;          /* comms were aborted (NULL) until reset */
    ncclComm_t *comms;     /* n_ranks */
    cudaStream_t *streams; /* n_ranks, borrowed */
    int *devs;
} nccl_comm;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int nccl_err(ncclResult_t r, const char *what, int rank)
{
    return qr_fail(QR_EBACKEND, "NCCL %s on rank %d: %s", what, rank, ncclGetErrorString(r));
}

/* Before a collective of rank: not aborted, the rank's GPU current on this thread. */
static int use(nccl_comm *c, int rank)
{
    if (__atomic_load_n(&c->aborted, __ATOMIC_ACQUIRE))
        return qr_fail(QR_ECANCELED, "communicator: another rank failed");
    cudaError_t e = cudaSetDevice(c->devs[rank]);
    return e == cudaSuccess ? QR_OK
                            : qr_fail(QR_EBACKEND, "NCCL rank %d: cudaSetDevice(%d): %s", rank, c->devs[rank],
                                      cudaGetErrorString(e));
}

static int n_allreduce(qr_comm *cb, int rank, void *buf, int64_t n, qr_dtype dt)
{
    nccl_comm *c = (nccl_comm *)cb;
    double t0 = now_s();
    if (dt != QR_F32 && dt != QR_BF16)
        return qr_fail(QR_EINVAL, "communicator: all-reduce of %s (f32 or bf16)", qr_dtype_name(dt));
    int rc = use(c, rank);
    if (rc)
        return rc;
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)n, dt == QR_F32 ? ncclFloat32 : ncclBfloat16, ncclSum,
                                   c->comms[rank], c->streams[rank]);
    if (r != ncclSuccess)
        return nccl_err(r, "all-reduce", rank);
    if (rank == 0) {
        cb->stats.n_allreduce++;
        cb->stats.allreduce_bytes += (uint64_t)n * (dt == QR_F32 ? 4 : 2);
        cb->stats.seconds += now_s() - t0; /* enqueue time only: the transfer runs on the stream */
    }
    return QR_OK;
}

static int n_allgather(qr_comm *cb, int rank, const void *send, int64_t nbytes, void *recv)
{
    nccl_comm *c = (nccl_comm *)cb;
    int rc = use(c, rank);
    if (rc)
        return rc;
    ncclResult_t r = ncclAllGather(send, recv, (size_t)nbytes, ncclUint8, c->comms[rank], c->streams[rank]);
    if (rank == 0)
        cb->stats.n_other++;
    return r == ncclSuccess ? QR_OK : nccl_err(r, "all-gather", rank);
}

static int n_broadcast(qr_comm *cb, int rank, void *buf, int64_t nbytes, int root)
{
    nccl_comm *c = (nccl_comm *)cb;
    int rc = use(c, rank);
    if (rc)
        return rc;
    ncclResult_t r = ncclBroadcast(buf, buf, (size_t)nbytes, ncclUint8, root, c->comms[rank], c->streams[rank]);
    if (rank == 0)
        cb->stats.n_other++;
    return r == ncclSuccess ? QR_OK : nccl_err(r, "broadcast", rank);
}

/* A barrier on the device side: an all-reduce of nothing orders the streams;
 * the host waits for its own stream. */
static int n_barrier(qr_comm *cb, int rank)
{
    nccl_comm *c = (nccl_comm *)cb;
    int rc = use(c, rank);
    if (rc)
        return rc;
    ncclResult_t r = ncclAllReduce(NULL, NULL, 0, ncclFloat32, ncclSum, c->comms[rank], c->streams[rank]);
    if (r != ncclSuccess)
        return nccl_err(r, "barrier", rank);
    cudaError_t e = cudaStreamSynchronize(c->streams[rank]);
    if (rank == 0)
        cb->stats.n_other++;
    return e == cudaSuccess ? QR_OK : qr_fail(QR_EBACKEND, "barrier on rank %d: %s", rank, cudaGetErrorString(e));
}

static void n_abort(qr_comm *cb)
{
    nccl_comm *c = (nccl_comm *)cb;
    if (__atomic_exchange_n(&c->aborted, true, __ATOMIC_ACQ_REL))
        return; /* another rank aborted first */
    for (int i = 0; i < cb->n_ranks; i++)
        if (c->comms[i])
            ncclCommAbort(c->comms[i]);
}

/* After an abort, with no rank inside a collective: new communicators. On
 * failure the group stays aborted (every later collective QR_ECANCELED). */
static void n_reset(qr_comm *cb)
{
    nccl_comm *c = (nccl_comm *)cb;
    if (!c->aborted)
        return;
    memset(c->comms, 0, (size_t)cb->n_ranks * sizeof *c->comms);
    if (ncclCommInitAll(c->comms, cb->n_ranks, c->devs) == ncclSuccess)
        __atomic_store_n(&c->aborted, false, __ATOMIC_RELEASE);
    else
        memset(c->comms, 0, (size_t)cb->n_ranks * sizeof *c->comms);
}

static void n_destroy(qr_comm *cb)
{
    nccl_comm *c = (nccl_comm *)cb;
    for (int i = 0; c->comms && !c->aborted && i < cb->n_ranks; i++)
        if (c->comms[i])
            ncclCommDestroy(c->comms[i]);
    free(c->comms);
    free(c->streams);
    free(c->devs);
    free(c);
}

static const qr_comm_ops nccl_ops = {
    .name = "nccl",
    .allreduce = n_allreduce,
    .allgather = n_allgather,
    .broadcast = n_broadcast,
    .barrier = n_barrier,
    .abort = n_abort,
    .reset = n_reset,
    .destroy = n_destroy,
};

bool qr_nccl_built(void) { return true; }

int qr_comm_nccl_create(const int *devs, void *const *streams, int n, qr_comm **out)
{
    if (n < 1 || !devs || !streams || !out)
        return qr_fail(QR_EINVAL, "NCCL communicator: %d ranks", n);
    nccl_comm *c = calloc(1, sizeof *c);
    if (!c || !(c->comms = calloc((size_t)n, sizeof *c->comms)) ||
        !(c->streams = calloc((size_t)n, sizeof *c->streams)) || !(c->devs = calloc((size_t)n, sizeof *c->devs))) {
        if (c) {
            free(c->comms);
            free(c->streams);
            free(c->devs);
        }
        free(c);
        return qr_fail(QR_ENOMEM, "NCCL communicator");
    }
    c->base.ops = &nccl_ops;
    c->base.n_ranks = n;
    for (int i = 0; i < n; i++) {
        c->devs[i] = devs[i];
        c->streams[i] = (cudaStream_t)streams[i];
    }
    ncclResult_t r = ncclCommInitAll(c->comms, n, c->devs);
    if (r != ncclSuccess) {
        free(c->comms);
        c->comms = NULL;
        n_destroy(&c->base);
        return qr_fail(QR_EBACKEND, "NCCL: initialising %d GPUs (ncclCommInitAll): %s", n, ncclGetErrorString(r));
    }
    *out = &c->base;
    return QR_OK;
}
