/* Internal to runtime/cpu/quant: the unpacked form of weight rows and the
 * kernel table each ISA fills in.
 *
 * A weight row of K values is unpacked (per tile, into thread-private scratch)
 * to the integers and scales of quant.h's formula:
 *   wq[K] int8, dw[K/G] f32 group scales, ws[K/G] int32 = sum of wq over the
 *   group (the VNNI paths feed activations as q + 128 and subtract 128 * ws),
 *   mw[K/32] f32 block mins (types with a min only).
 * G = 32, or 16 for Q6_K. The unpackers are static inline so each ISA's file
 * compiles them under its own target attribute (QR_QUNPACK_ATTR). */
#ifndef QR_RUNTIME_CPU_QUANT_IMPL_H
#define QR_RUNTIME_CPU_QUANT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/cpu/quant/quant.h"

typedef struct {
    int8_t *wq;
    float *dw;
    int32_t *ws;
    float *mw;
} qr_qrow;

typedef struct {
    int block;       /* elements per block: 32 or 256 */
    int bytes;       /* bytes per block */
    int G;           /* scale group: 32 or 16 */
    bool has_min;    /* mw is used */
} qr_qtype_info;

/* NULL for a type this module does not compute. */
const qr_qtype_info *qr_qtype(qr_dtype t);

/* One ISA's kernels. Both compute rows [n0, n1) of y (row t at y + t * ys)
 * serially; scratch is qr_q_scratch_bytes(K) bytes, 64-byte aligned (for the
 * AMX GEMM at least qr_q_amx_scratch_bytes(K)). */
typedef struct {
    void (*gemv)(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0, int64_t n1,
                 float *y, size_t ys, void *scratch);
    void (*gemm)(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0, int64_t n1,
                 float *y, size_t ys, void *scratch);
    /* One activation row of K values: q[K], d[K/32], s[K/32] as quant.h
     * defines them (round half to even: every path gives the same bytes). */
    void (*quant_row)(const float *x, int64_t K, int8_t *q, float *d, float *s);
} qr_qkernels;

/* Row tile of the GEMM kernels (thread splits are multiples of it), and the
 * most rows unpacked at once: a block of qr_q_rblock(K) rows (a multiple of
 * QR_QROWS, about 32 KiB of int8) is unpacked, then swept by every token
 * group, its outputs gathered in a [32 tokens][rblock] buffer so y is
 * written in row runs rather than one float per token row. */
#define QR_QROWS 4
#define QR_QRB_MAX 64
int qr_q_rblock(int64_t K);
/* scratch: qr_q_rblock(K) unpacked rows + the [32][rblock] f32 buffer */
size_t qr_q_scratch_bytes(int64_t K);
/* Carves qr_q_rblock(K) unpacked rows out of scratch; returns the buffer. */
float *qr_q_rows_init(void *scratch, int64_t K, int G, qr_qrow rows[QR_QRB_MAX]);

extern const qr_qkernels qr_qk_scalar;
#if defined(__x86_64__)
/* quant_avx2.c, quant_avxvnni.c, quant_avx512.c */
extern const qr_qkernels qr_qk_avx2, qr_qk_avxvnni, qr_qk_avx512vnni, qr_qk_amx;
/* quant_amx.c: the AMX GEMM (gemm's signature) and its scratch (16
 * unpacked rows, their transposed scales and the tile buffers) */
void qr_q_gemm_amx(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0, int64_t n1,
                   float *y, size_t ys, void *scratch);
size_t qr_q_amx_scratch_bytes(int64_t K);
#endif

#ifndef QR_QUNPACK_ATTR
#define QR_QUNPACK_ATTR static inline
#endif

/* f16 -> f32 (an ISA file may define QR_QF16 as its F16C instruction) */
#ifndef QR_QF16
#define QR_QF16(h) qr_f16_to_f32(h)
#endif
QR_QUNPACK_ATTR float qr_q_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return QR_QF16(h);
}

