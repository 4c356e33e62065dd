/* The non-GEMM ops of the CUDA backend, with the semantics of the CPU
 * reference (runtime/cpu/cpu_backend.c): embed, add, layernorm, rmsnorm,
 * add_rmsnorm and add_layernorm (fused), rope, gelu, silu_mul, copy_rows,
 * pool, l2norm, and the f32 <-> storage conversions behind upload/download.
 * embed and download read GGUF block weights kept as stored too, decoded by
 * cuda_quant.h (the CPU's dequantized values, bit for bit).
 *
 * Activations are f32 or bf16 (one template per type); every value is widened
 * to f32 for arithmetic and rounded once when stored (round to nearest even).
 * Row reductions (norms) use one block per row: f32 partial sums per thread,
 * combined across the block in double, so a row's result does not depend on
 * the accuracy of long f32 sums. Rows are read with 16-byte vector loads when
 * the tensor's base, stride and width allow (always for dense tensors whose
 * width is a multiple of 4 f32 / 8 bf16), else element by element.
 *
 * Shapes and indices are checked on the host before anything is enqueued
 * (QR_EINVAL, as the CPU backend), so a kernel never sees a bad index. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "runtime/cuda/cuda_internal.h"
#include "runtime/cuda/cuda_quant.h"

#define QR_CUDA_MAX_GRID 65535

/* ------------------------------------------------------------ element access */

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

/* Elements per 16-byte vector. */
template <typename T> struct vec_n { static constexpr int n = 16 / (int)sizeof(T); };

/* Loads N consecutive elements (N = 1, or the 16-byte vector width) as f32. */
template <typename T, int N> __device__ __forceinline__ void ldv(const T *p, float (&f)[N])
{
    if constexpr (N == 1) {
        f[0] = to_f(p[0]);
    } else {
        static_assert(N * sizeof(T) == 16, "vector loads are 16 bytes");
        uint4 u = *reinterpret_cast<const uint4 *>(p);
        const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
        for (int k = 0; k < N; k++)
            f[k] = to_f(e[k]);
    }
}

template <typename T, int N> __device__ __forceinline__ void stv(T *p, const float (&f)[N])
{
    if constexpr (N == 1) {
        p[0] = from_f<T>(f[0]);
    } else {
        uint4 u;
        T *e = reinterpret_cast<T *>(&u);
#pragma unroll
        for (int k = 0; k < N; k++)
            e[k] = from_f<T>(f[k]);
        *reinterpret_cast<uint4 *>(p) = u;
    }
}

/* Rounds v as storing it in T would (what a later read of the stored value sees). */
template <typename T> __device__ __forceinline__ float round_as(float v) { return to_f(from_f<T>(v)); }

template <typename T> __device__ __forceinline__ T *row_ptr(void *base, size_t rb, int64_t r)
{
    return reinterpret_cast<T *>(static_cast<char *>(base) + (size_t)r * rb);
}
template <typename T> __device__ __forceinline__ const T *row_ptr(const void *base, size_t rb, int64_t r)
{
    return reinterpret_cast<const T *>(static_cast<const char *>(base) + (size_t)r * rb);
}

/* Element j of a weight/storage row of runtime dtype dt (uniform branch).
 * rsc: the row's scale (I8). GGUF blocks kept as stored (cuda_quant.h) go
 * through k_gguf_rows instead, a chunk of 32 values per thread. */
__device__ __forceinline__ float load_any(int dt, const void *row, int64_t j, float rsc)
{
    switch (dt) {
    case QR_F32: return static_cast<const float *>(row)[j];
    case QR_F16: return __half2float(static_cast<const __half *>(row)[j]);
    case QR_BF16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(row)[j]);
    case QR_I8: return (float)static_cast<const int8_t *>(row)[j] * rsc;
    case QR_I32: return (float)static_cast<const int32_t *>(row)[j];
    default: return 0.0f;
    }
}

/* The scale load_any needs for row r of a tensor (dt, scale). */
__device__ __forceinline__ float row_scale(int dt, const float *scale, int64_t r)
{
    return dt == QR_I8 ? scale[r] : 1.0f;
}

/* out row i (dense f32 or T, orb bytes apart) = GGUF row ids[i] (ids NULL:
 * row0 + i) of a table of kept type dt, decoded 32 values per thread
 * (qr_cq_deq32: the CPU's values bit for bit, then narrowed to T). */
template <typename T>
__global__ void k_gguf_rows(int dt, const void *table, size_t trb, const int32_t *ids, int64_t row0, int64_t n,
                            int64_t cols, void *out, size_t orb)
{
    const int64_t nch = cols >> 5;
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        const uint8_t *s = row_ptr<uint8_t>(table, trb, ids ? (int64_t)ids[i] : row0 + i);
        T *o = row_ptr<T>(out, orb, i);
        for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < nch; c += (int64_t)gridDim.x * blockDim.x) {
            float w[32];
            qr_cq_deq32((qr_dtype)dt, s, c, false, w);
#pragma unroll
            for (int e = 0; e < 32; e++)
                o[c * 32 + e] = from_f<T>(w[e]);
        }
    }
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result. sh: 33 doubles of shared memory. */
__device__ __forceinline__ double block_sum(double v, double *sh)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = (int)(blockDim.x >> 5);
    __syncthreads(); /* sh may still be read from an earlier call */
    if (l == 0)
        sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = l < nw ? sh[l] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        if (l == 0)
            sh[32] = v;
    }
    __syncthreads();
    return sh[32];
}

