/* Every op of the CPU backend against naive double-precision references
 * written here, on seeded random inputs of awkward sizes, for both kernel
 * sets (AVX2 when the CPU has it, and the portable scalar one) and for 1 and
 * 3 threads. Outputs are poisoned with NaN first and checked to be fully
 * overwritten; rows an op must not touch are checked to be untouched.
 *
 * Error bounds are stated per element against sum_k |x_k * w_k| (the natural
 * scale of a dot product's rounding error), so they hold whatever the
 * cancellation in a particular output. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu.h"
#include "runtime/dtype.h"
#include "tests/unit/test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}

static float *rand_vec(size_t n, double amp)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(urand() * amp);
    return v;
}

static qr_backend *be;

static qr_tensor f32_tensor(int64_t rows, int64_t cols, const float *src)
{
    qr_tensor t;
    CHECK_OK(be->ops->tensor_alloc(be, QR_F32, rows, cols, &t));
    if (src)
        CHECK_OK(be->ops->upload(be, &t, 0, src, rows));
    return t;
}

static void poison(qr_tensor *t)
{
    for (int64_t i = 0; i < t->rows; i++) {
        float *r = (float *)((char *)t->data + (size_t)i * t->row_bytes);
        for (int64_t j = 0; j < t->cols; j++)
            r[j] = NAN;
    }
}

static float at(const qr_tensor *t, int64_t i, int64_t j)
{
    return ((const float *)((const char *)t->data + (size_t)i * t->row_bytes))[j];
}

/* Value of stored weight element (i, j), dequantized exactly. */
static double wval(const qr_tensor *w, int64_t i, int64_t j)
{
    const char *r = (const char *)w->data + (size_t)i * w->row_bytes;
    switch (w->dtype) {
    case QR_F32: return ((const float *)r)[j];
    case QR_F16: return qr_f16_to_f32(((const uint16_t *)r)[j]);
    case QR_BF16: return qr_bf16_to_f32(((const uint16_t *)r)[j]);
    case QR_I8: return (double)((const int8_t *)r)[j] * w->scale[i];
    default: return NAN;
    }
}

static qr_dtype wdts[] = {QR_F32, QR_F16, QR_BF16, QR_I8};

/* ----------------------------------------------------------------- memory */

static void test_memory(void)
{
    float *v = rand_vec(7 * 13, 3.0);
    qr_dtype dts[] = {QR_F32, QR_F16, QR_BF16};
    for (int d = 0; d < 3; d++) {
        qr_tensor t;
        CHECK_OK(be->ops->tensor_alloc(be, dts[d], 7, 13, &t));
        CHECK(t.owned && t.rows == 7 && t.cols == 13 && t.dtype == dts[d]);
        CHECK_OK(be->ops->upload(be, &t, 2, v, 5)); /* rows 2..6 */
        float back[5 * 13];
        CHECK_OK(be->ops->download(be, &t, 2, back, 5));
        int bad = 0;
        for (int i = 0; i < 5 * 13; i++) {
            float want = dts[d] == QR_F32 ? v[i]
                         : dts[d] == QR_F16 ? qr_f16_to_f32(qr_f32_to_f16(v[i]))
                                            : qr_bf16_to_f32(qr_f32_to_bf16(v[i]));
            bad += back[i] != want;
        }
        CHECK_INT(bad, 0);
        CHECK_INT(be->ops->upload(be, &t, 3, v, 5), QR_EINVAL); /* past the end */
        CHECK(qr_last_error()[0] != 0);
        CHECK_INT(be->ops->download(be, &t, -1, back, 1), QR_EINVAL);
        be->ops->tensor_free(be, &t);
        CHECK(t.data == NULL);
    }
    qr_tensor t;
    CHECK_INT(be->ops->tensor_alloc(be, QR_Q4_K, 2, 256, &t), QR_EINVAL);
    CHECK_INT(be->ops->tensor_alloc(be, QR_F32, -1, 2, &t), QR_EINVAL);
    CHECK_OK(be->ops->tensor_alloc(be, QR_I32, 3, 2, &t));
    int32_t *iv = t.data;
    for (int i = 0; i < 6; i++)
        iv[i] = i - 3;
    float back[6];
    CHECK_OK(be->ops->download(be, &t, 0, back, 3));
    CHECK(back[0] == -3.0f && back[5] == 2.0f);
    CHECK_INT(be->ops->upload(be, &t, 0, back, 1), QR_EINVAL); /* no f32 -> i32 upload */
    be->ops->tensor_free(be, &t);
    be->ops->tensor_free(be, NULL);
    CHECK_OK(be->ops->sync(be));
    free(v);
}

/* ------------------------------------------------------------ weight_load */

