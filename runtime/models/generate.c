/* qr_generate: batched prefill of the prompt, then a decode loop over a
 * one-slot qr_decoder_state, with sampling, stop rules and streaming through
 * a qr_textstream (stop strings across token boundaries, held-back incomplete
 * UTF-8; see model.h). The pieces given to the callback add up to the final
 * text: when an eos ends generation with text still held back, the callback
 * is called once more with the eos id and that tail. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model_internal.h"

#define PREFILL_CHUNK 512

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

int qr_generate(qr_model *m, const int32_t *prompt, size_t n_prompt, const qr_sample_params *p, qr_token_cb cb,
                void *user, qr_gen_result *out)
{
    const qr_model_config *c = &m->cfg;
    qr_decoder_state *st = NULL;
    qr_sampler *smp = NULL;
    qr_textstream *ts = NULL;
    float *logits = NULL;
    int32_t *hist = NULL;
    size_t n_gen = 0;
    const char *finish = "length";
    int rc;
    if (!prompt || n_prompt == 0 || !p || !out)
        return qr_fail(QR_EINVAL, "generate: the prompt must hold at least one token");
    if (c->arch == QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: generation needs a decoder model (this one is %s)", m->path,
                       c->arch_name);
    if (p->max_tokens <= 0)
        return qr_fail(QR_EINVAL, "generate: max_tokens %d must be positive", p->max_tokens);
    if (p->n_stop > 0 && !m->tok)
        return qr_fail(QR_EINVAL, "%s: stop strings need a tokenizer", m->path);
    if (n_prompt >= (size_t)c->max_pos)
        return qr_fail(QR_ELIMIT, "generate: prompt of %zu tokens leaves no room in the context of %d", n_prompt,
                       c->max_pos);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return qr_fail(QR_EINVAL, "generate: prompt token %zu: id %d outside the vocabulary (%d)", i, prompt[i],
                           c->vocab_size);
    size_t max_new = (size_t)p->max_tokens;
    if (max_new > (size_t)c->max_pos - n_prompt) {
        max_new = (size_t)c->max_pos - n_prompt;
        QR_INFO("generate: max_tokens %d capped to %zu by the context length %d", p->max_tokens, max_new, c->max_pos);
    }
    int n_ctx = (int)(n_prompt + max_new);
    if ((rc = qr_textstream_create(m->tok, p->stop, p->n_stop, &ts)) ||
        (rc = qr_decoder_state_create(m, 1, n_ctx, &st)) || (rc = qr_sampler_create(p, c->vocab_size, &smp)))
        goto fail;
    logits = malloc((size_t)c->vocab_size * sizeof *logits);
    hist = malloc((n_prompt + max_new) * sizeof *hist);
    if (!logits || !hist) {
        rc = qr_fail(QR_ENOMEM, "generate: buffers");
        goto fail;
    }
    memcpy(hist, prompt, n_prompt * sizeof *hist);

    double t0 = now_s();
    for (size_t i = 0; i < n_prompt; i += PREFILL_CHUNK) {
        size_t n = n_prompt - i < PREFILL_CHUNK ? n_prompt - i : PREFILL_CHUNK;
        qr_dec_seq s = {.slot = 0, .ids = prompt + i, .n = (int32_t)n};
        if ((rc = qr_decoder_step(st, &s, 1, i + n == n_prompt ? logits : NULL)))
            goto fail;
    }
    double t1 = now_s();

    for (;;) {
        int32_t id;
        const char *piece;
        bool stopped;
        if ((rc = qr_sampler_sample(smp, logits, hist, n_prompt + n_gen, &id)))
            goto fail;
        if (is_eos(c, id)) {
            finish = "stop";
            /* flush the held tail so the streamed pieces add up to the text */
            if ((rc = qr_textstream_flush(ts, &piece)))
                goto fail;
            if (cb && piece[0])
                cb(id, piece, user);
            break;
        }
        hist[n_prompt + n_gen++] = id;
        bool last = n_gen == max_new;
        if ((rc = qr_textstream_push(ts, id, last, &piece, &stopped)))
            goto fail;
        if (cb && cb(id, piece, user)) {
            finish = stopped ? "stop" : "callback";
            break;
        }
        if (stopped) {
            finish = "stop";
            break;
        }
        if (last)
            break;
        qr_dec_seq s = {.slot = 0, .ids = &id, .n = 1};
        if ((rc = qr_decoder_step(st, &s, 1, logits)))
            goto fail;
    }
    double t2 = now_s();

    size_t n_kept;
    const int32_t *kept = qr_textstream_ids(ts, &n_kept);
    qr_gen_result r;
    memset(&r, 0, sizeof r);
    r.ids = malloc((n_kept ? n_kept : 1) * sizeof *r.ids);
    r.text = strdup(qr_textstream_text(ts));
    if (!r.ids || !r.text) {
        free(r.ids);
        free(r.text);
        rc = qr_fail(QR_ENOMEM, "generate: result");
        goto fail;
    }
    if (n_kept)
        memcpy(r.ids, kept, n_kept * sizeof *r.ids);
    r.n_ids = n_kept;
    r.n_prompt = (int)n_prompt;
    r.finish = finish;
    r.prefill_s = t1 - t0;
    r.decode_s = t2 - t1;
    QR_DEBUG("generate: prompt %zu tokens in %.3f s (%.1f tok/s), %zu tokens in %.3f s (%.1f tok/s), finish %s",
            n_prompt, r.prefill_s, n_prompt / (r.prefill_s > 0 ? r.prefill_s : 1e-9), n_gen, r.decode_s,
            n_gen / (r.decode_s > 0 ? r.decode_s : 1e-9), finish);
    *out = r;
    rc = QR_OK;
fail:
    free(hist);
    free(logits);
    qr_sampler_free(smp);
    qr_decoder_state_free(st);
    qr_textstream_free(ts);
    return rc;
}
