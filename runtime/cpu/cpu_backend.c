/* The CPU backend: the reference implementation of runtime/backend.h.
 *
 * Everything runs synchronously on the caller's thread plus a persistent pool
 * (common/threadpool.h); sync() has nothing to wait for. Activations are f32.
 *
 * matmul, the op that matters:
 * - few rows (decode; n below 16 for f32 weights, 32 for narrower): GEMV. The pool
 *   splits W by output rows; each worker streams its rows once, converting
 *   f16/bf16/int8 on the fly in registers (cpu_kernels.c), and applies every x
 *   row to a group of W rows while it is in L1.
 * - many rows (prefill, encoder batches): OpenBLAS sgemm, called by each pool
 *   worker on its own slice of W rows with OpenBLAS itself single-threaded
 *   (set once at create), so the two never oversubscribe the cores. Non-f32
 *   weights are widened to f32 one block at a time into per-thread scratch and
 *   each block is reused across all n rows.
 * Attention: one work item per (sequence, head, block of up to 64 query rows),
 * spread over the pool; each query row is one pass over its keys with an
 * online softmax. Blocks of 4+ rows (prefill, encoder) share a transposed copy
 * of each key block (cpu_kernels.c attn_rows); single rows (decode) use
 * attn_row, one call for the consecutive heads of a thread's items that share
 * a KV head (GQA), so their K/V slice is read once per key block. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cblas.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu_kernels.h"
#include "runtime/cpu/cpu.h"
#include "runtime/weights/weights.h"
#ifdef QR_HAVE_QKERN /* meson -Dqkern=enabled: integer kernels on GGUF blocks */
#include "runtime/cpu/quant/quant.h"
#endif

/* Below this many x rows, matmul uses the streaming GEMV kernels; from there
 * on sgemm. f32 weights go to sgemm as they are; other types must first be
 * widened into scratch, which costs a write and a re-read of every weight,
 * so the GEMV kernels (which widen in registers) stay ahead for longer.
 * Measured on the 2-core dev VM with bench_cpu --only small. Overridable per
 * backend for benchmarks: qr_backend_cpu_set_gemm_min_rows. */
#define QR_CPU_GEMM_MIN_ROWS_F32 16
/* f32 tile of dequantized block-weight rows for a matmul of few x rows. */
#define QR_CPU_BLOCK_TILE_SMALL ((size_t)128 << 10)
/* Query rows per attention work item. */
#define QR_CPU_ATTN_QB 64
/* Element-wise ops go parallel above this many elements. */
#define QR_CPU_PAR_MIN 16384

typedef struct qr_cpu {
    qr_backend base;
    qr_threadpool *pool;
    int n_threads;
    const qr_cpu_kernels *k;
    pthread_mutex_t mu; /* serialises ops that use the per-thread scratch */
    int64_t gemm_min_rows; /* 0: per-dtype default */
    bool block_tiles;      /* block weights: always the dequantized-tile path (qr_backend_cpu_set_block_tiles) */
    float **scratch;    /* n_threads buffers */
    size_t *scratch_cap; /* floats */
} qr_cpu;

static qr_cpu *cpu_of(qr_backend *be) { return (qr_cpu *)be; }

/* ------------------------------------------------------------ helpers */

static size_t elem_size(qr_dtype dt)
{
    switch (dt) {
    case QR_F32: case QR_I32: return 4;
    case QR_F16: case QR_BF16: return 2;
    case QR_I8: return 1;
    default: return 0;
    }
}

/* A tensor the backend can read: known scalar dtype, sane shape and stride,
 * data present, I8 with scales. */
static int check_tensor(const qr_tensor *t, const char *op, const char *name)
{
    if (!t)
        return qr_fail(QR_EINVAL, "cpu: %s: %s is NULL", op, name);
    if (qr_dtype_is_block(t->dtype)) { /* GGUF blocks as stored (weights only) */
        size_t rb = qr_dtype_row_bytes(t->dtype, t->cols);
        if (t->ql.kind != QR_QL_GGUF || t->ql.block != qr_dtype_block(t->dtype) || t->rows < 0 || t->cols <= 0 ||
            !rb || t->row_bytes < rb)
            return qr_fail(QR_EINVAL, "cpu: %s: %s: %s tensor (%lld, %lld) without its GGUF block layout", op, name,
                           qr_dtype_name(t->dtype), (long long)t->rows, (long long)t->cols);
        if (!t->data && t->rows > 0)
            return qr_fail(QR_EINVAL, "cpu: %s: %s: no data", op, name);
        return QR_OK;
    }
    size_t es = elem_size(t->dtype);
    if (!es)
        return qr_fail(QR_EINVAL, "cpu: %s: %s: dtype %s is not a tensor type", op, name, qr_dtype_name(t->dtype));
    if (t->rows < 0 || t->cols < 0)
        return qr_fail(QR_EINVAL, "cpu: %s: %s: negative shape (%lld, %lld)", op, name, (long long)t->rows,
                       (long long)t->cols);
    if (t->row_bytes < (size_t)t->cols * es || t->row_bytes % es)
        return qr_fail(QR_EINVAL, "cpu: %s: %s: row_bytes %zu does not fit %lld %s columns", op, name, t->row_bytes,
                       (long long)t->cols, qr_dtype_name(t->dtype));
    if (!t->data && t->rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cpu: %s: %s: no data", op, name);
    if (t->dtype == QR_I8 && !t->scale && t->rows > 0)
        return qr_fail(QR_EINVAL, "cpu: %s: %s: int8 tensor without scales", op, name);
    return QR_OK;
}

static int check_f32(const qr_tensor *t, const char *op, const char *name)
{
    int rc = check_tensor(t, op, name);
    if (rc)
        return rc;
    if (t->dtype != QR_F32)
        return qr_fail(QR_EINVAL, "cpu: %s: %s must be f32, got %s", op, name, qr_dtype_name(t->dtype));
    return QR_OK;
}

static int check_shape(const qr_tensor *t, int64_t rows, int64_t cols, const char *op, const char *name)
{
    if (t->rows != rows || t->cols != cols)
        return qr_fail(QR_EINVAL, "cpu: %s: %s is (%lld, %lld), expected (%lld, %lld)", op, name, (long long)t->rows,
                       (long long)t->cols, (long long)rows, (long long)cols);
    return QR_OK;
}

/* True if the byte ranges spanned by a and b overlap. */
static bool overlaps(const qr_tensor *a, const qr_tensor *b)
{
    if (a->rows == 0 || b->rows == 0)
        return false;
    const uint8_t *a0 = a->data, *b0 = b->data;
    const uint8_t *a1 = a0 + (size_t)(a->rows - 1) * a->row_bytes + a->row_bytes;
    const uint8_t *b1 = b0 + (size_t)(b->rows - 1) * b->row_bytes + b->row_bytes;
    return a0 < b1 && b0 < a1;
}

static inline float *frow(const qr_tensor *t, int64_t i)
{
    return (float *)((uint8_t *)t->data + (size_t)i * t->row_bytes);
}

static inline void *brow(const qr_tensor *t, int64_t i) { return (uint8_t *)t->data + (size_t)i * t->row_bytes; }

/* Makes sure every worker's scratch holds `floats` floats. Caller holds mu. */
static int ensure_scratch(qr_cpu *c, size_t floats)
{
    for (int t = 0; t < c->n_threads; t++) {
        if (c->scratch_cap[t] >= floats)
            continue;
        float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!p)
            return qr_fail(QR_ENOMEM, "cpu: scratch of %zu floats", floats);
        free(c->scratch[t]);
        c->scratch[t] = p;
        c->scratch_cap[t] = floats;
    }
    return QR_OK;
}

