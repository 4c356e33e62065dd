/* Chunker: rules and token counting are documented in chunker.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "ingest/chunker.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct qr_chunker {
    const qr_tokenizer *tok;
    qr_chunk_opts o;
    int n_special; /* tokens the post-processor adds to any text */
    pcre2_code *sent;
};

void qr_chunk_opts_default(qr_chunk_opts *o)
{
    o->max_tokens = 256;
    o->overlap_tokens = 32;
}

/* Abbreviations after which a period does not end a sentence (case-sensitive). */
static const char *abbrevs[] = {
    "e\\.g", "i\\.e", "E\\.g", "I\\.e", "cf", "Cf", "vs", "Dr", "Mr", "Mrs", "Ms", "Prof", "Sr", "Jr", "St",
    "Mt", "Fig", "fig", "Figs", "Eq", "eq", "Eqs", "No", "no", "Nos", "Vol", "vol", "pp", "p", "al",
    "approx", "Inc", "Ltd", "Co", "Corp", "Dept", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug",
    "Sep", "Sept", "Oct", "Nov", "Dec", "Sec", "sec", "Ch", "ch", "Ref", "ref", "resp", "viz", "ca",
    "a\\.k\\.a", "U\\.S", "Ph\\.D", "et", "Gen", "Col", "Lt", "Capt", "Rev", "Hon", "Gov", "Sen", "Rep",
    NULL,
};

static int compile_sentence_regex(pcre2_code **out)
{
    // (?<!\bDr|\bMr|...|\b\p{Lu}) [.!?]+ closing* \K \s+ (?= opening* [\p{Lu}\p{N}])
    char pat[4096];
    size_t k = 0;
    k += (size_t)snprintf(pat + k, sizeof pat - k, "(?<!");
    for (int i = 0; abbrevs[i]; i++) k += (size_t)snprintf(pat + k, sizeof pat - k, "\\b%s|", abbrevs[i]);
    k += (size_t)snprintf(pat + k, sizeof pat - k,
                          "\\b\\p{Lu})[.!?]+[\"'\\x{2019}\\x{201D})\\]]*\\K\\s+"
                          "(?=[\"'\\x{201C}\\x{2018}(\\[]*[\\p{Lu}\\p{N}])");
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qr_fail(QR_EINTERNAL, "chunker: sentence regex: %s at %zu", (const char *)msg, (size_t)eoff);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // optional speed-up; the interpreter is the fallback
    *out = re;
    return 0;
}

/* ---------------------------------------------------------------- counting */

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Word approximation of s[0, n), or of a prefix of it once the count passes
 * cap (the result is then > cap): every run and mark adds >= 0 and a cut run
 * counts no more than the whole run, so stopping early never turns a count
 * over cap into one within it. */
static long long approx_count_upto(const char *s, size_t n, long long cap)
{
    long long t = 0;
    size_t i = 0;
    while (i < n && t <= cap) {
        unsigned char c = (unsigned char)s[i];
        if (word_byte(c)) {
            size_t chars = 0;
            while (i < n && word_byte((unsigned char)s[i])) {
                if (((unsigned char)s[i] & 0xC0) != 0x80) chars++;
                i++;
            }
            t += (long long)((chars + 7) / 8);
        } else {
            if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')) t++;
            i++;
        }
    }
    return t;
}

static int approx_count(const char *s, size_t n)
{
    long long t = approx_count_upto(s, n, INT32_MAX);
    return t > INT32_MAX ? INT32_MAX : (int)t;
}

/* Tokens of s[0, n) including specials (full) or not. */
static int count(const qr_chunker *c, const char *s, size_t n, bool full, int *out)
{
    if (!c->tok) {
        *out = approx_count(s, n);
        return 0;
    }
    int32_t *ids = NULL;
    size_t nid = 0;
    unsigned flags = QR_TOK_SPECIAL_AS_TEXT | (full ? QR_TOK_ADD_SPECIAL : 0u);
    int rc = qr_tokenize_ex(c->tok, s, n, flags, &ids, &nid);
    free(ids);
    if (rc) return rc;
    *out = nid > INT32_MAX ? INT32_MAX : (int)nid;
    return 0;
}

int qr_chunker_count(const qr_chunker *c, const char *text, size_t len, int *n)
{
    if (!c || (!text && len) || !n) return qr_fail(QR_EINVAL, "qr_chunker_count: NULL argument");
    return count(c, text ? text : "", len, true, n);
}

