/* The store: manifest.json + meta.lmdb + vectors.faiss (layout in store.h). */
#include "index/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "index/vecindex.h"
#include "runtime/dtype.h"

#define INITIAL_MAP ((size_t)64 << 30)
#define TRAIN_SAMPLE 65536 /* vectors used to train an IVF index */

struct qr_store {
    char *dir;
    char lmdb_path[4096], faiss_path[4096];
    qr_manifest man;
    bool readonly;
    bool nolock; /* readonly without LMDB's lock table (meta.lmdb-lock not writable): lock_fd holds LOCK_SH */
    int lock_fd;
    MDB_env *env;
    size_t mapsize;
    MDB_dbi meta, docs, paths, chunks, doc_chunks, vectors, ckpt;
    int dim;     /* 0: no embedder */
    bool f16;    /* vectors kept as f16 */
    pthread_rwlock_t vlock; /* guards vi against concurrent search and commit */
    qr_vecindex *vi;         /* NULL: no embedder */
    bool vi_dirty;           /* in-memory index differs from vectors.faiss */
    bool vi_rebuild;         /* index must be rebuilt from LMDB (HNSW removal, untrained IVF) */
    uint64_t applied_gen;    /* generation the in-memory index reflects */
    bool man_dirty;
    bool in_write;
    size_t train_fail_n; /* vector count of the last failed training (no retry, no log, until it changes) */
};

struct qr_store_txn {
    qr_store *s;
    MDB_txn *txn;
    bool write, map_full;
    int64_t *add_ids;
    float *add_vecs; // (n_add, dim)
    size_t n_add, cap_add;
    int64_t *rm_ids;
    size_t n_rm, cap_rm;
};

/* ---------- small helpers ---------- */

static int lmdb_fail(qr_store_txn *t, int mrc, const char *what)
{
    if (mrc == MDB_MAP_FULL) {
        if (t)
            t->map_full = true;
        return qr_fail(QR_ELIMIT, "meta.lmdb: %s: map full; abort the transaction and retry (the map grows)", what);
    }
    return qr_fail(mrc == MDB_CORRUPTED || mrc == MDB_INVALID || mrc == MDB_VERSION_MISMATCH ? QR_EFORMAT : QR_EIO,
                   "meta.lmdb: %s: %s", what, mdb_strerror(mrc));
}

static MDB_val mval(const void *p, size_t n)
{
    MDB_val v = {n, (void *)p};
    return v;
}

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf_t;

static int buf_put(buf_t *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return qr_fail(QR_ENOMEM, "meta.lmdb: out of memory for a record");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

static int buf_str(buf_t *b, const char *s, size_t len)
{
    uint32_t l = (uint32_t)len + 1;
    char nul = 0;
    if (len > 0xfffffff0u)
        return qr_fail(QR_ELIMIT, "meta.lmdb: string of %zu bytes", len);
    return buf_put(b, &l, 4) || buf_put(b, s ? s : "", len) || buf_put(b, &nul, 1) ? QR_ENOMEM : 0;
}

typedef struct {
    const unsigned char *p;
    size_t n, off;
    bool bad;
} rd_t;

static void rd(rd_t *r, void *dst, size_t n)
{
    if (r->bad || r->off + n > r->n) {
        r->bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
}

static const char *rd_str(rd_t *r, size_t *len)
{
    uint32_t l = 0;
    rd(r, &l, 4);
    if (r->bad || l == 0 || r->off + l > r->n || r->p[r->off + l - 1] != 0) {
        r->bad = true;
        return "";
    }
    const char *s = (const char *)r->p + r->off;
    r->off += l;
    if (len)
        *len = l - 1;
    return s;
}

static int parse_doc(uint64_t id, MDB_val v, qr_store_doc *d)
{
    rd_t r = {v.mv_data, v.mv_size, 0, false};
    memset(d, 0, sizeof *d);
    d->id = id;
    rd(&r, &d->size, 8);
    rd(&r, &d->mtime_ns, 8);
    rd(&r, &d->n_chunks, 4);
    d->path = rd_str(&r, NULL);
    d->hash = rd_str(&r, NULL);
    d->title = rd_str(&r, NULL);
    d->format = rd_str(&r, NULL);
    d->meta_json = rd_str(&r, NULL);
    return r.bad ? qr_fail(QR_EFORMAT, "meta.lmdb: docs: record of doc %llu is malformed", (unsigned long long)id)
                 : 0;
}

static int parse_chunk(uint64_t id, MDB_val v, qr_store_chunk *c)
{
    rd_t r = {v.mv_data, v.mv_size, 0, false};
    memset(c, 0, sizeof *c);
    c->id = id;
    rd(&r, &c->doc_id, 8);
    rd(&r, &c->byte_start, 8);
    rd(&r, &c->byte_end, 8);
    rd(&r, &c->page, 4);
    rd(&r, &c->ordinal, 4);
    c->heading = rd_str(&r, NULL);
    c->text = rd_str(&r, &c->text_len);
    return r.bad ? qr_fail(QR_EFORMAT, "meta.lmdb: chunks: record of chunk %llu is malformed",
                           (unsigned long long)id)
                 : 0;
}

static int meta_get_u64(qr_store_txn *t, const char *key, uint64_t def, uint64_t *out)
{
    MDB_val k = mval(key, strlen(key)), v;
    int mrc = mdb_get(t->txn, t->s->meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        *out = def;
        return 0;
    }
    if (mrc)
        return lmdb_fail(t, mrc, key);
    if (v.mv_size != 8)
        return qr_fail(QR_EFORMAT, "meta.lmdb: meta/%s: %zu bytes, expected 8", key, v.mv_size);
    memcpy(out, v.mv_data, 8);
    return 0;
}

static int meta_put_u64(qr_store_txn *t, const char *key, uint64_t x)
{
    MDB_val k = mval(key, strlen(key)), v = mval(&x, 8);
    int mrc = mdb_put(t->txn, t->s->meta, &k, &v, 0);
    return mrc ? lmdb_fail(t, mrc, key) : 0;
}

static int pend_rm(qr_store_txn *t, uint64_t id)
{
    if (!t->s->vi)
        return 0;
    if (t->n_rm == t->cap_rm) {
        size_t cap = t->cap_rm ? t->cap_rm * 2 : 64;
        int64_t *p = realloc(t->rm_ids, cap * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "store: out of memory");
        t->rm_ids = p;
        t->cap_rm = cap;
    }
    t->rm_ids[t->n_rm++] = (int64_t)id;
    return 0;
}

static int pend_add(qr_store_txn *t, uint64_t id, const float *v)
{
    size_t d = (size_t)t->s->dim;
    if (t->n_add == t->cap_add) {
        size_t cap = t->cap_add ? t->cap_add * 2 : 64;
        int64_t *p = realloc(t->add_ids, cap * sizeof *p);
        if (!p)
            return qr_fail(QR_ENOMEM, "store: out of memory");
        t->add_ids = p;
        float *q = realloc(t->add_vecs, cap * d * sizeof *q);
        if (!q)
            return qr_fail(QR_ENOMEM, "store: out of memory");
        t->add_vecs = q;
        t->cap_add = cap;
    }
    t->add_ids[t->n_add] = (int64_t)id;
    memcpy(t->add_vecs + t->n_add * d, v, d * sizeof *v);
    t->n_add++;
    return 0;
}

static void decode_vec(const qr_store *s, const void *src, float *dst)
{
    if (s->f16) {
        const uint16_t *h = src;
        for (int i = 0; i < s->dim; i++)
            dst[i] = qr_f16_to_f32(h[i]);
    } else {
        memcpy(dst, src, (size_t)s->dim * sizeof *dst);
    }
}

static size_t vec_bytes(const qr_store *s) { return (size_t)s->dim * (s->f16 ? 2 : 4); }

/* ---------- vectors: write + pending FAISS change ---------- */

static int put_vector_raw(qr_store_txn *t, uint64_t id, const float *v)
{
    qr_store *s = t->s;
    size_t nb = vec_bytes(s);
    unsigned char stackbuf[4096];
    unsigned char *enc = nb <= sizeof stackbuf ? stackbuf : malloc(nb);
    float *back = malloc((size_t)s->dim * sizeof *back);
    int rc = 0;
    if (!enc || !back) {
        rc = qr_fail(QR_ENOMEM, "store: out of memory");
        goto fail;
    }
    if (s->f16)
        for (int i = 0; i < s->dim; i++)
            ((uint16_t *)enc)[i] = qr_f32_to_f16(v[i]);
    else
        memcpy(enc, v, nb);
    MDB_val k = mval(&id, 8), val = mval(enc, nb);
    int mrc = mdb_put(t->txn, s->vectors, &k, &val, 0);
    if (mrc) {
        rc = lmdb_fail(t, mrc, "vectors");
        goto fail;
    }
    // FAISS gets exactly what LMDB holds (f16-rounded), so a rebuild gives the same index.
    decode_vec(s, enc, back);
    rc = pend_add(t, id, back);
fail:
    if (enc != stackbuf)
        free(enc);
    free(back);
    return rc;
}

/* Deletes the chunks (and vectors) listed for doc_id in doc_chunks. */
static int delete_chunks_of(qr_store_txn *t, uint64_t doc_id)
{
    qr_store *s = t->s;
    MDB_cursor *c = NULL;
    MDB_val k = mval(&doc_id, 8), v;
    int rc = 0, mrc = mdb_cursor_open(t->txn, s->doc_chunks, &c);
    if (mrc)
        return lmdb_fail(t, mrc, "doc_chunks");
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY); mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP)) {
        uint64_t cid;
        if (v.mv_size != 8) {
            rc = qr_fail(QR_EFORMAT, "meta.lmdb: doc_chunks: bad value size %zu", v.mv_size);
            goto fail;
        }
        memcpy(&cid, v.mv_data, 8);
        MDB_val ck = mval(&cid, 8);
        int r = mdb_del(t->txn, s->chunks, &ck, NULL);
        if (r && r != MDB_NOTFOUND) {
            rc = lmdb_fail(t, r, "chunks");
            goto fail;
        }
        r = mdb_del(t->txn, s->vectors, &ck, NULL);
        if (r == 0) {
            if ((rc = pend_rm(t, cid)))
                goto fail;
        } else if (r != MDB_NOTFOUND) {
            rc = lmdb_fail(t, r, "vectors");
            goto fail;
        }
    }
    if (mrc != MDB_NOTFOUND) {
        rc = lmdb_fail(t, mrc, "doc_chunks");
        goto fail;
    }
    mdb_cursor_close(c);
    c = NULL;
    k = mval(&doc_id, 8);
    mrc = mdb_del(t->txn, s->doc_chunks, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(t, mrc, "doc_chunks");
fail:
    if (c)
        mdb_cursor_close(c);
    return rc;
}

