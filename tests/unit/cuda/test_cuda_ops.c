/* The CUDA backend's own ops (cuda_kernels.cu, cuda_backend.cu; the fused
 * add_rmsnorm / add_layernorm against the CPU's add followed by the norm)
 * against the CPU backend, the reference, on fresh random inputs (seed printed; set
 * QUIRE_TEST_SEED to replay), for f32 and bf16 activations, at sizes that take
 * both the 16-byte vector path and the element path, and on strided views.
 * Outputs are poisoned with NaN first and must come back fully written; rows
 * an op must not touch must come back still NaN.
 *
 * Error: max |gpu - cpu| over an output, divided by max |cpu| over it (the
 * output's scale). Bounds: f32 2e-6 (element-wise), 1e-5 (reductions and
 * rope), bf16 activations 8e-3 (inputs are rounded to bf16 before both
 * backends see them, so the bound covers the output's own rounding, 2^-9,
 * with margin). Copies, gathers, round trips and CLS/LAST pooling are exact.
 *
 * Skips (77) without CUDA in the build or without a usable GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/dtype.h"
#include "tests/unit/test.h"

static uint64_t rng_state;
static double urand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}

static qr_backend *cpu, *gpu;
static qr_dtype act; /* the GPU backend's activation type in this pass */

static float round_act(float v) { return act == QR_BF16 ? qr_bf16_to_f32(qr_f32_to_bf16(v)) : v; }

/* rows x cols of uniform [-amp, amp) + shift, representable in the activation type */
static float *rnd(int64_t rows, int64_t cols, double amp, double shift)
{
    size_t n = (size_t)(rows * cols);
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = round_act((float)(urand() * amp + shift));
    return v;
}

static float *nans(int64_t rows, int64_t cols)
{
    size_t n = (size_t)(rows * cols);
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
    return v;
}

/* A pair of tensors (CPU f32, GPU activation type) holding the same values. */
typedef struct {
    qr_tensor c, g;
    int64_t rows, cols;
} pair;

static pair mk(int64_t rows, int64_t cols, const float *v)
{
    pair p = {.rows = rows, .cols = cols};
    CHECK_OK(cpu->ops->tensor_alloc(cpu, QR_F32, rows, cols, &p.c));
    CHECK_OK(gpu->ops->tensor_alloc(gpu, act, rows, cols, &p.g));
    float *pz = v ? NULL : nans(rows, cols);
    CHECK_OK(cpu->ops->upload(cpu, &p.c, 0, v ? v : pz, rows));
    CHECK_OK(gpu->ops->upload(gpu, &p.g, 0, v ? v : pz, rows));
    free(pz);
    return p;
}

/* f32 weights-side tensor (norm weights, biases) on both backends. */
static pair mk_f32(int64_t rows, int64_t cols, const float *v)
{
    pair p = {.rows = rows, .cols = cols};
    CHECK_OK(cpu->ops->tensor_alloc(cpu, QR_F32, rows, cols, &p.c));
    CHECK_OK(gpu->ops->tensor_alloc(gpu, QR_F32, rows, cols, &p.g));
    CHECK_OK(cpu->ops->upload(cpu, &p.c, 0, v, rows));
    CHECK_OK(gpu->ops->upload(gpu, &p.g, 0, v, rows));
    return p;
}

static void rm(pair *p)
{
    qr_be_tensor_free(cpu, &p->c);
    qr_be_tensor_free(gpu, &p->g);
}

/* Column view [c0, c0 + cols) of every row: same stride, not dense. */
static pair view(const pair *p, int64_t c0, int64_t cols)
{
    pair v = *p;
    size_t es_c = sizeof(float), es_g = act == QR_F32 ? 4 : 2;
    v.c.data = (char *)p->c.data + (size_t)c0 * es_c;
    v.g.data = (char *)p->g.data + (size_t)c0 * es_g;
    v.c.cols = v.g.cols = v.cols = cols;
    v.c.owned = v.g.owned = false;
    return v;
}

