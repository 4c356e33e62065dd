/* The CUDA backend (runtime/backend.h): one device, one non-blocking stream,
 * a cuBLASLt handle and its workspace; device listing for
 * --device auto; memory, upload/download and the small-array staging ring.
 *
 * Ordering: every op is enqueued on cb->stream. upload() returns once the host
 * data is copied out (cudaMemcpy*Async from pageable memory stages it before
 * returning); download() waits for the stream, so dst is filled on return.
 * Small host arrays (ids, positions, descriptors) go through qr_cuda_stage:
 * copied into pinned memory and sent on the stream ahead of the kernel that
 * reads them, so the caller can reuse its array at once.
 *
 * Threads: every entry of the ops table takes the backend's (recursive) lock
 * for the whole op, so a backend may be called from several threads (the
 * service's connection threads sharing an embedder): each op's staging and
 * launches stay together on the one stream, and cuBLAS handles are never used
 * concurrently. Graph capture (cuda_graph.cu) is the exception: only the
 * capturing thread may use the backend between graph_begin and graph_end.
 *
 * Errors: every CUDA/cuBLASLt status is translated once (qr_cuda_check) into
 * QR_EBACKEND with CUDA's message, except allocation failures, which are
 * QR_ENOMEM "cuda: out of GPU memory: WHAT: BYTES ..." (qr_cuda_check_alloc);
 * nothing here aborts. A launch failure or a
 * fault inside a kernel surfaces at the next check or sync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/cuda_internal.h"
#include "runtime/cuda/cuda_quant.h"

#define QR_CUDA_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLAS(Lt): 32 MiB is NVIDIA's advice for Hopper */
#define QR_CUDA_STAGE_BYTES ((size_t)1 << 20)      /* first size of the staging ring */
#define QR_CUDA_STAGE_ALIGN 256

/* ------------------------------------------------------------ errors, checks */

extern "C" int qr_cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return QR_OK;
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    if (!strncmp(what, "cuda: ", 6)) /* callers that name the backend themselves: say it once */
        what += 6;
    return qr_fail(QR_EBACKEND, "cuda: %s: %s (%d)", what, cudaGetErrorString(e), (int)e);
}

extern "C" int qr_cublas_check(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return QR_OK;
    if (!strncmp(what, "cuda: ", 6))
        what += 6;
    return qr_fail(QR_EBACKEND, "cuda: %s: %s (%d)", what, cublasLtGetStatusString(s), (int)s);
}

extern "C" int qr_cuda_launched(const char *what) { return qr_cuda_check(cudaGetLastError(), what); }

extern "C" int qr_cuda_use(qr_cuda_backend *cb)
{
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur == cb->device)
        return QR_OK;
    return qr_cuda_check(cudaSetDevice(cb->device), "cudaSetDevice");
}

extern "C" size_t qr_cuda_elem_size(qr_dtype dt)
{
    switch (dt) {
    case QR_F32: case QR_I32: return 4;
    case QR_F16: case QR_BF16: return 2;
    case QR_I8: return 1;
    default: return 0;
    }
}