/* ---------- FAISS from LMDB ---------- */

/* Reads every LMDB vector id (ascending); *vecs (n, dim) too when vecs != NULL. */
static int lmdb_vectors(qr_store *s, MDB_txn *txn, int64_t **ids, float **vecs, size_t *n)
{
    MDB_stat st;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc = 0, mrc = mdb_stat(txn, s->vectors, &st);
    if (mrc)
        return lmdb_fail(NULL, mrc, "vectors");
    size_t cap = st.ms_entries ? st.ms_entries : 1, m = 0;
    int64_t *a = malloc(cap * sizeof *a);
    float *x = vecs ? malloc(cap * (size_t)s->dim * sizeof *x) : NULL;
    if (!a || (vecs && !x)) {
        rc = qr_fail(QR_ENOMEM, "store: out of memory for %zu vectors", cap);
        goto fail;
    }
    if ((mrc = mdb_cursor_open(txn, s->vectors, &c))) {
        rc = lmdb_fail(NULL, mrc, "vectors");
        goto fail;
    }
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0 && m < cap; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size != vec_bytes(s)) {
            rc = qr_fail(QR_EFORMAT, "meta.lmdb: vectors: entry of %zu bytes, expected %zu (dim %d)", v.mv_size,
                         vec_bytes(s), s->dim);
            goto fail;
        }
        memcpy(&a[m], k.mv_data, 8);
        if (x)
            decode_vec(s, v.mv_data, x + m * (size_t)s->dim);
        m++;
    }
    *ids = a;
    if (vecs)
        *vecs = x;
    *n = m;
    a = NULL;
    x = NULL;
fail:
    if (c)
        mdb_cursor_close(c);
    free(a);
    free(x);
    return rc;
}

/* Builds a fresh index from every LMDB vector, training IVF-type indexes on a
 * sample first. When there are too few vectors to train, the index stays
 * untrained and searches scan LMDB exactly. Caller holds vlock for writing. */
