/* Sampler: survivor sets and probabilities against hand-computed
 * distributions (HF transformers semantics), penalty arithmetic, and seeded
 * sampling frequencies against the probabilities within statistical bounds. */
#include <math.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

static qr_sample_params base(float temp)
{
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.temperature = temp;
    return p;
}

/* Hand softmax of n values (the expected distribution over survivors). */
static void softmax(const double *x, int n, double *out)
{
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++)
        s += out[i] = exp(x[i] - mx);
    for (int i = 0; i < n; i++)
        out[i] /= s;
}

static void test_greedy(void)
{
    float lg[4] = {1, 3, 3, 2}, pr[4];
    qr_sample_params p = base(0);
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK(pr[1] == 1.0f && pr[0] == 0 && pr[2] == 0 && pr[3] == 0); /* lowest id on ties */
    qr_sampler *s;
    int32_t id = -1;
    CHECK_OK(qr_sampler_create(&p, 4, &s));
    CHECK_OK(qr_sampler_sample(s, lg, NULL, 0, &id));
    CHECK_INT(id, 1);
    qr_sampler_free(s);
}

static void test_penalty(void)
{
    /* HF: positive logits divided, negative multiplied, each distinct id once */
    float lg[4] = {2, -1, 0.5f, 3}, pr[4];
    int32_t hist[] = {0, 1, 1, 0};
    qr_sample_params p = base(1);
    p.repeat_penalty = 2;
    CHECK_OK(qr_sample_probs(&p, lg, 4, hist, 4, pr));
    double want_l[4] = {1, -2, 0.5, 3}, want[4];
    softmax(want_l, 4, want);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(pr[i], want[i], 1e-6);
    /* window: only the last 1 id (1) is penalised */
    p.repeat_last_n = 1;
    CHECK_OK(qr_sample_probs(&p, lg, 4, hist + 1, 2, pr));
    double want_l2[4] = {2, -2, 0.5, 3};
    softmax(want_l2, 4, want);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(pr[i], want[i], 1e-6);
    /* greedy after penalty: 3 stays the max; penalising it (3/4=0.75) makes 0 win */
    qr_sample_params g = base(0);
    g.repeat_penalty = 4;
    int32_t h3[] = {3};
    CHECK_OK(qr_sample_probs(&g, lg, 4, h3, 1, pr));
    CHECK(pr[0] == 1.0f);
    qr_sampler *s;
    int32_t id = -1;
    CHECK_OK(qr_sampler_create(&g, 4, &s));
    CHECK_OK(qr_sampler_sample(s, lg, h3, 1, &id));
    CHECK_INT(id, 0);
    CHECK_OK(qr_sampler_sample(s, lg, NULL, 0, &id));
    CHECK_INT(id, 3);
    qr_sampler_free(s);
}

static void test_temperature(void)
{
    float lg[3] = {0, 1, 2}, pr[3];
    qr_sample_params p = base(2);
    CHECK_OK(qr_sample_probs(&p, lg, 3, NULL, 0, pr));
    double x[3] = {0, 0.5, 1}, want[3];
    softmax(x, 3, want);
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(pr[i], want[i], 1e-6);
}

static void test_top_k(void)
{
    float lg[5] = {1, 2, 3, 4, 5}, pr[5];
    qr_sample_params p = base(1);
    p.top_k = 2;
    CHECK_OK(qr_sample_probs(&p, lg, 5, NULL, 0, pr));
    double x[2] = {5, 4}, want[2];
    softmax(x, 2, want);
    CHECK_NEAR(pr[4], want[0], 1e-6);
    CHECK_NEAR(pr[3], want[1], 1e-6);
    CHECK(pr[0] == 0 && pr[1] == 0 && pr[2] == 0);
    /* ties with the k-th logit survive (scores < kth are removed) */
    float lt[4] = {5, 4, 4, 1}, pt[4];
    CHECK_OK(qr_sample_probs(&p, lt, 4, NULL, 0, pt));
    CHECK(pt[0] > 0 && pt[1] > 0 && pt[2] > 0 && pt[3] == 0);
    CHECK_NEAR(pt[1], pt[2], 1e-7);
    /* k larger than the vocabulary keeps all */
    p.top_k = 10;
    CHECK_OK(qr_sample_probs(&p, lg, 5, NULL, 0, pr));
    CHECK(pr[0] > 0);
}

/* logits = log p, so the softmax is p itself */
static void probs_logits(const double *p, int n, float *lg)
{
    for (int i = 0; i < n; i++)
        lg[i] = (float)log(p[i]);
}