extern "C" int qr_cuda_check_tensor(const qr_tensor *t, const char *op, const char *name)
{
    if (!t)
        return qr_fail(QR_EINVAL, "cuda: %s: %s is NULL", op, name);
    if (qr_cq_kept(t->dtype)) { /* GGUF blocks as stored (weights only: weight_load makes them) */
        int blk = qr_cq_block_values(t->dtype);
        size_t rb = qr_dtype_row_bytes(t->dtype, t->cols);
        if (t->ql.kind != QR_QL_GGUF || t->ql.block != blk || t->rows < 0 || t->cols <= 0 || t->cols % blk || !rb ||
            t->row_bytes < rb || t->row_bytes % 2)
            return qr_fail(QR_EINVAL, "cuda: %s: %s: %s tensor (%lld, %lld) without its GGUF block layout", op, name,
                           qr_dtype_name(t->dtype), (long long)t->rows, (long long)t->cols);
        if (!t->data && t->rows > 0)
            return qr_fail(QR_EINVAL, "cuda: %s: %s: no data", op, name);
        return QR_OK;
    }
    size_t es = qr_cuda_elem_size(t->dtype);
    if (!es)
        return qr_fail(QR_EINVAL, "cuda: %s: %s: dtype %s is not a tensor type", op, name, qr_dtype_name(t->dtype));
    if (t->rows < 0 || t->cols < 0)
        return qr_fail(QR_EINVAL, "cuda: %s: %s: negative shape (%lld, %lld)", op, name, (long long)t->rows,
                       (long long)t->cols);
    if (t->row_bytes < (size_t)t->cols * es || t->row_bytes % es)
        return qr_fail(QR_EINVAL, "cuda: %s: %s: row_bytes %zu does not fit %lld %s columns", op, name, t->row_bytes,
                       (long long)t->cols, qr_dtype_name(t->dtype));
    if (!t->data && t->rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cuda: %s: %s: no data", op, name);
    if (t->dtype == QR_I8 && !t->scale && t->rows > 0)
        return qr_fail(QR_EINVAL, "cuda: %s: %s: %s tensor without scales", op, name, qr_dtype_name(t->dtype));
    return QR_OK;
}

extern "C" int qr_cuda_check_act(const qr_tensor *t, const char *op, const char *name)
{
    int rc = qr_cuda_check_tensor(t, op, name);
    if (rc)
        return rc;
    if (t->dtype != QR_F32 && t->dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cuda: %s: %s must be an activation (f32 or bf16), got %s", op, name,
                       qr_dtype_name(t->dtype));
    return QR_OK;
}

extern "C" int qr_cuda_check_shape(const qr_tensor *t, int64_t rows, int64_t cols, const char *op, const char *name)
{
    if (t->rows != rows || t->cols != cols)
        return qr_fail(QR_EINVAL, "cuda: %s: %s is (%lld, %lld), expected (%lld, %lld)", op, name, (long long)t->rows,
                       (long long)t->cols, (long long)rows, (long long)cols);
    return QR_OK;
}

extern "C" bool qr_cuda_overlaps(const qr_tensor *a, const qr_tensor *b)
{
    if (a->rows == 0 || b->rows == 0 || !a->data || !b->data)
        return false;
    const char *a0 = (const char *)a->data, *b0 = (const char *)b->data;
    const char *a1 = a0 + (size_t)(a->rows - 1) * a->row_bytes + a->row_bytes;
    const char *b1 = b0 + (size_t)(b->rows - 1) * b->row_bytes + b->row_bytes;
    return a0 < b1 && b0 < a1;
}

/* ------------------------------------------------------------ device listing */

static char why_none[512];

static void set_why(const char *what, cudaError_t e)
{
    snprintf(why_none, sizeof why_none, "%s: %s (%d)", what, cudaGetErrorString(e), (int)e);
    (void)cudaGetLastError();
}

extern "C" bool qr_cuda_built(void) { return true; }

extern "C" const char *qr_cuda_why_none(void) { return why_none; }

static void format_uuid(const cudaUUID_t *u, char *out, size_t len)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Backends alive per device ordinal. Listing a device creates its primary
 * context (free memory needs one; cudaSetDevice makes it in CUDA 12+);
 * qr_cuda_devices releases it again where no backend of this process uses the
 * device, so a process never keeps a context (~0.5 GB, and the device itself
 * in exclusive-process mode) on GPUs it only looked at. */
#define QR_CUDA_MAX_DEVICES 256
static pthread_mutex_t dev_mu = PTHREAD_MUTEX_INITIALIZER;
static int dev_users[QR_CUDA_MAX_DEVICES];

static int devices_locked(qr_gpu_info *out, int max, int *n);

static bool dev_used(int i) { return i >= 0 && i < QR_CUDA_MAX_DEVICES && dev_users[i] > 0; }

extern "C" int qr_cuda_devices(qr_gpu_info *out, int max, int *n)
{
    pthread_mutex_lock(&dev_mu);
    int rc = devices_locked(out, max, n);
    pthread_mutex_unlock(&dev_mu);
    return rc;
}

static int devices_locked(qr_gpu_info *out, int max, int *n)
{
    int count = 0, found = 0;
    why_none[0] = '\0';
    if (n)
        *n = 0;
    if (max < 0 || (!out && max > 0))
        return qr_fail(QR_EINVAL, "cuda: devices: bad output array (%d entries)", max);
    /* Any error here (no driver: 35, stub libcuda: 34, no device: 100) means no GPU. */
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        set_why("cudaGetDeviceCount", e);
        return QR_OK;
    }
    if (count == 0) {
        snprintf(why_none, sizeof why_none, "cudaGetDeviceCount: no CUDA device visible (CUDA_VISIBLE_DEVICES?)");
        return QR_OK;
    }
    int prev = -1;
    bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    for (int i = 0; i < count && found < max; i++) {
        cudaDeviceProp p;
        size_t free_b = 0, total_b = 0;
        /* Free memory needs a context on the device: a device that cannot give
         * one (exclusive mode taken, fallen off the bus) is not usable. */
        if ((e = cudaGetDeviceProperties(&p, i)) == cudaSuccess && (e = cudaSetDevice(i)) == cudaSuccess)
            e = cudaMemGetInfo(&free_b, &total_b);
        if (!dev_used(i))
            (void)cudaDeviceReset(); /* the context this listing made (see dev_users) */
        if (e != cudaSuccess) {
            char what[64];
            snprintf(what, sizeof what, "device %d", i);
            set_why(what, e);
            continue;
        }
        qr_gpu_info *g = &out[found++];
        memset(g, 0, sizeof *g);
        g->index = i;
        snprintf(g->name, sizeof g->name, "%.127s", p.name);
        g->cc_major = p.major;
        g->cc_minor = p.minor;
        g->total_bytes = total_b ? total_b : p.totalGlobalMem;
        g->free_bytes = free_b;
        format_uuid(&p.uuid, g->uuid, sizeof g->uuid);
    }
    if (have_prev && dev_used(prev)) /* setting an unused device would make its context again */
        (void)cudaSetDevice(prev);
    (void)cudaGetLastError();
    if (found > 0)
        why_none[0] = '\0';
    if (n)
        *n = found;
    return QR_OK;
}

