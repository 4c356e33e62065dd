/* CUDA backend: the optional graph ops (backend.h). A decode step of a small
 * model is a few hundred short kernels; launched one by one the CPU-side
 * launch cost, not the GPU, sets the token rate. Captured once into a CUDA
 * graph, a step becomes one launch.
 *
 * What makes replays correct with new inputs: every host array an op takes
 * goes through qr_cuda_stage, which during capture lands here
 * (qr_cuda_graph_stage): the bytes are copied into a pinned buffer owned by
 * the graph and the host->device copy from that pinned buffer is recorded
 * as a graph node. The host address the op was given is remembered, and
 * graph_launch copies each remembered host array into its pinned slot again
 * before replaying, so the recorded copies carry the new step's ids,
 * positions, cache rows and sequence descriptors. Kernels whose work
 * depends on those values read them on the device (attention derives its
 * key ranges from n_kv there; cuda_attention.cu). The backend's ops promise
 * not to branch on staged values while capturing (cuda_internal.h).
 *
 * Capture uses cudaStreamCaptureModeThreadLocal: other threads driving
 * other backends (allocating, synchronising) are not affected; threads
 * sharing this backend wait on its lock, which graph_begin keeps until
 * graph_end. */
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/cuda_internal.h"

/* Graph-owned staging (pinned host and device, the same size). */
#define QR_GRAPH_STAGE_BYTES ((size_t)1 << 20)
#define QR_GRAPH_STAGE_ALIGN 64

typedef struct {
    const void *host; /* the caller's array, read again at each launch */
    void *pin;        /* its slot in the pinned buffer */
    size_t bytes;
} stage_rec;

struct qr_cuda_capture {
    stage_rec *recs;
    int n, cap;
    void *pin, *dev;
    size_t off;
    int err; /* first staging failure (the capture is then discarded) */
};

struct qr_be_graph {
    cudaGraphExec_t exec;
    stage_rec *recs;
    int n;
    void *pin, *dev;
    cudaEvent_t done; /* recorded after each replay: the pinned slots may be rewritten */
    bool launched;
};

static void capture_free(struct qr_cuda_capture *c)
{
    if (!c)
        return;
    free(c->recs);
    if (c->pin)
        cudaFreeHost(c->pin);
    if (c->dev)
        cudaFree(c->dev);
    free(c);
}

extern "C" int qr_cuda_graph_begin(qr_backend *be)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    if (cb->capture)
        return qr_fail(QR_EINVAL, "cuda: graph_begin: a capture is already running");
    int urc = qr_cuda_use(cb);
    if (urc)
        return urc;
    struct qr_cuda_capture *c = (struct qr_cuda_capture *)calloc(1, sizeof *c);
    if (!c)
        return qr_fail(QR_ENOMEM, "cuda: graph capture");
    int rc;
    /* allocations first: nothing may allocate synchronously once capturing */
    if ((rc = qr_cuda_check(cudaMallocHost(&c->pin, QR_GRAPH_STAGE_BYTES), "cuda: graph staging (pinned)")) ||
        (rc = qr_cuda_check(cudaMalloc(&c->dev, QR_GRAPH_STAGE_BYTES), "cuda: graph staging (device)")) ||
        (rc = qr_cuda_check(cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal),
                            "cuda: cudaStreamBeginCapture"))) {
        capture_free(c);
        return rc;
    }
    cb->capture = c;
    /* Hold the backend's (recursive) lock until graph_end: another thread's
     * ops on this stream would otherwise be recorded into the graph. The op
     * wrapper's own level is released when this call returns; this one stays. */
    pthread_mutex_lock(&cb->stage_mu);
    return QR_OK;
}

