/* CPU inner kernels: portable C and AVX2/FMA/F16C versions (see cpu_kernels.h).
 * The AVX2 functions carry a target attribute, so this file builds without
 * -mavx2 and the choice is made at run time with __builtin_cpu_supports. */
#include "runtime/cpu/cpu_kernels.h"

#include <math.h>
#include <string.h>


/* Shared body of attn_row for both kernel sets (DOT/WSUM/SCAL/EXPSUM are the
 * set's own helpers, inlined; PF(p, n) hints that n floats at p are read soon).
 * The g heads share one K/V slice (GQA), so each key block is visited by all
 * of them in turn while it is in L1/L2: a head's rows are a strided slice of
 * the cache, which at long contexts does not stay in cache from one head's
 * whole pass to the next. The first head prefetches the K row 8 keys ahead
 * and the block's V rows. m/l: each head's running max and sum. */
#define DEF_ATTN_ROW(NAME, ATTR, DOT, WSUM, SCAL, EXPSUM, PF)                                         \
    ATTR void NAME(const float *q, const float *k, size_t ks, const float *v, size_t vs, int64_t n_kv, \
                   int hd, int g, float scale, float *out, float *sbuf)                              \
    {                                                                                                \
        float m[QR_ATTN_GMAX], l[QR_ATTN_GMAX];                                                      \
        for (int h = 0; h < g; h++) {                                                                \
            m[h] = -INFINITY;                                                                        \
            l[h] = 0.0f;                                                                             \
            for (int d = 0; d < hd; d++)                                                             \
                out[(size_t)h * (size_t)hd + (size_t)d] = 0.0f;                                      \
        }                                                                                            \
        for (int64_t j0 = 0; j0 < n_kv; j0 += QR_ATTN_KB) {                                          \
            int64_t nb = n_kv - j0 < QR_ATTN_KB ? n_kv - j0 : QR_ATTN_KB;                            \
            for (int h = 0; h < g; h++) {                                                            \
                const float *qh = q + (size_t)h * (size_t)hd;                                        \
                float *oh = out + (size_t)h * (size_t)hd, bm = -INFINITY;                            \
                for (int64_t j = 0; j < nb; j++) {                                                   \
                    if (h == 0 && j0 + j + 8 < n_kv)                                                 \
                        PF(k + (size_t)(j0 + j + 8) * ks, hd);                                       \
                    if (h == 0)                                                                      \
                        PF(v + (size_t)(j0 + j) * vs, hd);                                           \
                    float s = DOT(qh, k + (size_t)(j0 + j) * ks, hd) * scale;                        \
                    sbuf[j] = s;                                                                     \
                    bm = s > bm ? s : bm;                                                            \
                }                                                                                    \
                if (bm > m[h]) { /* new running max: rescale what was accumulated */                \
                    if (l[h] > 0.0f) {                                                               \
                        float c = expf(m[h] - bm);                                                   \
                        SCAL(oh, c, hd);                                                             \
                        l[h] *= c;                                                                   \
                    }                                                                                \
                    m[h] = bm;                                                                       \
                }                                                                                    \
                l[h] += EXPSUM(sbuf, m[h], nb);                                                      \
                WSUM(oh, sbuf, v + (size_t)j0 * vs, vs, nb, hd);                                     \
            }                                                                                        \
        }                                                                                            \
        for (int h = 0; h < g; h++)                                                                  \
            if (l[h] > 0.0f)                                                                         \
                SCAL(out + (size_t)h * (size_t)hd, 1.0f / l[h], hd);                                 \
    }

/* ---------------------------------------------------------------- scalar */

static inline float ld1(qr_dtype dt, const void *p, int64_t k)
{
    switch (dt) {
    case QR_F32: return ((const float *)p)[k];
    case QR_F16: return qr_f16_to_f32(((const uint16_t *)p)[k]);
    case QR_BF16: return qr_bf16_to_f32(((const uint16_t *)p)[k]);
    case QR_I8: return (float)((const int8_t *)p)[k];
    default: return 0.0f;
    }
}

