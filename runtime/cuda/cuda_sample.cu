/* CUDA backend: the optional topk op (backend.h), device-side selection for
 * sampling. Only k ids and values per row cross to the host instead of the
 * whole logits row (128k floats for Llama 3), and with k = 1 it is the
 * greedy arg-max.
 *
 * Two passes, both "k rounds of a block-wide arg-max" over values held in
 * shared memory (a round takes the largest remaining value, lowest column
 * first among equals, and removes it):
 *   1. grid (chunks, rows): each block selects the top k of one chunk of
 *      one row (chunk sized so that chunks * k candidates fit pass 2);
 *   2. grid (rows): one block merges a row's chunks * k candidates.
 * k rounds cost k block reductions, which is cheap for the small k sampling
 * uses (k <= QR_BE_TOPK_MAX). NaN logits count as -inf. */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "runtime/cuda/cuda_internal.h"

#define TK_THREADS 256
/* Candidates one pass-2 block merges (values and ids in shared memory). */
#define TK_MERGE_MAX 4096
/* Largest chunk pass 1 holds in shared memory (floats). */
#define TK_CHUNK_MAX 10240

/* (value, index) order: larger value first, then smaller index. */
__device__ __forceinline__ bool tk_better(float v, int i, float bv, int bi)
{
    return v > bv || (v == bv && (unsigned)i < (unsigned)bi);
}

/* Warp-wide best of (v, i) by butterfly shuffles; every lane gets it. */
__device__ __forceinline__ void tk_warp_best(float &v, int &i)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (tk_better(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

/* Block-wide best of (v, i); every thread gets the result. red: 2 * 32 words. */
__device__ __forceinline__ void tk_block_best(float &v, int &i, float *rv, int *ri)
{
    tk_warp_best(v, i);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        rv[warp] = v;
        ri[warp] = i;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? rv[lane] : -INFINITY;
        i = lane < (int)(blockDim.x >> 5) ? ri[lane] : -1;
        tk_warp_best(v, i);
        if (lane == 0) {
            rv[0] = v;
            ri[0] = i;
        }
    }
    __syncthreads();
    v = rv[0];
    i = ri[0];
    __syncthreads(); /* rv/ri are reused by the next call */
}

/* k rounds over vals[0..n) / ids[0..n) in shared memory; writes the picks to
 * out_v/out_i (global). A pick is removed by giving it value -inf and id -2,
 * which (compared unsigned) loses to every real id, so a chunk with fewer
 * than k entries pads its output with (-inf, -2) that the merge drops. */
__device__ void tk_select(float *vals, int *ids, int n, int k, float *out_v, int *out_i, float *rv, int *ri)
{
    for (int r = 0; r < k; r++) {
        float bv = -INFINITY;
        int bi = -2, bpos = -1;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            float v = vals[j];
            int id = ids[j];
            if (bpos < 0 || tk_better(v, id, bv, bi)) {
                bv = v;
                bi = id;
                bpos = j;
            }
        }
        float v = bv;
        int i = bi;
        tk_block_best(v, i, rv, ri); /* ends with a barrier: every thread has read vals */
        if (threadIdx.x == 0) {
            out_v[r] = v;
            out_i[r] = i;
        }
        if (i >= 0 && bpos >= 0 && bi == i) { /* real ids are unique: one thread holds the winner */
            vals[bpos] = -INFINITY;
            ids[bpos] = -2;
        }
        __syncthreads();
    }
}

template <bool BF>
__global__ void __launch_bounds__(TK_THREADS)
topk_chunks(const uint8_t *__restrict__ L, size_t l_rb, int64_t vocab, int64_t chunk, int k, float *__restrict__ cv,
            int *__restrict__ ci)
{
    extern __shared__ float tk_sm[];
    __shared__ float rv[32];
    __shared__ int ri[32];
    float *vals = tk_sm;
    int *ids = (int *)(tk_sm + chunk);
    const int64_t row = blockIdx.y, c0 = (int64_t)blockIdx.x * chunk;
    const int n = (int)(vocab - c0 < chunk ? vocab - c0 : chunk);
    const uint8_t *lr = L + (size_t)row * l_rb;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float v = BF ? __bfloat162float(((const __nv_bfloat16 *)lr)[c0 + j]) : ((const float *)lr)[c0 + j];
        vals[j] = isnan(v) ? -INFINITY : v;
        ids[j] = (int)(c0 + j);
    }
    __syncthreads();
    size_t o = ((size_t)row * gridDim.x + blockIdx.x) * (size_t)k;
    tk_select(vals, ids, n, k, cv + o, ci + o, rv, ri);
}

__global__ void __launch_bounds__(TK_THREADS)
topk_merge(const float *__restrict__ cv, const int *__restrict__ ci, int n_cand, int k, float *__restrict__ ov,
           int *__restrict__ oi)
{
    extern __shared__ float tk_sm[];
    __shared__ float rv[32];
    __shared__ int ri[32];
    float *vals = tk_sm;
    int *ids = (int *)(tk_sm + n_cand);
    const size_t row = blockIdx.x;
    for (int j = threadIdx.x; j < n_cand; j += blockDim.x) {
        vals[j] = cv[row * n_cand + j];
        ids[j] = ci[row * n_cand + j];
    }
    __syncthreads();
    tk_select(vals, ids, n_cand, k, ov + row * k, oi + row * k, rv, ri);
}

