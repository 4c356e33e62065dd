/* Inner kernels of the CPU backend, chosen once at backend creation: AVX2 +
 * FMA + F16C versions when the CPU has them (run-time check, so the build does
 * not need -march=native), portable scalar C otherwise. Private to runtime/cpu. */
#ifndef QR_RUNTIME_CPU_KERNELS_H
#define QR_RUNTIME_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"

/* A weight matrix as the kernels see it: (rows, cols) of dtype at data with
 * row stride rb bytes; scale is per-row (QR_I8 only). */
typedef struct {
    const uint8_t *data;
    const float *scale;
    qr_dtype dt;
    int64_t cols;
    size_t rb;
} qr_cpu_wview;

#define QR_ATTN_KB 64
/* most query heads attn_row takes at once */
#define QR_ATTN_GMAX 16
/* floats of scratch attn_rows needs for head size hd */
#define QR_ATTN_SCRATCH(hd) ((size_t)(hd) * QR_ATTN_KB + 2 * QR_ATTN_KB)

typedef struct qr_cpu_kernels {
    const char *name; /* "avx2" or "scalar" */
    /* y[r*ys + j] = dot(x[r*xs ..], W row j) for r < nx, j in [j0, j1).
     * W is read once: each group of W rows is applied to every x row.
     * scratch: nx * w->cols floats the kernel may use (private to the call). */
    void (*gemv)(const float *x, size_t xs, int64_t nx, const qr_cpu_wview *w, int64_t j0, int64_t j1,
                 float *y, size_t ys, float *scratch);
    /* dst[i] = scale * src[i] (scale used for QR_I8 only) for a row of dt. */
    void (*row_to_f32)(qr_dtype dt, const void *src, float scale, int64_t n, float *dst);
    /* One query row of g <= QR_ATTN_GMAX heads sharing one K/V slice (GQA):
     * for head h (q at q + h*hd, output at out + h*hd),
     * out_h(hd) = softmax(scale * q_h.k_j) . v_j over keys j < n_kv (k row j
     * at k + j*ks, v row j at v + j*vs), computed in blocks of QR_ATTN_KB
     * keys with an online (running max) softmax, every head visiting a block
     * before the next is read. sbuf: QR_ATTN_KB floats of scratch. n_kv = 0
     * gives zeros. */
    void (*attn_row)(const float *q, const float *k, size_t ks, const float *v, size_t vs, int64_t n_kv, int hd,
                     int g, float scale, float *out, float *sbuf);
    /* attn_row for nq query rows at once (q row r at q + r*qs, output at
     * out + r*os, row r sees keys j < n_kv[r]; the n_kv are non-decreasing).
     * Each key block is transposed once and scored against every row, so K is
     * turned into plain FMAs (prefill, encoder). scratch: QR_ATTN_SCRATCH(hd)
     * floats. */
    void (*attn_rows)(const float *q, size_t qs, int nq, const int64_t *n_kv, const float *k, size_t ks,
                      const float *v, size_t vs, int hd, float scale, float *out, size_t os, float *scratch);
    /* x = x * Phi(x) (exact GELU, erf form), in place. */
    void (*gelu)(float *x, int64_t n);
    /* g = silu(g) * u, in place. */
    void (*silu_mul)(float *g, const float *u, int64_t n);
} qr_cpu_kernels;

/* The best kernel set this CPU supports; force_scalar picks the portable one. */
const qr_cpu_kernels *qr_cpu_kernels_get(bool force_scalar);

#endif
