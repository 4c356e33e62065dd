/* CUDA backend: weight_load (conversion on the device) and matmul.
 *
 * weight_load: the host rows (f32/f16/bf16, GGUF Q8_0 as stored; other GGUF
 * block types are dequantized to f32 on the host first) travel in chunks
 * through two pinned buffers (the copy of one chunk overlaps the host-side
 * fill of the next) into device scratch, and a kernel converts them into the
 * weight tensor: f32/f16/bf16 (round to nearest even) or int8 with one f32
 * scale per row (the CPU backend's rule, bit for bit: scale = max|w| / 127,
 * q = roundf(w / scale)).
 *
 * GGUF block weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K:
 * qr_cq_kept, cuda_quant.h) are kept as stored: the file's bytes, unchanged,
 * rows of qr_dtype_row_bytes (ql = QR_QL_GGUF), copied from the pinned
 * buffers straight into the tensor, so the device holds exactly the file's
 * tensor bytes. Asked for Q8_0 or Q4_K from another type (--dtype q8_0 /
 * q4_k), the host quantizes the rows first (qr_quantize_row, as the CPU
 * backend does). Every kernel reading them decodes 32 values at a time in
 * registers with cuda_quant.h's qr_cq_deq32 (bit-identical to the CPU's
 * dequantization).
 *
 * matmul y(n, out) = x(n, in) . W(out, in)^T + bias, f32 accumulation:
 * - n small (decode: <= 4 for f32/f16/bf16 weights, <= 8 for int8 and GGUF
 *   blocks): GEMV, one warp per output row streaming its weight row once
 *   (widening/dequantising in registers), all n x rows applied to it. Scalar
 *   and int8 rows are read with 16-byte loads; GGUF rows 32 chunks of 32
 *   values at a time (32 blocks or 4 K super-blocks, contiguous), copied by
 *   the warp into shared memory with the widest coalesced loads the row's
 *   alignment allows, then one chunk decoded per lane. Weight bytes
 *   dominate, so this is bandwidth-bound by construction.
 * - otherwise cuBLASLt with f32 compute: f16/bf16 weights take x converted to
 *   the weight type (scratch) and write y in its own type with the bias fused
 *   as an epilogue where cuBLASLt offers one (else a separate add); f32
 *   weights run in plain f32 (no TF32: this is the reference precision).
 *   That conversion is the one place an f32 activation loses precision, and
 *   it is bounded: bf16 weights round x to bf16 (|dx| <= 2^-9 |x|, f32's
 *   range, so no overflow); f16 weights first scale each row of x by a power
 *   of two that puts its largest magnitude in [2^14, 2^15) (qr_f16_row_scale,
 *   cuda_host.h), round to f16 (|dx| <= 2^-11 |x| + 2^-39 amax, never an
 *   overflow past 65504) and scale the f32 product back, adding the bias
 *   then. tests/unit/cuda: test_cuda_matmul (rows of |x| up to 3e5 and down
 *   to 1e-6 against the CPU's f32 product), test_cuda_host (the scale).
 * - int8 and GGUF block weights with 9..QR_CUDA_W8_GEMM_MAX rows (batched
 *   decode): a tensor-core kernel that widens (int8) or decodes (GGUF) each
 *   weight tile to bf16 in shared memory (weights read once per 64 rows of
 *   x, not re-written);
 *   more rows (prefill): the weights are dequantised to bf16 a slab of rows
 *   at a time into scratch (bounded, QR_CUDA_DEQ_BYTES) and each slab is one
 *   cuBLASLt GEMM writing its columns of y (the dequantisation is small
 *   beside 2 x n flops per weight). int8 and every GGUF type share this path;
 *   only the slab's decoding kernel differs.
 * cuBLASLt plans (descriptors, layouts, the heuristic's algorithm) are
 * cached process-wide by shape and type; the cache is only appended to
 * (bounded; past the bound a plan is built per call) and used under one
 * mutex, so backends on several threads share it safely.
 *
 * Index arithmetic: element offsets are int64/size_t wherever rows x cols
 * can pass 2^31 (weights of 128k x 4k, KV caches); launch sizes are checked
 * against the grid limits. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <type_traits>

#include "runtime/cuda/cuda_internal.h"
#include "runtime/cuda/cuda_quant.h"

extern "C" {
#include "common/threadpool.h"
#include "runtime/weights/weights.h"
}

/* Host rows per weight_load chunk (bytes of source data). */
#define QR_CUDA_LOAD_CHUNK ((size_t)32 << 20)
/* Scratch for one slab of dequantised int8 / GGUF rows in the GEMM path. */
#define QR_CUDA_DEQ_BYTES ((size_t)64 << 20)
/* GEMV up to this many x rows. */
#define QR_CUDA_GEMV_MAX_FLOAT 4
#define QR_CUDA_GEMV_MAX_INT8 8
/* int8 / GGUF weights: the tensor-core kernel up to this many x rows, then
 * dequantise-to-bf16 slabs + cuBLASLt. */
#define QR_CUDA_W8_GEMM_MAX 256
/* cuBLASLt plans kept. */
#define QR_CUDA_LT_CACHE 1024

/* Kinds of weight rows the kernels read; GGUF blocks of type dt are WK_GG + dt. */
enum { WK_F32 = 0, WK_F16, WK_BF16, WK_I8, WK_GG = 16 };
/* Kinds of activation rows (x, y). */
enum { XK_F32 = 0, XK_BF16, XK_F16 };

/* ------------------------------------------------------------ scratch */

int qr_cuda_scratch(qr_cuda_backend *cb, size_t bytes, void **dev)
{
    if (!cb->pool_set) { /* per backend (cuda_internal.h): the pool belongs to the context this backend keeps */
        /* Keep freed blocks in the pool instead of unmapping them at each
         * synchronisation: scratch is taken and given back every op. */
        cudaMemPool_t pool;
        if (cudaDeviceGetDefaultMemPool(&pool, cb->device) == cudaSuccess) {
            uint64_t thr = UINT64_MAX;
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr);
        }
        (void)cudaGetLastError();
        cb->pool_set = true;
    }
    void *p = NULL;
    cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 256, cb->stream);
    if (e != cudaSuccess)
        return qr_cuda_check_alloc(cb, e, "scratch (cudaMallocAsync)", bytes ? bytes : 256);
    *dev = p;
    return QR_OK;
}

void qr_cuda_scratch_free(qr_cuda_backend *cb, void *dev)
{
    if (dev)
        cudaFreeAsync(dev, cb->stream);
}

/* ------------------------------------------------------------ element access */

__device__ __forceinline__ float ld_act(const uint8_t *row, int xk, int64_t j)
{
    if (xk == XK_F32)
        return ((const float *)row)[j];
    if (xk == XK_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)row)[j]);
    return __half2float(((const __half *)row)[j]);
}

__device__ __forceinline__ void st_act(uint8_t *row, int yk, int64_t j, float v)
{
    if (yk == XK_F32)
        ((float *)row)[j] = v;
    else if (yk == XK_BF16)
        ((__nv_bfloat16 *)row)[j] = __float2bfloat16_rn(v);
    else
        ((__half *)row)[j] = __float2half_rn(v);
}

/* Element j of a scalar or int8 weight row, the int8 row scale applied. */
__device__ __forceinline__ float ld_w(const uint8_t *row, int wk, int64_t j, float row_scale)
{
    switch (wk) {
    case WK_F32: return ((const float *)row)[j];
    case WK_F16: return __half2float(((const __half *)row)[j]);
    case WK_BF16: return __bfloat162float(((const __nv_bfloat16 *)row)[j]);
    default: return (float)((const int8_t *)row)[j] * row_scale;
    }
}

/* 16 bytes of weights as floats (unscaled). */
template <int WK> struct WVec;
template <> struct WVec<WK_F32> {
    static constexpr int E = 4;
    __device__ static void load(const uint8_t *p, float *w)
    {
        float4 v = *(const float4 *)p;
        w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
    }
};
template <> struct WVec<WK_F16> {
    static constexpr int E = 8;
    __device__ static void load(const uint8_t *p, float *w)
    {
        uint4 v = *(const uint4 *)p;
        const __half2 *h = (const __half2 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __half22float2(h[i]);
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    }
};
template <> struct WVec<WK_BF16> {
    static constexpr int E = 8;
    __device__ static void load(const uint8_t *p, float *w)
    {
        uint4 v = *(const uint4 *)p;
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __bfloat1622float2(h[i]);
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    }
};
template <> struct WVec<WK_I8> {
    static constexpr int E = 16;
    __device__ static void load(const uint8_t *p, float *w)
    {
        int4 v = *(const int4 *)p;
        const int *q = (const int *)&v;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int u = q[i];
            w[4 * i + 0] = (float)(int8_t)(u & 0xff);
            w[4 * i + 1] = (float)(int8_t)((u >> 8) & 0xff);
            w[4 * i + 2] = (float)(int8_t)((u >> 16) & 0xff);
            w[4 * i + 3] = (float)(int8_t)((u >> 24) & 0xff);
        }
    }
};

