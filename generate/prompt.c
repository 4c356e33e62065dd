/* Cited-answer prompts: see prompt.h. */
#include "generate/prompt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "ingest/reader.h"

const char *const QR_PROMPT_INSTRUCTION =
    "Answer the question using only the numbered sources below. Cite the sources that support each "
    "statement with their numbers in square brackets, like [1] or [2, 3]. If the sources do not contain "
    "the answer, say so.";

/* Marks the user message in a render so it can be tokenized apart from the
 * template text; control characters no template adds or removes. */
#define SENTINEL "\x01quire-user-message\x02"

typedef struct {
    char *p;
    size_t n, cap;
    int err;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (n > ((size_t)1 << 40)) { /* a caller's underflow; also silences GCC's overflow analysis */
        b->err = 1;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->err = 1;
        return;
    }
    sb_add(b, tmp, (size_t)n);
}

static int sb_take(sbuf *b, char **out)
{
    if (b->err) {
        free(b->p);
        return qr_fail(QR_ENOMEM, "prompt: out of memory");
    }
    if (!b->p) {
        b->p = calloc(1, 1);
        if (!b->p) return qr_fail(QR_ENOMEM, "prompt: out of memory");
    }
    *out = b->p;
    return 0;
}

static void label_into(sbuf *b, const qr_source *s)
{
    sb_str(b, s->path && *s->path ? s->path : "(unknown)");
    if (s->title && *s->title) {
        sb_str(b, " \"");
        sb_str(b, s->title);
        sb_str(b, "\"");
    }
    if (s->page > 0) sb_printf(b, ", %s %d", qr_page_label(s->path), s->page); // "cell 3" in a notebook
    if (s->heading && *s->heading) {
        sb_str(b, ", section ");
        sb_str(b, s->heading);
    }
}

int qr_source_label(const qr_source *s, char **out)
{
    if (!s || !out) return qr_fail(QR_EINVAL, "qr_source_label: NULL argument");
    sbuf b = {0};
    label_into(&b, s);
    return sb_take(&b, out);
}

int qr_prompt_user_text(const char *question, const qr_source *sources, size_t k, char **out)
{
    if (!question || (!sources && k) || !out) return qr_fail(QR_EINVAL, "qr_prompt_user_text: NULL argument");
    sbuf b = {0};
    sb_str(&b, "Sources:\n\n");
    for (size_t i = 0; i < k; i++) {
        sb_printf(&b, "[%zu] ", i + 1);
        label_into(&b, &sources[i]);
        sb_str(&b, "\n");
        if (sources[i].text) sb_add(&b, sources[i].text, sources[i].text_len);
        sb_str(&b, "\n\n");
    }
    if (k == 0) sb_str(&b, "(no sources)\n\n");
    sb_str(&b, "Question: ");
    sb_str(&b, question);
    return sb_take(&b, out);
}

/* Appends the ids of text[0..len) to *ids. */
static int tok_append(const qr_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t **ids,
                      size_t *n, size_t *cap)
{
    if (!len) return 0;
    int32_t *t = NULL;
    size_t nt = 0;
    int rc = qr_tokenize_ex(tok, text, len, flags, &t, &nt);
    if (rc) return rc;
    if (*n + nt > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *n + nt) c *= 2;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) {
            free(t);
            return qr_fail(QR_ENOMEM, "prompt: out of memory");
        }
        *ids = p;
        *cap = c;
    }
    if (nt) memcpy(*ids + *n, t, nt * sizeof *t);
    *n += nt;
    free(t);
    return 0;
}