static int rebuild_index(qr_store *s, MDB_txn *txn)
{
    int64_t *ids = NULL;
    float *x = NULL, *sample = NULL;
    size_t n = 0;
    qr_vecindex *vi = NULL;
    int rc = qr_vecindex_create(s->man.factory, s->dim, strcmp(s->man.metric, "ip") == 0, &vi);
    if (rc)
        return rc;
    if ((rc = lmdb_vectors(s, txn, &ids, &x, &n)))
        goto fail;
    if (!qr_vecindex_is_trained(vi) && n > 0 && n != s->train_fail_n) {
        // Evenly strided sample: deterministic, and spread over ingest order.
        size_t m = n < TRAIN_SAMPLE ? n : TRAIN_SAMPLE, d = (size_t)s->dim;
        const float *train = x;
        if (m < n) {
            if (!(sample = malloc(m * d * sizeof *sample))) {
                rc = qr_fail(QR_ENOMEM, "store: out of memory for the training sample");
                goto fail;
            }
            for (size_t i = 0; i < m; i++)
                memcpy(sample + i * d, x + (i * n / m) * d, d * sizeof *x);
            train = sample;
        }
        if (qr_vecindex_train(vi, m, train) != 0) {
            s->train_fail_n = n;
            QR_WARN("store %s: index \"%s\" not trained yet (%s); searches scan all %zu vectors exactly", s->dir,
                    s->man.factory, qr_last_error(), n);
        } else {
            QR_INFO("store %s: trained \"%s\" on %zu vectors", s->dir, s->man.factory, m);
        }
    }
    if (qr_vecindex_is_trained(vi) && (rc = qr_vecindex_add(vi, n, x, ids)))
        goto fail;
    qr_vecindex_free(s->vi);
    s->vi = vi;
    vi = NULL;
    s->vi_rebuild = !qr_vecindex_is_trained(s->vi);
    s->vi_dirty = true;
fail:
    qr_vecindex_free(vi);
    free(ids);
    free(x);
    free(sample);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* HNSW tombstones cost search time and memory: rebuild once they pass a quarter of the live vectors. */
static void check_dead(qr_store *s)
{
    if (s->vi && qr_vecindex_dead(s->vi) > 64 + qr_vecindex_count(s->vi) / 4)
        s->vi_rebuild = true;
}

/* Brings the in-memory index in line with LMDB (see store.h). */
static int reconcile(qr_store *s, MDB_txn *txn, uint64_t gen, uint64_t faiss_gen)
{
    int64_t *fids = NULL, *lids = NULL, *add = NULL, *rm = NULL;
    float *lx = NULL, *ax = NULL;
    size_t nf = 0, nl = 0, na = 0, nr = 0, d = (size_t)s->dim;
    int rc = 0;
    if (!s->vi || !qr_vecindex_is_trained(s->vi))
        return rebuild_index(s, txn);
    // Fast path: a file saved at the current generation reflects LMDB exactly
    // (ids are never reused), so skip reading every vector.
    MDB_stat vst;
    if (faiss_gen == gen && mdb_stat(txn, s->vectors, &vst) == 0 &&
        (int64_t)vst.ms_entries == qr_vecindex_count(s->vi)) {
        QR_DEBUG("store %s: vectors.faiss is current (generation %llu)", s->dir, (unsigned long long)gen);
        return 0;
    }
    if ((rc = qr_vecindex_ids(s->vi, &fids, &nf)) || (rc = lmdb_vectors(s, txn, &lids, &lx, &nl)))
        goto fail;
    qsort(fids, nf, sizeof *fids, cmp_i64);
    add = malloc((nl ? nl : 1) * sizeof *add);
    ax = malloc((nl ? nl : 1) * d * sizeof *ax);
    rm = malloc((nf ? nf : 1) * sizeof *rm);
    if (!add || !ax || !rm) {
        rc = qr_fail(QR_ENOMEM, "store: out of memory reconciling vectors");
        goto fail;
    }
    size_t i = 0, j = 0;
    while (i < nl || j < nf) {
        if (j >= nf || (i < nl && lids[i] < fids[j])) {
            add[na] = lids[i];
            memcpy(ax + na * d, lx + i * d, d * sizeof *ax);
            na++;
            i++;
        } else if (i >= nl || fids[j] < lids[i]) {
            rm[nr++] = fids[j++];
        } else {
            i++;
            j++;
        }
    }
    if (na || nr || faiss_gen != gen)
        QR_INFO("store %s: reconciled vectors.faiss (generation %llu) with meta.lmdb (generation %llu): "
                "%zu vectors re-added from LMDB, %zu stale ids removed",
                s->dir, (unsigned long long)faiss_gen, (unsigned long long)gen, na, nr);
    if (nr) {
        size_t removed;
        rc = qr_vecindex_remove(s->vi, nr, rm, &removed);
        if (rc == QR_EUNSUPPORTED) {
            rc = rebuild_index(s, txn);
            goto fail;
        }
        if (rc)
            goto fail;
        s->vi_dirty = true;
        check_dead(s);
    }
    if (na) {
        if ((rc = qr_vecindex_add(s->vi, na, ax, add)))
            goto fail;
        s->vi_dirty = true;
    }
    if (faiss_gen != gen)
        s->vi_dirty = true;
fail:
    free(fids);
    free(lids);
    free(lx);
    free(add);
    free(ax);
    free(rm);
    return rc;
}

/* ---------- open / close ---------- */

static int open_dbis(qr_store *s, MDB_txn *txn, unsigned flags)
{
    static const struct { const char *name; size_t off; unsigned extra; } dbs[] = {
        {"meta", offsetof(qr_store, meta), 0},
        {"docs", offsetof(qr_store, docs), MDB_INTEGERKEY},
        {"paths", offsetof(qr_store, paths), 0},
        {"chunks", offsetof(qr_store, chunks), MDB_INTEGERKEY},
        {"doc_chunks", offsetof(qr_store, doc_chunks), MDB_INTEGERKEY | MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP},
        {"vectors", offsetof(qr_store, vectors), MDB_INTEGERKEY},
        {"checkpoints", offsetof(qr_store, ckpt), 0},
    };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int mrc = mdb_dbi_open(txn, dbs[i].name, flags | dbs[i].extra, (MDB_dbi *)((char *)s + dbs[i].off));
        if (mrc == MDB_NOTFOUND)
            return qr_fail(QR_EFORMAT, "%s: database \"%s\" missing", s->lmdb_path, dbs[i].name);
        if (mrc)
            return lmdb_fail(NULL, mrc, dbs[i].name);
    }
    /* Sub-databases other modules keep in this env (index/bm25.h), opened
     * here only so their handles persist once this transaction commits:
     * LMDB's mdb_dbi_open may not run in concurrent transactions of one
     * process, and a read transaction that opened a handle frees its name on
     * abort. With the handles open, later opens are a read-only lookup, so
     * searches in many threads (the HTTP service) may each open them. */
    static const char *const others[] = {"bm25_meta", "bm25_post", "bm25_docs"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        MDB_dbi dbi;
        int mrc = mdb_dbi_open(txn, others[i], 0, &dbi);
        if (mrc && mrc != MDB_NOTFOUND)
            return lmdb_fail(NULL, mrc, others[i]);
    }
    return 0;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int adopt_embedder(qr_store *s, const qr_embedder_id *e)
{
    s->man.has_embedder = e != NULL;
    if (e) {
        s->man.embedder = *e;
        strcpy(s->man.metric, e->normalize ? "ip" : "l2");
    }
    s->dim = e ? e->dim : 0;
    s->man_dirty = true;
    return 0;
}

/* Why this process cannot write an existing store, or 0 when it can: the
 * directory (new files: manifest.json.tmp, vectors.faiss.tmp, posted/) and
 * each file a writer opens for writing. faccessat(AT_EACCESS) checks the
 * effective ids, so root passes unless the file system is read-only. */
int qr_store_writable(const char *dir)
{
    static const char *const files[] = {"meta.lmdb", "meta.lmdb-lock", "write.lock", "manifest.json"};
    char p[4200];
    if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) != 0) {
        int err = errno;
        if (err == ENOENT)
            return qr_fail(QR_ENOTFOUND, "%s: no store here", dir);
        if (err == EROFS)
            return qr_fail(QR_EIO, "%s: the store is on a read-only file system; search, info and serve can read "
                           "it, writing needs a writable mount", dir);
        return qr_fail(QR_EIO, "%s: the store is read-only for this user (directory: %s); search, info and serve "
                       "can read it, writing needs write permission on the directory and its files",
                       dir, strerror(err));
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (faccessat(AT_FDCWD, p, W_OK, AT_EACCESS) != 0 && errno != ENOENT)
            return qr_fail(QR_EIO, "%s: the store is read-only for this user (%s: %s); search, info and serve "
                           "can read it, writing needs write permission on the directory and its files",
                           dir, files[i], strerror(errno));
    }
    return 0;
}

/* A reader that cannot write meta.lmdb-lock (another user's store, a read-only
 * file system or snapshot) opens LMDB with MDB_NOLOCK: its read transactions
 * are then invisible to a writer, which may recycle the pages they read. So
 * such a reader holds write.lock shared for as long as the store is open:
 * writers (which take it exclusively) are refused meanwhile, and the reader is
 * refused while a writer runs. Returns 0, or QR_EIO when a writer holds it. */
static int nolock_guard(qr_store *s)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/write.lock", s->dir);
    s->lock_fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (s->lock_fd < 0) {
        // No writer ever ran here with this file (a copy without it): nothing to exclude.
        QR_DEBUG("store %s: %s: %s; reading without a writer check", s->dir, lp, strerror(errno));
        return 0;
    }
    if (flock(s->lock_fd, LOCK_SH | LOCK_NB) != 0) {
        int err = errno;
        close(s->lock_fd);
        s->lock_fd = -1;
        if (err == EWOULDBLOCK)
            return qr_fail(QR_EIO,
                           "%s: another process is writing this store; this process cannot write meta.lmdb-lock, "
                           "so it reads without LMDB's reader table, which is safe only while no writer runs: "
                           "retry when the write ends (or have the store's owner make meta.lmdb-lock writable "
                           "for this user, e.g. chmod g+w)",
                           s->dir);
        // A file system without flock (some network mounts): the rule cannot be enforced here.
        QR_WARN("store %s: %s: flock: %s; cannot check for a writer: do not write this store while it is read "
                "without a lock", s->dir, lp, strerror(err));
    }
    return 0;
}

