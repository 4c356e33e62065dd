/* Tokenizer building blocks: buffers, UTF-8, Unicode classes, hash maps, vocabulary,
 * merges, added tokens, construction and destruction of a qr_tokenizer. */
#include "runtime/tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "runtime/tokenizer/tok_regex_classes.h"

#include "common/error.h"

/* ---- buffers ------------------------------------------------------------------------- */

int qr_tok_buf_reserve(qr_tok_buf *b, size_t extra)
{
    size_t need = b->n + extra + 1; /* + NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return qr_fail(QR_ENOMEM, "tokenizer: buffer of %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

int qr_tok_buf_put(qr_tok_buf *b, const char *s, size_t len)
{
    int rc = qr_tok_buf_reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

int qr_tok_buf_putc(qr_tok_buf *b, char c) { return qr_tok_buf_put(b, &c, 1); }

int qr_tok_buf_put_cp(qr_tok_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return qr_tok_buf_put(b, u, n);
}

void qr_tok_buf_free(qr_tok_buf *b)
{
    if (!b)
        return;
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int qr_tok_ids_push(qr_tok_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: id array of %zu", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

void qr_tok_ids_free(qr_tok_ids *a)
{
    if (!a)
        return;
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---- UTF-8 ----------------------------------------------------------------------------- */

int qr_tok_utf8_next(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || len < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0 || len < 4) {
        if (len < 3) {
            *cp = u[0];
            return 1;
        }
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

/* Length of the valid UTF-8 character at s (1..4), or 0 with *bad set to the length of the
 * maximal invalid prefix (Unicode "maximal subpart" rule, as WHATWG and Rust use). */
static size_t utf8_valid_len(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= len) {
            *bad = i;
            return 0;
        }
        unsigned char d = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (d < l || d > h) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

int qr_tok_utf8_sanitize(const char *src, size_t len, qr_tok_buf *dst)
{
    const unsigned char *s = (const unsigned char *)src;
    int rc = qr_tok_buf_reserve(dst, len);
    if (rc)
        return rc;
    size_t i = 0, run = 0; /* run: start of the pending valid run */
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad = 0, n = utf8_valid_len(s + i, len - i, &bad);
        if (n) {
            i += n;
            continue;
        }
        if ((rc = qr_tok_buf_put(dst, src + run, i - run)) || (rc = qr_tok_buf_put_cp(dst, 0xFFFD)))
            return rc;
        i += bad;
        run = i;
    }
    return qr_tok_buf_put(dst, src + run, len - run);
}

/* ---- Unicode classes ------------------------------------------------------------------- */

bool qr_tok_is_whitespace(uint32_t cp)
{
    /* Unicode White_Space property (what Rust's char::is_whitespace tests). */
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool qr_tok_is_punctuation(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
               (cp >= 123 && cp <= 126);
    /* unicode_categories' P* (HF's tables, tok_unicode.c): punctuation of recent Unicode
     * versions (e.g. U+10EAD, U+11660) is not split by HF. */
    return (qr_tok_uflags(cp) & QR_U_PUNCT) != 0;
}

bool qr_tok_is_alnum(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* ---- string map ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int strmap_grow(qr_tok_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return qr_fail(QR_ENOMEM, "tokenizer: hash map of %zu slots", cap);
    for (size_t i = 0; i < m->n; i++) {
        size_t j = hash_bytes(m->keys[i], m->klens[i]) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static size_t strmap_find(const qr_tok_strmap *m, const char *s, size_t len, uint64_t h)
{
    size_t j = h & (m->cap - 1);
    while (m->slots[j]) {
        uint32_t k = m->slots[j] - 1;
        if (m->klens[k] == len && memcmp(m->keys[k], s, len) == 0)
            return j;
        j = (j + 1) & (m->cap - 1);
    }
    return j;
}

int qr_tok_strmap_put(qr_tok_strmap *m, const char *s, size_t len, int32_t val)
{
    int rc;
    if (len > UINT32_MAX)
        return qr_fail(QR_ELIMIT, "tokenizer: token of %zu bytes", len);
    if ((m->n + 1) * 2 > m->cap && (rc = strmap_grow(m)))
        return rc;
    size_t j = strmap_find(m, s, len, hash_bytes(s, len));
    if (m->slots[j]) {
        m->vals[m->slots[j] - 1] = val;
        return 0;
    }
    if (m->n == m->kcap) {
        size_t kc = m->kcap ? m->kcap * 2 : 1024;
        char **k = realloc(m->keys, kc * sizeof *k);
        if (!k)
            return qr_fail(QR_ENOMEM, "tokenizer: hash map keys");
        m->keys = k;
        uint32_t *kl = realloc(m->klens, kc * sizeof *kl);
        if (!kl)
            return qr_fail(QR_ENOMEM, "tokenizer: hash map keys");
        m->klens = kl;
        int32_t *v = realloc(m->vals, kc * sizeof *v);
        if (!v)
            return qr_fail(QR_ENOMEM, "tokenizer: hash map values");
        m->vals = v;
        m->kcap = kc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return qr_fail(QR_ENOMEM, "tokenizer: token copy");
    memcpy(copy, s, len);
    copy[len] = '\0';
    m->keys[m->n] = copy;
    m->klens[m->n] = (uint32_t)len;
    m->vals[m->n] = val;
    m->slots[j] = (uint32_t)(++m->n);
    return 0;
}

/* Pointer to the stored key equal to s, or NULL. */
static const char *strmap_key(const qr_tok_strmap *m, const char *s, size_t len)
{
    if (!m->cap)
        return NULL;
    size_t j = strmap_find(m, s, len, hash_bytes(s, len));
    return m->slots[j] ? m->keys[m->slots[j] - 1] : NULL;
}

int32_t qr_tok_strmap_get(const qr_tok_strmap *m, const char *s, size_t len)
{
    if (!m->cap)
        return -1;
    size_t j = strmap_find(m, s, len, hash_bytes(s, len));
    return m->slots[j] ? m->vals[m->slots[j] - 1] : -1;
}

void qr_tok_strmap_free(qr_tok_strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->klens);
    free(m->vals);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- vocabulary ------------------------------------------------------------------------ */

static int vocab_reserve(qr_tok_vocab *v, int32_t id)
{
    if (id < v->cap)
        return 0;
    int32_t cap = v->cap ? v->cap : 1024;
    while (cap <= id)
        cap *= 2;
    char **p = realloc(v->pieces, (size_t)cap * sizeof *p);
    if (!p)
        return qr_fail(QR_ENOMEM, "tokenizer: vocabulary of %d", cap);
    v->pieces = p;
    uint32_t *l = realloc(v->piece_len, (size_t)cap * sizeof *l);
    if (!l)
        return qr_fail(QR_ENOMEM, "tokenizer: vocabulary of %d", cap);
    v->piece_len = l;
    for (int32_t i = v->cap; i < cap; i++) {
        v->pieces[i] = NULL;
        v->piece_len[i] = 0;
    }
    v->cap = cap;
    return 0;
}

int qr_tok_vocab_set(qr_tokenizer *t, const char *piece, size_t len, int32_t id)
{
    int rc;
    if (id < 0 || id >= QR_TOK_MAX_VOCAB)
        return qr_fail(QR_EFORMAT, "%s: vocabulary id %d out of range", t->source ? t->source : "tokenizer", id);
    if ((rc = vocab_reserve(&t->vocab, id)) || (rc = qr_tok_strmap_put(&t->vocab.map, piece, len, id)))
        return rc;
    t->vocab.pieces[id] = (char *)strmap_key(&t->vocab.map, piece, len);
    t->vocab.piece_len[id] = (uint32_t)len;
    if (id >= t->vocab.n)
        t->vocab.n = id + 1;
    if (len > t->vocab.max_piece_len)
        t->vocab.max_piece_len = (uint32_t)len;
    return 0;
}

int32_t qr_tok_vocab_get(const qr_tokenizer *t, const char *piece, size_t len)
{
    return qr_tok_strmap_get(&t->vocab.map, piece, len);
}

/* ---- merges ---------------------------------------------------------------------------- */

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int merges_grow(qr_tok_merges *m)
{
    size_t cap = m->cap ? m->cap * 2 : 4096;
    qr_tok_merge_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return qr_fail(QR_ENOMEM, "tokenizer: merge table of %zu", cap);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = hash_u64(m->slots[i].key) & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int qr_tok_merge_add(qr_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                     const char *where)
{
    qr_tok_merges *m = &t->model.merges;
    int rc;
    int32_t ia = qr_tok_vocab_get(t, a, alen), ib = qr_tok_vocab_get(t, b, blen);
    if (ia < 0 || ib < 0)
        return qr_fail(QR_EFORMAT, "%s: merge %zu: part \"%.*s\" not in the vocabulary", where, m->n,
                       (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
    /* With a continuing_subword_prefix, HF names the merged token a + b minus the prefix's
     * length from b's start ("hel" + "##lo" → "hello"). */
    size_t cut = t->model.cont_prefix_len;
    if (blen < cut)
        return qr_fail(QR_EFORMAT, "%s: merge %zu: \"%.*s\" is shorter than the subword prefix", where, m->n,
                       (int)blen, b);
    qr_tok_buf cat = {0};
    if ((rc = qr_tok_buf_put(&cat, a, alen)) || (rc = qr_tok_buf_put(&cat, b + cut, blen - cut)))
        goto fail;
    int32_t im = qr_tok_vocab_get(t, cat.p, cat.n);
    if (im < 0) {
        rc = qr_fail(QR_EFORMAT, "%s: merge %zu: \"%s\" not in the vocabulary", where, m->n, cat.p);
        goto fail;
    }
    if ((m->n + 1) * 2 > m->cap && (rc = merges_grow(m)))
        goto fail;
    uint64_t key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->slots[j].key && m->slots[j].key != key)
        j = (j + 1) & (m->cap - 1);
    /* A repeated pair takes its later rank: HF collects the merges into a hash map, where the
     * last insertion wins. */
    m->slots[j] = (qr_tok_merge_slot){key, (int32_t)m->n, im};
    m->n++;
    rc = 0;
fail:
    qr_tok_buf_free(&cat);
    return rc;
}

bool qr_tok_merge_get(const qr_tok_merges *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged)
{
    if (!m->cap)
        return false;
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->slots[j].key) {
        if (m->slots[j].key == key) {
            *rank = m->slots[j].rank;
            *merged = m->slots[j].merged;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

/* ---- added tokens ---------------------------------------------------------------------- */

int qr_tok_added_add(qr_tokenizer *t, const qr_tok_added *a)
{
    if (a->id < 0 || a->id >= QR_TOK_MAX_VOCAB)
        return qr_fail(QR_EFORMAT, "%s: added token id %d out of range", t->source ? t->source : "tokenizer", a->id);
    if (a->len == 0)
        return qr_fail(QR_EFORMAT, "%s: empty added token (id %d)", t->source ? t->source : "tokenizer", a->id);
    size_t slot = t->n_added;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == a->len && memcmp(t->added[i].content, a->content, a->len) == 0)
            slot = i;
    if (slot == t->n_added && t->n_added == t->cap_added) {
        size_t cap = t->cap_added ? t->cap_added * 2 : 16;
        qr_tok_added *p = realloc(t->added, cap * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "tokenizer: added tokens");
        t->added = p;
        t->cap_added = cap;
    }
    char *c = malloc(a->len + 1);
    if (!c)
        return qr_fail(QR_ENOMEM, "tokenizer: added token");
    memcpy(c, a->content, a->len);
    c[a->len] = '\0';
    if (slot < t->n_added)
        free(t->added[slot].content);
    else
        t->n_added++;
    t->added[slot] = *a;
    t->added[slot].content = c;
    return 0;
}

/* ---- construction ---------------------------------------------------------------------- */

int qr_tok_create(qr_tokenizer **out)
{
    qr_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return qr_fail(QR_ENOMEM, "tokenizer: allocation");
    t->model.unk_id = -1;
    t->model.max_input_chars_per_word = 100;
    t->bos_id = t->eos_id = t->pad_id = -1;
    *out = t;
    return 0;
}

static void norm_free(qr_tok_norm *n)
{
    free(n->str);
    free(n->content);
    pcre2_code_free(n->re);
}

static void pretok_free(qr_tok_pretok *p)
{
    free(p->str);
    pcre2_code_free(p->re);
}

static void dec_free(qr_tok_dec *d)
{
    free(d->str);
    free(d->content);
    pcre2_code_free(d->re);
}

#define PUSH(arr, n, cap, item, freefn)                                   \
    do {                                                                  \
        if ((n) == (cap)) {                                               \
            size_t c_ = (cap) ? (cap) * 2 : 4;                            \
            void *p_ = realloc((arr), c_ * sizeof *(arr));                \
            if (!p_) {                                                    \
                qr_tok_##freefn##_copy(item);                             \
                return qr_fail(QR_ENOMEM, "tokenizer: pipeline");         \
            }                                                             \
            (arr) = p_;                                                   \
            (cap) = c_;                                                   \
        }                                                                 \
        (arr)[(n)++] = *(item);                                           \
        return 0;                                                         \
    } while (0)

static void qr_tok_norm_copy(const qr_tok_norm *n) { qr_tok_norm c = *n; norm_free(&c); }
static void qr_tok_pretok_copy(const qr_tok_pretok *p) { qr_tok_pretok c = *p; pretok_free(&c); }
static void qr_tok_dec_copy(const qr_tok_dec *d) { qr_tok_dec c = *d; dec_free(&c); }

int qr_tok_push_norm(qr_tokenizer *t, const qr_tok_norm *n) { PUSH(t->norms, t->n_norms, t->cap_norms, n, norm); }
int qr_tok_push_pretok(qr_tokenizer *t, const qr_tok_pretok *p) { PUSH(t->pretoks, t->n_pretoks, t->cap_pretoks, p, pretok); }
int qr_tok_push_dec(qr_tokenizer *t, const qr_tok_dec *d)
{
    t->has_decoder = true;
    PUSH(t->decs, t->n_decs, t->cap_decs, d, dec);
}

int qr_tok_push_post(qr_tokenizer *t, bool is_seq, const int32_t *ids, size_t n_ids)
{
    t->has_post = true;
    if (t->n_post == t->cap_post) {
        size_t c = t->cap_post ? t->cap_post * 2 : 4;
        qr_tok_post_item *p = realloc(t->post, c * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "tokenizer: post-processor");
        t->post = p;
        t->cap_post = c;
    }
    qr_tok_post_item it = {is_seq, NULL, 0};
    if (n_ids) {
        it.ids = malloc(n_ids * sizeof *ids);
        if (!it.ids)
            return qr_fail(QR_ENOMEM, "tokenizer: post-processor");
        memcpy(it.ids, ids, n_ids * sizeof *ids);
        it.n_ids = n_ids;
    }
    t->post[t->n_post++] = it;
    return 0;
}

int qr_tok_finalize(qr_tokenizer *t, const char *where)
{
    int rc;
    qr_tok_vocab *v = &t->vocab;
    /* Added tokens get ids in the id → piece table (overriding a model piece at that id). */
    for (size_t i = 0; i < t->n_added; i++) {
        qr_tok_added *a = &t->added[i];
        if ((rc = vocab_reserve(v, a->id)))
            return rc;
        if (a->id >= v->n)
            v->n = a->id + 1;
        if ((rc = qr_tok_strmap_put(&t->added_map, a->content, a->len, (int32_t)i)))
            return rc;
    }
    /* Normalized contents and the (class, first byte) buckets for matching. */
    free(t->added_order);
    if (t->added_norm)
        for (size_t i = 0; i < t->n_added; i++)
            qr_tok_buf_free(&t->added_norm[i]);
    free(t->added_norm);
    t->added_order = calloc(t->n_added + 1, sizeof *t->added_order);
    t->added_norm = calloc(t->n_added + 1, sizeof *t->added_norm);
    if (!t->added_order || !t->added_norm)
        return qr_fail(QR_ENOMEM, "%s: added tokens", where);
    for (size_t i = 0; i < t->n_added; i++) {
        qr_tok_added *a = &t->added[i];
        if (a->normalized) {
            if ((rc = qr_tok_normalize(t, a->content, a->len, &t->added_norm[i])))
                return rc;
        } else if ((rc = qr_tok_buf_put(&t->added_norm[i], a->content, a->len))) {
            return rc;
        }
    }
    for (size_t i = 0; i < t->n_added; i++) {
        qr_tok_added *a = &t->added[i];
        /* HF decodes an id through the added vocabulary first, and a normalized added token
         * as its normalized form (AddedVocabulary's normalized cache). */
        v->pieces[a->id] = t->added_norm[i].p;
        v->piece_len[a->id] = (uint32_t)t->added_norm[i].n;
    }
    memset(t->added_bucket, 0, sizeof t->added_bucket);
    {
        size_t k = 0;
        for (int c = 0; c < 2; c++)
            for (int b = 0; b < 256; b++) {
                t->added_bucket[c][b] = k;
                for (size_t i = 0; i < t->n_added; i++) {
                    const qr_tok_buf *nb = &t->added_norm[i];
                    if ((int)t->added[i].normalized == c && nb->n && (unsigned char)nb->p[0] == b)
                        t->added_order[k++] = (uint32_t)i;
                }
            }
        t->added_bucket[0][256] = t->added_bucket[1][0];
        t->added_bucket[1][256] = k;
    }

    free(t->is_special);
    t->is_special = calloc(v->n ? (size_t)v->n : 1, 1);
    if (!t->is_special)
        return qr_fail(QR_ENOMEM, "%s: special flags", where);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].special)
            t->is_special[t->added[i].id] = 1;
    for (int i = 0; i < 512; i++) {
        qr_tok_buf b = {0};
        if ((rc = qr_tok_buf_put_cp(&b, (uint32_t)i)))
            return rc;
        v->cp_id[i] = qr_tok_vocab_get(t, b.p, b.n);
        qr_tok_buf_free(&b);
    }
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        t->model.byte_fallback_id[i] = qr_tok_vocab_get(t, name, 6);
    }
    /* Ids the post-processor inserts must exist (the models index embeddings with them). */
    for (size_t i = 0; i < t->n_post; i++)
        for (size_t k = 0; k < t->post[i].n_ids; k++)
            if (t->post[i].ids[k] < 0 || t->post[i].ids[k] >= v->n)
                return qr_fail(QR_EFORMAT, "%s: post_processor: special id %d is outside the vocabulary (%d)",
                               where, t->post[i].ids[k], v->n);
    /* split_metaspace: see tok_internal.h */
    t->model.split_metaspace = false;
    if (t->model.type == QR_TOK_MODEL_BPE && !t->model.cont_prefix_len && !t->model.eow_suffix_len &&
        qr_tok_vocab_get(t, "\xE2\x96\x81", 3) >= 0) {
        bool ok = true;
        for (int32_t id = 0; id < v->n && ok; id++) {
            const char *p = v->pieces[id];
            size_t n = v->piece_len[id];
            if (!p)
                continue;
            bool seen_other = false;
            for (size_t i = 0; i < n && ok;) {
                if (i + 3 <= n && memcmp(p + i, "\xE2\x96\x81", 3) == 0) {
                    ok = !seen_other;
                    i += 3;
                } else {
                    seen_other = true;
                    i++;
                }
            }
        }
        t->model.split_metaspace = ok;
    }
    if (!t->cache && (rc = qr_tok_cache_create(t)))
        return rc;
    t->finalized = true;
    return 0;
}

void qr_tokenizer_free(qr_tokenizer *t)
{
    if (!t)
        return;
    free(t->source);
    qr_tok_cache_free(t->cache);
    qr_tok_strmap_free(&t->vocab.map);
    free(t->vocab.pieces);
    free(t->vocab.piece_len);
    free(t->model.cont_prefix);
    free(t->model.eow_suffix);
    free(t->model.merges.slots);
    if (t->model.custom_free)
        t->model.custom_free(t->model.custom_data);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    qr_tok_strmap_free(&t->added_map);
    if (t->added_norm)
        for (size_t i = 0; i < t->n_added; i++)
            qr_tok_buf_free(&t->added_norm[i]);
    free(t->added_norm);
    free(t->added_order);
    free(t->is_special);
    for (size_t i = 0; i < t->n_norms; i++)
        norm_free(&t->norms[i]);
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++)
        pretok_free(&t->pretoks[i]);
    free(t->pretoks);
    for (size_t i = 0; i < t->n_post; i++)
        free(t->post[i].ids);
    free(t->post);
    for (size_t i = 0; i < t->n_decs; i++)
        dec_free(&t->decs[i]);
    free(t->decs);
    free(t);
}

/* ---- regex and byte-level tables ------------------------------------------------------- */

const char qr_tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space, which is what Oniguruma's \s (used by HF tokenizers) matches.
 * PCRE2's own \s also matches U+180E, so \s and \S (and \w, \W below) are rewritten to
 * explicit sets. */
#define WS_SET "\\t\\n\\x0b\\f\\r\\x20\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

/* Oniguruma's \w, \d, \p{L}, \p{N} (tok_regex_classes.h, generated from HF): PCRE2's
 * properties plus the code points of newer Unicode versions that PCRE2's tables may lack
 * (PCRE2 10.42 has Unicode 14, HF's Oniguruma Unicode 16); PCRE2's own \w also lacks the
 * marks. */
#define WORD_SET QR_RX_W

/* Writes class set (a class body) as a class, negated or not, or as is inside a class. */
static int put_class(qr_tok_buf *out, const char *set, bool negate, bool in_class)
{
    int rc = 0;
    if (!in_class)
        rc = qr_tok_buf_put(out, negate ? "[^" : "[", negate ? 2 : 1);
    if (!rc)
        rc = qr_tok_buf_put(out, set, strlen(set));
    if (!rc && !in_class)
        rc = qr_tok_buf_putc(out, ']');
    return rc;
}

static int rewrite_space_classes(const char *p, size_t len, qr_tok_buf *out)
{
    int rc = 0;
    bool in_class = false;
    for (size_t i = 0; i < len && !rc; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < len) {
            char e = p[i + 1];
            i++;
            /* \p{L} \p{N} \P{L} \P{N} (negated forms only outside classes) */
            if ((e == 'p' || (e == 'P' && !in_class)) && i + 3 < len && p[i + 1] == '{' && p[i + 3] == '}' &&
                (p[i + 2] == 'L' || p[i + 2] == 'N')) {
                rc = put_class(out, p[i + 2] == 'L' ? QR_RX_L : QR_RX_N, e == 'P', in_class);
                i += 3;
            } else if (e == 'd' || (e == 'D' && !in_class))
                rc = put_class(out, QR_RX_D, e == 'D', in_class);
            else if (e == 's')
                rc = qr_tok_buf_put(out, in_class ? WS_SET : "[" WS_SET "]", strlen(in_class ? WS_SET : "[" WS_SET "]"));
            else if (e == 'S' && !in_class)
                rc = qr_tok_buf_put(out, "[^" WS_SET "]", strlen("[^" WS_SET "]"));
            else if (e == 'w')
                rc = qr_tok_buf_put(out, in_class ? WORD_SET : "[" WORD_SET "]", strlen(in_class ? WORD_SET : "[" WORD_SET "]"));
            else if (e == 'W' && !in_class)
                rc = qr_tok_buf_put(out, "[^" WORD_SET "]", strlen("[^" WORD_SET "]"));
            else if (!(rc = qr_tok_buf_putc(out, '\\')))
                rc = qr_tok_buf_putc(out, e);
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            rc = qr_tok_buf_putc(out, c);
            /* "[^]...]" and "[]...]": a leading ']' is literal */
            if (!rc && i + 1 < len && p[i + 1] == '^')
                rc = qr_tok_buf_putc(out, p[++i]);
            if (!rc && i + 1 < len && p[i + 1] == ']')
                rc = qr_tok_buf_putc(out, p[++i]);
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && p[i + 1] == ':') { /* POSIX [:name:] */
            const char *end = strstr(p + i, ":]");
            size_t n = end && (size_t)(end - p) < len ? (size_t)(end - p) + 2 - i : 1;
            rc = qr_tok_buf_put(out, p + i, n);
            i += n - 1;
            continue;
        }
        if (in_class && c == ']')
            in_class = false;
        rc = qr_tok_buf_putc(out, c);
    }
    return rc;
}

static int regex_compile(const char *pattern, size_t len, bool rewrite, const char *where, pcre2_code **out)
{
    int err;
    PCRE2_SIZE off;
    qr_tok_buf pat = {0};
    int rc = rewrite ? rewrite_space_classes(pattern, len, &pat) : qr_tok_buf_put(&pat, pattern, len);
    if (rc) {
        qr_tok_buf_free(&pat);
        return rc;
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(pat.p ? pat.p : ""), pat.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, NULL);
    qr_tok_buf_free(&pat);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return qr_fail(QR_EFORMAT, "%s: regex /%.*s/: %s (offset %zu after rewriting \\s)", where, (int)len,
                       pattern, (const char *)msg, (size_t)off);
    }
    /* JIT is an optimisation only; matching works without it. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return 0;
}

int qr_tok_regex_compile(const char *pattern, size_t len, const char *where, pcre2_code **out)
{
    return regex_compile(pattern, len, true, where, out);
}

/* HF's Whitespace pre-tokenizer: \w+|[^\w\s]+ of Rust's regex crate, whose \w (Unicode 16,
 * with the joiners) differs from Oniguruma's. */
int qr_tok_regex_compile_whitespace(const char *where, pcre2_code **out)
{
    static const char pat[] = "[" QR_RX_RUST_W "]+|[^" QR_RX_RUST_W WS_SET "]+";
    return regex_compile(pat, sizeof pat - 1, false, where, out);
}

/* GPT-2 bytes_to_unicode: bytes '!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves; the other 68
 * bytes, in increasing order, map to U+0100, U+0101, ... */
static bool byte_is_printable(int b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t qr_tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 0x100 + b;              /* k = 0..32 */
    if (b >= 0x7F && b <= 0xA0)
        return 0x100 + 33 + (b - 0x7F); /* k = 33..66 */
    return 0x100 + 67;                  /* 0xAD */
}

int qr_tok_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    uint32_t k = cp - 0x100;
    if (k <= 32)
        return (int)k;
    if (k <= 66)
        return (int)(0x7F + k - 33);
    return 0xAD;
}
