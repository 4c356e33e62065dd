/* Internal to runtime/weights: dequantizers for the ggml block types that
 * llama.cpp mixes into its quantized files (Q4_1, Q5_0, Q5_1 for rows that are
 * not a multiple of 256; Q2_K, Q3_K, Q5_K for the Q2_K/Q3_K_M/Q5_K_M mixes).
 * Each decodes nb whole blocks at b into nb * block_size floats at y; the
 * caller (qr_convert_to_f32) has checked the element count. */
#ifndef QR_RUNTIME_WEIGHTS_CONVERT_BLOCKS_H
#define QR_RUNTIME_WEIGHTS_CONVERT_BLOCKS_H

#include <stdint.h>

void qr_deq_q4_1(const uint8_t *b, int64_t nb, float *y);
void qr_deq_q5_0(const uint8_t *b, int64_t nb, float *y);
void qr_deq_q5_1(const uint8_t *b, int64_t nb, float *y);
void qr_deq_q2_k(const uint8_t *b, int64_t nb, float *y);
void qr_deq_q3_k(const uint8_t *b, int64_t nb, float *y);
void qr_deq_q5_k(const uint8_t *b, int64_t nb, float *y);
/* Scale and min (6 bits each) of sub-block j (0..7) of a Q4_K/Q5_K block from
 * its 12 packed scale bytes; shared by convert.c and convert_blocks.c. */
void qr_scale_min_k4(int j, const uint8_t *s, int *sc, int *m);

#endif