int qr_store_open(const char *dir, const qr_store_open_opts *opts, qr_store **out)
{
    qr_store_open_opts none = {0};
    const qr_store_open_opts *o = opts ? opts : &none;
    qr_store *s = calloc(1, sizeof *s);
    MDB_txn *txn = NULL;
    struct stat st;
    bool creating = false;
    char a[1400], b[1400];
    int rc = 0, mrc;
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return qr_fail(QR_ENOMEM, "store: out of memory");
    }
    s->lock_fd = -1;
    s->train_fail_n = (size_t)-1;
    s->readonly = o->readonly;
    pthread_rwlock_init(&s->vlock, NULL);
    snprintf(s->lmdb_path, sizeof s->lmdb_path, "%s/meta.lmdb", dir);
    snprintf(s->faiss_path, sizeof s->faiss_path, "%s/vectors.faiss", dir);

    // 1. The manifest first: a corrupt or foreign store is refused before anything is touched.
    rc = qr_manifest_read(dir, &s->man);
    if (rc == QR_ENOTFOUND) {
        if (!o->create || o->readonly) {
            rc = qr_fail(QR_ENOTFOUND, "%s: no store here (manifest.json missing)", dir);
            goto fail;
        }
        if (stat(s->lmdb_path, &st) == 0) {
            rc = qr_fail(QR_EFORMAT, "%s: meta.lmdb present but manifest.json missing; not touching it", dir);
            goto fail;
        }
        if (mkdir_p(dir) != 0) {
            rc = qr_fail(QR_EIO, "%s: %s", dir, strerror(errno));
            goto fail;
        }
        qr_clear_error();
        creating = true;
        rc = 0;
        qr_manifest_init(&s->man);
        if (o->factory && *o->factory)
            snprintf(s->man.factory, sizeof s->man.factory, "%s", o->factory);
        if (o->vec_dtype && *o->vec_dtype) {
            if (strcmp(o->vec_dtype, "f32") != 0 && strcmp(o->vec_dtype, "f16") != 0) {
                rc = qr_fail(QR_EINVAL, "store: vector dtype \"%s\": expected f32 or f16", o->vec_dtype);
                goto fail;
            }
            strcpy(s->man.vec_dtype, o->vec_dtype);
        }
        if (o->chunk_tokens > 0)
            s->man.chunk_tokens = o->chunk_tokens;
        if (o->chunk_overlap != 0)
            s->man.chunk_overlap = o->chunk_overlap == QR_STORE_NO_OVERLAP ? 0 : o->chunk_overlap;
        if (o->chunk_tokenizer)
            snprintf(s->man.chunk_tokenizer, sizeof s->man.chunk_tokenizer, "%s", o->chunk_tokenizer);
        adopt_embedder(s, o->embedder);
    } else if (rc) {
        goto fail;
    } else {
        s->dim = s->man.has_embedder ? s->man.embedder.dim : 0;
        if (o->embedder && s->man.has_embedder && !qr_embedder_same(o->embedder, &s->man.embedder)) {
            qr_embedder_describe(&s->man.embedder, a, sizeof a);
            qr_embedder_describe(o->embedder, b, sizeof b);
            rc = qr_fail(QR_EMISMATCH, "%s: the store was embedded with %s; refusing embedder %s", dir, a, b);
            goto fail;
        }
        if (o->embedder && !s->man.has_embedder) {
            if (s->man.n_chunks > 0 || o->readonly) {
                qr_embedder_describe(o->embedder, b, sizeof b);
                rc = qr_fail(QR_EMISMATCH,
                             "%s: the store has no embedder (BM25-only, %llu chunks); refusing embedder %s "
                             "(re-embed the store to add one)",
                             dir, (unsigned long long)s->man.n_chunks, b);
                goto fail;
            }
            adopt_embedder(s, o->embedder);
        }
    }
    s->f16 = strcmp(s->man.vec_dtype, "f16") == 0;

    // 2. One writer per store; a store this user cannot write is refused by name before anything is opened.
    if (!s->readonly) {
        char lp[4200];
        if ((rc = qr_store_writable(dir)))
            goto fail;
        snprintf(lp, sizeof lp, "%s/write.lock", dir);
        s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0) {
            rc = qr_fail(QR_EIO, "%s: %s", lp, strerror(errno));
            goto fail;
        }
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            // Shared holders are readers without LMDB's lock table (nolock_guard); an exclusive one, a writer.
            bool readers = err == EWOULDBLOCK && flock(s->lock_fd, LOCK_SH | LOCK_NB) == 0;
            rc = qr_fail(QR_EIO, "%s: %s", lp,
                         readers ? "the store is being read by a process that cannot write meta.lmdb-lock (another "
                                   "user, or a read-only mount), which reads safely only while no writer runs: "
                                   "retry when it ends (making meta.lmdb-lock writable for those readers lets "
                                   "them read during writes)"
                         : err == EWOULDBLOCK ? "another process is writing this store"
                                              : strerror(err));
            goto fail;
        }
        // A crash while saving can leave vectors.faiss.tmp behind.
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", s->faiss_path);
        unlink(tmp);
    }

    // 3. LMDB.
    if (stat(s->lmdb_path, &st) != 0 && !creating) {
        rc = qr_fail(QR_EFORMAT, "%s: missing (the manifest says a store is here)", s->lmdb_path);
        goto fail;
    }
    if (s->readonly) {
        /* LMDB readers register in meta.lmdb-lock, which needs write access to
         * it (and to the directory to create it). Without that: MDB_NOLOCK,
         * guarded by write.lock (nolock_guard). */
        char lk[4200];
        snprintf(lk, sizeof lk, "%s-lock", s->lmdb_path);
        int fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            close(fd);
        } else if (errno == EACCES || errno == EPERM || errno == EROFS) {
            QR_INFO("store %s: meta.lmdb-lock not writable (%s): reading without LMDB's lock table; writers of "
                    "this store are refused until this process closes it", dir, strerror(errno));
            s->nolock = true;
            if ((rc = nolock_guard(s)))
                goto fail;
        }
    }
    s->mapsize = o->map_size ? o->map_size : INITIAL_MAP;
    if (stat(s->lmdb_path, &st) == 0 && (size_t)st.st_size * 2 > s->mapsize)
        s->mapsize = (size_t)st.st_size * 2;
    for (;;) {
        if ((mrc = mdb_env_create(&s->env)) || (mrc = mdb_env_set_maxdbs(s->env, 32)) ||
            (mrc = mdb_env_set_mapsize(s->env, s->mapsize)) ||
            (mrc = mdb_env_open(s->env, s->lmdb_path, MDB_NOSUBDIR | MDB_NOTLS | (s->readonly ? MDB_RDONLY : 0) |
                                                         (s->nolock ? MDB_NOLOCK : 0),
                                0644))) {
            mdb_env_close(s->env);
            s->env = NULL;
            // A limit on address space refuses the large map: try smaller ones. ulimit -v gives
            // ENOMEM; valgrind's address space (under 32 GiB) gives EINVAL for the 64 GiB default.
            if ((mrc == ENOMEM || mrc == EINVAL) && s->mapsize > ((size_t)256 << 20)) {
                s->mapsize /= 2;
                continue;
            }
            rc = qr_fail(mrc == MDB_INVALID || mrc == MDB_VERSION_MISMATCH ? QR_EFORMAT : QR_EIO, "%s: %s%s",
                         s->lmdb_path, mdb_strerror(mrc),
                         mrc == EACCES && s->readonly ? " (reading a store needs read permission on its files)" : "");
            goto fail;
        }
        break;
    }
    if ((mrc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn))) {
        rc = lmdb_fail(NULL, mrc, "begin");
        goto fail;
    }
    if ((rc = open_dbis(s, txn, s->readonly ? 0 : MDB_CREATE)))
        goto fail;
    {
        qr_store_txn t = {.s = s, .txn = txn, .write = !s->readonly};
        MDB_val k = mval("version", 7), v;
        mrc = mdb_get(txn, s->meta, &k, &v);
        uint32_t ver = QR_STORE_LMDB_VERSION;
        if (mrc == MDB_NOTFOUND && !s->readonly) {
            v = mval(&ver, 4);
            if ((mrc = mdb_put(txn, s->meta, &k, &v, 0))) {
                rc = lmdb_fail(NULL, mrc, "meta");
                goto fail;
            }
        } else if (mrc) {
            rc = mrc == MDB_NOTFOUND ? qr_fail(QR_EFORMAT, "%s: meta/version missing", s->lmdb_path)
                                     : lmdb_fail(NULL, mrc, "meta");
            goto fail;
        } else {
            if (v.mv_size == 4)
                memcpy(&ver, v.mv_data, 4);
            if (v.mv_size != 4 || ver != QR_STORE_LMDB_VERSION) {
                rc = qr_fail(QR_EUNSUPPORTED, "%s: layout version %u, this quire reads version %d", s->lmdb_path,
                             v.mv_size == 4 ? ver : 0, QR_STORE_LMDB_VERSION);
                goto fail;
            }
        }
        uint64_t gen = 0, fgen = 0;
        if ((rc = meta_get_u64(&t, "generation", 0, &gen)) || (rc = meta_get_u64(&t, "faiss_generation", 0, &fgen)))
            goto fail;
        s->applied_gen = gen;
        // 4. FAISS: load, check it fits the manifest, reconcile with LMDB.
        if (s->dim > 0 && !(s->readonly && o->skip_vectors)) {
            int lrc = qr_vecindex_load(s->faiss_path, &s->vi);
            if (lrc == 0 && (qr_vecindex_dim(s->vi) != s->dim ||
                             qr_vecindex_metric_ip(s->vi) != (strcmp(s->man.metric, "ip") == 0))) {
                QR_WARN("store %s: vectors.faiss has dim %d, the manifest says %d; rebuilding it from meta.lmdb", dir,
                        qr_vecindex_dim(s->vi), s->dim);
                qr_vecindex_free(s->vi);
                s->vi = NULL;
            } else if (lrc == QR_EFORMAT) {
                QR_WARN("store %s: %s; rebuilding vectors.faiss from meta.lmdb", dir, qr_last_error());
            } else if (lrc && lrc != QR_ENOTFOUND) {
                rc = lrc;
                goto fail;
            }
            if ((rc = reconcile(s, txn, gen, s->vi ? fgen : (uint64_t)-1)))
                goto fail;
        }
    }
    if ((mrc = mdb_txn_commit(txn))) {
        txn = NULL;
        rc = lmdb_fail(NULL, mrc, "commit");
        goto fail;
    }
    txn = NULL;
    if (!s->readonly && (creating || s->man_dirty || s->vi_dirty) && (rc = qr_store_sync(s)))
        goto fail;
    *out = s;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    s->man_dirty = s->vi_dirty = false;
    s->readonly = true; // nothing written on the way out
    qr_store_close(s);
    return rc;
}

