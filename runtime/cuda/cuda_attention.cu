/* CUDA backend: scaled dot-product attention over packed sequences (the
 * backend.h attention op), f32 or bf16 activations, f32 softmax and
 * accumulation, grouped-query heads, causal or not.
 *
 * Two kernels, chosen by the longest query run of the call:
 * - prefill (any sequence with more than QR_ATTN_DECODE_MAX_Q new rows; also
 *   the encoder): flash-attention style; for bf16 with head_dim 64 or 128 on
 *   the tensor cores (attn_prefill_tc, below), otherwise on CUDA cores: A block takes 32 query rows of one
 *   (sequence, head) - 4 threads per row, each holding a quarter of the head
 *   dimensions of q and of the output accumulator in registers - and walks
 *   the keys in tiles staged in shared memory as f32; scores of a tile are
 *   kept in registers, one running max / sum per row (online softmax), so
 *   nothing of size n_kv is ever written. Work items are (sequence, 32-row
 *   tile) pairs listed on the host (varlen batches, no padding work);
 *   causal rows stop at their own limit, tiles at the block's last row's.
 * - decode (every sequence has at most QR_ATTN_DECODE_MAX_Q new rows: single
 *   tokens over a KV cache): split along the keys. A block takes one
 *   (split, kv head, sequence): the K/V tile is staged once in shared memory
 *   for all query heads of the group (GQA: the group's heads read the cache
 *   once) and every query row of the sequence; each warp owns one (row,
 *   head) pair, lane j scores key j of the tile, lanes own head dimensions
 *   for the P.V accumulation. The split count depends on the grid (enough
 *   blocks to fill the GPU, long contexts split wider), each block derives
 *   its key range from the sequence's n_kv on the device, and a second
 *   kernel merges the splits' (max, sum, accumulator) partials. Because the
 *   key ranges are computed on the device, a decode step captured in a CUDA
 *   graph stays valid as n_kv grows (cuda_graph.cu).
 *
 * KV cache layout: the decoder's existing per-slot contiguous blocks
 * (qr_decoder_state: each layer's cache is (n_slots*n_ctx, n_kv_head*hd) in
 * the activation type, slot s owning rows s*n_ctx .. s*n_ctx+n_ctx-1), read
 * through qr_attn_seq.kv_start / n_kv. Why not pages: every sequence of a
 * step reads one contiguous, row-major range per layer, so tile loads are
 * plain coalesced row reads with no block table indirection; the service
 * fixes its slot count and context at start (memory is reserved, not
 * grown), so paging would only buy sharing of prompt prefixes and finer
 * memory use for short requests, at the cost of an indirection in every
 * key load and a new allocator. The kernels only need kv_start/n_kv per
 * sequence, so a paged layout remains possible behind the same op.
 *
 * Index arithmetic: row offsets are size_t(row) * row_bytes; rows are
 * int32 by contract (qr_attn_seq), counts of work items are checked against
 * the grid limits on the host. */
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda/cuda_internal.h"

/* bf16 prefill with head_dim 64/128 on the tensor cores (0: the CUDA-core
 * kernel for everything, e.g. to compare the two). */
#ifndef QR_ATTN_TENSOR_CORES
#define QR_ATTN_TENSOR_CORES 1
#endif
/* Query rows per sequence up to which the split-K decode kernel is used. */
#define QR_ATTN_DECODE_MAX_Q 4
/* Query rows per prefill block (4 threads each). */
#define PF_ROWS 32
/* Keys per decode tile: one per lane. */
#define DC_KEYS 32
/* Most warps in a decode block. */
#define DC_WARPS 8
/* Most key splits per (sequence, kv head). */
#define DC_MAX_SPLIT 32

__device__ __forceinline__ float ld_a(const uint8_t *row, bool bf, int64_t j)
{
    return bf ? __bfloat162float(((const __nv_bfloat16 *)row)[j]) : ((const float *)row)[j];
}

__device__ __forceinline__ void st_a(uint8_t *row, bool bf, int64_t j, float v)
{
    if (bf)
        ((__nv_bfloat16 *)row)[j] = __float2bfloat16_rn(v);
    else
        ((float *)row)[j] = v;
}

/* ------------------------------------------------------------ prefill */

template <int HDP> struct PfCfg {
    static constexpr int BK = (4096 / HDP) < 64 ? (4096 / HDP) : 64; /* keys per tile: K+V tiles <= 32 KB */
    static constexpr int PER = HDP / 4;                              /* dims per thread */
};