int qr_chunker_create(const qr_tokenizer *tok, const qr_chunk_opts *opts, qr_chunker **out)
{
    if (!out) return qr_fail(QR_EINVAL, "qr_chunker_create: NULL out");
    qr_chunker *c = calloc(1, sizeof *c);
    if (!c) return qr_fail(QR_ENOMEM, "chunker: out of memory");
    c->tok = tok;
    if (opts) c->o = *opts;
    else qr_chunk_opts_default(&c->o);
    int rc;
    if (tok && (rc = count(c, "", 0, true, &c->n_special))) goto fail;
    if (c->o.max_tokens < c->n_special + 8) {
        rc = qr_fail(QR_EINVAL, "chunker: max_tokens %d below %d (special tokens + 8)", c->o.max_tokens,
                     c->n_special + 8);
        goto fail;
    }
    if (c->o.overlap_tokens < 0 || c->o.overlap_tokens > c->o.max_tokens / 2) {
        rc = qr_fail(QR_EINVAL, "chunker: overlap_tokens %d outside [0, %d]", c->o.overlap_tokens,
                     c->o.max_tokens / 2);
        goto fail;
    }
    if ((rc = compile_sentence_regex(&c->sent))) goto fail;
    *out = c;
    return 0;
fail:
    qr_chunker_destroy(c);
    return rc;
}

void qr_chunker_destroy(qr_chunker *c)
{
    if (!c) return;
    pcre2_code_free(c->sent);
    free(c);
}

/* ---------------------------------------------------------------- units */

typedef struct {
    size_t s, e;      /* span in doc text */
    int tok;          /* tokens without specials */
    size_t block;
    bool block_start; /* first unit of its block */
    bool heading;
    int rest;         /* tokens of this and the following units of the same block */
} unit;

typedef struct {
    unit *u;
    size_t n, cap;
} units;

static int push(units *v, unit x)
{
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 64;
        unit *p = realloc(v->u, c * sizeof *p);
        if (!p) return qr_fail(QR_ENOMEM, "chunker: out of memory");
        v->u = p;
        v->cap = c;
    }
    v->u[v->n++] = x;
    return 0;
}

static bool ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Sentence spans of t[0, n) relative to t; trailing whitespace excluded. */
static int sentences(const qr_chunker *c, pcre2_match_data *md, const char *t, size_t n, size_t **sp, size_t *nsp)
{
    size_t cap = 16, k = 0;
    size_t *v = malloc(cap * 2 * sizeof *v);
    if (!v) return qr_fail(QR_ENOMEM, "chunker: out of memory");
    size_t st = 0, pos = 0;
    uint32_t opt = 0;
    for (;;) {
        int m = pcre2_match(c->sent, (PCRE2_SPTR)t, n, pos, opt, md, NULL);
        opt = PCRE2_NO_UTF_CHECK; // the subject was checked by the first call
        size_t end, next;
        if (m > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            end = ov[0];
            next = ov[1];
        } else if (m == PCRE2_ERROR_NOMATCH) {
            end = n;
            next = n;
        } else {
            free(v);
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            return qr_fail(m == PCRE2_ERROR_NOMEMORY ? QR_ENOMEM : QR_EFORMAT, "chunker: sentence match: %s",
                           (const char *)msg);
        }
        size_t e = end;
        while (e > st && ws((unsigned char)t[e - 1])) e--;
        while (st < e && ws((unsigned char)t[st])) st++;
        if (e > st) {
            if (k == cap) {
                cap *= 2;
                size_t *p = realloc(v, cap * 2 * sizeof *p);
                if (!p) {
                    free(v);
                    return qr_fail(QR_ENOMEM, "chunker: out of memory");
                }
                v = p;
            }
            v[2 * k] = st;
            v[2 * k + 1] = e;
            k++;
        }
        if (next >= n) break;
        st = next;
        pos = next > end ? next : end + 1; // \s+ is never empty, so next > end
    }
    *sp = v;
    *nsp = k;
    return 0;
}

int qr_chunker_sentences(const qr_chunker *c, const char *text, size_t len, size_t **spans, size_t *n_spans)
{
    if (!c || (!text && len) || !spans || !n_spans) return qr_fail(QR_EINVAL, "qr_chunker_sentences: NULL argument");
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->sent, NULL);
    if (!md) return qr_fail(QR_ENOMEM, "chunker: out of memory");
    int rc = sentences(c, md, text ? text : "", len, spans, n_spans);
    pcre2_match_data_free(md);
    return rc;
}

/* Start of the UTF-8 character holding byte m (m itself if it starts one). */
static size_t char_floor(const char *t, size_t lo, size_t m)
{
    while (m > lo && ((unsigned char)t[m] & 0xC0) == 0x80) m--;
    return m;
}

