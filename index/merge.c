/* quire merge: shard stores into one store (see index/merge.h for what is
 * merged, what must agree and how a rerun resumes). */
#include "index/merge.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "index/bm25.h"
#include "index/store.h"

/* The ingest pipeline's per-file records (ingest/pipeline.h): copied as they are. */
#define FILES_DB "ingest_files"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *dir;
    qr_store *s;
    qr_store_txn *t; /* read transaction held for the whole merge: strings stay valid */
    uint64_t n_docs;
} shard;

typedef struct {
    const char *path; /* points into the shard's map */
    uint32_t shard;
    uint64_t doc_id;
} entry;

/* ---------------------------------------------------------------- compatibility */

/* QR_EMISMATCH naming both stores and the field when b cannot join a. */
static int check_same(const char *da, const qr_manifest *a, const char *db, const qr_manifest *b)
{
    char x[1400], y[1400];
    if (a->has_embedder != b->has_embedder || (a->has_embedder && !qr_embedder_same(&a->embedder, &b->embedder))) {
        if (a->has_embedder)
            qr_embedder_describe(&a->embedder, x, sizeof x);
        else
            snprintf(x, sizeof x, "no embedder (BM25 only)");
        if (b->has_embedder)
            qr_embedder_describe(&b->embedder, y, sizeof y);
        else
            snprintf(y, sizeof y, "no embedder (BM25 only)");
        return qr_fail(QR_EMISMATCH, "merge: embedder differs: %s has %s, %s has %s; shards must be ingested "
                                     "with the same --embedder", da, x, db, y);
    }
    if (a->chunk_tokens != b->chunk_tokens || a->chunk_overlap != b->chunk_overlap ||
        strcmp(a->chunk_tokenizer, b->chunk_tokenizer) != 0)
        return qr_fail(QR_EMISMATCH,
                       "merge: chunking differs: %s has %d tokens, overlap %d (tokenizer \"%s\"), %s has %d tokens, "
                       "overlap %d (tokenizer \"%s\"); shards must be ingested with the same --chunk-tokens and "
                       "--chunk-overlap",
                       da, a->chunk_tokens, a->chunk_overlap, a->chunk_tokenizer, db, b->chunk_tokens,
                       b->chunk_overlap, b->chunk_tokenizer);
    if (a->has_embedder && (strcmp(a->vec_dtype, b->vec_dtype) != 0 || strcmp(a->metric, b->metric) != 0))
        return qr_fail(QR_EMISMATCH, "merge: vectors differ: %s keeps %s (%s), %s keeps %s (%s)", da, a->vec_dtype,
                       a->metric, db, b->vec_dtype, b->metric);
    return 0;
}

/* ---------------------------------------------------------------- collecting */

typedef struct {
    entry *e;
    size_t n, cap;
    uint32_t shard;
} entry_list;

static int collect_doc(const qr_store_doc *d, void *user)
{
    entry_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        entry *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne)
            return qr_fail(QR_ENOMEM, "merge: document list (%zu)", cap);
        l->e = ne;
        l->cap = cap;
    }
    l->e[l->n++] = (entry){d->path, l->shard, d->id};
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

typedef struct {
    qr_store_chunk *c;
    size_t n, cap;
} chunk_list;

static int collect_chunk(const qr_store_chunk *c, void *user)
{
    chunk_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        qr_store_chunk *nc = realloc(l->c, cap * sizeof *nc);
        if (!nc)
            return qr_fail(QR_ENOMEM, "merge: chunk list (%zu)", cap);
        l->c = nc;
        l->cap = cap;
    }
    l->c[l->n++] = *c;
    return 0;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    qr_store *out;
    qr_bm25 *bm;       /* valid across commits; closed after an abort */
    shard *sh;
    int dim;
    chunk_list cl, old;
    float *vecs;       /* (cap_vec, dim) */
    size_t cap_vec;
    /* counts of the transaction being built (added to the report on commit) */
    size_t docs, chunks, vectors, unchanged, replaced;
} merger;