/* The GGUF block types kept as stored: matmul dequantizes tiles of rows
 * (cpu_matmul_blocks), embed one row. Q2_K and Q3_K are not among them: the
 * loader converts them (to Q4_K) rather than computing with 2-3 bit blocks. */
static bool kept_block(qr_dtype t)
{
    return t == QR_Q8_0 || t == QR_Q4_0 || t == QR_Q4_1 || t == QR_Q5_0 || t == QR_Q5_1 || t == QR_Q4_K ||
           t == QR_Q5_K || t == QR_Q6_K;
}

static bool cpu_supports(qr_backend *be, qr_be_op op, qr_dtype wt)
{
    (void)be;
    if (op != QR_BE_OP_MATMUL && op != QR_BE_OP_EMBED)
        return false;
    return wt == QR_F32 || wt == QR_F16 || wt == QR_BF16 || wt == QR_I8 || kept_block(wt);
}

/* Row of a weight tensor widened to f32: scalar types and int8 through the
 * SIMD kernels, GGUF blocks through the reference dequantizers (bit-exact
 * with ggml's). */
static void wrow_to_f32(const qr_cpu *c, qr_dtype dt, const void *row, const float *scale, int64_t i, int64_t n,
                        float *dst)
{
    if (qr_dtype_is_block(dt))
        qr_convert_to_f32(dt, row, n, dst); /* cannot fail: n checked by check_tensor */
    else
        c->k->row_to_f32(dt, row, dt == QR_I8 ? scale[i] : 1.0f, n, dst);
}

/* ------------------------------------------------------------ memory */

/* tensor_alloc, and weight_load's allocation of GGUF block tensors (blocks
 * true), which tensor_alloc itself refuses: such tensors are weights only. */
static int alloc_tensor(qr_dtype dt, int64_t rows, int64_t cols, bool blocks, qr_tensor *out)
{
    size_t es = elem_size(dt);
    if (!es && !(blocks && qr_dtype_is_block(dt)))
        return qr_fail(QR_EINVAL, "cpu: tensor_alloc: dtype %s is not a tensor type", qr_dtype_name(dt));
    if (rows < 0 || cols < 0 || (cols > 0 && (uint64_t)rows > (UINT64_MAX / 2) / ((uint64_t)cols * 4)))
        return qr_fail(QR_EINVAL, "cpu: tensor_alloc: bad shape (%lld, %lld)", (long long)rows, (long long)cols);
    qr_tensor t = {0};
    t.dtype = dt;
    t.rows = rows;
    t.cols = cols;
    t.row_bytes = es ? (size_t)cols * es : qr_dtype_row_bytes(dt, cols);
    if (!es)
        t.ql = (qr_qlayout){QR_QL_GGUF, qr_dtype_block(dt), (int32_t)qr_dtype_block_bytes(dt)};
    t.owned = true;
    size_t bytes = (t.row_bytes * (size_t)rows + 63) / 64 * 64;
    if (bytes >= QR_CPU_HUGE_MIN) {
        /* Big tensors (weights, KV caches) on 2 MiB pages where the kernel
         * allows it: streaming GEMV then takes far fewer TLB misses. Only the
         * whole 2 MiB pages are advised, so a partly used last page costs no
         * more than its 4 KiB pages. */
        if (posix_memalign(&t.data, QR_CPU_HUGE_MIN, bytes) != 0)
            t.data = NULL;
        if (t.data)
            madvise(t.data, bytes / QR_CPU_HUGE_MIN * QR_CPU_HUGE_MIN, MADV_HUGEPAGE); /* advice only */
    } else {
        t.data = aligned_alloc(64, bytes ? bytes : 64);
    }
    if (!t.data)
        return qr_fail(QR_ENOMEM, "cpu: out of memory: tensor_alloc: %zu bytes for (%lld, %lld) %s", bytes, (long long)rows,
                       (long long)cols, qr_dtype_name(dt));
    if (dt == QR_I8) {
        t.scale = calloc(rows ? (size_t)rows : 1, sizeof(float));
        if (!t.scale) {
            free(t.data);
            return qr_fail(QR_ENOMEM, "cpu: tensor_alloc: scales for %lld rows", (long long)rows);
        }
    }
    *out = t;
    return QR_OK;
}

static int cpu_tensor_alloc(qr_backend *be, qr_dtype dt, int64_t rows, int64_t cols, qr_tensor *out)
{
    (void)be;
    return alloc_tensor(dt, rows, cols, false, out);
}

static void cpu_tensor_free(qr_backend *be, qr_tensor *t)
{
    if (!t)
        return;
    if (t->owned) {
        free(t->data);
        free(t->scale);
    }
    memset(t, 0, sizeof *t);
}

static int check_row_range(const qr_tensor *t, int64_t row0, int64_t rows, const char *op)
{
    if (row0 < 0 || rows < 0 || row0 > t->rows || rows > t->rows - row0)
        return qr_fail(QR_EINVAL, "cpu: %s: rows %lld..%lld outside tensor of %lld rows", op, (long long)row0,
                       (long long)(row0 + rows), (long long)t->rows);
    return QR_OK;
}

