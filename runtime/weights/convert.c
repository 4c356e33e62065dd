/* Storage type -> f32 conversion, including the ggml block formats (the
 * others llama.cpp mixes in -- Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K -- are in
 * convert_blocks.c).
 *
 * Block layouts (little-endian, f16 = IEEE half):
 *   Q8_0 (32 values, 34 bytes):  f16 d; int8 q[32];            x = q * d
 *   Q4_0 (32 values, 18 bytes):  f16 d; u8 qs[16];             x[j] = (lo4(qs[j]) - 8) * d,
 *                                                              x[j+16] = (hi4(qs[j]) - 8) * d
 *   Q4_K (256 values, 144 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
 *       8 sub-blocks of 32 with a 6-bit scale sc and 6-bit min m each, packed in
 *       scales[12] (see qr_scale_min_k4); each 64 values share 32 bytes of qs: the low
 *       nibbles are sub-block 2k, the high nibbles sub-block 2k+1;
 *       x = (d * sc) * q - (dmin * m)
 *   Q6_K (256 values, 210 bytes): u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d
 *       6-bit q = low 4 bits from ql | 2 high bits from qh, minus 32; 16 groups of
 *       16 values each with an int8 scale; x = (d * scale) * q
 * Products are evaluated in this order in f32 so results are bit-exact with
 * ggml's reference dequantization (the build uses ISO C: no FMA contraction). */
#include <string.h>

#include "common/error.h"
#include "runtime/weights/convert_blocks.h"
#include "runtime/weights/weights.h"

static float f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return qr_f16_to_f32(h);
}

static void q8_0(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        float d = f16(b);
        for (int j = 0; j < 32; j++)
            y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void q4_0(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        float d = f16(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0xf) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/* Scale and min of sub-block j (0..7) from the 12 packed bytes: sub-blocks 0-3
 * use the low 6 bits of bytes j (scale) and j+4 (min); sub-blocks 4-7 take
 * their low 4 bits from byte j+4 (scale: low nibble, min: high nibble) and
 * their top 2 bits from the top bits of bytes j-4 (scale) and j (min). */
void qr_scale_min_k4(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void q4_k(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 144) {
        float d = f16(b), dmin = f16(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int k = 0; k < 4; k++, q += 32, y += 64) {
            int sc, m;
            qr_scale_min_k4(2 * k, scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            qr_scale_min_k4(2 * k + 1, scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                y[l] = d1 * (float)(q[l] & 0xf) - m1;
                y[l + 32] = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

static void q6_k(const uint8_t *b, int64_t nb, float *y)
{
    for (int64_t i = 0; i < nb; i++, b += 210) {
        float d = f16(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        /* two halves of 128 values: 64 bytes of ql, 32 of qh, 8 scales each */
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = (d * (float)sc[is]) * (float)q1;
                y[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
                y[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
                y[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
            }
        }
    }
}

int qr_convert_to_f32(qr_dtype t, const void *src, int64_t n, float *dst)
{
    const uint8_t *s = src;
    int blk = qr_dtype_block(t);
    if (n < 0 || blk == 0 || n % blk)
        return qr_fail(QR_EINVAL, "convert %s to f32: %lld elements is not a multiple of the block size %d",
                       qr_dtype_name(t), (long long)n, blk);
    switch (t) {
    case QR_F32:
        memcpy(dst, src, (size_t)n * 4); /* memcpy: the source may be unaligned */
        return QR_OK;
    case QR_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = f16(s + 2 * i);
        return QR_OK;
    case QR_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = qr_bf16_to_f32(h);
        }
        return QR_OK;
    case QR_Q8_0: q8_0(s, n / 32, dst); return QR_OK;
    case QR_Q4_0: q4_0(s, n / 32, dst); return QR_OK;
    case QR_Q4_K: q4_k(s, n / 256, dst); return QR_OK;
    case QR_Q6_K: q6_k(s, n / 256, dst); return QR_OK;
    case QR_Q4_1: qr_deq_q4_1(s, n / 32, dst); return QR_OK;
    case QR_Q5_0: qr_deq_q5_0(s, n / 32, dst); return QR_OK;
    case QR_Q5_1: qr_deq_q5_1(s, n / 32, dst); return QR_OK;
    case QR_Q2_K: qr_deq_q2_k(s, n / 256, dst); return QR_OK;
    case QR_Q3_K: qr_deq_q3_k(s, n / 256, dst); return QR_OK;
    case QR_Q5_K: qr_deq_q5_k(s, n / 256, dst); return QR_OK;
    default:
        return qr_fail(QR_EUNSUPPORTED, "convert %s to f32: not a weight storage type", qr_dtype_name(t));
    }
}

int qr_convert_rows_to_f32(qr_dtype t, const void *src, int64_t cols, int64_t row0, int64_t nrows,
                           float *dst)
{
    size_t rb = qr_dtype_row_bytes(t, cols);
    if (cols <= 0 || rb == 0 || row0 < 0 || nrows < 0)
        return qr_fail(QR_EINVAL, "convert %s rows to f32: bad row length %lld or range", qr_dtype_name(t),
                       (long long)cols);
    return qr_convert_to_f32(t, (const uint8_t *)src + (size_t)row0 * rb, nrows * cols, dst);
}