/* grid (n_tiles, n_head), block 128 = 32 rows x 4 threads. Thread `part` of a
 * row owns dims 16*i + 4*part + c (i < HDP/16, c < 4), so the 4 threads of a
 * row read 4 adjacent float4 of a key row: no bank conflicts. */
template <int HDP>
__global__ void __launch_bounds__(PF_ROWS * 4)
attn_prefill(const uint8_t *__restrict__ Q, size_t q_rb, const uint8_t *__restrict__ K, size_t k_rb,
             const uint8_t *__restrict__ V, size_t v_rb, uint8_t *__restrict__ O, size_t o_rb, bool bf,
             const qr_attn_seq *__restrict__ seqs, const int2 *__restrict__ tiles, int group, int hd, float scale,
             bool causal)
{
    constexpr int BK = PfCfg<HDP>::BK, PER = PfCfg<HDP>::PER;
    __shared__ float4 Ks[BK][HDP / 4];
    __shared__ float4 Vs[BK][HDP / 4];
    const int2 tl = tiles[blockIdx.x];
    const qr_attn_seq s = seqs[tl.x];
    const int h = blockIdx.y, kvh = h / group;
    const int rr = threadIdx.x >> 2, part = threadIdx.x & 3;
    const int qi = tl.y + rr;
    const bool valid = qi < s.n_q;

    float q[PER], acc[PER];
    const uint8_t *qrow = Q + (size_t)(s.q_start + (valid ? qi : 0)) * q_rb;
#pragma unroll
    for (int i = 0; i < HDP / 16; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int d = 16 * i + 4 * part + c;
            q[4 * i + c] = valid && d < hd ? ld_a(qrow, bf, (int64_t)h * hd + d) * scale : 0.0f;
            acc[4 * i + c] = 0.0f;
        }
    /* keys this row sees, and the most any row of the block sees (the last valid row) */
    int nvis = 0;
    if (valid)
        nvis = causal ? min(s.n_kv, s.q_pos0 + qi + 1) : s.n_kv;
    int last = min(tl.y + PF_ROWS, s.n_q) - 1;
    int nmax = causal ? min(s.n_kv, s.q_pos0 + last + 1) : s.n_kv;
    float m = -INFINITY, l = 0.0f;
    const size_t kcol = (size_t)kvh * (size_t)hd;

    for (int j0 = 0; j0 < nmax; j0 += BK) {
        __syncthreads(); /* the previous tile is no longer read */
        float *kf = (float *)Ks, *vf = (float *)Vs;
        for (int idx = threadIdx.x; idx < BK * HDP; idx += PF_ROWS * 4) {
            int key = idx / HDP, d = idx - key * HDP;
            float kv = 0.0f, vv = 0.0f;
            if (j0 + key < nmax && d < hd) {
                size_t r = (size_t)(s.kv_start + j0 + key);
                kv = ld_a(K + r * k_rb, bf, (int64_t)(kcol + d));
                vv = ld_a(V + r * v_rb, bf, (int64_t)(kcol + d));
            }
            kf[idx] = kv;
            vf[idx] = vv;
        }
        __syncthreads();
        const int jn = nvis - j0; /* keys of this tile the row sees (may be <= 0) */
        float sc[BK];
        float mt = -INFINITY;
#pragma unroll
        for (int j = 0; j < BK; j++) {
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < HDP / 16; i++) {
                float4 kk = Ks[j][4 * i + part];
                d = fmaf(q[4 * i], kk.x, d);
                d = fmaf(q[4 * i + 1], kk.y, d);
                d = fmaf(q[4 * i + 2], kk.z, d);
                d = fmaf(q[4 * i + 3], kk.w, d);
            }
            d += __shfl_xor_sync(0xffffffffu, d, 1);
            d += __shfl_xor_sync(0xffffffffu, d, 2);
            sc[j] = j < jn ? d : -INFINITY;
            mt = fmaxf(mt, sc[j]);
        }
        if (mt == -INFINITY)
            continue; /* no visible key in this tile for this row (no barrier below) */
        const float mn = fmaxf(m, mt);
        const float corr = __expf(m - mn); /* m = -inf: 0 */
        l *= corr;
#pragma unroll
        for (int i = 0; i < PER; i++)
            acc[i] *= corr;
#pragma unroll
        for (int j = 0; j < BK; j++) {
            float p = __expf(sc[j] - mn); /* -inf: 0 */
            l += p;
#pragma unroll
            for (int i = 0; i < HDP / 16; i++) {
                float4 vv = Vs[j][4 * i + part];
                acc[4 * i] = fmaf(p, vv.x, acc[4 * i]);
                acc[4 * i + 1] = fmaf(p, vv.y, acc[4 * i + 1]);
                acc[4 * i + 2] = fmaf(p, vv.z, acc[4 * i + 2]);
                acc[4 * i + 3] = fmaf(p, vv.w, acc[4 * i + 3]);
            }
        }
        m = mn;
    }
    if (!valid)
        return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    uint8_t *orow = O + (size_t)(s.q_start + qi) * o_rb;