static void gemv_scalar(const float *x, size_t xs, int64_t nx, const qr_cpu_wview *w, int64_t j0, int64_t j1,
                        float *y, size_t ys, float *scratch)
{
    for (int64_t j = j0; j < j1; j++) {
        const void *wr = w->data + (size_t)j * w->rb;
        float sc = w->dt == QR_I8 ? w->scale[j] : 1.0f;
        for (int64_t r = 0; r < nx; r++) {
            const float *xr = x + (size_t)r * xs;
            float s = 0.0f;
            for (int64_t k = 0; k < w->cols; k++)
                s += ld1(w->dt, wr, k) * xr[k];
            y[(size_t)r * ys + (size_t)j] = s * sc;
        }
    }
}

static void row_to_f32_scalar(qr_dtype dt, const void *src, float scale, int64_t n, float *dst)
{
    if (dt == QR_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    float sc = dt == QR_I8 ? scale : 1.0f;
    for (int64_t k = 0; k < n; k++)
        dst[k] = ld1(dt, src, k) * sc;
}

static inline float dot_scalar(const float *a, const float *b, int64_t n)
{
    float s = 0.0f;
    for (int64_t k = 0; k < n; k++)
        s += a[k] * b[k];
    return s;
}

/* Hint that n floats at p are read soon: the scalar set issues none. */
static inline void pf_none(const float *p, int n)
{
    (void)p;
    (void)n;
}

/* out[d] += sum_j p[j] * v[j*vs + d] for j < nb, d < hd. */
static inline void wsum_scalar(float *out, const float *p, const float *v, size_t vs, int64_t nb, int hd)
{
    for (int64_t j = 0; j < nb; j++)
        for (int d = 0; d < hd; d++)
            out[d] += p[j] * v[(size_t)j * vs + (size_t)d];
}

static inline void scal_scalar(float *x, float a, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        x[k] *= a;
}

static inline float exp_sub_sum_scalar(float *x, float m, int64_t n)
{
    float s = 0.0f;
    for (int64_t k = 0; k < n; k++) {
        x[k] = expf(x[k] - m);
        s += x[k];
    }
    return s;
}

DEF_ATTN_ROW(attn_row_scalar, static, dot_scalar, wsum_scalar, scal_scalar, exp_sub_sum_scalar, pf_none)

/* x * Phi(x) with Phi through erfc, which stays accurate in relative terms
 * for negative x (1 + erf(x) cancels there). */
static void gelu_scalar(float *x, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        x[k] = 0.5f * x[k] * erfcf(-x[k] * 0.70710678118654752f);
}

static void silu_mul_scalar(float *g, const float *u, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        g[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

static void attn_rows_scalar(const float *q, size_t qs, int nq, const int64_t *n_kv, const float *k, size_t ks,
                             const float *v, size_t vs, int hd, float scale, float *out, size_t os, float *scratch)
{
    for (int r = 0; r < nq; r++)
        attn_row_scalar(q + (size_t)r * qs, k, ks, v, vs, n_kv[r], hd, 1, scale, out + (size_t)r * os, scratch);
}

static const qr_cpu_kernels k_scalar = {"scalar",         gemv_scalar, row_to_f32_scalar, attn_row_scalar,
                                        attn_rows_scalar, gelu_scalar, silu_mul_scalar};

/* ------------------------------------------------------------------ AVX2 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma,f16c")))
#define TGT_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/* 8 weights at element k of a row, widened to f32 (I8: unscaled). */
TGT_INLINE __m256 ld8(qr_dtype dt, const void *p, int64_t k)
{
    switch (dt) {
    case QR_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k)));
    case QR_BF16: { /* bf16 is the top half of an f32 */
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case QR_I8: {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const int8_t *)p + k));
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    }
    default: return _mm256_loadu_ps((const float *)p + k);
    }
}