/* ------------------------------------------------------------ staging, scratch */

extern "C" int qr_cuda_check_alloc(qr_cuda_backend *cb, cudaError_t e, const char *what, size_t bytes)
{
    if (e != cudaErrorMemoryAllocation)
        return qr_cuda_check(e, what);
    size_t fr = 0, tot = 0;
    (void)cudaGetLastError();
    (void)cudaMemGetInfo(&fr, &tot);
    (void)cudaGetLastError();
    return qr_fail(QR_ENOMEM, "cuda: out of GPU memory: %s: %zu bytes on device %d (%zu of %zu MiB free)", what, bytes,
                   cb->device, fr >> 20, tot >> 20);
}

extern "C" int qr_cuda_check_host_alloc(cudaError_t e, const char *what, size_t bytes)
{
    if (e != cudaErrorMemoryAllocation)
        return qr_cuda_check(e, what);
    (void)cudaGetLastError();
    return qr_fail(QR_ENOMEM, "cuda: out of pinned host memory: %s: %zu bytes", what, bytes);
}

static void free_retired(qr_cuda_backend *cb)
{
    for (int i = 0; i < cb->n_retired; i++) {
        cudaFreeHost(cb->retired_host[i]);
        cudaFree(cb->retired_dev[i]);
    }
    cb->n_retired = 0;
}

extern "C" void qr_cuda_stage_synced(qr_cuda_backend *cb)
{
    if (cb->op_depth > 1) /* inside another op that may have staged arrays it has yet to launch on */
        return;
    free_retired(cb);
    qr_stage_synced(&cb->ring);
}

