/* Tokenizer public API: encode (added tokens → normalizers → pre-tokenizers → model →
 * post-processor), decode (pieces → decoders), queries, and loading by path.
 *
 * Semantics follow Hugging Face `tokenizers` (the Rust library behind transformers'
 * fast tokenizers) for tokenizer.json files; see tok_internal.h for the pipeline.
 *
 * Invalid UTF-8 policy: the input bytes are first decoded lossily — each maximal invalid
 * subsequence (in the sense of Unicode §3.9 "maximal subpart", the rule WHATWG's decoder
 * and Rust's String::from_utf8_lossy use) becomes one U+FFFD REPLACEMENT CHARACTER — and
 * the result is tokenized as text. So "a\xC3(" tokenizes as "a\uFFFD(", and "\xF0\x9F\x98"
 * (a truncated 4-byte sequence) as a single "\uFFFD". The same bytes always give the same ids.
 *
 * Limits: at most QR_TOK_MAX_INPUT (64 MiB) of text per call, and for BPE models at most
 * QR_TOK_MAX_WORD (4 MiB) in one pre-token (text with no boundary the pre-tokenizer can
 * split at); QR_ELIMIT beyond.
 *
 * Truncation and padding settings in tokenizer.json are ignored: callers (the encoder)
 * truncate to their own max_seq_length and build attention masks themselves. */
#include "runtime/tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "runtime/tokenizer/tok_internal.h"

/* ---- encode ---------------------------------------------------------------------------- */

/* Rust regex \w (Alphabetic, marks, decimal digits, connector punctuation, joiners) as HF's
 * single_word test has it (tok_unicode.c tables, Unicode 16). */
static bool is_word_char(uint32_t c)
{
    if (c < 0x80)
        return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    return (qr_tok_uflags(c) & QR_U_WORD) != 0;
}

static uint32_t last_cp(const char *s, size_t len)
{
    size_t p = len - 1;
    while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
        p--;
    uint32_t cp;
    qr_tok_utf8_next(s + p, len - p, &cp);
    return cp;
}

/* Finds the next added token of class cls in s[from..len) with HF's rules: leftmost-longest
 * match (aho-corasick LeftmostLongest); single_word rejects a match touching a word
 * character on either side (the scan then resumes after it); lstrip / rstrip extend the
 * match over adjacent whitespace (lstrip not before floor). Returns false if none. */
static bool next_added(const qr_tokenizer *t, int cls, const char *s, size_t len, size_t from,
                       size_t floor, bool special_as_text, size_t *ms, size_t *me, int32_t *id)
{
    size_t pos = from;
    while (pos < len) {
        size_t best_i = (size_t)-1, best_len = 0, at = pos;
        for (; at < len; at++) {
            unsigned char b = (unsigned char)s[at];
            size_t lo = t->added_bucket[cls][b], hi = t->added_bucket[cls][b + 1];
            for (size_t k = lo; k < hi; k++) {
                uint32_t ai = t->added_order[k];
                const qr_tok_buf *c = &t->added_norm[ai];
                if (c->n > best_len && c->n <= len - at && memcmp(s + at, c->p, c->n) == 0) {
                    best_i = ai;
                    best_len = c->n;
                }
            }
            if (best_len)
                break;
        }
        if (!best_len)
            return false;
        const qr_tok_added *a = &t->added[best_i];
        size_t start = at, stop = at + best_len;
        if (special_as_text && a->special) { /* HF encode_special_tokens: skip the match */
            pos = stop;
            continue;
        }
        if (a->single_word) {
            bool ok_l = start == 0 || !is_word_char(last_cp(s, start));
            uint32_t nc = 0;
            bool ok_r = stop == len || (qr_tok_utf8_next(s + stop, len - stop, &nc), !is_word_char(nc));
            if (!ok_l || !ok_r) {
                pos = stop;
                continue;
            }
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t p = ns - 1;
                while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
                    p--;
                uint32_t cp;
                qr_tok_utf8_next(s + p, ns - p, &cp);
                if (!qr_tok_is_whitespace(cp))
                    break;
                ns = p;
            }
            start = ns > floor ? ns : floor;
        }
        if (a->rstrip) {
            while (stop < len) {
                uint32_t cp;
                int cl = qr_tok_utf8_next(s + stop, len - stop, &cp);
                if (!qr_tok_is_whitespace(cp))
                    break;
                stop += (size_t)cl;
            }
        }
        *ms = start;
        *me = stop;
        *id = a->id;
        return true;
    }
    return false;
}

