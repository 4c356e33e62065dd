/* Normalizers and pre-tokenizers with the semantics of Hugging Face `tokenizers`
 * (normalizers and pre_tokenizers modules, NormalizedString::split and Pattern::find_matches).
 * Offsets are not tracked: only ids matter here. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/tokenizer/tok_internal.h"

/* ---- regex matching -------------------------------------------------------------------- */

static int push2(size_t **m, size_t *n, size_t *cap, size_t a, size_t b)
{
    if (*n + 2 > *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        size_t *v = realloc(*m, c * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: match list");
        *m = v;
        *cap = c;
    }
    (*m)[(*n)++] = a;
    (*m)[(*n)++] = b;
    return 0;
}

int qr_tok_regex_find_all(const pcre2_code *re, const char *s, size_t len, size_t **m, size_t *n,
                          size_t *cap)
{
    int rc = 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return qr_fail(QR_ENOMEM, "tokenizer: regex match data");
    size_t pos = 0;
    while (pos <= len) {
        /* The input was sanitized to valid UTF-8 once; skipping PCRE2's check keeps this
         * linear rather than quadratic. */
        int r = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT)
            r = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH)
            break;
        if (r < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(r, msg, sizeof msg);
            rc = qr_fail(QR_ELIMIT, "tokenizer: regex match failed: %s", (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if ((rc = push2(m, n, cap, a, b)))
            break;
        if (b > a) {
            pos = b;
        } else { /* empty match: step one character */
            if (b >= len)
                break;
            pos = b + 1;
            while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80)
                pos++;
        }
    }
    pcre2_match_data_free(md);
    return rc;
}

/* ---- normalizers ----------------------------------------------------------------------- */

static bool all_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Rust char::to_lowercase (HF's tables, tok_unicode.c): the simple mapping plus U+0130's
 * two-code-point mapping. */
static int put_lower(qr_tok_buf *out, uint32_t cp)
{
    if (cp < 0x80)
        return qr_tok_buf_putc(out, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    if (cp == 0x130) {
        int rc = qr_tok_buf_putc(out, 'i');
        return rc ? rc : qr_tok_buf_put_cp(out, 0x307);
    }
    return qr_tok_buf_put_cp(out, qr_tok_ulower(cp));
}

/* The character classes below are HF's, from tok_unicode_tables.h (see tok_unicode.c). */

/* BertNormalizer handle_chinese_chars: the CJK Unified/Compatibility Ideograph blocks. */
static bool is_cjk(uint32_t c) { return c >= 0x3400 && (qr_tok_uflags(c) & QR_U_CJK); }

/* BertNormalizer clean_text removes these: U+0000, U+FFFD and unicode_categories' Cc, Cf,
 * Co (not \t \n \r, which become spaces). Unassigned code points (Cn) are kept: HF keeps
 * U+FFFE, U+038B, U+1D4A1 and turns them into [UNK]. */
static bool is_other(uint32_t c) { return (qr_tok_uflags(c) & QR_U_CTRL) && c != '\t' && c != '\n' && c != '\r'; }

/* BertNormalizer strip_accents drops these after NFD: unicode_categories' Mn (Unicode
 * marks added since, e.g. U+089C, U+1AC2, stay and make the word [UNK]). */
static bool is_mn(uint32_t c) { return c >= 0x300 && (qr_tok_uflags(c) & QR_U_MN); }

/* What HF's StripAccents normalizer removes (is_combining_mark: Mn, Mc, Me of
 * unicode-normalization-alignments); BERT's strip_accents removes Mn only. */
static bool is_mark(uint32_t c) { return c >= 0x300 && (qr_tok_uflags(c) & QR_U_MARK); }

/* Literal or regex replacement of every non-overlapping match. */
static int replace_all(const char *s, size_t len, const char *pat, size_t pat_len, const pcre2_code *re,
                       const char *with, size_t with_len, qr_tok_buf *out)
{
    int rc = 0;
    if (!re) {
        size_t i = 0, run = 0;
        if (pat_len == 0)
            return qr_tok_buf_put(out, s, len);
        while (i + pat_len <= len) {
            if (memcmp(s + i, pat, pat_len) == 0) {
                if ((rc = qr_tok_buf_put(out, s + run, i - run)) || (rc = qr_tok_buf_put(out, with, with_len)))
                    return rc;
                i += pat_len;
                run = i;
            } else {
                i++;
            }
        }
        return qr_tok_buf_put(out, s + run, len - run);
    }
    size_t *m = NULL, n = 0, cap = 0, run = 0;
    if ((rc = qr_tok_regex_find_all(re, s, len, &m, &n, &cap)))
        goto fail;
    for (size_t k = 0; k < n; k += 2) {
        if ((rc = qr_tok_buf_put(out, s + run, m[k] - run)) || (rc = qr_tok_buf_put(out, with, with_len)))
            goto fail;
        run = m[k + 1];
    }
    rc = qr_tok_buf_put(out, s + run, len - run);
fail:
    free(m);
    return rc;
}

static int norm_one(const qr_tok_norm *nm, const char *s, size_t len, qr_tok_buf *out)
{
    int rc = 0;
    uint32_t cp;
    switch (nm->type) {
    /* HF's normalization tables (tok_unicode.c), not utf8proc's newer ones. */
    case QR_NORM_NFC: return all_ascii(s, len) ? qr_tok_buf_put(out, s, len) : qr_tok_unorm(s, len, false, true, out);
    case QR_NORM_NFD: return all_ascii(s, len) ? qr_tok_buf_put(out, s, len) : qr_tok_unorm(s, len, false, false, out);
    case QR_NORM_NFKC: return all_ascii(s, len) ? qr_tok_buf_put(out, s, len) : qr_tok_unorm(s, len, true, true, out);
    case QR_NORM_NFKD: return all_ascii(s, len) ? qr_tok_buf_put(out, s, len) : qr_tok_unorm(s, len, true, false, out);
    case QR_NORM_LOWERCASE:
        for (size_t i = 0; i < len && !rc;) {
            i += (size_t)qr_tok_utf8_next(s + i, len - i, &cp);
            rc = put_lower(out, cp);
        }
        return rc;
    case QR_NORM_STRIP_ACCENTS:
        for (size_t i = 0; i < len && !rc;) {
            int cl = qr_tok_utf8_next(s + i, len - i, &cp);
            if (!is_mark(cp))
                rc = qr_tok_buf_put(out, s + i, (size_t)cl);
            i += (size_t)cl;
        }
        return rc;
    case QR_NORM_STRIP: {
        size_t a = 0, b = len;
        if (nm->strip_left)
            while (a < b) {
                int cl = qr_tok_utf8_next(s + a, b - a, &cp);
                if (!qr_tok_is_whitespace(cp))
                    break;
                a += (size_t)cl;
            }
        if (nm->strip_right)
            while (b > a) {
                size_t p = b - 1;
                while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80)
                    p--;
                qr_tok_utf8_next(s + p, b - p, &cp);
                if (!qr_tok_is_whitespace(cp))
                    break;
                b = p;
            }
        return qr_tok_buf_put(out, s + a, b - a);
    }
    case QR_NORM_PREPEND:
        if (len && (rc = qr_tok_buf_put(out, nm->str, nm->str_len)))
            return rc;
        return qr_tok_buf_put(out, s, len);
    case QR_NORM_REPLACE:
        return replace_all(s, len, nm->str, nm->str_len, nm->re, nm->content, nm->content_len, out);
    case QR_NORM_BERT: {
        /* clean_text → handle_chinese_chars → strip_accents (NFD + drop Mn) → lowercase */
        if (all_ascii(s, len)) {
            /* ASCII: no CJK, no accents; controls other than \t \n \r are removed. */
            if ((rc = qr_tok_buf_reserve(out, len)))
                return rc;
            char *o = out->p + out->n;
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (nm->clean_text) {
                    if (c == '\t' || c == '\n' || c == '\r') {
                        c = ' ';
                    } else if (c < 0x20 || c == 0x7F) {
                        continue;
                    }
                }
                if (nm->lowercase && c >= 'A' && c <= 'Z')
                    c = (unsigned char)(c + 32);
                *o++ = (char)c;
            }
            out->n = (size_t)(o - out->p);
            out->p[out->n] = '\0';
            return 0;
        }
        qr_tok_buf a = {0}, b = {0};
        for (size_t i = 0; i < len && !rc;) {
            int cl = qr_tok_utf8_next(s + i, len - i, &cp);
            i += (size_t)cl;
            if (nm->clean_text) {
                bool ws = cp == '\t' || cp == '\n' || cp == '\r';
                if (!ws && is_other(cp)) /* includes U+0000 and U+FFFD */
                    continue;
                if (ws || qr_tok_is_whitespace(cp))
                    cp = ' ';
            }
            if (nm->handle_chinese_chars && is_cjk(cp)) {
                if ((rc = qr_tok_buf_putc(&a, ' ')) || (rc = qr_tok_buf_put_cp(&a, cp)))
                    break;
                rc = qr_tok_buf_putc(&a, ' ');
            } else {
                rc = qr_tok_buf_put_cp(&a, cp);
            }
        }
        if (!rc && nm->strip_accents) {
            if (!(rc = qr_tok_nfd(a.p ? a.p : "", a.n, &b))) {
                a.n = 0;
                for (size_t i = 0; i < b.n && !rc;) {
                    int cl = qr_tok_utf8_next(b.p + i, b.n - i, &cp);
                    if (!is_mn(cp))
                        rc = qr_tok_buf_put(&a, b.p + i, (size_t)cl);
                    i += (size_t)cl;
                }
            }
        }
        if (!rc) {
            if (nm->lowercase) {
                for (size_t i = 0; i < a.n && !rc;) {
                    i += (size_t)qr_tok_utf8_next(a.p + i, a.n - i, &cp);
                    rc = put_lower(out, cp);
                }
            } else {
                rc = qr_tok_buf_put(out, a.p ? a.p : "", a.n);
            }
        }
        qr_tok_buf_free(&a);
        qr_tok_buf_free(&b);
        return rc;
    }
    }
    return qr_fail(QR_EINTERNAL, "tokenizer: normalizer type %d", (int)nm->type);
}

int qr_tok_normalize(const qr_tokenizer *t, const char *src, size_t len, qr_tok_buf *dst)
{
    int rc = 0;
    dst->n = 0;
    if (t->n_norms == 0)
        return qr_tok_buf_put(dst, src, len);
    qr_tok_buf tmp = {0};
    qr_tok_buf *in = &tmp, *out = dst;
    /* Alternate two buffers so the last step writes into dst. */
    if (t->n_norms % 2 == 0) {
        in = dst;
        out = &tmp;
    }
    for (size_t k = 0; k < t->n_norms; k++) {
        const char *s = k == 0 ? src : in->p;
        size_t sl = k == 0 ? len : in->n;
        out->n = 0;
        if ((rc = qr_tok_buf_reserve(out, 0)) || (rc = norm_one(&t->norms[k], s ? s : "", sl, out)))
            break;
        qr_tok_buf *x = in;
        in = out;
        out = x;
    }
    qr_tok_buf_free(&tmp);
    return rc;
}

/* ---- pre-tokenizers -------------------------------------------------------------------- */

void qr_tok_pieces_free(qr_tok_pieces *p)
{
    if (!p)
        return;
    qr_tok_buf_free(&p->text);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* Appends a span of out->text (empty spans are dropped, as HF filters them). */
static int piece_add(qr_tok_pieces *out, size_t off, size_t len, bool first)
{
    if (len == 0)
        return 0;
    if (out->n == out->cap) {
        size_t c = out->cap ? out->cap * 2 : 64;
        qr_tok_span *v = realloc(out->v, c * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: pre-tokens");
        out->v = v;
        out->cap = c;
    }
    out->v[out->n++] = (qr_tok_span){off, len, first};
    return 0;
}

/* Segments (start, end, is_match) covering a string, as Pattern::find_matches returns. */
typedef struct { size_t s, e; bool m; } seg;
typedef struct { seg *v; size_t n, cap; } segs;

static int seg_add(segs *g, size_t s, size_t e, bool m)
{
    if (g->n == g->cap) {
        size_t c = g->cap ? g->cap * 2 : 64;
        seg *v = realloc(g->v, c * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: split segments");
        g->v = v;
        g->cap = c;
    }
    g->v[g->n++] = (seg){s, e, m};
    return 0;
}

typedef bool (*char_pred)(uint32_t);

static bool is_bert_punct(uint32_t c) { return qr_tok_is_punctuation(c); }
/* Rust char::is_numeric (Nd, Nl, No of Rust's Unicode; HF's tables, tok_unicode.c), what
 * HF's Digits pre-tokenizer splits on. */
static bool is_numeric(uint32_t c)
{
    if (c < 0x80)
        return c >= '0' && c <= '9';
    return (qr_tok_uflags(c) & QR_U_NUMERIC) != 0;
}

/* Each character satisfying pred is its own match; runs of others are non-matches. */
static int segs_pred(const char *s, size_t len, char_pred pred, uint32_t only_cp, segs *g)
{
    int rc;
    size_t last = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = (size_t)qr_tok_utf8_next(s + i, len - i, &cp);
        if (pred ? pred(cp) : cp == only_cp) {
            if (last < i && (rc = seg_add(g, last, i, false)))
                return rc;
            if ((rc = seg_add(g, i, i + cl, true)))
                return rc;
            last = i + cl;
        }
        i += cl;
    }
    if (last < len)
        return seg_add(g, last, len, false);
    return 0;
}

static int segs_matches(const char *s, size_t len, const size_t *m, size_t n, segs *g)
{
    int rc;
    size_t prev = 0;
    for (size_t k = 0; k < n; k += 2) {
        if (prev != m[k] && (rc = seg_add(g, prev, m[k], false)))
            return rc;
        if ((rc = seg_add(g, m[k], m[k + 1], true)))
            return rc;
        prev = m[k + 1];
    }
    if (prev != len)
        return seg_add(g, prev, len, false);
    return 0;
}

static int segs_literal(const char *s, size_t len, const char *pat, size_t pat_len, segs *g)
{
    int rc;
    size_t prev = 0;
    if (pat_len == 0)
        return seg_add(g, 0, len, false);
    for (size_t i = 0; i + pat_len <= len;) {
        if (memcmp(s + i, pat, pat_len) == 0) {
            if (prev != i && (rc = seg_add(g, prev, i, false)))
                return rc;
            if ((rc = seg_add(g, i, i + pat_len, true)))
                return rc;
            i += pat_len;
            prev = i;
        } else {
            i++;
        }
    }
    if (prev != len)
        return seg_add(g, prev, len, false);
    return 0;
}

/* NormalizedString::split: turns segments into spans per behavior; writes pieces of
 * s (at text offset base) into out. first marks the span beginning at s[0]. */
static int apply_behavior(segs *g, qr_tok_split_behavior b, bool invert, size_t base, bool first,
                          qr_tok_pieces *out)
{
    int rc = 0;
    if (invert)
        for (size_t i = 0; i < g->n; i++)
            g->v[i].m = !g->v[i].m;
    /* Reduce into g in place (acc = the first k entries). */
    size_t k = 0;
    bool prev_m = false;
    switch (b) {
    case QR_SPLIT_ISOLATED:
        k = g->n;
        break;
    case QR_SPLIT_REMOVED:
        for (size_t i = 0; i < g->n; i++)
            if (!g->v[i].m)
                g->v[k++] = g->v[i];
        break;
    case QR_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < g->n; i++) {
            if (g->v[i].m == prev_m && k > 0)
                g->v[k - 1].e = g->v[i].e;
            else
                g->v[k++] = g->v[i];
            prev_m = g->v[i].m;
        }
        break;
    case QR_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < g->n; i++) {
            if (g->v[i].m && !prev_m && k > 0)
                g->v[k - 1].e = g->v[i].e;
            else
                g->v[k++] = g->v[i];
            prev_m = g->v[i].m;
        }
        break;
    case QR_SPLIT_MERGED_WITH_NEXT: {
        /* Right to left, then restore order. */
        size_t w = g->n;
        for (size_t i = g->n; i-- > 0;) {
            if (g->v[i].m && !prev_m && w < g->n)
                g->v[w].s = g->v[i].s;
            else
                g->v[--w] = g->v[i];
            prev_m = g->v[i].m;
        }
        for (size_t i = w; i < g->n; i++)
            g->v[k++] = g->v[i];
        break;
    }
    }
    for (size_t i = 0; i < k && !rc; i++)
        rc = piece_add(out, base + g->v[i].s, g->v[i].e - g->v[i].s, first && g->v[i].s == 0);
    return rc;
}

/* Runs one pre-tokenizer over every piece of in, producing out. */
static int pretok_one(const qr_tok_pretok *p, const qr_tok_pieces *in, qr_tok_pieces *out)
{
    int rc = 0;
    segs g = {0};
    size_t *m = NULL, mn = 0, mcap = 0;
    out->n = 0;
    out->text.n = 0;
    if ((rc = qr_tok_buf_reserve(&out->text, in->text.n + in->n)))
        return rc;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const char *s = in->text.p + in->v[i].off;
        size_t len = in->v[i].len, base = out->text.n;
        bool first = in->v[i].first;
        g.n = 0;
        switch (p->type) {
        case QR_PT_BERT: {
            /* whitespace removed, then punctuation isolated */
            segs g2 = {0};
            if (!(rc = segs_pred(s, len, qr_tok_is_whitespace, 0, &g))) {
                for (size_t k = 0; k < g.n && !rc; k++) {
                    if (g.v[k].m)
                        continue;
                    g2.n = 0;
                    size_t a = g.v[k].s;
                    if ((rc = segs_pred(s + a, g.v[k].e - a, is_bert_punct, 0, &g2)))
                        break;
                    for (size_t j = 0; j < g2.n && !rc; j++)
                        rc = piece_add(out, base + a + g2.v[j].s, g2.v[j].e - g2.v[j].s,
                                       first && a + g2.v[j].s == 0);
                }
            }
            free(g2.v);
            if (!rc)
                rc = qr_tok_buf_put(&out->text, s, len);
            continue;
        }
        case QR_PT_WHITESPACE_SPLIT:
            rc = segs_pred(s, len, qr_tok_is_whitespace, 0, &g);
            if (!rc)
                rc = apply_behavior(&g, QR_SPLIT_REMOVED, false, base, first, out);
            break;
        case QR_PT_PUNCTUATION:
            rc = segs_pred(s, len, is_bert_punct, 0, &g);
            if (!rc)
                rc = apply_behavior(&g, p->behavior, false, base, first, out);
            break;
        case QR_PT_DIGITS:
            rc = segs_pred(s, len, is_numeric, 0, &g);
            if (!rc)
                rc = apply_behavior(&g, p->individual_digits ? QR_SPLIT_ISOLATED : QR_SPLIT_CONTIGUOUS,
                                    false, base, first, out);
            break;
        case QR_PT_WHITESPACE:
        case QR_PT_SPLIT:
            mn = 0;
            if (p->re)
                rc = qr_tok_regex_find_all(p->re, s, len, &m, &mn, &mcap);
            if (!rc)
                rc = p->re ? segs_matches(s, len, m, mn, &g) : segs_literal(s, len, p->str, p->str_len, &g);
            if (!rc)
                rc = apply_behavior(&g, p->type == QR_PT_WHITESPACE ? QR_SPLIT_REMOVED : p->behavior,
                                    p->type == QR_PT_WHITESPACE ? true : p->invert, base, first, out);
            break;
        case QR_PT_BYTE_LEVEL: {
            /* Optional prefix space, optional GPT-2 split, then every byte → its code point. */
            qr_tok_buf pre = {0};
            if (p->add_prefix_space && s[0] != ' ') {
                if ((rc = qr_tok_buf_putc(&pre, ' ')) || (rc = qr_tok_buf_put(&pre, s, len))) {
                    qr_tok_buf_free(&pre);
                    break;
                }
                s = pre.p;
                len = pre.n;
            }
            if (p->use_regex) {
                mn = 0;
                rc = qr_tok_regex_find_all(p->re, s, len, &m, &mn, &mcap);
                if (!rc)
                    rc = segs_matches(s, len, m, mn, &g);
            } else {
                rc = seg_add(&g, 0, len, false);
            }
            for (size_t k = 0; k < g.n && !rc; k++) {
                size_t start = out->text.n;
                for (size_t j = g.v[k].s; j < g.v[k].e && !rc; j++)
                    rc = qr_tok_buf_put_cp(&out->text, qr_tok_byte_to_cp((uint8_t)s[j]));
                if (!rc)
                    rc = piece_add(out, start, out->text.n - start, first && g.v[k].s == 0);
            }
            qr_tok_buf_free(&pre);
            continue;
        }
        case QR_PT_METASPACE: {
            /* ' ' → replacement, optional prepend, optional split before each replacement. */
            size_t start = out->text.n;
            bool starts = len >= p->str_len && memcmp(s, p->str, p->str_len) == 0;
            bool prepend = p->prepend_scheme == QR_PREPEND_ALWAYS ||
                           (p->prepend_scheme == QR_PREPEND_FIRST && first);
            if (prepend && !starts && s[0] != ' ' && (rc = qr_tok_buf_put(&out->text, p->str, p->str_len)))
                break;
            for (size_t j = 0; j < len && !rc; j++)
                rc = s[j] == ' ' ? qr_tok_buf_put(&out->text, p->str, p->str_len)
                                 : qr_tok_buf_putc(&out->text, s[j]);
            if (rc)
                break;
            const char *r = out->text.p + start;
            size_t rl = out->text.n - start;
            if (p->split) {
                uint32_t rcp;
                qr_tok_utf8_next(p->str, p->str_len, &rcp);
                if (!(rc = segs_pred(r, rl, NULL, rcp, &g)))
                    rc = apply_behavior(&g, QR_SPLIT_MERGED_WITH_NEXT, false, start, first, out);
            } else {
                rc = piece_add(out, start, rl, first);
            }
            continue;
        }
        }
        if (!rc)
            rc = qr_tok_buf_put(&out->text, s, len);
    }
    free(g.v);
    free(m);
    return rc;
}

int qr_tok_pretokenize(const qr_tokenizer *t, const char *s, size_t len, bool first, qr_tok_pieces *out)
{
    int rc;
    out->n = 0;
    out->text.n = 0;
    if ((rc = qr_tok_buf_put(&out->text, s, len)) || (rc = piece_add(out, 0, len, first)))
        return rc;
    qr_tok_pieces tmp = {0};
    for (size_t k = 0; k < t->n_pretoks; k++) {
        if ((rc = pretok_one(&t->pretoks[k], out, &tmp)))
            break;
        qr_tok_pieces x = *out;
        *out = tmp;
        tmp = x;
    }
    qr_tok_pieces_free(&tmp);
    return rc;
}
