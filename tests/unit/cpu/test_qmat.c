/* runtime/cpu/quant: integer matmul on GGUF blocks.
 *
 * For each weight type, random blocks (random quant bytes, finite f16 scales)
 * and random activations (with an outlier per row so block scales vary):
 *  - the activation quantization against its definition (d = amax / 127,
 *    |q * d - x| <= d / 2 (+ rounding), s = d * sum q);
 *  - every ISA path against an f64 reference built from the weights
 *    dequantized by runtime/weights (qr_convert_to_f32, checked against the
 *    `gguf` package in tests/unit/weights) and the dequantized activations
 *    q * d: |y - ref| <= (K/16 + 16) * FLT_EPSILON * A, where A is the sum of
 *    the absolute values of the terms of quant.h's formula (each path rounds
 *    the products dw * dx once and accumulates K/16 or fewer partial sums
 *    in f32; the integer sums are exact);
 *  - every ISA path against the scalar path: within twice that bound;
 *  - against the un-quantized activations: |y - ref_x| <= sum_k |W[n, k]| *
 *    0.5 d(k) * (1 + 1e-5) + the bound above (the only extra error is the
 *    activation rounding, at most half a step per value);
 *  - 1 and 2 threads bit-identical, qr_qmat_rows on a sub-range identical;
 *  - AMX (where the CPU and OS allow it) bit-identical to AVX-512 VNNI,
 *    with the signed activation layout and without it.
 * Shapes: n_tok 1, 2, 3, 5, 17, 33, 129 (GEMV and GEMM, partial 16-token
 * groups), N not a multiple of the 4-row tile nor of the unpack block,
 * K = 256 m. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "runtime/cpu/quant/quant_impl.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f; }

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = qr_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Every quant bit set (Q8_0: every value -128) and every activation at
 * +127: the largest integer sums each kernel can meet (the AVX2 pair sums
 * of maddubs saturate at 32767). */
static bool g_extreme;

/* Random blocks of type t for n rows of K: random bytes, then valid scales. */
static void rand_weights(qr_dtype t, uint8_t *w, int64_t n, int64_t K)
{
    const qr_qtype_info *ti = qr_qtype(t);
    size_t nblk = (size_t)(n * K / ti->block);
    for (size_t i = 0; i < nblk * (size_t)ti->bytes; i++)
        w[i] = g_extreme ? (t == QR_Q8_0 ? 0x80 : 0xff) : (uint8_t)rnd(); /* Q8_0: -128 */
    for (size_t i = 0; i < nblk; i++) {
        uint8_t *b = w + i * (size_t)ti->bytes;
        float s = (rnd() & 1) ? 1.0f : -1.0f;
        switch (t) {
        case QR_Q8_0: put_f16(b, s * rndf(1e-4f, 0.02f)); break;
        case QR_Q4_0:
        case QR_Q5_0: put_f16(b, s * rndf(1e-3f, 0.1f)); break;
        case QR_Q4_1:
        case QR_Q5_1:
            put_f16(b, rndf(1e-3f, 0.1f));
            put_f16(b + 2, -rndf(0.0f, 1.0f));
            break;
        case QR_Q4_K:
        case QR_Q5_K:
            put_f16(b, rndf(1e-4f, 0.005f));
            put_f16(b + 2, rndf(1e-4f, 0.01f));
            break;
        case QR_Q6_K: put_f16(b + 208, s * rndf(1e-5f, 0.001f)); break;
        default: break;
        }
    }
}

static const qr_dtype types[] = {QR_Q8_0, QR_Q4_0, QR_Q4_1, QR_Q5_0, QR_Q5_1, QR_Q4_K, QR_Q5_K, QR_Q6_K};

/* Checks the quantized activations a of x against their definition. */
static void check_act(const qr_qact *a, const float *x, int64_t n_tok, int64_t K)
{
    int64_t nb = K / 32, bad = 0;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t b = 0; b < nb; b++) {
            float amax = 0.0f;
            int sum = 0;
            for (int l = 0; l < 32; l++)
                amax = fmaxf(amax, fabsf(x[t * K + b * 32 + l]));
            float d = a->d[t * nb + b];
            if (d != amax / 127.0f)
                bad++;
            for (int l = 0; l < 32; l++) {
                int q = a->q[t * K + b * 32 + l];
                sum += q;
                if (fabs((double)q * d - x[t * K + b * 32 + l]) > 0.5001 * d + 1e-30)
                    bad++;
            }
            if (a->s[t * nb + b] != d * (float)sum)
                bad++;
        }
    CHECK_MSG(bad == 0, "%lld activation values off their definition", (long long)bad);
}

