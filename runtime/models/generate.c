/* qr_generate: batched prefill of the prompt, then a decode loop over a
 * one-slot qr_decoder_state, with sampling, stop rules and streaming through
 * a qr_textstream (stop strings across token boundaries, held-back incomplete
 * UTF-8; see model.h). The pieces given to the callback add up to the final
 * text: when an eos ends generation with text still held back, the callback
 * is called once more with the eos id and that tail.
 *
 * The per-sequence part (sampling, eos / stop strings / max_tokens, text) is
 * qr_genseq, also used by generate/scheduler.c for batched generations, so a
 * generation gives the same ids whether it runs alone or beside others. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model_internal.h"

struct qr_genseq {
    const qr_model_config *c;
    qr_sampler *smp;
    qr_textstream *ts;
    int32_t *hist;    // (n_prompt + max_new) prompt then generated ids
    size_t n_prompt, n_gen, max_new;
    const char *finish; /* NULL while running */
    bool greedy;        /* temperature 0 and no repetition penalty: the arg-max */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool is_eos(const qr_model_config *c, int32_t id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return true;
    return false;
}

void qr_gen_result_free(qr_gen_result *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->text);
    r->ids = NULL;
    r->text = NULL;
}

int qr_genseq_create(qr_model *m, const int32_t *prompt, size_t n_prompt, const qr_sample_params *p, int n_ctx,
                     qr_genseq **out)
{
    const qr_model_config *c = &m->cfg;
    if (!prompt || n_prompt == 0 || !p || !out)
        return qr_fail(QR_EINVAL, "generate: the prompt must hold at least one token");
    if (c->arch == QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: generation needs a decoder model (this one is %s)", m->path,
                       c->arch_name);
    if (p->max_tokens <= 0)
        return qr_fail(QR_EINVAL, "generate: max_tokens %d must be positive", p->max_tokens);
    if (p->n_stop > 0 && !m->tok)
        return qr_fail(QR_EINVAL, "%s: stop strings need a tokenizer", m->path);
    if (n_ctx <= 0 || n_prompt >= (size_t)n_ctx)
        return qr_fail(QR_ELIMIT, "generate: prompt of %zu tokens leaves no room in the context of %d", n_prompt,
                       n_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return qr_fail(QR_EINVAL, "generate: prompt token %zu: id %d outside the vocabulary (%d)", i, prompt[i],
                           c->vocab_size);
    qr_genseq *g = calloc(1, sizeof *g);
    if (!g)
        return qr_fail(QR_ENOMEM, "generate: sequence state");
    g->c = c;
    g->greedy = p->temperature == 0.0f && p->repeat_penalty == 1.0f;
    g->n_prompt = n_prompt;
    g->max_new = (size_t)p->max_tokens;
    if (g->max_new > (size_t)n_ctx - n_prompt) {
        g->max_new = (size_t)n_ctx - n_prompt;
        QR_INFO("generate: max_tokens %d capped to %zu by the context length %d", p->max_tokens, g->max_new, n_ctx);
    }
    int rc;
    if ((rc = qr_textstream_create(m->tok, p->stop, p->n_stop, &g->ts)) ||
        (rc = qr_sampler_create(p, c->vocab_size, &g->smp)))
        goto fail;
    if (!(g->hist = malloc((n_prompt + g->max_new) * sizeof *g->hist))) {
        rc = qr_fail(QR_ENOMEM, "generate: history of %zu ids", n_prompt + g->max_new);
        goto fail;
    }
    memcpy(g->hist, prompt, n_prompt * sizeof *g->hist);
    *out = g;
    return QR_OK;
fail:
    qr_genseq_free(g);
    return rc;
}

void qr_genseq_free(qr_genseq *g)
{
    if (!g)
        return;
    qr_sampler_free(g->smp);
    qr_textstream_free(g->ts);
    free(g->hist);
    free(g);
}

size_t qr_genseq_max_new(const qr_genseq *g) { return g->max_new; }
const char *qr_genseq_finish(const qr_genseq *g) { return g->finish; }
size_t qr_genseq_n_generated(const qr_genseq *g) { return g->n_gen; }

void qr_genseq_end(qr_genseq *g, const char *finish)
{
    if (!g->finish || strcmp(g->finish, "stop") != 0)
        g->finish = finish;
}

bool qr_genseq_greedy(const qr_genseq *g) { return g->greedy; }

int qr_genseq_next(qr_genseq *g, const float *logits, qr_genseq_tok *out)
{
    if (g->finish)
        return qr_fail(QR_EINVAL, "generate: next token requested after the generation ended (%s)", g->finish);
    int32_t id;
    int rc = qr_sampler_sample(g->smp, logits, g->hist, g->n_prompt + g->n_gen, &id);
    if (rc)
        return rc;
    return qr_genseq_next_id(g, id, out);
}

int qr_genseq_next_id(qr_genseq *g, int32_t id, qr_genseq_tok *out)
{
    if (g->finish)
        return qr_fail(QR_EINVAL, "generate: next token requested after the generation ended (%s)", g->finish);
    if (id < 0 || id >= g->c->vocab_size)
        return qr_fail(QR_EINVAL, "generate: token id %d outside the vocabulary (%d)", id, g->c->vocab_size);
    const char *piece;
    bool stopped;
    int rc;
    qr_genseq_tok t = {.id = id};
    if (is_eos(g->c, id)) {
        /* flush the held tail so the streamed pieces add up to the text */
        if ((rc = qr_textstream_flush(g->ts, &piece)))
            return rc;
        g->n_gen++; /* counted, never stored: hist has room for max_new kept ids only */
        g->finish = "stop";
        t.piece = piece;
        t.eos = t.done = true;
        *out = t;
        return QR_OK;
    }
    bool last = g->n_gen + 1 == g->max_new;
    if ((rc = qr_textstream_push(g->ts, id, last, &piece, &stopped)))
        return rc;
    g->hist[g->n_prompt + g->n_gen++] = id;
    if (stopped)
        g->finish = "stop";
    else if (last)
        g->finish = "length";
    t.piece = piece;
    t.done = g->finish != NULL;
    *out = t;
    return QR_OK;
}

int qr_genseq_result(const qr_genseq *g, qr_gen_result *out)
{
    size_t n_kept;
    const int32_t *kept = qr_textstream_ids(g->ts, &n_kept);
    qr_gen_result r;
    memset(&r, 0, sizeof r);
    r.ids = malloc((n_kept ? n_kept : 1) * sizeof *r.ids);
    r.text = strdup(qr_textstream_text(g->ts));
    if (!r.ids || !r.text) {
        free(r.ids);
        free(r.text);
        return qr_fail(QR_ENOMEM, "generate: result");
    }
    if (n_kept)
        memcpy(r.ids, kept, n_kept * sizeof *r.ids);
    r.n_ids = n_kept;
    r.n_prompt = (int)g->n_prompt;
    r.finish = g->finish ? g->finish : "length";
    *out = r;
    return QR_OK;
}

int qr_generate(qr_model *m, const int32_t *prompt, size_t n_prompt, const qr_sample_params *p, qr_token_cb cb,
                void *user, qr_gen_result *out)
{
    const qr_model_config *c = &m->cfg;
    qr_genseq *g = NULL;
    qr_decoder_state *st = NULL;
    float *logits = NULL;
    int rc;
    if (!out)
        return qr_fail(QR_EINVAL, "generate: NULL result");
    if ((rc = qr_genseq_create(m, prompt, n_prompt, p, c->max_pos, &g)))
        return rc;
    int n_ctx = (int)(n_prompt + qr_genseq_max_new(g));
    if ((rc = qr_decoder_state_create(m, 1, n_ctx, &st)))
        goto fail;
    if (!(logits = malloc((size_t)c->vocab_size * sizeof *logits))) {
        rc = qr_fail(QR_ENOMEM, "generate: logits");
        goto fail;
    }

    /* Greedy on a backend that selects on the device: only the arg-max id
     * comes back per step, not the logits row (same id: lowest on ties). */
    bool dev_greedy = qr_genseq_greedy(g) && qr_decoder_has_topk(st);
    int32_t best = 0;

    double t0 = now_s();
    for (size_t i = 0; i < n_prompt; i += QR_PREFILL_CHUNK) {
        size_t n = n_prompt - i < QR_PREFILL_CHUNK ? n_prompt - i : QR_PREFILL_CHUNK;
        qr_dec_seq s = {.slot = 0, .ids = prompt + i, .n = (int32_t)n};
        bool lastc = i + n == n_prompt;
        if ((rc = lastc && dev_greedy ? qr_decoder_step_topk(st, &s, 1, 1, &best, NULL)
                                      : qr_decoder_step(st, &s, 1, lastc ? logits : NULL)))
            goto fail;
    }
    double t1 = now_s();

    for (;;) {
        qr_genseq_tok t;
        if ((rc = dev_greedy ? qr_genseq_next_id(g, best, &t) : qr_genseq_next(g, logits, &t)))
            goto fail;
        if (t.eos) {
            if (cb && t.piece[0])
                cb(t.id, t.piece, user);
            break;
        }
        if (cb && cb(t.id, t.piece, user)) {
            qr_genseq_end(g, "callback");
            break;
        }
        if (t.done)
            break;
        qr_dec_seq s = {.slot = 0, .ids = &t.id, .n = 1};
        if ((rc = dev_greedy ? qr_decoder_step_topk(st, &s, 1, 1, &best, NULL) : qr_decoder_step(st, &s, 1, logits)))
            goto fail;
    }
    double t2 = now_s();

    qr_gen_result r;
    if ((rc = qr_genseq_result(g, &r)))
        goto fail;
    r.prefill_s = t1 - t0;
    r.decode_s = t2 - t1;
    size_t n_gen = qr_genseq_n_generated(g);
    QR_DEBUG("generate: prompt %zu tokens in %.3f s (%.1f tok/s), %zu tokens in %.3f s (%.1f tok/s), finish %s",
             n_prompt, r.prefill_s, n_prompt / (r.prefill_s > 0 ? r.prefill_s : 1e-9), n_gen, r.decode_s,
             n_gen / (r.decode_s > 0 ? r.decode_s : 1e-9), r.finish);
    *out = r;
    rc = QR_OK;
fail:
    free(logits);
    qr_decoder_state_free(st);
    qr_genseq_free(g);
    return rc;
}