/* Scale and min of sub-block j of a Q4_K/Q5_K block (see convert.c). */
QR_QUNPACK_ATTR void qr_q_sm_k4(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Sums of the groups of n values (the group sums ws). */
QR_QUNPACK_ATTR void qr_q_gsum(const int8_t *q, int n, int G, int32_t *ws)
{
    for (int g = 0; g < n / G; g++) {
        int32_t s = 0;
        for (int l = 0; l < G; l++)
            s += q[g * G + l];
        ws[g] = s;
    }
}

/* Unpacks one row of K values of type t at b into r. */
QR_QUNPACK_ATTR void qr_q_unpack(qr_dtype t, const uint8_t *b, int64_t K, const qr_qrow *r)
{
    int8_t *wq = r->wq;
    float *dw = r->dw, *mw = r->mw;
    switch (t) {
    case QR_Q8_0:
        for (int64_t i = 0; i < K / 32; i++, b += 34, wq += 32) {
            dw[i] = qr_q_f16(b);
            memcpy(wq, b + 2, 32);
        }
        break;
    case QR_Q4_0:
        for (int64_t i = 0; i < K / 32; i++, b += 18, wq += 32) {
            dw[i] = qr_q_f16(b);
            for (int j = 0; j < 16; j++) {
                wq[j] = (int8_t)((b[2 + j] & 0xf) - 8);
                wq[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
            }
        }
        break;
    case QR_Q4_1:
        for (int64_t i = 0; i < K / 32; i++, b += 20, wq += 32) {
            dw[i] = qr_q_f16(b);
            mw[i] = qr_q_f16(b + 2);
            for (int j = 0; j < 16; j++) {
                wq[j] = (int8_t)(b[4 + j] & 0xf);
                wq[j + 16] = (int8_t)(b[4 + j] >> 4);
            }
        }
        break;
    case QR_Q5_0:
    case QR_Q5_1: {
        int one = t == QR_Q5_1, off = one ? 0 : 16, hq = one ? 4 : 2, bs = one ? 24 : 22;
        for (int64_t i = 0; i < K / 32; i++, b += bs, wq += 32) {
            dw[i] = qr_q_f16(b);
            if (one)
                mw[i] = qr_q_f16(b + 2);
            uint32_t qh = (uint32_t)b[hq] | (uint32_t)b[hq + 1] << 8 | (uint32_t)b[hq + 2] << 16 |
                          (uint32_t)b[hq + 3] << 24;
            const uint8_t *qs = b + hq + 4;
            for (int j = 0; j < 16; j++) {
                wq[j] = (int8_t)((int)((qs[j] & 0xf) | ((qh >> j) & 1) << 4) - off);
                wq[j + 16] = (int8_t)((int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - off);
            }
        }
        break;
    }
    case QR_Q4_K:
    case QR_Q5_K: {
        int five = t == QR_Q5_K;
        for (int64_t i = 0; i < K / 256; i++, b += five ? 176 : 144) {
            float d = qr_q_f16(b), dmin = qr_q_f16(b + 2);
            const uint8_t *sc = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);
            for (int k = 0; k < 4; k++, q += 32, wq += 64) {
                for (int h = 0; h < 2; h++) {
                    int s, m;
                    qr_q_sm_k4(2 * k + h, sc, &s, &m);
                    dw[8 * i + 2 * k + h] = d * (float)s;
                    mw[8 * i + 2 * k + h] = -(dmin * (float)m);
                }
                for (int l = 0; l < 32; l++) {
                    int lo = q[l] & 0xf, hi = q[l] >> 4;
                    if (five) {
                        lo |= ((qh[l] >> (2 * k)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * k + 1)) & 1) << 4;
                    }
                    wq[l] = (int8_t)lo;
                    wq[l + 32] = (int8_t)hi;
                }
            }
        }
        break;
    }
    case QR_Q6_K:
        for (int64_t i = 0; i < K / 256; i++, b += 210) {
            float d = qr_q_f16(b + 208);
            const uint8_t *ql = b, *qh = b + 128;
            const int8_t *sc = (const int8_t *)(b + 192);
            for (int g = 0; g < 16; g++)
                dw[16 * i + g] = d * (float)sc[g];
            for (int h = 0; h < 2; h++, ql += 64, qh += 32, wq += 128) {
                for (int l = 0; l < 32; l++) {
                    wq[l] = (int8_t)(((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
                    wq[l + 32] = (int8_t)(((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
                    wq[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                    wq[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                }
            }
        }
        break;
    default:
        break;
    }
}

#endif