extern "C" int qr_cuda_stage(qr_cuda_backend *cb, const void *host, size_t bytes, void **dev)
{
    int rc = QR_OK;
    size_t need = (bytes + QR_CUDA_STAGE_ALIGN - 1) / QR_CUDA_STAGE_ALIGN * QR_CUDA_STAGE_ALIGN;
    if (cb->capture) /* recording a graph: staging the graph owns and refreshes at each launch */
        return qr_cuda_graph_stage(cb, host, bytes, dev);
    if (bytes == 0) {
        *dev = (char *)cb->stage_dev + (cb->ring.off < cb->ring.cap ? cb->ring.off : 0);
        return QR_OK;
    }
    if (!host)
        return qr_fail(QR_EINVAL, "cuda: stage: NULL host array of %zu bytes", bytes);
    pthread_mutex_lock(&cb->stage_mu);
    {
        qr_stage_ring r = cb->ring; /* committed only once the action has succeeded */
        size_t nc = 0, at = 0;
        qr_stage_action a = qr_stage_plan(&r, need, &nc, &at);
        if (a != QR_STAGE_PLACE &&
            (rc = qr_cuda_check(cudaStreamSynchronize(cb->stream), "stage: cudaStreamSynchronize")))
            goto out; /* pinned bytes below off may still be read by copies in flight */
        if (a == QR_STAGE_GROW) {
            void *h = NULL, *d = NULL;
            if (cb->n_retired == QR_CUDA_MAX_RETIRED) {
                rc = qr_fail(QR_ELIMIT, "cuda: stage: %d staging buffers outgrown without a sync", cb->n_retired);
                goto out;
            }
            if ((rc = qr_cuda_check_host_alloc(cudaMallocHost(&h, nc), "stage: pinned staging", nc)))
                goto out;
            if ((rc = qr_cuda_check_alloc(cb, cudaMalloc(&d, nc), "stage: device staging", nc))) {
                cudaFreeHost(h);
                goto out;
            }
            /* an array this op staged before may live in the old buffer and
             * be read by the kernel it launches next: free at the next sync */
            cb->retired_host[cb->n_retired] = cb->stage_host;
            cb->retired_dev[cb->n_retired++] = cb->stage_dev;
            cb->stage_host = h;
            cb->stage_dev = d;
        }
        char *hp = (char *)cb->stage_host + at, *dp = (char *)cb->stage_dev + at;
        memcpy(hp, host, bytes);
        if ((rc = qr_cuda_check(cudaMemcpyAsync(dp, hp, bytes, cudaMemcpyHostToDevice, cb->stream),
                                "stage: cudaMemcpyAsync")))
            goto out;
        cb->ring = r;
        *dev = dp;
    }
out:
    pthread_mutex_unlock(&cb->stage_mu);
    return rc;
}

/* ------------------------------------------------------------ memory */

static int cuda_tensor_alloc(qr_backend *be, qr_dtype dt, int64_t rows, int64_t cols, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    size_t es = qr_cuda_elem_size(dt);
    int rc;
    if (!es) /* GGUF block tensors come from weight_load only */
        return qr_fail(QR_EINVAL, "cuda: tensor_alloc: dtype %s is not a tensor type", qr_dtype_name(dt));
    if (rows < 0 || cols < 0 || (cols > 0 && (uint64_t)rows > (UINT64_MAX / 2) / ((uint64_t)cols * es)))
        return qr_fail(QR_EINVAL, "cuda: tensor_alloc: bad shape (%lld, %lld)", (long long)rows, (long long)cols);
    if ((rc = qr_cuda_use(cb)))
        return rc;
    qr_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.rows = rows;
    t.cols = cols;
    t.row_bytes = (size_t)cols * es;
    t.owned = true;
    size_t bytes = (t.row_bytes * (size_t)rows + 255) / 256 * 256;
    cudaError_t e = cudaMalloc(&t.data, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&fr, &tot);
        return qr_fail(QR_ENOMEM,
                       "cuda: out of GPU memory: tensor_alloc: %zu bytes for (%lld, %lld) %s on device %d "
                       "(%zu of %zu MiB free): %s",
                       bytes, (long long)rows, (long long)cols, qr_dtype_name(dt), cb->device, fr >> 20, tot >> 20,
                       cudaGetErrorString(e));
    }
    if (dt == QR_I8) {
        e = cudaMalloc((void **)&t.scale, (rows ? (size_t)rows : 1) * sizeof(float));
        if (e != cudaSuccess) {
            cudaFree(t.data);
            (void)cudaGetLastError();
            return qr_fail(QR_ENOMEM, "cuda: tensor_alloc: scales for %lld rows: %s", (long long)rows,
                           cudaGetErrorString(e));
        }
    }
    *out = t;
    return QR_OK;
}