static void test_weight_load(void)
{
    int64_t rows = 19, cols = 45;
    float *w = rand_vec((size_t)(rows * cols), 2.0);
    w[5] = 0.0f;
    for (int64_t j = 0; j < cols; j++) /* an all-zero row: scale 0 */
        w[3 * cols + j] = 0.0f;
    w[4 * cols + 7] = 10.0f; /* an outlier row */
    /* ties for round-half-away: row 6 has max 127 so w/scale = w exactly */
    w[6 * cols + 0] = 127.0f;
    w[6 * cols + 1] = 2.5f;
    w[6 * cols + 2] = -2.5f;
    w[6 * cols + 3] = 0.5f;
    qr_tensor t;
    /* alias: same type, may_alias */
    CHECK_OK(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_F32, true, &t));
    CHECK(t.data == (void *)w && !t.owned && t.row_bytes == (size_t)cols * 4);
    be->ops->tensor_free(be, &t); /* must not free w */
    /* a big same-type weight: copied onto huge pages where the kernel has them,
     * else aliased (qr_cpu_copies_weights, read from /sys here as there) */
    CHECK(!qr_cpu_copies_weights(QR_CPU_HUGE_MIN - 1));
    {
        const int64_t br = 1024, bc = 1536; /* 3 MiB of f16 */
        size_t bb = (size_t)(br * bc) * 2;
        uint16_t *big = malloc(bb);
        for (size_t i = 0; i < bb / 2; i++)
            big[i] = (uint16_t)(i * 2654435761u >> 17);
        FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        char mode[128] = "";
        if (f && !fgets(mode, sizeof mode, f))
            mode[0] = '\0';
        if (f)
            fclose(f);
        bool thp = mode[0] && !strstr(mode, "[never]");
        CHECK(qr_cpu_copies_weights(bb) == thp);
        CHECK_OK(be->ops->weight_load(be, big, QR_F16, br, bc, QR_F16, true, &t));
        CHECK(t.owned == thp && (t.data == (void *)big) == !thp && memcmp(t.data, big, bb) == 0);
        CHECK(!thp || (uintptr_t)t.data % QR_CPU_HUGE_MIN == 0);
        be->ops->tensor_free(be, &t);
        free(big);
    }
    /* copy */
    CHECK_OK(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_F32, false, &t));
    CHECK(t.data != (void *)w && t.owned && memcmp(t.data, w, (size_t)(rows * cols) * 4) == 0);
    be->ops->tensor_free(be, &t);
    /* narrowing conversions agree with runtime/dtype.h element by element */
    int bad = 0;
    CHECK_OK(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_BF16, true, &t));
    for (int64_t i = 0; i < rows * cols; i++)
        bad += ((uint16_t *)t.data)[i] != qr_f32_to_bf16(w[i]);
    be->ops->tensor_free(be, &t);
    CHECK_OK(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_F16, false, &t));
    for (int64_t i = 0; i < rows * cols; i++)
        bad += ((uint16_t *)t.data)[i] != qr_f32_to_f16(w[i]);
    CHECK_INT(bad, 0);
    /* f16 source -> f32 exact widening, and -> f16 copy */
    uint16_t *h = malloc((size_t)(rows * cols) * 2);
    memcpy(h, t.data, (size_t)(rows * cols) * 2);
    be->ops->tensor_free(be, &t);
    CHECK_OK(be->ops->weight_load(be, h, QR_F16, rows, cols, QR_F32, false, &t));
    for (int64_t i = 0; i < rows * cols; i++)
        bad += ((float *)t.data)[i] != qr_f16_to_f32(h[i]);
    be->ops->tensor_free(be, &t);
    CHECK_OK(be->ops->weight_load(be, h, QR_F16, rows, cols, QR_F16, false, &t));
    bad += memcmp(t.data, h, (size_t)(rows * cols) * 2) != 0;
    CHECK(t.owned);
    be->ops->tensor_free(be, &t);
    CHECK_INT(bad, 0);
    /* int8: scale = max|w| / 127, q = round-half-away(w / scale), from f32 and from bf16 */
    for (int src = 0; src < 2; src++) {
        uint16_t *b16 = malloc((size_t)(rows * cols) * 2);
        for (int64_t i = 0; i < rows * cols; i++)
            b16[i] = qr_f32_to_bf16(w[i]);
        if (src == 0)
            CHECK_OK(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_I8, true, &t));
        else
            CHECK_OK(be->ops->weight_load(be, b16, QR_BF16, rows, cols, QR_I8, true, &t));
        CHECK(t.dtype == QR_I8 && t.scale && t.owned);
        bad = 0;
        for (int64_t i = 0; i < rows; i++) {
            float amax = 0.0f;
            for (int64_t j = 0; j < cols; j++) {
                float v = src ? qr_bf16_to_f32(b16[i * cols + j]) : w[i * cols + j];
                amax = fabsf(v) > amax ? fabsf(v) : amax;
            }
            float sc = amax / 127.0f;
            bad += t.scale[i] != sc;
            for (int64_t j = 0; j < cols; j++) {
                float v = src ? qr_bf16_to_f32(b16[i * cols + j]) : w[i * cols + j];
                double qd = sc > 0 ? (double)(v / sc) : 0.0;
                long q = lround(qd); /* half away from zero */
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                bad += ((int8_t *)t.data)[i * cols + j] != (int8_t)q;
            }
        }
        CHECK_INT(bad, 0);
        const int8_t *r6 = (const int8_t *)t.data + 6 * cols;
        CHECK(r6[0] == 127 && r6[1] == 3 && r6[2] == -3 && r6[3] == 1 && t.scale[3] == 0.0f);
        /* download dequantizes */
        float back[45];
        CHECK_OK(be->ops->download(be, &t, 4, back, 1));
        CHECK_NEAR(back[7], 10.0, 1e-6);
        be->ops->tensor_free(be, &t);
        free(b16);
    }
    free(h);
    /* a misaligned f32 source is copied, not aliased */
    float *mis = malloc((size_t)(rows * cols + 1) * 4);
    memcpy((char *)mis + 2, w, (size_t)(rows * cols) * 4);
    CHECK_OK(be->ops->weight_load(be, (char *)mis + 2, QR_F32, rows, cols, QR_F32, true, &t));
    CHECK(t.owned && (uintptr_t)t.data % 4 == 0 && memcmp(t.data, w, (size_t)(rows * cols) * 4) == 0);
    be->ops->tensor_free(be, &t);
    free(mis);
    /* GGUF Q8_0 (blocks of 32: f16 scale d, then 32 int8 q; value d * q),
     * built by hand: 3 rows of 64 columns */
    {
        uint8_t blocks[3][2][34];
        float ref[3][64];
        for (int r = 0; r < 3; r++)
            for (int b = 0; b < 2; b++) {
                float d = 0.01f * (float)(r * 2 + b + 1);
                uint16_t dh = qr_f32_to_f16(d);
                memcpy(blocks[r][b], &dh, 2);
                for (int i = 0; i < 32; i++) {
                    int8_t q = (int8_t)((i * 7 + r * 13 + b * 5) % 255 - 127);
                    blocks[r][b][2 + i] = (uint8_t)q;
                    ref[r][b * 32 + i] = qr_f16_to_f32(dh) * (float)q;
                }
            }
        CHECK_OK(be->ops->weight_load(be, blocks, QR_Q8_0, 3, 64, QR_F32, true, &t));
        bad = 0;
        for (int r = 0; r < 3; r++)
            for (int i = 0; i < 64; i++)
                bad += ((float *)t.data)[r * 64 + i] != ref[r][i];
        CHECK_INT(bad, 0);
        CHECK(t.owned);
        be->ops->tensor_free(be, &t);
        CHECK_OK(be->ops->weight_load(be, blocks, QR_Q8_0, 3, 64, QR_I8, false, &t));
        float back[64];
        CHECK_OK(be->ops->download(be, &t, 2, back, 1));
        double e = 0, amax = 0;
        for (int i = 0; i < 64; i++) {
            e = fmax(e, fabs(back[i] - ref[2][i]));
            amax = fmax(amax, fabs(ref[2][i]));
        }
        CHECK_MSG(e <= amax / 127 / 2 * 1.0001, "q8_0 -> int8 err %.3g", e);
        be->ops->tensor_free(be, &t);
    }
    /* errors */
    CHECK_INT(be->ops->weight_load(be, w, QR_F32, rows, cols, QR_I32, false, &t), QR_EINVAL);
    CHECK_INT(be->ops->weight_load(be, w, QR_I32, rows, cols, QR_F32, false, &t), QR_EINVAL);
    CHECK_INT(be->ops->weight_load(be, w, QR_Q8_0, 2, 33, QR_F32, false, &t), QR_EINVAL); /* not whole blocks */
    CHECK_INT(be->ops->weight_load(be, w, QR_F32, -2, cols, QR_F32, false, &t), QR_EINVAL);
    free(w);
}

