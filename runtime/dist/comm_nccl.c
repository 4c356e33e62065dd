/* The NCCL communicator: one rank per GPU of this process (ncclCommInitAll),
 * buffers in device memory, each collective enqueued on its rank's stream
 * (the rank's CUDA backend stream), so it orders with the model's kernels
 * without a host wait. Built with the meson feature `nccl`.
 *
 * UNVERIFIED: compiled only; no machine this was written on has two GPUs.
 * Multi-node (ranks from srun, the unique id through the shared file
 * system) is designed in DESIGN.md and not built. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <time.h>

#include "common/error.h"
#include "runtime/dist/comm.h"

typedef struct {
    qr_comm base;
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

static int n_allreduce(qr_comm *cb, int rank, void *buf, int64_t n, qr_dtype dt)
{
    nccl_comm *c = (nccl_comm *)cb;
    double t0 = now_s();
    if (dt != QR_F32 && dt != QR_BF16)
        return qr_fail(QR_EINVAL, "communicator: all-reduce of %s (f32 or bf16)", qr_dtype_name(dt));
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
    ncclResult_t r = ncclAllGather(send, recv, (size_t)nbytes, ncclUint8, c->comms[rank], c->streams[rank]);
    if (rank == 0)
        cb->stats.n_other++;
    return r == ncclSuccess ? QR_OK : nccl_err(r, "all-gather", rank);
}

static int n_broadcast(qr_comm *cb, int rank, void *buf, int64_t nbytes, int root)
{
    nccl_comm *c = (nccl_comm *)cb;
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
    for (int i = 0; i < cb->n_ranks; i++)
        ncclCommAbort(c->comms[i]);
}

static void n_reset(qr_comm *cb) { (void)cb; /* an aborted NCCL communicator is recreated by its owner */ }

static void n_destroy(qr_comm *cb)
{
    nccl_comm *c = (nccl_comm *)cb;
    for (int i = 0; c->comms && i < cb->n_ranks; i++)
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
        return qr_fail(QR_EBACKEND, "NCCL: initialising %d GPUs: %s", n, ncclGetErrorString(r));
    }
    *out = &c->base;
    return QR_OK;
}