static void cuda_tensor_free(qr_backend *be, qr_tensor *t)
{
    if (!t)
        return;
    if (t->owned) {
        /* cudaFree waits for work using the memory; the device must be ours */
        (void)qr_cuda_use(qr_cuda_of(be));
        if (t->data)
            cudaFree(t->data);
        if (t->scale)
            cudaFree(t->scale);
    }
    memset(t, 0, sizeof *t);
}

static int check_row_range(const qr_tensor *t, int64_t row0, int64_t rows, const char *op)
{
    if (row0 < 0 || rows < 0 || row0 > t->rows || rows > t->rows - row0)
        return qr_fail(QR_EINVAL, "cuda: %s: rows %lld..%lld outside tensor of %lld rows", op, (long long)row0,
                       (long long)(row0 + rows), (long long)t->rows);
    return QR_OK;
}

static int cuda_upload(qr_backend *be, qr_tensor *t, int64_t row0, const float *src, int64_t rows)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_tensor(t, "upload", "t")) || (rc = check_row_range(t, row0, rows, "upload")))
        return rc;
    if (t->dtype != QR_F32 && t->dtype != QR_F16 && t->dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cuda: upload: cannot upload f32 into a %s tensor", qr_dtype_name(t->dtype));
    if (rows == 0 || t->cols == 0)
        return QR_OK;
    if (!src)
        return qr_fail(QR_EINVAL, "cuda: upload: src is NULL");
    if ((rc = qr_cuda_use(cb)))
        return rc;
    size_t w = (size_t)t->cols * sizeof(float);
    if (t->dtype == QR_F32)
        return qr_cuda_check(cudaMemcpy2DAsync((char *)t->data + (size_t)row0 * t->row_bytes, t->row_bytes, src, w, w,
                                               (size_t)rows, cudaMemcpyHostToDevice, cb->stream),
                             "upload: cudaMemcpy2DAsync");
    void *tmp = NULL;
    if ((rc = qr_cuda_scratch(cb, w * (size_t)rows, &tmp)))
        return rc;
    rc = qr_cuda_check(cudaMemcpyAsync(tmp, src, w * (size_t)rows, cudaMemcpyHostToDevice, cb->stream),
                       "upload: cudaMemcpyAsync");
    if (!rc)
        rc = qr_cuda_from_f32(cb, (const float *)tmp, t, row0, rows);
    qr_cuda_scratch_free(cb, tmp);
    return rc;
}

static int cuda_download(qr_backend *be, const qr_tensor *t, int64_t row0, float *dst, int64_t rows)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_tensor(t, "download", "t")) || (rc = check_row_range(t, row0, rows, "download")))
        return rc;
    if (rows == 0 || t->cols == 0)
        return QR_OK;
    if (!dst)
        return qr_fail(QR_EINVAL, "cuda: download: dst is NULL");
    if ((rc = qr_cuda_use(cb)))
        return rc;
    size_t w = (size_t)t->cols * sizeof(float);
    if (t->dtype == QR_F32) {
        rc = qr_cuda_check(cudaMemcpy2DAsync(dst, w, (const char *)t->data + (size_t)row0 * t->row_bytes,
                                             t->row_bytes, w, (size_t)rows, cudaMemcpyDeviceToHost, cb->stream),
                           "download: cudaMemcpy2DAsync");
    } else {
        void *tmp = NULL;
        if ((rc = qr_cuda_scratch(cb, w * (size_t)rows, &tmp)))
            return rc;
        rc = qr_cuda_to_f32(cb, t, row0, rows, (float *)tmp);
        if (!rc)
            rc = qr_cuda_check(cudaMemcpyAsync(dst, tmp, w * (size_t)rows, cudaMemcpyDeviceToHost, cb->stream),
                               "download: cudaMemcpyAsync");
        qr_cuda_scratch_free(cb, tmp);
    }
    if (!rc)
        rc = qr_cuda_check(cudaStreamSynchronize(cb->stream), "download: cudaStreamSynchronize");
    if (!rc)
        qr_cuda_stage_synced(cb); /* everything that read the ring has run */
    return rc;
}