/* ----------------------------------------------------------------- embed */

static void test_embed(void)
{
    int64_t vocab = 37, d = 21;
    float *tab = rand_vec((size_t)(vocab * d), 1.5);
    int32_t ids[] = {0, 36, 5, 5, 17, 2, 36};
    int64_t n = 7;
    for (int k = 0; k < 4; k++) {
        qr_tensor t, out;
        CHECK_OK(be->ops->weight_load(be, tab, QR_F32, vocab, d, wdts[k], false, &t));
        CHECK_OK(be->ops->tensor_alloc(be, QR_F32, n + 2, d, &out));
        poison(&out);
        CHECK_OK(be->ops->embed(be, &t, ids, n, &out));
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++)
                bad += (float)wval(&t, ids[i], j) != at(&out, i, j);
        for (int64_t j = 0; j < d; j++) /* rows past n untouched */
            bad += !isnan(at(&out, n, j)) + !isnan(at(&out, n + 1, j));
        CHECK_MSG(bad == 0, "embed %s: %d bad", qr_dtype_name(wdts[k]), bad);
        int32_t badid[] = {1, 37};
        poison(&out);
        CHECK_INT(be->ops->embed(be, &t, badid, 2, &out), QR_EINVAL);
        CHECK(isnan(at(&out, 0, 0))); /* nothing written on failure */
        int32_t negid[] = {-1};
        CHECK_INT(be->ops->embed(be, &t, negid, 1, &out), QR_EINVAL);
        CHECK_INT(be->ops->embed(be, &t, ids, n + 3, &out), QR_EINVAL);
        be->ops->tensor_free(be, &t);
        be->ops->tensor_free(be, &out);
    }
    free(tab);
}

/* ----------------------------------------------------------------- matmul */

/* View of rows [r0, r0+n) and the first `cols` columns of t (a strided tensor). */
static qr_tensor view(const qr_tensor *t, int64_t r0, int64_t n, int64_t cols)
{
    qr_tensor v = *t;
    v.data = (char *)t->data + (size_t)r0 * t->row_bytes;
    v.rows = n;
    v.cols = cols;
    v.owned = false;
    return v;
}

static void check_matmul(int64_t n, int64_t in, int64_t out, bool with_bias, bool strided)
{
    float *xh = rand_vec((size_t)(n * in), 1.0), *wh = rand_vec((size_t)(out * in), 0.5);
    float *bh = rand_vec((size_t)out, 1.0);
    /* x and y live in wider tensors when strided: row_bytes > cols * 4 */
    int64_t pad = strided ? 5 : 0;
    qr_tensor xbig = f32_tensor(n + 1, in + pad, NULL), ybig = f32_tensor(n + 1, out + pad, NULL);
    qr_tensor x = view(&xbig, 1, n, in), y = view(&ybig, 1, n, out);
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)x.data + (size_t)i * x.row_bytes, xh + i * in, (size_t)in * 4);
    qr_tensor bias = f32_tensor(1, out, bh);
    for (int k = 0; k < 4; k++) {
        qr_tensor w;
        CHECK_OK(be->ops->weight_load(be, wh, QR_F32, out, in, wdts[k], false, &w));
        poison(&ybig);
        CHECK_OK(be->ops->matmul(be, &x, &w, with_bias ? &bias : NULL, &y));
        double worst_stored = 0, worst_f32 = 0;
        int nonfinite = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < out; j++) {
                double ref_s = with_bias ? bh[j] : 0, ref_f = ref_s, mag = with_bias ? fabs(bh[j]) : 0, xabs = 0;
                for (int64_t kk = 0; kk < in; kk++) {
                    double xv = xh[i * in + kk];
                    ref_s += xv * wval(&w, j, kk);
                    ref_f += xv * wh[j * in + kk];
                    mag += fabs(xv * wh[j * in + kk]);
                    xabs += fabs(xv);
                }
                double got = at(&y, i, j);
                nonfinite += !isfinite(got);
                /* vs the stored (dequantized) weights: f32 rounding only */
                double e1 = fabs(got - ref_s) / (mag + 1e-30);
                worst_stored = e1 > worst_stored ? e1 : worst_stored;
                /* vs the original f32 weights: the storage rounding bound */
                double bound = wdts[k] == QR_F32    ? 0
                               : wdts[k] == QR_BF16 ? mag / 256.0
                               : wdts[k] == QR_F16  ? mag / 2048.0
                                                    : w.scale[j] / 2 * xabs;
                double e2 = fabs(got - ref_f) / (bound + 1e-5 * mag + 1e-30);
                worst_f32 = e2 > worst_f32 ? e2 : worst_f32;
            }
        int untouched = 0; /* row 0 and padding columns of ybig stay poisoned */
        for (int64_t j = 0; j < out + pad; j++)
            untouched += isnan(at(&ybig, 0, j));
        for (int64_t i = 1; i <= n; i++)
            for (int64_t j = out; j < out + pad; j++)
                untouched += isnan(at(&ybig, i, j));
        CHECK_MSG(nonfinite == 0 && worst_stored <= 1e-5 && worst_f32 <= 1.0 && untouched == out + pad + n * pad,
                  "matmul %lldx%lldx%lld %s bias=%d strided=%d: nonfinite %d, err/stored %.3g, err/bound %.3g, "
                  "untouched %d",
                  (long long)n, (long long)in, (long long)out, qr_dtype_name(wdts[k]), with_bias, strided, nonfinite,
                  worst_stored, worst_f32, untouched);
        be->ops->tensor_free(be, &w);
    }
    be->ops->tensor_free(be, &xbig);
    be->ops->tensor_free(be, &ybig);
    be->ops->tensor_free(be, &bias);
    free(xh);
    free(wh);
    free(bh);
}