void qr_store_close(qr_store *s)
{
    if (!s)
        return;
    if (!s->readonly && s->env && qr_store_sync(s) != 0)
        QR_ERROR("store %s: saving on close: %s", s->dir, qr_last_error());
    if (s->env)
        mdb_env_close(s->env);
    qr_vecindex_free(s->vi);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_rwlock_destroy(&s->vlock);
    free(s->dir);
    free(s);
}

const qr_manifest *qr_store_manifest(const qr_store *s) { return &s->man; }
const char *qr_store_dir(const qr_store *s) { return s->dir; }
MDB_env *qr_store_env(qr_store *s) { return s->env; }

int qr_store_counts_get(qr_store *s, qr_store_counts *out)
{
    MDB_txn *txn;
    MDB_stat a, b, c;
    qr_store_counts r = {0};
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc)
        return lmdb_fail(NULL, mrc, "begin");
    qr_store_txn t = {.s = s, .txn = txn};
    if ((mrc = mdb_stat(txn, s->docs, &a)) || (mrc = mdb_stat(txn, s->chunks, &b)) ||
        (mrc = mdb_stat(txn, s->vectors, &c))) {
        mdb_txn_abort(txn);
        return lmdb_fail(NULL, mrc, "stat");
    }
    int rc = meta_get_u64(&t, "generation", 0, &r.generation);
    mdb_txn_abort(txn);
    if (rc)
        return rc;
    r.docs = a.ms_entries;
    r.chunks = b.ms_entries;
    r.vectors = c.ms_entries;
    pthread_rwlock_rdlock(&s->vlock);
    r.faiss_vectors = s->vi ? qr_vecindex_count(s->vi) : -1;
    pthread_rwlock_unlock(&s->vlock);
    *out = r;
    return 0;
}

int qr_store_sync(qr_store *s)
{
    int rc = 0;
    if (s->readonly)
        return 0;
    if (s->in_write)
        return qr_fail(QR_EINVAL, "store %s: sync inside a write transaction", s->dir);
    pthread_rwlock_wrlock(&s->vlock);
    if (s->vi && s->vi_rebuild) {
        MDB_txn *txn;
        int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
        if (mrc) {
            rc = lmdb_fail(NULL, mrc, "begin");
        } else {
            rc = rebuild_index(s, txn);
            mdb_txn_abort(txn);
        }
    }
    bool save = s->vi && s->vi_dirty;
    uint64_t gen = s->applied_gen;
    if (!rc && save)
        rc = qr_vecindex_save(s->vi, s->faiss_path);
    if (!rc && save)
        s->vi_dirty = false;
    pthread_rwlock_unlock(&s->vlock);
    if (rc)
        return rc;
    if (save) {
        // Record which generation vectors.faiss reflects (no generation bump: nothing user-visible changed).
        MDB_txn *txn;
        int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (mrc)
            return lmdb_fail(NULL, mrc, "begin");
        qr_store_txn t = {.s = s, .txn = txn, .write = true};
        if ((rc = meta_put_u64(&t, "faiss_generation", gen))) {
            mdb_txn_abort(txn);
            return rc;
        }
        if ((mrc = mdb_txn_commit(txn)))
            return lmdb_fail(NULL, mrc, "commit");
    }
    qr_store_counts c;
    if ((rc = qr_store_counts_get(s, &c)))
        return rc;
    if (s->man_dirty || c.docs != s->man.n_docs || c.chunks != s->man.n_chunks || c.vectors != s->man.n_vectors ||
        c.generation != s->man.generation) {
        s->man.n_docs = c.docs;
        s->man.n_chunks = c.chunks;
        s->man.n_vectors = c.vectors;
        s->man.generation = c.generation;
        if ((rc = qr_manifest_write(s->dir, &s->man)))
            return rc;
        s->man_dirty = false;
    }
    return 0;
}

int qr_store_set_embedder(qr_store *s, const qr_embedder_id *e)
{
    MDB_txn *txn;
    int rc, mrc;
    if (s->readonly)
        return qr_fail(QR_EINVAL, "store %s: opened read-only", s->dir);
    if (e && (e->dim <= 0 || e->dim > QR_VECINDEX_MAX_DIM))
        return qr_fail(QR_EINVAL, "store: embedder dimension %d", e ? e->dim : 0);
    if ((e && s->man.has_embedder && qr_embedder_same(e, &s->man.embedder)) || (!e && !s->man.has_embedder))
        return 0;
    if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)))
        return lmdb_fail(NULL, mrc, "begin");
    if ((mrc = mdb_drop(txn, s->vectors, 0)) || (mrc = mdb_txn_commit(txn))) {
        if (mrc != 0)
            mdb_txn_abort(txn);
        return lmdb_fail(NULL, mrc, "dropping vectors");
    }
    pthread_rwlock_wrlock(&s->vlock);
    qr_vecindex_free(s->vi);
    s->vi = NULL;
    adopt_embedder(s, e);
    rc = e ? qr_vecindex_create(s->man.factory, s->dim, strcmp(s->man.metric, "ip") == 0, &s->vi) : 0;
    s->vi_dirty = e != NULL;
    s->vi_rebuild = s->vi && !qr_vecindex_is_trained(s->vi);
    pthread_rwlock_unlock(&s->vlock);
    if (!e)
        unlink(s->faiss_path);
    QR_INFO("store %s: embedder %s; every vector dropped, re-embed the chunks", s->dir, e ? e->model : "removed");
    return rc ? rc : qr_store_sync(s);
}