#pragma unroll
    for (int i = 0; i < HDP / 16; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int d = 16 * i + 4 * part + c;
            if (d < hd)
                st_a(orow, bf, (int64_t)h * hd + d, acc[4 * i + c] * inv);
        }
}

/* ------------------------------------------------------------ prefill on tensor cores (bf16) */

/* bf16 activations with head_dim 64 or 128 (the models quire runs): the two
 * products of a tile on the tensor cores through WMMA (bf16 in, f32
 * accumulate). A block is 4 warps x 16 query rows (64 rows of one sequence
 * and head); per key tile of 64:
 *   S = Q K^T  (WMMA, f32) -> shared memory (per warp 16 x 64)
 *   online softmax on S by rows (2 lanes per row, f32), P = exp(S - m) as
 *   bf16 into shared memory, the running output O (f32, shared memory: the
 *   rows of a WMMA accumulator are not addressable in registers) scaled by
 *   exp(m_old - m_new)
 *   O += P V   (WMMA, accumulator loaded from and stored back to O)
 * P in bf16 costs ~1e-3 relative, as in FlashAttention. */
#define TC_BQ 64
#define TC_BK 64

template <int HD> struct TcCfg {
    static constexpr int LDH = HD + 8;     /* bf16 rows of Q/K/V tiles (16-byte multiple, skewed banks) */
    static constexpr int LDS = TC_BK + 4;  /* f32 rows of S */
    static constexpr int LDP = TC_BK + 8;  /* bf16 rows of P */
    static constexpr int LDO = HD + 4;     /* f32 rows of O */
    static constexpr size_t QB = (size_t)TC_BQ * LDH * 2, KB = (size_t)TC_BK * LDH * 2;
    static constexpr size_t SB = 4ull * 16 * LDS * 4, PB = 4ull * 16 * LDP * 2, OB = 4ull * 16 * LDO * 4;
    static constexpr size_t SMEM = QB + 2 * KB + SB + PB + OB; /* every part a multiple of 32 bytes */
};