extern "C" int qr_cuda_topk(qr_backend *be, const qr_tensor *logits, int64_t n, int k, int32_t *ids, float *vals)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    if (!logits || (logits->dtype != QR_F32 && logits->dtype != QR_BF16) || (!logits->data && logits->rows > 0))
        return qr_fail(QR_EINVAL, "cuda: topk: logits must be f32 or bf16");
    if (k < 1 || k > QR_BE_TOPK_MAX || k > logits->cols)
        return qr_fail(QR_EINVAL, "cuda: topk: k %d outside 1..%d (and <= %lld columns)", k, QR_BE_TOPK_MAX,
                       (long long)logits->cols);
    if (n < 0 || n > logits->rows || n > 65535)
        return qr_fail(QR_EINVAL, "cuda: topk: %lld rows of a (%lld, %lld) tensor", (long long)n,
                       (long long)logits->rows, (long long)logits->cols);
    if (cb->capture)
        return qr_fail(QR_EINVAL, "cuda: topk: not allowed while a graph is captured");
    int urc = qr_cuda_use(cb);
    if (urc)
        return urc;
    if (!ids && n > 0)
        return qr_fail(QR_EINVAL, "cuda: topk: ids is NULL");
    if (n == 0)
        return QR_OK;
    const int64_t vocab = logits->cols;
    /* chunks * k <= TK_MERGE_MAX candidates for pass 2 */
    int64_t max_chunks = TK_MERGE_MAX / k;
    int64_t chunk = (vocab + max_chunks - 1) / max_chunks;
    if (chunk < 2048)
        chunk = 2048;
    chunk = (chunk + TK_THREADS - 1) / TK_THREADS * TK_THREADS;
    if (chunk > TK_CHUNK_MAX)
        return qr_fail(QR_ELIMIT, "cuda: topk: %lld columns with k %d is beyond this kernel", (long long)vocab, k);
    const int64_t chunks = (vocab + chunk - 1) / chunk;
    const int n_cand = (int)(chunks * k);
    const size_t cand_bytes = (size_t)n * (size_t)n_cand * (sizeof(float) + sizeof(int));
    const size_t out_bytes = (size_t)n * (size_t)k * (sizeof(float) + sizeof(int));
    void *buf = NULL;
    int rc = qr_cuda_scratch(cb, cand_bytes + out_bytes, &buf);
    if (rc)
        return rc;
    float *cv = (float *)buf;
    int *ci = (int *)(cv + (size_t)n * n_cand);
    float *ov = (float *)(ci + (size_t)n * n_cand);
    int *oi = (int *)(ov + (size_t)n * k);
    size_t sm1 = (size_t)chunk * (sizeof(float) + sizeof(int));
    size_t sm2 = (size_t)n_cand * (sizeof(float) + sizeof(int));
    bool *done = &cb->attr_topk; /* per backend (cuda_internal.h): lives in the context the backend keeps */
    cudaError_t e = cudaSuccess;
    if (!*done) {
        int lim = (int)(TK_CHUNK_MAX * (sizeof(float) + sizeof(int)));
        if ((e = cudaFuncSetAttribute(topk_chunks<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, lim)) ==
                cudaSuccess &&
            (e = cudaFuncSetAttribute(topk_chunks<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, lim)) ==
                cudaSuccess)
            e = cudaFuncSetAttribute(topk_merge, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)(TK_MERGE_MAX * (sizeof(float) + sizeof(int))));
        if (e == cudaSuccess)
            *done = true;
    }
    if (e == cudaSuccess) {
        dim3 g1((unsigned)chunks, (unsigned)n);
        if (logits->dtype == QR_BF16)
            topk_chunks<true><<<g1, TK_THREADS, sm1, cb->stream>>>((const uint8_t *)logits->data, logits->row_bytes,
                                                                   vocab, chunk, k, cv, ci);
        else
            topk_chunks<false><<<g1, TK_THREADS, sm1, cb->stream>>>((const uint8_t *)logits->data, logits->row_bytes,
                                                                    vocab, chunk, k, cv, ci);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) {
        topk_merge<<<(unsigned)n, TK_THREADS, sm2, cb->stream>>>(cv, ci, n_cand, k, ov, oi);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(ids, oi, (size_t)n * k * sizeof(int32_t), cudaMemcpyDeviceToHost, cb->stream);
    if (e == cudaSuccess && vals)
        e = cudaMemcpyAsync(vals, ov, (size_t)n * k * sizeof(float), cudaMemcpyDeviceToHost, cb->stream);
    qr_cuda_scratch_free(cb, buf);
    if (e != cudaSuccess) {
        cudaStreamSynchronize(cb->stream);
        return qr_cuda_check(e, "cuda: topk");
    }
    return qr_be_sync(be);
}
