/* GGUF weight blocks as the CUDA backend keeps them: the file's bytes
 * unchanged on the device (qr_tensor ql = QR_QL_GGUF), decoded 32 values at
 * a time wherever a kernel reads a weight (cuda_matmul.cu: decode GEMV,
 * tensor-core tiles, bf16 slabs for cuBLASLt; cuda_kernels.cu: embed and the
 * f32 conversion behind download).
 *
 * Kept types (qr_cq_kept): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (blocks of 32
 * values) and Q4_K, Q5_K, Q6_K (super-blocks of 256). Q2_K and Q3_K are not
 * kept (the loader converts them, as for the CPU backend). Layouts:
 * runtime/weights/convert.c and convert_blocks.c.
 *
 * The unit of decoding is a chunk: values [32c, 32c + 32) of a row, which
 * is one block of the 32-value types and one sub-block of a K super-block
 * (Q4_K/Q5_K: the sub-block with its own 6-bit scale and min; Q6_K: two
 * groups of 16 with an int8 scale each). qr_cq_deq32 writes a chunk's 32
 * values as f32, with the products and sums in the order the CPU
 * reference (qr_convert_to_f32, bit-exact with ggml) evaluates them, each
 * rounded (no FMA contraction: __fmul_rn / __fadd_rn on the device), so the
 * device values are bit-identical to the CPU's dequantization.
 *
 * Plain C and CUDA: .cu files compile it for the device (QR_HOST_DEVICE),
 * and the CPU-only test suite runs the same code on the host against
 * qr_convert_to_f32 (tests/unit/cuda/test_cuda_host.c), so the index
 * arithmetic is checked without a GPU.
 *
 * Loads: every block size is even, so (with the row bytes even and the base
 * 2-byte aligned) block starts are 2-byte aligned and words are read as two
 * 16-bit halves; Q4_K (144 bytes) and Q5_K (176) rows are whole multiples of
 * 16 bytes, so with a 16-byte aligned base their quant bytes are read as
 * 16-byte vectors (the caller checks the alignment: qr_cq_aligned16). */
#ifndef QR_RUNTIME_CUDA_QUANT_H
#define QR_RUNTIME_CUDA_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/cuda/cuda_host.h" /* QR_HOST_DEVICE */
#ifdef __cplusplus
extern "C" {
#endif
#include "runtime/dtype.h"
#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define QR_CQ_FN static __forceinline__ __host__ __device__
#else
#define QR_CQ_FN static inline
#endif
#ifdef __CUDA_ARCH__ /* the device pass only: the host compiler does not know the pragma */
#define QR_CQ_UNROLL _Pragma("unroll")
#else
#define QR_CQ_UNROLL
#endif

#ifdef __CUDA_ARCH__
#define QR_CQ_MUL(a, b) __fmul_rn((a), (b))
#define QR_CQ_ADD(a, b) __fadd_rn((a), (b))
#define QR_CQ_SUB(a, b) __fsub_rn((a), (b))
#else
#define QR_CQ_MUL(a, b) ((a) * (b))
#define QR_CQ_ADD(a, b) ((a) + (b))
#define QR_CQ_SUB(a, b) ((a) - (b))
#endif

/* The GGUF block types the CUDA backend computes with as stored. */
QR_CQ_FN bool qr_cq_kept(qr_dtype t)
{
    return t == QR_Q8_0 || t == QR_Q4_0 || t == QR_Q4_1 || t == QR_Q5_0 || t == QR_Q5_1 || t == QR_Q4_K ||
           t == QR_Q5_K || t == QR_Q6_K;
}

/* Types whose rows the kernels read with 16-byte loads (rows 16-byte aligned). */
QR_CQ_FN bool qr_cq_aligned16(qr_dtype t) { return t == QR_Q4_K || t == QR_Q5_K; }

/* Bytes per block and values per block of a kept type (0 otherwise); the
 * same numbers as runtime/dtype.c, repeated here for device code. */
QR_CQ_FN int qr_cq_block_bytes(qr_dtype t)
{
    switch (t) {
    case QR_Q8_0: return 34;
    case QR_Q4_0: return 18;
    case QR_Q4_1: return 20;
    case QR_Q5_0: return 22;
    case QR_Q5_1: return 24;
    case QR_Q4_K: return 144;
    case QR_Q5_K: return 176;
    case QR_Q6_K: return 210;
    default: return 0;
    }
}

QR_CQ_FN int qr_cq_block_values(qr_dtype t)
{
    return t == QR_Q4_K || t == QR_Q5_K || t == QR_Q6_K ? 256 : qr_cq_kept(t) ? 32 : 0;
}

/* ------------------------------------------------------------ loads */

QR_CQ_FN uint32_t qr_cq_u16(const uint8_t *p) /* p 2-byte aligned */
{
#ifdef __CUDA_ARCH__
    return *(const uint16_t *)p;
#else
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
#endif
}

QR_CQ_FN uint32_t qr_cq_u32(const uint8_t *p) /* p 2-byte aligned */
{
    return qr_cq_u16(p) | qr_cq_u16(p + 2) << 16;
}

/* 16 bytes at p as 4 little-endian words; A16: p is 16-byte aligned. */
QR_CQ_FN void qr_cq_ld16(const uint8_t *p, bool a16, uint32_t v[4])
{
#ifdef __CUDA_ARCH__
    if (a16) {
        uint4 u = *(const uint4 *)p;
        v[0] = u.x;
        v[1] = u.y;
        v[2] = u.z;
        v[3] = u.w;
        return;
    }
#else
    (void)a16;
#endif
    QR_CQ_UNROLL
    for (int i = 0; i < 4; i++)
        v[i] = qr_cq_u32(p + 4 * i);
}

/* IEEE half (bits) to f32, exact. */
QR_CQ_FN float qr_cq_f16(uint32_t h)
{
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half((unsigned short)h));
#else
    uint32_t s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0x1f) {
        bits = s | 0x7f800000u | m << 13; /* inf / NaN */
    } else if (e) {
        bits = s | (e + 112) << 23 | m << 13;
    } else if (m) { /* subnormal: normalise */
        int k = 0;
        while (!(m & 0x400)) {
            m <<= 1;
            k++;
        }
        bits = s | (uint32_t)(113 - k) << 23 | (m & 0x3ff) << 13;
    } else {
        bits = s;
    }
    union {
        uint32_t u;
        float f;
    } c;
    c.u = bits;
    return c.f;