static int cpu_upload(qr_backend *be, qr_tensor *t, int64_t row0, const float *src, int64_t rows)
{
    int rc = check_tensor(t, "upload", "t");
    if (rc)
        return rc;
    if ((rc = check_row_range(t, row0, rows, "upload")))
        return rc;
    if (t->dtype != QR_F32 && t->dtype != QR_F16 && t->dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cpu: upload: cannot upload f32 into a %s tensor", qr_dtype_name(t->dtype));
    if (!src && rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cpu: upload: src is NULL");
    for (int64_t i = 0; i < rows; i++) {
        const float *s = src + (size_t)i * (size_t)t->cols;
        void *d = brow(t, row0 + i);
        if (t->dtype == QR_F32) {
            memcpy(d, s, (size_t)t->cols * sizeof(float));
        } else {
            uint16_t *h = d;
            for (int64_t j = 0; j < t->cols; j++)
                h[j] = t->dtype == QR_F16 ? qr_f32_to_f16(s[j]) : qr_f32_to_bf16(s[j]);
        }
    }
    return QR_OK;
}

static int cpu_download(qr_backend *be, const qr_tensor *t, int64_t row0, float *dst, int64_t rows)
{
    qr_cpu *c = cpu_of(be);
    int rc = check_tensor(t, "download", "t");
    if (rc)
        return rc;
    if ((rc = check_row_range(t, row0, rows, "download")))
        return rc;
    if (!dst && rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cpu: download: dst is NULL");
    for (int64_t i = 0; i < rows; i++) {
        float *d = dst + (size_t)i * (size_t)t->cols;
        const void *s = brow(t, row0 + i);
        if (t->dtype == QR_I32) {
            for (int64_t j = 0; j < t->cols; j++)
                d[j] = (float)((const int32_t *)s)[j];
        } else {
            wrow_to_f32(c, t->dtype, s, t->scale, row0 + i, t->cols, d);
        }
    }
    return QR_OK;
}

static int cpu_sync(qr_backend *be) { return QR_OK; }

/* ------------------------------------------------------------ weight_load */

typedef struct {
    qr_cpu *c;
    const uint8_t *src;
    qr_dtype src_dt;
    size_t src_rb;
    int64_t cols;
    qr_tensor *out;
    int rc; /* first failure (block conversion), written by any worker */
} wl_ctx;

static void wl_job(void *vctx, int64_t b, int64_t e, int tid)
{
    wl_ctx *x = vctx;
    float *tmp = x->c->scratch[tid]; /* cols floats */
    for (int64_t i = b; i < e; i++) {
        const uint8_t *s = x->src + (size_t)i * x->src_rb;
        if (x->src_dt == x->out->dtype) { /* same type (GGUF blocks too): plain copy */
            memcpy(brow(x->out, i), s, x->src_rb);
            continue;
        }
        if (x->src_dt == QR_F32 || x->src_dt == QR_F16 || x->src_dt == QR_BF16) {
            x->c->k->row_to_f32(x->src_dt, s, 1.0f, x->cols, tmp);
        } else { /* GGUF blocks */
            int rc = qr_convert_to_f32(x->src_dt, s, x->cols, tmp);
            if (rc) {
                x->rc = rc;
                return;
            }
        }
        void *d = brow(x->out, i);
        if (qr_dtype_is_block(x->out->dtype)) { /* --dtype q8_0/q4_k, or Q2_K/Q3_K kept as Q4_K */
            int rc = qr_quantize_row(x->out->dtype, tmp, x->cols, d);
            if (rc) {
                x->rc = rc;
                return;
            }
            continue;
        }
        switch (x->out->dtype) {
        case QR_F32: memcpy(d, tmp, (size_t)x->cols * sizeof(float)); break;
        case QR_F16:
            for (int64_t j = 0; j < x->cols; j++)
                ((uint16_t *)d)[j] = qr_f32_to_f16(tmp[j]);
            break;
        case QR_BF16:
            for (int64_t j = 0; j < x->cols; j++)
                ((uint16_t *)d)[j] = qr_f32_to_bf16(tmp[j]);
            break;
        case QR_I8: { /* symmetric per output row: scale = max|w| / 127 */
            float amax = 0.0f;
            for (int64_t j = 0; j < x->cols; j++)
                amax = fmaxf(amax, fabsf(tmp[j]));
            float sc = amax / 127.0f;
            int8_t *q = d;
            for (int64_t j = 0; j < x->cols; j++) {
                float v = sc > 0.0f ? roundf(tmp[j] / sc) : 0.0f; /* roundf: half away from zero */
                q[j] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
            }
            x->out->scale[i] = sc;
            break;
        }
        default: break;
        }
    }
}

static bool thp_on; /* transparent huge pages not switched off: read once */
static pthread_once_t thp_once = PTHREAD_ONCE_INIT;

static void thp_probe(void)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    thp_on = buf[0] && !strstr(buf, "[never]");
}

bool qr_cpu_copies_weights(size_t bytes)
{
    pthread_once(&thp_once, thp_probe);
    return thp_on && bytes >= QR_CPU_HUGE_MIN;
}

static int cpu_weight_load(qr_backend *be, const void *src, qr_dtype src_dt, int64_t rows, int64_t cols,
                           qr_dtype want, bool may_alias, qr_tensor *out)
{
    qr_cpu *c = cpu_of(be);
    if (want != QR_F32 && want != QR_F16 && want != QR_BF16 && want != QR_I8 && !kept_block(want))
        return qr_fail(QR_EINVAL, "cpu: weight_load: cannot make %s weights (f32, f16, bf16, int8, q8_0, q4_0, "
                       "q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)", qr_dtype_name(want));
    if (kept_block(want) && want != src_dt && want != QR_Q8_0 && want != QR_Q4_K)
        return qr_fail(QR_EINVAL, "cpu: weight_load: cannot quantize %s weights to %s (only to q8_0 or q4_k)",
                       qr_dtype_name(src_dt), qr_dtype_name(want));
    if (kept_block(want) && cols % qr_dtype_block(want))
        return qr_fail(QR_EINVAL, "cpu: weight_load: %lld columns is not a whole number of %s blocks of %d",
                       (long long)cols, qr_dtype_name(want), qr_dtype_block(want));
    if (rows < 0 || cols <= 0)
        return qr_fail(QR_EINVAL, "cpu: weight_load: bad shape (%lld, %lld)", (long long)rows, (long long)cols);
    if (!src && rows > 0)
        return qr_fail(QR_EINVAL, "cpu: weight_load: src is NULL");
    bool block = src_dt == QR_Q8_0 || src_dt == QR_Q4_0 || src_dt == QR_Q4_K || src_dt == QR_Q6_K || src_dt == QR_Q4_1 ||
                 src_dt == QR_Q5_0 || src_dt == QR_Q5_1 || src_dt == QR_Q2_K || src_dt == QR_Q3_K || src_dt == QR_Q5_K;
    if (src_dt != QR_F32 && src_dt != QR_F16 && src_dt != QR_BF16 && !block)
        return qr_fail(QR_EINVAL, "cpu: weight_load: cannot load weights stored as %s", qr_dtype_name(src_dt));
    size_t src_rb = qr_dtype_row_bytes(src_dt, cols);
    if (!src_rb)
        return qr_fail(QR_EINVAL, "cpu: weight_load: %lld columns is not a whole number of %s blocks",
                       (long long)cols, qr_dtype_name(src_dt));
    /* mmap'd and outlives the tensor: use in place, if naturally aligned
     * (safetensors data may not be; the kernels read whole elements), unless
     * it is big enough to be worth a copy on huge pages (qr_cpu_copies_weights) */
    if (want == src_dt && may_alias && !qr_cpu_copies_weights(src_rb * (size_t)rows) &&
        (qr_dtype_is_block(want) || (uintptr_t)src % elem_size(want) == 0)) {
        qr_tensor t = {0};
        t.data = (void *)src;
        t.dtype = want;
        t.rows = rows;
        t.cols = cols;
        t.row_bytes = src_rb;
        t.owned = false;
        if (qr_dtype_is_block(want)) /* the file's blocks, read in place */
            t.ql = (qr_qlayout){QR_QL_GGUF, qr_dtype_block(want), (int32_t)qr_dtype_block_bytes(want)};
        *out = t;
        return QR_OK;
    }
    qr_tensor t;
    int rc = alloc_tensor(want, rows, cols, true, &t);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = ensure_scratch(c, (size_t)cols);
    if (!rc) {
        wl_ctx x = {c, src, src_dt, src_rb, cols, &t, 0};
        qr_parallel_for(c->pool, rows, 16, wl_job, &x);
        rc = x.rc;
        if (rc) /* the worker's detail message stayed on its thread */
            qr_fail(rc, "cpu: weight_load: converting %s rows to f32 failed", qr_dtype_name(src_dt));
    }
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        cpu_tensor_free(be, &t);
        return rc;
    }
    *out = t;
    return QR_OK;
}

/* ------------------------------------------------------------ embed */

static int cpu_embed(qr_backend *be, const qr_tensor *table, const int32_t *ids, int64_t n, qr_tensor *out)
{
    qr_cpu *c = cpu_of(be);
    int rc;
    if ((rc = check_tensor(table, "embed", "table")) || (rc = check_f32(out, "embed", "out")))
        return rc;
    if (table->dtype == QR_I32)
        return qr_fail(QR_EINVAL, "cpu: embed: table dtype i32 is not a weight type");
    if (n < 0 || n > out->rows || out->cols != table->cols)
        return qr_fail(QR_EINVAL, "cpu: embed: out is (%lld, %lld), expected at least (%lld, %lld)",
                       (long long)out->rows, (long long)out->cols, (long long)n, (long long)table->cols);
    if (!ids && n > 0)
        return qr_fail(QR_EINVAL, "cpu: embed: ids is NULL");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->rows)
            return qr_fail(QR_EINVAL, "cpu: embed: id %d at %lld outside table of %lld rows", ids[i], (long long)i,
                           (long long)table->rows);
    for (int64_t i = 0; i < n; i++) /* GGUF blocks: dequantize one row */
        wrow_to_f32(c, table->dtype, brow(table, ids[i]), table->scale, ids[i], table->cols, frow(out, i));
    return QR_OK;
}

