/* Element types known to the runtime: storage types of weight files and the
 * compute types of backend tensors. */
#ifndef QR_RUNTIME_DTYPE_H
#define QR_RUNTIME_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QR_F32 = 0,
    QR_F16,
    QR_BF16,
    QR_I8,   /* int8 weight rows with one f32 scale per row (per output channel) */
    QR_I32,
    QR_Q8_0, /* GGUF block types: storage only, dequantized or converted on load */
    QR_Q4_0,
    QR_Q4_K,
    QR_Q6_K,
    QR_Q4_1, /* more GGUF block types (llama.cpp's fallbacks and K-quant mixes) */
    QR_Q5_0,
    QR_Q5_1,
    QR_Q2_K,
    QR_Q3_K,
    QR_Q5_K,
    QR_AS_STORED, /* not a tensor type: the --dtype choice "keep each tensor's file type" */
    QR_DTYPE_COUNT
} qr_dtype;

/* "f32", "bf16", ... ; "?" for out-of-range. */
const char *qr_dtype_name(qr_dtype t);
/* Parses the --dtype values "f32|f16|bf16|int8|q8_0|q4_k|as-stored"
 * (q8_0/q4_k: quantized at load; as-stored: each tensor kept in its file
 * type where the backend computes with it); QR_EINVAL otherwise. */
int qr_dtype_parse(const char *s, qr_dtype *out);
/* Bytes for n elements of a row (n must be a multiple of the block size for
 * block types); 0 for an unknown type or a bad multiple. */
size_t qr_dtype_row_bytes(qr_dtype t, int64_t n);
/* Elements per block: 1 for scalar types, 32 or 256 for GGUF blocks. */
int qr_dtype_block(qr_dtype t);
/* Bytes per block (element size for scalar types); 0 for QR_AS_STORED. */
size_t qr_dtype_block_bytes(qr_dtype t);
/* True for the GGUF block types (Q8_0 ... Q5_K). */
bool qr_dtype_is_block(qr_dtype t);

/* Scalar conversions (round-to-nearest-even for the narrowing ones). */
float qr_f16_to_f32(uint16_t h);
uint16_t qr_f32_to_f16(float f);
float qr_bf16_to_f32(uint16_t h);
uint16_t qr_f32_to_bf16(float f);

#endif