/* Cut point at or before m for a piece starting at pos: the start of the
 * whitespace run before the word holding m, or m's character boundary when no
 * whitespace lies between pos and m. */
static size_t snap_back(const char *t, size_t pos, size_t m)
{
    m = char_floor(t, pos, m);
    size_t q = m;
    while (q > pos && !ws((unsigned char)t[q - 1]) && !ws((unsigned char)t[q])) q--;
    if (q == pos) return m;                                   // one word: cut inside it
    while (q > pos && ws((unsigned char)t[q - 1])) q--;       // drop the whitespace run
    return q > pos ? q : m;
}

/* Next word start at or after m (before end). */
static size_t snap_fwd(const char *t, size_t m, size_t end)
{
    while (m < end && ((unsigned char)t[m] & 0xC0) == 0x80) m++;
    if (m > 0 && m < end && !ws((unsigned char)t[m - 1]))
        while (m < end && !ws((unsigned char)t[m])) m++;
    while (m < end && ws((unsigned char)t[m])) m++;
    return m;
}

static bool alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether t[pos, e) fits in one chunk, with *n its count (specials included)
 * when it does. Counting the whole rest of a long unit for every piece cut
 * from it made split_long quadratic (a 20 MB CSV line took minutes), so only
 * a prefix of about the size of a chunk is looked at when the rest is long:
 *  - word approximation: the count stops once it passes max_tokens (exact,
 *    see approx_count_upto);
 *  - tokenizer: prefixes ending at a letter/digit followed by ASCII whitespace,
 *    in windows doubling from 4 * max_tokens bytes. At such a point
 *    pre-tokenizing tokenizers (WordPiece's whitespace/punctuation split,
 *    byte-level BPE's regex, which has no look-behind and whose letter, digit
 *    and whitespace classes all stop there) cut the text into the same
 *    pre-tokens as the whole, so the rest has at least the prefix's tokens; a
 *    margin of 8 covers tokenizers that merge across a space. A rest without
 *    such a point (one multi-megabyte word) is still counted whole. */
static int rest_fits(const qr_chunker *c, const char *t, size_t pos, size_t e, bool *fits, int *n)
{
    const int max = c->o.max_tokens;
    int rc;
    if (!c->tok) {
        long long k = approx_count_upto(t + pos, e - pos, max);
        *fits = k <= max;
        *n = k > max ? max + 1 : (int)k;
        return 0;
    }
    for (size_t w = (size_t)max * 4; w < e - pos; w *= 2) {
        size_t q = pos + w;
        while (q > pos && !(alnum((unsigned char)t[q - 1]) && ws((unsigned char)t[q]))) q--;
        if (q == pos) continue;
        int k;
        if ((rc = count(c, t + pos, q - pos, true, &k))) return rc;
        if (k > max + 8) {
            *fits = false;
            *n = k;
            return 0;
        }
    }
    if ((rc = count(c, t + pos, e - pos, true, n))) return rc;
    *fits = *n <= max;
    return 0;
}

/* Splits t[s, e) (one unit longer than a chunk) into pieces of at most
 * max_tokens (specials included), overlapping by at most overlap tokens. */
