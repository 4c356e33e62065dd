/* Random but valid GGUF weight rows of the block types the CUDA backend
 * keeps as stored (runtime/cuda/cuda_quant.h), for the CUDA tests: every
 * quant, scale and min byte random, the f16 fields (d, m, dmin) finite.
 * Shared by test_cuda_host.c (no GPU: the chunk decoder on the host) and
 * test_cuda_quant.c (the kernels on a GPU). */
#ifndef QR_TEST_CUDA_GGUF_BLOCKS_H
#define QR_TEST_CUDA_GGUF_BLOCKS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dtype.h"

/* The kept types, in the order the tests walk them. */
static const qr_dtype gb_types[] = {QR_Q8_0, QR_Q4_0, QR_Q4_1, QR_Q5_0, QR_Q5_1, QR_Q4_K, QR_Q5_K, QR_Q6_K};
#define GB_NTYPES ((int)(sizeof gb_types / sizeof gb_types[0]))

/* Byte offsets of a block's f16 fields; returns how many (<= 2). */
static inline int gb_f16_fields(qr_dtype t, int off[2])
{
    switch (t) {
    case QR_Q8_0: case QR_Q4_0: case QR_Q5_0: off[0] = 0; return 1;
    case QR_Q4_1: case QR_Q5_1: case QR_Q4_K: case QR_Q5_K: off[0] = 0; off[1] = 2; return 2;
    case QR_Q6_K: off[0] = 208; return 1;
    default: return 0;
    }
}

/* Largest |quant| a block's scale multiplies (so values come out near amp). */
static inline float gb_qmax(qr_dtype t)
{
    switch (t) {
    case QR_Q8_0: return 127.0f;
    case QR_Q4_0: return 8.0f;
    case QR_Q4_1: return 15.0f;
    case QR_Q5_0: return 16.0f;
    case QR_Q5_1: return 31.0f;
    case QR_Q4_K: return 15.0f * 63.0f; /* q * 6-bit scale */
    case QR_Q5_K: return 31.0f * 63.0f;
    case QR_Q6_K: return 32.0f * 127.0f;
    default: return 1.0f;
    }
}

/* rows x cols of type t (cols whole blocks) from the generator rng. With
 * amp > 0 the f16 fields are amp/qmax times [0.5, 1) (mins: +-amp/qmax
 * times [0, 1)), so values are of order amp; with amp == 0 the f16 fields are
 * any finite half (subnormals, zeros, both signs: the decoder's f16 path). */
static inline uint8_t *gb_make(qr_dtype t, int64_t rows, int64_t cols, float amp, uint64_t (*rng)(void))
{
    size_t rb = qr_dtype_row_bytes(t, cols), bb = qr_dtype_block_bytes(t);
    size_t total = (size_t)rows * rb;
    uint8_t *p = malloc(total ? total : 1);
    for (size_t i = 0; i < total; i++)
        p[i] = (uint8_t)(rng() >> 56);
    int off[2], nf = gb_f16_fields(t, off);
    for (size_t b = 0; b < total / bb; b++)
        for (int f = 0; f < nf; f++) {
            uint16_t h;
            if (amp > 0) {
                double u = (double)(rng() >> 11) * 0x1.0p-53;
                float v = (float)(amp / gb_qmax(t) * (f == 0 ? 0.5 + 0.5 * u : u));
                if (f == 1 && (rng() & 1))
                    v = -v;
                h = qr_f32_to_f16(v);
            } else {
                h = (uint16_t)(rng() >> 48);
                if ((h & 0x7c00) == 0x7c00) /* inf / NaN: make it finite */
                    h &= 0xbfff;
            }
            memcpy(p + b * bb + (size_t)off[f], &h, 2);
        }
    return p;
}

#endif
