/* qr_generate: batched prefill of the prompt, then a decode loop over a
 * one-slot qr_decoder_state, with sampling, stop rules and streaming.
 *
 * Streaming: after each token the whole completion is detokenized again and
 * the part not yet emitted is handed to the callback, except a tail that may
 * still change: an incomplete UTF-8 sequence or trailing U+FFFD (a byte-
 * fallback character whose other bytes have not arrived yet), and the longest
 * suffix that is a prefix of a stop string. The held tail is flushed with the
 * last token when generation ends by length.
 *
 * Stop strings are searched in the detokenized text, so they are found across
 * token boundaries; the text is cut before the earliest match, and the token
 * that completed the match is left out of ids (as is an eos token).
 * The pieces given to the callback always add up to the final text: when an
 * eos ends generation with text still held back, the callback is called once
 * more with the eos id and that tail. */
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

/* Length of text[0..n) that is safe to emit as far as UTF-8 goes. */
static size_t utf8_safe_len(const char *t, size_t n)
{
    /* drop trailing U+FFFD (EF BF BD) */
    while (n >= 3 && (unsigned char)t[n - 3] == 0xEF && (unsigned char)t[n - 2] == 0xBF &&
           (unsigned char)t[n - 1] == 0xBD)
        n -= 3;
    /* drop an incomplete trailing sequence */
    size_t i = n, k = 0;
    while (i > 0 && k < 4 && ((unsigned char)t[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i > 0) {
        unsigned char lead = (unsigned char)t[i - 1];
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (lead >= 0xC0 && k < need)
            return i - 1;
    }
    return n;
}

/* Longest suffix of text[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_len(const char *t, size_t n, const qr_sample_params *p)
{
    size_t best = 0;
    for (int s = 0; s < p->n_stop; s++) {
        size_t L = strlen(p->stop[s]);
        for (size_t k = L > 0 ? L - 1 : 0; k > best; k--)
            if (k <= n && memcmp(t + n - k, p->stop[s], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Earliest match of any stop string at or after `from`; returns its offset or -1. */
static long find_stop(const char *t, size_t n, size_t from, const qr_sample_params *p)
{
    long best = -1;
    for (int s = 0; s < p->n_stop; s++) {
        size_t L = strlen(p->stop[s]);
        if (L == 0 || L > n)
            continue;
        const char *hit = memmem(t + from, n - from, p->stop[s], L);
        if (hit && (best < 0 || hit - t < best))
            best = hit - t;
    }
    return best;
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
    float *logits = NULL;
    int32_t *hist = NULL;
    char *text = NULL, *piece = NULL;
    size_t emitted = 0, text_len = 0, n_gen = 0;
    const char *finish = "length";
    int rc;
    if (!prompt || n_prompt == 0 || !p || !out)
        return qr_fail(QR_EINVAL, "generate: the prompt must hold at least one token");
    if (c->arch == QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "%s: generation needs a decoder model (this one is %s)", m->path,
                       c->arch_name);
    if (p->max_tokens <= 0)
        return qr_fail(QR_EINVAL, "generate: max_tokens %d must be positive", p->max_tokens);
    if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
        return qr_fail(QR_EINVAL, "generate: bad stop list");
    if (p->n_stop > 0 && !m->tok)
        return qr_fail(QR_EINVAL, "%s: stop strings need a tokenizer", m->path);
    if (n_prompt >= (size_t)c->max_pos)
        return qr_fail(QR_ELIMIT, "generate: prompt of %zu tokens leaves no room in the context of %d", n_prompt,
                       c->max_pos);
    size_t max_new = (size_t)p->max_tokens;
    if (max_new > (size_t)c->max_pos - n_prompt) {
        max_new = (size_t)c->max_pos - n_prompt;
        QR_INFO("generate: max_tokens %d capped to %zu by the context length %d", p->max_tokens, max_new, c->max_pos);
    }
    int n_ctx = (int)(n_prompt + max_new);
    if ((rc = qr_decoder_state_create(m, 1, n_ctx, &st)) || (rc = qr_sampler_create(p, c->vocab_size, &smp)))
        goto fail;
    logits = malloc((size_t)c->vocab_size * sizeof *logits);
    hist = malloc((n_prompt + max_new) * sizeof *hist);
    piece = malloc(1);
    if (!logits || !hist || !piece) {
        rc = qr_fail(QR_ENOMEM, "generate: buffers");
        goto fail;
    }
    piece[0] = 0;
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
        if ((rc = qr_sampler_sample(smp, logits, hist, n_prompt + n_gen, &id)))
            goto fail;
        if (is_eos(c, id)) {
            finish = "stop";
            /* flush the held tail so the streamed pieces add up to the text */
            if (cb && text && emitted < text_len)
                cb(id, text + emitted, user);
            break;
        }
        hist[n_prompt + n_gen++] = id;
        bool last = n_gen == max_new;
        size_t emit_end = 0;
        bool stopped = false;
        if (m->tok) {
            free(text);
            text = NULL;
            if ((rc = qr_detokenize(m->tok, hist + n_prompt, n_gen, true, &text)))
                goto fail;
            text_len = strlen(text);
            size_t from = emitted;
            long hit = find_stop(text, text_len, from, p);
            if (hit >= 0) {
                text_len = (size_t)hit;
                text[text_len] = 0;
                emit_end = text_len;
                stopped = true;
                n_gen--; /* the token completing the stop string is not returned */
            } else if (last) {
                emit_end = text_len;
            } else {
                emit_end = utf8_safe_len(text, text_len);
                size_t sp = stop_prefix_len(text, emit_end, p);
                emit_end -= sp;
            }
            if (emit_end < emitted)
                emit_end = emitted;
            size_t pl = emit_end - emitted;
            char *np = realloc(piece, pl + 1);
            if (!np) {
                rc = qr_fail(QR_ENOMEM, "generate: piece");
                goto fail;
            }
            piece = np;
            memcpy(piece, text + emitted, pl);
            piece[pl] = 0;
            emitted = emit_end;
        }
        if (cb && cb(id, piece, user)) {
            if (!stopped)
                finish = "callback";
            else
                finish = "stop";
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

    qr_gen_result r;
    memset(&r, 0, sizeof r);
    r.ids = malloc((n_gen ? n_gen : 1) * sizeof *r.ids);
    if (!r.ids) {
        rc = qr_fail(QR_ENOMEM, "generate: result");
        goto fail;
    }
    memcpy(r.ids, hist + n_prompt, n_gen * sizeof *r.ids);
    r.n_ids = n_gen;
    if (text) {
        r.text = text;
        text = NULL;
    } else {
        r.text = strdup("");
        if (!r.text) {
            free(r.ids);
            rc = qr_fail(QR_ENOMEM, "generate: result");
            goto fail;
        }
    }
    r.n_prompt = (int)n_prompt;
    r.finish = finish;
    r.prefill_s = t1 - t0;
    r.decode_s = t2 - t1;
    QR_INFO("generate: prompt %zu tokens in %.3f s (%.1f tok/s), %zu tokens in %.3f s (%.1f tok/s), finish %s",
            n_prompt, r.prefill_s, n_prompt / (r.prefill_s > 0 ? r.prefill_s : 1e-9), n_gen, r.decode_s,
            n_gen / (r.decode_s > 0 ? r.decode_s : 1e-9), finish);
    *out = r;
    rc = QR_OK;
fail:
    free(piece);
    free(text);
    free(hist);
    free(logits);
    qr_sampler_free(smp);
    qr_decoder_state_free(st);
    return rc;
}