/* ------------------------------------------------------------ matmul */

typedef struct {
    qr_cpu *c;
    const float *x;
    size_t xs; /* floats */
    int64_t n, in;
    qr_cpu_wview w;
    const float *bias;
    float *y;
    size_t ys; /* floats */
    int64_t nb; /* GEMM: weight rows per widened block */
    bool gemm;
} mm_ctx;

/* y[r][j] += bias[j] for rows r < n, columns [j0, j1) (bias may be NULL). */
static void add_bias(float *y, size_t ys, int64_t n, const float *bias, int64_t j0, int64_t j1)
{
    for (int64_t r = 0; bias && r < n; r++)
        for (int64_t j = j0; j < j1; j++)
            y[(size_t)r * ys + (size_t)j] += bias[j];
}

static void mm_job(void *vctx, int64_t b, int64_t e, int tid)
{
    mm_ctx *m = vctx;
    if (!m->gemm) {
        m->c->k->gemv(m->x, m->xs, m->n, &m->w, b, e, m->y, m->ys, m->c->scratch[tid]);
    } else if (m->w.dt == QR_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m->n, (int)(e - b), (int)m->in, 1.0f, m->x,
                    (int)m->xs, (const float *)(m->w.data + (size_t)b * m->w.rb), (int)(m->w.rb / sizeof(float)),
                    0.0f, m->y + b, (int)m->ys);
    } else {
        float *wf = m->c->scratch[tid]; /* (nb, in) widened weight block */
        for (int64_t j0 = b; j0 < e; j0 += m->nb) {
            int64_t nb = e - j0 < m->nb ? e - j0 : m->nb;
            for (int64_t j = 0; j < nb; j++)
                wrow_to_f32(m->c, m->w.dt, m->w.data + (size_t)(j0 + j) * m->w.rb, m->w.scale, j0 + j, m->in,
                            wf + (size_t)j * m->in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m->n, (int)nb, (int)m->in, 1.0f, m->x,
                        (int)m->xs, wf, (int)m->in, 0.0f, m->y + j0, (int)m->ys);
        }
    }
    add_bias(m->y, m->ys, m->n, m->bias, b, e);
}

/* matmul with W in GGUF blocks as stored (QR_QL_GGUF): the one dispatch
 * point for block layouts. Today: every x row count takes the widening GEMM
 * path of mm_job (a tile of W rows dequantized to f32 scratch, bit-exact with
 * ggml, then sgemm over all n rows; decode n = 1 included): correct, not
 * fast. Caller holds nothing; m is filled as for the other types; W has
 * w_rows rows.
 * QKERN: built with meson -Dqkern=enabled (the default; defines
 * QR_HAVE_QKERN), runtime/cpu/quant's qr_qmat_mul computes
 * here for the layouts it implements (qr_qmat_supports), the tiles below for
 * the others and when qr_backend_cpu_set_block_tiles asked for them. */