static int split_long(const qr_chunker *c, const char *t, size_t s, size_t e, unit proto, units *out)
{
    const int max = c->o.max_tokens;
    size_t pos = s, prev_end = s; // prev_end: end of the previous piece
    int rc, n;
    while (pos < e) {
        while (pos < e && ws((unsigned char)t[pos])) pos++;
        if (pos >= e) break;
        bool fits;
        if ((rc = rest_fits(c, t, pos, e, &fits, &n))) return rc;
        if (fits) {
            proto.s = pos;
            proto.e = e;
            proto.tok = n - c->n_special;
            if ((rc = push(out, proto))) return rc;
            break;
        }
        // window [pos, hi) holding more than max tokens
        size_t w = (size_t)max * 4, hi;
        for (;;) {
            hi = pos + w < e ? pos + w : e;
            if (hi == e) break;
            if ((rc = count(c, t + pos, hi - pos, true, &n))) return rc;
            if (n > max) break;
            w *= 2;
        }
        // largest word-snapped cut with count <= max
        size_t good = pos, bad = hi;
        while (bad - good > 1) {
            size_t mid = good + (bad - good) / 2;
            size_t cut = snap_back(t, pos, mid);
            if (cut <= pos) {
                good = mid; // nothing to count yet: move right
                continue;
            }
            if ((rc = count(c, t + pos, cut - pos, true, &n))) return rc;
            if (n <= max) good = mid;
            else bad = mid;
        }
        size_t b = good > pos ? snap_back(t, pos, good) : pos;
        if (b > pos) {
            if ((rc = count(c, t + pos, b - pos, true, &n))) return rc;
            if (n > max) b = pos;
        }
        if (b <= prev_end) b = pos; // no new word fits after the overlap: cut inside the next word
        if (b <= pos) {
            // character-level: largest char boundary that fits
            size_t g = pos, bd = hi;
            while (bd - g > 1) {
                size_t mid = char_floor(t, pos, g + (bd - g) / 2);
                if (mid <= g) mid = g + 1;
                while (mid < bd && ((unsigned char)t[mid] & 0xC0) == 0x80) mid++;
                if (mid >= bd) break;
                if ((rc = count(c, t + pos, mid - pos, true, &n))) return rc;
                if (n <= max) g = mid;
                else bd = mid;
            }
            b = g;
            if (b <= pos) { // a single character over the limit cannot happen with max >= specials + 8
                b = pos + 1;
                while (b < e && ((unsigned char)t[b] & 0xC0) == 0x80) b++;
            }
        }
        size_t pe = b;
        while (pe > pos && ws((unsigned char)t[pe - 1])) pe--;
        if (pe <= prev_end && pos < prev_end) { // nothing new even by characters: drop the overlap
            pos = prev_end;
            continue;
        }
        if ((rc = count(c, t + pos, pe - pos, true, &n))) return rc;
        proto.s = pos;
        proto.e = pe;
        proto.tok = n - c->n_special;
        if ((rc = push(out, proto))) return rc;
        proto.block_start = false;
        prev_end = pe;
        // next piece starts at the earliest word start whose tail to pe fits the overlap
        size_t next = b;
        if (c->o.overlap_tokens > 0) {
            size_t lo = pos + 1, hi2 = pe; // search m in [lo, hi2]: tail(snap_fwd(m)) <= overlap
            while (lo < hi2) {
                size_t mid = lo + (hi2 - lo) / 2;
                size_t q = snap_fwd(t, mid, pe);
                int tn = 0;
                if (q < pe && (rc = count(c, t + q, pe - q, false, &tn))) return rc;
                if (q >= pe || tn <= c->o.overlap_tokens) hi2 = mid;
                else lo = mid + 1;
            }
            size_t q = snap_fwd(t, lo, pe);
            if (q > pos && q < pe) next = q;
        }
        pos = next;
    }
    return 0;
}

static int add_unit(const qr_chunker *c, const char *t, size_t s, size_t e, unit proto, units *out)
{
    int n, rc;
    if ((rc = count(c, t + s, e - s, false, &n))) return rc;
    if (n + c->n_special > c->o.max_tokens) return split_long(c, t, s, e, proto, out);
    proto.s = s;
    proto.e = e;
    proto.tok = n;
    return push(out, proto);
}

static int block_units(const qr_chunker *c, pcre2_match_data *md, const qr_doc *d, size_t bi, units *out)
{
    const qr_block *b = &d->blocks[bi];
    const char *t = d->text;
    size_t first = out->n;
    unit proto = {.block = bi, .block_start = true, .heading = b->kind == QR_BLOCK_HEADING};
    int rc = 0;
    if (b->kind == QR_BLOCK_HEADING || b->kind == QR_BLOCK_TABLE_ROW) {
        rc = add_unit(c, t, b->off, b->off + b->len, proto, out);
    } else if (b->kind == QR_BLOCK_CODE) {
        size_t p = b->off, end = b->off + b->len;
        while (p < end && !rc) {
            const char *nl = memchr(t + p, '\n', end - p);
            size_t le = nl ? (size_t)(nl - t) : end;
            size_t s = p, e = le;
            while (e > s && ws((unsigned char)t[e - 1])) e--;
            while (s < e && ws((unsigned char)t[s])) s++; // chunks are trimmed; indentation precedes s
            bool empty = true;
            for (size_t i = s; i < e; i++)
                if (!ws((unsigned char)t[i])) empty = false;
            if (!empty) {
                rc = add_unit(c, t, s, e, proto, out);
                proto.block_start = false;
            }
            p = le + 1;
        }
    } else {
        size_t *sp = NULL, nsp = 0;
        if ((rc = sentences(c, md, t + b->off, b->len, &sp, &nsp))) return rc;
        for (size_t i = 0; i < nsp && !rc; i++) {
            rc = add_unit(c, t, b->off + sp[2 * i], b->off + sp[2 * i + 1], proto, out);
            proto.block_start = false;
        }
        free(sp);
    }
    if (rc) return rc;
    int rest = 0;
    for (size_t i = out->n; i > first; i--) {
        rest += out->u[i - 1].tok;
        out->u[i - 1].rest = rest;
    }
    return 0;
}