static void test_matmul(void)
{
    static const int64_t shapes[][3] = {
        {1, 1, 1},   {1, 37, 29},  {1, 64, 64},  {2, 100, 77}, {3, 33, 5},   {5, 8, 9},     {7, 129, 67},
        {8, 50, 70}, {9, 7, 130},  {33, 129, 67}, {130, 96, 40}, {17, 300, 201}, {1, 515, 300},
    };
    /* default switch-over, then every shape through sgemm only and GEMV only */
    int64_t paths[] = {0, 1, 1000000};
    for (int p = 0; p < 3; p++) {
        qr_backend_cpu_set_gemm_min_rows(be, paths[p]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int v = 0; v < 2; v++)
                check_matmul(shapes[s][0], shapes[s][1], shapes[s][2], v == 0, v == 1);
    }
    qr_backend_cpu_set_gemm_min_rows(be, 0);
    /* shape errors */
    qr_tensor x = f32_tensor(3, 10, NULL), y = f32_tensor(3, 6, NULL), w = f32_tensor(6, 11, NULL),
              b = f32_tensor(1, 5, NULL), w2 = f32_tensor(6, 10, NULL);
    CHECK_INT(be->ops->matmul(be, &x, &w, NULL, &y), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "matmul") != NULL);
    CHECK_INT(be->ops->matmul(be, &x, &w2, &b, &y), QR_EINVAL);
    CHECK_INT(be->ops->matmul(be, &x, &w2, NULL, &w2), QR_EINVAL);
    CHECK_INT(be->ops->matmul(be, &x, NULL, NULL, &y), QR_EINVAL);
    qr_tensor xi;
    CHECK_OK(be->ops->tensor_alloc(be, QR_I32, 3, 10, &xi));
    CHECK_INT(be->ops->matmul(be, &xi, &w2, NULL, &y), QR_EINVAL);
    be->ops->tensor_free(be, &xi);
    qr_tensor sq = f32_tensor(3, 10, NULL), w3 = f32_tensor(10, 10, NULL);
    CHECK_INT(be->ops->matmul(be, &sq, &w3, NULL, &sq), QR_EINVAL); /* in place */
    be->ops->tensor_free(be, &sq);
    be->ops->tensor_free(be, &w3);
    qr_tensor bad = w2;
    bad.row_bytes = 8; /* stride smaller than a row */
    CHECK_INT(be->ops->matmul(be, &x, &bad, NULL, &y), QR_EINVAL);
    qr_tensor *ts[] = {&x, &y, &w, &b, &w2};
    for (int i = 0; i < 5; i++)
        be->ops->tensor_free(be, ts[i]);
}

/* GGUF block rows of type t (random quants, scales 2^-7..2^-6 as f16). */
static void *rand_blocks(qr_dtype t, int64_t rows, int64_t cols)
{
    size_t rb = qr_dtype_row_bytes(t, cols), nb = (size_t)rows * rb;
    uint8_t *b = malloc(nb);
    for (size_t i = 0; i < nb; i++)
        b[i] = (uint8_t)(urand() * 128 + 128);
    size_t bs = t == QR_Q5_0 ? 22 : t == QR_Q8_0 ? 34 : 210;
    for (size_t off = 0; off < nb; off += bs) { /* the f16 d: first, or last in Q6_K */
        uint16_t d = qr_f32_to_f16((float)(1.0 / 128 + urand() / 256));
        memcpy(b + off + (t == QR_Q6_K ? 208 : 0), &d, 2);
    }
    return b;
}

/* matmul_n: weights sharing x (q/k/v, gate/up) give the bits of one matmul
 * each, on the fused decode path (block weights, few rows) and off it. */
static void test_matmul_n(void)
{
    const int64_t K = 256;
    static const qr_dtype types[] = {QR_Q5_0, QR_Q8_0, QR_Q6_K};
    static const int64_t outs[] = {96, 36, 52}, nrows[] = {1, 3, 9};
    qr_tensor w[3], b[3];
    for (int i = 0; i < 3; i++) {
        void *src = rand_blocks(types[i], outs[i], K);
        CHECK_OK(be->ops->weight_load(be, src, types[i], outs[i], K, types[i], false, &w[i]));
        free(src);
        float *bv = rand_vec((size_t)outs[i], 1.0);
        b[i] = f32_tensor(1, outs[i], bv);
        free(bv);
    }
    for (size_t r = 0; r < sizeof nrows / sizeof nrows[0]; r++) {
        float *xv = rand_vec((size_t)(nrows[r] * K), 2.0);
        qr_tensor x = f32_tensor(nrows[r], K, xv), y[3], y1[3];
        for (int i = 0; i < 3; i++) {
            y[i] = f32_tensor(nrows[r], outs[i], NULL);
            y1[i] = f32_tensor(nrows[r], outs[i], NULL);
            poison(&y[i]);
            CHECK_OK(be->ops->matmul(be, &x, &w[i], i == 1 ? NULL : &b[i], &y1[i]));
        }
        const qr_tensor *ws[] = {&w[0], &w[1], &w[2]}, *bs[] = {&b[0], NULL, &b[2]};
        qr_tensor *ys[] = {&y[0], &y[1], &y[2]};
        CHECK_OK(be->ops->matmul_n(be, &x, 3, ws, bs, ys));
        for (int i = 0; i < 3; i++)
            CHECK_MSG(memcmp(y[i].data, y1[i].data, (size_t)(nrows[r] * outs[i]) * sizeof(float)) == 0,
                      "matmul_n %s, %lld rows: differs from matmul", qr_dtype_name(types[i]), (long long)nrows[r]);
        /* two of them, no biases: the same as one matmul each too */
        CHECK_OK(be->ops->matmul(be, &x, &w[2], NULL, &y1[2]));
        CHECK_OK(be->ops->matmul_n(be, &x, 2, ws + 1, (const qr_tensor *const[]){NULL, NULL}, ys + 1));
        CHECK(memcmp(y[2].data, y1[2].data, (size_t)(nrows[r] * outs[2]) * sizeof(float)) == 0);
        for (int i = 0; i < 3; i++) {
            be->ops->tensor_free(be, &y[i]);
            be->ops->tensor_free(be, &y1[i]);
        }
        /* errors: weight count, a weight whose columns differ */
        CHECK_INT(be->ops->matmul_n(be, &x, 0, ws, bs, ys), QR_EINVAL);
        CHECK_INT(be->ops->matmul_n(be, &x, QR_BE_MATMUL_N_MAX + 1, ws, bs, ys), QR_EINVAL);
        be->ops->tensor_free(be, &x);
        free(xv);
    }
    qr_tensor x = f32_tensor(1, K, NULL), wf = f32_tensor(4, K / 2, NULL), y0 = f32_tensor(1, 96, NULL),
              yf = f32_tensor(1, 4, NULL);
    const qr_tensor *ws[] = {&w[0], &wf};
    qr_tensor *ys[] = {&y0, &yf};
    CHECK_INT(be->ops->matmul_n(be, &x, 2, ws, NULL, ys), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "inner sizes differ") != NULL);
    const qr_tensor *ws2[] = {&w[0], &w[0]};
    qr_tensor *same[] = {&y0, &y0};
    CHECK_INT(be->ops->matmul_n(be, &x, 2, ws2, NULL, same), QR_EINVAL); /* two outputs in one place */
    CHECK(strstr(qr_last_error(), "overlap") != NULL);
    qr_tensor *ts[] = {&x, &wf, &y0, &yf, &w[0], &w[1], &w[2], &b[0], &b[1], &b[2]};
    for (int i = 0; i < 10; i++)
        be->ops->tensor_free(be, ts[i]);
}