typedef struct {
    qr_tok_buf norm;
    qr_tok_pieces pieces;
} enc_scratch;

/* Normalized segment (no class-0 tokens inside): split on class-1 tokens, pre-tokenize
 * and run the model on the rest. */
static int encode_normalized(const qr_tokenizer *t, const char *s, size_t len, bool first, bool sat,
                             enc_scratch *sc, qr_tok_ids *out)
{
    int rc = 0;
    size_t pos = 0;
    bool has_cls1 = t->added_bucket[1][256] > t->added_bucket[1][0];
    while (pos < len) {
        size_t ms = len, me = len;
        int32_t id = -1;
        if (!has_cls1 || !next_added(t, 1, s, len, pos, pos, sat, &ms, &me, &id)) {
            ms = me = len;
            id = -1;
        }
        if (ms > pos) {
            if ((rc = qr_tok_pretokenize(t, s + pos, ms - pos, first && pos == 0, &sc->pieces)))
                return rc;
            for (size_t i = 0; i < sc->pieces.n && !rc; i++)
                rc = qr_tok_model_word(t, sc->pieces.text.p + sc->pieces.v[i].off, sc->pieces.v[i].len, out);
            if (rc)
                return rc;
        }
        if (id >= 0 && (rc = qr_tok_ids_push(out, id)))
            return rc;
        pos = me;
    }
    return 0;
}

int qr_tokenize(const qr_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                size_t *n_ids)
{
    return qr_tokenize_ex(t, text, len, add_special ? QR_TOK_ADD_SPECIAL : 0u, ids, n_ids);
}

int qr_tokenize_ex(const qr_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                   size_t *n_ids)
{
    int rc;
    bool add_special = flags & QR_TOK_ADD_SPECIAL, sat = flags & QR_TOK_SPECIAL_AS_TEXT;
    if (!t || (!text && len) || !ids || !n_ids)
        return qr_fail(QR_EINVAL, "qr_tokenize: NULL argument");
    if (len > QR_TOK_MAX_INPUT)
        return qr_fail(QR_ELIMIT, "qr_tokenize: %zu bytes of text exceed the limit of %zu", len,
                       (size_t)QR_TOK_MAX_INPUT);
    qr_tok_buf src = {0};
    qr_tok_ids seq = {0}, fin = {0};
    enc_scratch sc = {0};
    if ((rc = qr_tok_utf8_sanitize(text ? text : "", len, &src)))
        goto fail;
    const char *s = src.p ? src.p : "";
    size_t n = src.n, pos = 0;
    bool has_cls0 = t->added_bucket[0][256] > 0;
    while (pos < n) {
        size_t ms = n, me = n;
        int32_t id = -1;
        if (!has_cls0 || !next_added(t, 0, s, n, pos, pos, sat, &ms, &me, &id)) {
            ms = me = n;
            id = -1;
        }
        if (ms > pos) {
            if ((rc = qr_tok_normalize(t, s + pos, ms - pos, &sc.norm)))
                goto fail;
            if (sc.norm.n && (rc = encode_normalized(t, sc.norm.p, sc.norm.n, pos == 0, sat, &sc, &seq)))
                goto fail;
        }
        if (id >= 0 && (rc = qr_tok_ids_push(&seq, id)))
            goto fail;
        pos = me;
    }
    qr_tok_ids *res = &seq;
    if (add_special && t->has_post) {
        for (size_t i = 0; i < t->n_post && !rc; i++) {
            const qr_tok_post_item *it = &t->post[i];
            if (it->is_seq) {
                for (size_t k = 0; k < seq.n && !rc; k++)
                    rc = qr_tok_ids_push(&fin, seq.v[k]);
            } else {
                for (size_t k = 0; k < it->n_ids && !rc; k++)
                    rc = qr_tok_ids_push(&fin, it->ids[k]);
            }
        }
        if (rc)
            goto fail;
        res = &fin;
    }
    if (!res->v && (rc = qr_tok_ids_push(res, 0)) == 0)
        res->n = 0; /* always return a malloc'd array, even when empty */
    if (rc)
        goto fail;
    *ids = res->v;
    *n_ids = res->n;
    res->v = NULL;
fail:
    qr_tok_buf_free(&src);
    qr_tok_ids_free(&seq);
    qr_tok_ids_free(&fin);
    qr_tok_buf_free(&sc.norm);
    qr_tok_pieces_free(&sc.pieces);
    return rc;
}

