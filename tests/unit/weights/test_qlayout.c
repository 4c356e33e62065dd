/* GGUF block weights kept as stored on the CPU backend, against the `gguf`
 * Python package (tests/fixtures/qlayout/gen_blocks.py wrote blocks.gguf):
 * - every kept type (Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K) loads as stored
 *   (aliasing the mapping, same bytes), and download and embed give exactly
 *   gguf.quants.dequantize's floats;
 * - matmul on the blocks equals matmul on those f32 values (decode and GEMM
 *   row counts; only the summation order may differ) through the dequantized
 *   tiles; built with qkern's integer kernels (-Dqkern=enabled), their
 *   result is within the bound of x rounded to int8 per 32 values;
 * - Q2_K / Q3_K are not supported as stored; loading them as Q4_K stays
 *   within the Q4_K quantizer's bound of the reference values;
 * - qr_quantize_row(Q8_0) is byte-identical with gguf.quants.quantize, and
 *   Q4_K quantize -> dequantize keeps every value within half a step (the
 *   bound quantize.c derives), on the fixture's values and on random rows;
 * - through the loader (gen_tiny_llama.py's one-layer llama GGUFs): with every
 *   kept type, --dtype as-stored holds exactly the file's tensor bytes and
 *   its logits equal the f32 load's up to summation order; with Q2_K/Q3_K
 *   tensors, those two are held as Q4_K (the bytes say so); on a backend
 *   whose supports() has only Q8_0 of the block types (as CUDA's), every
 *   block tensor is converted to Q8_0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"

static const struct { const char *name; qr_dtype t; } kept[] = {
    {"q8_0", QR_Q8_0}, {"q4_0", QR_Q4_0}, {"q4_1", QR_Q4_1}, {"q5_0", QR_Q5_0},
    {"q5_1", QR_Q5_1}, {"q4_k", QR_Q4_K}, {"q5_k", QR_Q5_K}, {"q6_k", QR_Q6_K},
};

static const qr_wtensor *get(const qr_wsrc *s, const char *type, const char *what)
{
    char n[64];
    snprintf(n, sizeof n, "%s.%s", type, what);
    const qr_wtensor *t = qr_wsrc_find(s, n);
    CHECK_MSG(t != NULL, "fixture lacks %s", n);
    return t;
}

static float frand(unsigned *st)
{
    *st = *st * 1664525u + 1013904223u;
    return (float)((*st >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* y = x . W^T on backend weights w vs on the f32 reference rows ref (rows x cols).
 * int8x: the integer kernels, which round x per 32 values to int8 (d = amax/127):
 * each term may move by |w| * d/2 beyond the f32 noise. */
static void check_matmul(qr_backend *be, const qr_tensor *w, const float *ref, int64_t n, bool int8x,
                         const char *what)
{
    int64_t rows = w->rows, cols = w->cols;
    qr_tensor x, y;
    CHECK_OK(qr_be_tensor_alloc(be, QR_F32, n, cols, &x));
    CHECK_OK(qr_be_tensor_alloc(be, QR_F32, n, rows, &y));
    float *xh = malloc(sizeof(float) * (size_t)(n * cols)), *yh = malloc(sizeof(float) * (size_t)(n * rows));
    unsigned st = 7;
    for (int64_t i = 0; i < n * cols; i++)
        xh[i] = frand(&st);
    CHECK_OK(be->ops->upload(be, &x, 0, xh, n));
    CHECK_OK(be->ops->matmul(be, &x, w, NULL, &y));
    CHECK_OK(be->ops->download(be, &y, 0, yh, n));
    double worst = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < rows; j++) {
            double e = 0, mag = 0, q = 0;
            for (int64_t k = 0; k < cols; k++) {
                e += (double)xh[r * cols + k] * ref[j * cols + k];
                mag += fabs((double)xh[r * cols + k] * ref[j * cols + k]);
                if (int8x && k % 32 == 0) {
                    double amax = 0;
                    for (int l = 0; l < 32; l++)
                        amax = fmax(amax, fabs(xh[r * cols + k + l]));
                    for (int l = 0; l < 32; l++)
                        q += fabs(ref[j * cols + k + l]) * amax / 254;
                }
            }
            /* f32 sums of 512 terms: a few units of 2^-24 relative to sum |terms| */
            double err = (fabs(yh[r * rows + j] - e) - q * (1 + 1e-3)) / (mag + 1e-30);
            worst = err > worst ? err : worst;
        }
    CHECK_MSG(worst < 64 * 6e-8, "%s matmul n=%lld%s: relative error %.3g", what, (long long)n,
              int8x ? " (integer kernels)" : "", worst);
    free(xh);
    free(yh);
    qr_be_tensor_free(be, &x);
    qr_be_tensor_free(be, &y);
}