int qr_store_set_factory(qr_store *s, const char *factory)
{
    qr_vecindex *probe = NULL;
    int rc;
    if (s->readonly)
        return qr_fail(QR_EINVAL, "store %s: opened read-only", s->dir);
    if (!factory || !*factory)
        factory = "Flat";
    if (strlen(factory) >= sizeof s->man.factory)
        return qr_fail(QR_ELIMIT, "store: factory string of %zu bytes", strlen(factory));
    if (strcmp(factory, s->man.factory) == 0)
        return 0;
    // Validate the string before changing anything (any dimension will do when there is no embedder).
    if ((rc = qr_vecindex_create(factory, s->dim ? s->dim : 16, true, &probe)))
        return rc;
    qr_vecindex_free(probe);
    QR_INFO("store %s: index type %s -> %s; rebuilding vectors.faiss from meta.lmdb", s->dir, s->man.factory,
            factory);
    snprintf(s->man.factory, sizeof s->man.factory, "%s", factory);
    s->man_dirty = true;
    if (s->dim) {
        pthread_rwlock_wrlock(&s->vlock);
        s->vi_rebuild = true;
        pthread_rwlock_unlock(&s->vlock);
    }
    return qr_store_sync(s);
}

/* ---------- transactions ---------- */

int qr_store_txn_begin(qr_store *s, bool write, qr_store_txn **out)
{
    if (write && s->readonly)
        return qr_fail(QR_EINVAL, "store %s: opened read-only", s->dir);
    if (write && s->in_write)
        return qr_fail(QR_EINVAL, "store %s: a write transaction is already open", s->dir);
    qr_store_txn *t = calloc(1, sizeof *t);
    if (!t)
        return qr_fail(QR_ENOMEM, "store: out of memory");
    t->s = s;
    t->write = write;
    int mrc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (mrc == MDB_MAP_RESIZED) { // another process grew the map
        mdb_env_set_mapsize(s->env, 0);
        mrc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (mrc) {
        free(t);
        return lmdb_fail(NULL, mrc, "begin");
    }
    if (write)
        s->in_write = true;
    *out = t;
    return 0;
}

static void txn_free(qr_store_txn *t)
{
    if (t->write)
        t->s->in_write = false;
    free(t->add_ids);
    free(t->add_vecs);
    free(t->rm_ids);
    free(t);
}

void qr_store_txn_abort(qr_store_txn *t)
{
    if (!t)
        return;
    qr_store *s = t->s;
    bool grow = t->map_full;
    mdb_txn_abort(t->txn);
    txn_free(t);
    if (grow) {
        size_t want = s->mapsize * 2;
        if (mdb_env_set_mapsize(s->env, want) == 0) {
            s->mapsize = want;
            QR_INFO("store %s: meta.lmdb map grown to %zu GiB", s->dir, want >> 30);
        }
    }
}

MDB_txn *qr_store_txn_mdb(qr_store_txn *t) { return t->txn; }

/* Applies a committed transaction's vector changes to the in-memory index. */
static void apply_vectors(qr_store_txn *t, uint64_t gen)
{
    qr_store *s = t->s;
    pthread_rwlock_wrlock(&s->vlock);
    s->applied_gen = gen;
    if (s->vi && (t->n_rm || t->n_add)) {
        s->vi_dirty = true;
        if (t->n_rm) /* rm_ids may be NULL when nothing was removed: qsort(NULL, 0) is undefined */
            qsort(t->rm_ids, t->n_rm, sizeof *t->rm_ids, cmp_i64);
        if (t->n_rm && !s->vi_rebuild) {
            size_t removed;
            int rc = qr_vecindex_remove(s->vi, t->n_rm, t->rm_ids, &removed);
            if (rc) {
                if (rc != QR_EUNSUPPORTED)
                    QR_WARN("store %s: %s; rebuilding the index", s->dir, qr_last_error());
                s->vi_rebuild = true;
            }
            check_dead(s);
        }
        if (t->n_add && !s->vi_rebuild) {
            // Ids added and deleted within this transaction are not added.
            size_t m = 0, d = (size_t)s->dim;
            for (size_t i = 0; i < t->n_add; i++)
                if (!t->n_rm || !bsearch(&t->add_ids[i], t->rm_ids, t->n_rm, sizeof *t->rm_ids, cmp_i64)) {
                    t->add_ids[m] = t->add_ids[i];
                    memmove(t->add_vecs + m * d, t->add_vecs + i * d, d * sizeof *t->add_vecs);
                    m++;
                }
            if (!qr_vecindex_is_trained(s->vi) || qr_vecindex_add(s->vi, m, t->add_vecs, t->add_ids) != 0)
                s->vi_rebuild = true;
        }
    }
    pthread_rwlock_unlock(&s->vlock);
}

int qr_store_txn_commit(qr_store_txn *t)
{
    int rc = 0, mrc;
    uint64_t gen = 0;
    if (!t->write) {
        mdb_txn_abort(t->txn);
        txn_free(t);
        return 0;
    }
    if ((rc = meta_get_u64(t, "generation", 0, &gen)) || (rc = meta_put_u64(t, "generation", gen + 1))) {
        qr_store_txn_abort(t);
        return rc;
    }
    if ((mrc = mdb_txn_commit(t->txn))) {
        t->txn = NULL;
        rc = lmdb_fail(t, mrc, "commit");
        bool grow = t->map_full;
        qr_store *s = t->s;
        txn_free(t);
        if (grow && mdb_env_set_mapsize(s->env, s->mapsize * 2) == 0)
            s->mapsize *= 2;
        return rc;
    }
    apply_vectors(t, gen + 1);
    txn_free(t);
    return 0;
}

/* ---------- records ---------- */

static int need_write(qr_store_txn *t)
{
    return t->write ? 0 : qr_fail(QR_EINVAL, "store: write in a read-only transaction");
}

static int path_key(const char *path, MDB_val *k)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n > QR_STORE_MAX_PATH)
        return qr_fail(n ? QR_ELIMIT : QR_EINVAL, "store: path of %zu bytes (1..%d allowed)", n, QR_STORE_MAX_PATH);
    *k = mval(path, n);
    return 0;
}

