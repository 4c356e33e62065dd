/* Dequantization of the ggml block types llama.cpp uses besides Q8_0/Q4_0/Q4_K/Q6_K.
 *
 * Block layouts (little-endian, f16 = IEEE half, q = the unsigned quant):
 *   Q4_1 (32 values, 20 bytes):  f16 d; f16 m; u8 qs[16]
 *       x[j] = lo4(qs[j]) * d + m, x[j+16] = hi4(qs[j]) * d + m
 *   Q5_0 (32 values, 22 bytes):  f16 d; u8 qh[4]; u8 qs[16]
 *       qh is a 32-bit mask of fifth bits: bit j for x[j], bit j+16 for x[j+16];
 *       q = lo4/hi4(qs[j]) | fifth bit << 4; x = (q - 16) * d
 *   Q5_1 (32 values, 24 bytes):  f16 d; f16 m; u8 qh[4]; u8 qs[16]
 *       as Q5_0 without the -16, plus the min: x = q * d + m
 *   Q2_K (256 values, 84 bytes): u8 scales[16]; u8 qs[64]; f16 d; f16 dmin
 *       16 groups of 16 values; scales[g] holds the group's 4-bit scale (low
 *       nibble) and 4-bit min (high nibble); x = (d * sc) * q - (dmin * mn)
 *   Q3_K (256 values, 110 bytes): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
 *       16 groups of 16 values with a 6-bit scale each (see q3_k_scale), stored
 *       minus 32; q = 2 low bits from qs, minus 4 unless the hmask bit is set:
 *       x = (d * (scale - 32)) * q
 *   Q5_K (256 values, 176 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *       as Q4_K (8 sub-blocks of 32, scale/min packed as in Q4_K) with a fifth
 *       bit per value from qh; x = (d * sc) * q - (dmin * m)
 * In the 2-bit types (Q2_K, Q3_K), each 128-value half reads 32 bytes of qs
 * four times, shifting by 0, 2, 4, 6: the 32 values of shift s are the groups
 * 2s and 2s+1 of that half (bytes 0-15 and 16-31). Q3_K's hmask bit for value l
 * of pass p (p = 4 * half + shift / 2) is bit p of hmask[l].
 * Products are evaluated in this order in f32 so results are bit-exact with
 * ggml's reference dequantization (the build uses ISO C: no FMA contraction). */
#include "runtime/weights/convert_blocks.h"

#include <string.h>

#include "runtime/dtype.h"

static float f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return qr_f16_to_f32(h);
}

static uint32_t u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void qr_deq_q4_1(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        float d = f16(b), m = f16(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(qs[j] & 0xf) * d + m;
            y[j + 16] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

/* Shared by Q5_0 (off = 16, no min) and Q5_1 (off = 0, min m). */
static void q5_block(const uint8_t *qs, uint32_t qh, float d, int off, const float *m, float *y)
{
    for (int j = 0; j < 16; j++) {
        int q0 = (int)((qs[j] & 0xf) | ((qh >> j) & 1) << 4) - off;
        int q1 = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - off;
        if (m) {
            y[j] = (float)q0 * d + *m;
            y[j + 16] = (float)q1 * d + *m;
        } else {
            y[j] = (float)q0 * d;
            y[j + 16] = (float)q1 * d;
        }
    }
}

void qr_deq_q5_0(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 22, y += 32)
        q5_block(b + 6, u32le(b + 2), f16(b), 16, NULL, y);
}

void qr_deq_q5_1(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 24, y += 32) {
        float m = f16(b + 2);
        q5_block(b + 8, u32le(b + 4), f16(b), 0, &m, y);
    }
}

void qr_deq_q2_k(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 84) {
        const uint8_t *sc = b, *q = b + 16;
        float d = f16(b + 80), dmin = f16(b + 82);
        for (int h = 0; h < 2; h++, q += 32) {       /* halves of 128 values */
            for (int s = 0; s < 8; s += 2) {         /* bit shift of the pass */
                for (int g = 0; g < 2; g++, sc++, y += 16) { /* two groups of 16 */
                    float dl = d * (float)(*sc & 0xf), ml = dmin * (float)(*sc >> 4);
                    for (int l = 0; l < 16; l++)
                        y[l] = dl * (float)((q[16 * g + l] >> s) & 3) - ml;
                }
            }
        }
    }
}

/* Signed 6-bit scale of group g (0..15) of a Q3_K block: the low 4 bits are
 * the low nibble of byte g (g < 8) or the high nibble of byte g-8; the top 2
 * bits are bits 2*(g/4) of byte 8 + g%4. Stored with a +32 bias. */
static int q3_k_scale(int g, const uint8_t *s)
{
    int lo = g < 8 ? s[g] & 0xf : s[g - 8] >> 4;
    int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void qr_deq_q3_k(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 110) {
        const uint8_t *hm = b, *q = b + 32, *scales = b + 96;
        float d = f16(b + 108);
        int g = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int s = 0; s < 8; s += 2) {
                int bit = 4 * h + s / 2;             /* which hmask bit this pass reads */
                for (int k = 0; k < 2; k++, g++, y += 16) {
                    float dl = d * (float)q3_k_scale(g, scales);
                    for (int l = 0; l < 16; l++) {
                        int idx = 16 * k + l;
                        int v = ((q[idx] >> s) & 3) - ((hm[idx] >> bit) & 1 ? 0 : 4);
                        y[l] = dl * (float)v;
                    }
                }
            }
        }
    }
}

void qr_deq_q5_k(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 176) {
        float d = f16(b), dmin = f16(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
        /* 4 chunks of 64 values: 32 bytes of ql (low nibbles = sub-block 2k,
         * high nibbles = 2k+1); fifth bits from qh bits 2k and 2k+1 */
        for (int k = 0; k < 4; k++, ql += 32, y += 64) {
            int sc, m;
            qr_scale_min_k4(2 * k, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            qr_scale_min_k4(2 * k + 1, scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q1 = (ql[l] & 0xf) | ((qh[l] >> (2 * k)) & 1) << 4;
                int q2 = (ql[l] >> 4) | ((qh[l] >> (2 * k + 1)) & 1) << 4;
                y[l] = d1 * (float)q1 - m1;
                y[l + 32] = d2 * (float)q2 - m2;
            }
        }
    }
}
