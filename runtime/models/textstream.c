/* Incremental detokenization with stop strings (see model.h). */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model.h"

struct qr_textstream {
    const qr_tokenizer *tok;
    char **stop;
    int n_stop;
    int32_t *ids;
    size_t n_ids, cap_ids;
    char *text;       /* latest decode, cut at a stop string */
    size_t text_len;
    size_t emitted;   /* bytes of text released so far */
    char *piece;
    size_t cap_piece;
    bool stopped;
};

int qr_textstream_create(const qr_tokenizer *tok, const char *const *stop, int n_stop, qr_textstream **out)
{
    if (n_stop < 0 || (n_stop > 0 && !stop))
        return qr_fail(QR_EINVAL, "textstream: bad stop list");
    if (n_stop > 0 && !tok)
        return qr_fail(QR_EINVAL, "textstream: stop strings need a tokenizer");
    qr_textstream *s = calloc(1, sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "textstream");
    s->tok = tok;
    s->text = calloc(1, 1);
    s->piece = calloc(1, 1);
    s->cap_piece = 1;
    s->stop = calloc((size_t)(n_stop > 0 ? n_stop : 1), sizeof *s->stop);
    if (!s->text || !s->piece || !s->stop)
        goto nomem;
    for (int i = 0; i < n_stop; i++) {
        if (!stop[i]) {
            qr_textstream_free(s);
            return qr_fail(QR_EINVAL, "textstream: stop string %d is NULL", i);
        }
        if (!(s->stop[i] = strdup(stop[i])))
            goto nomem;
        s->n_stop = i + 1;
    }
    *out = s;
    return QR_OK;
nomem:
    qr_textstream_free(s);
    return qr_fail(QR_ENOMEM, "textstream");
}

void qr_textstream_free(qr_textstream *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_stop; i++)
        free(s->stop[i]);
    free(s->stop);
    free(s->ids);
    free(s->text);
    free(s->piece);
    free(s);
}

/* Length of t[0..n) safe to release as far as UTF-8 goes. */
static size_t utf8_safe_len(const char *t, size_t n)
{
    while (n >= 3 && (unsigned char)t[n - 3] == 0xEF && (unsigned char)t[n - 2] == 0xBF &&
           (unsigned char)t[n - 1] == 0xBD)
        n -= 3; /* trailing U+FFFD */
    size_t i = n, k = 0;
    while (i > 0 && k < 4 && ((unsigned char)t[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i > 0) {
        unsigned char lead = (unsigned char)t[i - 1];
        size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        if (lead >= 0xC0 && k < need)
            return i - 1; /* incomplete sequence */
    }
    return n;
}

/* Longest suffix of t[0..n) that is a proper prefix of a stop string. */
static size_t stop_prefix_len(const qr_textstream *s, const char *t, size_t n)
{
    size_t best = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t L = strlen(s->stop[i]);
        for (size_t k = L > 0 ? L - 1 : 0; k > best; k--)
            if (k <= n && memcmp(t + n - k, s->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Earliest match of a stop string at or after `from`; -1 if none. */
static long find_stop(const qr_textstream *s, const char *t, size_t n, size_t from)
{
    long best = -1;
    for (int i = 0; i < s->n_stop; i++) {
        size_t L = strlen(s->stop[i]);
        /* a match may begin in held-back text only, i.e. at or after `from` */
        if (L == 0 || L > n - from)
            continue;
        const char *hit = memmem(t + from, n - from, s->stop[i], L);
        if (hit && (best < 0 || hit - t < best))
            best = hit - t;
    }
    return best;
}

static int set_piece(qr_textstream *s, size_t end, const char **piece)
{
    if (end < s->emitted)
        end = s->emitted;
    size_t n = end - s->emitted;
    if (n + 1 > s->cap_piece) {
        char *p = realloc(s->piece, n + 1);
        if (!p)
            return qr_fail(QR_ENOMEM, "textstream: piece of %zu bytes", n);
        s->piece = p;
        s->cap_piece = n + 1;
    }
    memcpy(s->piece, s->text + s->emitted, n);
    s->piece[n] = 0;
    s->emitted = end;
    *piece = s->piece;
    return QR_OK;
}

int qr_textstream_push(qr_textstream *s, int32_t id, bool final, const char **piece, bool *stopped)
{
    if (s->stopped)
        return qr_fail(QR_EINVAL, "textstream: push after a stop string");
    if (s->n_ids == s->cap_ids) {
        size_t nc = s->cap_ids ? 2 * s->cap_ids : 64;
        int32_t *p = realloc(s->ids, nc * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "textstream: %zu ids", nc);
        s->ids = p;
        s->cap_ids = nc;
    }
    s->ids[s->n_ids++] = id;
    *stopped = false;
    if (!s->tok) {
        s->piece[0] = 0;
        *piece = s->piece;
        return QR_OK;
    }
    char *t = NULL;
    int rc = qr_detokenize(s->tok, s->ids, s->n_ids, true, &t);
    if (rc) {
        s->n_ids--;
        return rc;
    }
    free(s->text);
    s->text = t;
    s->text_len = strlen(t);
    size_t end;
    long hit = find_stop(s, t, s->text_len, s->emitted);
    if (hit >= 0) {
        s->text_len = (size_t)hit;
        t[hit] = 0;
        end = s->text_len;
        s->n_ids--; /* the token completing the stop string is not kept */
        s->stopped = *stopped = true;
    } else if (final) {
        end = s->text_len;
    } else {
        end = utf8_safe_len(t, s->text_len);
        end -= stop_prefix_len(s, t, end);
    }
    return set_piece(s, end, piece);
}

int qr_textstream_flush(qr_textstream *s, const char **piece) { return set_piece(s, s->text_len, piece); }

const char *qr_textstream_text(const qr_textstream *s) { return s->text; }

const int32_t *qr_textstream_ids(const qr_textstream *s, size_t *n)
{
    *n = s->n_ids;
    return s->ids;
}