/* ------------------------------------------------------------ host helpers */

static bool al16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* True if rows of t can be read as 16-byte vectors of N elements. */
static bool vec_ok(const qr_tensor *t, int n)
{
    return t && al16(t->data) && t->row_bytes % 16 == 0 && t->cols % n == 0;
}

static bool dense(const qr_tensor *t) { return t->row_bytes == (size_t)t->cols * qr_cuda_elem_size(t->dtype); }

/* Threads per block for a row of `units` work items: whole warps, 32..max. */
static int row_threads(int64_t units, int max)
{
    int t = 32;
    while (t < max && t < units)
        t *= 2;
    return t;
}

static unsigned grid_for(int64_t n)
{
    return (unsigned)(n < 1 ? 1 : n > QR_CUDA_MAX_GRID ? QR_CUDA_MAX_GRID : n);
}

/* ------------------------------------------------------------ conversions */

/* dst (rows, cols) dense f32 = rows row0.. of src (any storage type). */
__global__ void k_to_f32(int dt, const void *src, size_t rb, const float *scale, int64_t row0, int64_t rows,
                         int64_t cols, float *dst)
{
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const void *s = row_ptr<char>(src, rb, row0 + r);
        float rsc = row_scale(dt, scale, row0 + r);
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x)
            dst[r * cols + j] = load_any(dt, s, j, rsc);
    }
}

template <typename T>
__global__ void k_from_f32(const float *src, void *dst, size_t rb, int64_t row0, int64_t rows, int64_t cols)
{
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        T *d = row_ptr<T>(dst, rb, row0 + r);
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x)
            d[j] = from_f<T>(src[r * cols + j]);
    }
}

static dim3 grid2(int64_t rows, int64_t cols, int threads)
{
    return dim3(grid_for((cols + threads - 1) / threads > 64 ? 64 : (cols + threads - 1) / threads), grid_for(rows));
}

extern "C" int qr_cuda_to_f32(qr_cuda_backend *cb, const qr_tensor *t, int64_t row0, int64_t rows, float *dst)
{
    if (rows <= 0 || t->cols <= 0)
        return QR_OK;
    if (qr_cq_kept(t->dtype)) {
        k_gguf_rows<float><<<grid2(rows, t->cols / 32, 256), 256, 0, cb->stream>>>(
            (int)t->dtype, t->data, t->row_bytes, nullptr, row0, rows, t->cols, dst, (size_t)t->cols * sizeof(float));
        return qr_cuda_launched("to_f32");
    }
    k_to_f32<<<grid2(rows, t->cols, 256), 256, 0, cb->stream>>>((int)t->dtype, t->data, t->row_bytes,
                                                                 t->scale, row0, rows,
                                                                 t->cols, dst);
    return qr_cuda_launched("to_f32");
}

extern "C" int qr_cuda_from_f32(qr_cuda_backend *cb, const float *src, qr_tensor *t, int64_t row0, int64_t rows)
{
    if (rows <= 0 || t->cols <= 0)
        return QR_OK;
    dim3 g = grid2(rows, t->cols, 256);
    switch (t->dtype) {
    case QR_F32: k_from_f32<float><<<g, 256, 0, cb->stream>>>(src, t->data, t->row_bytes, row0, rows, t->cols); break;
    case QR_F16: k_from_f32<__half><<<g, 256, 0, cb->stream>>>(src, t->data, t->row_bytes, row0, rows, t->cols); break;
    case QR_BF16:
        k_from_f32<__nv_bfloat16><<<g, 256, 0, cb->stream>>>(src, t->data, t->row_bytes, row0, rows, t->cols);
        break;
    default: return qr_fail(QR_EINVAL, "cuda: from_f32: cannot store f32 into %s", qr_dtype_name(t->dtype));
    }
    return qr_cuda_launched("from_f32");
}

/* ------------------------------------------------------------ embed */

/* out row i = table row ids[i], widened from the table's type and stored as T. */
template <typename T>
__global__ void k_embed(int dt, const void *table, size_t trb, const float *scale, const int32_t *ids, int64_t n,
                        int64_t cols, void *out, size_t orb)
{
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        int32_t id = ids[i];
        const void *s = row_ptr<char>(table, trb, id);
        float rsc = row_scale(dt, scale, id);
        T *o = row_ptr<T>(out, orb, i);
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x)
            o[j] = from_f<T>(load_any(dt, s, j, rsc));
    }
}