TGT_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Bytes per weight element. */
TGT_INLINE int esize(qr_dtype dt) { return dt == QR_F32 ? 4 : dt == QR_I8 ? 1 : 2; }

/* NW weight rows (from j) times NX x rows (from x0, stride xs): NW*NX dot
 * products sharing every load. NW, NX, dt are constants after inlining, so the
 * accumulator arrays live in registers. The main loop covers 64 bytes (one
 * cache line) of each weight row per step and prefetches the same line of the
 * next group's rows (pf, NULL for none): hardware prefetchers see each row as
 * a short separate stream, and without help the per-row restarts leave DRAM
 * idle, most of all for the compact int8/bf16 rows. */
TGT_INLINE void gemv_block(qr_dtype dt, int NW, int NX, const float *x0, size_t xs, const qr_cpu_wview *w,
                           int64_t j, const uint8_t *pf, float *y0, size_t ys)
{
    const int64_t n = w->cols;
    const int U = 64 / (8 * esize(dt)); /* 8-wide vectors per cache line of weights */
    const uint8_t *wr[4];
    __m256 acc[4][2];
    for (int a = 0; a < NW; a++) {
        wr[a] = w->data + (size_t)(j + a) * w->rb;
        for (int b = 0; b < NX; b++)
            acc[a][b] = _mm256_setzero_ps();
    }
    int64_t k = 0;
    if (dt == QR_BF16) {
        /* x0 is the pair-split copy (gemv_avx2): per 16 elements, the 8 even
         * ones then the 8 odd ones. One 32-byte load of 16 bf16 gives both
         * halves as f32 with a shift and a mask, no shuffles. */
        const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
        for (; k + 16 <= n; k += 16) {
            if (pf && k % 32 == 0)
                for (int a = 0; a < NW; a++)
                    _mm_prefetch((const char *)pf + (size_t)a * w->rb + (size_t)k * 2, _MM_HINT_T0);
            __m256 xe[2], xo[2];
            for (int b = 0; b < NX; b++) {
                xe[b] = _mm256_loadu_ps(x0 + (size_t)b * xs + k);
                xo[b] = _mm256_loadu_ps(x0 + (size_t)b * xs + k + 8);
            }
            for (int a = 0; a < NW; a++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)wr[a] + k));
                __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
                for (int b = 0; b < NX; b++) {
                    acc[a][b] = _mm256_fmadd_ps(we, xe[b], acc[a][b]);
                    acc[a][b] = _mm256_fmadd_ps(wo, xo[b], acc[a][b]);
                }
            }
        }
    } else {
        for (; k + 8 * U <= n; k += 8 * U) {
            if (pf)
                for (int a = 0; a < NW; a++)
                    _mm_prefetch((const char *)pf + (size_t)a * w->rb + (size_t)k * esize(dt), _MM_HINT_T0);
            for (int u = 0; u < U; u++) {
                __m256 xv[2];
                for (int b = 0; b < NX; b++)
                    xv[b] = _mm256_loadu_ps(x0 + (size_t)b * xs + k + 8 * u);
                for (int a = 0; a < NW; a++) {
                    __m256 wv = ld8(dt, wr[a], k + 8 * u);
                    for (int b = 0; b < NX; b++)
                        acc[a][b] = _mm256_fmadd_ps(wv, xv[b], acc[a][b]);
                }
            }
        }
        for (; k + 8 <= n; k += 8) {
            __m256 xv[2];
            for (int b = 0; b < NX; b++)
                xv[b] = _mm256_loadu_ps(x0 + (size_t)b * xs + k);
            for (int a = 0; a < NW; a++) {
                __m256 wv = ld8(dt, wr[a], k);
                for (int b = 0; b < NX; b++)
                    acc[a][b] = _mm256_fmadd_ps(wv, xv[b], acc[a][b]);
            }
        }
    }
    for (int a = 0; a < NW; a++) {
        float sc = dt == QR_I8 ? w->scale[j + a] : 1.0f;
        for (int b = 0; b < NX; b++) {
            const float *xr = x0 + (size_t)b * xs;
            float s = hsum8(acc[a][b]);
            for (int64_t kk = k; kk < n; kk++)
                s += ld1(dt, wr[a], kk) * xr[kk];
            y0[(size_t)b * ys + (size_t)(j + a)] = s * sc;
        }
    }
}