static int cuda_sync(qr_backend *be)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    pthread_mutex_lock(&cb->stage_mu);
    rc = qr_cuda_check(cudaStreamSynchronize(cb->stream), "sync: cudaStreamSynchronize");
    if (!rc)
        qr_cuda_stage_synced(cb); /* everything that read the ring has run */
    pthread_mutex_unlock(&cb->stage_mu);
    return rc;
}

/* ------------------------------------------------------------ lifetime */

static void cuda_destroy(qr_backend *be)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    if (!cb)
        return;
    (void)qr_cuda_use(cb);
    if (cb->stream)
        (void)cudaStreamSynchronize(cb->stream);
    if (cb->lt)
        cublasLtDestroy(cb->lt);
    if (cb->workspace)
        cudaFree(cb->workspace);
    free_retired(cb);
    for (int i = 0; i < 2; i++)
        if (cb->pin[i])
            cudaFreeHost(cb->pin[i]);
    if (cb->stage_host)
        cudaFreeHost(cb->stage_host);
    if (cb->stage_dev)
        cudaFree(cb->stage_dev);
    if (cb->stream)
        cudaStreamDestroy(cb->stream);
    (void)cudaGetLastError();
    if (cb->counted) {
        pthread_mutex_lock(&dev_mu);
        dev_users[cb->device]--;
        pthread_mutex_unlock(&dev_mu);
    }
    pthread_mutex_destroy(&cb->stage_mu);
    free(cb);
}

/* LK(f): f with the backend's lock held for the whole op (see "Threads" above). */
struct op_lock {
    qr_cuda_backend *cb;
    explicit op_lock(qr_backend *be) : cb(qr_cuda_of(be))
    {
        pthread_mutex_lock(&cb->stage_mu);
        if (cb->op_depth++ == 0) /* a new op: arrays staged from here on are its own (cuda_host.h) */
            qr_stage_op_begin(&cb->ring);
    }
    ~op_lock()
    {
        cb->op_depth--;
        pthread_mutex_unlock(&cb->stage_mu);
    }
};
template <typename Sig, Sig *F> struct locked;
template <typename R, typename... A, R (*F)(qr_backend *, A...)> struct locked<R(qr_backend *, A...), F> {
    static R call(qr_backend *be, A... a)
    {
        op_lock g(be);
        return F(be, a...);
    }
};
#define LK(f) locked<decltype(f), f>::call

/* Weight types matmul and embed compute with: the scalar types, int8 with
 * row scales, and the GGUF block types kept as stored (Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: qr_cq_kept, cuda_quant.h; the file's bytes,
 * qr_tensor's QR_QL_GGUF). The loader converts Q2_K / Q3_K to one of these.
 * No device state: no lock needed. */
static bool cuda_supports(qr_backend *be, qr_be_op op, qr_dtype wt)
{
    (void)be;
    if (op != QR_BE_OP_MATMUL && op != QR_BE_OP_EMBED)
        return false;
    return wt == QR_F32 || wt == QR_F16 || wt == QR_BF16 || wt == QR_I8 || qr_cq_kept(wt);
}

/* The table, field by field (C++17 has no designated initialisers). */
static qr_backend_ops make_ops(void)
{
    qr_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.tensor_alloc = LK(cuda_tensor_alloc);
    o.tensor_free = LK(cuda_tensor_free);
    o.upload = LK(cuda_upload);
    o.download = LK(cuda_download);
    o.sync = LK(cuda_sync);
    o.weight_load = LK(qr_cuda_weight_load);
    o.supports = cuda_supports;
    o.embed = LK(qr_cuda_embed);
    o.matmul = LK(qr_cuda_matmul);
    o.add = LK(qr_cuda_add);
    o.layernorm = LK(qr_cuda_layernorm);
    o.rmsnorm = LK(qr_cuda_rmsnorm);
    o.rope = LK(qr_cuda_rope);
    o.gelu = LK(qr_cuda_gelu);
    o.silu_mul = LK(qr_cuda_silu_mul);
    o.attention = LK(qr_cuda_attention);
    o.copy_rows = LK(qr_cuda_copy_rows);
    o.pool = LK(qr_cuda_pool);
    o.l2norm = LK(qr_cuda_l2norm);
    o.destroy = cuda_destroy;
    o.topk = LK(qr_cuda_topk);
    o.graph_begin = LK(qr_cuda_graph_begin);
    o.graph_end = LK(qr_cuda_graph_end);
    o.graph_launch = LK(qr_cuda_graph_launch);
    o.graph_free = LK(qr_cuda_graph_free);
    o.add_rmsnorm = LK(qr_cuda_add_rmsnorm);
    o.add_layernorm = LK(qr_cuda_add_layernorm);
    return o;
}