static void run_case(qr_threadpool *tp2, qr_dtype t, int64_t N, int64_t K, int64_t n_tok)
{
    size_t rb = qr_dtype_row_bytes(t, K);
    uint8_t *w = malloc(rb * (size_t)N);
    float *x = malloc(sizeof(float) * (size_t)(n_tok * K)), *wf = malloc(sizeof(float) * (size_t)(N * K));
    float *ys = malloc(sizeof(float) * (size_t)(n_tok * N)), *yi = malloc(sizeof(float) * (size_t)(n_tok * N));
    double *ref = malloc(sizeof(double) * (size_t)(n_tok * N)), *refx = malloc(sizeof(double) * (size_t)(n_tok * N));
    double *tight = malloc(sizeof(double) * (size_t)(n_tok * N)), *loose = malloc(sizeof(double) * (size_t)(n_tok * N));
    rand_weights(t, w, N, K);
    for (int64_t i = 0; i < n_tok * K; i++)
        x[i] = g_extreme ? 1.0f : rndf(-1.0f, 1.0f) * ((rnd() % 61) == 0 ? 20.0f : 1.0f);
    CHECK_OK(qr_convert_to_f32(t, w, N * K, wf));

    qr_qact a;
    void *abuf = malloc(qr_qact_bytes(n_tok, K));
    CHECK_OK(qr_quantize_act(NULL, x, (size_t)K, n_tok, K, abuf, &a));
    check_act(&a, x, n_tok, K);

    /* references from the dequantized weights, and the bound's A from the
     * unpacked integers (quant_impl.h's unpacker; its W = dw * wq + mw is
     * checked against the dequantized values) */
    const qr_qtype_info *ti = qr_qtype(t);
    void *scr = aligned_alloc(64, qr_q_scratch_bytes(K));
    qr_qrow rows[QR_QRB_MAX];
    qr_q_rows_init(scr, K, ti->G, rows);
    int64_t nb = K / 32, unpack_bad = 0;
    for (int64_t n = 0; n < N; n++) {
        qr_q_unpack(t, w + (size_t)n * rb, K, &rows[0]);
        for (int64_t k = 0; k < K; k++) {
            double wv = (double)rows[0].dw[k / ti->G] * rows[0].wq[k] + (ti->has_min ? rows[0].mw[k / 32] : 0.0);
            double mag = fabs((double)rows[0].dw[k / ti->G] * rows[0].wq[k]) + (ti->has_min ? fabs(rows[0].mw[k / 32]) : 0.0);
            if (fabs(wv - wf[n * K + k]) > 1e-6 * mag + 1e-30)
                unpack_bad++;
        }
        for (int64_t tk = 0; tk < n_tok; tk++) {
            double r = 0, rx = 0, A = 0, L = 0;
            for (int64_t k = 0; k < K; k++) {
                double dx = a.d[tk * nb + k / 32], xq = (double)a.q[tk * K + k] * dx;
                r += (double)wf[n * K + k] * xq;
                rx += (double)wf[n * K + k] * x[tk * K + k];
                A += fabs((double)rows[0].dw[k / ti->G] * rows[0].wq[k] * xq);
                L += fabs((double)wf[n * K + k]) * 0.5 * dx;
            }
            if (ti->has_min)
                for (int64_t b = 0; b < nb; b++)
                    A += fabs((double)rows[0].mw[b] * a.s[tk * nb + b]);
            ref[tk * N + n] = r;
            refx[tk * N + n] = rx;
            tight[tk * N + n] = (double)(K / 16 + 16) * FLT_EPSILON * A + 1e-30;
            loose[tk * N + n] = L * (1 + 1e-5) + tight[tk * N + n];
        }
    }
    CHECK_MSG(unpack_bad == 0, "%s: %lld unpacked weights differ from the dequantizer", qr_dtype_name(t),
              (long long)unpack_bad);

    /* scalar path */
    qr_quant_set_isa(QR_QISA_SCALAR);
    CHECK_OK(qr_qmat_mul_q(NULL, t, w, N, K, &a, ys, (size_t)N));
    qr_qisa best = qr_quant_isa_best();
    float *y512 = malloc(sizeof(float) * (size_t)(n_tok * N));
    for (int isa = QR_QISA_SCALAR; isa <= (int)best; isa++) {
        if (!qr_quant_isa_ok((qr_qisa)isa))
            continue; /* a level this CPU skips (AVX-VNNI on Zen 4, Ice Lake) */
        qr_quant_set_isa((qr_qisa)isa);
        const char *iname = qr_quant_isa_name((qr_qisa)isa);
        CHECK_OK(qr_qmat_mul_q(NULL, t, w, N, K, &a, yi, (size_t)N));
        int64_t bad_ref = 0, bad_sc = 0, bad_x = 0;
        double worst = 0;
        for (int64_t i = 0; i < n_tok * N; i++) {
            double e = fabs(yi[i] - ref[i]);
            if (!(e <= tight[i]))
                bad_ref++;
            if (!(fabs((double)yi[i] - ys[i]) <= 2 * tight[i]))
                bad_sc++;
            if (!(fabs(yi[i] - refx[i]) <= loose[i]))
                bad_x++;
            worst = e / tight[i] > worst ? e / tight[i] : worst;
        }
        CHECK_MSG(bad_ref == 0, "%s %s N %lld K %lld n_tok %lld: %lld outputs off the dequantized reference "
                  "(worst %.2f x bound)", qr_dtype_name(t), iname, (long long)N, (long long)K, (long long)n_tok,
                  (long long)bad_ref, worst);
        CHECK_MSG(bad_sc == 0, "%s %s n_tok %lld: %lld outputs off the scalar path", qr_dtype_name(t), iname,
                  (long long)n_tok, (long long)bad_sc);
        CHECK_MSG(bad_x == 0, "%s %s n_tok %lld: %lld outputs off the f32-activation reference", qr_dtype_name(t),
                  iname, (long long)n_tok, (long long)bad_x);

        /* AMX computes the integers and float operations of the AVX-512
         * GEMM in the same order: the same bits */
        if (isa == QR_QISA_AVX512VNNI)
            memcpy(y512, yi, sizeof(float) * (size_t)(n_tok * N));
        if (isa == QR_QISA_AMX) {
            CHECK_MSG(memcmp(y512, yi, sizeof(float) * (size_t)(n_tok * N)) == 0,
                      "%s amx n_tok %lld: differs from avx512vnni", qr_dtype_name(t), (long long)n_tok);
            /* activations quantized under AMX carry the signed layout (pks);
             * without it AMX takes x + 128 and corrects: the same bits too */
            CHECK(a.n_tok < QR_QGEMM_MIN_TOK || a.pks);
            qr_qact au = a;
            au.pks = NULL;
            CHECK_OK(qr_qmat_mul_q(NULL, t, w, N, K, &au, yi, (size_t)N));
            CHECK_MSG(memcmp(y512, yi, sizeof(float) * (size_t)(n_tok * N)) == 0,
                      "%s amx (unsigned activations) n_tok %lld: differs from avx512vnni", qr_dtype_name(t),
                      (long long)n_tok);
        }

        /* 2 threads (through the convenience entry, quantizing in parallel)
         * and a sub-range: bit-identical */
        float *y2 = malloc(sizeof(float) * (size_t)(n_tok * N));
        CHECK_OK(qr_qmat_mul(tp2, t, w, N, K, x, (size_t)K, n_tok, y2, (size_t)N));
        CHECK_MSG(memcmp(y2, yi, sizeof(float) * (size_t)(n_tok * N)) == 0, "%s %s n_tok %lld: 2 threads differ",
                  qr_dtype_name(t), iname, (long long)n_tok);
        int64_t n0 = N / 3, n1 = N - N / 4;
        memset(y2, 0, sizeof(float) * (size_t)(n_tok * N));
        CHECK_OK(qr_qmat_rows(t, w, K, &a, n0, n1, y2, (size_t)N));
        int64_t bad_rows = 0;
        for (int64_t tk = 0; tk < n_tok; tk++)
            for (int64_t n = n0; n < n1; n++)
                bad_rows += memcmp(&y2[tk * N + n], &yi[tk * N + n], sizeof(float)) != 0;
        CHECK_MSG(bad_rows == 0, "%s %s: qr_qmat_rows [%lld, %lld) differs in %lld outputs", qr_dtype_name(t),
                  iname, (long long)n0, (long long)n1, (long long)bad_rows);
        free(y2);
    }
    qr_quant_set_isa(best);
    free(y512);
    free(scr), free(abuf), free(w), free(x), free(wf), free(ys), free(yi), free(ref), free(refx), free(tight),
        free(loose);
}