template <int HD>
__global__ void __launch_bounds__(128)
attn_prefill_tc(const uint8_t *__restrict__ Q, size_t q_rb, const uint8_t *__restrict__ K, size_t k_rb,
                const uint8_t *__restrict__ V, size_t v_rb, uint8_t *__restrict__ O, size_t o_rb,
                const qr_attn_seq *__restrict__ seqs, const int2 *__restrict__ tiles, int group, float scale,
                bool causal)
{
    using namespace nvcuda;
    typedef TcCfg<HD> C;
    extern __shared__ __align__(128) unsigned char tc_sm[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)tc_sm;
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)(tc_sm + C::QB);
    __nv_bfloat16 *Vs = (__nv_bfloat16 *)(tc_sm + C::QB + C::KB);
    float *Ss = (float *)(tc_sm + C::QB + 2 * C::KB);
    __nv_bfloat16 *Ps = (__nv_bfloat16 *)(tc_sm + C::QB + 2 * C::KB + C::SB);
    float *Os = (float *)(tc_sm + C::QB + 2 * C::KB + C::SB + C::PB);

    const int2 tl = tiles[blockIdx.x];
    const qr_attn_seq s = seqs[tl.x];
    const int h = blockIdx.y, kvh = h / group;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t qcol = (size_t)h * HD, kcol = (size_t)kvh * HD;
    const int nrow = min(TC_BQ, s.n_q - tl.y); /* valid rows of this tile */

    /* Q tile (rows past the sequence: zeros) */
    for (int idx = threadIdx.x; idx < TC_BQ * HD; idx += blockDim.x) {
        int r = idx / HD, d = idx - r * HD;
        __nv_bfloat16 v = __float2bfloat16_rn(0.0f);
        if (r < nrow)
            v = ((const __nv_bfloat16 *)(Q + (size_t)(s.q_start + tl.y + r) * q_rb))[qcol + d];
        Qs[r * C::LDH + d] = v;
    }
    float *Ow = Os + warp * 16 * C::LDO;
    float *Sw = Ss + warp * 16 * C::LDS;
    __nv_bfloat16 *Pw = Ps + warp * 16 * C::LDP;
    for (int idx = lane; idx < 16 * C::LDO; idx += 32)
        Ow[idx] = 0.0f;
    /* softmax state: lane owns half (lane & 1) of row (lane >> 1) of its warp's 16 */
    const int rr = lane >> 1, half = lane & 1;
    const int qi = tl.y + warp * 16 + rr; /* row inside the sequence */
    int nvis = 0;
    if (qi < s.n_q)
        nvis = causal ? min(s.n_kv, s.q_pos0 + qi + 1) : s.n_kv;
    const int last = tl.y + nrow - 1;
    const int nmax = causal ? min(s.n_kv, s.q_pos0 + last + 1) : s.n_kv;
    float m = -INFINITY, l = 0.0f;

    for (int j0 = 0; j0 < nmax; j0 += TC_BK) {
        __syncthreads(); /* Q written (first pass) / previous K, V tiles no longer read */
        for (int idx = threadIdx.x; idx < TC_BK * HD; idx += blockDim.x) {
            int r = idx / HD, d = idx - r * HD;
            __nv_bfloat16 kv = __float2bfloat16_rn(0.0f), vv = kv;
            if (j0 + r < nmax) {
                size_t row = (size_t)(s.kv_start + j0 + r);
                kv = ((const __nv_bfloat16 *)(K + row * k_rb))[kcol + d];
                vv = ((const __nv_bfloat16 *)(V + row * v_rb))[kcol + d];
            }
            Ks[r * C::LDH + d] = kv;
            Vs[r * C::LDH + d] = vv;
        }
        __syncthreads();
        /* S = Q K^T for this warp's 16 rows */
#pragma unroll
        for (int n = 0; n < TC_BK / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
                wmma::load_matrix_sync(a, Qs + warp * 16 * C::LDH + kk * 16, C::LDH);
                wmma::load_matrix_sync(b, Ks + n * 16 * C::LDH + kk * 16, C::LDH); /* K^T: key-major = col-major */
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Sw + n * 16, acc, C::LDS, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax over this tile, by rows */
        float sv[TC_BK / 2];
        float tmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < TC_BK / 2; c++) {
            int j = half * (TC_BK / 2) + c;
            float x = j0 + j < nvis ? Sw[rr * C::LDS + j] * scale : -INFINITY;
            sv[c] = x;
            tmax = fmaxf(tmax, x);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float mn = fmaxf(m, tmax);
        float corr = 1.0f, psum = 0.0f;
        if (mn != -INFINITY) {
            corr = __expf(m - mn); /* m = -inf: 0 */
#pragma unroll
            for (int c = 0; c < TC_BK / 2; c++) {
                float p = __expf(sv[c] - mn);
                psum += p;
                Pw[rr * C::LDP + half * (TC_BK / 2) + c] = __float2bfloat16_rn(p);
            }
        } else {
#pragma unroll
            for (int c = 0; c < TC_BK / 2; c++)
                Pw[rr * C::LDP + half * (TC_BK / 2) + c] = __float2bfloat16_rn(0.0f);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l = l * corr + psum;
        m = mn;
        if (corr != 1.0f)
            for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++)
                Ow[rr * C::LDO + d] *= corr;
        __syncwarp();
        /* O += P V */
#pragma unroll
        for (int n = 0; n < HD / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Ow + n * 16, C::LDO, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < TC_BK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
                wmma::load_matrix_sync(a, Pw + kk * 16, C::LDP);
                wmma::load_matrix_sync(b, Vs + kk * 16 * C::LDH + n * 16, C::LDH);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Ow + n * 16, acc, C::LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    __syncwarp();
    if (qi < s.n_q) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        __nv_bfloat16 *orow = (__nv_bfloat16 *)(O + (size_t)(s.q_start + qi) * o_rb) + qcol;
        for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++)
            orow[d] = __float2bfloat16_rn(Ow[rr * C::LDO + d] * inv);
    }
}

/* ------------------------------------------------------------ decode (split-K) */

template <int HDP> static constexpr size_t dc_smem()
{
    return sizeof(float) * ((size_t)DC_KEYS * (HDP + 1) + (size_t)DC_KEYS * HDP + (size_t)DC_WARPS * HDP);
}

/* grid (n_split, n_kv_head, n_seq), block 32 * n_warps. part: (n_seq, max_nq,
 * n_head, n_split) records of HDP + 2 floats (acc..., m, l); unused when
 * n_split == 1 (the block writes the output itself). */