static const qr_backend_ops cuda_ops = make_ops();

extern "C" int qr_backend_cuda_create_ex(int device, qr_dtype act_dtype, qr_backend **out)
{
    int count = 0, rc;
    if (act_dtype != QR_F32 && act_dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cuda: activation type %s: expected f32 or bf16", qr_dtype_name(act_dtype));
    if ((rc = qr_cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount")))
        return rc;
    if (device < 0 || device >= count)
        return qr_fail(QR_EINVAL, "cuda: device %d: %d device%s visible (0..%d)", device, count, count == 1 ? "" : "s",
                       count - 1);
    qr_cuda_backend *cb = (qr_cuda_backend *)calloc(1, sizeof *cb);
    if (!cb)
        return qr_fail(QR_ENOMEM, "cuda: backend");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE); /* ops call qr_cuda_stage, which locks too */
    pthread_mutex_init(&cb->stage_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (device < QR_CUDA_MAX_DEVICES) { /* before any context work: a listing must not reset it */
        pthread_mutex_lock(&dev_mu);
        dev_users[device]++;
        pthread_mutex_unlock(&dev_mu);
        cb->counted = true;
    }
    cb->hdr.ops = &cuda_ops;
    cb->hdr.act_dtype = act_dtype;
    cb->device = device;
    if ((rc = qr_cuda_check(cudaSetDevice(device), "cudaSetDevice")) ||
        (rc = qr_cuda_check(cudaGetDeviceProperties(&cb->prop, device), "cudaGetDeviceProperties")) ||
        (rc = qr_cuda_check(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking), "cudaStreamCreate")) ||
        (rc = qr_cublas_check(cublasLtCreate(&cb->lt), "cublasLtCreate")) ||
        (rc = qr_cuda_check_alloc(cb, cudaMalloc(&cb->workspace, QR_CUDA_WORKSPACE_BYTES), "cuBLASLt workspace",
                                  QR_CUDA_WORKSPACE_BYTES)) ||
        (rc = qr_cuda_check_host_alloc(cudaMallocHost(&cb->stage_host, QR_CUDA_STAGE_BYTES), "pinned staging",
                                       QR_CUDA_STAGE_BYTES)) ||
        (rc = qr_cuda_check_alloc(cb, cudaMalloc(&cb->stage_dev, QR_CUDA_STAGE_BYTES), "device staging",
                                  QR_CUDA_STAGE_BYTES)))
        goto fail;
    cb->workspace_bytes = QR_CUDA_WORKSPACE_BYTES;
    cb->ring.cap = cb->ring.end = QR_CUDA_STAGE_BYTES;
    *out = &cb->hdr;
    return QR_OK;
fail:
    cuda_destroy(&cb->hdr);
    return rc;
}

extern "C" int qr_backend_cuda_create(int device, qr_backend **out)
{
    return qr_backend_cuda_create_ex(device, QR_F32, out);
}

/* runtime/dist/comm.h: which GPU a tensor-parallel rank is on, and its stream
 * (the NCCL communicator enqueues the rank's collectives there). */
extern "C" int qr_backend_cuda_device(const qr_backend *be, void **stream)
{
    if (stream)
        *stream = NULL;
    if (!be || be->ops != &cuda_ops)
        return -1;
    const qr_cuda_backend *cb = (const qr_cuda_backend *)be;
    if (stream)
        *stream = (void *)cb->stream;
    return cb->device;
}