/* Forcing a level lands on one this CPU runs: the levels are not a ladder
 * (AVX-512 VNNI without AVX-VNNI on Zen 4 and Ice Lake once ran the AVX-VNNI
 * kernels here: SIGILL). The CPU's own flags, read by gcc, are the reference. */
static void check_isa_levels(void)
{
    qr_qisa best = qr_quant_isa_best();
    CHECK(qr_quant_isa_ok(QR_QISA_SCALAR) && qr_quant_isa_ok(best));
    for (int l = QR_QISA_SCALAR; l <= QR_QISA_AMX; l++) {
        qr_qisa got = qr_quant_set_isa((qr_qisa)l);
        CHECK_MSG((int)got <= l && qr_quant_isa_ok(got) && ((int)got == l) == qr_quant_isa_ok((qr_qisa)l),
                  "set_isa(%s) gave %s", qr_quant_isa_name((qr_qisa)l), qr_quant_isa_name(got));
        CHECK(qr_quant_isa() == got);
    }
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    if (qr_quant_isa_ok(QR_QISA_AVX2))
        CHECK_MSG(qr_quant_isa_ok(QR_QISA_AVXVNNI) == (__builtin_cpu_supports("avxvnni") != 0),
                  "AVX-VNNI level %d, cpu flag %d", qr_quant_isa_ok(QR_QISA_AVXVNNI),
                  __builtin_cpu_supports("avxvnni"));
    CHECK(!qr_quant_isa_ok(QR_QISA_AVX512VNNI) || __builtin_cpu_supports("avx512vnni"));
    CHECK(!qr_quant_isa_ok(QR_QISA_AMX) || __builtin_cpu_supports("amx-int8"));
#endif
    qr_quant_set_isa(best);
}