/* ------------------------------------------------------------ element-wise */

static void test_elementwise(void)
{
    int64_t shapes[][2] = {{1, 1}, {3, 37}, {40, 384}, {130, 131}};
    for (size_t s = 0; s < 4; s++) {
        int64_t n = shapes[s][0], d = shapes[s][1];
        float *a = rand_vec((size_t)(n * d), 3.0), *b = rand_vec((size_t)(n * d), 2.0);
        float *g = rand_vec((size_t)d, 1.0), *bt = rand_vec((size_t)d, 1.0);
        for (int64_t j = 0; j < d; j++) /* a constant-ish row and a biased one */
            a[j] = 0.25f + (float)j * 1e-3f;
        if (n > 1)
            for (int64_t j = 0; j < d; j++)
                a[d + j] += 100.0f;
        qr_tensor ta = f32_tensor(n, d, a), tb = f32_tensor(n, d, b), tg = f32_tensor(1, d, g),
                  tbt = f32_tensor(1, d, bt), to = f32_tensor(n, d, NULL);
        double e_add = 0, e_ln = 0, e_lnip = 0, e_rms = 0, e_gelu = 0, e_silu = 0;
        /* add */
        CHECK_OK(be->ops->upload(be, &to, 0, b, n));
        CHECK_OK(be->ops->add(be, &to, &ta));
        for (int64_t i = 0; i < n * d; i++)
            e_add = fmax(e_add, fabs(at(&to, i / d, i % d) - ((double)a[i] + b[i])) / (fabs(a[i]) + fabs(b[i])));
        /* layernorm (out-of-place and in place) */
        poison(&to);
        CHECK_OK(be->ops->layernorm(be, &ta, &tg, &tbt, 1e-5f, &to));
        qr_tensor tip = f32_tensor(n, d, a);
        CHECK_OK(be->ops->layernorm(be, &tip, &tg, &tbt, 1e-5f, &tip));
        for (int64_t i = 0; i < n; i++) {
            double mean = 0, var = 0;
            for (int64_t j = 0; j < d; j++)
                mean += a[i * d + j];
            mean /= (double)d;
            for (int64_t j = 0; j < d; j++)
                var += (a[i * d + j] - mean) * (a[i * d + j] - mean);
            var /= (double)d;
            for (int64_t j = 0; j < d; j++) {
                double norm = (a[i * d + j] - mean) / sqrt(var + 1e-5), ref = norm * g[j] + bt[j];
                double scale = fabs(norm * g[j]) + fabs(bt[j]) + 1e-6;
                e_ln = fmax(e_ln, fabs(at(&to, i, j) - ref) / scale);
                e_lnip = fmax(e_lnip, fabs(at(&tip, i, j) - ref) / scale);
            }
        }
        /* rmsnorm */
        poison(&to);
        CHECK_OK(be->ops->rmsnorm(be, &ta, &tg, 1e-6f, &to));
        for (int64_t i = 0; i < n; i++) {
            double ms = 0;
            for (int64_t j = 0; j < d; j++)
                ms += (double)a[i * d + j] * a[i * d + j];
            ms /= (double)d;
            for (int64_t j = 0; j < d; j++) {
                double ref = a[i * d + j] / sqrt(ms + 1e-6) * g[j];
                e_rms = fmax(e_rms, fabs(at(&to, i, j) - ref) / (fabs(ref) + 1e-6));
            }
        }
        /* gelu (erf form), silu_mul */
        qr_tensor tgl = f32_tensor(n, d, b);
        CHECK_OK(be->ops->gelu(be, &tgl));
        qr_tensor tsl = f32_tensor(n, d, b);
        CHECK_OK(be->ops->silu_mul(be, &tsl, &ta));
        for (int64_t i = 0; i < n * d; i++) {
            double v = b[i], ref = 0.5 * v * (1 + erf(v / sqrt(2.0)));
            e_gelu = fmax(e_gelu, fabs(at(&tgl, i / d, i % d) - ref) / (fabs(ref) + 1e-6));
            double rs = v / (1 + exp(-v)) * a[i];
            e_silu = fmax(e_silu, fabs(at(&tsl, i / d, i % d) - rs) / (fabs(rs) + 1e-6));
        }
        CHECK_MSG(e_add <= 1e-7 && e_ln <= 1e-5 && e_lnip <= 1e-5 && e_rms <= 1e-5 && e_gelu <= 1e-5 &&
                      e_silu <= 1e-5,
                  "(%lld, %lld): add %.3g ln %.3g ln-inplace %.3g rms %.3g gelu %.3g silu %.3g", (long long)n,
                  (long long)d, e_add, e_ln, e_lnip, e_rms, e_gelu, e_silu);
        /* rmsnorm in place equals out-of-place */
        qr_tensor trip = f32_tensor(n, d, a);
        CHECK_OK(be->ops->rmsnorm(be, &trip, &tg, 1e-6f, &trip));
        int diff = 0;
        for (int64_t i = 0; i < n * d; i++)
            diff += at(&trip, i / d, i % d) != at(&to, i / d, i % d);
        CHECK_INT(diff, 0);
        /* l2norm, with a zero row */
        qr_tensor tl = f32_tensor(n, d, b);
        memset(tl.data, 0, (size_t)d * 4);
        CHECK_OK(be->ops->l2norm(be, &tl));
        double e_l2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double ss = 0;
            for (int64_t j = 0; j < d; j++)
                ss += (double)b[i * d + j] * b[i * d + j];
            for (int64_t j = 0; j < d; j++) {
                double ref = i == 0 ? 0.0 : b[i * d + j] / sqrt(ss);
                e_l2 = fmax(e_l2, fabs(at(&tl, i, j) - ref));
            }
        }
        CHECK_MSG(e_l2 <= 1e-6, "l2norm err %.3g", e_l2);
        /* shape errors */
        qr_tensor small = f32_tensor(1, d + 1, NULL);
        CHECK_INT(be->ops->add(be, &to, &small), QR_EINVAL);
        CHECK_INT(be->ops->layernorm(be, &ta, &small, &tbt, 1e-5f, &to), QR_EINVAL);
        CHECK_INT(be->ops->rmsnorm(be, &ta, &small, 1e-5f, &to), QR_EINVAL);
        CHECK_INT(be->ops->silu_mul(be, &to, &small), QR_EINVAL);
        qr_tensor *ts[] = {&ta, &tb, &tg, &tbt, &to, &tip, &tgl, &tsl, &trip, &tl, &small};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            be->ops->tensor_free(be, ts[i]);
        free(a);
        free(b);
        free(g);
        free(bt);
    }
}

