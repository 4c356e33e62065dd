/* Token sampling with Hugging Face transformers semantics.
 *
 * Order (as generate() builds its processors): repetition penalty, then the
 * warpers temperature, top-k, top-p, min-p; then a draw from softmax.
 * - repetition penalty (RepetitionPenaltyLogitsProcessor): every distinct id of
 *   the history window: logit < 0 ? logit * penalty : logit / penalty.
 * - top-k (TopKLogitsWarper): removes logits strictly below the k-th largest
 *   (ties with the k-th survive).
 * - top-p (TopPLogitsWarper): sorts ascending, removes the tokens whose
 *   cumulative probability is <= 1 - top_p; the most likely token always stays.
 * - min-p (MinPLogitsWarper): removes tokens with p < min_p * p_max.
 * Greedy (temperature 0) takes the arg-max of the penalised logits.
 *
 * RNG: xoshiro256** 1.0 (Blackman & Vigna, public domain algorithm), state
 * seeded from splitmix64(seed); uniforms are the top 53 bits / 2^53. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model.h"

void qr_sample_params_default(qr_sample_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 0; /* HF: the whole context, prompt included */
    p->seed = 0;
    p->max_tokens = 256;
}

static int check_params(const qr_sample_params *p)
{
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return qr_fail(QR_EINVAL, "sampling: temperature %g must be >= 0", (double)p->temperature);
    if (p->top_k < 0)
        return qr_fail(QR_EINVAL, "sampling: top_k %d must be >= 0", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return qr_fail(QR_EINVAL, "sampling: top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return qr_fail(QR_EINVAL, "sampling: min_p %g must be in [0, 1]", (double)p->min_p);
    if (!(p->repeat_penalty > 0) || !isfinite(p->repeat_penalty))
        return qr_fail(QR_EINVAL, "sampling: repeat_penalty %g must be > 0", (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return qr_fail(QR_EINVAL, "sampling: repeat_last_n %d must be >= 0", p->repeat_last_n);
    return QR_OK;
}

typedef struct {
    float logit;
    int32_t id;
} cand;

/* Descending by logit, then ascending id (deterministic ties). */
static int cand_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return (x->id > y->id) - (x->id < y->id);
}

int qr_sample_probs(const qr_sample_params *p, const float *logits, int32_t n_vocab, const int32_t *hist,
                    size_t n_hist, float *probs)
{
    int rc = check_params(p);
    if (rc)
        return rc;
    if (n_vocab <= 0 || !logits || !probs)
        return qr_fail(QR_EINVAL, "sampling: empty vocabulary");
    cand *c = malloc((size_t)n_vocab * sizeof *c);
    unsigned char *seen = NULL;
    if (!c)
        return qr_fail(QR_ENOMEM, "sampling: %d candidates", n_vocab);
    for (int32_t i = 0; i < n_vocab; i++)
        c[i] = (cand){.logit = logits[i], .id = i};

    if (p->repeat_penalty != 1.0f && n_hist > 0) {
        seen = calloc((size_t)n_vocab, 1);
        if (!seen) {
            free(c);
            return qr_fail(QR_ENOMEM, "sampling: penalty");
        }
        size_t from = p->repeat_last_n > 0 && n_hist > (size_t)p->repeat_last_n ? n_hist - (size_t)p->repeat_last_n : 0;
        for (size_t i = from; i < n_hist; i++) {
            int32_t id = hist[i];
            if (id < 0 || id >= n_vocab || seen[id])
                continue;
            seen[id] = 1;
            float l = c[id].logit;
            c[id].logit = l < 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
        }
        free(seen);
    }
    for (int32_t i = 0; i < n_vocab; i++)
        probs[i] = 0.0f;

    if (p->temperature == 0.0f) { /* greedy */
        int32_t best = 0;
        for (int32_t i = 1; i < n_vocab; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        probs[best] = 1.0f;
        free(c);
        return QR_OK;
    }
    /* Tokens more than 40 nats (after temperature) below the best carry
     * probability < 4e-18 each; they are dropped before sorting so a 150k
     * vocabulary does not pay a full sort per token. The mass removed is far
     * below float resolution, so top-p/min-p decisions are unaffected. */
    float best = c[0].logit;
    for (int32_t i = 1; i < n_vocab; i++)
        best = c[i].logit > best ? c[i].logit : best;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = c[i].logit / p->temperature;
        if (l >= best / p->temperature - 40.0f)
            c[n++] = (cand){.logit = l, .id = c[i].id};
    }
    qsort(c, (size_t)n, sizeof *c, cand_desc); /* survivors: c[0..n-1], sorted descending */

    if (p->top_k > 0 && p->top_k < n) {
        float kth = c[p->top_k - 1].logit;
        int32_t keep = p->top_k;
        while (keep < n && c[keep].logit >= kth)
            keep++;
        n = keep;
    }
    /* softmax over survivors, in double */
    double *pr = malloc((size_t)n * sizeof *pr);
    if (!pr) {
        free(c);
        return qr_fail(QR_ENOMEM, "sampling: probabilities");
    }
    double mx = c[0].logit, sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += pr[i] = exp((double)c[i].logit - mx);
    for (int32_t i = 0; i < n; i++)
        pr[i] /= sum;

    if (p->top_p < 1.0f) {
        /* Ascending cumulative sum from the least likely survivor; a token is
         * removed when the mass up to and including it is <= 1 - top_p. */
        double cum = 0, thr = 1.0 - (double)p->top_p;
        int32_t keep = n;
        for (int32_t i = n - 1; i >= 1; i--) {
            cum += pr[i];
            if (cum <= thr)
                keep = i;
            else
                break;
        }
        n = keep;
        sum = 0;
        for (int32_t i = 0; i < n; i++)
            sum += pr[i];
        for (int32_t i = 0; i < n; i++)
            pr[i] /= sum;
    }
    if (p->min_p > 0.0f) {
        double thr = (double)p->min_p * pr[0];
        int32_t keep = 1;
        while (keep < n && pr[keep] >= thr)
            keep++;
        n = keep;
        sum = 0;
        for (int32_t i = 0; i < n; i++)
            sum += pr[i];
        for (int32_t i = 0; i < n; i++)
            pr[i] /= sum;
    }
    for (int32_t i = 0; i < n; i++)
        probs[c[i].id] = (float)pr[i];
    free(pr);
    free(c);
    return QR_OK;
}

struct qr_sampler {
    qr_sample_params p;
    int32_t n_vocab;
    uint64_t s[4];
    float *probs;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t *s)
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

int qr_sampler_create(const qr_sample_params *p, int32_t n_vocab, qr_sampler **out)
{
    int rc = check_params(p);
    if (rc)
        return rc;
    if (n_vocab <= 0)
        return qr_fail(QR_EINVAL, "sampler: vocabulary size %d", n_vocab);
    qr_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "sampler");
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    if (!s->probs) {
        free(s);
        return qr_fail(QR_ENOMEM, "sampler: %d probabilities", n_vocab);
    }
    s->p = *p;
    s->p.stop = NULL; /* not kept: borrowed from the caller */
    s->p.n_stop = 0;
    s->n_vocab = n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->s[i] = splitmix64(&x);
    *out = s;
    return QR_OK;
}

void qr_sampler_free(qr_sampler *s)
{
    if (!s)
        return;
    free(s->probs);
    free(s);
}

double qr_sampler_uniform(qr_sampler *s) { return (double)(xoshiro_next(s->s) >> 11) * 0x1.0p-53; }

int qr_sampler_sample(qr_sampler *s, const float *logits, const int32_t *hist, size_t n_hist, int32_t *out)
{
    if (s->p.temperature == 0.0f && (s->p.repeat_penalty == 1.0f || n_hist == 0)) {
        /* plain greedy: the arg-max, lowest id on ties, without building a distribution */
        int32_t best = 0;
        for (int32_t i = 1; i < s->n_vocab; i++)
            if (logits[i] > logits[best])
                best = i;
        *out = best;
        return QR_OK;
    }
    int rc = qr_sample_probs(&s->p, logits, s->n_vocab, hist, n_hist, s->probs);
    if (rc)
        return rc;
    int32_t last = -1;
    if (s->p.temperature == 0.0f) {
        for (int32_t i = 0; i < s->n_vocab; i++)
            if (s->probs[i] > 0) {
                *out = i;
                return QR_OK;
            }
    }
    double u = qr_sampler_uniform(s), cum = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (s->probs[i] <= 0)
            continue;
        last = i;
        cum += s->probs[i];
        if (u < cum) {
            *out = i;
            return QR_OK;
        }
    }
    if (last < 0)
        return qr_fail(QR_EINTERNAL, "sampler: empty distribution");
    *out = last; /* rounding left u above the total mass */
    return QR_OK;
}
