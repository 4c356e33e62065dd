/* CPU integer matmul on GGUF weight blocks kept as stored.
 *
 *   y[t, n] = sum_k x[t, k] * W[n, k]      t < n_tok, n < N, k < K
 *
 * W is N rows of K elements, row-major, each row K / block_size consecutive
 * GGUF blocks exactly as the file stores them (no repacking, no alignment
 * needed): row n starts at (const uint8_t *)w + n * qr_dtype_row_bytes(wtype, K).
 * Weight types: QR_Q8_0, QR_Q4_0, QR_Q4_1, QR_Q5_0, QR_Q5_1 (32-element
 * blocks: K % 32 == 0) and QR_Q4_K, QR_Q5_K, QR_Q6_K (256-element
 * super-blocks: K % 256 == 0). Layouts: runtime/weights/convert.c and
 * convert_blocks.c.
 *
 * Activations are quantized once per matmul, per 32 consecutive values of a
 * row, to int8 (the same for every weight type, so one quantization serves
 * Q/K/V or gate/up even when their types differ, e.g. Q4_K next to Q6_K):
 *   d = max|x| / 127, q = nearest integer (ties to even) of x * (1 / d), in
 *   [-127, 127] (d = 0: q = 0); every ISA path produces the same bytes.
 * Each weight block is read as integers wq with float scales:
 *   W[n, k] = dw[n, g(k)] * wq[n, k] + mw[n, b(k)]
 * where g is the scale group (32 values; 16 for Q6_K) and b the 32-block:
 *   Q8_0: wq = q, dw = d              Q4_0: wq = q - 8, dw = d
 *   Q5_0: wq = q - 16, dw = d         Q4_1, Q5_1: wq = q, dw = d, mw = m
 *   Q4_K, Q5_K: wq = q, dw = d * sc, mw = -(dmin * m)  (sub-block scale/min)
 *   Q6_K: wq = q - 32, dw = d * scale (per 16 values)
 * and the result is, with exact integer sums I (over a scale group) and S
 * (of xq over a 32-block):
 *   y[t, n] = sum_g dw[n, g] * dx[t, b(g)] * I[n, t, g]
 *           + sum_b mw[n, b] * (dx[t, b] * S[t, b])
 * Every ISA path computes exactly these integers; only the float summation
 * order differs between paths (bound: tests/unit/cpu/test_quant.c).
 *
 * ISA: chosen once at first use (cpuid + xgetbv): AMX (the GEMM on int8
 * tiles, the GEMV as AVX-512), AVX-512 VNNI (512-bit), AVX-VNNI (256-bit),
 * AVX2, or portable scalar C. Builds with plain -O2 on
 * any x86-64 (per-function target attributes) and scalar-only elsewhere.
 *
 * Threading: the qr_threadpool splits output rows; the result of every y
 * element is the same for any thread count and any split (each element is
 * computed by the same instruction sequence). n_tok < QR_QGEMM_MIN_TOK uses
 * the GEMV kernels (decode: weights streamed once, each decoded block applied
 * to every token); larger n_tok the tiled GEMM (tokens in lanes of 16).
 *
 * Calling it from a backend (what the block-layout matmul does): keep the
 * GGUF tensor bytes as they are (N rows of qr_dtype_row_bytes(wtype, K));
 * check qr_qmat_supports(wtype) and K % qr_dtype_block(wtype) == 0 at load
 * (else dequantize as before); per matmul either
 *   qr_qmat_mul(pool, wtype, w, N, K, x, x_row_stride, n_tok, y, y_row_stride)
 * or, to share one quantization between matmuls reading the same x (Q/K/V,
 * gate/up): size = qr_qact_bytes(n_tok, K) (a reusable arena is best),
 * qr_quantize_act(pool, x, xs, n_tok, K, buf, &a), then qr_qmat_mul_q(pool,
 * wtype_i, w_i, N_i, K, &a, y_i, ys_i) for each. Inside a job that is already
 * split over rows use qr_qmat_rows (serial). Nothing is cached between calls
 * and w is only read, so any number of threads may call these at once.
 * Scratch: qr_qact_bytes (its room for the AMX layout, pks, is only written,
 * so only resident, under AMX), plus about 32-64 KiB per pool thread malloc'd
 * per call (the AMX GEMM: 16 unpacked rows, ~140 KiB at K = 4864).
 *
 * Errors: QR_EINVAL (from common/error.h) for an unsupported wtype, K not a
 * multiple of the block size, or a non-positive size; QR_ENOMEM when a
 * scratch allocation fails. Functions are thread-safe (no global state but
 * the one-time ISA choice). */
#ifndef QR_RUNTIME_CPU_QUANT_H
#define QR_RUNTIME_CPU_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/threadpool.h"
#include "runtime/dtype.h"

/* n_tok at or above which the GEMM path is taken. */
#define QR_QGEMM_MIN_TOK 8