/* E activations at column j0 of a row (row and j0 aligned so the loads are 16 bytes wide). */
template <int XK, int E> __device__ __forceinline__ void ld_xvec(const uint8_t *row, int64_t j0, float *x)
{
    if (XK == XK_F32) {
        const float4 *p = (const float4 *)(row + (size_t)j0 * 4);
#pragma unroll
        for (int i = 0; i < E / 4; i++) {
            float4 v = p[i];
            x[4 * i] = v.x; x[4 * i + 1] = v.y; x[4 * i + 2] = v.z; x[4 * i + 3] = v.w;
        }
    } else if (E == 4) { /* 4 x 16-bit: one 8-byte load */
        uint2 v = *(const uint2 *)(row + (size_t)j0 * 2);
        const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float2 f;
            if (XK == XK_BF16)
                f = __bfloat1622float2(*(const __nv_bfloat162 *)&u[i]);
            else
                f = __half22float2(*(const __half2 *)&u[i]);
            x[2 * i] = f.x;
            x[2 * i + 1] = f.y;
        }
    } else {
        const uint4 *p = (const uint4 *)(row + (size_t)j0 * 2);
#pragma unroll
        for (int i = 0; i < E / 8; i++) {
            uint4 v = p[i];
            const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f;
                if (XK == XK_BF16)
                    f = __bfloat1622float2(*(const __nv_bfloat162 *)&u[k]);
                else
                    f = __half22float2(*(const __half2 *)&u[k]);
                x[8 * i + 2 * k] = f.x;
                x[8 * i + 2 * k + 1] = f.y;
            }
        }
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ------------------------------------------------------------ GEMV */

#define GEMV_WARPS 8

/* Vectorised GEMV: one warp per output row; lane l reads 16-byte chunks
 * l, l+32, ... of the weight row (a warp reads 512 contiguous bytes per
 * step). Preconditions (host): in % E == 0; W, x rows 16-byte aligned. */
template <int WK, int XK, int NR>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_vec(const uint8_t *__restrict__ W, size_t w_rb, const float *__restrict__ wscale,
         const uint8_t *__restrict__ X, size_t x_rb, int n, uint8_t *__restrict__ Y, size_t y_rb, int yk,
         const float *__restrict__ bias, int64_t out, int64_t in)
{
    constexpr int E = WVec<WK>::E;
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= out)
        return;
    const uint8_t *wr = W + (size_t)row * w_rb;
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f;
    const int64_t nch = in / E;
#pragma unroll 4
    for (int64_t c = lane; c < nch; c += 32) {
        float w[E];
        WVec<WK>::load(wr + (size_t)c * 16, w);
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r < n) {
                float xv[E];
                ld_xvec<XK, E>(X + (size_t)r * x_rb, c * E, xv);
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < E; e++)
                    d = fmaf(w[e], xv[e], d);
                acc[r] += d;
            }
        }
    }
    const float rs = WK == WK_I8 ? wscale[row] : 1.0f;
    const float b = bias ? bias[row] : 0.0f;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        float v = warp_sum(acc[r]);
        if (lane == 0 && r < n)
            st_act(Y + (size_t)r * y_rb, yk, row, v * rs + b);
    }
}

/* Any alignment and width: one element per lane per step. n <= 8. */
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_scalar(const uint8_t *__restrict__ W, size_t w_rb, int wk, const float *__restrict__ wscale,
            const uint8_t *__restrict__ X, size_t x_rb, int xk, int n, uint8_t *__restrict__ Y, size_t y_rb, int yk,
            const float *__restrict__ bias, int64_t out, int64_t in)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= out)
        return;
    const uint8_t *wr = W + (size_t)row * w_rb;
    const float rs = wk == WK_I8 ? wscale[row] : 1.0f;
    float acc[8];
#pragma unroll
    for (int r = 0; r < 8; r++)
        acc[r] = 0.0f;
    for (int64_t j = lane; j < in; j += 32) {
        float w = ld_w(wr, wk, j, rs);
#pragma unroll
        for (int r = 0; r < 8; r++)
            if (r < n)
                acc[r] = fmaf(w, ld_act(X + (size_t)r * x_rb, xk, j), acc[r]);
    }
    const float b = bias ? bias[row] : 0.0f;
#pragma unroll
    for (int r = 0; r < 8; r++) {
        float v = warp_sum(acc[r]);
        if (lane == 0 && r < n)
            st_act(Y + (size_t)r * y_rb, yk, row, v + b);
    }
}

/* Copies len bytes (even) from global src (2-byte aligned) into shared dst
 * (16-byte aligned) with the whole warp, in the widest loads src's alignment
 * allows (16, 8, 4 or 2 bytes; a shorter tail in 2-byte halves): every load
 * instruction of the warp reads consecutive bytes. */
__device__ __forceinline__ void warp_copy(uint8_t *dst, const uint8_t *__restrict__ src, int len, int lane)
{
    const unsigned a = (unsigned)((uintptr_t)src & 15u);
    int done;
    if (a == 0) {
        int n = len >> 4;
        for (int u = lane; u < n; u += 32)
            ((uint4 *)dst)[u] = ((const uint4 *)src)[u];
        done = n << 4;
    } else if ((a & 7u) == 0) {
        int n = len >> 3;
        for (int u = lane; u < n; u += 32)
            ((uint2 *)dst)[u] = ((const uint2 *)src)[u];
        done = n << 3;
    } else if ((a & 3u) == 0) {
        int n = len >> 2;
        for (int u = lane; u < n; u += 32)
            ((uint32_t *)dst)[u] = ((const uint32_t *)src)[u];
        done = n << 2;
    } else {
        done = 0;
    }
    for (int u = (done >> 1) + lane; u < (len >> 1); u += 32)
        ((uint16_t *)dst)[u] = ((const uint16_t *)src)[u];
}

/* Bytes of 32 chunks (32 values each) of a GGUF type: 32 blocks of the
 * 32-value types, 4 super-blocks of the K types. */
#define GG_SPAN_MAX (32 * 34) /* Q8_0, the largest */
template <int DT> __host__ __device__ constexpr int gg_span()
{
    return DT == QR_Q8_0 ? 32 * 34 : DT == QR_Q4_0 ? 32 * 18 : DT == QR_Q4_1 ? 32 * 20 : DT == QR_Q5_0 ? 32 * 22
           : DT == QR_Q5_1 ? 32 * 24 : DT == QR_Q4_K ? 4 * 144 : DT == QR_Q5_K ? 4 * 176 : 4 * 210;
}

/* GGUF block weights (type DT, kept as stored): one warp per output row. The
 * row is walked 32 chunks (32 values each: a block of the 32-value types, a
 * sub-block of the K types) at a time: the warp copies those chunks' bytes,
 * which are contiguous, into shared memory with coalesced loads (warp_copy:
 * 16-byte loads where the row's alignment allows; blocks of 18, 22, 34 or
 * 210 bytes leave a lane-per-block read scattered), then lane l decodes chunk
 * l from there into registers (qr_cq_deq32, the CPU's values exactly) and
 * applies it to the n <= NR rows of x, accumulating in f32. xvec: x rows
 * 16-byte aligned (x read 8 values per load). in % 32 == 0 (whole blocks;
 * the K types: whole super-blocks, so spans are whole super-blocks too). */
template <int DT, int XK, int NR>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_gguf(const uint8_t *__restrict__ W, size_t w_rb, const uint8_t *__restrict__ X, size_t x_rb, bool xvec,
          int n, uint8_t *__restrict__ Y, size_t y_rb, int yk, const float *__restrict__ bias, int64_t out, int64_t in)
{
    constexpr int SPAN = gg_span<DT>();
    constexpr int CPB = DT == QR_Q4_K || DT == QR_Q5_K || DT == QR_Q6_K ? 8 : 1; /* chunks per block */
    constexpr int BB = SPAN * CPB / 32;                                             /* bytes per block */
    __shared__ __align__(16) uint8_t stage[GEMV_WARPS][GG_SPAN_MAX];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t row = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    if (row >= out) /* the whole warp: no lane left behind at __syncwarp */
        return;
    const uint8_t *wr = W + (size_t)row * w_rb;
    uint8_t *sp = stage[warp];
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++)
        acc[r] = 0.0f;
    const int64_t nch = in >> 5;
    for (int64_t c0 = 0; c0 < nch; c0 += 32) {
        const int nc = nch - c0 < 32 ? (int)(nch - c0) : 32; /* a multiple of CPB */
        __syncwarp(); /* the previous span is no longer read */
        warp_copy(sp, wr + (size_t)(c0 / CPB) * BB, nc / CPB * BB, lane);
        __syncwarp();
        if (lane < nc) {
            const int64_t c = c0 + lane;
            float w[32];
            qr_cq_deq32((qr_dtype)DT, sp, lane, qr_cq_aligned16((qr_dtype)DT), w);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (r < n) {
                    const uint8_t *xr = X + (size_t)r * x_rb;
                    float d = 0.0f;
                    if (xvec) {
#pragma unroll
                        for (int q = 0; q < 4; q++) {
                            float xv[8];
                            ld_xvec<XK, 8>(xr, c * 32 + 8 * q, xv);
#pragma unroll
                            for (int e = 0; e < 8; e++)
                                d = fmaf(w[8 * q + e], xv[e], d);
                        }
                    } else {
#pragma unroll
                        for (int e = 0; e < 32; e++)
                            d = fmaf(w[e], ld_act(xr, XK, c * 32 + e), d);
                    }
                    acc[r] += d;
                }
            }
        }
    }
    const float b = bias ? bias[row] : 0.0f;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        float v = warp_sum(acc[r]);
        if (lane == 0 && r < n)
            st_act(Y + (size_t)r * y_rb, yk, row, v + b);
    }
}