static int cpu_matmul_blocks(qr_cpu *c, mm_ctx *m, int64_t w_rows)
{
#ifdef QR_HAVE_QKERN
    /* Integer kernels (runtime/cpu/quant/quant.h): activations quantized to
     * int8 per 32 values, so results differ from the tiles below by that
     * rounding, not only by summation order. Rows must be the file's dense
     * blocks (they are: weight_load aliases or copies them with that stride). */
    if (!c->block_tiles && qr_qmat_supports(m->w.dt) && m->w.rb == qr_dtype_row_bytes(m->w.dt, m->in)) {
        pthread_mutex_lock(&c->mu); /* one parallel_for on the pool at a time, as below */
        int qrc = qr_qmat_mul(c->pool, m->w.dt, m->w.data, w_rows, m->in, m->x, m->xs, m->n, m->y, m->ys);
        pthread_mutex_unlock(&c->mu);
        if (qrc)
            return qrc;
        add_bias(m->y, m->ys, m->n, m->bias, 0, w_rows);
        return QR_OK;
    }
#endif
    m->gemm = true;
    /* few x rows (decode): tiles that stay in L2 between the dequantization
     * and the sgemm that reads them back; many: the GEMM path's 4 MiB */
    size_t tile = m->n < QR_CPU_GEMM_MIN_ROWS_NARROW ? QR_CPU_BLOCK_TILE_SMALL : QR_CPU_GEMM_SCRATCH_BYTES;
    int64_t nb = (int64_t)(tile / ((size_t)m->in * sizeof(float)));
    m->nb = nb < 16 ? 16 : nb;
    pthread_mutex_lock(&c->mu);
    int rc = ensure_scratch(c, (size_t)m->nb * (size_t)m->in);
    if (!rc)
        qr_parallel_for(c->pool, w_rows, 16, mm_job, m);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* The operands of matmul, as its contract states them. */
static int matmul_check(const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias, const qr_tensor *y)
{
    int rc;
    if ((rc = check_f32(x, "matmul", "x")) || (rc = check_tensor(w, "matmul", "w")) ||
        (rc = check_f32(y, "matmul", "y")))
        return rc;
    if (w->dtype == QR_I32)
        return qr_fail(QR_EINVAL, "cpu: matmul: w dtype i32 is not a weight type");
    if (w->cols != x->cols)
        return qr_fail(QR_EINVAL, "cpu: matmul: x is (%lld, %lld) but w is (%lld, %lld): inner sizes differ",
                       (long long)x->rows, (long long)x->cols, (long long)w->rows, (long long)w->cols);
    if ((rc = check_shape(y, x->rows, w->rows, "matmul", "y")))
        return rc;
    if (bias) {
        if ((rc = check_f32(bias, "matmul", "bias")) || (rc = check_shape(bias, 1, w->rows, "matmul", "bias")))
            return rc;
    }
    if (overlaps(x, y))
        return qr_fail(QR_EINVAL, "cpu: matmul: y overlaps x (no in-place matmul)");
    if (x->rows > INT32_MAX || w->rows > INT32_MAX || x->cols > INT32_MAX)
        return qr_fail(QR_ELIMIT, "cpu: matmul: dimensions beyond 2^31");
    return QR_OK;
}

static int cpu_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias, qr_tensor *y)
{
    qr_cpu *c = cpu_of(be);
    int rc = matmul_check(x, w, bias, y);
    if (rc)
        return rc;
    if (x->rows == 0 || w->rows == 0)
        return QR_OK;
    mm_ctx m = {0};
    m.c = c;
    m.x = x->data;
    m.xs = x->row_bytes / sizeof(float);
    m.n = x->rows;
    m.in = x->cols;
    m.w.data = w->data;
    m.w.scale = w->scale;
    m.w.dt = w->dtype;
    m.w.cols = w->cols;
    m.w.rb = w->row_bytes;
    m.bias = bias ? bias->data : NULL;
    m.y = y->data;
    m.ys = y->row_bytes / sizeof(float);
    int64_t min_rows = c->gemm_min_rows ? c->gemm_min_rows
                       : w->dtype == QR_F32 ? QR_CPU_GEMM_MIN_ROWS_F32
                                            : QR_CPU_GEMM_MIN_ROWS_NARROW;
    m.gemm = x->rows >= min_rows && m.in > 0;
    if (m.in == 0) { /* empty inner dimension: y = bias or 0 */
        for (int64_t r = 0; r < m.n; r++)
            for (int64_t j = 0; j < w->rows; j++)
                m.y[(size_t)r * m.ys + (size_t)j] = m.bias ? m.bias[j] : 0.0f;
        return QR_OK;
    }
    if (qr_dtype_is_block(w->dtype)) {
        return cpu_matmul_blocks(c, &m, w->rows);
    }
    pthread_mutex_lock(&c->mu);
    if (m.gemm && w->dtype != QR_F32) {
        int64_t nb = (int64_t)(QR_CPU_GEMM_SCRATCH_BYTES / ((size_t)m.in * sizeof(float)));
        m.nb = nb < 16 ? 16 : nb;
        rc = ensure_scratch(c, (size_t)m.nb * (size_t)m.in);
    } else if (!m.gemm) { /* the GEMV kernels may keep a rearranged copy of x */
        rc = ensure_scratch(c, (size_t)m.n * (size_t)m.in);
    }
    if (!rc) /* grain 16: whole SIMD groups of W rows per worker */
        qr_parallel_for(c->pool, w->rows, 16, mm_job, &m);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ------------------------------------------------------------ element-wise */

typedef struct {
    const qr_tensor *a, *b, *g, *beta;
    qr_tensor *out;
    float eps;
    const int32_t *pos;
    const float *inv_freq;
    int n_head, head_dim;
    const qr_cpu_kernels *k;
} ew_ctx;

static void run_rows(qr_cpu *c, int64_t rows, int64_t cols, qr_parallel_fn fn, ew_ctx *x)
{
    if (rows * cols >= QR_CPU_PAR_MIN)
        qr_parallel_for(c->pool, rows, 1, fn, x);
    else if (rows > 0)
        fn(x, 0, rows, 0);
}

static void add_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    for (int64_t i = b; i < e; i++) {
        float *y = frow(x->out, i);
        const float *s = frow(x->a, i);
        for (int64_t j = 0; j < x->out->cols; j++)
            y[j] += s[j];
    }
}

static int cpu_add(qr_backend *be, qr_tensor *y, const qr_tensor *x)
{
    int rc;
    if ((rc = check_f32(y, "add", "y")) || (rc = check_f32(x, "add", "x")) ||
        (rc = check_shape(x, y->rows, y->cols, "add", "x")))
        return rc;
    ew_ctx c = {.a = x, .out = y};
    run_rows(cpu_of(be), y->rows, y->cols, add_job, &c);
    return QR_OK;
}

static void layernorm_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    int64_t n = x->a->cols;
    const float *g = x->g->data, *bt = x->beta ? x->beta->data : NULL;
    for (int64_t i = b; i < e; i++) {
        const float *s = frow(x->a, i);
        float *d = frow(x->out, i);
        double sum = 0.0, sq = 0.0;
        for (int64_t j = 0; j < n; j++)
            sum += s[j];
        double mean = n ? sum / (double)n : 0.0;
        for (int64_t j = 0; j < n; j++) {
            double t = s[j] - mean;
            sq += t * t;
        }
        double rstd = 1.0 / sqrt((n ? sq / (double)n : 0.0) + x->eps);
        /* centre in double: with a large mean, an f32 mean would cost ~1e-5 relative */
        for (int64_t j = 0; j < n; j++)
            d[j] = (float)((s[j] - mean) * rstd) * g[j] + (bt ? bt[j] : 0.0f);
    }
}

static int cpu_layernorm(qr_backend *be, const qr_tensor *x, const qr_tensor *gamma, const qr_tensor *beta,
                         float eps, qr_tensor *out)
{
    int rc;
    if ((rc = check_f32(x, "layernorm", "x")) || (rc = check_f32(out, "layernorm", "out")) ||
        (rc = check_shape(out, x->rows, x->cols, "layernorm", "out")) ||
        (rc = check_f32(gamma, "layernorm", "gamma")) ||
        (rc = check_shape(gamma, 1, x->cols, "layernorm", "gamma")))
        return rc;
    if (beta && ((rc = check_f32(beta, "layernorm", "beta")) ||
                 (rc = check_shape(beta, 1, x->cols, "layernorm", "beta"))))
        return rc;
    ew_ctx c = {.a = x, .g = gamma, .beta = beta, .out = out, .eps = eps};
    run_rows(cpu_of(be), x->rows, x->cols, layernorm_job, &c);
    return QR_OK;
}

static void rmsnorm_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    int64_t n = x->a->cols;
    const float *g = x->g->data;
    for (int64_t i = b; i < e; i++) {
        const float *s = frow(x->a, i);
        float *d = frow(x->out, i);
        double sq = 0.0;
        for (int64_t j = 0; j < n; j++)
            sq += (double)s[j] * s[j];
        float r = (float)(1.0 / sqrt((n ? sq / (double)n : 0.0) + x->eps));
        for (int64_t j = 0; j < n; j++)
            d[j] = s[j] * r * g[j];
    }
}

static int cpu_rmsnorm(qr_backend *be, const qr_tensor *x, const qr_tensor *w, float eps, qr_tensor *out)
{
    int rc;
    if ((rc = check_f32(x, "rmsnorm", "x")) || (rc = check_f32(out, "rmsnorm", "out")) ||
        (rc = check_shape(out, x->rows, x->cols, "rmsnorm", "out")) || (rc = check_f32(w, "rmsnorm", "w")) ||
        (rc = check_shape(w, 1, x->cols, "rmsnorm", "w")))
        return rc;
    ew_ctx c = {.a = x, .g = w, .out = out, .eps = eps};
    run_rows(cpu_of(be), x->rows, x->cols, rmsnorm_job, &c);
    return QR_OK;
}