/* ---- decode ---------------------------------------------------------------------------- */

typedef struct { qr_tok_buf *v; size_t n, cap; } strlist;

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        qr_tok_buf_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int strlist_push(strlist *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 32;
        qr_tok_buf *v = realloc(l->v, c * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: decode");
        l->v = v;
        l->cap = c;
    }
    l->v[l->n] = (qr_tok_buf){0};
    int rc = qr_tok_buf_put(&l->v[l->n], s, len);
    if (rc)
        return rc;
    l->n++;
    return 0;
}

static int put_replace(qr_tok_buf *out, const char *s, size_t len, const char *pat, size_t pl,
                       const char *with, size_t wl)
{
    int rc = 0;
    size_t i = 0, run = 0;
    while (pl && i + pl <= len) {
        if (memcmp(s + i, pat, pl) == 0) {
            if ((rc = qr_tok_buf_put(out, s + run, i - run)) || (rc = qr_tok_buf_put(out, with, wl)))
                return rc;
            i += pl;
            run = i;
        } else {
            i++;
        }
    }
    return qr_tok_buf_put(out, s + run, len - run);
}

/* HF's wordpiece cleanup(): a fixed chain of replacements. */
static int wp_cleanup(qr_tok_buf *tok)
{
    static const char *const rep[][2] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    int rc = 0;
    for (size_t k = 0; k < sizeof rep / sizeof rep[0]; k++) {
        qr_tok_buf o = {0};
        if ((rc = put_replace(&o, tok->p ? tok->p : "", tok->n, rep[k][0], strlen(rep[k][0]), rep[k][1],
                              strlen(rep[k][1])))) {
            qr_tok_buf_free(&o);
            return rc;
        }
        qr_tok_buf_free(tok);
        *tok = o;
    }
    return 0;
}

static int lossy_to(qr_tok_buf *out, const char *bytes, size_t n)
{
    return qr_tok_utf8_sanitize(bytes, n, out);
}

