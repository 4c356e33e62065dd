/* BM25 inverted index in LMDB (format and scoring in bm25.h). */
#include "index/bm25.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "index/analyzer.h"

#define PENDING_FLUSH_POSTINGS ((size_t)8 << 20) /* auto-flush above this many pending postings */

typedef struct {
    uint64_t id;
    uint32_t tf;
    uint8_t norm;
} posting;

typedef struct {
    size_t off; /* term bytes in the arena */
    uint32_t len;
    uint32_t hash;
    posting *p;
    size_t n, cap;
    uint32_t tf; /* per-document / per-query scratch count */
} term_ent;

/* string -> term_ent index hash (open addressing, power of two) */
typedef struct {
    char *arena;
    size_t alen, acap;
    term_ent *ents;
    size_t n, cap;
    uint32_t *slots; /* index + 1, 0 = empty */
    size_t nslots;
} term_table;

typedef struct {
    uint64_t *keys;
    double *vals;
    uint8_t *used;
    size_t cap, n;
    size_t *touched; /* slot indices in use, for cheap clearing */
} acc_table;

struct qr_bm25 {
    MDB_dbi meta, post, docs;
    qr_bm25_params prm;
    qr_analyzer *an;
    term_table pend;   /* pending postings per term */
    size_t pend_postings;
    int64_t d_ndocs, d_doc_count, d_sum_ttf; /* pending stats deltas */
    term_table doc;    /* scratch: one document's / query's terms */
    acc_table acc;     /* search accumulator (sparse ids) */
    double *dense;     /* (dense_cap) accumulator indexed by id - lo when ids are dense */
    uint32_t *dtouched; /* (dense_cap) offsets in use */
    size_t dense_cap;
    uint8_t *buf;      /* encode scratch */
    size_t bufcap;
    posting *mp;       /* merge scratch */
    size_t mpcap;
};

/* ---- small helpers ---- */

static int lmdb_fail(int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return qr_fail(QR_ELIMIT, "bm25: %s: %s", what, mdb_strerror(rc));
    return qr_fail(QR_EIO, "bm25: %s: %s", what, mdb_strerror(rc));
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return qr_fail(QR_ENOMEM, "bm25: %zu elements", n);
    *p = q;
    *cap = n;
    return 0;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Returns bytes read, 0 on malformed input. */
static size_t get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        r |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

/* ---- SmallFloat ---- */

static int long_to_int4(uint64_t i)
{
    int bits = i ? 64 - __builtin_clzll(i) : 0;
    if (bits < 4)
        return (int)i; /* subnormal */
    int shift = bits - 4;
    int enc = (int)(i >> shift) & 0x07; /* the implicit top bit dropped */
    return enc | ((shift + 1) << 3);
}

static uint64_t int4_to_long(int i)
{
    uint64_t bits = (uint64_t)(i & 0x07);
    int shift = (i >> 3) - 1;
    return shift == -1 ? bits : (bits | 0x08) << shift;
}

/* 255 - longToInt4(Integer.MAX_VALUE) = 24 */
#define NUM_FREE_VALUES (255 - 231)

uint8_t qr_bm25_int_to_byte4(uint32_t i)
{
    if (i > 0x7FFFFFFFu)
        i = 0x7FFFFFFFu;
    if (i < NUM_FREE_VALUES)
        return (uint8_t)i;
    return (uint8_t)(NUM_FREE_VALUES + long_to_int4(i - NUM_FREE_VALUES));
}

uint32_t qr_bm25_byte4_to_int(uint8_t b)
{
    if (b < NUM_FREE_VALUES)
        return b;
    return (uint32_t)(NUM_FREE_VALUES + int4_to_long(b - NUM_FREE_VALUES));
}

/* ---- term table ---- */

static void tt_free(term_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->ents[i].p);
    free(t->arena);
    free(t->ents);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static void tt_clear(term_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->ents[i].p);
    t->n = 0;
    t->alen = 0;
    if (t->slots)
        memset(t->slots, 0, t->nslots * sizeof *t->slots);
}

/* Clears a scratch table that never holds postings. */
static void tt_reset_small(term_table *t)
{
    if (t->slots && t->n)
        memset(t->slots, 0, t->nslots * sizeof *t->slots);
    t->n = 0;
    t->alen = 0;
}

static int tt_rehash(term_table *t, size_t nslots)
{
    uint32_t *s = calloc(nslots, sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "bm25: term table of %zu", nslots);
    for (size_t i = 0; i < t->n; i++) {
        size_t k = t->ents[i].hash & (nslots - 1);
        while (s[k])
            k = (k + 1) & (nslots - 1);
        s[k] = (uint32_t)(i + 1);
    }
    free(t->slots);
    t->slots = s;
    t->nslots = nslots;
    return 0;
}