extern "C" int qr_cuda_embed(qr_backend *be, const qr_tensor *table, const int32_t *ids, int64_t n, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_tensor(table, "embed", "table")) || (rc = qr_cuda_check_act(out, "embed", "out")))
        return rc;
    if (table->dtype == QR_I32)
        return qr_fail(QR_EINVAL, "cuda: embed: table dtype i32 is not a weight type");
    if (n < 0 || n > out->rows || out->cols != table->cols)
        return qr_fail(QR_EINVAL, "cuda: embed: out is (%lld, %lld), expected at least (%lld, %lld)",
                       (long long)out->rows, (long long)out->cols, (long long)n, (long long)table->cols);
    if (!ids && n > 0)
        return qr_fail(QR_EINVAL, "cuda: embed: ids is NULL");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->rows)
            return qr_fail(QR_EINVAL, "cuda: embed: id %d at %lld outside table of %lld rows", ids[i], (long long)i,
                           (long long)table->rows);
    if (n == 0 || table->cols == 0)
        return QR_OK;
    void *d_ids = NULL;
    if ((rc = qr_cuda_use(cb)) || (rc = qr_cuda_stage(cb, ids, (size_t)n * sizeof(int32_t), &d_ids)))
        return rc;
    if (qr_cq_kept(table->dtype)) { /* GGUF blocks as stored: a chunk of 32 values per thread */
        dim3 g = grid2(n, table->cols / 32, 256);
        if (out->dtype == QR_F32)
            k_gguf_rows<float><<<g, 256, 0, cb->stream>>>((int)table->dtype, table->data, table->row_bytes,
                                                           (const int32_t *)d_ids, 0, n, table->cols, out->data,
                                                           out->row_bytes);
        else
            k_gguf_rows<__nv_bfloat16><<<g, 256, 0, cb->stream>>>((int)table->dtype, table->data, table->row_bytes,
                                                                   (const int32_t *)d_ids, 0, n, table->cols,
                                                                   out->data, out->row_bytes);
        return qr_cuda_launched("embed");
    }
    dim3 g = grid2(n, table->cols, 256);
    const float *sc = table->scale; /* I8 only */
    if (out->dtype == QR_F32)
        k_embed<float><<<g, 256, 0, cb->stream>>>((int)table->dtype, table->data, table->row_bytes, sc,
                                                   (const int32_t *)d_ids, n, table->cols, out->data, out->row_bytes);
    else
        k_embed<__nv_bfloat16><<<g, 256, 0, cb->stream>>>((int)table->dtype, table->data, table->row_bytes, sc,
                                                           (const int32_t *)d_ids, n, table->cols, out->data,
                                                           out->row_bytes);
    return qr_cuda_launched("embed");
}

/* ------------------------------------------------------------ element-wise: add, gelu, silu_mul */

struct op_add {
    __device__ __forceinline__ float operator()(float y, float x) const { return y + x; }
};
/* Exact GELU through erfc, as the CPU reference (accurate for negative x). */
struct op_gelu {
    __device__ __forceinline__ float operator()(float x, float) const
    {
        return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    }
};
struct op_silu_mul {
    __device__ __forceinline__ float operator()(float g, float u) const { return g / (1.0f + expf(-g)) * u; }
};

/* y = op(y, x) element-wise over (rows, cols); x may be NULL (unary op). Each
 * thread handles N consecutive elements of a row. */
template <typename T, int N, typename Op>
__global__ void k_ew(void *y, size_t yrb, const void *x, size_t xrb, int64_t rows, int64_t cols, Op op)
{
    int64_t nv = cols / N;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        T *yr = row_ptr<T>(y, yrb, r);
        const T *xr = x ? row_ptr<T>(x, xrb, r) : nullptr;
        for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < nv; c += (int64_t)gridDim.x * blockDim.x) {
            float a[N], b[N];
            ldv<T, N>(yr + c * N, a);
            if (xr)
                ldv<T, N>(xr + c * N, b);
            else
#pragma unroll
                for (int k = 0; k < N; k++)
                    b[k] = 0.0f;
#pragma unroll
            for (int k = 0; k < N; k++)
                a[k] = op(a[k], b[k]);
            stv<T, N>(yr + c * N, a);
        }
    }
}

template <typename T, typename Op>
static int launch_ew(qr_cuda_backend *cb, qr_tensor *y, const qr_tensor *x, Op op, const char *name)
{
    constexpr int N = vec_n<T>::n;
    int64_t rows = y->rows, cols = y->cols;
    size_t yrb = y->row_bytes, xrb = x ? x->row_bytes : 0;
    if (rows == 0 || cols == 0)
        return QR_OK;
    if (dense(y) && (!x || dense(x))) { /* one long row: no idle threads on narrow rows */
        cols *= rows;
        rows = 1;
        yrb = xrb = (size_t)cols * sizeof(T);
    }
    bool v = al16(y->data) && yrb % 16 == 0 && cols % N == 0 && (!x || (al16(x->data) && xrb % 16 == 0));
    int64_t units = v ? cols / N : cols;
    dim3 g(grid_for((units + 255) / 256 > 4096 ? 4096 : (units + 255) / 256), grid_for(rows));
    const void *xd = x ? x->data : nullptr;
    if (v)
        k_ew<T, N, Op><<<g, 256, 0, cb->stream>>>(y->data, yrb, xd, xrb, rows, cols, op);
    else
        k_ew<T, 1, Op><<<g, 256, 0, cb->stream>>>(y->data, yrb, xd, xrb, rows, cols, op);
    return qr_cuda_launched(name);
}

template <typename Op>
static int ew_dispatch(qr_backend *be, qr_tensor *y, const qr_tensor *x, Op op, const char *name)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    return y->dtype == QR_F32 ? launch_ew<float>(cb, y, x, op, name) : launch_ew<__nv_bfloat16>(cb, y, x, op, name);
}

static int check_pair(const qr_tensor *y, const qr_tensor *x, const char *op, const char *yn, const char *xn)
{
    int rc;
    if ((rc = qr_cuda_check_act(y, op, yn)) || (rc = qr_cuda_check_act(x, op, xn)) ||
        (rc = qr_cuda_check_shape(x, y->rows, y->cols, op, xn)))
        return rc;
    if (x->dtype != y->dtype)
        return qr_fail(QR_EINVAL, "cuda: %s: %s is %s but %s is %s", op, yn, qr_dtype_name(y->dtype), xn,
                       qr_dtype_name(x->dtype));
    return QR_OK;
}

