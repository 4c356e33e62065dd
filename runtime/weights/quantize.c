/* f32 -> GGUF block quantizers, for --dtype q8_0 / q4_k on f32/f16/bf16
 * weights and for converting Q2_K/Q3_K tensors to a kept type. The block
 * layouts are the ones convert.c documents (and dequantizes).
 *
 * Q8_0: ggml's reference (quantize_row_q8_0_ref), bit for bit: per block of
 * 32, d = max|x| / 127, q = roundf(x * (1/d)) (half away from zero), d stored
 * as f16 (round to nearest even). The `gguf` Python package's
 * gguf.quants.quantize(x, Q8_0) computes the same; tests/unit/weights proves it.
 *
 * Q4_K: round to nearest with a simple, direct choice of the 6-bit scales and
 * mins (ggml's make_qkx2_quants iterates a search over scale candidates; this
 * does not, and llama.cpp's files therefore differ slightly from ours). Per
 * sub-block j of 32 values, with lo_j = min(0, min x) and hi_j = max x:
 *   1. mins: dmin = max_j(-lo_j) / 63 (stored f16, read back as dm);
 *      m_j = ceil(-lo_j / dm) clamped to 63, so dm * m_j >= -lo_j: every
 *      x + dm * m_j >= 0 up to f16 rounding of dm;
 *   2. scales: need_j = (hi_j + dm * m_j) / 15, the step that spans the
 *      shifted sub-block with 16 levels; d = max_j need_j / 63 (f16 -> dd);
 *      sc_j = ceil(need_j / dd) clamped to 63;
 *   3. q = round((x + dm * m_j) / (dd * sc_j)) clamped to [0, 15].
 * Each value then dequantizes within half a step of itself,
 *   |x - (dd*sc_j*q - dm*m_j)| <= dd*sc_j / 2 with dd*sc_j < need_j + dd,
 * except where f16 rounding of d or dmin (relative 2^-11) clips a level at
 * the ends, which adds at most that relative amount of the range.
 * Products are evaluated in f32 in the decoder's order (ISO C, no FMA). */
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "runtime/weights/weights.h"

static void put_f16(uint8_t *p, float f)
{
    uint16_t h = qr_f32_to_f16(f);
    memcpy(p, &h, 2);
}

static void q8_0_row(const float *x, int64_t nb, uint8_t *y)
{
    for (int64_t i = 0; i < nb; i++, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(y, d);
        for (int j = 0; j < 32; j++)
            y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

static int ceil63(float v)
{
    if (!(v > 0.0f))
        return 0;
    float c = ceilf(v);
    return c > 63.0f ? 63 : (int)c;
}

static void q4_k_row(const float *x, int64_t nb, uint8_t *y)
{
    for (int64_t i = 0; i < nb; i++, x += 256, y += 144) {
        float lo[8], hi[8], need[8], max_min = 0.0f, max_need = 0.0f;
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            lo[j] = 0.0f;
            hi[j] = -INFINITY;
            for (int l = 0; l < 32; l++) {
                lo[j] = fminf(lo[j], x[32 * j + l]);
                hi[j] = fmaxf(hi[j], x[32 * j + l]);
            }
            max_min = fmaxf(max_min, -lo[j]);
        }
        put_f16(y + 2, max_min / 63.0f);
        uint16_t h;
        memcpy(&h, y + 2, 2);
        float dm = qr_f16_to_f32(h);
        for (int j = 0; j < 8; j++) {
            mn[j] = dm > 0.0f ? ceil63(-lo[j] / dm) : 0;
            need[j] = (hi[j] + dm * (float)mn[j]) / 15.0f;
            max_need = fmaxf(max_need, need[j]);
        }
        put_f16(y, max_need / 63.0f);
        memcpy(&h, y, 2);
        float dd = qr_f16_to_f32(h);
        for (int j = 0; j < 8; j++)
            sc[j] = dd > 0.0f ? ceil63(need[j] / dd) : 0;
        /* the 12 scale bytes, as qr_scale_min_k4 unpacks them */
        uint8_t *s = y + 4;
        memset(s, 0, 12);
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                s[j] |= (uint8_t)sc[j];
                s[j + 4] |= (uint8_t)mn[j];
            } else {
                s[j + 4] = (uint8_t)((sc[j] & 0xf) | (mn[j] & 0xf) << 4);
                s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
                s[j] |= (uint8_t)((mn[j] >> 4) << 6);
            }
        }
        uint8_t *qs = y + 16;
        for (int j = 0; j < 8; j++) {
            float step = dd * (float)sc[j], m = dm * (float)mn[j];
            for (int l = 0; l < 32; l++) {
                int q = 0;
                if (step > 0.0f) {
                    float v = roundf((x[32 * j + l] + m) / step);
                    q = v < 0.0f ? 0 : v > 15.0f ? 15 : (int)v;
                }
                /* 64 values per 32 bytes: sub-block 2k low nibbles, 2k+1 high */
                uint8_t *b = &qs[32 * (j / 2) + l];
                if (j % 2 == 0)
                    *b = (uint8_t)q;
                else
                    *b |= (uint8_t)(q << 4);
            }
        }
    }
}

int qr_quantize_row(qr_dtype t, const float *x, int64_t n, void *dst)
{
    int blk = qr_dtype_block(t);
    if (t != QR_Q8_0 && t != QR_Q4_K)
        return qr_fail(QR_EUNSUPPORTED, "quantize to %s: no quantizer (q8_0 and q4_k only)", qr_dtype_name(t));
    if (n < 0 || n % blk)
        return qr_fail(QR_EINVAL, "quantize to %s: %lld values is not a multiple of the block size %d",
                       qr_dtype_name(t), (long long)n, blk);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return qr_fail(QR_EINVAL, "quantize to %s: value %lld is not finite", qr_dtype_name(t), (long long)i);
    if (t == QR_Q8_0)
        q8_0_row(x, n / 32, dst);
    else
        q4_k_row(x, n / 256, dst);
    return QR_OK;
}