/* Downloads both sides (all rows of the full tensors) and compares rows
 * [r0, r1) by normalised error; rows outside must be NaN on the GPU when
 * untouched is set. Returns the error. */
static double cmp_rows(const char *what, const pair *p, int64_t r0, int64_t r1, double tol, bool untouched)
{
    size_t n = (size_t)(p->rows * p->cols);
    float *a = malloc((n ? n : 1) * sizeof(float)), *b = malloc((n ? n : 1) * sizeof(float));
    CHECK_OK(cpu->ops->download(cpu, &p->c, 0, a, p->rows));
    CHECK_OK(gpu->ops->download(gpu, &p->g, 0, b, p->rows));
    double scale = 0.0, err = 0.0;
    int64_t bad = 0, stray = 0;
    for (int64_t i = r0; i < r1; i++)
        for (int64_t j = 0; j < p->cols; j++)
            scale = fmax(scale, fabs(a[i * p->cols + j]));
    for (int64_t i = 0; i < p->rows; i++)
        for (int64_t j = 0; j < p->cols; j++) {
            float x = a[i * p->cols + j], y = b[i * p->cols + j];
            if (i < r0 || i >= r1) {
                if (untouched && !isnan(y))
                    stray++;
                continue;
            }
            if (isnan(x) != isnan(y) || (isfinite(x) && !isfinite(y)))
                bad++;
            else if (isfinite(x))
                err = fmax(err, fabs((double)x - (double)y));
        }
    err = scale > 0 ? err / scale : err;
    CHECK_MSG(bad == 0, "%s (%s): %lld outputs differ in being written (NaN poison) or finite", what,
              qr_dtype_name(act), (long long)bad);
    CHECK_MSG(stray == 0, "%s (%s): %lld outputs written outside the op's rows", what, qr_dtype_name(act),
              (long long)stray);
    CHECK_MSG(err <= tol, "%s (%s): normalised error %.3g > %.3g", what, qr_dtype_name(act), err, tol);
    printf("  %-34s %-4s err %.3g (bound %.3g)\n", what, qr_dtype_name(act), err, tol);
    free(a);
    free(b);
    return err;
}

static double cmp(const char *what, const pair *p, double tol) { return cmp_rows(what, p, 0, p->rows, tol, false); }

static double tol_ew(void) { return act == QR_F32 ? 2e-6 : 8e-3; }
static double tol_red(void) { return act == QR_F32 ? 1e-5 : 8e-3; }

/* ------------------------------------------------------------ the ops */

static void test_roundtrip(void)
{
    /* f32 -> activation/F16 tensors -> f32, exact against the host conversions */
    int64_t rows = 5, cols = 37;
    float *v = malloc((size_t)(rows * cols) * sizeof(float)), *back = nans(rows, cols);
    for (int64_t i = 0; i < rows * cols; i++)
        v[i] = (float)(urand() * 1000.0);
    v[3] = 1e-40f; /* subnormal */
    v[4] = 65519.0f; /* rounds to the largest f16 */
    qr_dtype types[3] = {QR_F32, QR_BF16, QR_F16};
    for (int k = 0; k < 3; k++) {
        qr_tensor t;
        CHECK_OK(gpu->ops->tensor_alloc(gpu, types[k], rows + 2, cols, &t));
        CHECK_OK(gpu->ops->upload(gpu, &t, 1, v, rows)); /* at a row offset */
        CHECK_OK(gpu->ops->download(gpu, &t, 1, back, rows));
        int64_t wrong = 0;
        for (int64_t i = 0; i < rows * cols; i++) {
            float want = types[k] == QR_F32    ? v[i]
                         : types[k] == QR_BF16 ? qr_bf16_to_f32(qr_f32_to_bf16(v[i]))
                                               : qr_f16_to_f32(qr_f32_to_f16(v[i]));
            if (memcmp(&want, &back[i], 4))
                wrong++;
        }
        CHECK_MSG(wrong == 0, "round trip through %s: %lld values differ from the host conversion",
                  qr_dtype_name(types[k]), (long long)wrong);
        qr_be_tensor_free(gpu, &t);
    }
    free(v);
    free(back);
}