int main(void)
{
    check_isa_levels();
    qr_threadpool *tp2;
    CHECK_OK(qr_threadpool_create(2, &tp2));
    fprintf(stderr, "best ISA: %s (avxvnni %s)\n", qr_quant_isa_name(qr_quant_isa_best()),
            qr_quant_isa_ok(QR_QISA_AVXVNNI) ? "yes" : "no");
    static const int64_t ntoks[] = {1, 2, 3, 5, 17, 129};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t i = 0; i < sizeof ntoks / sizeof ntoks[0]; i++) {
            run_case(tp2, types[ti], 37, 512, ntoks[i]);
            if (ntoks[i] <= 17)
                run_case(tp2, types[ti], 6, 256, ntoks[i]);
        }
    /* K = 1024: 32-row unpack blocks, N = 70 = two blocks, the second ending
     * in a 4-row tile and 1-row tails */
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        run_case(tp2, types[ti], 70, 1024, 33);
    /* rows of the 32-value block types that are not whole groups of 8 blocks
     * (the GEMVs gather scales 8 blocks at a time): 896 = 3 groups + 4, as the
     * 0.5B shape's; 96 = a lone partial group */
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        if (qr_dtype_block(types[ti]) == 32)
            for (size_t i = 0; i < 4; i++) {
                run_case(tp2, types[ti], 9, 896, ntoks[i]);
                run_case(tp2, types[ti], 5, 96, ntoks[i]);
            }
    g_extreme = true;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        run_case(tp2, types[ti], 8, 512, 1);
        run_case(tp2, types[ti], 8, 512, 17);
    }
    g_extreme = false;
    /* errors name the problem */
    float y[4];
    qr_qact a;
    float x[256] = {0};
    void *buf = malloc(qr_qact_bytes(1, 256));
    CHECK_OK(qr_quantize_act(NULL, x, 256, 1, 256, buf, &a));
    uint8_t w[210] = {0};
    CHECK_INT(qr_qmat_mul_q(NULL, QR_F32, w, 1, 256, &a, y, 1), QR_EINVAL);
    CHECK_INT(qr_qmat_mul_q(NULL, QR_Q4_K, w, 1, 128, &a, y, 1), QR_EINVAL);
    CHECK_INT(qr_qmat_mul_q(NULL, QR_Q8_0, w, 1, 224, &a, y, 1), QR_EINVAL); /* K differs from the activations' */
    CHECK_INT(qr_quantize_act(NULL, x, 256, 1, 100, buf, &a), QR_EINVAL);
    CHECK(!qr_qmat_supports(QR_Q2_K) && qr_qmat_supports(QR_Q6_K));
    free(buf);
    qr_threadpool_destroy(tp2);
    return qr_test_done();
}