template <int HDP>
__global__ void __launch_bounds__(DC_WARPS * 32)
attn_decode(const uint8_t *__restrict__ Q, size_t q_rb, const uint8_t *__restrict__ K, size_t k_rb,
            const uint8_t *__restrict__ V, size_t v_rb, uint8_t *__restrict__ O, size_t o_rb, bool bf,
            const qr_attn_seq *__restrict__ seqs, int n_head, int group, int hd, float scale, bool causal, int n_split,
            int max_nq, float *__restrict__ part)
{
    extern __shared__ float smem[];
    float *Ks = smem;                          /* [DC_KEYS][HDP + 1]: lane j reads row j, conflict-free */
    float *Vs = Ks + DC_KEYS * (HDP + 1);      /* [DC_KEYS][HDP]: lanes read adjacent dims */
    float *qs = Vs + DC_KEYS * HDP;            /* [DC_WARPS][HDP] */
    constexpr int PER = HDP / 32;
    const int split = blockIdx.x, g = blockIdx.y, si = blockIdx.z;
    const qr_attn_seq s = seqs[si];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    /* this block's key range, from n_kv on the device */
    const int chunk = (s.n_kv + n_split - 1) / n_split;
    const int k0 = split * chunk, k1 = min(s.n_kv, k0 + chunk);
    const size_t kcol = (size_t)g * (size_t)hd;
    const int pairs = s.n_q * group;

    for (int p0 = 0; p0 < pairs; p0 += nw) {
        const int p = p0 + warp;
        const bool active = p < pairs;
        const int qi = active ? p / group : 0;
        const int h = g * group + (active ? p % group : 0);
        if (active) {
            const uint8_t *qrow = Q + (size_t)(s.q_start + qi) * q_rb;
            for (int d = lane; d < HDP; d += 32)
                qs[warp * HDP + d] = d < hd ? ld_a(qrow, bf, (int64_t)h * hd + d) * scale : 0.0f;
        }
        const int lim = active ? (causal ? min(k1, s.q_pos0 + qi + 1) : k1) : k0;
        float m = -INFINITY, l = 0.0f, acc[PER];
#pragma unroll
        for (int i = 0; i < PER; i++)
            acc[i] = 0.0f;
        for (int t0 = k0; t0 < k1; t0 += DC_KEYS) {
            __syncthreads(); /* previous tile done; qs written */
            for (int idx = threadIdx.x; idx < DC_KEYS * HDP; idx += blockDim.x) {
                int key = idx / HDP, d = idx - key * HDP;
                float kv = 0.0f, vv = 0.0f;
                if (t0 + key < k1 && d < hd) {
                    size_t r = (size_t)(s.kv_start + t0 + key);
                    kv = ld_a(K + r * k_rb, bf, (int64_t)(kcol + d));
                    vv = ld_a(V + r * v_rb, bf, (int64_t)(kcol + d));
                }
                Ks[key * (HDP + 1) + d] = kv;
                Vs[key * HDP + d] = vv;
            }
            __syncthreads();
            if (!active || t0 >= lim)
                continue;
            float sc = 0.0f;
            const float *kr = Ks + lane * (HDP + 1);
            const float *qw = qs + warp * HDP;
#pragma unroll 8
            for (int d = 0; d < HDP; d++)
                sc = fmaf(qw[d], kr[d], sc);
            if (t0 + lane >= lim)
                sc = -INFINITY;
            float mt = sc;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            const float mn = fmaxf(m, mt); /* finite: key t0 < lim is visible */
            const float corr = __expf(m - mn);
            float pj = __expf(sc - mn);
            float ps = pj;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                ps += __shfl_xor_sync(0xffffffffu, ps, o);
            l = l * corr + ps;
#pragma unroll
            for (int i = 0; i < PER; i++)
                acc[i] *= corr;
            const int nk = min(DC_KEYS, lim - t0);
            for (int j = 0; j < nk; j++) {
                float pb = __shfl_sync(0xffffffffu, pj, j);
                const float *vr = Vs + j * HDP;
#pragma unroll
                for (int i = 0; i < PER; i++)
                    acc[i] = fmaf(pb, vr[lane + 32 * i], acc[i]);
            }
            m = mn;
        }
        if (active) {
            if (n_split == 1) {
                const float inv = l > 0.0f ? 1.0f / l : 0.0f;
                uint8_t *orow = O + (size_t)(s.q_start + qi) * o_rb;
#pragma unroll
                for (int i = 0; i < PER; i++) {
                    int d = lane + 32 * i;
                    if (d < hd)
                        st_a(orow, bf, (int64_t)h * hd + d, acc[i] * inv);
                }
            } else {
                size_t rec = (((size_t)si * max_nq + qi) * n_head + h) * n_split + split;
                float *pr = part + rec * (HDP + 2);
#pragma unroll
                for (int i = 0; i < PER; i++)
                    pr[lane + 32 * i] = acc[i];
                if (lane == 0) {
                    pr[HDP] = m;
                    pr[HDP + 1] = l;
                }
            }
        }
        __syncthreads(); /* qs is rewritten by the next round */
    }
}