static int parse_byte_token(const qr_tok_buf *b)
{
    if (b->n != 6 || memcmp(b->p, "<0x", 3) != 0 || b->p[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = b->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int dec_one(const qr_tok_dec *d, strlist *in, strlist *out)
{
    int rc = 0;
    out->n = 0;
    switch (d->type) {
    case QR_DEC_BYTE_LEVEL: {
        qr_tok_buf bytes = {0}, s = {0};
        for (size_t i = 0; i < in->n && !rc; i++) {
            const qr_tok_buf *tk = &in->v[i];
            size_t mark = bytes.n;
            bool ok = true;
            for (size_t j = 0; j < tk->n && !rc;) {
                uint32_t cp;
                j += (size_t)qr_tok_utf8_next(tk->p + j, tk->n - j, &cp);
                int b = qr_tok_cp_to_byte(cp);
                if (b < 0) {
                    ok = false;
                    break;
                }
                rc = qr_tok_buf_putc(&bytes, (char)b);
            }
            if (!rc && !ok) { /* a character outside the alphabet: the token's own bytes */
                bytes.n = mark;
                rc = qr_tok_buf_put(&bytes, tk->p, tk->n);
            }
        }
        if (!rc)
            rc = lossy_to(&s, bytes.p ? bytes.p : "", bytes.n);
        if (!rc)
            rc = strlist_push(out, s.p ? s.p : "", s.n);
        qr_tok_buf_free(&bytes);
        qr_tok_buf_free(&s);
        return rc;
    }
    case QR_DEC_WORDPIECE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            qr_tok_buf tk = {0};
            const qr_tok_buf *src = &in->v[i];
            const char *p = src->p ? src->p : "";
            if (i != 0) {
                if (src->n >= d->str_len && memcmp(p, d->str, d->str_len) == 0)
                    rc = qr_tok_buf_put(&tk, p + d->str_len, src->n - d->str_len);
                else if (!(rc = qr_tok_buf_putc(&tk, ' ')))
                    rc = qr_tok_buf_put(&tk, p, src->n);
            } else {
                rc = qr_tok_buf_put(&tk, p, src->n);
            }
            if (!rc && d->cleanup)
                rc = wp_cleanup(&tk);
            if (!rc)
                rc = strlist_push(out, tk.p ? tk.p : "", tk.n);
            qr_tok_buf_free(&tk);
        }
        return rc;
    case QR_DEC_METASPACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            qr_tok_buf tk = {0};
            const qr_tok_buf *src = &in->v[i];
            for (size_t j = 0; j < src->n && !rc;) {
                if (src->n - j >= d->str_len && memcmp(src->p + j, d->str, d->str_len) == 0) {
                    if (!(i == 0 && d->prepend_scheme != QR_PREPEND_NEVER))
                        rc = qr_tok_buf_putc(&tk, ' ');
                    j += d->str_len;
                } else {
                    rc = qr_tok_buf_putc(&tk, src->p[j++]);
                }
            }
            if (!rc)
                rc = strlist_push(out, tk.p ? tk.p : "", tk.n);
            qr_tok_buf_free(&tk);
        }
        return rc;
    case QR_DEC_BYTE_FALLBACK: {
        qr_tok_buf pend = {0}, s = {0};
        for (size_t i = 0; i <= in->n && !rc; i++) {
            int b = i < in->n ? parse_byte_token(&in->v[i]) : -1;
            if (b >= 0) {
                rc = qr_tok_buf_putc(&pend, (char)b);
                continue;
            }
            if (pend.n) {
                /* Valid UTF-8 as a whole, or one U+FFFD per byte. */
                s.n = 0;
                size_t bad = 0;
                if ((rc = qr_tok_utf8_sanitize(pend.p, pend.n, &s)))
                    break;
                bad = s.n != pend.n || memcmp(s.p, pend.p, pend.n) != 0;
                if (!bad) {
                    rc = strlist_push(out, pend.p, pend.n);
                } else {
                    s.n = 0;
                    for (size_t k = 0; k < pend.n && !rc; k++)
                        rc = qr_tok_buf_put(&s, "\xEF\xBF\xBD", 3);
                    if (!rc)
                        rc = strlist_push(out, s.p, s.n);
                }
                pend.n = 0;
            }
            if (!rc && i < in->n)
                rc = strlist_push(out, in->v[i].p ? in->v[i].p : "", in->v[i].n);
        }
        qr_tok_buf_free(&pend);
        qr_tok_buf_free(&s);
        return rc;
    }
    case QR_DEC_BPE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            qr_tok_buf tk = {0};
            const char *p = in->v[i].p ? in->v[i].p : "";
            bool last = i + 1 == in->n;
            rc = put_replace(&tk, p, in->v[i].n, d->str, d->str_len, last ? "" : " ", last ? 0 : 1);
            if (!rc)
                rc = strlist_push(out, tk.p ? tk.p : "", tk.n);
            qr_tok_buf_free(&tk);
        }
        return rc;
    case QR_DEC_CTC:
        for (size_t i = 0; i < in->n && !rc; i++) {
            /* consecutive duplicates collapse to one */
            if (i > 0 && in->v[i].n == in->v[i - 1].n &&
                (in->v[i].n == 0 || memcmp(in->v[i].p, in->v[i - 1].p, in->v[i].n) == 0))
                continue;
            qr_tok_buf tk = {0}, tk2 = {0};
            const char *p = in->v[i].p ? in->v[i].p : "";
            rc = put_replace(&tk, p, in->v[i].n, d->str, d->str_len, "", 0);
            if (!rc && d->cleanup && !(rc = wp_cleanup(&tk)) &&
                !(rc = put_replace(&tk2, tk.p ? tk.p : "", tk.n, d->content, d->content_len, " ", 1))) {
                qr_tok_buf_free(&tk);
                tk = tk2;
                tk2 = (qr_tok_buf){0};
            }
            if (!rc && tk.n)
                rc = strlist_push(out, tk.p, tk.n);
            qr_tok_buf_free(&tk);
            qr_tok_buf_free(&tk2);
        }
        return rc;
    case QR_DEC_FUSE: {
        qr_tok_buf all = {0};
        for (size_t i = 0; i < in->n && !rc; i++)
            rc = qr_tok_buf_put(&all, in->v[i].p ? in->v[i].p : "", in->v[i].n);
        if (!rc)
            rc = strlist_push(out, all.p ? all.p : "", all.n);
        qr_tok_buf_free(&all);
        return rc;
    }
    case QR_DEC_STRIP:
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *p = in->v[i].p ? in->v[i].p : "";
            size_t a = 0, b = in->v[i].n;
            for (int k = 0; k < d->strip_start && a < b; k++) {
                if (b - a >= d->str_len && memcmp(p + a, d->str, d->str_len) == 0)
                    a += d->str_len;
                else
                    break;
            }
            for (int k = 0; k < d->strip_stop && b > a; k++) {
                if (b - a >= d->str_len && memcmp(p + b - d->str_len, d->str, d->str_len) == 0)
                    b -= d->str_len;
                else
                    break;
            }
            rc = strlist_push(out, p + a, b - a);
        }
        return rc;
    case QR_DEC_REPLACE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            qr_tok_buf tk = {0};
            const char *p = in->v[i].p ? in->v[i].p : "";
            if (d->re) {
                size_t *m = NULL, mn = 0, mc = 0, run = 0;
                rc = qr_tok_regex_find_all(d->re, p, in->v[i].n, &m, &mn, &mc);
                for (size_t k = 0; k < mn && !rc; k += 2) {
                    if (!(rc = qr_tok_buf_put(&tk, p + run, m[k] - run)))
                        rc = qr_tok_buf_put(&tk, d->content, d->content_len);
                    run = m[k + 1];
                }
                if (!rc)
                    rc = qr_tok_buf_put(&tk, p + run, in->v[i].n - run);
                free(m);
            } else {
                rc = put_replace(&tk, p, in->v[i].n, d->str, d->str_len, d->content, d->content_len);
            }
            if (!rc)
                rc = strlist_push(out, tk.p ? tk.p : "", tk.n);
            qr_tok_buf_free(&tk);
        }
        return rc;
    }
    return qr_fail(QR_EINTERNAL, "tokenizer: decoder type %d", (int)d->type);
}