/* ISA levels (qr_quant_set_isa, qr_quant_isa). */
typedef enum {
    QR_QISA_SCALAR = 0,
    QR_QISA_AVX2,      /* AVX2 + FMA + F16C */
    QR_QISA_AVXVNNI,   /* AVX2 + AVX-VNNI (256-bit dpbusd) */
    QR_QISA_AVX512VNNI, /* AVX-512 F/BW/VL + VNNI */
    QR_QISA_AMX         /* AVX-512 VNNI + AMX-INT8 tiles for the GEMM (Linux grants the tile state) */
} qr_qisa;

/* True for the weight types above. A caller keeps a weight as stored only if
 * this says yes. */
bool qr_qmat_supports(qr_dtype wtype);

/* The ISA level in use ("amx", "avx512vnni", "avxvnni", "avx2", "scalar") and the
 * best one this CPU supports. */
const char *qr_quant_isa_name(qr_qisa isa);
qr_qisa qr_quant_isa(void);
qr_qisa qr_quant_isa_best(void);
/* Whether this CPU runs a level: the levels are not a ladder (AVX-512 VNNI
 * CPUs without AVX-VNNI skip one). */
bool qr_quant_isa_ok(qr_qisa isa);
/* Forces a level (tests, benches): lowered to the highest level at or below it
 * that this CPU runs; returns the level now in use. Not to be called while a
 * matmul runs. */
qr_qisa qr_quant_set_isa(qr_qisa isa);

/* Quantized activations: n_tok rows of K (K % 32 == 0), in one caller-owned
 * buffer of qr_qact_bytes(n_tok, K) bytes (64-byte aligned is best; any
 * alignment works). Fields are views into that buffer; read-only for callers. */
typedef struct {
    int64_t n_tok, K;
    const int8_t *q;  /* [n_tok][K] */
    const float *d;   /* [n_tok][K/32] scale of each 32-block */
    const float *s;   /* [n_tok][K/32] d * (sum of the block's q) (min terms) */
    const uint8_t *pk; /* GEMM layout, n_tok >= QR_QGEMM_MIN_TOK, else NULL:
                        * [ceil(n_tok/16)][K/4][16 tokens][4] of q ^ 0x80
                        * (tokens past n_tok are zero rows) */
    const float *pd, *ps; /* [ceil(n_tok/16)][K/32][16]: d and s, same order */
    const int8_t *pks;    /* pk's layout of q itself (signed, zero past n_tok) for the
                           * AMX GEMM: made where the ISA in use is AMX, else NULL */
} qr_qact;

size_t qr_qact_bytes(int64_t n_tok, int64_t K);
/* Quantizes x (row t at x + t * xs floats) into buf, describing it in *out.
 * tp may be NULL (serial). */
int qr_quantize_act(qr_threadpool *tp, const float *x, size_t xs, int64_t n_tok, int64_t K, void *buf,
                    qr_qact *out);

/* y (row t at y + t * ys floats, columns [0, N)) = x . W^T for pre-quantized
 * activations a (a->K must equal K). tp may be NULL (serial). */
int qr_qmat_mul_q(qr_threadpool *tp, qr_dtype wtype, const void *w, int64_t N, int64_t K, const qr_qact *a,
                  float *y, size_t ys);

/* The same for output rows [n0, n1) only (0 <= n0, n1 <= N: the caller's
 * to keep), serially on the calling thread (for callers that split work in
 * their own parallel_for; split at multiples of 4 rows for speed, any split
 * gives the same bits). Writes y[t * ys + n] for n in [n0, n1); w is still
 * the whole matrix. */
int qr_qmat_rows(qr_dtype wtype, const void *w, int64_t K, const qr_qact *a, int64_t n0, int64_t n1, float *y,
                 size_t ys);

/* One weight of a qr_qmat_mul_parts call: y (row t at y + t * ys floats,
 * columns [0, N)) = x . W^T. */
typedef struct {
    qr_dtype wtype;
    const void *w;
    int64_t N;
    float *y;
    size_t ys;
} qr_qmat_part;

/* Most parts in one qr_qmat_mul_parts call. */
#define QR_QMAT_PARTS_MAX 8

/* Several weights of K columns on the same activations (a layer's q, k and v,
 * or gate and up): x quantized once and, for decode (n_tok below
 * QR_QGEMM_MIN_TOK), one pool dispatch for all parts, the threads' shares cut
 * by weight bytes; the same bits as one qr_qmat_mul per part. */
int qr_qmat_mul_parts(qr_threadpool *tp, const qr_qmat_part *parts, int n_parts, int64_t K, const float *x,
                      size_t xs, int64_t n_tok);

/* Convenience: qr_qmat_mul_parts with one part (x quantized into a buffer
 * malloc'd per call; qr_qmat_mul_q's GEMM for n_tok >= QR_QGEMM_MIN_TOK). */
int qr_qmat_mul(qr_threadpool *tp, qr_dtype wtype, const void *w, int64_t N, int64_t K, const float *x,
                size_t xs, int64_t n_tok, float *y, size_t ys);

#endif