extern "C" int qr_cuda_add(qr_backend *be, qr_tensor *y, const qr_tensor *x)
{
    int rc = check_pair(y, x, "add", "y", "x");
    return rc ? rc : ew_dispatch(be, y, x, op_add(), "add");
}

extern "C" int qr_cuda_gelu(qr_backend *be, qr_tensor *x)
{
    int rc = qr_cuda_check_act(x, "gelu", "x");
    return rc ? rc : ew_dispatch(be, x, nullptr, op_gelu(), "gelu");
}

extern "C" int qr_cuda_silu_mul(qr_backend *be, qr_tensor *gate, const qr_tensor *up)
{
    int rc = check_pair(gate, up, "silu_mul", "gate", "up");
    return rc ? rc : ew_dispatch(be, gate, up, op_silu_mul(), "silu_mul");
}

/* ------------------------------------------------------------ norms */

/* out = x / sqrt(mean(x^2) + eps) * w per row; with RES, first x += y (stored)
 * and the norm is taken of the stored sum, as add followed by rmsnorm. The same
 * thread reads and writes each element in both passes, so out may be x. */
/* Loads N values of row r of x at vector c into a; with RES, first x += y
 * (rounded to T, as the unfused add then norm would store it) and stores the
 * sum back into x. y is read only here, so a norm's out may alias y. */
template <typename T, int N, bool RES>
__device__ __forceinline__ void load_residual(T *xr, const void *y, size_t yrb, int64_t r, int64_t c, float (&a)[N])
{
    ldv<T, N>(xr + c * N, a);
    if constexpr (RES) {
        float b[N];
        ldv<T, N>(row_ptr<T>(y, yrb, r) + c * N, b);
#pragma unroll
        for (int k = 0; k < N; k++)
            a[k] = round_as<T>(a[k] + b[k]);
        stv<T, N>(xr + c * N, a);
    }
}

template <typename T, int N, bool RES>
__global__ void k_rmsnorm(void *x, size_t xrb, const void *y, size_t yrb, const float *w, float eps, void *out,
                          size_t orb, int64_t rows, int64_t cols)
{
    __shared__ double sh[33];
    int64_t nv = cols / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        T *xr = row_ptr<T>(x, xrb, r);
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            load_residual<T, N, RES>(xr, y, yrb, r, c, a);
#pragma unroll
            for (int k = 0; k < N; k++)
                ss += a[k] * a[k];
        }
        double sq = block_sum((double)ss, sh);
        float rs = (float)(1.0 / sqrt((cols ? sq / (double)cols : 0.0) + (double)eps));
        T *orow = row_ptr<T>(out, orb, r);
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N], g[N];
            ldv<T, N>(xr + c * N, a);
#pragma unroll
            for (int k = 0; k < N; k++) {
                g[k] = w[c * N + k];
                a[k] = a[k] * rs * g[k];
            }
            stv<T, N>(orow + c * N, a);
        }
    }
}

template <typename T, bool RES>
static void launch_rmsnorm(qr_cuda_backend *cb, qr_tensor *x, const qr_tensor *y, const qr_tensor *w, float eps,
                           qr_tensor *out)
{
    constexpr int N = vec_n<T>::n;
    bool v = vec_ok(x, N) && vec_ok(out, N) && (!RES || vec_ok(y, N));
    int64_t units = v ? x->cols / N : x->cols;
    int th = row_threads(units, 1024);
    unsigned g = grid_for(x->rows);
    const void *yd = RES ? y->data : nullptr;
    size_t yrb = RES ? y->row_bytes : 0;
    if (v)
        k_rmsnorm<T, N, RES><<<g, th, 0, cb->stream>>>(x->data, x->row_bytes, yd, yrb, (const float *)w->data, eps,
                                                       out->data, out->row_bytes, x->rows, x->cols);
    else
        k_rmsnorm<T, 1, RES><<<g, th, 0, cb->stream>>>(x->data, x->row_bytes, yd, yrb, (const float *)w->data, eps,
                                                       out->data, out->row_bytes, x->rows, x->cols);
}

static int check_norm(const qr_tensor *x, const qr_tensor *w, const qr_tensor *out, const char *op, const char *wn)
{
    int rc;
    if ((rc = qr_cuda_check_act(x, op, "x")) || (rc = qr_cuda_check_act(out, op, "out")) ||
        (rc = qr_cuda_check_shape(out, x->rows, x->cols, op, "out")) || (rc = qr_cuda_check_tensor(w, op, wn)) ||
        (rc = qr_cuda_check_shape(w, 1, x->cols, op, wn)))
        return rc;
    if (w->dtype != QR_F32)
        return qr_fail(QR_EINVAL, "cuda: %s: %s must be f32, got %s", op, wn, qr_dtype_name(w->dtype));
    if (out->dtype != x->dtype)
        return qr_fail(QR_EINVAL, "cuda: %s: out is %s but x is %s", op, qr_dtype_name(out->dtype),
                       qr_dtype_name(x->dtype));
    return QR_OK;
}

extern "C" int qr_cuda_rmsnorm(qr_backend *be, const qr_tensor *x, const qr_tensor *w, float eps, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = check_norm(x, w, out, "rmsnorm", "w")))
        return rc;
    if (x->rows == 0 || x->cols == 0)
        return QR_OK;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    qr_tensor *xm = const_cast<qr_tensor *>(x); /* not written without RES */
    if (x->dtype == QR_F32)
        launch_rmsnorm<float, false>(cb, xm, nullptr, w, eps, out);
    else
        launch_rmsnorm<__nv_bfloat16, false>(cb, xm, nullptr, w, eps, out);
    return qr_cuda_launched("rmsnorm");
}