/* ---------------------------------------------------------------- packing */

typedef struct {
    qr_chunk *v;
    size_t n, cap;
} chunks;

static int emit(chunks *o, const qr_doc *d, const unit *a, const unit *z, int ntok)
{
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 16;
        qr_chunk *p = realloc(o->v, c * sizeof *p);
        if (!p) return qr_fail(QR_ENOMEM, "chunker: out of memory");
        o->v = p;
        o->cap = c;
    }
    const qr_block *b = &d->blocks[a->block];
    qr_chunk *ch = &o->v[o->n++];
    ch->off = a->s;
    ch->len = z->e - a->s;
    ch->page = b->page;
    ch->heading = b->heading ? b->heading : "";
    ch->block = a->block;
    ch->n_tokens = ntok;
    return 0;
}

/* Packs units u[0, n) (one hard-boundary group) into chunks. */
static int pack(const qr_chunker *c, const qr_doc *d, const unit *u, size_t n, chunks *o)
{
    const int max = c->o.max_tokens, half = max / 2;
    size_t i = 0, fresh = 0; // fresh: first unit no chunk has held yet
    int rc;
    while (i < n) {
        // Overlap units must leave room for the first fresh unit.
        if (i < fresh) {
            int s = c->n_special + u[fresh].tok;
            for (size_t k = i; k < fresh; k++) s += u[k].tok;
            while (i < fresh && s > max) s -= u[i++].tok;
        }
        int tok = c->n_special;
        size_t j = i;
        while (j < n) {
            int t = u[j].tok;
            if (j > fresh && tok + t > max) break;
            if (j > fresh && u[j].block_start && tok >= half) {
                if (u[j].heading || tok + u[j].rest > max) break;
            }
            tok += t;
            j++;
        }
        // Exact count of the span: drop trailing units until it fits, but keep
        // at least one fresh unit (then drop overlap units from the front).
        int exact;
        for (;;) {
            if ((rc = count(c, d->text + u[i].s, u[j - 1].e - u[i].s, true, &exact))) return rc;
            if (exact <= max) break;
            if (j - 1 > fresh && j - 1 > i) j--;
            else if (i < fresh) i++;
            else break;
        }
        if (exact > max) // split_long guarantees single units fit
            return qr_fail(QR_EINTERNAL, "chunker: unit of %d tokens over %d", exact, max);
        if ((rc = emit(o, d, &u[i], &u[j - 1], exact))) return rc;
        fresh = j;
        if (j >= n) break;
        // overlap: trailing whole units of this chunk within overlap_tokens
        size_t k = j;
        int ov = 0;
        while (k > i + 1 && ov + u[k - 1].tok <= c->o.overlap_tokens) {
            ov += u[k - 1].tok;
            k--;
        }
        i = k;
    }
    return 0;
}

/* A heading block that is the root of its heading path. */
static bool top_heading(const qr_doc *d, const qr_block *b)
{
    return b->kind == QR_BLOCK_HEADING && b->heading && strlen(b->heading) == b->len &&
           memcmp(b->heading, d->text + b->off, b->len) == 0;
}

int qr_chunk_doc(const qr_chunker *c, const qr_doc *d, qr_chunk **out, size_t *n_out)
{
    if (!c || !d || !out || !n_out) return qr_fail(QR_EINVAL, "qr_chunk_doc: NULL argument");
    units us = {0};
    chunks ch = {0};
    int rc = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->sent, NULL);
    if (!md) return qr_fail(QR_ENOMEM, "chunker: out of memory");
    size_t g = 0; // start block of the current hard-boundary group
    while (g < d->n_blocks) {
        size_t h = g + 1;
        while (h < d->n_blocks && d->blocks[h].page == d->blocks[g].page && !top_heading(d, &d->blocks[h])) h++;
        us.n = 0;
        for (size_t b = g; b < h && !rc; b++) rc = block_units(c, md, d, b, &us);
        if (rc) goto fail;
        if (us.n && (rc = pack(c, d, us.u, us.n, &ch))) goto fail;
        g = h;
    }
    free(us.u);
    pcre2_match_data_free(md);
    *out = ch.v;
    *n_out = ch.n;
    return 0;
fail:
    free(us.u);
    free(ch.v);
    pcre2_match_data_free(md);
    return rc;
}