static void test_top_p(void)
{
    const double P[4] = {0.15, 0.5, 0.05, 0.3};
    float lg[4], pr[4];
    probs_logits(P, 4, lg);
    qr_sample_params p = base(1);
    /* ascending cumulative: 0.05, 0.20, 0.50, 1.0; remove while <= 1 - top_p */
    p.top_p = 0.75f; /* threshold 0.25: 0.05 and 0.15 go */
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK_NEAR(pr[1], 0.5 / 0.8, 1e-6);
    CHECK_NEAR(pr[3], 0.3 / 0.8, 1e-6);
    CHECK(pr[0] == 0 && pr[2] == 0);
    p.top_p = 0.9f; /* threshold 0.1: only 0.05 goes */
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK_NEAR(pr[1], 0.5 / 0.95, 1e-6);
    CHECK_NEAR(pr[3], 0.3 / 0.95, 1e-6);
    CHECK_NEAR(pr[0], 0.15 / 0.95, 1e-6);
    CHECK(pr[2] == 0);
    p.top_p = 0.01f; /* the top token always stays */
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK(pr[1] == 1.0f);
    /* top-k then top-p: k=3 keeps {0.5,0.3,0.15} renormalised to /0.95; then
     * top_p 0.8 (threshold 0.2): 0.15/0.95 = 0.158 goes */
    p.top_k = 3;
    p.top_p = 0.8f;
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK_NEAR(pr[1], 0.5 / 0.8, 1e-6);
    CHECK_NEAR(pr[3], 0.3 / 0.8, 1e-6);
    CHECK(pr[0] == 0 && pr[2] == 0);
}

static void test_min_p(void)
{
    const double P[4] = {0.15, 0.5, 0.05, 0.3};
    float lg[4], pr[4];
    probs_logits(P, 4, lg);
    qr_sample_params p = base(1);
    p.min_p = 0.2f; /* threshold 0.1: 0.05 goes */
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK_NEAR(pr[0], 0.15 / 0.95, 1e-6);
    CHECK(pr[2] == 0);
    p.min_p = 0.5f; /* threshold 0.25: 0.15 and 0.05 go */
    CHECK_OK(qr_sample_probs(&p, lg, 4, NULL, 0, pr));
    CHECK_NEAR(pr[1], 0.5 / 0.8, 1e-6);
    CHECK_NEAR(pr[3], 0.3 / 0.8, 1e-6);
    CHECK(pr[0] == 0 && pr[2] == 0);
}

static void test_bad_params(void)
{
    float lg[2] = {0, 0}, pr[2];
    qr_sample_params p = base(1);
    p.top_p = 0;
    CHECK(qr_sample_probs(&p, lg, 2, NULL, 0, pr) == QR_EINVAL);
    p = base(-1);
    CHECK(qr_sample_probs(&p, lg, 2, NULL, 0, pr) == QR_EINVAL);
    p = base(1);
    p.repeat_penalty = 0;
    CHECK(qr_sample_probs(&p, lg, 2, NULL, 0, pr) == QR_EINVAL);
}

static void test_frequencies(void)
{
    const double P[4] = {0.15, 0.5, 0.05, 0.3};
    float lg[4];
    probs_logits(P, 4, lg);
    qr_sample_params p = base(1);
    p.seed = 12345;
    qr_sampler *s, *s2, *s3;
    CHECK_OK(qr_sampler_create(&p, 4, &s));
    CHECK_OK(qr_sampler_create(&p, 4, &s2));
    p.seed = 12346;
    CHECK_OK(qr_sampler_create(&p, 4, &s3));
    const int N = 200000;
    long cnt[4] = {0};
    int same = 1, diff = 0, ok = 1;
    for (int i = 0; i < N; i++) {
        int32_t a = 0, b = 0, c = 0;
        ok &= qr_sampler_sample(s, lg, NULL, 0, &a) == 0;
        ok &= qr_sampler_sample(s2, lg, NULL, 0, &b) == 0;
        ok &= qr_sampler_sample(s3, lg, NULL, 0, &c) == 0;
        cnt[a]++;
        same &= a == b;
        diff += a != c;
    }
    CHECK(ok);
    CHECK(same);      /* same seed, same draws */
    CHECK(diff > 0);  /* another seed, other draws */
    for (int i = 0; i < 4; i++) {
        double f = (double)cnt[i] / N, sd = sqrt(P[i] * (1 - P[i]) / N);
        CHECK_MSG(fabs(f - P[i]) < 5 * sd, "token %d: frequency %.5f vs p %.5f (5 sd = %.5f)", i, f, P[i], 5 * sd);
    }
    /* the uniforms: mean 1/2, variance 1/12 */
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) {
        double u = qr_sampler_uniform(s);
        ok &= u >= 0 && u < 1;
        m += u;
        v += (u - 0.5) * (u - 0.5);
    }
    CHECK(ok);
    m /= N;
    v /= N;
    CHECK_NEAR(m, 0.5, 5 * sqrt(1.0 / 12 / N));
    CHECK_NEAR(v, 1.0 / 12, 0.002);
    qr_sampler_free(s);
    qr_sampler_free(s2);
    qr_sampler_free(s3);

    /* with top-k 2 only tokens 1 and 3 are ever drawn, in ratio 0.5 : 0.3 */
    p.top_k = 2;
    CHECK_OK(qr_sampler_create(&p, 4, &s));
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) {
        int32_t a = 0;
        ok &= qr_sampler_sample(s, lg, NULL, 0, &a) == 0;
        cnt[a]++;
    }
    CHECK(ok);
    CHECK(cnt[0] == 0 && cnt[2] == 0);
    double f1 = (double)cnt[1] / N, p1 = 0.5 / 0.8;
    CHECK_NEAR(f1, p1, 5 * sqrt(p1 * (1 - p1) / N));
    qr_sampler_free(s);
    qr_sampler_free(NULL);
}

int main(void)
{
    test_greedy();
    test_penalty();
    test_temperature();
    test_top_k();
    test_top_p();
    test_min_p();
    test_bad_params();
    test_frequencies();
    return qr_test_done();
}