/* GELU and SiLU over a fine sweep including the far tails, where the
 * vectorised erfc/exp approximations must stay accurate in relative terms. */
static void test_activation_sweep(void)
{
    int64_t n = 24001;
    float *xs = malloc((size_t)n * 4), *us = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        xs[i] = (float)(-12.0 + 0.001 * (double)i);
        us[i] = 1.0f + (float)(i % 7) * 0.25f;
    }
    qr_tensor g = f32_tensor(1, n, xs), s = f32_tensor(1, n, xs), u = f32_tensor(1, n, us);
    qr_tensor s2 = f32_tensor(1, n, NULL), u2 = f32_tensor(1, n, us);
    float *wide = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        wide[i] = (float)(-95.0 + 190.0 * (double)i / (double)(n - 1));
    CHECK_OK(be->ops->upload(be, &s2, 0, wide, 1));
    CHECK_OK(be->ops->gelu(be, &g));
    CHECK_OK(be->ops->silu_mul(be, &s, &u));
    CHECK_OK(be->ops->silu_mul(be, &s2, &u2));
    double eg = 0, es = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = xs[i], rg = 0.5 * x * erfc(-x / sqrt(2.0));
        /* erfc(|x|/sqrt2) has condition number ~x^2: the f32 rounding of
         * x/sqrt2 alone costs x^2 * 6e-8 relative */
        eg = fmax(eg, fabs(at(&g, 0, i) - rg) / ((fabs(rg) + 1e-37) * (1.0 + 0.15 * x * x)));
        double rs = x / (1 + exp(-x)) * us[i];
        es = fmax(es, fabs(at(&s, 0, i) - rs) / (fabs(rs) + 1e-37));
        double w = wide[i], rw = w / (1 + exp(-w)) * us[i];
        es = fmax(es, fabs(at(&s2, 0, i) - rw) / (fabs(rw) + 1e-30));
    }
    CHECK_MSG(eg <= 2e-6 && es <= 2e-6, "gelu rel err %.3g, silu rel err %.3g", eg, es);
    qr_tensor *ts[] = {&g, &s, &u, &s2, &u2};
    for (int i = 0; i < 5; i++)
        be->ops->tensor_free(be, ts[i]);
    free(xs);
    free(us);
    free(wide);
}

/* ------------------------------------------------------------------- rope */

static void test_rope(void)
{
    int n = 11, nh = 3, hd = 10, half = hd / 2;
    float *x = rand_vec((size_t)(n * nh * hd), 1.0);
    int32_t pos[11];
    for (int i = 0; i < n; i++)
        pos[i] = i * 37 + (i % 3 == 0 ? 4000 : 0);
    float inv[5];
    for (int j = 0; j < half; j++)
        inv[j] = (float)pow(10000.0, -2.0 * j / hd);
    qr_tensor t = f32_tensor(n, nh * hd, x);
    CHECK_OK(be->ops->rope(be, &t, nh, hd, pos, inv));
    double err = 0;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < half; j++) {
                double th = (float)((float)pos[i] * inv[j]); /* HF forms the angle in f32 */
                double a = x[i * nh * hd + h * hd + j], b = x[i * nh * hd + h * hd + j + half];
                double r1 = a * cos(th) - b * sin(th), r2 = b * cos(th) + a * sin(th);
                err = fmax(err, fabs(at(&t, i, h * hd + j) - r1));
                err = fmax(err, fabs(at(&t, i, h * hd + j + half) - r2));
            }
    CHECK_MSG(err <= 2e-6, "rope err %.3g", err);
    CHECK_INT(be->ops->rope(be, &t, nh, 9, pos, inv), QR_EINVAL);
    CHECK_INT(be->ops->rope(be, &t, 4, hd, pos, inv), QR_EINVAL);
    be->ops->tensor_free(be, &t);
    free(x);
}

/* -------------------------------------------------------------- attention */