/* Decode (one x row): one weight row at a time, so that each thread reads a
 * single sequential stream with a software prefetch QR_GEMV_PFD bytes ahead
 * in it (on an AMD Zen 4, gemv_block's four interleaved rows streamed 16-bit
 * weights at ~75% of the DRAM bandwidth, llama.cpp's one row at a time at
 * ~100%); four accumulators hide the fma latency. x as gemv_block takes it
 * (for BF16 the pair-split copy). Returns the dot product, unscaled. */
#ifndef QR_GEMV_PFD
#define QR_GEMV_PFD 2048
#endif
TGT_INLINE float gemv_row(qr_dtype dt, const float *x, const uint8_t *wr, int64_t n)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const int es = esize(dt);
    int64_t k = 0;
    if (dt == QR_BF16) { /* per 16: the even elements, then the odd ones (gemv_block) */
        const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
        for (; k + 16 <= n; k += 16) {
            if (k % 32 == 0)
                _mm_prefetch((const char *)wr + (size_t)k * 2 + QR_GEMV_PFD, _MM_HINT_T0);
            int h = (int)(k / 16 % 2) * 2;
            __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)wr + k));
            acc[h] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_loadu_ps(x + k), acc[h]);
            acc[h + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, hi)), _mm256_loadu_ps(x + k + 8),
                                         acc[h + 1]);
        }
    } else {
        for (; k + 32 <= n; k += 32) { /* 32 elements: 32 to 128 bytes */
            for (int l = 0; l < 32 * es; l += 64)
                _mm_prefetch((const char *)wr + (size_t)k * (size_t)es + QR_GEMV_PFD + l, _MM_HINT_T0);
            for (int u = 0; u < 4; u++)
                acc[u] = _mm256_fmadd_ps(ld8(dt, wr, k + 8 * u), _mm256_loadu_ps(x + k + 8 * u), acc[u]);
        }
        for (; k + 8 <= n; k += 8)
            acc[0] = _mm256_fmadd_ps(ld8(dt, wr, k), _mm256_loadu_ps(x + k), acc[0]);
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; k < n; k++)
        s += ld1(dt, wr, k) * x[k];
    return s;
}

TGT_INLINE void gemv_tpl(qr_dtype dt, const float *x, size_t xs, int64_t nx, const qr_cpu_wview *w, int64_t j0,
                         int64_t j1, float *y, size_t ys)
{
    if (nx == 1) {
        for (int64_t j = j0; j < j1; j++)
            y[j] = gemv_row(dt, x, w->data + (size_t)j * w->rb, w->cols) * (dt == QR_I8 ? w->scale[j] : 1.0f);
        return;
    }
    int64_t j = j0;
    /* Groups of 4 weight rows stay in L1/L2 while every x row passes over them. */
    for (; j + 4 <= j1; j += 4) {
        const uint8_t *pf = j + 8 <= j1 ? w->data + (size_t)(j + 4) * w->rb : NULL;
        int64_t r = 0;
        for (; r + 2 <= nx; r += 2, pf = NULL)
            gemv_block(dt, 4, 2, x + (size_t)r * xs, xs, w, j, pf, y + (size_t)r * ys, ys);
        if (r < nx)
            gemv_block(dt, 4, 1, x + (size_t)r * xs, xs, w, j, pf, y + (size_t)r * ys, ys);
    }
    for (; j < j1; j++) {
        int64_t r = 0;
        for (; r + 2 <= nx; r += 2)
            gemv_block(dt, 1, 2, x + (size_t)r * xs, xs, w, j, NULL, y + (size_t)r * ys, ys);
        if (r < nx)
            gemv_block(dt, 1, 1, x + (size_t)r * xs, xs, w, j, NULL, y + (size_t)r * ys, ys);
    }
}