extern "C" int qr_cuda_add_rmsnorm(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *w, float eps,
                                   qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = check_pair(x, y, "add_rmsnorm", "x", "y")) || (rc = check_norm(x, w, out, "add_rmsnorm", "w")))
        return rc;
    if (qr_cuda_overlaps(out, x) || qr_cuda_overlaps(out, y))
        return qr_fail(QR_EINVAL, "cuda: add_rmsnorm: out overlaps x or y");
    if (x->rows == 0 || x->cols == 0)
        return QR_OK;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    if (x->dtype == QR_F32)
        launch_rmsnorm<float, true>(cb, x, y, w, eps, out);
    else
        launch_rmsnorm<__nv_bfloat16, true>(cb, x, y, w, eps, out);
    return qr_cuda_launched("add_rmsnorm");
}

/* out = (x - mean) / sqrt(var + eps) * gamma + beta per row. The mean is kept
 * as an unevaluated f32 sum hi + lo so that centring loses nothing when the
 * mean is large next to the spread (as the CPU's double mean). With RES,
 * first x += y (stored) as add followed by layernorm. Each element is read
 * and written by one thread in all passes, and the passes are separated by
 * the block reductions' barriers, so out may be x or y. */
template <typename T, int N, bool RES>
__global__ void k_layernorm(void *x, size_t xrb, const void *y, size_t yrb, const float *gamma, const float *beta,
                            float eps, void *out, size_t orb, int64_t rows, int64_t cols)
{
    __shared__ double sh[33];
    int64_t nv = cols / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        T *xr = row_ptr<T>(x, xrb, r);
        float s = 0.0f;
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            load_residual<T, N, RES>(xr, y, yrb, r, c, a);
#pragma unroll
            for (int k = 0; k < N; k++)
                s += a[k];
        }
        double mean = cols ? block_sum((double)s, sh) / (double)cols : 0.0;
        float m_hi = (float)mean, m_lo = (float)(mean - (double)m_hi);
        float q = 0.0f;
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            ldv<T, N>(xr + c * N, a);
#pragma unroll
            for (int k = 0; k < N; k++) {
                float t = (a[k] - m_hi) - m_lo;
                q += t * t;
            }
        }
        double var = cols ? block_sum((double)q, sh) / (double)cols : 0.0;
        float rstd = (float)(1.0 / sqrt(var + (double)eps));
        T *orow = row_ptr<T>(out, orb, r);
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            ldv<T, N>(xr + c * N, a);
#pragma unroll
            for (int k = 0; k < N; k++) {
                int64_t j = c * N + k;
                a[k] = ((a[k] - m_hi) - m_lo) * rstd * gamma[j] + (beta ? beta[j] : 0.0f);
            }
            stv<T, N>(orow + c * N, a);
        }
    }
}

template <typename T, bool RES>
static void launch_layernorm(qr_cuda_backend *cb, qr_tensor *x, const qr_tensor *y, const qr_tensor *gamma,
                             const qr_tensor *beta, float eps, qr_tensor *out)
{
    constexpr int N = vec_n<T>::n;
    bool v = vec_ok(x, N) && vec_ok(out, N) && (!RES || vec_ok(y, N));
    int th = row_threads(v ? x->cols / N : x->cols, 1024);
    unsigned g = grid_for(x->rows);
    const float *bt = beta ? (const float *)beta->data : nullptr;
    const void *yd = RES ? y->data : nullptr;
    size_t yrb = RES ? y->row_bytes : 0;
    if (v)
        k_layernorm<T, N, RES><<<g, th, 0, cb->stream>>>(x->data, x->row_bytes, yd, yrb, (const float *)gamma->data,
                                                         bt, eps, out->data, out->row_bytes, x->rows, x->cols);
    else
        k_layernorm<T, 1, RES><<<g, th, 0, cb->stream>>>(x->data, x->row_bytes, yd, yrb, (const float *)gamma->data,
                                                         bt, eps, out->data, out->row_bytes, x->rows, x->cols);
}

static int check_beta(const qr_tensor *x, const qr_tensor *beta, const char *op)
{
    int rc;
    if (!beta)
        return QR_OK;
    if ((rc = qr_cuda_check_tensor(beta, op, "beta")) || (rc = qr_cuda_check_shape(beta, 1, x->cols, op, "beta")))
        return rc;
    if (beta->dtype != QR_F32)
        return qr_fail(QR_EINVAL, "cuda: %s: beta must be f32, got %s", op, qr_dtype_name(beta->dtype));
    return QR_OK;
}

extern "C" int qr_cuda_layernorm(qr_backend *be, const qr_tensor *x, const qr_tensor *gamma, const qr_tensor *beta,
                                 float eps, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = check_norm(x, gamma, out, "layernorm", "gamma")) || (rc = check_beta(x, beta, "layernorm")))
        return rc;
    if (x->rows == 0 || x->cols == 0)
        return QR_OK;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    qr_tensor *xm = const_cast<qr_tensor *>(x); /* not written without RES */
    if (x->dtype == QR_F32)
        launch_layernorm<float, false>(cb, xm, nullptr, gamma, beta, eps, out);
    else
        launch_layernorm<__nv_bfloat16, false>(cb, xm, nullptr, gamma, beta, eps, out);
    return qr_cuda_launched("layernorm");
}

