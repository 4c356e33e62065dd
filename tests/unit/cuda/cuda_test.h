/* Helpers shared by the CUDA kernel tests: GPU detection (exit 77 = meson
 * SKIP without one), fresh random inputs, poisoned outputs and the
 * normalised error ||gpu - cpu|| / ||cpu|| against the CPU backend. */
#ifndef QR_TEST_CUDA_TEST_H
#define QR_TEST_CUDA_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

/* xorshift64*: seeded from the clock so every run draws fresh inputs; the
 * seed is printed so a failing draw can be repeated (QUIRE_TEST_SEED). */
static uint64_t ct_rng_state;

static inline void ct_seed(void)
{
    const char *s = getenv("QUIRE_TEST_SEED");
    ct_rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    if (!ct_rng_state)
        ct_rng_state = 1;
    printf("seed %llu (QUIRE_TEST_SEED to repeat)\n", (unsigned long long)ct_rng_state);
}

static inline uint64_t ct_next(void)
{
    ct_rng_state ^= ct_rng_state >> 12;
    ct_rng_state ^= ct_rng_state << 25;
    ct_rng_state ^= ct_rng_state >> 27;
    return ct_rng_state * 0x2545F4914F6CDD1Dull;
}

/* uniform in [-1, 1) */
static inline float ct_unif(void) { return (float)((double)(ct_next() >> 11) * 0x1.0p-53 * 2.0 - 1.0); }

static inline float *ct_rand(size_t n, float amp)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = ct_unif() * amp;
    return p;
}

/* Returns the CUDA backend on device 0, or exits 77 (SKIP) when there is no GPU. */
static inline qr_backend *ct_gpu_or_skip(void)
{
    qr_gpu_info info[16];
    int n = 0;
    if (qr_cuda_devices(info, 16, &n) || n == 0) {
        printf("SKIP: no CUDA device (%s)\n", qr_cuda_why_none());
        exit(77);
    }
    printf("GPU 0: %s (cc %d.%d)\n", info[0].name, info[0].cc_major, info[0].cc_minor);
    qr_backend *be = NULL;
    int rc = qr_backend_cuda_create(0, &be);
    if (rc) {
        fprintf(stderr, "qr_backend_cuda_create: %s: %s\n", qr_strerror(rc), qr_last_error());
        exit(1);
    }
    return be;
}

/* Tensor (rows, cols) of type dt on be holding host f32 data (converted by upload). */
static inline int ct_put(qr_backend *be, qr_dtype dt, int64_t rows, int64_t cols, const float *host, qr_tensor *t)
{
    int rc = qr_be_tensor_alloc(be, dt, rows, cols, t);
    if (!rc && rows > 0)
        rc = be->ops->upload(be, t, 0, host, rows);
    if (rc)
        qr_be_tensor_free(be, t);
    return rc;
}

/* Fills t with NaN so any element an op fails to write shows up. */
static inline int ct_poison(qr_backend *be, qr_tensor *t)
{
    size_t n = (size_t)t->rows * (size_t)t->cols;
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    int rc = t->rows ? be->ops->upload(be, t, 0, p, t->rows) : 0;
    free(p);
    return rc;
}

static inline float *ct_get(qr_backend *be, const qr_tensor *t)
{
    size_t n = (size_t)t->rows * (size_t)t->cols;
    float *p = malloc((n ? n : 1) * sizeof *p);
    int rc = t->rows ? be->ops->download(be, t, 0, p, t->rows) : 0;
    if (!rc)
        rc = qr_be_sync(be);
    if (rc) {
        fprintf(stderr, "download: %s: %s\n", qr_strerror(rc), qr_last_error());
        free(p);
        return NULL;
    }
    return p;
}

/* ||a - b|| / ||b|| over n values; +inf if any a is not finite. */
static inline double ct_nerr(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Bound on the normalised error for outputs of activation type act computed
 * from operands rounded to op (the narrower of the two decides). */
static inline double ct_bound(qr_dtype op, qr_dtype act)
{
    if (op == QR_BF16 || act == QR_BF16)
        return 1e-2; /* 8-bit mantissa: ~2e-3 per rounding */
    if (op == QR_F16)
        return 2e-3;
    return 2e-5;     /* f32 arithmetic, different summation order */
}

#endif