TGT static void gemv_avx2(const float *x, size_t xs, int64_t nx, const qr_cpu_wview *w, int64_t j0, int64_t j1,
                          float *y, size_t ys, float *scratch)
{
    switch (w->dt) {
    case QR_F32: gemv_tpl(QR_F32, x, xs, nx, w, j0, j1, y, ys); break;
    case QR_F16: gemv_tpl(QR_F16, x, xs, nx, w, j0, j1, y, ys); break;
    case QR_BF16: { /* split x into even/odd halves per 16 (see gemv_block); tail as is */
        int64_t n = w->cols, n16 = n / 16 * 16;
        for (int64_t r = 0; r < nx; r++) {
            const float *s = x + (size_t)r * xs;
            float *d = scratch + (size_t)r * (size_t)n;
            for (int64_t k = 0; k < n16; k += 16)
                for (int i = 0; i < 8; i++) {
                    d[k + i] = s[k + 2 * i];
                    d[k + 8 + i] = s[k + 2 * i + 1];
                }
            for (int64_t k = n16; k < n; k++)
                d[k] = s[k];
        }
        gemv_tpl(QR_BF16, scratch, (size_t)n, nx, w, j0, j1, y, ys);
        break;
    }
    case QR_I8: gemv_tpl(QR_I8, x, xs, nx, w, j0, j1, y, ys); break;
    default: break;
    }
}

TGT_INLINE void row_tpl(qr_dtype dt, const void *src, float scale, int64_t n, float *dst)
{
    __m256 sv = _mm256_set1_ps(scale);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = ld8(dt, src, k);
        if (dt == QR_I8)
            v = _mm256_mul_ps(v, sv);
        _mm256_storeu_ps(dst + k, v);
    }
    for (; k < n; k++)
        dst[k] = ld1(dt, src, k) * (dt == QR_I8 ? scale : 1.0f);
}

TGT static void row_to_f32_avx2(qr_dtype dt, const void *src, float scale, int64_t n, float *dst)
{
    switch (dt) {
    case QR_F16: row_tpl(QR_F16, src, scale, n, dst); break;
    case QR_BF16: row_tpl(QR_BF16, src, scale, n, dst); break;
    case QR_I8: row_tpl(QR_I8, src, scale, n, dst); break;
    default: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    }
}

TGT_INLINE float dot_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
    }
    for (; k + 8 <= n; k += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; k < n; k++)
        s += a[k] * b[k];
    return s;
}

TGT_INLINE void pf_avx2(const float *p, int n)
{
    for (int i = 0; i < n; i += 16) /* one line per 16 floats */
        _mm_prefetch((const char *)(p + i), _MM_HINT_T0);
}

/* out[d] += sum_j p[j] * v[j*vs + d] for j < nb, d < hd: 32 columns of out
 * held in registers across all nb rows (an axpy per row would store and
 * reload out for every key). */
TGT_INLINE void wsum_avx2(float *out, const float *p, const float *v, size_t vs, int64_t nb, int hd)
{
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m256 a0 = _mm256_loadu_ps(out + d), a1 = _mm256_loadu_ps(out + d + 8);
        __m256 a2 = _mm256_loadu_ps(out + d + 16), a3 = _mm256_loadu_ps(out + d + 24);
        for (int64_t j = 0; j < nb; j++) {
            const float *vr = v + (size_t)j * vs + d;
            __m256 pj = _mm256_broadcast_ss(p + j);
            a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 8), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 16), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 24), a3);
        }
        _mm256_storeu_ps(out + d, a0);
        _mm256_storeu_ps(out + d + 8, a1);
        _mm256_storeu_ps(out + d + 16, a2);
        _mm256_storeu_ps(out + d + 24, a3);
    }
    for (; d + 8 <= hd; d += 8) {
        __m256 a0 = _mm256_loadu_ps(out + d);
        for (int64_t j = 0; j < nb; j++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(v + (size_t)j * vs + d), a0);
        _mm256_storeu_ps(out + d, a0);
    }
    for (; d < hd; d++) {
        float a = out[d];
        for (int64_t j = 0; j < nb; j++)
            a += p[j] * v[(size_t)j * vs + (size_t)d];
        out[d] = a;
    }
}

