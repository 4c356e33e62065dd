#include "runtime/dtype.h"

#include <string.h>

#include "common/error.h"

static const struct { const char *name; int block; size_t block_bytes; } info[QR_DTYPE_COUNT] = {
    [QR_F32] = {"f32", 1, 4},    [QR_F16] = {"f16", 1, 2},      [QR_BF16] = {"bf16", 1, 2},
    [QR_I8] = {"int8", 1, 1},    [QR_I32] = {"i32", 1, 4},      [QR_Q8_0] = {"q8_0", 32, 34},
    [QR_Q4_0] = {"q4_0", 32, 18}, [QR_Q4_K] = {"q4_k", 256, 144}, [QR_Q6_K] = {"q6_k", 256, 210},
    [QR_Q4_1] = {"q4_1", 32, 20}, [QR_Q5_0] = {"q5_0", 32, 22},   [QR_Q5_1] = {"q5_1", 32, 24},
    [QR_Q2_K] = {"q2_k", 256, 84}, [QR_Q3_K] = {"q3_k", 256, 110}, [QR_Q5_K] = {"q5_k", 256, 176},
    [QR_AS_STORED] = {"as-stored", 0, 0},
};

const char *qr_dtype_name(qr_dtype t) { return (unsigned)t < QR_DTYPE_COUNT ? info[t].name : "?"; }

int qr_dtype_block(qr_dtype t) { return (unsigned)t < QR_DTYPE_COUNT ? info[t].block : 0; }

size_t qr_dtype_block_bytes(qr_dtype t) { return (unsigned)t < QR_DTYPE_COUNT ? info[t].block_bytes : 0; }

bool qr_dtype_is_block(qr_dtype t) { return (unsigned)t < QR_DTYPE_COUNT && info[t].block > 1; }

size_t qr_dtype_row_bytes(qr_dtype t, int64_t n)
{
    if ((unsigned)t >= QR_DTYPE_COUNT || !info[t].block || n < 0 || n % info[t].block)
        return 0;
    return (size_t)(n / info[t].block) * info[t].block_bytes;
}

int qr_dtype_parse(const char *s, qr_dtype *out)
{
    static const struct { const char *s; qr_dtype t; } names[] = {
        {"f32", QR_F32}, {"fp32", QR_F32}, {"float32", QR_F32}, {"f16", QR_F16}, {"fp16", QR_F16},
        {"float16", QR_F16}, {"bf16", QR_BF16}, {"bfloat16", QR_BF16}, {"int8", QR_I8}, {"i8", QR_I8},
        {"q8_0", QR_Q8_0}, {"q4_k", QR_Q4_K}, {"as-stored", QR_AS_STORED},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].s) == 0) {
            *out = names[i].t;
            return QR_OK;
        }
    return qr_fail(QR_EINVAL, "dtype '%s': expected f32, bf16, f16, int8, q8_0, q4_k or as-stored", s);
}

float qr_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qr_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal: subnormal or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)e; /* 14 .. 24 */
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = ax - 0x38000000u; /* rebias 127 -> 15, keep 13 extra mantissa bits */
    uint32_t half = r >> 13, rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++;
    return (uint16_t)(sign | half);
}

float qr_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qr_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