/* out is x or y itself, or apart from both. */
static bool same_or_apart(const qr_tensor *out, const qr_tensor *t)
{
    return !qr_cuda_overlaps(out, t) || (out->data == t->data && out->row_bytes == t->row_bytes);
}

extern "C" int qr_cuda_add_layernorm(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *gamma,
                                     const qr_tensor *beta, float eps, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = check_pair(x, y, "add_layernorm", "x", "y")) || (rc = check_norm(x, gamma, out, "add_layernorm", "gamma")) ||
        (rc = check_beta(x, beta, "add_layernorm")))
        return rc;
    if (!same_or_apart(out, x) || !same_or_apart(out, y) || qr_cuda_overlaps(x, y))
        return qr_fail(QR_EINVAL, "cuda: add_layernorm: out partly overlaps x or y, or x overlaps y");
    if (x->rows == 0 || x->cols == 0)
        return QR_OK;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    if (x->dtype == QR_F32)
        launch_layernorm<float, true>(cb, x, y, gamma, beta, eps, out);
    else
        launch_layernorm<__nv_bfloat16, true>(cb, x, y, gamma, beta, eps, out);
    return qr_cuda_launched("add_layernorm");
}

/* Each row scaled to unit L2 norm; rows of norm 0 stay zeros. */
template <typename T, int N>
__global__ void k_l2norm(void *x, size_t xrb, int64_t rows, int64_t cols)
{
    __shared__ double sh[33];
    int64_t nv = cols / N;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        T *xr = row_ptr<T>(x, xrb, r);
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            ldv<T, N>(xr + c * N, a);
#pragma unroll
            for (int k = 0; k < N; k++)
                ss += a[k] * a[k];
        }
        double sq = block_sum((double)ss, sh);
        if (!(sq > 0.0))
            continue; /* uniform across the block */
        float inv = (float)(1.0 / sqrt(sq));
        for (int64_t c = threadIdx.x; c < nv; c += blockDim.x) {
            float a[N];
            ldv<T, N>(xr + c * N, a);
#pragma unroll
            for (int k = 0; k < N; k++)
                a[k] *= inv;
            stv<T, N>(xr + c * N, a);
        }
    }
}

extern "C" int qr_cuda_l2norm(qr_backend *be, qr_tensor *x)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_act(x, "l2norm", "x")))
        return rc;
    if (x->rows == 0 || x->cols == 0)
        return QR_OK;
    if ((rc = qr_cuda_use(cb)))
        return rc;
    unsigned g = grid_for(x->rows);
    if (x->dtype == QR_F32) {
        constexpr int N = vec_n<float>::n;
        if (vec_ok(x, N))
            k_l2norm<float, N><<<g, row_threads(x->cols / N, 1024), 0, cb->stream>>>(x->data, x->row_bytes, x->rows,
                                                                                    x->cols);
        else
            k_l2norm<float, 1><<<g, row_threads(x->cols, 1024), 0, cb->stream>>>(x->data, x->row_bytes, x->rows,
                                                                                x->cols);
    } else {
        constexpr int N = vec_n<__nv_bfloat16>::n;
        if (vec_ok(x, N))
            k_l2norm<__nv_bfloat16, N><<<g, row_threads(x->cols / N, 1024), 0, cb->stream>>>(x->data, x->row_bytes,
                                                                                            x->rows, x->cols);
        else
            k_l2norm<__nv_bfloat16, 1><<<g, row_threads(x->cols, 1024), 0, cb->stream>>>(x->data, x->row_bytes,
                                                                                        x->rows, x->cols);
    }
    return qr_cuda_launched("l2norm");
}

/* ------------------------------------------------------------ rope */

/* In place, HF rotate_half: pairs (j, j + half) of every head. The angle is
 * rounded to f32 (pos * inv_freq) before cos/sin, as the CPU reference and HF.
 * One block per row computes the row's cos/sin once for all its heads. */
template <typename T>
__global__ void k_rope(void *x, size_t xrb, int64_t rows, int n_head, int head_dim, const int32_t *pos,
                       const float *inv_freq)
{
    extern __shared__ float cs[]; /* cos[half], sin[half] */
    int half = head_dim / 2;
    float *sn = cs + half;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float p = (float)pos[r];
        __syncthreads(); /* the previous row is done with cs/sn */
        for (int j = threadIdx.x; j < half; j += blockDim.x) {
            float th = p * inv_freq[j];
            cs[j] = cosf(th);
            sn[j] = sinf(th);
        }
        __syncthreads();
        T *xr = row_ptr<T>(x, xrb, r);
        int64_t pairs = (int64_t)n_head * half;
        for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
            int h = (int)(i / half), j = (int)(i % half);
            T *hp = xr + (size_t)h * head_dim;
            float a = to_f(hp[j]), b = to_f(hp[j + half]);
            hp[j] = from_f<T>(a * cs[j] - b * sn[j]);
            hp[j + half] = from_f<T>(b * cs[j] + a * sn[j]);
        }
    }
}