/* Copies one document (entry e) into the output transaction t. */
static int merge_doc(merger *m, qr_store_txn *t, const entry *e)
{
    shard *s = &m->sh[e->shard];
    qr_store_doc d, have;
    int rc = qr_store_get_doc(s->t, e->doc_id, &d);
    if (rc)
        return rc;
    rc = qr_store_doc_by_path(t, d.path, &have);
    if (rc == 0) {
        if (strcmp(have.hash ? have.hash : "", d.hash ? d.hash : "") == 0 && have.n_chunks == d.n_chunks) {
            m->unchanged++;
            return 0;
        }
        /* other content under this path: its BM25 postings go first (the store drops its chunks) */
        m->old.n = 0;
        if ((rc = qr_store_doc_chunks(t, have.id, collect_chunk, &m->old)))
            return rc;
        for (size_t i = 0; i < m->old.n && !rc; i++) {
            rc = qr_bm25_remove(m->bm, qr_store_txn_mdb(t), m->old.c[i].id);
            if (rc == QR_ENOTFOUND)
                rc = 0;
        }
        if (rc)
            return rc;
        m->replaced++;
    } else if (rc != QR_ENOTFOUND) {
        return rc;
    }
    qr_clear_error();
    m->cl.n = 0;
    if ((rc = qr_store_doc_chunks(s->t, e->doc_id, collect_chunk, &m->cl)))
        return rc;
    size_t n = m->cl.n;
    const float *vecs = NULL;
    bool partial = false; /* some chunks without a vector: put those that exist one by one */
    if (m->dim > 0 && n > 0) {
        if (n > m->cap_vec) {
            float *nv = realloc(m->vecs, n * (size_t)m->dim * sizeof *nv);
            if (!nv)
                return qr_fail(QR_ENOMEM, "merge: %s: vectors of %zu chunks", d.path, n);
            m->vecs = nv;
            m->cap_vec = n;
        }
        for (size_t i = 0; i < n; i++) {
            rc = qr_store_get_vector(s->t, m->cl.c[i].id, m->vecs + i * (size_t)m->dim);
            if (rc == QR_ENOTFOUND) {
                partial = true;
                rc = 0;
                continue;
            }
            if (rc)
                return rc;
        }
        qr_clear_error();
        if (!partial)
            vecs = m->vecs;
    }
    uint64_t first = 0;
    if ((rc = qr_store_put_doc(t, &d, m->cl.c, n, vecs, NULL, &first)))
        return rc;
    if (vecs)
        m->vectors += n;
    for (size_t i = 0; partial && i < n && !rc; i++) {
        if (qr_store_get_vector(s->t, m->cl.c[i].id, m->vecs) == 0) {
            rc = qr_store_put_vector(t, first + i, m->vecs);
            m->vectors++;
        }
    }
    qr_clear_error();
    for (size_t i = 0; i < n && !rc; i++)
        rc = qr_bm25_add_chunk(m->bm, qr_store_txn_mdb(t), first + i, d.path, d.title, m->cl.c[i].heading,
                               m->cl.c[i].text, m->cl.c[i].text_len); /* as ingest indexes chunks */
    m->docs++;
    m->chunks += n;
    return rc;
}

/* Copies every shard's ingest_files records into the output (later shards win). */
static int copy_file_records(merger *m, qr_store_txn *t, size_t n_shards)
{
    MDB_txn *w = qr_store_txn_mdb(t);
    MDB_dbi out_dbi = 0;
    bool have_out = false;
    int rc = 0;
    for (size_t i = 0; i < n_shards && !rc; i++) {
        MDB_txn *r = qr_store_txn_mdb(m->sh[i].t);
        MDB_dbi dbi;
        int mrc = mdb_dbi_open(r, FILES_DB, 0, &dbi);
        if (mrc == MDB_NOTFOUND)
            continue;
        if (mrc)
            return qr_fail(QR_EIO, "merge: %s: %s: %s", m->sh[i].dir, FILES_DB, mdb_strerror(mrc));
        if (!have_out) {
            if ((mrc = mdb_dbi_open(w, FILES_DB, MDB_CREATE, &out_dbi)))
                return qr_fail(QR_EIO, "merge: output %s: %s", FILES_DB, mdb_strerror(mrc));
            have_out = true;
        }
        MDB_cursor *cur;
        if ((mrc = mdb_cursor_open(r, dbi, &cur)))
            return qr_fail(QR_EIO, "merge: %s: cursor: %s", m->sh[i].dir, mdb_strerror(mrc));
        MDB_val k, v;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            int prc = mdb_put(w, out_dbi, &k, &v, 0);
            if (prc == MDB_MAP_FULL) {
                rc = qr_fail(QR_ELIMIT, "merge: LMDB map full");
                break;
            }
            if (prc) {
                rc = qr_fail(QR_EIO, "merge: output %s: %s", FILES_DB, mdb_strerror(prc));
                break;
            }
        }
        if (!rc && mrc != MDB_NOTFOUND)
            rc = qr_fail(QR_EIO, "merge: %s: %s: %s", m->sh[i].dir, FILES_DB, mdb_strerror(mrc));
        mdb_cursor_close(cur);
    }
    return rc;
}