/* grid (n_head, max_nq, n_seq), block HDP threads: merges the splits. */
template <int HDP>
__global__ void attn_decode_reduce(const float *__restrict__ part, uint8_t *__restrict__ O, size_t o_rb, bool bf,
                                   const qr_attn_seq *__restrict__ seqs, int n_head, int hd, int n_split, int max_nq)
{
    const int h = blockIdx.x, qi = blockIdx.y, si = blockIdx.z, d = threadIdx.x;
    const qr_attn_seq s = seqs[si];
    if (qi >= s.n_q || d >= hd)
        return;
    const float *pr = part + (((size_t)si * max_nq + qi) * n_head + h) * n_split * (HDP + 2);
    float M = -INFINITY;
    for (int c = 0; c < n_split; c++)
        M = fmaxf(M, pr[(size_t)c * (HDP + 2) + HDP]);
    float L = 0.0f, a = 0.0f;
    if (M > -INFINITY)
        for (int c = 0; c < n_split; c++) {
            const float *r = pr + (size_t)c * (HDP + 2);
            float mc = r[HDP];
            if (mc == -INFINITY)
                continue; /* empty split */
            float w = __expf(mc - M);
            L = fmaf(r[HDP + 1], w, L);
            a = fmaf(r[d], w, a);
        }
    st_a(O + (size_t)(s.q_start + qi) * o_rb, bf, (int64_t)h * hd + d, L > 0.0f ? a / L : 0.0f);
}

/* ------------------------------------------------------------ host */

static int check_t(const qr_tensor *t, const char *name)
{
    if (!t)
        return qr_fail(QR_EINVAL, "cuda: attention: %s is NULL", name);
    if (t->dtype != QR_F32 && t->dtype != QR_BF16)
        return qr_fail(QR_EINVAL, "cuda: attention: %s must be f32 or bf16, got %s", name, qr_dtype_name(t->dtype));
    size_t es = t->dtype == QR_F32 ? 4 : 2;
    if (t->rows < 0 || t->cols < 0 || t->row_bytes < (size_t)t->cols * es || t->row_bytes % es)
        return qr_fail(QR_EINVAL, "cuda: attention: %s: bad shape (%lld, %lld) / row_bytes %zu", name,
                       (long long)t->rows, (long long)t->cols, t->row_bytes);
    if (!t->data && t->rows > 0 && t->cols > 0)
        return qr_fail(QR_EINVAL, "cuda: attention: %s: no data", name);
    return QR_OK;
}