static void test_embed(int64_t vocab, int64_t d)
{
    float *w = rnd(vocab, d, 2.0, 0.0);
    int64_t n = 19;
    int32_t ids[19];
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((urand() + 1.0) * 0.5 * (double)vocab) % (int32_t)vocab;
    ids[0] = 0;
    ids[n - 1] = (int32_t)vocab - 1;
    qr_dtype tts[3] = {QR_F32, QR_F16, QR_BF16};
    for (int k = 0; k < 3; k++) {
        qr_tensor tc, tg;
        CHECK_OK(cpu->ops->tensor_alloc(cpu, tts[k], vocab, d, &tc));
        CHECK_OK(gpu->ops->tensor_alloc(gpu, tts[k], vocab, d, &tg));
        CHECK_OK(cpu->ops->upload(cpu, &tc, 0, w, vocab));
        CHECK_OK(gpu->ops->upload(gpu, &tg, 0, w, vocab));
        pair out = mk(n + 3, d, NULL);
        CHECK_OK(cpu->ops->embed(cpu, &tc, ids, n, &out.c));
        CHECK_OK(gpu->ops->embed(gpu, &tg, ids, n, &out.g));
        char what[64];
        snprintf(what, sizeof what, "embed %s table (%lld, %lld)", qr_dtype_name(tts[k]), (long long)vocab,
                 (long long)d);
        /* a gather: exact in f32; bf16 output rounds an f32/f16 table once */
        cmp_rows(what, &out, 0, n, act == QR_F32 ? 0.0 : 8e-3, true);
        int32_t bad_id = (int32_t)vocab;
        CHECK_INT(gpu->ops->embed(gpu, &tg, &bad_id, 1, &out.g), QR_EINVAL);
        rm(&out);
        qr_be_tensor_free(cpu, &tc);
        qr_be_tensor_free(gpu, &tg);
    }
    free(w);
}