#endif
}

/* Byte i (0..15) of 4 words. */
QR_CQ_FN uint32_t qr_cq_byte(const uint32_t v[4], int i) { return (v[i >> 2] >> (8 * (i & 3))) & 0xff; }

/* Scale and min of K sub-block j (0..7) from the 12 packed bytes, given as
 * the words s0 (bytes 0-3), s1 (4-7), s2 (8-11) so that device code keeps
 * them in registers (runtime/weights/convert.c qr_scale_min_k4): sub-blocks
 * 0-3 use the low 6 bits of bytes j (scale) and j+4 (min); 4-7 take their
 * low 4 bits from byte j+4 and their top 2 bits from bytes j-4 and j. */
QR_CQ_FN void qr_cq_scale_min_k4(int j, uint32_t s0, uint32_t s1, uint32_t s2, int *sc, int *m)
{
    uint64_t lo = (uint64_t)s0 | (uint64_t)s1 << 32; /* bytes 0-7 */
    if (j < 4) {
        *sc = (int)((lo >> (8 * j)) & 63);
        *m = (int)((lo >> (8 * (j + 4))) & 63);
    } else {
        int b4 = (int)((s2 >> (8 * (j - 4))) & 0xff); /* byte j + 4 */
        int bm4 = (int)((lo >> (8 * (j - 4))) & 0xff), bj = (int)((lo >> (8 * j)) & 0xff);
        *sc = (b4 & 0xf) | (bm4 >> 6) << 4;
        *m = (b4 >> 4) | (bj >> 6) << 4;
    }
}

/* ------------------------------------------------------------ one chunk */

/* Values [32c, 32c + 32) of a row of type t (a kept type; row: the row's
 * first byte) into w[32], bit-identical to qr_convert_to_f32. a16: the row
 * is 16-byte aligned (only used for Q4_K / Q5_K). */