/* One write transaction over entries [a, b) (records: copy the file records
 * instead). On QR_ELIMIT the store has grown its map: retried. */
static int write_batch(merger *m, const entry *es, size_t a, size_t b, bool records, size_t n_shards,
                       qr_merge_report *rep)
{
    int rc = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        qr_store_txn *t = NULL;
        if ((rc = qr_store_txn_begin(m->out, true, &t)))
            return rc;
        m->docs = m->chunks = m->vectors = m->unchanged = m->replaced = 0;
        if (!m->bm)
            rc = qr_bm25_open(qr_store_txn_mdb(t), NULL, &m->bm);
        if (records) {
            if (!rc)
                rc = copy_file_records(m, t, n_shards);
        } else {
            for (size_t i = a; i < b && !rc; i++) {
                /* the same path in two shards: the later shard's document wins */
                if (i + 1 < b && strcmp(es[i].path, es[i + 1].path) == 0) {
                    QR_WARN("merge: %s is in %s and %s; keeping the latter", es[i].path, m->sh[es[i].shard].dir,
                            m->sh[es[i + 1].shard].dir);
                    continue;
                }
                rc = merge_doc(m, t, &es[i]);
            }
        }
        if (!rc)
            rc = qr_bm25_flush(m->bm, qr_store_txn_mdb(t));
        if (!rc) {
            if ((rc = qr_store_txn_commit(t)))
                return rc;
            rep->commits++;
            rep->docs += m->docs;
            rep->chunks += m->chunks;
            rep->vectors += m->vectors;
            rep->unchanged += m->unchanged;
            rep->replaced += m->replaced;
            return 0;
        }
        qr_store_txn_abort(t);
        qr_bm25_close(m->bm); /* handles opened in an aborted transaction are not valid */
        m->bm = NULL;
        if (rc != QR_ELIMIT)
            return rc;
    }
    return rc;
}

/* ---------------------------------------------------------------- run */

static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb))
        return false;
    return strcmp(ra, rb) == 0;
}