/* Finds or inserts term; *idx = its entry. */
static int tt_get(term_table *t, const char *s, size_t len, size_t *idx)
{
    if ((t->n + 1) * 2 > t->nslots) {
        int rc = tt_rehash(t, t->nslots ? t->nslots * 2 : 1024);
        if (rc)
            return rc;
    }
    uint32_t h = fnv1a(s, len);
    size_t m = t->nslots - 1, k = h & m;
    while (t->slots[k]) {
        term_ent *e = &t->ents[t->slots[k] - 1];
        if (e->hash == h && e->len == len && memcmp(t->arena + e->off, s, len) == 0) {
            *idx = t->slots[k] - 1;
            return 0;
        }
        k = (k + 1) & m;
    }
    int rc = grow((void **)&t->ents, &t->cap, t->n + 1, sizeof *t->ents);
    if (!rc)
        rc = grow((void **)&t->arena, &t->acap, t->alen + len + 1, 1);
    if (rc)
        return rc;
    term_ent *e = &t->ents[t->n];
    memset(e, 0, sizeof *e);
    e->off = t->alen;
    e->len = (uint32_t)len;
    e->hash = h;
    memcpy(t->arena + t->alen, s, len);
    t->arena[t->alen + len] = 0;
    t->alen += len + 1;
    t->slots[k] = (uint32_t)(t->n + 1);
    *idx = t->n++;
    return 0;
}

/* ---- open / close ---- */

qr_bm25_params qr_bm25_default_params(void)
{
    qr_bm25_params p = {0.9f, 0.4f};
    return p;
}

static int check_params(const qr_bm25_params *p)
{
    if (!(p->k1 >= 0.0f && p->k1 <= 1000.0f) || !(p->b >= 0.0f && p->b <= 1.0f))
        return qr_fail(QR_EINVAL, "bm25: k1 %g must be in [0, 1000] and b %g in [0, 1]", (double)p->k1,
                       (double)p->b);
    return 0;
}

int qr_bm25_set_params(qr_bm25 *ix, const qr_bm25_params *params)
{
    int rc = check_params(params);
    if (rc)
        return rc;
    ix->prm = *params;
    return 0;
}

static int open_dbi(MDB_txn *txn, const char *name, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
    if (rc == EACCES)
        rc = mdb_dbi_open(txn, name, 0, dbi);
    if (rc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "bm25: sub-database %s missing (no BM25 index in this store)", name);
    if (rc)
        return lmdb_fail(rc, name);
    return 0;
}

int qr_bm25_open(MDB_txn *txn, const qr_bm25_params *params, qr_bm25 **out)
{
    qr_bm25_params prm = params ? *params : qr_bm25_default_params();
    int rc = check_params(&prm);
    if (rc)
        return rc;
    qr_bm25 *ix = calloc(1, sizeof *ix);
    if (!ix)
        return qr_fail(QR_ENOMEM, "bm25: open");
    ix->prm = prm;
    if ((rc = open_dbi(txn, "bm25_meta", &ix->meta)) || (rc = open_dbi(txn, "bm25_post", &ix->post)) ||
        (rc = open_dbi(txn, "bm25_docs", &ix->docs)))
        goto fail;
    MDB_val k = {7, (void *)"version"}, v;
    int r = mdb_get(txn, ix->meta, &k, &v);
    if (r == MDB_NOTFOUND) {
        uint8_t ver[4] = {QR_BM25_VERSION, 0, 0, 0};
        v.mv_size = 4;
        v.mv_data = ver;
        r = mdb_put(txn, ix->meta, &k, &v, 0);
        if (r == EACCES) {
            r = 0; /* read-only and empty: searches return nothing */
        } else if (r) {
            rc = lmdb_fail(r, "write version");
            goto fail;
        }
    } else if (r) {
        rc = lmdb_fail(r, "read version");
        goto fail;
    } else {
        const uint8_t *p = v.mv_data;
        uint32_t ver = v.mv_size == 4 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                            (uint32_t)p[3] << 24
                                      : 0;
        if (ver != QR_BM25_VERSION) {
            rc = qr_fail(QR_EFORMAT, "bm25: bm25_meta: version %u, this build reads %d", ver, QR_BM25_VERSION);
            goto fail;
        }
    }
    if ((rc = qr_analyzer_create(&ix->an)))
        goto fail;
    *out = ix;
    return 0;
fail:
    qr_bm25_close(ix);
    return rc;
}

void qr_bm25_close(qr_bm25 *ix)
{
    if (!ix)
        return;
    qr_analyzer_destroy(ix->an);
    tt_free(&ix->pend);
    tt_free(&ix->doc);
    free(ix->acc.keys);
    free(ix->acc.vals);
    free(ix->acc.used);
    free(ix->acc.touched);
    free(ix->dense);
    free(ix->dtouched);
    free(ix->buf);
    free(ix->mp);
    free(ix);
}

void qr_bm25_discard(qr_bm25 *ix)
{
    tt_clear(&ix->pend);
    ix->pend_postings = 0;
    ix->d_ndocs = ix->d_doc_count = ix->d_sum_ttf = 0;
}

/* ---- statistics ---- */