static void rope_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    int half = x->head_dim / 2;
    float cs[512], sn[512]; /* half <= 512, checked by the caller */
    for (int64_t i = b; i < e; i++) {
        float *r = frow(x->out, i);
        float p = (float)x->pos[i];
        /* angle rounded to f32 before cos/sin, as HF computes inv_freq x pos */
        for (int j = 0; j < half; j++) {
            float th = p * x->inv_freq[j];
            cs[j] = cosf(th);
            sn[j] = sinf(th);
        }
        for (int h = 0; h < x->n_head; h++) {
            float *hp = r + (size_t)h * (size_t)x->head_dim;
            for (int j = 0; j < half; j++) {
                float a = hp[j], bb = hp[j + half];
                hp[j] = a * cs[j] - bb * sn[j];
                hp[j + half] = bb * cs[j] + a * sn[j];
            }
        }
    }
}

static int cpu_rope(qr_backend *be, qr_tensor *x, int n_head, int head_dim, const int32_t *pos,
                    const float *inv_freq)
{
    int rc;
    if ((rc = check_f32(x, "rope", "x")))
        return rc;
    if (n_head <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > 1024)
        return qr_fail(QR_EINVAL, "cpu: rope: n_head %d / head_dim %d invalid (head_dim even, <= 1024)", n_head,
                       head_dim);
    if (x->cols != (int64_t)n_head * head_dim)
        return qr_fail(QR_EINVAL, "cpu: rope: x has %lld columns, expected n_head %d x head_dim %d",
                       (long long)x->cols, n_head, head_dim);
    if ((!pos || !inv_freq) && x->rows > 0)
        return qr_fail(QR_EINVAL, "cpu: rope: pos or inv_freq is NULL");
    ew_ctx c = {.out = x, .pos = pos, .inv_freq = inv_freq, .n_head = n_head, .head_dim = head_dim};
    run_rows(cpu_of(be), x->rows, x->cols, rope_job, &c);
    return QR_OK;
}

static void gelu_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    for (int64_t i = b; i < e; i++)
        x->k->gelu(frow(x->out, i), x->out->cols);
}

static int cpu_gelu(qr_backend *be, qr_tensor *x)
{
    int rc;
    if ((rc = check_f32(x, "gelu", "x")))
        return rc;
    ew_ctx c = {.out = x, .k = cpu_of(be)->k};
    run_rows(cpu_of(be), x->rows, x->cols, gelu_job, &c);
    return QR_OK;
}

static void silu_mul_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    for (int64_t i = b; i < e; i++)
        x->k->silu_mul(frow(x->out, i), frow(x->a, i), x->out->cols);
}

static int cpu_silu_mul(qr_backend *be, qr_tensor *gate, const qr_tensor *up)
{
    int rc;
    if ((rc = check_f32(gate, "silu_mul", "gate")) || (rc = check_f32(up, "silu_mul", "up")) ||
        (rc = check_shape(up, gate->rows, gate->cols, "silu_mul", "up")))
        return rc;
    ew_ctx c = {.out = gate, .a = up, .k = cpu_of(be)->k};
    run_rows(cpu_of(be), gate->rows, gate->cols, silu_mul_job, &c);
    return QR_OK;
}

static void l2norm_job(void *v, int64_t b, int64_t e, int tid)
{
    ew_ctx *x = v;
    for (int64_t i = b; i < e; i++) {
        float *r = frow(x->out, i);
        double sq = 0.0;
        for (int64_t j = 0; j < x->out->cols; j++)
            sq += (double)r[j] * r[j];
        if (sq > 0.0) {
            float inv = (float)(1.0 / sqrt(sq));
            for (int64_t j = 0; j < x->out->cols; j++)
                r[j] *= inv;
        }
    }
}

static int cpu_l2norm(qr_backend *be, qr_tensor *x)
{
    int rc;
    if ((rc = check_f32(x, "l2norm", "x")))
        return rc;
    ew_ctx c = {.out = x};
    run_rows(cpu_of(be), x->rows, x->cols, l2norm_job, &c);
    return QR_OK;
}

/* ------------------------------------------------------------ attention */

typedef struct {
    int32_t seq, head, q0, q1; /* query rows q0..q1-1 inside the sequence */
} attn_item;

typedef struct {
    qr_cpu *c;
    const qr_tensor *q, *k, *v;
    qr_tensor *out;
    const qr_attn_seq *seqs;
    const attn_item *items;
    int group, head_dim;
    float scale;
    bool causal;
} attn_ctx;

/* Whether item x is the next head after w over the same query row and K/V
 * slice (items are ordered sequence, head, query block). */
static bool same_slice(const attn_ctx *a, const attn_item *w, const attn_item *x)
{
    return x->seq == w->seq && x->q0 == w->q0 && x->q1 == w->q1 && x->head / a->group == w->head / a->group;
}

static void attn_job(void *vctx, int64_t b, int64_t e, int tid)
{
    attn_ctx *a = vctx;
    float *sbuf = a->c->scratch[tid];
    size_t ks = a->k->row_bytes / sizeof(float), vs = a->v->row_bytes / sizeof(float);
    size_t qs = a->q->row_bytes / sizeof(float), os = a->out->row_bytes / sizeof(float);
    for (int64_t it = b; it < e; it++) {
        const attn_item *w = &a->items[it];
        const qr_attn_seq *s = &a->seqs[w->seq];
        int kvh = w->head / a->group;
        const float *kb = frow(a->k, s->kv_start) + (size_t)kvh * (size_t)a->head_dim;
        const float *vb = frow(a->v, s->kv_start) + (size_t)kvh * (size_t)a->head_dim;
        const float *qr = frow(a->q, s->q_start + w->q0) + (size_t)w->head * (size_t)a->head_dim;
        float *orow = frow(a->out, s->q_start + w->q0) + (size_t)w->head * (size_t)a->head_dim;
        int64_t nvis[QR_CPU_ATTN_QB];
        int nq = w->q1 - w->q0;
        for (int i = 0; i < nq; i++) {
            nvis[i] = s->n_kv;
            if (a->causal) { /* keys j <= q_pos0 + i */
                int64_t lim = (int64_t)s->q_pos0 + w->q0 + i + 1;
                nvis[i] = lim < nvis[i] ? lim : nvis[i];
            }
        }
        if (nq >= 4) { /* enough rows to amortise transposing each key block */
            a->c->k->attn_rows(qr, qs, nq, nvis, kb, ks, vb, vs, a->head_dim, a->scale, orow, os, sbuf);
        } else if (nq == 1) { /* decode: the next items of this thread that read the same K/V slice too */
            int g = 1;
            while (g < QR_ATTN_GMAX && it + g < e && same_slice(a, w, &a->items[it + g]))
                g++;
            a->c->k->attn_row(qr, kb, ks, vb, vs, nvis[0], a->head_dim, g, a->scale, orow, sbuf);
            it += g - 1;
        } else {
            for (int i = 0; i < nq; i++)
                a->c->k->attn_row(qr + (size_t)i * qs, kb, ks, vb, vs, nvis[i], a->head_dim, 1, a->scale,
                                  orow + (size_t)i * os, sbuf);
        }
    }
}

