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

/* Tensors of at least this many bytes are placed on 2 MiB boundaries and
 * advised onto transparent huge pages. */
#define QR_CPU_HUGE_MIN ((size_t)2 << 20)

/* Whether weight_load copies a weight of `bytes` bytes that it could read in
 * place from the file's mapping (same type, may_alias) into its own memory:
 * from QR_CPU_HUGE_MIN bytes on, where the kernel has transparent huge pages
 * (/sys/kernel/mm/transparent_hugepage/enabled not [never]). The page cache
 * holds a file in 4 KiB pages; decode, which streams every weight once per
 * token, read them ~10-25% slower there than from huge pages (AMD EPYC Zen 4
 * VM, 2 threads: a Qwen2.5-0.5B-shape F16 file 32-35 -> 37-43 tokens/s, Q8_0
 * 64 -> 71-75, Q4_K_M 85-89 -> 104-113). The copy's file pages are dropped
 * after it (runtime/models/model.c), so the process holds the weights once. */
bool qr_cpu_copies_weights(size_t bytes);

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