/* ------------------------------------------------------------ int8 / GGUF GEMM (tensor cores) */

/* y(n, out) = x(n, in) . W(out, in)^T for int8 or GGUF block weights and a
 * middle number of rows (batched decode: 9..QR_CUDA_W8_GEMM_MAX): each
 * weight byte is read once per 64 rows of x, widened (int8) or decoded
 * (GGUF: qr_cq_deq32, 32 values per thread) to bf16 in shared memory and fed
 * to the tensor cores (WMMA bf16, f32 accumulate). int8 values are exact in
 * bf16 and their per-row scale is applied in the epilogue; a GGUF tile holds
 * the dequantised values rounded to bf16 (as the dequantise-then-GEMM path
 * does). Block: 4 warps, tile 64 (rows of x) x 64 (weight rows), k steps of
 * 64; each warp 32 x 32 (2 x 2 fragments). Preconditions (host): x rows
 * 16-byte aligned; int8: in % 16 == 0 and W rows 16-byte aligned; GGUF: in
 * % 32 == 0 (whole blocks), a16 says whether W rows are 16-byte aligned. */
#define W8_T 64

template <int WK, int XK>
__global__ void __launch_bounds__(128)
gemm_w8_tc(const uint8_t *__restrict__ W, size_t w_rb, const float *__restrict__ wscale, bool a16,
           const uint8_t *__restrict__ X, size_t x_rb, int64_t n, uint8_t *__restrict__ Y, size_t y_rb, int yk,
           const float *__restrict__ bias, int64_t out, int64_t in)
{
    using namespace nvcuda;
    constexpr int LD = W8_T + 8;  /* bf16 tile rows */
    constexpr int LDC = W8_T + 4; /* f32 result rows */
    __shared__ __align__(32) __nv_bfloat16 Xs[W8_T * LD];
    __shared__ __align__(32) __nv_bfloat16 Ws[W8_T * LD];
    __shared__ __align__(32) float Cs[W8_T * LDC];
    const int64_t r0 = (int64_t)blockIdx.y * W8_T; /* rows of x */
    const int64_t c0 = (int64_t)blockIdx.x * W8_T; /* rows of W = columns of y */
    const int warp = threadIdx.x >> 5, wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);
    for (int64_t k0 = 0; k0 < in; k0 += W8_T) {
        __syncthreads(); /* the previous tiles are no longer read */
        if constexpr (WK >= WK_GG) {
            /* W tile: 64 rows x 64 values = 128 chunks of 32 (qr_cq_deq32), 1 per thread */
            for (int ch = threadIdx.x; ch < W8_T * 2; ch += blockDim.x) {
                int r = ch >> 1, kc = (ch & 1) * 32;
                int64_t row = c0 + r, col = k0 + kc;
                float w[32];
                if (row < out && col < in) /* in % 32 == 0: whole chunks */
                    qr_cq_deq32((qr_dtype)(WK - WK_GG), W + (size_t)row * w_rb, col >> 5, a16, w);
                else
#pragma unroll
                    for (int e = 0; e < 32; e++)
                        w[e] = 0.0f;
#pragma unroll
                for (int e = 0; e < 32; e++)
                    Ws[r * LD + kc + e] = __float2bfloat16_rn(w[e]);
            }
        } else {
            /* W tile: 64 rows x 64 bytes = 256 chunks of 16 bytes, 2 per thread */
            for (int ch = threadIdx.x; ch < W8_T * 4; ch += blockDim.x) {
                int r = ch >> 2, kc = (ch & 3) * 16;
                int64_t row = c0 + r, col = k0 + kc;
                float w[16];
                if (row < out && col < in) { /* in % 16 == 0: whole chunks */
                    WVec<WK_I8>::load(W + (size_t)row * w_rb + (size_t)col, w);
                } else {
#pragma unroll
                    for (int e = 0; e < 16; e++)
                        w[e] = 0.0f;
                }
#pragma unroll
                for (int e = 0; e < 16; e++)
                    Ws[r * LD + kc + e] = __float2bfloat16_rn(w[e]);
            }
        }
        /* x tile: 64 rows x 64 columns in chunks of 8 */
        for (int ch = threadIdx.x; ch < W8_T * 8; ch += blockDim.x) {
            int r = ch >> 3, kc = (ch & 7) * 8;
            int64_t row = r0 + r, col = k0 + kc;
            float xv[8];
            if (row < n && col + 8 <= in) {
                ld_xvec<XK, 8>(X + (size_t)row * x_rb, col, xv);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    xv[e] = row < n && col + e < in ? ld_act(X + (size_t)row * x_rb, XK, col + e) : 0.0f;
            }
#pragma unroll
            for (int e = 0; e < 8; e++)
                Xs[r * LD + kc + e] = __float2bfloat16_rn(xv[e]);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < W8_T; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(a[i], Xs + (wm + 16 * i) * LD + kk, LD);
#pragma unroll
            for (int j = 0; j < 2; j++) /* W rows are y columns: (k x 64) column-major */
                wmma::load_matrix_sync(b[j], Ws + (wn + 16 * j) * LD + kk, LD);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++)
                    wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm + 16 * i) * LDC + wn + 16 * j, acc[i][j], LDC, wmma::mem_row_major);
    __syncthreads();
    for (int idx = threadIdx.x; idx < W8_T * W8_T; idx += blockDim.x) {
        int r = idx / W8_T, c = idx - r * W8_T;
        int64_t row = r0 + r, col = c0 + c;
        if (row < n && col < out) {
            float v = Cs[r * LDC + c];
            if (WK == WK_I8)
                v *= wscale[col];
            if (bias)
                v += bias[col];
            st_act(Y + (size_t)row * y_rb, yk, col, v);
        }
    }
}

/* ------------------------------------------------------------ conversions */

/* dst(rows, cols) = src(rows, cols) [+ bias(cols)], any activation kinds. */
__global__ void cvt2d(const uint8_t *src, size_t s_rb, int sk, uint8_t *dst, size_t d_rb,
                      int dk, int64_t rows, int64_t cols, const float *bias)
{
    const int64_t total = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        float v = ld_act(src + (size_t)r * s_rb, sk, c);
        if (bias)
            v += bias[c];
        st_act(dst + (size_t)r * d_rb, dk, c, v);
    }
}

/* f16 operands for f16 weights (see the top): row r of x (any activation
 * kind) times s_r = qr_f16_row_scale(max |x_r|) into dst (rows, cols) f16
 * dense, inv[r] = 1 / s_r. One block of F16_THREADS per row. */
#define F16_THREADS 256
__global__ void narrow_rows_f16(const uint8_t *__restrict__ X, size_t x_rb, int xk, __half *__restrict__ dst,
                                int64_t cols, float *__restrict__ inv)
{
    __shared__ float red[F16_THREADS / 32];
    const uint8_t *row = X + (size_t)blockIdx.x * x_rb;
    float m = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += F16_THREADS) {
        float a = fabsf(ld_act(row, xk, c));
        m = a > m || a != a ? a : m; /* NaN wins: the row keeps scale 1 and its NaN, as on the CPU */
    }
    for (int o = 16; o > 0; o >>= 1) {
        float b = __shfl_xor_sync(0xffffffffu, m, o);
        m = b > m || b != b ? b : m;
    }
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = m;
    __syncthreads();
    m = red[0];
    for (int w = 1; w < F16_THREADS / 32; w++)
        m = red[w] > m || red[w] != red[w] ? red[w] : m;
    const float s = qr_f16_row_scale(m);
    __half *d = dst + (size_t)blockIdx.x * (size_t)cols;
    for (int64_t c = threadIdx.x; c < cols; c += F16_THREADS)
        d[c] = __float2half_rn(ld_act(row, xk, c) * s);
    if (threadIdx.x == 0)
        inv[blockIdx.x] = 1.0f / s;
}

/* dst(rows, cols) = src(rows, cols) f32 * inv[row] [+ bias(cols)], dst of any
 * activation kind; in place when dst is src (f32). */
__global__ void unscale_rows(const float *src, size_t s_rb, uint8_t *dst, size_t d_rb, int dk,
                             const float *__restrict__ inv, int64_t rows, int64_t cols, const float *bias)
{
    const int64_t total = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        float v = ((const float *)((const uint8_t *)src + (size_t)r * s_rb))[c] * inv[r];
        if (bias)
            v += bias[c];
        st_act(dst + (size_t)r * d_rb, dk, c, v);
    }
}