/* Renders the prompt holding the first k sources: text and ids. */
static int render(const char *question, const qr_source *src, size_t k, const qr_prompt_opts *o, char **text_out,
                  int32_t **ids_out, size_t *n_out)
{
    char *user = NULL, *tmpl_out = NULL;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    sbuf full = {0};
    const char *instr = o->instruction ? o->instruction : QR_PROMPT_INSTRUCTION;
    int rc = qr_prompt_user_text(question, src, k, &user);
    if (rc) return rc;
    size_t ulen = strlen(user);
    if (o->tmpl) {
        qr_chat_message msgs[2] = {{"system", instr}, {"user", SENTINEL}};
        qr_chat_opts co = {.add_generation_prompt = 1, .date = o->date, .system_fallback = 1};
        size_t tlen = 0;
        if ((rc = qr_chat_render(o->tmpl, msgs, 2, &co, &tmpl_out, &tlen))) goto fail;
        char *at = strstr(tmpl_out, SENTINEL);
        size_t sl = strlen(SENTINEL);
        if (!at || strstr(at + sl, SENTINEL)) {
            rc = qr_fail(QR_EUNSUPPORTED, "prompt: the chat template does not render the user message verbatim "
                                          "exactly once; cannot place the sources");
            goto fail;
        }
        size_t pre = (size_t)(at - tmpl_out);
        const char *post = at + sl;
        size_t postlen = tlen - pre - sl;
        /* HF apply_chat_template tokenizes the render without adding special
         * tokens: the template writes BOS itself where the model wants it. */
        if ((rc = tok_append(o->tok, tmpl_out, pre, 0, &ids, &n, &cap)) ||
            (rc = tok_append(o->tok, user, ulen, QR_TOK_SPECIAL_AS_TEXT, &ids, &n, &cap)) ||
            (rc = tok_append(o->tok, post, postlen, 0, &ids, &n, &cap)))
            goto fail;
        sb_add(&full, tmpl_out, pre);
        sb_add(&full, user, ulen);
        sb_add(&full, post, postlen);
    } else {
        int32_t bos = qr_tokenizer_bos(o->tok);
        if (bos >= 0) {
            if (!(ids = malloc(256 * sizeof *ids))) {
                rc = qr_fail(QR_ENOMEM, "prompt: out of memory");
                goto fail;
            }
            cap = 256;
            ids[n++] = bos;
        }
        sb_str(&full, instr);
        sb_str(&full, "\n\n");
        sb_add(&full, user, ulen);
        sb_str(&full, "\nAnswer:");
        if (full.err) {
            rc = qr_fail(QR_ENOMEM, "prompt: out of memory");
            goto fail;
        }
        if ((rc = tok_append(o->tok, full.p, full.n, QR_TOK_SPECIAL_AS_TEXT, &ids, &n, &cap))) goto fail;
    }
    char *text = NULL;
    if ((rc = sb_take(&full, &text))) {
        full.p = NULL;
        goto fail;
    }
    full.p = NULL;
    *text_out = text;
    *ids_out = ids;
    *n_out = n;
    ids = NULL;
fail:
    free(full.p);
    free(ids);
    free(tmpl_out);
    free(user);
    return rc;
}

int qr_prompt_build(const char *question, const qr_source *sources, size_t n, const qr_prompt_opts *o,
                    qr_prompt *out)
{
    if (!question || (!sources && n) || !o || !o->tok || !out)
        return qr_fail(QR_EINVAL, "qr_prompt_build: NULL argument");
    if (o->n_ctx <= 0 || o->max_tokens < 0 || o->max_tokens >= o->n_ctx)
        return qr_fail(QR_EINVAL, "prompt: max-tokens %d must be below the context window %d", o->max_tokens,
                       o->n_ctx);
    int budget = o->n_ctx - o->max_tokens;
    /* Prompt length grows with every source added, so the largest k that
     * fits is found by bisection over k (O(log n) renders). */
    char *text = NULL;
    int32_t *ids = NULL;
    size_t nid = 0;
    int rc = render(question, sources, n, o, &text, &ids, &nid);
    if (rc) return rc;
    size_t k = n;
    if (nid > (size_t)budget) {
        size_t lo = 0, hi = n; /* fits(lo) unknown yet for lo = 0; hi does not fit */
        char *t0 = NULL;
        int32_t *i0 = NULL;
        size_t n0 = 0;
        free(text);
        free(ids);
        text = NULL;
        ids = NULL;
        if ((rc = render(question, sources, 0, o, &t0, &i0, &n0))) return rc;
        if (n0 > (size_t)budget) {
            free(t0);
            free(i0);
            return qr_fail(QR_ELIMIT, "prompt: the question and instructions alone take %zu tokens, more than the "
                                      "%d left by ctx %d minus max-tokens %d",
                           n0, budget, o->n_ctx, o->max_tokens);
        }
        text = t0;
        ids = i0;
        nid = n0;
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            char *tm = NULL;
            int32_t *im = NULL;
            size_t nm = 0;
            if ((rc = render(question, sources, mid, o, &tm, &im, &nm))) {
                free(text);
                free(ids);
                return rc;
            }
            if (nm <= (size_t)budget) {
                free(text);
                free(ids);
                text = tm;
                ids = im;
                nid = nm;
                lo = mid;
            } else {
                free(tm);
                free(im);
                hi = mid;
            }
        }
        k = lo;
        QR_DEBUG("prompt: %zu of %zu sources fit in %d tokens (%zu used)", k, n, budget, nid);
    }
    out->text = text;
    out->ids = ids;
    out->n_ids = nid;
    out->n_used = k;
    out->n_dropped = n - k;
    out->budget = budget;
    return 0;
}

void qr_prompt_free(qr_prompt *p)
{
    if (!p) return;
    free(p->text);
    free(p->ids);
    memset(p, 0, sizeof *p);
}