static int cpu_attention(qr_backend *be, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                         const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head, int head_dim, float scale,
                         bool causal, qr_tensor *out)
{
    qr_cpu *c = cpu_of(be);
    int rc;
    if ((rc = check_f32(q, "attention", "q")) || (rc = check_f32(k, "attention", "k")) ||
        (rc = check_f32(v, "attention", "v")) || (rc = check_f32(out, "attention", "out")))
        return rc;
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head)
        return qr_fail(QR_EINVAL, "cpu: attention: n_head %d, n_kv_head %d, head_dim %d invalid", n_head, n_kv_head,
                       head_dim);
    if (q->cols != (int64_t)n_head * head_dim)
        return qr_fail(QR_EINVAL, "cpu: attention: q has %lld columns, expected %d heads x %d", (long long)q->cols,
                       n_head, head_dim);
    if (k->cols != (int64_t)n_kv_head * head_dim || v->cols != k->cols || v->rows != k->rows)
        return qr_fail(QR_EINVAL, "cpu: attention: k (%lld, %lld) / v (%lld, %lld) do not match %d kv heads x %d",
                       (long long)k->rows, (long long)k->cols, (long long)v->rows, (long long)v->cols, n_kv_head,
                       head_dim);
    if ((rc = check_shape(out, q->rows, q->cols, "attention", "out")))
        return rc;
    if ((rc = qr_attn_check_seqs("cpu", q, k, seqs, n_seq)))
        return rc;
    int64_t n_items = 0;
    for (int s = 0; s < n_seq; s++)
        n_items += (int64_t)n_head * ((seqs[s].n_q + QR_CPU_ATTN_QB - 1) / QR_CPU_ATTN_QB);
    if (n_items == 0)
        return QR_OK;
    attn_item *items = malloc((size_t)n_items * sizeof *items);
    if (!items)
        return qr_fail(QR_ENOMEM, "cpu: attention: %lld work items", (long long)n_items);
    int64_t ni = 0;
    for (int s = 0; s < n_seq; s++)
        for (int h = 0; h < n_head; h++)
            for (int32_t q0 = 0; q0 < seqs[s].n_q; q0 += QR_CPU_ATTN_QB)
                items[ni++] = (attn_item){s, h, q0, q0 + QR_CPU_ATTN_QB < seqs[s].n_q ? q0 + QR_CPU_ATTN_QB
                                                                                     : seqs[s].n_q};
    attn_ctx a = {c, q, k, v, out, seqs, items, n_head / n_kv_head, head_dim, scale, causal};
    pthread_mutex_lock(&c->mu);
    rc = ensure_scratch(c, QR_ATTN_SCRATCH(head_dim));
    if (!rc)
        qr_parallel_for(c->pool, n_items, 1, attn_job, &a);
    pthread_mutex_unlock(&c->mu);
    free(items);
    return rc;
}

/* ------------------------------------------------------------ copy_rows, pool */

static int cpu_copy_rows(qr_backend *be, const qr_tensor *src, const int32_t *src_idx, qr_tensor *dst,
                         const int32_t *dst_idx, int64_t n)
{
    int rc;
    if ((rc = check_tensor(src, "copy_rows", "src")) || (rc = check_tensor(dst, "copy_rows", "dst")))
        return rc;
    if (qr_dtype_is_block(src->dtype) || qr_dtype_is_block(dst->dtype))
        return qr_fail(QR_EINVAL, "cpu: copy_rows: %s tensors are weights (no row copies)",
                       qr_dtype_name(qr_dtype_is_block(src->dtype) ? src->dtype : dst->dtype));
    if (src->dtype != dst->dtype || src->cols != dst->cols)
        return qr_fail(QR_EINVAL, "cpu: copy_rows: src (%lld cols %s) and dst (%lld cols %s) differ",
                       (long long)src->cols, qr_dtype_name(src->dtype), (long long)dst->cols,
                       qr_dtype_name(dst->dtype));
    if (n < 0)
        return qr_fail(QR_EINVAL, "cpu: copy_rows: n = %lld", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t si = src_idx ? src_idx[i] : i, di = dst_idx ? dst_idx[i] : i;
        if (si < 0 || si >= src->rows || di < 0 || di >= dst->rows)
            return qr_fail(QR_EINVAL, "cpu: copy_rows: pair %lld (%lld -> %lld) outside src %lld / dst %lld rows",
                           (long long)i, (long long)si, (long long)di, (long long)src->rows, (long long)dst->rows);
    }
    size_t bytes = (size_t)src->cols * elem_size(src->dtype);
    for (int64_t i = 0; i < n; i++) {
        int64_t si = src_idx ? src_idx[i] : i, di = dst_idx ? dst_idx[i] : i;
        memmove(brow(dst, di), brow(src, si), bytes);
        if (src->dtype == QR_I8)
            dst->scale[di] = src->scale[si];
    }
    return QR_OK;
}