QR_CQ_FN void qr_cq_deq32(qr_dtype t, const uint8_t *row, int64_t c, bool a16, float *w)
{
    switch (t) {
    case QR_Q8_0: { /* f16 d; int8 q[32]: x = q * d */
        const uint8_t *b = row + (size_t)c * 34;
        float d = qr_cq_f16(qr_cq_u16(b));
        QR_CQ_UNROLL
        for (int i = 0; i < 8; i++) {
            uint32_t u = qr_cq_u32(b + 2 + 4 * i);
            QR_CQ_UNROLL
            for (int k = 0; k < 4; k++)
                w[4 * i + k] = QR_CQ_MUL((float)(int8_t)(uint8_t)(u >> (8 * k)), d);
        }
        return;
    }
    case QR_Q4_0:   /* f16 d; u8 qs[16]: x[j] = (lo4 - 8) * d, x[j + 16] = (hi4 - 8) * d */
    case QR_Q4_1: { /* f16 d; f16 m; u8 qs[16]: x = q * d + m */
        bool one = t == QR_Q4_1;
        const uint8_t *b = row + (size_t)c * (one ? 20 : 18);
        float d = qr_cq_f16(qr_cq_u16(b)), m = one ? qr_cq_f16(qr_cq_u16(b + 2)) : 0.0f;
        uint32_t q[4];
        qr_cq_ld16(b + (one ? 4 : 2), false, q);
        QR_CQ_UNROLL
        for (int j = 0; j < 16; j++) {
            int lo = (int)(qr_cq_byte(q, j) & 0xf), hi = (int)(qr_cq_byte(q, j) >> 4);
            if (one) {
                w[j] = QR_CQ_ADD(QR_CQ_MUL((float)lo, d), m);
                w[j + 16] = QR_CQ_ADD(QR_CQ_MUL((float)hi, d), m);
            } else {
                w[j] = QR_CQ_MUL((float)(lo - 8), d);
                w[j + 16] = QR_CQ_MUL((float)(hi - 8), d);
            }
        }
        return;
    }
    case QR_Q5_0:   /* f16 d; u32 qh; u8 qs[16]: q = nibble | fifth bit << 4, x = (q - 16) * d */
    case QR_Q5_1: { /* f16 d; f16 m; u32 qh; u8 qs[16]: x = q * d + m */
        bool one = t == QR_Q5_1;
        const uint8_t *b = row + (size_t)c * (one ? 24 : 22);
        float d = qr_cq_f16(qr_cq_u16(b)), m = one ? qr_cq_f16(qr_cq_u16(b + 2)) : 0.0f;
        uint32_t qh = qr_cq_u32(b + (one ? 4 : 2));
        uint32_t q[4];
        qr_cq_ld16(b + (one ? 8 : 6), false, q);
        QR_CQ_UNROLL
        for (int j = 0; j < 16; j++) {
            int q0 = (int)((qr_cq_byte(q, j) & 0xf) | ((qh >> j) & 1) << 4);
            int q1 = (int)((qr_cq_byte(q, j) >> 4) | ((qh >> (j + 16)) & 1) << 4);
            if (one) {
                w[j] = QR_CQ_ADD(QR_CQ_MUL((float)q0, d), m);
                w[j + 16] = QR_CQ_ADD(QR_CQ_MUL((float)q1, d), m);
            } else {
                w[j] = QR_CQ_MUL((float)(q0 - 16), d);
                w[j + 16] = QR_CQ_MUL((float)(q1 - 16), d);
            }
        }
        return;
    }
    case QR_Q4_K:   /* f16 d; f16 dmin; u8 scales[12]; u8 qs[128] (sub-blocks 2k, 2k+1: nibbles of qs[32k..]) */
    case QR_Q5_K: { /* f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; fifth bit j of qh[l] */
        bool five = t == QR_Q5_K;
        int64_t sb = c >> 3;
        int j = (int)(c & 7);
        const uint8_t *b = row + (size_t)sb * (five ? 176 : 144);
        uint32_t hdr[4]; /* d, dmin, scales[0..11] */
        qr_cq_ld16(b, a16, hdr);
        float d = qr_cq_f16(hdr[0] & 0xffff), dmin = qr_cq_f16(hdr[0] >> 16);
        int sc, mn;
        qr_cq_scale_min_k4(j, hdr[1], hdr[2], hdr[3], &sc, &mn);
        float d1 = QR_CQ_MUL(d, (float)sc), m1 = QR_CQ_MUL(dmin, (float)mn);
        const uint8_t *qs = b + (five ? 48 : 16) + 32 * (j >> 1);
        int shift = 4 * (j & 1);
        QR_CQ_UNROLL
        for (int h = 0; h < 2; h++) {
            uint32_t q[4], hb[4] = {0, 0, 0, 0};
            qr_cq_ld16(qs + 16 * h, a16, q);
            if (five)
                qr_cq_ld16(b + 16 + 16 * h, a16, hb);
            QR_CQ_UNROLL
            for (int l = 0; l < 16; l++) {
                int v = (int)((qr_cq_byte(q, l) >> shift) & 0xf);
                if (five)
                    v |= (int)((qr_cq_byte(hb, l) >> j) & 1) << 4;
                w[16 * h + l] = QR_CQ_SUB(QR_CQ_MUL(d1, (float)v), m1);
            }
        }
        return;
    }
    case QR_Q6_K: { /* u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d (210 bytes) */
        int64_t sb = c >> 3;
        int j = (int)(c & 7), h = j >> 2, qq = j & 3;
        const uint8_t *b = row + (size_t)sb * 210;
        const uint8_t *ql = b + 64 * h + 32 * (qq & 1), *qh = b + 128 + 32 * h;
        float d = qr_cq_f16(qr_cq_u16(b + 208));
        int shift = qq < 2 ? 0 : 4;
        QR_CQ_UNROLL
        for (int g = 0; g < 2; g++) { /* two groups of 16 values, scale is + 2 qq (is = g) */
            float dl = QR_CQ_MUL(d, (float)(int8_t)b[192 + 8 * h + g + 2 * qq]);
            uint32_t lq[4], hq[4];
            qr_cq_ld16(ql + 16 * g, false, lq);
            qr_cq_ld16(qh + 16 * g, false, hq);
            QR_CQ_UNROLL
            for (int l = 0; l < 16; l++) {
                int v = (int)(((qr_cq_byte(lq, l) >> shift) & 0xf) | ((qr_cq_byte(hq, l) >> (2 * qq)) & 3) << 4) - 32;
                w[16 * g + l] = QR_CQ_MUL(dl, (float)v);
            }
        }
        return;
    }
    default:
        for (int i = 0; i < 32; i++)
            w[i] = 0.0f;
        return;
    }
}

/* Element j of a row of kept type t (one value: embed, f32 conversion). */
QR_CQ_FN float qr_cq_deq1(qr_dtype t, const uint8_t *row, int64_t j)
{
    float w[32];
    qr_cq_deq32(t, row, j >> 5, false, w);
    return w[j & 31];
}

#endif