/* Q4_K quantize -> dequantize of n values: within half a step of each value
 * (plus f16 slack), step = d * sc of the value's sub-block (read back). */
static void check_q4k_roundtrip(const float *x, int64_t n, const char *what)
{
    size_t rb = qr_dtype_row_bytes(QR_Q4_K, n);
    uint8_t *q = malloc(rb);
    float *back = malloc(sizeof(float) * (size_t)n);
    CHECK_OK(qr_quantize_row(QR_Q4_K, x, n, q));
    CHECK_OK(qr_convert_to_f32(QR_Q4_K, q, n, back));
    int bad = 0;
    double worst = 0;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = q + b * 144;
        uint16_t h;
        memcpy(&h, blk, 2);
        float d = qr_f16_to_f32(h), slo = 0, shi = 0;
        for (int l = 0; l < 256; l++) {
            slo = fminf(slo, x[b * 256 + l]);
            shi = fmaxf(shi, x[b * 256 + l]);
        }
        for (int j = 0; j < 8; j++) {
            float lo = 0, hi = -INFINITY;
            for (int l = 0; l < 32; l++) {
                float v = x[b * 256 + 32 * j + l];
                lo = fminf(lo, v);
                hi = fmaxf(hi, v);
            }
            /* step <= (range + dmin)/15 + d; half a step, 2^-10 of the range for f16 rounding */
            double range = hi - lo, step = range / 15.0 * (1 + 1.0 / 63) + d;
            for (int l = 0; l < 32; l++) {
                int64_t i = b * 256 + 32 * j + l;
                double err = fabs((double)back[i] - x[i]), lim = step / 2 + range / 1024 + 1e-12;
                if (err > lim)
                    bad++;
                if (shi > slo && err / (shi - slo) > worst)
                    worst = err / (shi - slo);
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %d q4_k values beyond half a step (worst %.4f of the block's range)", what, bad, worst);
    /* 16 levels, 6-bit scales relative to the block's largest: no value is off by
     * more than half a step of the widest sub-block, ~1/30 of the block's range */
    CHECK_MSG(worst < 0.036, "%s: q4_k error %.4f of the block's range", what, worst);
    free(q);
    free(back);
}

/* Logits of the last of 5 prompt ids, then of one decode step, into lg (2 x vocab). */
static int tiny_logits(qr_model *m, float *lg)
{
    int V = qr_model_cfg(m)->vocab_size, rc;
    qr_decoder_state *st = NULL;
    int32_t ids[6] = {3, 17, 200, 42, 9, 128};
    if ((rc = qr_decoder_state_create(m, 1, 32, &st)))
        return rc;
    qr_dec_seq a = {0, ids, 5}, b = {0, ids + 5, 1};
    if (!(rc = qr_decoder_step(st, &a, 1, lg)))
        rc = qr_decoder_step(st, &b, 1, lg + V);
    qr_decoder_state_free(st);
    return rc;
}

/* The CPU backend's table with supports() narrowed to CUDA's set. */
static bool q8_only(qr_backend *be, qr_be_op op, qr_dtype wt)
{
    (void)be;
    (void)op;
    return wt == QR_F32 || wt == QR_F16 || wt == QR_BF16 || wt == QR_I8 || wt == QR_Q8_0;
}

static void check_tiny_models(qr_backend *be)
{
    const char *kept_path = FIXTURE("qlayout/tiny_kept.gguf"), *k23_path = FIXTURE("qlayout/tiny_k23.gguf");
    qr_model_opts of = {.dtype = QR_F32}, os = {.dtype = QR_AS_STORED};
    qr_model *mf = NULL, *ms = NULL;
    qr_wsrc *src = NULL;
    CHECK_OK(qr_wsrc_open(kept_path, &src));
    CHECK_OK(qr_model_load(kept_path, &of, be, &mf));
    CHECK_OK(qr_model_load(kept_path, &os, be, &ms));
    if (src && mf && ms) {
        CHECK_INT(qr_model_weight_bytes(ms), qr_wsrc_bytes(src)); /* exactly the file's tensors */
        int V = qr_model_cfg(mf)->vocab_size;
        float *lf = malloc(sizeof(float) * 2 * (size_t)V), *ls = malloc(sizeof(float) * 2 * (size_t)V);
        CHECK_OK(tiny_logits(mf, lf));
        CHECK_OK(tiny_logits(ms, ls));
        double amax = 0, dmax = 0;
        for (int j = 0; j < 2 * V; j++) {
            amax = fmax(amax, fabs(lf[j]));
            dmax = fmax(dmax, fabs((double)lf[j] - ls[j]));
        }
        CHECK(amax > 0 && isfinite(amax));
        CHECK_MSG(dmax <= 1e-5 * amax, "tiny_kept: as-stored logits differ from f32 by %.3g (max %.3g)", dmax, amax);
        free(lf);
        free(ls);
    }
    qr_model_free(mf);
    qr_model_free(ms);
    qr_wsrc_close(src);
    src = NULL;
    ms = NULL;
    CHECK_OK(qr_wsrc_open(k23_path, &src));
    CHECK_OK(qr_model_load(k23_path, &os, be, &ms));
    if (src && ms) {
        uint64_t want = 0;
        int converted = 0;
        for (size_t i = 0; i < qr_wsrc_count(src); i++) {
            const qr_wtensor *t = qr_wsrc_at(src, i);
            if (t->dtype == QR_Q2_K || t->dtype == QR_Q3_K) {
                want += (uint64_t)t->shape[0] * qr_dtype_row_bytes(QR_Q4_K, t->shape[1]);
                converted++;
            } else {
                want += t->nbytes;
            }
        }
        CHECK_INT(converted, 2);
        CHECK_INT(qr_model_weight_bytes(ms), want);
    }
    qr_model_free(ms);
    qr_wsrc_close(src);
    src = NULL;
    ms = NULL;
    const qr_backend_ops *orig = be->ops;
    qr_backend_ops narrow = *orig;
    narrow.supports = q8_only;
    be->ops = &narrow;
    CHECK(!qr_be_supports(be, QR_BE_OP_MATMUL, QR_Q4_K));
    CHECK_OK(qr_wsrc_open(kept_path, &src));
    CHECK_OK(qr_model_load(kept_path, &os, be, &ms));
    if (src && ms) {
        uint64_t want = 0;
        for (size_t i = 0; i < qr_wsrc_count(src); i++) {
            const qr_wtensor *t = qr_wsrc_at(src, i);
            want += t->n_dims == 2 ? (uint64_t)t->shape[0] * qr_dtype_row_bytes(QR_Q8_0, t->shape[1]) : t->nbytes;
        }
        CHECK_INT(qr_model_weight_bytes(ms), want);
    }
    qr_model_free(ms);
    qr_wsrc_close(src);
    be->ops = orig;
}

int main(void)
{
    qr_wsrc *s = NULL;
    CHECK_OK(qr_wsrc_open(FIXTURE("qlayout/blocks.gguf"), &s));
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    if (!s || !be)
        return qr_test_done();
    qr_backend_cpu_set_block_tiles(be, true); /* the reference path; qkern's is checked beside it */

    for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++) {
        const qr_wtensor *q = get(s, kept[k].name, "q"), *r = get(s, kept[k].name, "ref");
        if (!q || !r)
            continue;
        CHECK_INT(q->dtype, kept[k].t);
        int64_t rows = q->shape[0], cols = q->shape[1];
        CHECK(qr_be_supports(be, QR_BE_OP_MATMUL, kept[k].t));
        CHECK(qr_be_supports(be, QR_BE_OP_EMBED, kept[k].t));
        qr_tensor w;
        CHECK_OK(be->ops->weight_load(be, q->data, q->dtype, rows, cols, q->dtype, true, &w));
        CHECK(w.data == q->data); /* kept in place: the file's bytes */
        CHECK_INT(w.ql.kind, QR_QL_GGUF);
        CHECK_INT(w.ql.block, qr_dtype_block(kept[k].t));
        CHECK_INT((int64_t)w.row_bytes * rows, (int64_t)q->nbytes);
        float *got = malloc(r->nbytes);
        const float *ref = r->data;
        CHECK_OK(be->ops->download(be, &w, 0, got, rows));
        CHECK_MSG(memcmp(got, ref, r->nbytes) == 0, "%s: download differs from gguf.quants.dequantize",
                  kept[k].name);
        /* embed: rows 4, 0, 4 */
        qr_tensor e;
        CHECK_OK(qr_be_tensor_alloc(be, QR_F32, 3, cols, &e));
        int32_t ids[3] = {4, 0, 4};
        CHECK_OK(be->ops->embed(be, &w, ids, 3, &e));
        CHECK_OK(be->ops->download(be, &e, 0, got, 3));
        for (int i = 0; i < 3; i++)
            CHECK_MSG(memcmp(got + i * cols, ref + ids[i] * cols, sizeof(float) * (size_t)cols) == 0,
                      "%s: embed row %d differs", kept[k].name, ids[i]);
        qr_be_tensor_free(be, &e);
        check_matmul(be, &w, ref, 1, false, kept[k].name);
        check_matmul(be, &w, ref, 40, false, kept[k].name);
        if (qr_backend_cpu_has_qkern()) {
            qr_backend_cpu_set_block_tiles(be, false);
            check_matmul(be, &w, ref, 1, true, kept[k].name);
            check_matmul(be, &w, ref, 40, true, kept[k].name);
            qr_backend_cpu_set_block_tiles(be, true);
        }
        qr_be_tensor_free(be, &w);
        /* a copy (may_alias false) is the same */
        CHECK_OK(be->ops->weight_load(be, q->data, q->dtype, rows, cols, q->dtype, false, &w));
        CHECK(w.data != q->data && w.owned);
        CHECK_OK(be->ops->download(be, &w, 0, got, rows));
        CHECK_MSG(memcmp(got, ref, r->nbytes) == 0, "%s: copied blocks differ", kept[k].name);
        CHECK_INT(be->ops->copy_rows(be, &w, NULL, &w, NULL, 1), QR_EINVAL);
        qr_be_tensor_free(be, &w);
        free(got);
    }

    /* Q2_K / Q3_K: not computed as stored; as Q4_K within its bound */
    const char *conv[2] = {"q2_k", "q3_k"};
    const qr_dtype convt[2] = {QR_Q2_K, QR_Q3_K};
    for (int k = 0; k < 2; k++) {
        const qr_wtensor *q = get(s, conv[k], "q"), *r = get(s, conv[k], "ref");
        if (!q || !r)
            continue;
        CHECK(!qr_be_supports(be, QR_BE_OP_MATMUL, convt[k]));
        int64_t rows = q->shape[0], cols = q->shape[1];
        qr_tensor w;
        CHECK_INT(be->ops->weight_load(be, q->data, q->dtype, rows, cols, q->dtype, true, &w), QR_EINVAL);
        CHECK_OK(be->ops->weight_load(be, q->data, q->dtype, rows, cols, QR_Q4_K, true, &w));
        CHECK_INT(w.dtype, QR_Q4_K);
        float *got = malloc(r->nbytes);
        CHECK_OK(be->ops->download(be, &w, 0, got, rows));
        /* the loader's Q4_K is qr_quantize_row of the reference values */
        uint8_t *mine = malloc(qr_dtype_row_bytes(QR_Q4_K, cols));
        float *back = malloc(sizeof(float) * (size_t)cols);
        for (int64_t i = 0; i < rows; i++) {
            CHECK_OK(qr_quantize_row(QR_Q4_K, (const float *)r->data + i * cols, cols, mine));
            CHECK_OK(qr_convert_to_f32(QR_Q4_K, mine, cols, back));
            CHECK(memcmp(back, got + i * cols, sizeof(float) * (size_t)cols) == 0);
        }
        check_q4k_roundtrip(r->data, rows * cols, conv[k]);
        free(mine);
        free(back);
        free(got);
        qr_be_tensor_free(be, &w);
    }

    /* quantizers: Q8_0 bytes equal gguf.quants.quantize's; Q4_K within its bound */
    const qr_wtensor *src = get(s, "q8_0", "src"), *q8 = get(s, "q8_0", "q");
    if (src && q8) {
        int64_t n = src->shape[0] * src->shape[1];
        uint8_t *mine = malloc(q8->nbytes);
        CHECK_OK(qr_quantize_row(QR_Q8_0, src->data, n, mine));
        CHECK_MSG(memcmp(mine, q8->data, q8->nbytes) == 0, "q8_0: qr_quantize_row differs from gguf.quants.quantize");
        /* the CPU backend's q8_0 from f32 is the same bytes */
        qr_tensor w;
        CHECK_OK(be->ops->weight_load(be, src->data, QR_F32, src->shape[0], src->shape[1], QR_Q8_0, true, &w));
        CHECK(memcmp(w.data, q8->data, q8->nbytes) == 0);
        qr_be_tensor_free(be, &w);
        free(mine);
        for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++) {
            const qr_wtensor *sk = qr_wsrc_find(s, k < 5 ? (const char *[]){"q8_0.src", "q4_0.src", "q4_1.src",
                                                                            "q5_0.src", "q5_1.src"}[k] : "");
            if (sk)
                check_q4k_roundtrip(sk->data, sk->shape[0] * sk->shape[1], kept[k].name);
        }
    }
    unsigned st = 99;
    float *x = malloc(sizeof(float) * 4096);
    for (int i = 0; i < 4096; i++)
        x[i] = frand(&st) * (i % 512 < 256 ? 1.0f : 1e-3f) + (i % 700 == 0 ? 3.0f : 0.0f);
    check_q4k_roundtrip(x, 4096, "random");
    for (int i = 0; i < 4096; i++)
        x[i] = fabsf(x[i]) + 0.5f; /* all positive: min 0 */
    check_q4k_roundtrip(x, 4096, "positive");
    uint8_t qb[144];
    CHECK_INT(qr_quantize_row(QR_Q4_K, x, 100, qb), QR_EINVAL);
    CHECK_INT(qr_quantize_row(QR_Q6_K, x, 256, qb), QR_EUNSUPPORTED);
    x[3] = NAN;
    CHECK_INT(qr_quantize_row(QR_Q8_0, x, 32, qb), QR_EINVAL);
    free(x);

    check_tiny_models(be);
    qr_backend_destroy(be);
    qr_wsrc_close(s);
    return qr_test_done();
}
