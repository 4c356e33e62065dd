/* CPU-backend extras beyond runtime/backend.h (tests and benchmarks). */
#ifndef QR_RUNTIME_CPU_H
#define QR_RUNTIME_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/backend.h"

/* Like qr_backend_cpu_create; force_scalar = true skips the AVX2 kernels
 * (to test the portable path on any machine). */
int qr_backend_cpu_create_ex(int n_threads, bool force_scalar, qr_backend **out);
/* "avx2" or "scalar" for a CPU backend; NULL for any other backend. */
const char *qr_backend_cpu_kernels(const qr_backend *be);

/* sgemm from this many x rows on for f16/bf16/int8 weights (f32: 16), which
 * are then widened to f32 into per-thread scratch of QR_CPU_GEMM_SCRATCH_BYTES
 * (`quire estimate` counts it). */
#define QR_CPU_GEMM_MIN_ROWS_NARROW 32
#define QR_CPU_GEMM_SCRATCH_BYTES ((size_t)4 << 20)

/* matmul uses sgemm from `rows` x rows on, streaming GEMV below; 0 restores
 * the default (16 for f32 weights, 32 for f16/bf16/int8). For benchmarks and
 * tuning. */
void qr_backend_cpu_set_gemm_min_rows(qr_backend *be, int64_t rows);

/* matmul on GGUF block weights (kept as stored) through dequantized f32 tiles
 * and sgemm even where the integer kernels are built in (qr_backend_cpu_has_qkern):
 * the reference path, the same values as weights dequantized at load, for
 * tests that compare against those. Default off. */
void qr_backend_cpu_set_block_tiles(qr_backend *be, bool on);
/* True when built with the integer kernels on GGUF blocks (meson -Dqkern=enabled). */
bool qr_backend_cpu_has_qkern(void);

#endif