static int cpu_pool(qr_backend *be, const qr_tensor *x, const qr_attn_seq *seqs, int n_seq, qr_pool_mode mode,
                    qr_tensor *out)
{
    int rc;
    if ((rc = check_f32(x, "pool", "x")) || (rc = check_f32(out, "pool", "out")))
        return rc;
    if (mode != QR_POOL_MEAN && mode != QR_POOL_CLS && mode != QR_POOL_LAST)
        return qr_fail(QR_EINVAL, "cpu: pool: unknown mode %d", (int)mode);
    if (n_seq < 0 || (!seqs && n_seq > 0) || n_seq > out->rows || out->cols != x->cols)
        return qr_fail(QR_EINVAL, "cpu: pool: out is (%lld, %lld), expected at least (%d, %lld)",
                       (long long)out->rows, (long long)out->cols, n_seq, (long long)x->cols);
    for (int s = 0; s < n_seq; s++)
        if (seqs[s].q_start < 0 || seqs[s].n_q <= 0 || seqs[s].q_start > x->rows ||
            seqs[s].n_q > x->rows - seqs[s].q_start)
            return qr_fail(QR_EINVAL, "cpu: pool: seq %d (rows %d+%d) empty or outside x (%lld rows)", s,
                           seqs[s].q_start, seqs[s].n_q, (long long)x->rows);
    int64_t d = x->cols;
    for (int s = 0; s < n_seq; s++) {
        float *o = frow(out, s);
        const qr_attn_seq *q = &seqs[s];
        if (mode == QR_POOL_CLS || mode == QR_POOL_LAST) {
            memcpy(o, frow(x, mode == QR_POOL_CLS ? q->q_start : q->q_start + q->n_q - 1), (size_t)d * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < d; j++)
            o[j] = 0.0f;
        for (int32_t i = 0; i < q->n_q; i++) {
            const float *r = frow(x, q->q_start + i);
            for (int64_t j = 0; j < d; j++)
                o[j] += r[j];
        }
        float inv = 1.0f / (float)q->n_q;
        for (int64_t j = 0; j < d; j++)
            o[j] *= inv;
    }
    return QR_OK;
}

/* ------------------------------------------------------------ lifetime */

static void cpu_destroy(qr_backend *be)
{
    qr_cpu *c = cpu_of(be);
    if (!c)
        return;
    qr_threadpool_destroy(c->pool);
    for (int t = 0; c->scratch && t < c->n_threads; t++)
        free(c->scratch[t]);
    free(c->scratch);
    free(c->scratch_cap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Weights sharing x: for a few x rows (decode) and block weights the
 * integer kernels take, x quantized once and one dispatch over all rows
 * (runtime/cpu/quant's qr_qmat_mul_parts: the bits of one matmul each);
 * otherwise one matmul per weight. */
static int cpu_matmul_n(qr_backend *be, const qr_tensor *x, int n, const qr_tensor *const *w,
                        const qr_tensor *const *bias, qr_tensor *const *y)
{
    if (n < 1 || n > QR_BE_MATMUL_N_MAX || !w || !y)
        return qr_fail(QR_EINVAL, "cpu: matmul_n: %d weights (1..%d)", n, QR_BE_MATMUL_N_MAX);
    int rc;
    for (int i = 0; i < n; i++) {
        if ((rc = matmul_check(x, w[i], bias ? bias[i] : NULL, y[i])))
            return rc;
        for (int j = 0; j < i; j++)
            if (overlaps(y[j], y[i]))
                return qr_fail(QR_EINVAL, "cpu: matmul_n: outputs %d and %d overlap", j, i);
    }
#ifdef QR_HAVE_QKERN
    qr_cpu *c = cpu_of(be);
    bool fused = !c->block_tiles && x->rows > 0 && x->rows < QR_QGEMM_MIN_TOK && x->cols > 0;
    qr_qmat_part parts[QR_BE_MATMUL_N_MAX];
    for (int i = 0; fused && i < n; i++) {
        fused = qr_dtype_is_block(w[i]->dtype) && qr_qmat_supports(w[i]->dtype) && w[i]->rows > 0 &&
                w[i]->row_bytes == qr_dtype_row_bytes(w[i]->dtype, x->cols);
        parts[i] = (qr_qmat_part){w[i]->dtype, w[i]->data, w[i]->rows, y[i]->data, y[i]->row_bytes / sizeof(float)};
    }
    if (fused) {
        pthread_mutex_lock(&c->mu); /* one parallel_for on the pool at a time */
        rc = qr_qmat_mul_parts(c->pool, parts, n, x->cols, x->data, x->row_bytes / sizeof(float), x->rows);
        pthread_mutex_unlock(&c->mu);
        for (int i = 0; !rc && i < n; i++)
            add_bias(parts[i].y, parts[i].ys, x->rows, bias && bias[i] ? bias[i]->data : NULL, 0, w[i]->rows);
        return rc;
    }
#endif
    for (int i = 0; i < n; i++)
        if ((rc = cpu_matmul(be, x, w[i], bias ? bias[i] : NULL, y[i])))
            return rc;
    return QR_OK;
}

static const qr_backend_ops cpu_ops = {
    .name = "cpu",
    .tensor_alloc = cpu_tensor_alloc,
    .tensor_free = cpu_tensor_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .sync = cpu_sync,
    .weight_load = cpu_weight_load,
    .supports = cpu_supports,
    .embed = cpu_embed,
    .matmul = cpu_matmul,
    .add = cpu_add,
    .layernorm = cpu_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .gelu = cpu_gelu,
    .silu_mul = cpu_silu_mul,
    .attention = cpu_attention,
    .copy_rows = cpu_copy_rows,
    .pool = cpu_pool,
    .l2norm = cpu_l2norm,
    .destroy = cpu_destroy,
    .matmul_n = cpu_matmul_n,
};

int qr_backend_cpu_create_ex(int n_threads, bool force_scalar, qr_backend **out)
{
    if (n_threads < 0)
        return qr_fail(QR_EINVAL, "cpu: n_threads %d < 0", n_threads);
    qr_cpu *c = calloc(1, sizeof *c);
    if (!c)
        return qr_fail(QR_ENOMEM, "cpu: backend");
    pthread_mutex_init(&c->mu, NULL);
    int rc = qr_threadpool_create(n_threads, &c->pool);
    if (rc) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rc;
    }
    c->base.ops = &cpu_ops;
    c->base.act_dtype = QR_F32;
    c->n_threads = qr_threadpool_size(c->pool);
    c->k = qr_cpu_kernels_get(force_scalar);
    c->scratch = calloc((size_t)c->n_threads, sizeof *c->scratch);
    c->scratch_cap = calloc((size_t)c->n_threads, sizeof *c->scratch_cap);
    if (!c->scratch || !c->scratch_cap) {
        cpu_destroy(&c->base);
        return qr_fail(QR_ENOMEM, "cpu: backend scratch");
    }
    /* Our pool supplies the parallelism around each sgemm call. */
    openblas_set_num_threads(1);
    *out = &c->base;
    return QR_OK;
}

int qr_backend_cpu_create(int n_threads, qr_backend **out) { return qr_backend_cpu_create_ex(n_threads, false, out); }

const char *qr_backend_cpu_kernels(const qr_backend *be)
{
    return be && be->ops == &cpu_ops ? ((const qr_cpu *)be)->k->name : NULL;
}

void qr_backend_cpu_set_block_tiles(qr_backend *be, bool on)
{
    if (be && be->ops == &cpu_ops)
        ((qr_cpu *)be)->block_tiles = on;
}

bool qr_backend_cpu_has_qkern(void)
{
#ifdef QR_HAVE_QKERN
    return true;
#else
    return false;
#endif
}

void qr_backend_cpu_set_gemm_min_rows(qr_backend *be, int64_t n)
{
    if (be && be->ops == &cpu_ops)
        ((qr_cpu *)be)->gemm_min_rows = n < 0 ? 0 : n;
}

int qr_attn_check_seqs(const char *name, const qr_tensor *q, const qr_tensor *k, const qr_attn_seq *seqs, int n_seq)
{
    if (n_seq < 0 || (!seqs && n_seq > 0))
        return qr_fail(QR_EINVAL, "%s: attention: bad sequence list (%d)", name, n_seq);
    for (int s = 0; s < n_seq; s++) {
        const qr_attn_seq *d = &seqs[s];
        if (d->q_start < 0 || d->n_q < 0 || d->q_start > q->rows || d->n_q > q->rows - d->q_start ||
            d->kv_start < 0 || d->n_kv < 0 || d->kv_start > k->rows || d->n_kv > k->rows - d->kv_start ||
            d->q_pos0 < 0)
            return qr_fail(QR_EINVAL,
                           "%s: attention: seq %d (q %d+%d at pos %d, kv %d+%d) outside q (%lld rows) / kv "
                           "(%lld rows)",
                           name, s, d->q_start, d->n_q, d->q_pos0, d->kv_start, d->n_kv, (long long)q->rows,
                           (long long)k->rows);
    }
    return 0;
}

void qr_backend_destroy(qr_backend *be)
{
    if (be)
        be->ops->destroy(be);
}