/* Weight rows r0..r0+nr-1 (scalar or int8, scales applied) into bf16 (nr, cols) dense. */
__global__ void dequant_rows_bf16(const uint8_t *__restrict__ W, size_t w_rb, int wk, const float *__restrict__ wscale,
                                  int64_t r0, int64_t nr, int64_t cols, __nv_bfloat16 *__restrict__ dst)
{
    const int64_t total = nr * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = r0 + i / cols, c = i % cols;
        float rs = wk == WK_I8 ? wscale[r] : 1.0f;
        dst[i] = __float2bfloat16_rn(ld_w(W + (size_t)r * w_rb, wk, c, rs));
    }
}

/* GGUF rows r0..r0+nr-1 of type DT into bf16 (nr, cols) dense: one chunk of
 * 32 values per thread (qr_cq_deq32), stored as four 16-byte vectors (dst
 * 16-byte aligned; cols % 32 == 0 keeps every chunk 64-byte aligned). */
template <int DT>
__global__ void dequant_gguf_bf16(const uint8_t *__restrict__ W, size_t w_rb, bool a16, int64_t r0, int64_t nr,
                                  int64_t cols, __nv_bfloat16 *__restrict__ dst)
{
    const int64_t nch = cols >> 5, total = nr * nch;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / nch, c = i - r * nch;
        float w[32];
        qr_cq_deq32((qr_dtype)DT, W + (size_t)(r0 + r) * w_rb, c, a16, w);
        uint4 *d = (uint4 *)(dst + (size_t)r * (size_t)cols + (size_t)c * 32);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            __nv_bfloat162 h[4];
#pragma unroll
            for (int e = 0; e < 4; e++)
                h[e] = __floats2bfloat162_rn(w[8 * q + 2 * e], w[8 * q + 2 * e + 1]);
            d[q] = *(const uint4 *)h;
        }
    }
}

/* ------------------------------------------------------------ weight conversion kernels */

/* Source rows as staged from the host: f32, f16, bf16 or GGUF Q8_0 blocks. */
enum { SK_F32 = 0, SK_F16, SK_BF16, SK_Q8 };

__device__ __forceinline__ float ld_src(const uint8_t *row, int sk, int64_t j)
{
    switch (sk) {
    case SK_F32: return ((const float *)row)[j];
    case SK_F16: return __half2float(((const __half *)row)[j]);
    case SK_BF16: return __bfloat162float(((const __nv_bfloat16 *)row)[j]);
    default: { /* block of 34 bytes: f16 d, 32 x int8 (2-byte aligned: rows are whole blocks) */
        const uint8_t *b = row + (size_t)(j >> 5) * 34;
        return __half2float(*(const __half *)b) * (float)(int8_t)b[2 + (j & 31)];
    }
    }
}

/* Staged rows -> f32/f16/bf16 weight rows. */
__global__ void wl_scalar(const uint8_t *__restrict__ src, size_t s_rb, int sk, uint8_t *__restrict__ dst,
                          size_t d_rb, int dk, int64_t rows, int64_t cols)
{
    const int64_t total = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        st_act(dst + (size_t)r * d_rb, dk, c, ld_src(src + (size_t)r * s_rb, sk, c));
    }
}

/* Staged rows -> int8 rows with per-row scales; one block per row. Same
 * arithmetic as the CPU backend (cpu_backend.c wl_job) so the weights are
 * bit-identical. */
__global__ void wl_int8(const uint8_t *__restrict__ src, size_t s_rb, int sk, int8_t *__restrict__ dst, size_t d_rb,
                        float *__restrict__ scale, int64_t row0, int64_t cols)
{
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    const uint8_t *s = src + (size_t)r * s_rb;
    float amax = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        amax = fmaxf(amax, fabsf(ld_src(s, sk, j)));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = amax;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (threadIdx.x == 0)
            red[0] = v;
    }
    __syncthreads();
    const float sc = red[0] / 127.0f;
    int8_t *d = dst + (size_t)(row0 + r) * d_rb;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = sc > 0.0f ? roundf(ld_src(s, sk, j) / sc) : 0.0f;
        d[j] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
    }
    if (threadIdx.x == 0)
        scale[row0 + r] = sc;
}

/* ------------------------------------------------------------ host helpers */

static int wkind(qr_dtype dt)
{
    switch (dt) {
    case QR_F32: return WK_F32;
    case QR_F16: return WK_F16;
    case QR_BF16: return WK_BF16;
    case QR_I8: return WK_I8;
    default: return -1;
    }
}

static int xkind(qr_dtype dt)
{
    switch (dt) {
    case QR_F32: return XK_F32;
    case QR_BF16: return XK_BF16;
    case QR_F16: return XK_F16;
    default: return -1;
    }
}

static size_t act_es(qr_dtype dt) { return dt == QR_F32 ? 4 : 2; }

static cudaDataType_t cuda_type(qr_dtype dt)
{
    return dt == QR_F32 ? CUDA_R_32F : dt == QR_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

/* Blocks for a grid-stride loop over total elements. */
static unsigned grid_for(int64_t total, int threads)
{
    int64_t b = (total + threads - 1) / threads;
    if (b > 65535LL * 16)
        b = 65535LL * 16;
    return (unsigned)(b > 0 ? b : 1);
}

static int launch_check(const char *what)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? QR_OK : qr_cuda_check(e, what);
}

static bool aligned16(const void *p, size_t rb) { return ((uintptr_t)p % 16) == 0 && rb % 16 == 0; }

/* Calls f(std::integral_constant<int, DT>()) for a kept GGUF type dt (the
 * kernels are templates over the type); false if dt is not one. */
template <typename F> static bool gg_dispatch(qr_dtype dt, F f)
{
    switch (dt) {
    case QR_Q8_0: f(std::integral_constant<int, QR_Q8_0>()); return true;
    case QR_Q4_0: f(std::integral_constant<int, QR_Q4_0>()); return true;
    case QR_Q4_1: f(std::integral_constant<int, QR_Q4_1>()); return true;
    case QR_Q5_0: f(std::integral_constant<int, QR_Q5_0>()); return true;
    case QR_Q5_1: f(std::integral_constant<int, QR_Q5_1>()); return true;
    case QR_Q4_K: f(std::integral_constant<int, QR_Q4_K>()); return true;
    case QR_Q5_K: f(std::integral_constant<int, QR_Q5_K>()); return true;
    case QR_Q6_K: f(std::integral_constant<int, QR_Q6_K>()); return true;
    default: return false;
    }
}

/* A GGUF weight as this backend keeps it: the file's blocks (ql), whole
 * blocks per row, rows 2-byte aligned (every block size is even). */
static int check_gguf(const qr_tensor *w, const char *op)
{
    int blk = qr_cq_block_values(w->dtype);
    size_t rb = qr_dtype_row_bytes(w->dtype, w->cols);
    if (w->ql.kind != QR_QL_GGUF || w->ql.block != blk || w->cols <= 0 || w->cols % blk || !rb ||
        w->row_bytes < rb || w->row_bytes % 2 || ((uintptr_t)w->data & 1))
        return qr_fail(QR_EINVAL, "cuda: %s: %s w (%lld, %lld), row_bytes %zu: not GGUF blocks as stored (ql kind %d, "
                       "block %d)", op, qr_dtype_name(w->dtype), (long long)w->rows, (long long)w->cols, w->row_bytes,
                       (int)w->ql.kind, (int)w->ql.block);
    return QR_OK;
}

/* Whether the kernels may read rows of GGUF w with 16-byte loads. */
static bool gguf_a16(const qr_tensor *w) { return qr_cq_aligned16(w->dtype) && aligned16(w->data, w->row_bytes); }

/* ------------------------------------------------------------ weight_load */


static bool is_block_type(qr_dtype t)
{
    return t == QR_Q8_0 || t == QR_Q4_0 || t == QR_Q4_K || t == QR_Q6_K || t == QR_Q4_1 || t == QR_Q5_0 ||
           t == QR_Q5_1 || t == QR_Q2_K || t == QR_Q3_K || t == QR_Q5_K;
}

/* Quantizing rows at load (--dtype q8_0 / q4_k from another type) on the
 * host's cores: rows of one chunk split over a thread pool made for the
 * call, each worker with its own f32 row (scratch + tid * cols). */
typedef struct {
    const void *src;
    qr_dtype src_dt, want;
    size_t rb;
    int64_t cols, r0;
    uint8_t *pin;
    float *scratch;
    int *rc; /* per tid: the first failure (its detail stays on that thread) */
} fb_ctx;

static void fb_job(void *ctx, int64_t begin, int64_t end, int tid)
{
    fb_ctx *x = (fb_ctx *)ctx;
    float *f = x->scratch + (size_t)tid * (size_t)x->cols;
    for (int64_t r = begin; r < end && !x->rc[tid]; r++) {
        int rc = qr_convert_rows_to_f32(x->src_dt, x->src, x->cols, x->r0 + r, 1, f);
        if (!rc)
            rc = qr_quantize_row(x->want, f, x->cols, x->pin + (size_t)r * x->rb);
        x->rc[tid] = rc;
    }
}

/* Fills pinned host rows with GGUF blocks of type want from rows r0..r0+nr-1
 * of src: the bytes as they are when src is already of that type, else
 * dequantised to f32 and quantised row by row (fb_job on pool; scratch: one
 * row of cols floats per pool thread, rcs: one int per pool thread). */