static void check_attention(const qr_attn_seq *seqs, int n_seq, int nq_rows, int nkv_rows, int nh, int nkvh, int hd,
                            bool causal, double qamp)
{
    float *qh = rand_vec((size_t)nq_rows * nh * hd, qamp), *kh = rand_vec((size_t)nkv_rows * nkvh * hd, 1.0),
          *vh = rand_vec((size_t)nkv_rows * nkvh * hd, 1.0);
    qr_tensor q = f32_tensor(nq_rows, nh * hd, qh), k = f32_tensor(nkv_rows, nkvh * hd, kh),
              v = f32_tensor(nkv_rows, nkvh * hd, vh), o = f32_tensor(nq_rows, nh * hd, NULL);
    poison(&o);
    float scale = 1.0f / sqrtf((float)hd);
    CHECK_OK(be->ops->attention(be, &q, &k, &v, seqs, n_seq, nh, nkvh, hd, scale, causal, &o));
    double err = 0;
    int bad = 0;
    char *covered = calloc((size_t)nq_rows, 1);
    double *p = malloc(sizeof(double) * (size_t)(nkv_rows + 1));
    for (int s = 0; s < n_seq; s++) {
        const qr_attn_seq *d = &seqs[s];
        for (int i = 0; i < d->n_q; i++) {
            int row = d->q_start + i;
            covered[row] = 1;
            int nvis = causal ? (d->q_pos0 + i + 1 < d->n_kv ? d->q_pos0 + i + 1 : d->n_kv) : d->n_kv;
            for (int h = 0; h < nh; h++) {
                int kvh = h / (nh / nkvh);
                double m = -INFINITY, l = 0;
                for (int j = 0; j < nvis; j++) {
                    double sc = 0;
                    for (int c = 0; c < hd; c++)
                        sc += (double)qh[(size_t)row * nh * hd + h * hd + c] *
                              kh[(size_t)(d->kv_start + j) * nkvh * hd + kvh * hd + c];
                    p[j] = sc * scale;
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j < nvis; j++)
                    l += (p[j] = exp(p[j] - m));
                for (int c = 0; c < hd; c++) {
                    double ref = 0;
                    for (int j = 0; j < nvis; j++)
                        ref += p[j] / l * vh[(size_t)(d->kv_start + j) * nkvh * hd + kvh * hd + c];
                    double got = at(&o, row, h * hd + c);
                    bad += !isfinite(got);
                    err = fmax(err, fabs(got - ref));
                }
            }
        }
    }
    int untouched = 0, uncovered = 0;
    for (int r = 0; r < nq_rows; r++)
        if (!covered[r]) {
            uncovered++;
            untouched += isnan(at(&o, r, 0)) && isnan(at(&o, r, nh * hd - 1));
        }
    CHECK_MSG(bad == 0 && err <= 2e-6 && untouched == uncovered,
              "attention nh %d nkvh %d hd %d causal %d: nonfinite %d, max err %.3g, untouched %d/%d", nh, nkvh, hd,
              causal, bad, err, untouched, uncovered);
    qr_tensor *ts[] = {&q, &k, &v, &o};
    for (int i = 0; i < 4; i++)
        be->ops->tensor_free(be, ts[i]);
    free(qh);
    free(kh);
    free(vh);
    free(covered);
    free(p);
}

static void test_attention(void)
{
    /* decoder: GQA 8/2, causal; a chunk continuing a cache (q_pos0 > 0), a fresh
     * prompt, a long one crossing key blocks, future keys present but masked,
     * and a single-token decode step; q row 24 belongs to no sequence. */
    qr_attn_seq dec[] = {
        {0, 5, 3, 0, 8},      /* positions 3..7 over 8 keys */
        {5, 19, 0, 10, 19},   /* fresh prompt */
        {25, 70, 60, 40, 130}, /* positions 60..129, 130 keys (> 2 blocks of 64) */
        {95, 4, 2, 180, 20},  /* positions 2..5 of 20 keys: later keys masked */
        {99, 1, 99, 200, 100}, /* decode: one token at position 99 */
    };
    int hds[] = {20, 64, 7};
    for (int i = 0; i < 3; i++)
        check_attention(dec, 5, 100, 300, 8, 2, hds[i], true, 3.0);
    /* encoder: non-causal, 12 heads, unequal lengths, padding rows between */
    qr_attn_seq enc[] = {{0, 5, 0, 0, 5}, {8, 17, 0, 8, 17}, {25, 130, 0, 25, 130}, {155, 1, 0, 155, 1}};
    check_attention(enc, 4, 160, 160, 12, 12, 32, false, 2.0);
    /* MQA (1 kv head), peaky scores */
    qr_attn_seq one[] = {{0, 33, 0, 0, 33}};
    check_attention(one, 1, 33, 33, 4, 1, 16, true, 12.0);
    /* errors */
    qr_tensor q = f32_tensor(4, 16, NULL), k = f32_tensor(4, 8, NULL), v = f32_tensor(4, 8, NULL),
              o = f32_tensor(4, 16, NULL);
    qr_attn_seq s = {0, 4, 0, 0, 4};
    CHECK_OK(be->ops->attention(be, &q, &k, &v, &s, 1, 2, 1, 8, 1.0f, true, &o));
    CHECK_INT(be->ops->attention(be, &q, &k, &v, &s, 1, 3, 2, 8, 1.0f, true, &o), QR_EINVAL); /* 3 % 2 */
    CHECK_INT(be->ops->attention(be, &q, &k, &v, &s, 1, 2, 2, 8, 1.0f, true, &o), QR_EINVAL); /* k cols */
    qr_attn_seq s2 = {1, 4, 0, 0, 4};
    CHECK_INT(be->ops->attention(be, &q, &k, &v, &s2, 1, 2, 1, 8, 1.0f, true, &o), QR_EINVAL);
    qr_attn_seq s3 = {0, 4, 0, 1, 4};
    CHECK_INT(be->ops->attention(be, &q, &k, &v, &s3, 1, 2, 1, 8, 1.0f, true, &o), QR_EINVAL);
    qr_attn_seq s4 = {0, 4, -1, 0, 4};
    CHECK_INT(be->ops->attention(be, &q, &k, &v, &s4, 1, 2, 1, 8, 1.0f, true, &o), QR_EINVAL);
    /* a sequence with no keys gives zeros */
    qr_attn_seq s5 = {0, 2, 0, 0, 0};
    poison(&o);
    CHECK_OK(be->ops->attention(be, &q, &k, &v, &s5, 1, 2, 1, 8, 1.0f, false, &o));
    CHECK(at(&o, 0, 0) == 0.0f && at(&o, 1, 15) == 0.0f && isnan(at(&o, 2, 0)));
    qr_tensor *ts[] = {&q, &k, &v, &o};
    for (int i = 0; i < 4; i++)
        be->ops->tensor_free(be, ts[i]);
}

/* ------------------------------------------------------- copy_rows, pool */