static void test_ew(int64_t rows, int64_t cols)
{
    char what[64];
    float *x = rnd(rows, cols, 3.0, 0.0), *y = rnd(rows, cols, 3.0, 0.0);
    pair a = mk(rows, cols, x), b = mk(rows, cols, y);
    CHECK_OK(cpu->ops->add(cpu, &a.c, &b.c));
    CHECK_OK(gpu->ops->add(gpu, &a.g, &b.g));
    snprintf(what, sizeof what, "add (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &a, tol_ew());
    rm(&a);
    a = mk(rows, cols, x);
    /* GELU over [-6, 6): both tails and the middle */
    float *g = rnd(rows, cols, 6.0, 0.0);
    pair ge = mk(rows, cols, g);
    CHECK_OK(cpu->ops->gelu(cpu, &ge.c));
    CHECK_OK(gpu->ops->gelu(gpu, &ge.g));
    snprintf(what, sizeof what, "gelu (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &ge, act == QR_F32 ? 4e-6 : 8e-3);
    CHECK_OK(cpu->ops->silu_mul(cpu, &a.c, &b.c));
    CHECK_OK(gpu->ops->silu_mul(gpu, &a.g, &b.g));
    snprintf(what, sizeof what, "silu_mul (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &a, act == QR_F32 ? 4e-6 : 8e-3);
    /* mismatched shapes are refused */
    pair s = mk(rows, cols + 1, NULL);
    CHECK_INT(gpu->ops->add(gpu, &a.g, &s.g), QR_EINVAL);
    CHECK_INT(gpu->ops->silu_mul(gpu, &a.g, &s.g), QR_EINVAL);
    rm(&s);
    rm(&a);
    rm(&b);
    rm(&ge);
    free(x);
    free(y);
    free(g);
}

/* add and rmsnorm on a column view (rows strided, not dense, unaligned start) */
static void test_strided(void)
{
    int64_t rows = 6, cols = 40;
    float *x = rnd(rows, cols, 2.0, 0.0), *y = rnd(rows, cols, 2.0, 0.0), *w = rnd(1, 33, 1.0, 1.0);
    pair a = mk(rows, cols, x), b = mk(rows, cols, y), wt = mk_f32(1, 33, w);
    pair av = view(&a, 3, 33), bv = view(&b, 5, 33);
    CHECK_OK(cpu->ops->add(cpu, &av.c, &bv.c));
    CHECK_OK(gpu->ops->add(gpu, &av.g, &bv.g));
    cmp("add on strided views", &a, tol_ew());
    CHECK_OK(cpu->ops->rmsnorm(cpu, &av.c, &wt.c, 1e-6f, &av.c));
    CHECK_OK(gpu->ops->rmsnorm(gpu, &av.g, &wt.g, 1e-6f, &av.g));
    cmp("rmsnorm on a strided view", &a, tol_red());
    rm(&a);
    rm(&b);
    rm(&wt);
    free(x);
    free(y);
    free(w);
}

static void test_norms(int64_t rows, int64_t cols)
{
    char what[96];
    float *x = rnd(rows, cols, 3.0, 0.0), *g = rnd(1, cols, 1.0, 1.0), *bt = rnd(1, cols, 0.5, 0.0);
    pair xs = mk(rows, cols, x), out = mk(rows, cols, NULL), gw = mk_f32(1, cols, g), bw = mk_f32(1, cols, bt);
    CHECK_OK(cpu->ops->rmsnorm(cpu, &xs.c, &gw.c, 1e-5f, &out.c));
    CHECK_OK(gpu->ops->rmsnorm(gpu, &xs.g, &gw.g, 1e-5f, &out.g));
    snprintf(what, sizeof what, "rmsnorm (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &out, tol_red());
    CHECK_OK(cpu->ops->layernorm(cpu, &xs.c, &gw.c, &bw.c, 1e-12f, &out.c));
    CHECK_OK(gpu->ops->layernorm(gpu, &xs.g, &gw.g, &bw.g, 1e-12f, &out.g));
    snprintf(what, sizeof what, "layernorm (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &out, tol_red());
    /* in place, no beta */
    CHECK_OK(cpu->ops->layernorm(cpu, &xs.c, &gw.c, NULL, 1e-5f, &xs.c));
    CHECK_OK(gpu->ops->layernorm(gpu, &xs.g, &gw.g, NULL, 1e-5f, &xs.g));
    snprintf(what, sizeof what, "layernorm in place, no beta (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &xs, tol_red());
    rm(&xs);
    /* a large mean next to the spread: centring must not lose the spread */
    float *big = rnd(rows, cols, 1.0, 300.0);
    xs = mk(rows, cols, big);
    CHECK_OK(cpu->ops->layernorm(cpu, &xs.c, &gw.c, &bw.c, 1e-5f, &out.c));
    CHECK_OK(gpu->ops->layernorm(gpu, &xs.g, &gw.g, &bw.g, 1e-5f, &out.g));
    snprintf(what, sizeof what, "layernorm, mean 300 (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &out, act == QR_F32 ? 1e-5 : 2e-2); /* bf16 keeps 3 digits of 300 + x */
    rm(&xs);
    /* fused residual add + rmsnorm against add then rmsnorm */
    float *y = rnd(rows, cols, 3.0, 0.0);
    pair a = mk(rows, cols, x), b = mk(rows, cols, y);
    CHECK_OK(cpu->ops->add(cpu, &a.c, &b.c));
    CHECK_OK(cpu->ops->rmsnorm(cpu, &a.c, &gw.c, 1e-6f, &out.c));
    if (gpu->ops->add_rmsnorm) {
        CHECK_OK(gpu->ops->add_rmsnorm(gpu, &a.g, &b.g, &gw.g, 1e-6f, &out.g));
        snprintf(what, sizeof what, "add_rmsnorm: x (%lld, %lld)", (long long)rows, (long long)cols);
        cmp(what, &a, tol_ew());
        snprintf(what, sizeof what, "add_rmsnorm: out (%lld, %lld)", (long long)rows, (long long)cols);
        cmp(what, &out, tol_red());
        CHECK_INT(gpu->ops->add_rmsnorm(gpu, &a.g, &b.g, &gw.g, 1e-6f, &a.g), QR_EINVAL); /* out overlaps x */
    }
    /* fused residual add + layernorm, out = y (BERT's pattern: tmp += x; x = LN(tmp)) */
    if (gpu->ops->add_layernorm) {
        rm(&a);
        rm(&b);
        a = mk(rows, cols, y);
        b = mk(rows, cols, x);
        CHECK_OK(cpu->ops->add(cpu, &a.c, &b.c));
        CHECK_OK(cpu->ops->layernorm(cpu, &a.c, &gw.c, &bw.c, 1e-12f, &b.c));
        CHECK_OK(gpu->ops->add_layernorm(gpu, &a.g, &b.g, &gw.g, &bw.g, 1e-12f, &b.g));
        snprintf(what, sizeof what, "add_layernorm: x (%lld, %lld)", (long long)rows, (long long)cols);
        cmp(what, &a, tol_ew());
        snprintf(what, sizeof what, "add_layernorm: out = y (%lld, %lld)", (long long)rows, (long long)cols);
        cmp(what, &b, tol_red());
        /* out apart from both, no beta */
        CHECK_OK(cpu->ops->add(cpu, &a.c, &b.c));
        CHECK_OK(cpu->ops->layernorm(cpu, &a.c, &gw.c, NULL, 1e-5f, &out.c));
        CHECK_OK(gpu->ops->add_layernorm(gpu, &a.g, &b.g, &gw.g, NULL, 1e-5f, &out.g));
        snprintf(what, sizeof what, "add_layernorm: out apart (%lld, %lld)", (long long)rows, (long long)cols);
        cmp(what, &out, tol_red());
        CHECK_INT(gpu->ops->add_layernorm(gpu, &a.g, &a.g, &gw.g, NULL, 1e-5f, &out.g), QR_EINVAL); /* x is y */
    }
    float *g2 = rnd(1, cols + 1, 1.0, 1.0);
    pair wrong = mk_f32(1, cols + 1, g2);
    CHECK_INT(gpu->ops->rmsnorm(gpu, &a.g, &wrong.g, 1e-6f, &out.g), QR_EINVAL);
    CHECK_INT(gpu->ops->layernorm(gpu, &a.g, &wrong.g, NULL, 1e-6f, &out.g), QR_EINVAL);
    rm(&wrong);
    free(g2);
    rm(&a);
    rm(&b);
    rm(&out);
    rm(&gw);
    rm(&bw);
    free(x);
    free(g);
    free(bt);
    free(big);
    free(y);
}

/* l2norm with a zero row (stays zero) */
static void test_l2norm(int64_t rows, int64_t cols)
{
    char what[64];
    float *x = rnd(rows, cols, 2.0, 0.0);
    for (int64_t j = 0; j < cols; j++)
        x[cols + j] = 0.0f;
    pair a = mk(rows, cols, x);
    CHECK_OK(cpu->ops->l2norm(cpu, &a.c));
    CHECK_OK(gpu->ops->l2norm(gpu, &a.g));
    snprintf(what, sizeof what, "l2norm (%lld, %lld)", (long long)rows, (long long)cols);
    cmp(what, &a, tol_red());
    rm(&a);
    free(x);
}

static void test_rope(int64_t rows, int n_head, int head_dim)
{
    char what[64];
    int64_t cols = (int64_t)n_head * head_dim;
    float *x = rnd(rows, cols, 2.0, 0.0), *inv = malloc((size_t)(head_dim / 2) * sizeof(float));
    int32_t *pos = malloc((size_t)rows * sizeof(int32_t));
    for (int j = 0; j < head_dim / 2; j++)
        inv[j] = powf(10000.0f, -2.0f * (float)j / (float)head_dim);
    for (int64_t i = 0; i < rows; i++)
        pos[i] = i < 3 ? (int32_t)i : (int32_t)((urand() + 1.0) * 2048.0);
    pair a = mk(rows, cols, x);
    CHECK_OK(cpu->ops->rope(cpu, &a.c, n_head, head_dim, pos, inv));
    CHECK_OK(gpu->ops->rope(gpu, &a.g, n_head, head_dim, pos, inv));
    memset(pos, 0xff, (size_t)rows * sizeof(int32_t)); /* the backend copied them before returning */
    snprintf(what, sizeof what, "rope (%lld, %d x %d)", (long long)rows, n_head, head_dim);
    cmp(what, &a, tol_red());
    CHECK_INT(gpu->ops->rope(gpu, &a.g, n_head + 1, head_dim, pos, inv), QR_EINVAL);
    rm(&a);
    free(x);
    free(inv);
    free(pos);
}

static void test_copy_rows(void)
{
    int64_t d = 72;
    float *s = rnd(10, d, 5.0, 0.0);
    pair src = mk(10, d, s), dst = mk(12, d, NULL);
    int32_t si[4] = {9, 0, 3, 3}, di[4] = {11, 2, 5, 7};
    CHECK_OK(cpu->ops->copy_rows(cpu, &src.c, si, &dst.c, di, 4));
    CHECK_OK(gpu->ops->copy_rows(gpu, &src.g, si, &dst.g, di, 4));
    /* rows not written stay NaN on both sides (cmp counts any difference in NaN-ness) */
    cmp("copy_rows (gather/scatter)", &dst, 0.0);
    CHECK_OK(cpu->ops->copy_rows(cpu, &src.c, NULL, &dst.c, NULL, 10));
    CHECK_OK(gpu->ops->copy_rows(gpu, &src.g, NULL, &dst.g, NULL, 10));
    cmp_rows("copy_rows (identity)", &dst, 0, 10, 0.0, false);
    /* within one tensor, in order: row 1 = row 0, then row 2 = (new) row 1 */
    int32_t ci[2] = {0, 1}, cd[2] = {1, 2};
    CHECK_OK(cpu->ops->copy_rows(cpu, &src.c, ci, &src.c, cd, 2));
    CHECK_OK(gpu->ops->copy_rows(gpu, &src.g, ci, &src.g, cd, 2));
    cmp("copy_rows (same tensor, chained)", &src, 0.0);
    int32_t oob = 12;
    CHECK_INT(gpu->ops->copy_rows(gpu, &src.g, NULL, &dst.g, &oob, 1), QR_EINVAL);
    /* odd widths take the 4-byte / 1-byte paths */
    pair s2 = mk(4, 7, s), d2 = mk(4, 7, NULL);
    CHECK_OK(cpu->ops->copy_rows(cpu, &s2.c, NULL, &d2.c, NULL, 4));
    CHECK_OK(gpu->ops->copy_rows(gpu, &s2.g, NULL, &d2.g, NULL, 4));
    cmp("copy_rows (7 columns)", &d2, 0.0);
    rm(&s2);
    rm(&d2);
    rm(&src);
    rm(&dst);
    free(s);
}

static void test_pool(void)
{
    int64_t T = 40, d = 48;
    float *x = rnd(T, d, 2.0, 0.0);
    pair xs = mk(T, d, x);
    qr_attn_seq seqs[3] = {{.q_start = 0, .n_q = 7}, {.q_start = 9, .n_q = 1}, {.q_start = 12, .n_q = 28}};
    const char *names[3] = {"pool mean", "pool cls", "pool last"};
    for (int mode = 0; mode < 3; mode++) {
        pair out = mk(4, d, NULL);
        CHECK_OK(cpu->ops->pool(cpu, &xs.c, seqs, 3, (qr_pool_mode)mode, &out.c));
        CHECK_OK(gpu->ops->pool(gpu, &xs.g, seqs, 3, (qr_pool_mode)mode, &out.g));
        /* the mean sums in the CPU's order in f32: identical in f32 */
        cmp_rows(names[mode], &out, 0, 3, mode == QR_POOL_MEAN ? (act == QR_F32 ? 1e-6 : 8e-3) : 0.0, true);
        rm(&out);
    }
    qr_attn_seq empty = {.q_start = 3, .n_q = 0};
    pair out = mk(1, d, NULL);
    CHECK_INT(gpu->ops->pool(gpu, &xs.g, &empty, 1, QR_POOL_MEAN, &out.g), QR_EINVAL);
    rm(&out);
    rm(&xs);
    free(x);
}

static void test_types(void)
{
    /* f32 and bf16 activations do not mix inside one op */
    qr_tensor a, b;
    qr_dtype other = act == QR_F32 ? QR_BF16 : QR_F32;
    CHECK_OK(gpu->ops->tensor_alloc(gpu, act, 2, 8, &a));
    CHECK_OK(gpu->ops->tensor_alloc(gpu, other, 2, 8, &b));
    CHECK_INT(gpu->ops->add(gpu, &a, &b), QR_EINVAL);
    qr_tensor i8 = a;
    i8.dtype = QR_I32;
    CHECK_INT(gpu->ops->gelu(gpu, &i8), QR_EINVAL);
    qr_be_tensor_free(gpu, &a);
    qr_be_tensor_free(gpu, &b);
}

int main(void)
{
    qr_gpu_info g[16];
    int n = 0;
    if (!qr_cuda_built()) {
        printf("SKIP: this build has no CUDA backend (-Dcuda=enabled builds it)\n");
        return 77;
    }
    qr_cuda_devices(g, 16, &n);
    if (n == 0) {
        printf("SKIP: no usable GPU: %s\n", qr_cuda_why_none());
        return 77;
    }
    const char *seed_env = getenv("QUIRE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + 1;
    rng_state = seed ? seed : 1;
    printf("GPU %s (cuda:%d); seed %llu (QUIRE_TEST_SEED replays it)\n", g[0].name, g[0].index,
           (unsigned long long)rng_state);
    CHECK_OK(qr_backend_cpu_create(2, &cpu));
    qr_dtype acts[2] = {QR_F32, QR_BF16};
    for (int k = 0; k < 2 && cpu; k++) {
        act = acts[k];
        gpu = NULL;
        CHECK_OK(qr_backend_cuda_create_ex(g[0].index, act, &gpu));
        if (!gpu)
            break;
        printf("activations %s\n", qr_dtype_name(act));
        test_roundtrip();
        test_embed(50, 100);
        test_embed(300, 384);
        test_ew(7, 100);
        test_ew(33, 384);
        test_ew(3, 4099);
        test_strided();
        test_norms(5, 100);
        test_norms(17, 384);
        test_norms(3, 4096);
        test_norms(2, 5120 + 8);
        test_l2norm(4, 100);
        test_l2norm(9, 768);
        test_rope(9, 4, 64);
        test_rope(5, 3, 6);
        test_rope(2, 2, 256);
        test_copy_rows();
        test_pool();
        test_types();
        CHECK_OK(qr_be_sync(gpu));
        qr_backend_destroy(gpu);
    }
    qr_backend_destroy(cpu);
    return qr_test_done();
}