static int read_stats(qr_bm25 *ix, MDB_txn *txn, qr_bm25_stats *s)
{
    memset(s, 0, sizeof *s);
    MDB_val k = {5, (void *)"stats"}, v;
    int r = mdb_get(txn, ix->meta, &k, &v);
    if (r == MDB_NOTFOUND)
        return 0;
    if (r)
        return lmdb_fail(r, "read stats");
    if (v.mv_size != 24)
        return qr_fail(QR_EFORMAT, "bm25: bm25_meta: stats of %zu bytes, expected 24", v.mv_size);
    uint64_t x[3];
    memcpy(x, v.mv_data, 24); /* little-endian hosts only (x86-64, aarch64) */
    s->ndocs = x[0];
    s->doc_count = x[1];
    s->sum_ttf = x[2];
    return 0;
}

static int write_stats(qr_bm25 *ix, MDB_txn *txn, const qr_bm25_stats *s)
{
    uint64_t x[3] = {s->ndocs, s->doc_count, s->sum_ttf};
    MDB_val k = {5, (void *)"stats"}, v = {24, x};
    int r = mdb_put(txn, ix->meta, &k, &v, 0);
    return r ? lmdb_fail(r, "write stats") : 0;
}

int qr_bm25_get_stats(qr_bm25 *ix, MDB_txn *txn, qr_bm25_stats *out)
{
    qr_bm25_stats s;
    int rc = read_stats(ix, txn, &s);
    if (rc)
        return rc;
    s.ndocs = (uint64_t)((int64_t)s.ndocs + ix->d_ndocs);
    s.doc_count = (uint64_t)((int64_t)s.doc_count + ix->d_doc_count);
    s.sum_ttf = (uint64_t)((int64_t)s.sum_ttf + ix->d_sum_ttf);
    *out = s;
    return 0;
}

/* ---- posting blocks ---- */

static size_t make_key(uint8_t *key, const char *term, size_t len, uint64_t first)
{
    memcpy(key, term, len);
    key[len] = 0;
    put_be64(key + len + 1, first);
    return len + 9;
}

/* Whether an LMDB key belongs to term. */
static bool key_is_term(const MDB_val *k, const char *term, size_t len)
{
    return k->mv_size == len + 9 && memcmp(k->mv_data, term, len) == 0 && ((const uint8_t *)k->mv_data)[len] == 0;
}

/* Decodes a block (first id from its key) appending to *out. */
static int decode_block(const MDB_val *k, const MDB_val *v, posting **out, size_t *n, size_t *cap)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    uint64_t cnt, id = get_be64((const uint8_t *)k->mv_data + k->mv_size - 8);
    size_t r = get_varint(p, end, &cnt);
    if (!r || cnt > QR_BM25_BLOCK * 4)
        return qr_fail(QR_EFORMAT, "bm25: bm25_post: bad block header");
    p += r;
    int rc = grow((void **)out, cap, *n + cnt, sizeof **out);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < cnt; i++) {
        uint64_t d, tf;
        if (!(r = get_varint(p, end, &d)))
            goto bad;
        p += r;
        if (!(r = get_varint(p, end, &tf)))
            goto bad;
        p += r;
        if (p >= end)
            goto bad;
        id += d;
        (*out)[*n].id = id;
        (*out)[*n].tf = (uint32_t)tf;
        (*out)[*n].norm = *p++;
        (*n)++;
    }
    return 0;
bad:
    return qr_fail(QR_EFORMAT, "bm25: bm25_post: truncated block");
}

/* Writes postings p[0..n) (sorted by id) as blocks of term. */
static int write_blocks(qr_bm25 *ix, MDB_txn *txn, const char *term, size_t len, const posting *p, size_t n)
{
    uint8_t key[QR_BM25_MAX_TERM + 9];
    int rc = grow((void **)&ix->buf, &ix->bufcap, 10 + QR_BM25_BLOCK * 21, 1);
    if (rc)
        return rc;
    for (size_t s = 0; s < n; s += QR_BM25_BLOCK) {
        size_t e = s + QR_BM25_BLOCK < n ? s + QR_BM25_BLOCK : n;
        size_t o = put_varint(ix->buf, e - s);
        uint64_t prev = p[s].id;
        for (size_t i = s; i < e; i++) {
            o += put_varint(ix->buf + o, p[i].id - prev);
            o += put_varint(ix->buf + o, p[i].tf);
            ix->buf[o++] = p[i].norm;
            prev = p[i].id;
        }
        MDB_val k = {make_key(key, term, len, p[s].id), key}, v = {o, ix->buf};
        int r = mdb_put(txn, ix->post, &k, &v, 0);
        if (r)
            return lmdb_fail(r, "write postings");
    }
    return 0;
}