static void test_copy_rows(void)
{
    int64_t d = 13;
    float *sh = rand_vec((size_t)(6 * d), 1.0);
    qr_tensor src = f32_tensor(6, d, sh), dst = f32_tensor(10, d, NULL);
    int32_t si[] = {5, 0, 2}, di[] = {9, 3, 4};
    poison(&dst);
    CHECK_OK(be->ops->copy_rows(be, &src, si, &dst, di, 3));
    int bad = 0;
    for (int r = 0; r < 10; r++)
        for (int64_t j = 0; j < d; j++) {
            int from = r == 9 ? 5 : r == 3 ? 0 : r == 4 ? 2 : -1;
            bad += from < 0 ? !isnan(at(&dst, r, j)) : at(&dst, r, j) != sh[from * d + j];
        }
    /* NULL src index: rows 0..n-1 of src; NULL dst index: rows 0..n-1 of dst */
    poison(&dst);
    CHECK_OK(be->ops->copy_rows(be, &src, NULL, &dst, di, 3));
    for (int64_t j = 0; j < d; j++)
        bad += at(&dst, 9, j) != sh[j] || at(&dst, 3, j) != sh[d + j] || at(&dst, 4, j) != sh[2 * d + j] ||
               !isnan(at(&dst, 0, j));
    poison(&dst);
    CHECK_OK(be->ops->copy_rows(be, &src, si, &dst, NULL, 2));
    for (int64_t j = 0; j < d; j++)
        bad += at(&dst, 0, j) != sh[5 * d + j] || at(&dst, 1, j) != sh[j] || !isnan(at(&dst, 2, j));
    CHECK_INT(bad, 0);
    /* out-of-range index: error, nothing written */
    int32_t bdi[] = {1, 10};
    poison(&dst);
    CHECK_INT(be->ops->copy_rows(be, &src, NULL, &dst, bdi, 2), QR_EINVAL);
    CHECK(isnan(at(&dst, 1, 0)));
    CHECK_INT(be->ops->copy_rows(be, &src, NULL, &dst, NULL, 7), QR_EINVAL);
    qr_tensor other = f32_tensor(3, d + 1, NULL);
    CHECK_INT(be->ops->copy_rows(be, &src, NULL, &other, NULL, 1), QR_EINVAL);
    /* int8 rows carry their scales; f16 rows copy bit-exactly */
    qr_tensor q8, q8d, h, hd;
    CHECK_OK(be->ops->weight_load(be, sh, QR_F32, 6, d, QR_I8, false, &q8));
    CHECK_OK(be->ops->tensor_alloc(be, QR_I8, 4, d, &q8d));
    CHECK_OK(be->ops->copy_rows(be, &q8, si, &q8d, NULL, 3));
    CHECK(q8d.scale[0] == q8.scale[5] && memcmp(q8d.data, (int8_t *)q8.data + 5 * d, (size_t)d) == 0);
    CHECK_OK(be->ops->weight_load(be, sh, QR_F32, 6, d, QR_F16, false, &h));
    CHECK_OK(be->ops->tensor_alloc(be, QR_F16, 6, d, &hd));
    CHECK_OK(be->ops->copy_rows(be, &h, NULL, &hd, NULL, 6));
    CHECK(memcmp(h.data, hd.data, (size_t)(6 * d) * 2) == 0);
    CHECK_INT(be->ops->copy_rows(be, &h, NULL, &dst, NULL, 1), QR_EINVAL); /* dtype differs */
    qr_tensor *ts[] = {&src, &dst, &other, &q8, &q8d, &h, &hd};
    for (int i = 0; i < 7; i++)
        be->ops->tensor_free(be, ts[i]);
    free(sh);
}

static void test_pool(void)
{
    int64_t d = 19, rows = 40;
    float *xh = rand_vec((size_t)(rows * d), 2.0);
    qr_tensor x = f32_tensor(rows, d, xh), out = f32_tensor(5, d, NULL);
    qr_attn_seq seqs[] = {{0, 1, 0, 0, 1}, {3, 17, 0, 3, 17}, {20, 20, 0, 20, 20}, {39, 1, 0, 39, 1}};
    for (int mode = 0; mode < 3; mode++) {
        poison(&out);
        CHECK_OK(be->ops->pool(be, &x, seqs, 4, (qr_pool_mode)mode, &out));
        double err = 0;
        int untouched = 0;
        for (int s = 0; s < 4; s++)
            for (int64_t j = 0; j < d; j++) {
                double ref = 0;
                if (mode == QR_POOL_MEAN) {
                    for (int i = 0; i < seqs[s].n_q; i++)
                        ref += xh[(seqs[s].q_start + i) * d + j];
                    ref /= seqs[s].n_q;
                } else {
                    int r = mode == QR_POOL_CLS ? seqs[s].q_start : seqs[s].q_start + seqs[s].n_q - 1;
                    ref = xh[r * d + j];
                }
                err = fmax(err, fabs(at(&out, s, j) - ref));
                if (!(fabs(at(&out, s, j) - ref) <= 1e-5))
                    err = fmax(err, 1.0);
            }
        for (int64_t j = 0; j < d; j++)
            untouched += isnan(at(&out, 4, j));
        CHECK_MSG(err <= 1e-5 && untouched == d, "pool mode %d err %.3g", mode, err);
    }
    qr_attn_seq empty[] = {{0, 0, 0, 0, 0}}, outside[] = {{30, 11, 0, 0, 0}};
    CHECK_INT(be->ops->pool(be, &x, empty, 1, QR_POOL_MEAN, &out), QR_EINVAL);
    CHECK_INT(be->ops->pool(be, &x, outside, 1, QR_POOL_MEAN, &out), QR_EINVAL);
    CHECK_INT(be->ops->pool(be, &x, seqs, 4, (qr_pool_mode)7, &out), QR_EINVAL);
    qr_tensor *ts[] = {&x, &out};
    for (int i = 0; i < 2; i++)
        be->ops->tensor_free(be, ts[i]);
    free(xh);
}

int main(void)
{
    for (int scalar = 0; scalar < 2; scalar++)
        for (int nt = 1; nt <= 3; nt += 2) {
            CHECK_OK(qr_backend_cpu_create_ex(nt, scalar == 1, &be));
            const char *kn = qr_backend_cpu_kernels(be);
            printf("kernels %s, %d threads\n", kn, nt);
            CHECK(strcmp(be->ops->name, "cpu") == 0 && be->act_dtype == QR_F32);
            if (scalar)
                CHECK(strcmp(kn, "scalar") == 0);
            test_memory();
            test_weight_load();
            test_embed();
            test_matmul();
            test_matmul_n();
            test_elementwise();
            test_activation_sweep();
            test_rope();
            test_attention();
            test_copy_rows();
            test_pool();
            qr_backend_destroy(be);
        }
    qr_backend_destroy(NULL);
    return qr_test_done();
}