static int fill_blocks(qr_threadpool *pool, const void *src, qr_dtype src_dt, size_t src_rb, qr_dtype want, size_t rb,
                       int64_t cols, int64_t r0, int64_t nr, float *scratch, int *rcs, uint8_t *pin)
{
    if (src_dt == want) {
        memcpy(pin, (const uint8_t *)src + (size_t)r0 * src_rb, (size_t)nr * rb);
        return QR_OK;
    }
    int nt = qr_threadpool_size(pool);
    for (int t = 0; t < nt; t++)
        rcs[t] = QR_OK;
    fb_ctx x = {src, src_dt, want, rb, cols, r0, pin, scratch, rcs};
    qr_parallel_for(pool, nr, 16, fb_job, &x);
    for (int t = 0; t < nt; t++)
        if (rcs[t])
            return qr_fail(rcs[t], "cuda: weight_load: quantizing %s rows to %s failed", qr_dtype_name(src_dt),
                           qr_dtype_name(want));
    return QR_OK;
}

extern "C" int qr_cuda_weight_load(qr_backend *be, const void *src, qr_dtype src_dt, int64_t rows, int64_t cols,
                                   qr_dtype want, bool may_alias, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    (void)may_alias; /* device memory never aliases host data */
    int urc = qr_cuda_use(cb);
    if (urc)
        return urc;
    const bool blocks = qr_cq_kept(want); /* GGUF blocks kept as stored (cuda_quant.h) */
    if (want != QR_F32 && want != QR_F16 && want != QR_BF16 && want != QR_I8 && !blocks)
        return qr_fail(QR_EINVAL, "cuda: weight_load: cannot make %s weights (f32, f16, bf16, int8, q8_0, q4_0, q4_1, "
                       "q5_0, q5_1, q4_k, q5_k, q6_k)", qr_dtype_name(want));
    if (blocks && want != src_dt && want != QR_Q8_0 && want != QR_Q4_K)
        return qr_fail(QR_EINVAL, "cuda: weight_load: cannot quantize %s weights to %s (only to q8_0 or q4_k)",
                       qr_dtype_name(src_dt), qr_dtype_name(want));
    if (rows < 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        return qr_fail(QR_EINVAL, "cuda: weight_load: bad shape (%lld, %lld)", (long long)rows, (long long)cols);
    if (blocks && cols % qr_dtype_block(want))
        return qr_fail(QR_EINVAL, "cuda: weight_load: %lld columns is not a whole number of %s blocks of %d",
                       (long long)cols, qr_dtype_name(want), qr_dtype_block(want));
    if (!src && rows > 0)
        return qr_fail(QR_EINVAL, "cuda: weight_load: src is NULL");
    if (src_dt != QR_F32 && src_dt != QR_F16 && src_dt != QR_BF16 && !is_block_type(src_dt))
        return qr_fail(QR_EINVAL, "cuda: weight_load: cannot load weights stored as %s", qr_dtype_name(src_dt));
    size_t src_rb = qr_dtype_row_bytes(src_dt, cols);
    if (!src_rb)
        return qr_fail(QR_EINVAL, "cuda: weight_load: %lld columns is not a whole number of %s blocks",
                       (long long)cols, qr_dtype_name(src_dt));

    /* Source rows the device converts itself; other block types are
     * dequantised to f32 on the host (bit-exact with ggml) on the way. GGUF
     * weights kept as stored need no conversion kernel: their bytes go from
     * the pinned buffer straight into the tensor. */
    bool dev_src = src_dt == QR_F32 || src_dt == QR_F16 || src_dt == QR_BF16 || src_dt == QR_Q8_0;
    int sk = src_dt == QR_F32 ? SK_F32 : src_dt == QR_F16 ? SK_F16 : src_dt == QR_BF16 ? SK_BF16
             : src_dt == QR_Q8_0 ? SK_Q8 : SK_F32;
    size_t stage_rb = blocks ? qr_dtype_row_bytes(want, cols) : dev_src ? src_rb : (size_t)cols * sizeof(float);
    if (stage_rb > QR_CUDA_LOAD_CHUNK)
        return qr_fail(QR_ELIMIT, "cuda: weight_load: a row of %zu bytes exceeds the load chunk", stage_rb);

    qr_tensor t;
    memset(&t, 0, sizeof t);
    int rc = QR_OK;
    void *dstage = NULL;
    float *f32row = NULL; /* quantizing at load: one row of floats per pool thread */
    int *rcs = NULL;
    qr_threadpool *qpool = NULL;
    cudaEvent_t ev[2] = {NULL, NULL};
    if (blocks) {
        t.dtype = want;
        t.ql.kind = QR_QL_GGUF; /* the file's blocks (backend.h qr_qlayout) */
        t.ql.block = qr_dtype_block(want);
        t.ql.block_bytes = (int32_t)qr_dtype_block_bytes(want);
        t.rows = rows;
        t.cols = cols;
        t.row_bytes = stage_rb;
        t.owned = true;
        size_t bytes = stage_rb * (size_t)(rows ? rows : 1);
        char what[64]; /* the message names the type: "... weight_load: q4_k blocks: N bytes ..." */
        snprintf(what, sizeof what, "weight_load: %s blocks", qr_dtype_name(want));
        if ((rc = qr_cuda_check_alloc(cb, cudaMalloc(&t.data, bytes), what, bytes)))
            goto fail;
        if (want != src_dt && rows > 0) {
            if ((rc = qr_threadpool_create(0, &qpool)))
                goto fail;
            int nt = qr_threadpool_size(qpool);
            f32row = (float *)malloc((size_t)nt * (size_t)cols * sizeof(float));
            rcs = (int *)calloc((size_t)nt, sizeof(int));
            if (!f32row || !rcs) {
                rc = qr_fail(QR_ENOMEM, "cuda: weight_load: %d rows of %lld floats", nt, (long long)cols);
                goto fail;
            }
        }
    } else {
        if ((rc = qr_be_tensor_alloc(be, want, rows, cols, &t)))
            goto fail;
        if (want == QR_I8 && !t.scale && rows > 0 &&
            (rc = qr_cuda_check_alloc(cb, cudaMalloc((void **)&t.scale, (size_t)rows * sizeof(float)),
                                      "weight_load: int8 scales", (size_t)rows * sizeof(float))))
            goto fail;
    }
    if (rows == 0) {
        *out = t;
        return QR_OK;
    }

    /* the backend's own pinned buffers (cuda_internal.h); ops hold its lock */
    for (int i = 0; i < 2; i++)
        if (!cb->pin[i] && (rc = qr_cuda_check_host_alloc(cudaMallocHost(&cb->pin[i], QR_CUDA_LOAD_CHUNK),
                                                          "weight_load: pinned staging", QR_CUDA_LOAD_CHUNK)))
            goto fail;
    if ((rc = qr_cuda_check(cudaEventCreateWithFlags(&ev[0], cudaEventDisableTiming), "cuda: weight_load: event")) ||
        (rc = qr_cuda_check(cudaEventCreateWithFlags(&ev[1], cudaEventDisableTiming), "cuda: weight_load: event")))
        goto fail;
    {
        int64_t chunk_rows = (int64_t)(QR_CUDA_LOAD_CHUNK / stage_rb);
        if (chunk_rows > rows)
            chunk_rows = rows;
        if (!blocks && (rc = qr_cuda_scratch(cb, 2 * (size_t)chunk_rows * stage_rb, &dstage)))
            goto fail;
        const uint8_t *s8 = (const uint8_t *)src;
        int bi = 0;
        for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows, bi ^= 1) {
            int64_t nr = rows - r0 < chunk_rows ? rows - r0 : chunk_rows;
            /* the copy that last read this pinned buffer must be done */
            if ((rc = qr_cuda_check(cudaEventSynchronize(ev[bi]), "cuda: weight_load: wait")))
                goto fail;
            uint8_t *pin = (uint8_t *)cb->pin[bi];
            if (blocks) {
                if ((rc = fill_blocks(qpool, src, src_dt, src_rb, want, stage_rb, cols, r0, nr, f32row, rcs, pin)))
                    goto fail;
            } else if (dev_src) {
                memcpy(pin, s8 + (size_t)r0 * src_rb, (size_t)nr * src_rb);
            } else if ((rc = qr_convert_rows_to_f32(src_dt, src, cols, r0, nr, (float *)pin))) {
                qr_fail(rc, "cuda: weight_load: dequantising %s rows: %s", qr_dtype_name(src_dt), qr_last_error());
                goto fail;
            }
            uint8_t *dst = blocks ? (uint8_t *)t.data + (size_t)r0 * stage_rb
                                  : (uint8_t *)dstage + (size_t)bi * (size_t)chunk_rows * stage_rb;
            if ((rc = qr_cuda_check(cudaMemcpyAsync(dst, pin, (size_t)nr * stage_rb, cudaMemcpyHostToDevice,
                                                    cb->stream), "cuda: weight_load: copy")) ||
                (rc = qr_cuda_check(cudaEventRecord(ev[bi], cb->stream), "cuda: weight_load: event")))
                goto fail;
            if (blocks)
                continue;
            if (want == QR_I8) {
                wl_int8<<<(unsigned)nr, 256, 0, cb->stream>>>(dst, stage_rb, sk, (int8_t *)t.data, t.row_bytes,
                                                                t.scale, r0, cols);
            } else {
                wl_scalar<<<grid_for(nr * cols, 256), 256, 0, cb->stream>>>(
                    dst, stage_rb, sk, (uint8_t *)t.data + (size_t)r0 * t.row_bytes, t.row_bytes, xkind(want), nr,
                    cols);
            }
            if ((rc = launch_check("cuda: weight_load: convert kernel")))
                goto fail;
        }
        qr_cuda_scratch_free(cb, dstage);
        dstage = NULL;
        if ((rc = qr_cuda_check(cudaStreamSynchronize(cb->stream), "cuda: weight_load: sync")))
            goto fail;
    }
    cudaEventDestroy(ev[0]);
    cudaEventDestroy(ev[1]);
    free(f32row);
    free(rcs);
    qr_threadpool_destroy(qpool);
    *out = t;
    return QR_OK;
fail:
    if (dstage)
        qr_cuda_scratch_free(cb, dstage);
    cudaStreamSynchronize(cb->stream); /* no copy may still read a pinned buffer or write t */
    for (int i = 0; i < 2; i++)
        if (ev[i])
            cudaEventDestroy(ev[i]);
    free(f32row);
    free(rcs);
    qr_threadpool_destroy(qpool);
    if (t.data || t.scale)
        qr_be_tensor_free(be, &t);
    return rc;
}