static int cmp_posting(const void *a, const void *b)
{
    const posting *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_term(const void *a, const void *b, void *arena)
{
    const term_ent *x = a, *y = b;
    const char *ar = arena;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(ar + x->off, ar + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Merges one term's pending postings (sorted) into its blocks. */
static int merge_term(qr_bm25 *ix, MDB_txn *txn, MDB_cursor *cur, const char *term, size_t len, const posting *np,
                      size_t nn)
{
    uint8_t key[QR_BM25_MAX_TERM + 9];
    MDB_val k = {make_key(key, term, len, np[0].id), key}, v;
    /* next block at or after our first id: if it is ours, the ranges interleave */
    int r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool interleave = r == 0 && key_is_term(&k, term, len);
    if (r && r != MDB_NOTFOUND)
        return lmdb_fail(r, "seek postings");
    size_t n = 0;
    int rc;
    if (!interleave) {
        /* append: extend the term's last block when it has room */
        r = r == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST) : mdb_cursor_get(cur, &k, &v, MDB_PREV);
        if (r == 0 && key_is_term(&k, term, len)) {
            uint64_t cnt;
            if (!get_varint(v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, &cnt))
                return qr_fail(QR_EFORMAT, "bm25: bm25_post: bad block header");
            if ((rc = decode_block(&k, &v, &ix->mp, &n, &ix->mpcap)))
                return rc;
            if (n && ix->mp[n - 1].id >= np[0].id)
                interleave = true; /* the last block reaches past our first id */
            if (cnt >= QR_BM25_BLOCK)
                n = 0; /* full: start new blocks after it */
        } else if (r && r != MDB_NOTFOUND) {
            return lmdb_fail(r, "read postings");
        }
    }
    if (interleave) {
        /* general case: rewrite the whole term */
        n = 0;
        k.mv_size = make_key(key, term, len, 0);
        k.mv_data = key;
        r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (r == 0 && key_is_term(&k, term, len)) {
            if ((rc = decode_block(&k, &v, &ix->mp, &n, &ix->mpcap)))
                return rc;
            if ((r = mdb_cursor_del(cur, 0)))
                return lmdb_fail(r, "delete postings");
            /* after a delete LMDB's MDB_NEXT returns the record that followed */
            r = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (r && r != MDB_NOTFOUND)
            return lmdb_fail(r, "read postings");
    }
    if ((rc = grow((void **)&ix->mp, &ix->mpcap, n + nn, sizeof *ix->mp)))
        return rc;
    memcpy(ix->mp + n, np, nn * sizeof *np);
    n += nn;
    if (interleave)
        qsort(ix->mp, n, sizeof *ix->mp, cmp_posting);
    return write_blocks(ix, txn, term, len, ix->mp, n);
}

int qr_bm25_flush(qr_bm25 *ix, MDB_txn *txn)
{
    if (ix->pend.n == 0 && !ix->d_ndocs && !ix->d_sum_ttf && !ix->d_doc_count)
        return 0;
    int rc = 0;
    MDB_cursor *cur = NULL;
    term_ent *order = NULL;
    qr_bm25_stats st;
    if ((rc = qr_bm25_get_stats(ix, txn, &st)))
        return rc;
    int r = mdb_cursor_open(txn, ix->post, &cur);
    if (r)
        return lmdb_fail(r, "cursor");
    /* terms in key order so LMDB pages are visited once */
    order = malloc((ix->pend.n ? ix->pend.n : 1) * sizeof *order);
    if (!order) {
        rc = qr_fail(QR_ENOMEM, "bm25: flush of %zu terms", ix->pend.n);
        goto fail;
    }
    memcpy(order, ix->pend.ents, ix->pend.n * sizeof *order);
    qsort_r(order, ix->pend.n, sizeof *order, cmp_term, ix->pend.arena);
    for (size_t i = 0; i < ix->pend.n; i++) {
        term_ent *e = &order[i];
        if (e->n == 0)
            continue;
        bool sorted = true;
        for (size_t j = 1; j < e->n && sorted; j++)
            sorted = e->p[j - 1].id < e->p[j].id;
        if (!sorted)
            qsort(e->p, e->n, sizeof *e->p, cmp_posting);
        if ((rc = merge_term(ix, txn, cur, ix->pend.arena + e->off, e->len, e->p, e->n)))
            goto fail;
    }
    if ((rc = write_stats(ix, txn, &st)))
        goto fail;
    mdb_cursor_close(cur);
    free(order);
    qr_bm25_discard(ix);
    return 0;
fail:
    mdb_cursor_close(cur);
    free(order);
    return rc;
}

/* ---- add / remove ---- */

typedef struct {
    qr_bm25 *ix;
    uint64_t dl;
} doc_ctx;

static int doc_term(const char *t, size_t len, void *user)
{
    doc_ctx *c = user;
    c->dl++;
    if (len > QR_BM25_MAX_TERM)
        return 0; /* counted in the length like Lucene, but not indexed */
    size_t idx;
    int rc = tt_get(&c->ix->doc, t, len, &idx);
    if (rc)
        return rc;
    c->ix->doc.ents[idx].tf++;
    return 0;
}

/* Indexes the concatenation of n texts (analysed one after the other, as if
 * joined by line breaks). */
static int add_parts(qr_bm25 *ix, MDB_txn *txn, uint64_t id, const char *const *parts, const size_t *lens, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += lens[i];
    if (len > QR_BM25_MAX_TEXT)
        return qr_fail(QR_ELIMIT, "bm25: chunk %llu: text of %zu bytes exceeds %zu", (unsigned long long)id, len,
                       QR_BM25_MAX_TEXT);
    uint8_t idk[8];
    put_be64(idk, id);
    MDB_val k = {8, idk}, v;
    int r = mdb_get(txn, ix->docs, &k, &v);
    int rc;
    if (r == 0) {
        if ((rc = qr_bm25_remove(ix, txn, id)))
            return rc;
    } else if (r != MDB_NOTFOUND) {
        return lmdb_fail(r, "read doc");
    }
    tt_reset_small(&ix->doc);
    doc_ctx c = {ix, 0};
    for (int i = 0; i < n; i++)
        if (lens[i] && (rc = qr_analyzer_run(ix->an, parts[i], lens[i], doc_term, &c)))
            return rc;
    if (c.dl > 0x7FFFFFFF)
        return qr_fail(QR_ELIMIT, "bm25: chunk %llu: %llu terms", (unsigned long long)id, (unsigned long long)c.dl);
    uint8_t norm = qr_bm25_int_to_byte4((uint32_t)c.dl);
    /* forward entry */
    size_t need = 21 + ix->doc.alen + ix->doc.n * 20;
    if ((rc = grow((void **)&ix->buf, &ix->bufcap, need, 1)))
        return rc;
    size_t o = put_varint(ix->buf, c.dl);
    ix->buf[o++] = norm;
    o += put_varint(ix->buf + o, ix->doc.n);
    for (size_t i = 0; i < ix->doc.n; i++) {
        term_ent *e = &ix->doc.ents[i];
        o += put_varint(ix->buf + o, e->len);
        memcpy(ix->buf + o, ix->doc.arena + e->off, e->len);
        o += e->len;
        o += put_varint(ix->buf + o, e->tf);
    }
    v.mv_size = o;
    v.mv_data = ix->buf;
    if ((r = mdb_put(txn, ix->docs, &k, &v, 0)))
        return lmdb_fail(r, "write doc");
    /* pending postings */
    for (size_t i = 0; i < ix->doc.n; i++) {
        term_ent *e = &ix->doc.ents[i];
        size_t idx;
        if ((rc = tt_get(&ix->pend, ix->doc.arena + e->off, e->len, &idx)))
            return rc;
        term_ent *pe = &ix->pend.ents[idx];
        if ((rc = grow((void **)&pe->p, &pe->cap, pe->n + 1, sizeof *pe->p)))
            return rc;
        pe->p[pe->n].id = id;
        pe->p[pe->n].tf = e->tf;
        pe->p[pe->n].norm = norm;
        pe->n++;
    }
    ix->pend_postings += ix->doc.n;
    ix->d_ndocs++;
    ix->d_doc_count += c.dl > 0;
    ix->d_sum_ttf += (int64_t)c.dl;
    if (ix->pend_postings > PENDING_FLUSH_POSTINGS)
        return qr_bm25_flush(ix, txn);
    return 0;
}

/* Removes id from term's block. */
static int remove_posting(qr_bm25 *ix, MDB_txn *txn, MDB_cursor *cur, const char *term, size_t len, uint64_t id)
{
    uint8_t key[QR_BM25_MAX_TERM + 9];
    MDB_val k = {make_key(key, term, len, id), key}, v;
    int r = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool exact = r == 0 && key_is_term(&k, term, len) && get_be64((uint8_t *)k.mv_data + len + 1) == id;
    if (!exact) {
        r = r == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST) : mdb_cursor_get(cur, &k, &v, MDB_PREV);
        if (r || !key_is_term(&k, term, len))
            return qr_fail(QR_EFORMAT, "bm25: posting of chunk %llu missing for a term", (unsigned long long)id);
    }
    size_t n = 0;
    int rc = decode_block(&k, &v, &ix->mp, &n, &ix->mpcap);
    if (rc)
        return rc;
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (ix->mp[i].id != id)
            ix->mp[w++] = ix->mp[i];
    if (w == n)
        return qr_fail(QR_EFORMAT, "bm25: posting of chunk %llu missing for a term", (unsigned long long)id);
    if ((r = mdb_cursor_del(cur, 0)))
        return lmdb_fail(r, "delete postings");
    return w ? write_blocks(ix, txn, term, len, ix->mp, w) : 0;
}

int qr_bm25_add(qr_bm25 *ix, MDB_txn *txn, uint64_t id, const char *text, size_t len)
{
    return add_parts(ix, txn, id, &text, &len, 1);
}

/* Whether title is what the readers put when a document has none: its file
 * name, or "line <n>" for the JSONL record "FILE#L<n>". */
static bool placeholder_title(const char *path, const char *title)
{
    if (!path || !title || !*title)
        return true;
    const char *rec = strstr(path, "#L");
    while (rec && strstr(rec + 2, "#L"))
        rec = strstr(rec + 2, "#L"); /* the last one */
    size_t plen = strlen(path);
    if (rec && rec[2] && strspn(rec + 2, "0123456789") == strlen(rec + 2)) {
        if (!strncmp(title, "line ", 5) && !strcmp(title + 5, rec + 2))
            return true;
        plen = (size_t)(rec - path);
    }
    size_t b = plen;
    while (b > 0 && path[b - 1] != '/')
        b--;
    return strlen(title) == plen - b && !strncmp(title, path + b, plen - b);
}

int qr_bm25_add_chunk(qr_bm25 *ix, MDB_txn *txn, uint64_t id, const char *path, const char *title,
                      const char *heading, const char *text, size_t len)
{
    if (placeholder_title(path, title))
        title = NULL;
    const char *parts[3] = {title ? title : "", heading ? heading : "", text};
    size_t lens[3] = {strlen(parts[0]), strlen(parts[1]), len};
    return add_parts(ix, txn, id, parts, lens, 3);
}

int qr_bm25_remove(qr_bm25 *ix, MDB_txn *txn, uint64_t id)
{
    int rc = qr_bm25_flush(ix, txn);
    if (rc)
        return rc;
    uint8_t idk[8];
    put_be64(idk, id);
    MDB_val k = {8, idk}, v;
    int r = mdb_get(txn, ix->docs, &k, &v);
    if (r == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "bm25: chunk %llu is not indexed", (unsigned long long)id);
    if (r)
        return lmdb_fail(r, "read doc");
    /* copy: the value lives in a page we are about to modify */
    if ((rc = grow((void **)&ix->buf, &ix->bufcap, v.mv_size + QR_BM25_BLOCK * 21 + 16, 1)))
        return rc;
    uint8_t *fw = malloc(v.mv_size ? v.mv_size : 1);
    if (!fw)
        return qr_fail(QR_ENOMEM, "bm25: remove");
    memcpy(fw, v.mv_data, v.mv_size);
    const uint8_t *p = fw, *end = fw + v.mv_size;
    uint64_t dl, nt;
    MDB_cursor *cur = NULL;
    size_t q;
    if (!(q = get_varint(p, end, &dl)) || p + q >= end)
        goto bad;
    p += q + 1; /* norm */
    if (!(q = get_varint(p, end, &nt)))
        goto bad;
    p += q;
    if ((r = mdb_cursor_open(txn, ix->post, &cur))) {
        rc = lmdb_fail(r, "cursor");
        goto fail;
    }
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t tl, tf;
        if (!(q = get_varint(p, end, &tl)) || tl > QR_BM25_MAX_TERM || p + q + tl > end)
            goto bad;
        const char *term = (const char *)p + q;
        p += q + tl;
        if (!(q = get_varint(p, end, &tf)))
            goto bad;
        p += q;
        if ((rc = remove_posting(ix, txn, cur, term, tl, id)))
            goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((r = mdb_del(txn, ix->docs, &k, NULL))) {
        rc = lmdb_fail(r, "delete doc");
        goto fail;
    }
    qr_bm25_stats st;
    if ((rc = read_stats(ix, txn, &st)))
        goto fail;
    st.ndocs--;
    st.doc_count -= dl > 0;
    st.sum_ttf -= dl;
    rc = write_stats(ix, txn, &st);
    free(fw);
    return rc;
bad:
    rc = qr_fail(QR_EFORMAT, "bm25: bm25_docs: chunk %llu: malformed entry", (unsigned long long)id);
fail:
    mdb_cursor_close(cur);
    free(fw);
    return rc;
}

/* ---- search ---- */

static int acc_init(acc_table *a, size_t want)
{
    size_t cap = 1024;
    while (cap < want * 2)
        cap *= 2;
    if (cap <= a->cap)
        return 0;
    free(a->keys);
    free(a->vals);
    free(a->used);
    free(a->touched);
    a->keys = malloc(cap * sizeof *a->keys);
    a->vals = malloc(cap * sizeof *a->vals);
    a->used = calloc(cap, 1);
    a->touched = malloc(cap * sizeof *a->touched);
    a->cap = a->keys && a->vals && a->used && a->touched ? cap : 0;
    a->n = 0;
    return a->cap ? 0 : qr_fail(QR_ENOMEM, "bm25: accumulator of %zu", cap);
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static inline void acc_add(acc_table *a, uint64_t id, double s)
{
    size_t m = a->cap - 1, k = mix64(id) & m;
    while (a->used[k]) {
        if (a->keys[k] == id) {
            a->vals[k] += s;
            return;
        }
        k = (k + 1) & m;
    }
    a->used[k] = 1;
    a->keys[k] = id;
    a->vals[k] = s;
    a->touched[a->n++] = k;
}

static bool hit_better(const qr_bm25_hit *x, const qr_bm25_hit *y)
{
    return x->score > y->score || (x->score == y->score && x->id < y->id);
}

/* min-heap on "better" (root = worst kept) */
static void heap_down(qr_bm25_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && hit_better(&h[w], &h[l]))
            w = l;
        if (r < n && hit_better(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        qr_bm25_hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cmp_hit(const void *a, const void *b)
{
    const qr_bm25_hit *x = a, *y = b;
    if (hit_better(x, y))
        return -1;
    if (hit_better(y, x))
        return 1;
    return 0;
}

static int query_term(const char *t, size_t len, void *user)
{
    qr_bm25 *ix = user;
    if (len > QR_BM25_MAX_TERM)
        return 0;
    size_t idx;
    int rc = tt_get(&ix->doc, t, len, &idx);
    if (rc)
        return rc;
    if (ix->doc.n > QR_BM25_MAX_QUERY_TERMS)
        return qr_fail(QR_ELIMIT, "bm25: query has more than %d distinct terms", QR_BM25_MAX_QUERY_TERMS);
    ix->doc.ents[idx].tf++;
    return 0;
}

int qr_bm25_search(qr_bm25 *ix, MDB_txn *txn, const char *query, size_t len, size_t k, qr_bm25_hit *hits,
                   size_t *n_out)
{
    if (len > QR_BM25_MAX_QUERY)
        return qr_fail(QR_ELIMIT, "bm25: query of %zu bytes exceeds %zu", len, QR_BM25_MAX_QUERY);
    if (k > QR_BM25_MAX_K)
        return qr_fail(QR_ELIMIT, "bm25: k = %zu exceeds %d", k, QR_BM25_MAX_K);
    int rc;
    qr_bm25_stats st;
    if ((rc = read_stats(ix, txn, &st)))
        return rc;
    tt_reset_small(&ix->doc);
    if ((rc = qr_analyzer_run(ix->an, query, len, query_term, ix)))
        return rc;
    if (k == 0 || ix->doc.n == 0 || st.doc_count == 0) {
        *n_out = 0;
        return 0;
    }
    /* Lucene BM25Similarity: per-norm cache in float */
    const float k1 = ix->prm.k1, b = ix->prm.b;
    const float avgdl = (float)((double)st.sum_ttf / (double)st.doc_count);
    float cache[256];
    for (int i = 0; i < 256; i++)
        cache[i] = 1.0f / (k1 * ((1.0f - b) + b * (float)qr_bm25_byte4_to_int((uint8_t)i) / avgdl));
    if ((rc = acc_init(&ix->acc, 1024)))
        return rc;
    MDB_cursor *cur = NULL;
    /* Chunk ids are usually dense: then a plain array indexed by id - lo
     * accumulates far faster than a hash table. The id range comes from the
     * first and last key of bm25_docs. */
    uint64_t lo = 0, range = 0;
    size_t dn = 0;
    {
        MDB_val dk, dv;
        int r1 = mdb_cursor_open(txn, ix->docs, &cur);
        if (r1)
            return lmdb_fail(r1, "cursor");
        r1 = mdb_cursor_get(cur, &dk, &dv, MDB_FIRST);
        if (r1 == 0 && dk.mv_size == 8) {
            lo = get_be64(dk.mv_data);
            r1 = mdb_cursor_get(cur, &dk, &dv, MDB_LAST);
            if (r1 == 0 && dk.mv_size == 8)
                range = get_be64(dk.mv_data) - lo + 1;
        }
        mdb_cursor_close(cur);
        cur = NULL;
        uint64_t limit = st.ndocs * 8 > ((uint64_t)1 << 20) ? st.ndocs * 8 : ((uint64_t)1 << 20);
        if (limit > ((uint64_t)1 << 26))
            limit = (uint64_t)1 << 26;
        if (range == 0 || range > limit)
            range = 0; /* sparse: hash table */
        else if (range > ix->dense_cap) {
            double *d = realloc(ix->dense, range * sizeof *d);
            if (d)
                ix->dense = d;
            uint32_t *t = d ? realloc(ix->dtouched, range * sizeof *t) : NULL;
            if (t)
                ix->dtouched = t;
            if (!d || !t)
                return qr_fail(QR_ENOMEM, "bm25: accumulator of %llu", (unsigned long long)range);
            memset(ix->dense + ix->dense_cap, 0, (range - ix->dense_cap) * sizeof *d);
            ix->dense_cap = range;
        }
    }
    int r = mdb_cursor_open(txn, ix->post, &cur);
    if (r)
        return lmdb_fail(r, "cursor");
    uint8_t key[QR_BM25_MAX_TERM + 9];
    for (size_t t = 0; t < ix->doc.n; t++) {
        const term_ent *e = &ix->doc.ents[t];
        const char *term = ix->doc.arena + e->off;
        MDB_val kk = {make_key(key, term, e->len, 0), key}, v;
        /* pass 1: document frequency from the block headers */
        uint64_t df = 0;
        r = mdb_cursor_get(cur, &kk, &v, MDB_SET_RANGE);
        while (r == 0 && key_is_term(&kk, term, e->len)) {
            uint64_t cnt;
            if (!get_varint(v.mv_data, (const uint8_t *)v.mv_data + v.mv_size, &cnt)) {
                rc = qr_fail(QR_EFORMAT, "bm25: bm25_post: bad block header");
                goto fail;
            }
            df += cnt;
            r = mdb_cursor_get(cur, &kk, &v, MDB_NEXT);
        }
        if (r && r != MDB_NOTFOUND) {
            rc = lmdb_fail(r, "read postings");
            goto fail;
        }
        if (df == 0)
            continue;
        const float idf =
            (float)log(1.0 + ((double)st.doc_count - (double)df + 0.5) / ((double)df + 0.5));
        const float w = (float)e->tf * idf;
        /* keep the accumulator under half full */
        if (!range && (ix->acc.n + df) * 2 > ix->acc.cap) {
            /* rehash into a bigger table */
            acc_table old = ix->acc;
            memset(&ix->acc, 0, sizeof ix->acc);
            if ((rc = acc_init(&ix->acc, (old.n + df) * 2))) {
                ix->acc = old;
                goto fail;
            }
            for (size_t i = 0; i < old.n; i++)
                acc_add(&ix->acc, old.keys[old.touched[i]], old.vals[old.touched[i]]);
            free(old.keys);
            free(old.vals);
            free(old.used);
            free(old.touched);
        }
        /* pass 2: score */
        kk.mv_size = make_key(key, term, e->len, 0);
        kk.mv_data = key;
        r = mdb_cursor_get(cur, &kk, &v, MDB_SET_RANGE);
        while (r == 0 && key_is_term(&kk, term, e->len)) {
            const uint8_t *p = v.mv_data, *end = p + v.mv_size;
            uint64_t cnt, id = get_be64((const uint8_t *)kk.mv_data + kk.mv_size - 8);
            size_t q = get_varint(p, end, &cnt);
            if (!q) {
                rc = qr_fail(QR_EFORMAT, "bm25: bm25_post: bad block header");
                goto fail;
            }
            p += q;
            for (uint64_t i = 0; i < cnt; i++) {
                uint64_t d, tf;
                size_t q1 = get_varint(p, end, &d);
                size_t q2 = q1 ? get_varint(p + q1, end, &tf) : 0;
                if (!q2 || p + q1 + q2 >= end) {
                    rc = qr_fail(QR_EFORMAT, "bm25: bm25_post: truncated block");
                    goto fail;
                }
                p += q1 + q2;
                id += d;
                const float freq = (float)tf;
                const float s = w - w / (1.0f + freq * cache[*p++]);
                if (range) {
                    /* a term score is > 0, so 0 marks an untouched slot */
                    uint64_t off = id - lo;
                    if (id < lo || off >= range) {
                        rc = qr_fail(QR_EFORMAT, "bm25: posting for chunk %llu outside bm25_docs",
                                     (unsigned long long)id);
                        goto fail;
                    }
                    if (ix->dense[off] == 0.0)
                        ix->dtouched[dn++] = (uint32_t)off;
                    ix->dense[off] += (double)s;
                } else {
                    acc_add(&ix->acc, id, (double)s);
                }
            }
            r = mdb_cursor_get(cur, &kk, &v, MDB_NEXT);
        }
        if (r && r != MDB_NOTFOUND) {
            rc = lmdb_fail(r, "read postings");
            goto fail;
        }
    }
    mdb_cursor_close(cur);
    cur = NULL;
    /* top k */
    size_t nh = 0;
    size_t ncand = range ? dn : ix->acc.n;
    for (size_t i = 0; i < ncand; i++) {
        qr_bm25_hit h;
        if (range) {
            h.id = lo + ix->dtouched[i];
            h.score = (float)ix->dense[ix->dtouched[i]];
        } else {
            size_t s = ix->acc.touched[i];
            h.id = ix->acc.keys[s];
            h.score = (float)ix->acc.vals[s];
        }
        if (nh < k) {
            hits[nh++] = h;
            if (nh == k)
                for (size_t j = k / 2 + 1; j-- > 0;)
                    heap_down(hits, nh, j);
        } else if (hit_better(&h, &hits[0])) {
            hits[0] = h;
            heap_down(hits, nh, 0);
        }
    }
    qsort(hits, nh, sizeof *hits, cmp_hit);
    *n_out = nh;
    rc = 0;
fail:
    mdb_cursor_close(cur);
    /* clear the accumulators */
    for (size_t i = 0; i < dn; i++)
        ix->dense[ix->dtouched[i]] = 0.0;
    for (size_t i = 0; i < ix->acc.n; i++)
        ix->acc.used[ix->acc.touched[i]] = 0;
    ix->acc.n = 0;
    return rc;
}