/* Tensor-core prefill for HD 64 / 128 (other HDP: never called). */
template <int HDP>
static int launch_tc(qr_cuda_backend *cb, dim3 grid, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                     qr_tensor *out, const qr_attn_seq *dseqs, const int2 *dt, int group, float scale, bool causal)
{
    if constexpr (HDP == 64 || HDP == 128) {
        const size_t smem = TcCfg<HDP>::SMEM;
        /* per backend (cuda_internal.h): the attribute lives in the context the backend keeps */
        bool *done = &cb->attr_prefill_tc[HDP == 128];
        if (!*done) {
            int rc = qr_cuda_check(cudaFuncSetAttribute(attn_prefill_tc<HDP>,
                                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                                   "cuda: attention: shared memory limit");
            if (rc)
                return rc;
            *done = true;
        }
        attn_prefill_tc<HDP><<<grid, 128, smem, cb->stream>>>(
            (const uint8_t *)q->data, q->row_bytes, (const uint8_t *)k->data, k->row_bytes, (const uint8_t *)v->data,
            v->row_bytes, (uint8_t *)out->data, out->row_bytes, dseqs, dt, group, scale, causal);
        cudaError_t e = cudaGetLastError();
        return e == cudaSuccess ? QR_OK : qr_cuda_check(e, "cuda: attention: prefill (tensor cores) kernel");
    } else {
        (void)cb; (void)grid; (void)q; (void)k; (void)v; (void)out; (void)dseqs; (void)dt; (void)group;
        (void)scale; (void)causal;
        return qr_fail(QR_EINTERNAL, "cuda: attention: no tensor-core kernel for head_dim %d", HDP);
    }
}

template <int HDP>
static int launch(qr_cuda_backend *cb, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v, qr_tensor *out,
                  bool bf, const qr_attn_seq *dseqs, const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head,
                  int hd, float scale, bool causal, int max_nq, int64_t max_nkv)
{
    const int group = n_head / n_kv_head;
    int rc;
    if (max_nq > QR_ATTN_DECODE_MAX_Q) {
        /* the tile list is built from the sequences' values: not replayable */
        if (cb->capture)
            return qr_fail(QR_EUNSUPPORTED, "cuda: attention: prefill (%d query rows) cannot be captured in a graph",
                           max_nq);
        /* bf16 with head_dim 64/128: tensor cores, 64-row tiles; else 32-row CUDA-core tiles */
        const bool tc = QR_ATTN_TENSOR_CORES && bf && (hd == 64 || hd == 128) && HDP == hd;
        const int rows = tc ? TC_BQ : PF_ROWS;
        int64_t n_tiles = 0;
        for (int i = 0; i < n_seq; i++)
            n_tiles += (seqs[i].n_q + rows - 1) / rows;
        if (n_tiles == 0)
            return QR_OK;
        if (n_tiles > INT32_MAX || n_head > 65535)
            return qr_fail(QR_ELIMIT, "cuda: attention: %lld tiles x %d heads exceed the grid", (long long)n_tiles,
                           n_head);
        int2 *tiles = (int2 *)malloc((size_t)n_tiles * sizeof(int2));
        if (!tiles)
            return qr_fail(QR_ENOMEM, "cuda: attention: %lld tiles", (long long)n_tiles);
        int64_t t = 0;
        for (int i = 0; i < n_seq; i++)
            for (int q0 = 0; q0 < seqs[i].n_q; q0 += rows)
                tiles[t++] = make_int2(i, q0);
        void *dt = NULL;
        rc = qr_cuda_stage(cb, tiles, (size_t)n_tiles * sizeof(int2), &dt);
        free(tiles);
        if (rc)
            return rc;
        dim3 grid((unsigned)n_tiles, (unsigned)n_head);
        if (tc)
            return launch_tc<HDP>(cb, grid, q, k, v, out, dseqs, (const int2 *)dt, group, scale, causal);
        attn_prefill<HDP><<<grid, PF_ROWS * 4, 0, cb->stream>>>(
            (const uint8_t *)q->data, q->row_bytes, (const uint8_t *)k->data, k->row_bytes, (const uint8_t *)v->data,
            v->row_bytes, (uint8_t *)out->data, out->row_bytes, bf, dseqs, (const int2 *)dt, group, hd, scale, causal);
        cudaError_t e = cudaGetLastError();
        return e == cudaSuccess ? QR_OK : qr_cuda_check(e, "cuda: attention: prefill kernel");
    }
    if (max_nq == 0)
        return QR_OK;
    if (n_seq > 65535 || n_kv_head > 65535)
        return qr_fail(QR_ELIMIT, "cuda: attention: %d sequences x %d kv heads exceed the grid", n_seq, n_kv_head);
    /* splits: enough blocks for two waves of the GPU; when not capturing,
     * no more than one split per 128 keys of the longest sequence. While a
     * graph is captured n_kv will grow between replays, so only the grid
     * shape (not the values) decides. */
    int sms = cb->prop.multiProcessorCount > 0 ? cb->prop.multiProcessorCount : 80;
    int64_t want = (2LL * sms + (int64_t)n_seq * n_kv_head - 1) / ((int64_t)n_seq * n_kv_head);
    int n_split = (int)(want < 1 ? 1 : want > DC_MAX_SPLIT ? DC_MAX_SPLIT : want);
    if (!cb->capture) {
        int64_t by_len = (max_nkv + 127) / 128;
        if (by_len < n_split)
            n_split = (int)(by_len < 1 ? 1 : by_len);
    }
    int pairs = max_nq * group;
    int warps = pairs < DC_WARPS ? pairs : DC_WARPS;
    float *part = NULL;
    if (n_split > 1 &&
        (rc = qr_cuda_scratch(cb, (size_t)n_seq * max_nq * n_head * n_split * (HDP + 2) * sizeof(float),
                              (void **)&part)))
        return rc;
    const size_t smem = dc_smem<HDP>();
    /* per backend (cuda_internal.h): the attribute belongs to the context the backend keeps */
    bool *done = &cb->attr_decode[HDP == 32 ? 0 : HDP == 64 ? 1 : HDP == 128 ? 2 : 3]; /* HDP: 32, 64, 128, 256 */
    if (smem > 48 * 1024 && !*done) {
        if ((rc = qr_cuda_check(cudaFuncSetAttribute(attn_decode<HDP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                     (int)smem), "cuda: attention: shared memory limit"))) {
            qr_cuda_scratch_free(cb, part);
            return rc;
        }
        *done = true;
    }
    dim3 grid((unsigned)n_split, (unsigned)n_kv_head, (unsigned)n_seq);
    attn_decode<HDP><<<grid, 32 * warps, smem, cb->stream>>>(
        (const uint8_t *)q->data, q->row_bytes, (const uint8_t *)k->data, k->row_bytes, (const uint8_t *)v->data,
        v->row_bytes, (uint8_t *)out->data, out->row_bytes, bf, dseqs, n_head, group, hd, scale, causal, n_split,
        max_nq, part);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && n_split > 1) {
        dim3 rg((unsigned)n_head, (unsigned)max_nq, (unsigned)n_seq);
        attn_decode_reduce<HDP><<<rg, HDP, 0, cb->stream>>>(part, (uint8_t *)out->data, out->row_bytes, bf, dseqs,
                                                             n_head, hd, n_split, max_nq);
        e = cudaGetLastError();
    }
    qr_cuda_scratch_free(cb, part);
    return e == cudaSuccess ? QR_OK : qr_cuda_check(e, "cuda: attention: decode kernel");
}