extern "C" int qr_cuda_rope(qr_backend *be, qr_tensor *x, int n_head, int head_dim, const int32_t *pos,
                            const float *inv_freq)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_act(x, "rope", "x")))
        return rc;
    if (n_head <= 0 || head_dim <= 0 || head_dim % 2 || head_dim > 1024)
        return qr_fail(QR_EINVAL, "cuda: rope: n_head %d / head_dim %d invalid (head_dim even, <= 1024)", n_head,
                       head_dim);
    if (x->cols != (int64_t)n_head * head_dim)
        return qr_fail(QR_EINVAL, "cuda: rope: x has %lld columns, expected n_head %d x head_dim %d",
                       (long long)x->cols, n_head, head_dim);
    if ((!pos || !inv_freq) && x->rows > 0)
        return qr_fail(QR_EINVAL, "cuda: rope: pos or inv_freq is NULL");
    if (x->rows == 0)
        return QR_OK;
    void *d_pos = NULL, *d_freq = NULL;
    if ((rc = qr_cuda_use(cb)) || (rc = qr_cuda_stage(cb, pos, (size_t)x->rows * sizeof(int32_t), &d_pos)) ||
        (rc = qr_cuda_stage(cb, inv_freq, (size_t)(head_dim / 2) * sizeof(float), &d_freq)))
        return rc;
    int th = row_threads((int64_t)n_head * (head_dim / 2), 256);
    size_t shm = (size_t)head_dim * sizeof(float);
    unsigned g = grid_for(x->rows);
    if (x->dtype == QR_F32)
        k_rope<float><<<g, th, shm, cb->stream>>>(x->data, x->row_bytes, x->rows, n_head, head_dim,
                                                  (const int32_t *)d_pos, (const float *)d_freq);
    else
        k_rope<__nv_bfloat16><<<g, th, shm, cb->stream>>>(x->data, x->row_bytes, x->rows, n_head, head_dim,
                                                          (const int32_t *)d_pos, (const float *)d_freq);
    return qr_cuda_launched("rope");
}

/* ------------------------------------------------------------ copy_rows */

/* dst row dst_idx[i] = src row src_idx[i] (NULL index = identity), `units`
 * words of type W per row; I8 rows carry their scale along. With SEQ (one
 * block, source and destination overlapping) the pairs run in order, as the
 * CPU's memmove loop. */
template <typename W, bool SEQ>
__global__ void k_copy_rows(const void *src, size_t srb, const float *sscale, const int32_t *sidx, void *dst,
                            size_t drb, float *dscale, const int32_t *didx, int64_t n, int64_t units)
{
    for (int64_t i = SEQ ? 0 : blockIdx.x; i < n; i += SEQ ? 1 : gridDim.x) {
        int64_t si = sidx ? sidx[i] : i, di = didx ? didx[i] : i;
        const W *s = row_ptr<W>(src, srb, si);
        W *d = row_ptr<W>(dst, drb, di);
        if constexpr (SEQ) {
            /* read the whole row before writing any of it (rows may overlap) */
            for (int64_t base = 0; base < units; base += blockDim.x) {
                int64_t u = base + threadIdx.x;
                W v{};
                if (u < units)
                    v = s[u];
                __syncthreads();
                if (u < units)
                    d[u] = v;
            }
            __syncthreads();
        } else {
            for (int64_t u = threadIdx.x; u < units; u += blockDim.x)
                d[u] = s[u];
        }
        if (dscale && threadIdx.x == 0)
            dscale[di] = sscale[si];
        if constexpr (SEQ)
            __syncthreads();
    }
}

template <typename W>
static void launch_copy(qr_cuda_backend *cb, bool seq, const qr_tensor *src, const int32_t *si, qr_tensor *dst,
                        const int32_t *di, int64_t n, int64_t units)
{
    int th = row_threads(units, 256);
    const float *ss = src->dtype == QR_I8 ? src->scale : nullptr;
    float *ds = src->dtype == QR_I8 ? dst->scale : nullptr;
    if (seq)
        k_copy_rows<W, true><<<1, th, 0, cb->stream>>>(src->data, src->row_bytes, ss, si, dst->data, dst->row_bytes, ds,
                                                       di, n, units);
    else
        k_copy_rows<W, false><<<grid_for(n), th, 0, cb->stream>>>(src->data, src->row_bytes, ss, si, dst->data,
                                                                  dst->row_bytes, ds, di, n, units);
}