int qr_detokenize(const qr_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out)
{
    int rc = 0;
    if (!t || (!ids && n) || !out)
        return qr_fail(QR_EINVAL, "qr_detokenize: NULL argument");
    strlist a = {0}, b = {0};
    qr_tok_buf res = {0};
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        /* Ids without a piece are skipped, as HF's id_to_token returning None is. */
        if (id < 0 || id >= t->vocab.n || !t->vocab.pieces[id])
            continue;
        if (skip_special && t->is_special && t->is_special[id])
            continue;
        rc = strlist_push(&a, t->vocab.pieces[id], t->vocab.piece_len[id]);
    }
    for (size_t k = 0; k < t->n_decs && !rc; k++) {
        if (!(rc = dec_one(&t->decs[k], &a, &b))) {
            strlist x = a;
            a = b;
            b = x;
            for (size_t i = 0; i < b.n; i++)
                qr_tok_buf_free(&b.v[i]);
            b.n = 0;
        }
    }
    for (size_t i = 0; i < a.n && !rc; i++) {
        if (!t->has_decoder && i > 0)
            rc = qr_tok_buf_putc(&res, ' ');
        if (!rc)
            rc = qr_tok_buf_put(&res, a.v[i].p ? a.v[i].p : "", a.v[i].n);
    }
    if (!rc)
        rc = qr_tok_buf_reserve(&res, 0);
    if (!rc) {
        res.p[res.n] = '\0';
        *out = res.p;
        res.p = NULL;
    }
    qr_tok_buf_free(&res);
    strlist_free(&a);
    strlist_free(&b);
    return rc;
}