/* ------------------------------------------------------------ cuBLASLt plans */

typedef struct {
    int dev;
    int ta, tc;          /* cudaDataType of A/B and of C/D */
    int64_t m, n, k, lda, ldb, ldc;
    int bias;            /* 0 none, 1 f32 bias epilogue */
    size_t ws;
    uint32_t align_a, align_b, align_c; /* pointer alignments (bytes, <= 256): the algorithm must accept them */
} lt_key;

typedef struct {
    lt_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    bool ok; /* the heuristic found an algorithm */
} lt_plan;

static pthread_mutex_t lt_mu = PTHREAD_MUTEX_INITIALIZER;
static lt_plan *lt_cache[QR_CUDA_LT_CACHE];
static int lt_n;

static void lt_plan_destroy(lt_plan *p)
{
    if (!p)
        return;
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    free(p);
}

/* Builds a plan; ok = false (and QR_OK) when cuBLASLt has no algorithm for it. */
static int lt_plan_make(qr_cuda_backend *cb, const lt_key *k, lt_plan **out)
{
    lt_plan *p = (lt_plan *)calloc(1, sizeof *p);
    if (!p)
        return qr_fail(QR_ENOMEM, "cuda: matmul plan");
    p->key = *k;
    int rc;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cudaDataType_t st = CUDA_R_32F;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if ((rc = qr_cublas_check(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, st), "cublasLtMatmulDescCreate")) ||
        (rc = qr_cublas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
                              "cublasLt: TRANSA")) ||
        (rc = qr_cublas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
                              "cublasLt: TRANSB")))
        goto fail;
    if (k->bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        int32_t bt = CUDA_R_32F;
        if ((rc = qr_cublas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                                  "cublasLt: EPILOGUE")))
            goto fail;
        /* the bias is f32 whatever D is; a cuBLASLt that refuses this
         * attribute leaves the plan without an algorithm (separate add) */
        if (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) !=
            CUBLAS_STATUS_SUCCESS) {
            *out = p;
            return QR_OK;
        }
    }
    /* column-major views: A = W as (k, m) with ld lda, op T; B = x as (k, n); C = y^T as (m, n) */
    if ((rc = qr_cublas_check(cublasLtMatrixLayoutCreate(&p->a, (cudaDataType_t)k->ta, (uint64_t)k->k, (uint64_t)k->m,
                                                         k->lda), "cublasLt: layout A")) ||
        (rc = qr_cublas_check(cublasLtMatrixLayoutCreate(&p->b, (cudaDataType_t)k->ta, (uint64_t)k->k, (uint64_t)k->n,
                                                         k->ldb), "cublasLt: layout B")) ||
        (rc = qr_cublas_check(cublasLtMatrixLayoutCreate(&p->c, (cudaDataType_t)k->tc, (uint64_t)k->m, (uint64_t)k->n,
                                                         k->ldc), "cublasLt: layout C")) ||
        (rc = qr_cublas_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLt: preference")))
        goto fail;
    {
        size_t ws = k->ws;
        uint32_t aa = k->align_a, ab = k->align_b, ac = k->align_c;
        if ((rc = qr_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                       &ws, sizeof ws), "cublasLt: workspace")) ||
            (rc = qr_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                                       &aa, sizeof aa), "cublasLt: alignment A")) ||
            (rc = qr_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                                       &ab, sizeof ab), "cublasLt: alignment B")) ||
            (rc = qr_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                                       &ac, sizeof ac), "cublasLt: alignment C")) ||
            (rc = qr_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                                       &ac, sizeof ac), "cublasLt: alignment D")))
            goto fail;
    }
    if (cublasLtMatmulAlgoGetHeuristic(cb->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &found) ==
            CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = res.algo;
        p->ok = true;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    *out = p;
    return QR_OK;
fail:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    lt_plan_destroy(p);
    return rc;
}

/* D(m, n) = A^T B [+ bias] through cuBLASLt, column-major (see lt_plan_make).
 * *done = false when no algorithm exists for this combination (the caller
 * falls back). */
static int lt_matmul(qr_cuda_backend *cb, const lt_key *k, const void *A, const void *B, void *C, const float *bias,
                     bool *done)
{
    *done = false;
    pthread_mutex_lock(&lt_mu);
    lt_plan *p = NULL;
    bool cached = false;
    int rc = QR_OK;
    for (int i = 0; i < lt_n; i++)
        if (memcmp(&lt_cache[i]->key, k, sizeof *k) == 0) {
            p = lt_cache[i];
            cached = true;
            break;
        }
    if (!p) {
        if ((rc = lt_plan_make(cb, k, &p)))
            goto out;
        if (lt_n < QR_CUDA_LT_CACHE) {
            lt_cache[lt_n++] = p;
            cached = true;
        }
    }
    if (p->ok) {
        const float one = 1.0f, zero = 0.0f;
        if (k->bias &&
            (rc = qr_cublas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                                 sizeof bias), "cublasLt: bias pointer")))
            goto out;
        if ((rc = qr_cublas_check(cublasLtMatmul(cb->lt, p->op, &one, A, p->a, B, p->b, &zero, C, p->c, C, p->c,
                                                 &p->algo, cb->workspace, cb->workspace_bytes, cb->stream),
                                  "cublasLtMatmul")))
            goto out;
        *done = true;
    }
out:
    if (p && !cached)
        lt_plan_destroy(p);
    pthread_mutex_unlock(&lt_mu);
    return rc;
}

/* Largest power of two up to 256 dividing the address (cuBLASLt's alignment preference). */
static uint32_t ptr_align(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    uint32_t a = 256;
    while (a > 1 && v % a)
        a >>= 1;
    return a;
}

/* y(n, m) = a(n, k) . w(m, k)^T [+ bias], 16-bit or f32 operands of one type
 * (wt), y of type yt (f32 or the operand type). Pointers are to the first
 * row; strides in elements. Falls back to no epilogue + an add kernel. */
static int gemm(qr_cuda_backend *cb, qr_dtype wt, const void *w, int64_t ldw, const void *a, int64_t lda, qr_dtype yt,
                void *y, int64_t ldy, size_t y_rb, const float *bias, int64_t n, int64_t m, int64_t k)
{
    lt_key key;
    memset(&key, 0, sizeof key); /* padding too: keys are compared with memcmp */
    key.dev = cb->device;
    key.ta = (int)cuda_type(wt);
    key.tc = (int)cuda_type(yt);
    key.m = m;
    key.n = n;
    key.k = k;
    key.lda = ldw;
    key.ldb = lda;
    key.ldc = ldy;
    key.bias = bias ? 1 : 0;
    key.ws = cb->workspace ? cb->workspace_bytes : 0;
    key.align_a = ptr_align(w);
    key.align_b = ptr_align(a);
    key.align_c = ptr_align(y);
    bool done;
    int rc = lt_matmul(cb, &key, w, a, y, bias, &done);
    if (rc || done)
        return rc;
    if (bias) { /* no fused-bias algorithm: plain GEMM, then the bias */
        key.bias = 0;
        if ((rc = lt_matmul(cb, &key, w, a, y, NULL, &done)))
            return rc;
        if (done) {
            cvt2d<<<grid_for(n * m, 256), 256, 0, cb->stream>>>((const uint8_t *)y, y_rb, xkind(yt), (uint8_t *)y,
                                                                  y_rb, xkind(yt), n, m, bias);
            return launch_check("cuda: matmul: bias kernel");
        }
    }
    return qr_fail(QR_EBACKEND, "cuda: matmul: cuBLASLt has no algorithm for %s x %s -> %s (%lld x %lld x %lld)",
                   qr_dtype_name(wt), qr_dtype_name(wt), qr_dtype_name(yt), (long long)n, (long long)m, (long long)k);
}