TGT_INLINE void scal_avx2(float *x, float a, int64_t n)
{
    __m256 av = _mm256_set1_ps(a);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(x + k, _mm256_mul_ps(av, _mm256_loadu_ps(x + k)));
    for (; k < n; k++)
        x[k] *= a;
}

/* exp(x) for x <= ~88: x = n*ln2 + r with |r| <= ln2/2, exp(r) by its degree-7
 * Taylor polynomial (relative error < 2e-8 on that range, below f32 rounding),
 * times 2^n built in the exponent field. Inputs below -87 flush to 0. */
TGT_INLINE __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 split in two so r keeps full precision */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, v);
}

TGT_INLINE float exp_sub_sum_avx2(float *x, float m, int64_t n)
{
    __m256 mv = _mm256_set1_ps(m), s = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k), mv));
        _mm256_storeu_ps(x + k, v);
        s = _mm256_add_ps(s, v);
    }
    if (k < n) { /* tail through the same approximation, padded with -inf-like values */
        float buf[8];
        int64_t t = n - k;
        for (int i = 0; i < 8; i++)
            buf[i] = i < t ? x[k + i] - m : -1000.0f;
        __m256 v = exp8(_mm256_loadu_ps(buf));
        _mm256_storeu_ps(buf, v);
        for (int64_t i = 0; i < t; i++)
            x[k + i] = buf[i];
        s = _mm256_add_ps(s, v);
    }
    return hsum8(s);
}

DEF_ATTN_ROW(attn_row_avx2, TGT static, dot_avx2, wsum_avx2, scal_avx2, exp_sub_sum_avx2, pf_avx2)

/* erfc(z) for z >= 0 with fractional error below ~2e-7 everywhere: the
 * Chebyshev-fitted form t * exp(-z^2 + P(t)), t = 1 / (1 + z/2) (Numerical
 * Recipes' erfcc coefficients). Keeping erfc (not erf) accurate in relative
 * terms keeps GELU accurate for negative inputs, where x * Phi(x) is tiny. */
TGT_INLINE __m256 erfc8(__m256 z)
{
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.0f)));
    static const float c[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                                0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
    __m256 p = _mm256_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--)
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[i]));
    __m256 e = _mm256_fnmadd_ps(z, z, p); /* -z^2 + P(t) */
    return _mm256_mul_ps(t, exp8(e));
}

TGT static void gelu_avx2(float *x, int64_t n)
{
    const __m256 half = _mm256_set1_ps(0.5f), rs2 = _mm256_set1_ps(0.70710678118654752f);
    const __m256 two = _mm256_set1_ps(2.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        __m256 z = _mm256_andnot_ps(sign, _mm256_mul_ps(v, rs2)); /* |x| / sqrt 2 */
        __m256 ec = erfc8(z);
        /* Phi(x) = erfc(-x/sqrt2)/2: x < 0 -> erfc(z)/2, x >= 0 -> (2 - erfc(z))/2 */
        __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
        __m256 phi2 = _mm256_blendv_ps(_mm256_sub_ps(two, ec), ec, neg);
        _mm256_storeu_ps(x + k, _mm256_mul_ps(_mm256_mul_ps(half, v), phi2));
    }
    gelu_scalar(x + k, n - k);
}