extern "C" int qr_cuda_graph_stage(qr_cuda_backend *cb, const void *host, size_t bytes, void **dev)
{
    struct qr_cuda_capture *c = cb->capture;
    if (!c)
        return qr_fail(QR_EINTERNAL, "cuda: graph staging outside a capture");
    size_t off = (c->off + QR_GRAPH_STAGE_ALIGN - 1) / QR_GRAPH_STAGE_ALIGN * QR_GRAPH_STAGE_ALIGN;
    if (bytes > QR_GRAPH_STAGE_BYTES || off > QR_GRAPH_STAGE_BYTES - bytes) {
        c->err = QR_ELIMIT;
        return qr_fail(QR_ELIMIT, "cuda: graph staging: %zu bytes of host arrays exceed %zu", off + bytes,
                       QR_GRAPH_STAGE_BYTES);
    }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 64;
        stage_rec *r = (stage_rec *)realloc(c->recs, (size_t)nc * sizeof *r);
        if (!r) {
            c->err = QR_ENOMEM;
            return qr_fail(QR_ENOMEM, "cuda: graph staging records");
        }
        c->recs = r;
        c->cap = nc;
    }
    uint8_t *pin = (uint8_t *)c->pin + off, *d = (uint8_t *)c->dev + off;
    if (bytes)
        memcpy(pin, host, bytes);
    cudaError_t e = cudaMemcpyAsync(d, pin, bytes, cudaMemcpyHostToDevice, cb->stream);
    if (e != cudaSuccess) {
        c->err = QR_EBACKEND;
        return qr_cuda_check(e, "cuda: graph staging copy");
    }
    c->recs[c->n++] = (stage_rec){host, pin, bytes};
    c->off = off + bytes;
    *dev = d;
    return QR_OK;
}

extern "C" void qr_cuda_graph_free(qr_backend *be, qr_be_graph *g)
{
    if (!g)
        return;
    (void)qr_cuda_use(qr_cuda_of(be)); /* cudaFree on the graph's device */
    if (g->launched)
        cudaEventSynchronize(g->done);
    if (g->exec)
        cudaGraphExecDestroy(g->exec);
    if (g->done)
        cudaEventDestroy(g->done);
    if (g->pin)
        cudaFreeHost(g->pin);
    if (g->dev)
        cudaFree(g->dev);
    free(g->recs);
    free(g);
}

extern "C" int qr_cuda_graph_end(qr_backend *be, qr_be_graph **out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    struct qr_cuda_capture *c = cb->capture;
    if (!c)
        return qr_fail(QR_EINVAL, "cuda: graph_end without graph_begin");
    cb->capture = NULL;
    pthread_mutex_unlock(&cb->stage_mu); /* taken by graph_begin; the op wrapper holds its own level */
    (void)qr_cuda_use(cb); /* instantiation and events on the backend's device */
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cb->stream, &graph); /* always: leaves capture mode */
    int rc = QR_OK;
    qr_be_graph *g = NULL;
    if (e != cudaSuccess || !graph) {
        rc = qr_cuda_check(e != cudaSuccess ? e : cudaErrorStreamCaptureInvalidated, "cuda: cudaStreamEndCapture");
        goto fail;
    }
    if (c->err) {
        rc = qr_fail(c->err, "cuda: graph_end: an op failed to stage its inputs while capturing");
        goto fail;
    }
    g = (qr_be_graph *)calloc(1, sizeof *g);
    if (!g) {
        rc = qr_fail(QR_ENOMEM, "cuda: graph");
        goto fail;
    }
    if ((rc = qr_cuda_check(cudaGraphInstantiate(&g->exec, graph, 0), "cuda: cudaGraphInstantiate")) ||
        (rc = qr_cuda_check(cudaEventCreateWithFlags(&g->done, cudaEventDisableTiming), "cuda: graph event")))
        goto fail;
    cudaGraphDestroy(graph);
    g->recs = c->recs;
    g->n = c->n;
    g->pin = c->pin;
    g->dev = c->dev;
    c->recs = NULL;
    c->pin = c->dev = NULL;
    capture_free(c);
    *out = g;
    return QR_OK;
fail:
    if (graph)
        cudaGraphDestroy(graph);
    qr_cuda_graph_free(be, g);
    capture_free(c);
    cudaGetLastError(); /* a failed capture can leave its (non-sticky) error behind: clear it */
    return rc;
}

extern "C" int qr_cuda_graph_launch(qr_backend *be, qr_be_graph *g)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    if (!g)
        return qr_fail(QR_EINVAL, "cuda: graph_launch: no graph");
    if (cb->capture)
        return qr_fail(QR_EINVAL, "cuda: graph_launch while capturing");
    int rc;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    /* the previous replay must have read the pinned slots before they change */
    if (g->launched && (rc = qr_cuda_check(cudaEventSynchronize(g->done), "cuda: graph_launch: wait")))
        return rc;
    for (int i = 0; i < g->n; i++)
        if (g->recs[i].bytes)
            memcpy(g->recs[i].pin, g->recs[i].host, g->recs[i].bytes);
    if ((rc = qr_cuda_check(cudaGraphLaunch(g->exec, cb->stream), "cuda: cudaGraphLaunch")) ||
        (rc = qr_cuda_check(cudaEventRecord(g->done, cb->stream), "cuda: graph_launch: event")))
        return rc;
    g->launched = true;
    return QR_OK;
}