int qr_merge_run(const char *out_dir, const char *const *shards, size_t n_shards, const qr_merge_opts *opts,
                 qr_merge_report *report)
{
    qr_merge_opts o = {0};
    if (opts)
        o = *opts;
    if (!o.commit_chunks)
        o.commit_chunks = 4096;
    if (!out_dir || !*out_dir || n_shards == 0 || !shards)
        return qr_fail(QR_EINVAL, "merge: an output store and at least one shard store are needed");
    if (n_shards > UINT32_MAX)
        return qr_fail(QR_ELIMIT, "merge: %zu shards", n_shards);
    double t0 = now_s();
    qr_merge_report rep;
    memset(&rep, 0, sizeof rep);
    merger m;
    memset(&m, 0, sizeof m);
    entry_list el = {0};
    shard *sh = calloc(n_shards, sizeof *sh);
    int rc = 0;
    if (!sh)
        return qr_fail(QR_ENOMEM, "merge: %zu shards", n_shards);
    m.sh = sh;

    for (size_t i = 0; i < n_shards; i++) {
        if (same_dir(shards[i], out_dir)) {
            rc = qr_fail(QR_EINVAL, "merge: shard %s is the output store", shards[i]);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (same_dir(shards[i], shards[j])) {
                rc = qr_fail(QR_EINVAL, "merge: shard %s named twice (also as %s)", shards[i], shards[j]);
                goto fail;
            }
    }

    // 1. Open every shard read-only (vectors come from meta.lmdb, not vectors.faiss).
    int ref = -1; /* first shard with documents: the reference for what must agree */
    for (size_t i = 0; i < n_shards; i++) {
        sh[i].dir = shards[i];
        qr_store_open_opts so = {.readonly = true, .skip_vectors = true};
        if ((rc = qr_store_open(shards[i], &so, &sh[i].s)))
            goto fail;
        qr_store_counts c;
        if ((rc = qr_store_counts_get(sh[i].s, &c)))
            goto fail;
        sh[i].n_docs = c.docs;
        if (c.docs == 0) {
            QR_INFO("merge: shard %s is empty", shards[i]);
            continue;
        }
        if (ref < 0)
            ref = (int)i;
        else if ((rc = check_same(shards[ref], qr_store_manifest(sh[ref].s), shards[i],
                                  qr_store_manifest(sh[i].s))))
            goto fail;
    }
    if (ref < 0)
        ref = 0;
    const qr_manifest *rm = qr_store_manifest(sh[ref].s);

    // 2. The output: an existing one must agree as well; a new one takes the reference's settings.
    {
        qr_manifest om;
        int mr = qr_manifest_read(out_dir, &om);
        if (mr == 0 && sh[ref].n_docs > 0 && om.n_chunks > 0 && (rc = check_same(out_dir, &om, shards[ref], rm)))
            goto fail;
        if (mr && mr != QR_ENOTFOUND) {
            rc = mr;
            goto fail;
        }
        qr_clear_error();
        qr_store_open_opts so = {.create = true, .map_size = o.map_size,
                                 .embedder = rm->has_embedder ? &rm->embedder : NULL, .factory = rm->factory,
                                 .vec_dtype = rm->vec_dtype, .chunk_tokens = rm->chunk_tokens,
                                 .chunk_overlap = qr_store_overlap_opt(rm->chunk_overlap), .chunk_tokenizer = rm->chunk_tokenizer};
        if ((rc = qr_store_open(out_dir, &so, &m.out)))
            goto fail;
        const qr_manifest *om2 = qr_store_manifest(m.out);
        if (sh[ref].n_docs > 0 && (rc = check_same(out_dir, om2, shards[ref], rm)))
            goto fail;
        m.dim = om2->has_embedder ? om2->embedder.dim : 0;
    }

    // 3. Every document of every shard, in path order (then shard order).
    for (size_t i = 0; i < n_shards; i++) {
        if ((rc = qr_store_txn_begin(sh[i].s, false, &sh[i].t)))
            goto fail;
        el.shard = (uint32_t)i;
        if ((rc = qr_store_iter_docs(sh[i].t, collect_doc, &el)))
            goto fail;
    }
    if (el.n)
        qsort(el.e, el.n, sizeof *el.e, cmp_entry);
    rep.shards = n_shards;

    // 4. Transactions of about commit_chunks chunks; a document is never split.
    size_t a = 0;
    while (a < el.n) {
        size_t b = a, chunks = 0;
        while (b < el.n && (b == a || chunks < o.commit_chunks)) {
            qr_store_doc d;
            if ((rc = qr_store_get_doc(sh[el.e[b].shard].t, el.e[b].doc_id, &d)))
                goto fail;
            chunks += d.n_chunks;
            b++;
        }
        /* keep a run of one path in one transaction (the later-shard-wins rule looks ahead) */
        while (b < el.n && strcmp(el.e[b - 1].path, el.e[b].path) == 0)
            b++;
        if ((rc = write_batch(&m, el.e, a, b, false, n_shards, &rep)))
            goto fail;
        QR_DEBUG("merge: %zu of %zu documents", b, el.n);
        a = b;
        if (o.progress && o.progress(b, el.n, o.progress_user)) {
            rc = qr_fail(QR_ECANCELED, "merge: stopped after %zu of %zu documents", b, el.n);
            goto fail;
        }
    }
    // 5. The file records last: a record means its documents are all there.
    if ((rc = write_batch(&m, NULL, 0, 0, true, n_shards, &rep)))
        goto fail;
    for (size_t i = 0; i < n_shards; i++) {
        qr_store_txn_abort(sh[i].t);
        sh[i].t = NULL;
    }
    // 6. vectors.faiss (tmp, fsync, rename) and the manifest counts.
    if ((rc = qr_store_sync(m.out)))
        goto fail;
    qr_store_counts oc;
    if ((rc = qr_store_counts_get(m.out, &oc)))
        goto fail;
    rep.out_docs = oc.docs;
    rep.out_chunks = oc.chunks;
    rep.out_vectors = oc.vectors;
    rep.total_s = now_s() - t0;

fail:
    qr_bm25_close(m.bm);
    qr_store_close(m.out);
    for (size_t i = 0; i < n_shards; i++) {
        qr_store_txn_abort(sh[i].t);
        qr_store_close(sh[i].s);
    }
    free(sh);
    free(el.e);
    free(m.cl.c);
    free(m.old.c);
    free(m.vecs);
    if (!rc)
        *report = rep;
    return rc;
}