extern "C" int qr_cuda_attention(qr_backend *be, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                                 const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head, int head_dim,
                                 float scale, bool causal, qr_tensor *out)
{
    qr_cuda_backend *cb = qr_cuda_of(be);
    int rc;
    if ((rc = qr_cuda_use(cb)) || (rc = check_t(q, "q")) || (rc = check_t(k, "k")) || (rc = check_t(v, "v")) || (rc = check_t(out, "out")))
        return rc;
    if (k->dtype != q->dtype || v->dtype != q->dtype || out->dtype != q->dtype)
        return qr_fail(QR_EINVAL, "cuda: attention: q %s, k %s, v %s, out %s must share one type",
                       qr_dtype_name(q->dtype), qr_dtype_name(k->dtype), qr_dtype_name(v->dtype),
                       qr_dtype_name(out->dtype));
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head || head_dim > 256)
        return qr_fail(QR_EINVAL, "cuda: attention: n_head %d, n_kv_head %d, head_dim %d invalid (head_dim <= 256)",
                       n_head, n_kv_head, head_dim);
    if (q->cols != (int64_t)n_head * head_dim)
        return qr_fail(QR_EINVAL, "cuda: attention: q has %lld columns, expected %d heads x %d", (long long)q->cols,
                       n_head, head_dim);
    if (k->cols != (int64_t)n_kv_head * head_dim || v->cols != k->cols || v->rows != k->rows)
        return qr_fail(QR_EINVAL, "cuda: attention: k (%lld, %lld) / v (%lld, %lld) do not match %d kv heads x %d",
                       (long long)k->rows, (long long)k->cols, (long long)v->rows, (long long)v->cols, n_kv_head,
                       head_dim);
    if (out->rows != q->rows || out->cols != q->cols)
        return qr_fail(QR_EINVAL, "cuda: attention: out is (%lld, %lld), expected (%lld, %lld)", (long long)out->rows,
                       (long long)out->cols, (long long)q->rows, (long long)q->cols);
    if ((rc = qr_attn_check_seqs("cuda", q, k, seqs, n_seq)))
        return rc;
    int max_nq = 0;
    int64_t max_nkv = 0;
    for (int s = 0; s < n_seq; s++) {
        const qr_attn_seq *d = &seqs[s];
        max_nq = d->n_q > max_nq ? d->n_q : max_nq;
        max_nkv = d->n_kv > max_nkv ? d->n_kv : max_nkv;
    }
    if (n_seq == 0 || max_nq == 0)
        return QR_OK;
    void *dseqs = NULL;
    if ((rc = qr_cuda_stage(cb, seqs, (size_t)n_seq * sizeof(qr_attn_seq), &dseqs)))
        return rc;
    const bool bf = q->dtype == QR_BF16;
    const qr_attn_seq *ds = (const qr_attn_seq *)dseqs;
    if (head_dim <= 32)
        return launch<32>(cb, q, k, v, out, bf, ds, seqs, n_seq, n_head, n_kv_head, head_dim, scale, causal, max_nq,
                          max_nkv);
    if (head_dim <= 64)
        return launch<64>(cb, q, k, v, out, bf, ds, seqs, n_seq, n_head, n_kv_head, head_dim, scale, causal, max_nq,
                          max_nkv);
    if (head_dim <= 128)
        return launch<128>(cb, q, k, v, out, bf, ds, seqs, n_seq, n_head, n_kv_head, head_dim, scale, causal, max_nq,
                           max_nkv);
    return launch<256>(cb, q, k, v, out, bf, ds, seqs, n_seq, n_head, n_kv_head, head_dim, scale, causal, max_nq,
                       max_nkv);
}