/* ------------------------------------------------------------ matmul */

template <int WK, int XK>
static void gemv_launch_nr(int nr, dim3 g, cudaStream_t s, const uint8_t *W, size_t w_rb, const float *ws,
                           const uint8_t *X, size_t x_rb, int n, uint8_t *Y, size_t y_rb, int yk, const float *bias,
                           int64_t out, int64_t in)
{
    dim3 b(GEMV_WARPS * 32);
    if (nr <= 1)
        gemv_vec<WK, XK, 1><<<g, b, 0, s>>>(W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
    else if (nr <= 2)
        gemv_vec<WK, XK, 2><<<g, b, 0, s>>>(W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
    else if (nr <= 4)
        gemv_vec<WK, XK, 4><<<g, b, 0, s>>>(W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
    else
        gemv_vec<WK, XK, 8><<<g, b, 0, s>>>(W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
}

template <int WK>
static void gemv_launch_x(int xk, int nr, dim3 g, cudaStream_t s, const uint8_t *W, size_t w_rb, const float *ws,
                          const uint8_t *X, size_t x_rb, int n, uint8_t *Y, size_t y_rb, int yk,
                          const float *bias, int64_t out, int64_t in)
{
    if (xk == XK_F32)
        gemv_launch_nr<WK, XK_F32>(nr, g, s, W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
    else
        gemv_launch_nr<WK, XK_BF16>(nr, g, s, W, w_rb, ws, X, x_rb, n, Y, y_rb, yk, bias, out, in);
}

/* GEMV on GGUF weights: the kernel for w's type, x's kind and n rounded up to 1, 2, 4 or 8 rows. */
template <int DT, int XK>
static void gemv_gguf_nr(dim3 g, cudaStream_t s, const qr_tensor *w, const uint8_t *X, size_t x_rb, bool xvec, int n,
                         uint8_t *Y, size_t y_rb, int yk, const float *bias)
{
    dim3 b(GEMV_WARPS * 32);
    const uint8_t *W = (const uint8_t *)w->data;
    if (n <= 1)
        gemv_gguf<DT, XK, 1><<<g, b, 0, s>>>(W, w->row_bytes, X, x_rb, xvec, n, Y, y_rb, yk, bias, w->rows, w->cols);
    else if (n <= 2)
        gemv_gguf<DT, XK, 2><<<g, b, 0, s>>>(W, w->row_bytes, X, x_rb, xvec, n, Y, y_rb, yk, bias, w->rows, w->cols);
    else if (n <= 4)
        gemv_gguf<DT, XK, 4><<<g, b, 0, s>>>(W, w->row_bytes, X, x_rb, xvec, n, Y, y_rb, yk, bias, w->rows, w->cols);
    else
        gemv_gguf<DT, XK, 8><<<g, b, 0, s>>>(W, w->row_bytes, X, x_rb, xvec, n, Y, y_rb, yk, bias, w->rows, w->cols);
}

static int gemv(qr_cuda_backend *cb, const qr_tensor *x, const qr_tensor *w, const float *bias, qr_tensor *y)
{
    int wk = wkind(w->dtype), xk = xkind(x->dtype), yk = xkind(y->dtype);
    int n = (int)x->rows;
    int64_t out = w->rows, in = w->cols;
    int64_t blocks = (out + GEMV_WARPS - 1) / GEMV_WARPS;
    if (blocks > INT32_MAX)
        return qr_fail(QR_ELIMIT, "cuda: matmul: %lld output rows", (long long)out);
    dim3 g((unsigned)blocks);
    const uint8_t *X = (const uint8_t *)x->data;
    uint8_t *Y = (uint8_t *)y->data;
    if (qr_cq_kept(w->dtype)) {
        bool xvec = aligned16(X, x->row_bytes);
        gg_dispatch(w->dtype, [&](auto tag) {
            constexpr int DT = decltype(tag)::value;
            if (xk == XK_F32)
                gemv_gguf_nr<DT, XK_F32>(g, cb->stream, w, X, x->row_bytes, xvec, n, Y, y->row_bytes, yk, bias);
            else
                gemv_gguf_nr<DT, XK_BF16>(g, cb->stream, w, X, x->row_bytes, xvec, n, Y, y->row_bytes, yk, bias);
        });
        return launch_check("cuda: matmul: gguf gemv kernel");
    }
    int64_t E = wk == WK_F32 ? 4 : (wk == WK_F16 || wk == WK_BF16) ? 8 : 16;
    const uint8_t *W = (const uint8_t *)w->data;
    bool vec = in % E == 0 && aligned16(W, w->row_bytes) && aligned16(X, x->row_bytes) && xk != XK_F16;
    if (vec) {
        switch (wk) {
        case WK_F32: gemv_launch_x<WK_F32>(xk, n, g, cb->stream, W, w->row_bytes, w->scale, X, x->row_bytes, n, Y, y->row_bytes, yk, bias, out, in); break;
        case WK_F16: gemv_launch_x<WK_F16>(xk, n, g, cb->stream, W, w->row_bytes, w->scale, X, x->row_bytes, n, Y, y->row_bytes, yk, bias, out, in); break;
        case WK_BF16: gemv_launch_x<WK_BF16>(xk, n, g, cb->stream, W, w->row_bytes, w->scale, X, x->row_bytes, n, Y, y->row_bytes, yk, bias, out, in); break;
        default: gemv_launch_x<WK_I8>(xk, n, g, cb->stream, W, w->row_bytes, w->scale, X, x->row_bytes, n, Y, y->row_bytes, yk, bias, out, in); break;
        }
    } else {
        gemv_scalar<<<g, GEMV_WARPS * 32, 0, cb->stream>>>(W, w->row_bytes, wk, w->scale, X, x->row_bytes, xk, n,
                                                            Y, y->row_bytes, yk, bias, out, in);
    }
    return launch_check("cuda: matmul: gemv kernel");
}

static int check_act(const qr_tensor *t, const char *name)
{
    if (!t)
        return qr_fail(QR_EINVAL, "cuda: matmul: %s is NULL", name);
    if (t->dtype != QR_F32 && t->dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cuda: matmul: %s must be f32 or bf16, got %s", name, qr_dtype_name(t->dtype));
    if (t->rows < 0 || t->cols < 0 || t->row_bytes < (size_t)t->cols * act_es(t->dtype) ||
        t->row_bytes % act_es(t->dtype))
        return qr_fail(QR_EINVAL, "cuda: matmul: %s: bad shape (%lld, %lld) / row_bytes %zu", name,
                       (long long)t->rows, (long long)t->cols, t->row_bytes);
    if (!t->data && t->rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cuda: matmul: %s: no data", name);
    return QR_OK;
}

extern "C" int qr_cuda_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias,
                              qr_tensor *y)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_use(cb)) || (rc = check_act(x, "x")) || (rc = check_act(y, "y")))
        return rc;
    if (!w || (wkind(w->dtype) < 0 && !qr_cq_kept(w->dtype)))
        return qr_fail(QR_EINVAL, "cuda: matmul: w must be f32, f16, bf16, int8 or GGUF q8_0, q4_0, q4_1, q5_0, q5_1, "
                       "q4_k, q5_k, q6_k%s%s", w ? ", got " : "", w ? qr_dtype_name(w->dtype) : "");
    const bool gg = qr_cq_kept(w->dtype); /* GGUF blocks as stored */
    if (w->cols != x->cols)
        return qr_fail(QR_EINVAL, "cuda: matmul: x is (%lld, %lld) but w is (%lld, %lld): inner sizes differ",
                       (long long)x->rows, (long long)x->cols, (long long)w->rows, (long long)w->cols);
    if (y->rows != x->rows || y->cols != w->rows)
        return qr_fail(QR_EINVAL, "cuda: matmul: y is (%lld, %lld), expected (%lld, %lld)", (long long)y->rows,
                       (long long)y->cols, (long long)x->rows, (long long)w->rows);
    if (!w->data && w->rows > 0)
        return qr_fail(QR_EINVAL, "cuda: matmul: w: no data");
    if (w->dtype == QR_I8 && !w->scale && w->rows > 0)
        return qr_fail(QR_EINVAL, "cuda: matmul: %s w without scales", qr_dtype_name(w->dtype));
    if (gg && (rc = check_gguf(w, "matmul")))
        return rc;
    if (bias && (bias->dtype != QR_F32 || bias->rows != 1 || bias->cols != w->rows || !bias->data))
        return qr_fail(QR_EINVAL, "cuda: matmul: bias must be f32 (1, %lld)", (long long)w->rows);
    if (x->rows > INT32_MAX || w->rows > INT32_MAX || x->cols > INT32_MAX)
        return qr_fail(QR_ELIMIT, "cuda: matmul: dimensions beyond 2^31");
    if (x->rows > 0 && y->rows > 0) {
        const uint8_t *x0 = (const uint8_t *)x->data, *x1 = x0 + (size_t)(x->rows - 1) * x->row_bytes + x->row_bytes;
        const uint8_t *y0 = (const uint8_t *)y->data, *y1 = y0 + (size_t)(y->rows - 1) * y->row_bytes + y->row_bytes;
        if (x0 < y1 && y0 < x1)
            return qr_fail(QR_EINVAL, "cuda: matmul: y overlaps x (no in-place matmul)");
    }
    const int64_t n = x->rows, out = w->rows, in = w->cols;
    if (n == 0 || out == 0)
        return QR_OK;
    const float *bp = bias ? (const float *)bias->data : NULL;
    bool int8 = w->dtype == QR_I8 || gg; /* int8 and GGUF weights share the GEMV-row limit and the GEMM paths */
    if (in == 0)
        return qr_fail(QR_EINVAL, "cuda: matmul: w (%lld, 0) has no columns", (long long)out);
    if (n <= (int8 ? QR_CUDA_GEMV_MAX_INT8 : QR_CUDA_GEMV_MAX_FLOAT))
        return gemv(cb, x, w, bp, y);

    if (int8 && n <= QR_CUDA_W8_GEMM_MAX && aligned16(x->data, x->row_bytes) &&
        (gg || (in % 16 == 0 && aligned16(w->data, w->row_bytes)))) {
        /* int8 / GGUF, batched decode: tensor-core kernel on the stored weights */
        int64_t gx = (out + W8_T - 1) / W8_T, gy = (n + W8_T - 1) / W8_T;
        if (gx > INT32_MAX || gy > 65535)
            return qr_fail(QR_ELIMIT, "cuda: matmul: grid %lld x %lld", (long long)gx, (long long)gy);
        dim3 g((unsigned)gx, (unsigned)gy);
        const uint8_t *W = (const uint8_t *)w->data, *X = (const uint8_t *)x->data;
        uint8_t *Y = (uint8_t *)y->data;
        int yk = xkind(y->dtype);
        bool a16 = gg && gguf_a16(w);
        if (gg)
            gg_dispatch(w->dtype, [&](auto tag) {
                constexpr int WK = WK_GG + decltype(tag)::value;
                if (x->dtype == QR_F32)
                    gemm_w8_tc<WK, XK_F32><<<g, 128, 0, cb->stream>>>(W, w->row_bytes, w->scale, a16, X, x->row_bytes, n, Y, y->row_bytes, yk, bp, out, in);
                else
                    gemm_w8_tc<WK, XK_BF16><<<g, 128, 0, cb->stream>>>(W, w->row_bytes, w->scale, a16, X, x->row_bytes, n, Y, y->row_bytes, yk, bp, out, in);
            });
        else if (x->dtype == QR_F32)
            gemm_w8_tc<WK_I8, XK_F32><<<g, 128, 0, cb->stream>>>(W, w->row_bytes, w->scale, false, X, x->row_bytes, n, Y, y->row_bytes, yk, bp, out, in);
        else
            gemm_w8_tc<WK_I8, XK_BF16><<<g, 128, 0, cb->stream>>>(W, w->row_bytes, w->scale, false, X, x->row_bytes, n, Y, y->row_bytes, yk, bp, out, in);
        return launch_check(gg ? "cuda: matmul: gguf tensor-core GEMM" : "cuda: matmul: int8 tensor-core GEMM");
    }
    /* GEMM: operand type of the multiply */
    qr_dtype ot = w->dtype == QR_F32 ? QR_F32 : w->dtype == QR_F16 ? QR_F16 : QR_BF16;
    size_t oes = ot == QR_F32 ? 4 : 2;
    void *xs = NULL, *ys = NULL, *wd = NULL, *inv = NULL;
    const void *a = x->data;
    int64_t lda = (int64_t)(x->row_bytes / act_es(x->dtype));
    if (ot == QR_F16) { /* rows scaled into f16's range, product in f32 scaled back (see the top) */
        if (n > INT32_MAX) {
            rc = qr_fail(QR_ELIMIT, "cuda: matmul: %lld rows", (long long)n);
            goto out;
        }
        if ((rc = qr_cuda_scratch(cb, (size_t)n * (size_t)in * 2, &xs)) ||
            (rc = qr_cuda_scratch(cb, (size_t)n * sizeof(float), &inv)))
            goto out;
        narrow_rows_f16<<<(unsigned)n, F16_THREADS, 0, cb->stream>>>((const uint8_t *)x->data, x->row_bytes,
                                                                      xkind(x->dtype), (__half *)xs, in, (float *)inv);
        if ((rc = launch_check("cuda: matmul: narrow x to f16")))
            goto out;
        float *yf = (float *)y->data; /* f32 y takes the product in place, else f32 scratch */
        size_t yf_rb = y->row_bytes;
        if (y->dtype != QR_F32) {
            if ((rc = qr_cuda_scratch(cb, (size_t)n * (size_t)out * 4, &ys)))
                goto out;
            yf = (float *)ys;
            yf_rb = (size_t)out * 4;
        }
        if ((rc = gemm(cb, QR_F16, w->data, (int64_t)(w->row_bytes / 2), xs, in, QR_F32, yf, (int64_t)(yf_rb / 4),
                       yf_rb, NULL, n, out, in)))
            goto out;
        unscale_rows<<<grid_for(n * out, 256), 256, 0, cb->stream>>>(yf, yf_rb, (uint8_t *)y->data, y->row_bytes,
                                                                     xkind(y->dtype), (const float *)inv, n, out, bp);
        rc = launch_check("cuda: matmul: scale y back");
        goto out;
    }
    if (x->dtype != ot) { /* x converted to the operand type */
        if ((rc = qr_cuda_scratch(cb, (size_t)n * (size_t)in * oes, &xs)))
            goto out;
        cvt2d<<<grid_for(n * in, 256), 256, 0, cb->stream>>>((const uint8_t *)x->data, x->row_bytes, xkind(x->dtype),
                                                              (uint8_t *)xs, (size_t)in * oes, xkind(ot), n, in, NULL);
        if ((rc = launch_check("cuda: matmul: convert x")))
            goto out;
        a = xs;
        lda = in;
    } else if (x->row_bytes % oes) {
        rc = qr_fail(QR_EINVAL, "cuda: matmul: x row_bytes %zu", x->row_bytes);
        goto out;
    }
    if (!int8) {
        int64_t ldw = (int64_t)(w->row_bytes / oes);
        if (y->dtype != QR_F32 && y->dtype != ot) { /* f32 weights, bf16 y: f32 result, narrowed with the bias */
            if ((rc = qr_cuda_scratch(cb, (size_t)n * (size_t)out * 4, &ys)) ||
                (rc = gemm(cb, ot, w->data, ldw, a, lda, QR_F32, ys, out, (size_t)out * 4, NULL, n, out, in)))
                goto out;
            cvt2d<<<grid_for(n * out, 256), 256, 0, cb->stream>>>((const uint8_t *)ys, (size_t)out * 4, XK_F32,
                                                                    (uint8_t *)y->data, y->row_bytes, xkind(y->dtype),
                                                                    n, out, bp);
            rc = launch_check("cuda: matmul: narrow y");
            goto out;
        }
        rc = gemm(cb, ot, w->data, ldw, a, lda, y->dtype, y->data, (int64_t)(y->row_bytes / act_es(y->dtype)),
                  y->row_bytes, bp, n, out, in);
        goto out;
    }
    {   /* int8 / GGUF, many rows: slabs of rows dequantised to bf16, one cuBLASLt GEMM each */
        /* whole multiples of 64 rows keep every slab's y and bias pointers 256-byte aligned */
        int64_t slab = (int64_t)(QR_CUDA_DEQ_BYTES / ((size_t)in * 2)) / 64 * 64;
        if (slab < 64)
            slab = 64;
        if (slab > out)
            slab = out;
        if ((rc = qr_cuda_scratch(cb, (size_t)slab * (size_t)in * 2, &wd)))
            goto out;
        size_t yes = act_es(y->dtype);
        for (int64_t r0 = 0; r0 < out; r0 += slab) {
            int64_t nr = out - r0 < slab ? out - r0 : slab;
            if (gg) {
                bool a16 = gguf_a16(w);
                gg_dispatch(w->dtype, [&](auto tag) {
                    dequant_gguf_bf16<decltype(tag)::value><<<grid_for(nr * (in / 32), 256), 256, 0, cb->stream>>>(
                        (const uint8_t *)w->data, w->row_bytes, a16, r0, nr, in, (__nv_bfloat16 *)wd);
                });
            } else {
                dequant_rows_bf16<<<grid_for(nr * in, 256), 256, 0, cb->stream>>>(
                    (const uint8_t *)w->data, w->row_bytes, wkind(w->dtype), w->scale, r0, nr, in,
                    (__nv_bfloat16 *)wd);
            }
            if ((rc = launch_check("cuda: matmul: dequantise")) ||
                (rc = gemm(cb, QR_BF16, wd, in, a, lda, y->dtype, (uint8_t *)y->data + (size_t)r0 * yes,
                           (int64_t)(y->row_bytes / yes), y->row_bytes, bp ? bp + r0 : NULL, n, nr, in)))
                goto out;
        }
    }
out:
    qr_cuda_scratch_free(cb, xs);
    qr_cuda_scratch_free(cb, inv);
    qr_cuda_scratch_free(cb, ys);
    qr_cuda_scratch_free(cb, wd);
    return rc;
}