TGT static void silu_mul_avx2(float *g, const float *u, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(g + k);
        __m256 d = _mm256_add_ps(one, exp8(_mm256_xor_ps(v, sign))); /* 1 + exp(-g) */
        _mm256_storeu_ps(g + k, _mm256_mul_ps(_mm256_div_ps(v, d), _mm256_loadu_ps(u + k)));
    }
    for (; k < n; k++)
        g[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

TGT_INLINE float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Blocked attention over several query rows (see cpu_kernels.h). Per key
 * block of 64: K^T (hd, 64) in scratch, then for each row the 64 scores as 8
 * vector accumulators over d (broadcast q[d] x row d of K^T: no horizontal
 * sums), masked past the row's n_kv, an online-softmax update, and P.V with
 * the output held in registers 32 columns at a time. */
TGT static void attn_rows_avx2(const float *q, size_t qs, int nq, const int64_t *n_kv, const float *k, size_t ks,
                               const float *v, size_t vs, int hd, float scale, float *out, size_t os,
                               float *scratch)
{
    enum { KB = QR_ATTN_KB, NV = QR_ATTN_KB / 8 };
    float *kt = scratch, *p = scratch + (size_t)hd * KB; /* (hd, KB), KB */
    float m[64], l[64]; /* running max and sum per row; nq <= 64 */
    for (int r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int d = 0; d < hd; d++)
            out[(size_t)r * os + (size_t)d] = 0.0f;
    }
    int64_t nmax = nq > 0 ? n_kv[nq - 1] : 0;
    const __m256 sv = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < nmax; j0 += KB) {
        int nb = (int)(nmax - j0 < KB ? nmax - j0 : KB);
        for (int j = 0; j < nb; j++) {
            const float *kr = k + (size_t)(j0 + j) * ks;
            for (int d = 0; d < hd; d++)
                kt[(size_t)d * KB + (size_t)j] = kr[d];
        }
        for (int j = nb; j < KB; j++)
            for (int d = 0; d < hd; d++)
                kt[(size_t)d * KB + (size_t)j] = 0.0f;
        for (int r = 0; r < nq; r++) {
            if (n_kv[r] <= j0)
                continue;
            int nvis = (int)(n_kv[r] - j0 < nb ? n_kv[r] - j0 : nb);
            const float *qr = q + (size_t)r * qs;
            __m256 s[NV];
            for (int u = 0; u < NV; u++)
                s[u] = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++) {
                __m256 qd = _mm256_broadcast_ss(qr + d);
                const float *kd = kt + (size_t)d * KB;
                for (int u = 0; u < NV; u++)
                    s[u] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kd + 8 * u), s[u]);
            }
            __m256 bm = ninf;
            for (int u = 0; u < NV; u++) {
                /* lanes at or past nvis are masked out */
                __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(8 * u), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nvis), idx));
                s[u] = _mm256_blendv_ps(ninf, _mm256_mul_ps(s[u], sv), keep);
                bm = _mm256_max_ps(bm, s[u]);
            }
            float bmax = hmax8(bm);
            float *o = out + (size_t)r * os;
            if (bmax > m[r]) {
                if (l[r] > 0.0f) {
                    float cf = expf(m[r] - bmax);
                    scal_avx2(o, cf, hd);
                    l[r] *= cf;
                }
                m[r] = bmax;
            }
            __m256 mv = _mm256_set1_ps(m[r]), sum = _mm256_setzero_ps();
            for (int u = 0; u < NV; u++) {
                __m256 e = exp8(_mm256_sub_ps(s[u], mv));
                _mm256_storeu_ps(p + 8 * u, e);
                sum = _mm256_add_ps(sum, e);
            }
            l[r] += hsum8(sum);
            wsum_avx2(o, p, v + (size_t)j0 * vs, vs, nvis, hd);
        }
    }
    for (int r = 0; r < nq; r++)
        if (l[r] > 0.0f)
            scal_avx2(out + (size_t)r * os, 1.0f / l[r], hd);
}

static const qr_cpu_kernels k_avx2 = {"avx2",         gemv_avx2, row_to_f32_avx2, attn_row_avx2,
                                      attn_rows_avx2, gelu_avx2, silu_mul_avx2};
#endif

const qr_cpu_kernels *qr_cpu_kernels_get(bool force_scalar)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!force_scalar && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return &k_avx2;
#endif
    return &k_scalar;
}