static int lookup_path(qr_store_txn *t, const char *path, uint64_t *id)
{
    MDB_val k, v;
    int rc = path_key(path, &k);
    if (rc)
        return rc;
    int mrc = mdb_get(t->txn, t->s->paths, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return QR_ENOTFOUND; // quiet: callers use it as a test
    if (mrc)
        return lmdb_fail(t, mrc, "paths");
    if (v.mv_size != 8)
        return qr_fail(QR_EFORMAT, "meta.lmdb: paths: bad value size %zu", v.mv_size);
    memcpy(id, v.mv_data, 8);
    return 0;
}

int qr_store_put_doc(qr_store_txn *t, const qr_store_doc *doc, const qr_store_chunk *chunks, size_t n,
                     const float *vectors, uint64_t *doc_id, uint64_t *first_chunk_id)
{
    qr_store *s = t->s;
    buf_t b = {0};
    uint64_t id = 0, first = 0, next_doc = 0;
    MDB_val pk, k, v;
    int rc, mrc;
    if ((rc = need_write(t)) || (rc = path_key(doc->path, &pk)))
        return rc;
    if (n > QR_STORE_MAX_CHUNKS_PER_DOC)
        return qr_fail(QR_ELIMIT, "store: %s: %zu chunks (limit %d)", doc->path, n, QR_STORE_MAX_CHUNKS_PER_DOC);
    if (vectors && !s->vi)
        return qr_fail(QR_EINVAL, "store %s: vectors given but the store has no embedder", s->dir);
    rc = lookup_path(t, doc->path, &id);
    if (rc == 0) {
        if ((rc = delete_chunks_of(t, id)))
            return rc;
    } else if (rc == QR_ENOTFOUND) {
        if ((rc = meta_get_u64(t, "next_doc", 1, &id)) || (rc = meta_put_u64(t, "next_doc", id + 1)))
            return rc;
        (void)next_doc;
    } else {
        return rc;
    }
    if ((rc = meta_get_u64(t, "next_chunk", 1, &first)) || (rc = meta_put_u64(t, "next_chunk", first + n)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const qr_store_chunk *c = &chunks[i];
        uint64_t cid = first + i;
        b.n = 0;
        if (buf_put(&b, &id, 8) || buf_put(&b, &c->byte_start, 8) || buf_put(&b, &c->byte_end, 8) ||
            buf_put(&b, &c->page, 4) || buf_put(&b, &c->ordinal, 4) ||
            buf_str(&b, c->heading, c->heading ? strlen(c->heading) : 0) ||
            buf_str(&b, c->text, c->text ? c->text_len : 0)) {
            rc = qr_fail(QR_ENOMEM, "store: out of memory");
            goto fail;
        }
        k = mval(&cid, 8);
        v = mval(b.p, b.n);
        if ((mrc = mdb_put(t->txn, s->chunks, &k, &v, MDB_APPEND))) {
            rc = lmdb_fail(t, mrc, "chunks");
            goto fail;
        }
        MDB_val dk = mval(&id, 8), dv = mval(&cid, 8);
        if ((mrc = mdb_put(t->txn, s->doc_chunks, &dk, &dv, 0))) {
            rc = lmdb_fail(t, mrc, "doc_chunks");
            goto fail;
        }
        if (vectors && (rc = put_vector_raw(t, cid, vectors + i * (size_t)s->dim)))
            goto fail;
    }
    uint32_t nc = (uint32_t)n;
    b.n = 0;
    const char *meta = doc->meta_json ? doc->meta_json : "";
    if (buf_put(&b, &doc->size, 8) || buf_put(&b, &doc->mtime_ns, 8) || buf_put(&b, &nc, 4) ||
        buf_str(&b, doc->path, strlen(doc->path)) || buf_str(&b, doc->hash, doc->hash ? strlen(doc->hash) : 0) ||
        buf_str(&b, doc->title, doc->title ? strlen(doc->title) : 0) ||
        buf_str(&b, doc->format, doc->format ? strlen(doc->format) : 0) || buf_str(&b, meta, strlen(meta))) {
        rc = qr_fail(QR_ENOMEM, "store: out of memory");
        goto fail;
    }
    k = mval(&id, 8);
    v = mval(b.p, b.n);
    if ((mrc = mdb_put(t->txn, s->docs, &k, &v, 0))) {
        rc = lmdb_fail(t, mrc, "docs");
        goto fail;
    }
    v = mval(&id, 8);
    if ((mrc = mdb_put(t->txn, s->paths, &pk, &v, 0))) {
        rc = lmdb_fail(t, mrc, "paths");
        goto fail;
    }
    if (doc_id)
        *doc_id = id;
    if (first_chunk_id)
        *first_chunk_id = first;
fail:
    free(b.p);
    return rc;
}

int qr_store_get_doc(qr_store_txn *t, uint64_t doc_id, qr_store_doc *out)
{
    MDB_val k = mval(&doc_id, 8), v;
    int mrc = mdb_get(t->txn, t->s->docs, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: doc %llu not found", (unsigned long long)doc_id);
    if (mrc)
        return lmdb_fail(t, mrc, "docs");
    return parse_doc(doc_id, v, out);
}

int qr_store_doc_by_path(qr_store_txn *t, const char *path, qr_store_doc *out)
{
    uint64_t id = 0;
    int rc = lookup_path(t, path, &id);
    if (rc == QR_ENOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: %s: not in the store", path);
    return rc ? rc : qr_store_get_doc(t, id, out);
}

int qr_store_delete_doc(qr_store_txn *t, uint64_t doc_id)
{
    qr_store_doc d;
    int rc, mrc;
    if ((rc = need_write(t)) || (rc = qr_store_get_doc(t, doc_id, &d)))
        return rc;
    MDB_val pk;
    if ((rc = path_key(d.path, &pk)))
        return rc;
    // Copy the key: the record's memory is invalid after the first write.
    char path[QR_STORE_MAX_PATH + 1];
    memcpy(path, pk.mv_data, pk.mv_size);
    pk.mv_data = path;
    if ((rc = delete_chunks_of(t, doc_id)))
        return rc;
    if ((mrc = mdb_del(t->txn, t->s->paths, &pk, NULL)) && mrc != MDB_NOTFOUND)
        return lmdb_fail(t, mrc, "paths");
    MDB_val k = mval(&doc_id, 8);
    if ((mrc = mdb_del(t->txn, t->s->docs, &k, NULL)))
        return lmdb_fail(t, mrc, "docs");
    return 0;
}

int qr_store_delete_path(qr_store_txn *t, const char *path)
{
    uint64_t id = 0;
    int rc = lookup_path(t, path, &id);
    if (rc == QR_ENOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: %s: not in the store", path);
    return rc ? rc : qr_store_delete_doc(t, id);
}

int qr_store_iter_docs(qr_store_txn *t, qr_store_doc_fn fn, void *user)
{
    /* ids are uint64 keys in integer order, so ">= 0" is every document */
    return qr_store_iter_docs_from(t, 0, fn, user);
}

int qr_store_iter_docs_from(qr_store_txn *t, uint64_t first_id, qr_store_doc_fn fn, void *user)
{
    MDB_cursor *c;
    MDB_val k = mval(&first_id, 8), v;
    int rc = 0, mrc = mdb_cursor_open(t->txn, t->s->docs, &c);
    if (mrc)
        return lmdb_fail(t, mrc, "docs");
    /* MDB_SET_RANGE: the first key >= first_id (integer order, MDB_INTEGERKEY) */
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        qr_store_doc d;
        uint64_t id;
        memcpy(&id, k.mv_data, 8);
        if ((rc = parse_doc(id, v, &d)) || (rc = fn(&d, user)))
            break;
    }
    if (!rc && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(t, mrc, "docs");
    mdb_cursor_close(c);
    return rc;
}

int qr_store_get_chunk(qr_store_txn *t, uint64_t chunk_id, qr_store_chunk *out)
{
    MDB_val k = mval(&chunk_id, 8), v;
    int mrc = mdb_get(t->txn, t->s->chunks, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: chunk %llu not found", (unsigned long long)chunk_id);
    if (mrc)
        return lmdb_fail(t, mrc, "chunks");
    return parse_chunk(chunk_id, v, out);
}

int qr_store_iter_chunks(qr_store_txn *t, qr_store_chunk_fn fn, void *user)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = 0, mrc = mdb_cursor_open(t->txn, t->s->chunks, &c);
    if (mrc)
        return lmdb_fail(t, mrc, "chunks");
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        qr_store_chunk ch;
        uint64_t id;
        memcpy(&id, k.mv_data, 8);
        if ((rc = parse_chunk(id, v, &ch)) || (rc = fn(&ch, user)))
            break;
    }
    if (!rc && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(t, mrc, "chunks");
    mdb_cursor_close(c);
    return rc;
}

int qr_store_doc_chunks(qr_store_txn *t, uint64_t doc_id, qr_store_chunk_fn fn, void *user)
{
    MDB_cursor *c;
    MDB_val k = mval(&doc_id, 8), v;
    int rc = 0, mrc = mdb_cursor_open(t->txn, t->s->doc_chunks, &c);
    if (mrc)
        return lmdb_fail(t, mrc, "doc_chunks");
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY); mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP)) {
        uint64_t cid;
        qr_store_chunk ch;
        memcpy(&cid, v.mv_data, 8);
        if ((rc = qr_store_get_chunk(t, cid, &ch)) || (rc = fn(&ch, user)))
            break;
    }
    if (!rc && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(t, mrc, "doc_chunks");
    mdb_cursor_close(c);
    return rc;
}

int qr_store_put_vector(qr_store_txn *t, uint64_t chunk_id, const float *v)
{
    int rc = need_write(t);
    if (rc)
        return rc;
    if (!t->s->vi)
        return qr_fail(QR_EINVAL, "store %s: no embedder, so no vectors", t->s->dir);
    MDB_val k = mval(&chunk_id, 8), cv;
    int mrc = mdb_get(t->txn, t->s->chunks, &k, &cv);
    if (mrc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: chunk %llu not found", (unsigned long long)chunk_id);
    if (mrc)
        return lmdb_fail(t, mrc, "chunks");
    mrc = mdb_get(t->txn, t->s->vectors, &k, &cv);
    if (mrc == 0 && (rc = pend_rm(t, chunk_id))) // replacing a vector: FAISS drops the old one
        return rc;
    return put_vector_raw(t, chunk_id, v);
}

int qr_store_get_vector(qr_store_txn *t, uint64_t chunk_id, float *out)
{
    if (!t->s->dim)
        return qr_fail(QR_EINVAL, "store %s: no embedder, so no vectors", t->s->dir);
    MDB_val k = mval(&chunk_id, 8), v;
    int mrc = mdb_get(t->txn, t->s->vectors, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: chunk %llu has no vector", (unsigned long long)chunk_id);
    if (mrc)
        return lmdb_fail(t, mrc, "vectors");
    if (v.mv_size != vec_bytes(t->s))
        return qr_fail(QR_EFORMAT, "meta.lmdb: vectors: chunk %llu: %zu bytes", (unsigned long long)chunk_id,
                       v.mv_size);
    decode_vec(t->s, v.mv_data, out);
    return 0;
}

static int ckpt_key(const char *key, MDB_val *k)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > 511)
        return qr_fail(QR_EINVAL, "store: checkpoint key of %zu bytes (1..511)", n);
    *k = mval(key, n);
    return 0;
}

int qr_store_ckpt_put(qr_store_txn *t, const char *key, const void *val, size_t len)
{
    MDB_val k, v = mval(val, len);
    int rc, mrc;
    if ((rc = need_write(t)) || (rc = ckpt_key(key, &k)))
        return rc;
    mrc = mdb_put(t->txn, t->s->ckpt, &k, &v, 0);
    return mrc ? lmdb_fail(t, mrc, "checkpoints") : 0;
}

int qr_store_ckpt_get(qr_store_txn *t, const char *key, const void **val, size_t *len)
{
    MDB_val k, v;
    int rc = ckpt_key(key, &k), mrc;
    if (rc)
        return rc;
    mrc = mdb_get(t->txn, t->s->ckpt, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return qr_fail(QR_ENOTFOUND, "store: checkpoint %s not found", key);
    if (mrc)
        return lmdb_fail(t, mrc, "checkpoints");
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int qr_store_ckpt_del(qr_store_txn *t, const char *key)
{
    MDB_val k;
    int rc, mrc;
    if ((rc = need_write(t)) || (rc = ckpt_key(key, &k)))
        return rc;
    mrc = mdb_del(t->txn, t->s->ckpt, &k, NULL);
    return mrc && mrc != MDB_NOTFOUND ? lmdb_fail(t, mrc, "checkpoints") : 0;
}

/* ---------- search ---------- */

/* Exact scan over LMDB vectors (index not trained yet). */
static int scan_search(qr_store *s, const float *q, int k, uint64_t *ids, float *scores, int *found)
{
    MDB_txn *txn;
    MDB_cursor *c = NULL;
    MDB_val key, v;
    bool ip = strcmp(s->man.metric, "ip") == 0;
    float *x = malloc((size_t)s->dim * sizeof *x);
    int m = 0, rc = 0, mrc;
    if (!x)
        return qr_fail(QR_ENOMEM, "store: out of memory");
    if ((mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))) {
        free(x);
        return lmdb_fail(NULL, mrc, "begin");
    }
    if ((mrc = mdb_cursor_open(txn, s->vectors, &c))) {
        rc = lmdb_fail(NULL, mrc, "vectors");
        goto fail;
    }
    for (mrc = mdb_cursor_get(c, &key, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        if (v.mv_size != vec_bytes(s))
            continue;
        decode_vec(s, v.mv_data, x);
        double acc = 0;
        for (int i = 0; i < s->dim; i++)
            acc += ip ? (double)q[i] * x[i] : ((double)q[i] - x[i]) * ((double)q[i] - x[i]);
        float sc = (float)acc;
        // Insertion into the sorted top-k (best first).
        int pos = m;
        while (pos > 0 && (ip ? sc > scores[pos - 1] : sc < scores[pos - 1]))
            pos--;
        if (pos >= k)
            continue;
        int last = m < k ? m : k - 1;
        for (int j = last; j > pos; j--) {
            ids[j] = ids[j - 1];
            scores[j] = scores[j - 1];
        }
        memcpy(&ids[pos], key.mv_data, 8);
        scores[pos] = sc;
        if (m < k)
            m++;
    }
    *found = m;
fail:
    if (c)
        mdb_cursor_close(c);
    mdb_txn_abort(txn);
    free(x);
    return rc;
}

/* True while a writer holds write.lock (checked without waiting). */
static bool writer_active(const qr_store *s)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/write.lock", s->dir);
    int fd = open(lp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); // releases the shared lock, if taken
    return busy;
}

/* A read-only store open for long (quire serve) while another process
 * writes it: BM25 and the records are read live from LMDB, but the vector
 * index was loaded at open. Once the generation has moved and no writer holds
 * write.lock (so this runs once per ingest, not after each of its commits),
 * the in-memory index is reconciled with one LMDB snapshot: vectors added
 * since are added, removed ones removed. Lock-less readers skip it: writers
 * are held off while they have the store open. */
static int refresh_readonly(qr_store *s)
{
    MDB_txn *txn;
    uint64_t gen = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0; // the search reports LMDB errors itself
    qr_store_txn t = {.s = s, .txn = txn};
    int rc = meta_get_u64(&t, "generation", 0, &gen);
    mdb_txn_abort(txn);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&s->vlock);
    bool stale = gen != s->applied_gen;
    pthread_rwlock_unlock(&s->vlock);
    if (!stale || writer_active(s))
        return 0;
    pthread_rwlock_wrlock(&s->vlock);
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
        t.txn = txn;
        uint64_t from = s->applied_gen;
        if (!(rc = meta_get_u64(&t, "generation", 0, &gen)) && gen != from) {
            QR_INFO("store %s: changed by another process (generation %llu -> %llu); updating the vector index "
                    "in memory", s->dir, (unsigned long long)from, (unsigned long long)gen);
            if (!(rc = reconcile(s, txn, gen, from)))
                s->applied_gen = gen;
        }
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&s->vlock);
    return rc;
}

int qr_store_search(qr_store *s, const float *q, int k, uint64_t *ids, float *scores, int *found)
{
    if (!s->dim)
        return qr_fail(QR_EINVAL, "store %s: no embedder (BM25-only store): no vector search", s->dir);
    if (k <= 0 || k > QR_VECINDEX_MAX_K)
        return qr_fail(k <= 0 ? QR_EINVAL : QR_ELIMIT, "vector search: k=%d outside 1..%d", k, QR_VECINDEX_MAX_K);
    int rc = 0;
    if (!s->vi)
        return qr_fail(QR_EINVAL, "store %s: opened without its vector index", s->dir);
    if (s->readonly && !s->nolock && (rc = refresh_readonly(s)))
        return rc;
    if (s->vi_rebuild && !s->readonly && !s->in_write) {
        MDB_txn *txn;
        pthread_rwlock_wrlock(&s->vlock);
        if (s->vi_rebuild && mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
            rc = rebuild_index(s, txn);
            mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&s->vlock);
        if (rc)
            return rc;
    }
    pthread_rwlock_rdlock(&s->vlock);
    if (!s->vi || s->vi_rebuild) {
        pthread_rwlock_unlock(&s->vlock);
        return scan_search(s, q, k, ids, scores, found);
    }
    int64_t *lab = malloc((size_t)k * sizeof *lab);
    int m = 0;
    if (!lab)
        rc = qr_fail(QR_ENOMEM, "store: out of memory");
    else
        rc = qr_vecindex_search(s->vi, q, k, lab, scores, &m);
    pthread_rwlock_unlock(&s->vlock);
    if (!rc) {
        for (int i = 0; i < m; i++)
            ids[i] = (uint64_t)lab[i];
        *found = m;
    }
    free(lab);
    return rc;
}