/* ---- queries --------------------------------------------------------------------------- */

int32_t qr_tokenizer_n_vocab(const qr_tokenizer *t) { return t ? t->vocab.n : 0; }
int32_t qr_tokenizer_bos(const qr_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t qr_tokenizer_eos(const qr_tokenizer *t) { return t ? t->eos_id : -1; }
int32_t qr_tokenizer_pad(const qr_tokenizer *t) { return t ? t->pad_id : -1; }

int32_t qr_tokenizer_find(const qr_tokenizer *t, const char *token)
{
    if (!t || !token)
        return -1;
    size_t len = strlen(token);
    int32_t a = qr_tok_strmap_get(&t->added_map, token, len);
    if (a >= 0)
        return t->added[a].id;
    return qr_tok_vocab_get(t, token, len);
}

const char *qr_tokenizer_piece(const qr_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->vocab.n)
        return NULL;
    return t->vocab.pieces[id];
}

bool qr_tokenizer_is_special(const qr_tokenizer *t, int32_t id)
{
    return t && t->is_special && id >= 0 && id < t->vocab.n && t->is_special[id];
}

/* A .gguf file: its embedded vocabulary (gguf_vocab.c). The tokenizer copies what it
 * needs, so the file is closed again. */
static int qr_tok_load_gguf_path(const char *path, qr_tokenizer **out)
{
    qr_gguf *g = NULL;
    int rc = qr_gguf_open(path, &g);
    if (rc)
        return rc;
    rc = qr_tokenizer_load_gguf(g, out);
    qr_gguf_close(g);
    return rc;
}

/* ---- loading by path ------------------------------------------------------------------- */

int qr_tokenizer_load(const char *model_path, qr_tokenizer **out)
{
    struct stat st;
    if (!model_path || !out)
        return qr_fail(QR_EINVAL, "qr_tokenizer_load: NULL argument");
    if (stat(model_path, &st) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: no such file or directory", model_path);
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(model_path);
        char *p = malloc(n + sizeof "/tokenizer.json");
        if (!p)
            return qr_fail(QR_ENOMEM, "tokenizer: path");
        memcpy(p, model_path, n);
        memcpy(p + n, "/tokenizer.json", sizeof "/tokenizer.json");
        /* tokenizer.json, else a BERT-style vocab.txt */
        int rc = stat(p, &st) == 0 ? qr_tokenizer_load_json(p, out) : qr_tok_load_vocab_txt(model_path, out);
        free(p);
        return rc;
    }
    size_t n = strlen(model_path);
    if (n >= 5 && strcmp(model_path + n - 5, ".gguf") == 0)
        return qr_tok_load_gguf_path(model_path, out);
    return qr_tokenizer_load_json(model_path, out);
}