extern "C" int qr_cuda_copy_rows(qr_backend *be, const qr_tensor *src, const int32_t *src_idx, qr_tensor *dst,
                                 const int32_t *dst_idx, int64_t n)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_tensor(src, "copy_rows", "src")) || (rc = qr_cuda_check_tensor(dst, "copy_rows", "dst")))
        return rc;
    if (src->dtype != dst->dtype || src->cols != dst->cols)
        return qr_fail(QR_EINVAL, "cuda: copy_rows: src (%lld cols %s) and dst (%lld cols %s) differ",
                       (long long)src->cols, qr_dtype_name(src->dtype), (long long)dst->cols,
                       qr_dtype_name(dst->dtype));
    if (n < 0)
        return qr_fail(QR_EINVAL, "cuda: copy_rows: n = %lld", (long long)n);
    if (qr_dtype_is_block(src->dtype))
        return qr_fail(QR_EINVAL, "cuda: copy_rows: %s weight rows are not copied (activations and KV only)",
                       qr_dtype_name(src->dtype));
    for (int64_t i = 0; i < n; i++) {
        int64_t si = src_idx ? src_idx[i] : i, di = dst_idx ? dst_idx[i] : i;
        if (si < 0 || si >= src->rows || di < 0 || di >= dst->rows)
            return qr_fail(QR_EINVAL, "cuda: copy_rows: pair %lld (%lld -> %lld) outside src %lld / dst %lld rows",
                           (long long)i, (long long)si, (long long)di, (long long)src->rows, (long long)dst->rows);
    }
    if (n == 0 || src->cols == 0)
        return QR_OK;
    void *d_si = NULL, *d_di = NULL;
    if ((rc = qr_cuda_use(cb)) ||
        (src_idx && (rc = qr_cuda_stage(cb, src_idx, (size_t)n * sizeof(int32_t), &d_si))) ||
        (dst_idx && (rc = qr_cuda_stage(cb, dst_idx, (size_t)n * sizeof(int32_t), &d_di))))
        return rc;
    size_t bytes = (size_t)src->cols * qr_cuda_elem_size(src->dtype);
    /* Overlapping ranges: pairs in order, as the CPU (rare; never the KV-cache path). */
    bool seq = qr_cuda_overlaps(src, dst);
    const int32_t *si = (const int32_t *)d_si, *di = (const int32_t *)d_di;
    bool a16 = al16(src->data) && al16(dst->data) && src->row_bytes % 16 == 0 && dst->row_bytes % 16 == 0 &&
               bytes % 16 == 0;
    bool a4 = ((uintptr_t)src->data & 3u) == 0 && ((uintptr_t)dst->data & 3u) == 0 && src->row_bytes % 4 == 0 &&
              dst->row_bytes % 4 == 0 && bytes % 4 == 0;
    if (a16)
        launch_copy<uint4>(cb, seq, src, si, dst, di, n, (int64_t)(bytes / 16));
    else if (a4)
        launch_copy<uint32_t>(cb, seq, src, si, dst, di, n, (int64_t)(bytes / 4));
    else
        launch_copy<uint8_t>(cb, seq, src, si, dst, di, n, (int64_t)bytes);
    return qr_cuda_launched("copy_rows");
}

/* ------------------------------------------------------------ pool */

/* out row s = mean / first / last of sequence s's rows. The mean sums rows in
 * order in f32 and multiplies by 1/n, exactly as the CPU reference. */
template <typename T>
__global__ void k_pool(const void *x, size_t xrb, const qr_attn_seq *seqs, int n_seq, int mode, void *out, size_t orb,
                       int64_t cols)
{
    for (int s = blockIdx.y; s < n_seq; s += gridDim.y) {
        qr_attn_seq q = seqs[s];
        T *o = row_ptr<T>(out, orb, s);
        for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
            if (mode == QR_POOL_CLS || mode == QR_POOL_LAST) {
                int64_t r = mode == QR_POOL_CLS ? q.q_start : (int64_t)q.q_start + q.n_q - 1;
                o[j] = row_ptr<T>(x, xrb, r)[j];
                continue;
            }
            float acc = 0.0f;
            for (int32_t i = 0; i < q.n_q; i++)
                acc += to_f(row_ptr<T>(x, xrb, (int64_t)q.q_start + i)[j]);
            o[j] = from_f<T>(acc * (1.0f / (float)q.n_q));
        }
    }
}

extern "C" int qr_cuda_pool(qr_backend *be, const qr_tensor *x, const qr_attn_seq *seqs, int n_seq, qr_pool_mode mode,
                            qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_check_act(x, "pool", "x")) || (rc = qr_cuda_check_act(out, "pool", "out")))
        return rc;
    if (x->dtype != out->dtype)
        return qr_fail(QR_EINVAL, "cuda: pool: out is %s but x is %s", qr_dtype_name(out->dtype),
                       qr_dtype_name(x->dtype));
    if (mode != QR_POOL_MEAN && mode != QR_POOL_CLS && mode != QR_POOL_LAST)
        return qr_fail(QR_EINVAL, "cuda: pool: unknown mode %d", (int)mode);
    if (n_seq < 0 || (!seqs && n_seq > 0) || n_seq > out->rows || out->cols != x->cols)
        return qr_fail(QR_EINVAL, "cuda: pool: out is (%lld, %lld), expected at least (%d, %lld)",
                       (long long)out->rows, (long long)out->cols, n_seq, (long long)x->cols);
    for (int s = 0; s < n_seq; s++)
        if (seqs[s].q_start < 0 || seqs[s].n_q <= 0 || seqs[s].q_start > x->rows ||
            seqs[s].n_q > x->rows - seqs[s].q_start)
            return qr_fail(QR_EINVAL, "cuda: pool: seq %d (rows %d+%d) empty or outside x (%lld rows)", s,
                           seqs[s].q_start, seqs[s].n_q, (long long)x->rows);
    if (n_seq == 0 || x->cols == 0)
        return QR_OK;
    void *d_seqs = NULL;
    if ((rc = qr_cuda_use(cb)) || (rc = qr_cuda_stage(cb, seqs, (size_t)n_seq * sizeof *seqs, &d_seqs)))
        return rc;
    dim3 g = grid2(n_seq, x->cols, 128);
    if (x->dtype == QR_F32)
        k_pool<float><<<g, 128, 0, cb->stream>>>(x->data, x->row_bytes, (const qr_attn_seq *)d_seqs, n_seq, (int)mode,
                                                 out->data, out->row_bytes, x->cols);
    else
        k_pool<__nv_bfloat16><<<g, 128, 0, cb->stream>>>(x->data, x->row_bytes, (const qr_attn_seq *)d_seqs, n_seq,
                                                         (int)mode, out->data, out->row_bytes, x->cols);
    return qr_cuda_launched("pool");
}
