/* Store round trips on the real LMDB + FAISS: docs/chunks/vectors written and
 * read back field by field; replace and delete keep LMDB counts and the FAISS
 * index in step; reopen reconciles; embedder mismatch, manifest version
 * mismatch and a corrupt manifest are refused with nothing modified;
 * HNSW and IVF-PQ stores by factory string; f16 vectors; checkpoints. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "index/store.h"
#include "index/vecindex.h"
#include "tests/unit/test.h"

#define D 8

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static qr_embedder_id emb(const char *hash, int dim)
{
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    snprintf(e.model, sizeof e.model, "/models/mini");
    snprintf(e.hash, sizeof e.hash, "%s", hash);
    e.dim = dim;
    snprintf(e.pooling, sizeof e.pooling, "mean");
    e.normalize = true;
    return e;
}

/* Unit vector along axis a (mod D) with a small tilt b: distinct, known neighbours. */
static void unitvec(float *v, int a, float tilt)
{
    memset(v, 0, D * sizeof *v);
    v[a % D] = 1.0f;
    v[(a + 1) % D] = tilt;
    float n = sqrtf(1.0f + tilt * tilt);
    v[a % D] /= n;
    v[(a + 1) % D] /= n;
}

/* Adds doc path with n chunks "path#i", chunk i's vector unitvec(seed+i, 0.1*i). */
static int add_doc(qr_store *s, const char *path, int n, int seed, uint64_t *first)
{
    qr_store_txn *t = NULL;
    qr_store_chunk ch[16];
    char text[16][64];
    float vec[16 * D];
    memset(ch, 0, sizeof ch);
    for (int i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "%s#%d", path, i);
        ch[i].text = text[i];
        ch[i].text_len = strlen(text[i]);
        ch[i].byte_start = (uint64_t)i * 100;
        ch[i].byte_end = (uint64_t)i * 100 + 99;
        ch[i].page = i + 1;
        ch[i].heading = "Intro > Part";
        ch[i].ordinal = (uint32_t)i;
        unitvec(vec + i * D, seed + i, 0.1f * (float)i);
    }
    qr_store_doc d = {.path = path, .hash = "h1", .mtime_ns = 123456789, .size = 4242, .title = "T",
                      .format = "md", .meta_json = "{\"k\":\"v\"}"};
    int rc = qr_store_txn_begin(s, true, &t);
    if (!rc)
        rc = qr_store_put_doc(t, &d, ch, (size_t)n, vec, NULL, first);
    if (rc) {
        qr_store_txn_abort(t);
        return rc;
    }
    return qr_store_txn_commit(t);
}

static int count_fn(const qr_store_chunk *c, void *user)
{
    (*(int *)user)++;
    return 0;
}

/* Doc ids seen by qr_store_iter_docs_from, in order (at most 8). */
typedef struct {
    uint64_t ids[8];
    int n;
} id_seen;

static int see_doc(const qr_store_doc *d, void *user)
{
    id_seen *a = user;
    if (a->n < 8)
        a->ids[a->n] = d->id;
    a->n++;
    return 0;
}

static void check_from(qr_store *s, uint64_t first, int n, uint64_t id0)
{
    qr_store_txn *t = NULL;
    id_seen a = {{0}, 0};
    CHECK_OK(qr_store_txn_begin(s, false, &t));
    CHECK_OK(qr_store_iter_docs_from(t, first, see_doc, &a));
    qr_store_txn_abort(t);
    CHECK_MSG(a.n == n && (n == 0 || a.ids[0] == id0), "from %llu: %d docs, first %llu (want %d, %llu)",
              (unsigned long long)first, a.n, (unsigned long long)a.ids[0], n, (unsigned long long)id0);
    for (int i = 1; i < a.n && i < 8; i++)
        CHECK(a.ids[i] > a.ids[i - 1]);
}

/* Every LMDB vector must be found by itself as top-1; FAISS holds nothing else. */
static void check_consistent(qr_store *s)
{
    qr_store_counts c;
    CHECK_OK(qr_store_counts_get(s, &c));
    CHECK_INT(c.faiss_vectors, (int64_t)c.vectors);
}

int main(void)
{
    char dir[] = "/tmp/qr_storeXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sdir[256];
    snprintf(sdir, sizeof sdir, "%s/s", dir);
    qr_embedder_id e = emb("fnv1a64:00000000000000aa", D);

    /* Opening a missing store without create fails and creates nothing. */
    qr_store *s = NULL;
    qr_store_open_opts ro = {.readonly = true};
    CHECK_INT(qr_store_open(sdir, &ro, &s), QR_ENOTFOUND);
    struct stat st;
    CHECK(stat(sdir, &st) != 0);

    qr_store_open_opts op = {.create = true, .embedder = &e, .chunk_tokens = 128, .chunk_overlap = 16,
                             .chunk_tokenizer = "bert-base-uncased"};
    CHECK_OK(qr_store_open(sdir, &op, &s));
    if (!s)
        return qr_test_done();
    uint64_t first_a = 0, first_b = 0;
    CHECK_OK(add_doc(s, "docs/a.md", 3, 0, &first_a));
    CHECK_OK(add_doc(s, "docs/b.md", 4, 3, &first_b));
    CHECK_INT(first_a, 1);
    CHECK_INT(first_b, 4);

    /* Round trip of every field. */
    qr_store_txn *t = NULL;
    CHECK_OK(qr_store_txn_begin(s, false, &t));
    qr_store_doc d;
    CHECK_OK(qr_store_doc_by_path(t, "docs/b.md", &d));
    CHECK_INT(d.id, 2);
    CHECK(strcmp(d.path, "docs/b.md") == 0 && strcmp(d.hash, "h1") == 0 && strcmp(d.title, "T") == 0);
    CHECK(strcmp(d.format, "md") == 0 && strcmp(d.meta_json, "{\"k\":\"v\"}") == 0);
    CHECK_INT(d.mtime_ns, 123456789);
    CHECK_INT(d.size, 4242);
    CHECK_INT(d.n_chunks, 4);
    qr_store_chunk c;
    CHECK_OK(qr_store_get_chunk(t, first_b + 2, &c));
    CHECK_INT(c.doc_id, 2);
    CHECK(strcmp(c.text, "docs/b.md#2") == 0);
    CHECK_INT(c.text_len, 11);
    CHECK_INT(c.byte_start, 200);
    CHECK_INT(c.byte_end, 299);
    CHECK_INT(c.page, 3);
    CHECK_INT(c.ordinal, 2);
    CHECK(strcmp(c.heading, "Intro > Part") == 0);
    float v[D], want[D];
    CHECK_OK(qr_store_get_vector(t, first_b + 2, v));
    unitvec(want, 5, 0.2f);
    CHECK(memcmp(v, want, sizeof v) == 0);
    int n = 0;
    CHECK_OK(qr_store_iter_chunks(t, count_fn, &n));
    CHECK_INT(n, 7);
    n = 0;
    CHECK_OK(qr_store_doc_chunks(t, 1, count_fn, &n));
    CHECK_INT(n, 3);
    CHECK_INT(qr_store_doc_by_path(t, "docs/zzz.md", &d), QR_ENOTFOUND);
    CHECK_INT(qr_store_put_doc(t, &d, NULL, 0, NULL, NULL, NULL), QR_EINVAL); /* read-only txn */
    qr_store_txn_abort(t);
    /* documents from an id on (the service's pages): ids 1 and 2 */
    check_from(s, 0, 2, 1);
    check_from(s, 1, 2, 1);
    check_from(s, 2, 1, 2);
    check_from(s, 3, 0, 0);
    check_from(s, UINT64_MAX, 0, 0);

    /* Search: each chunk's own vector is its top hit, score 1 (inner product). */
    uint64_t ids[4];
    float sc[4];
    int found = 0;
    unitvec(want, 3 + 1, 0.1f); /* b.md chunk 1 -> id first_b + 1 */
    CHECK_OK(qr_store_search(s, want, 4, ids, sc, &found));
    CHECK_INT(found, 4);
    CHECK_INT(ids[0], first_b + 1);
    CHECK_NEAR(sc[0], 1.0, 1e-5);

    /* Replace b.md with 2 chunks: doc id kept, new chunk ids, old vectors gone from FAISS. */
    uint64_t first_b2 = 0;
    CHECK_OK(add_doc(s, "docs/b.md", 2, 3, &first_b2));
    CHECK_INT(first_b2, 8);
    qr_store_counts cnt;
    CHECK_OK(qr_store_counts_get(s, &cnt));
    CHECK_INT(cnt.docs, 2);
    CHECK_INT(cnt.chunks, 5);
    CHECK_INT(cnt.vectors, 5);
    CHECK_INT(cnt.faiss_vectors, 5);
    unitvec(want, 3, 0.0f);
    CHECK_OK(qr_store_search(s, want, 1, ids, sc, &found));
    CHECK_INT(ids[0], first_b2);
    CHECK_OK(qr_store_txn_begin(s, false, &t));
    CHECK_OK(qr_store_doc_by_path(t, "docs/b.md", &d));
    CHECK_INT(d.id, 2);
    CHECK_INT(d.n_chunks, 2);
    CHECK_INT(qr_store_get_chunk(t, first_b + 3, &c), QR_ENOTFOUND);
    qr_store_txn_abort(t);

    /* Delete a.md; an aborted delete changes nothing. */
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_store_delete_path(t, "docs/b.md"));
    qr_store_txn_abort(t);
    CHECK_OK(qr_store_counts_get(s, &cnt));
    CHECK_INT(cnt.chunks, 5);
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_store_delete_path(t, "docs/a.md"));
    CHECK_INT(qr_store_delete_path(t, "docs/a.md"), QR_ENOTFOUND);
    CHECK_OK(qr_store_ckpt_put(t, "ingest/run", "abc", 3));
    CHECK_OK(qr_store_txn_commit(t));
    CHECK_OK(qr_store_counts_get(s, &cnt));
    CHECK_INT(cnt.docs, 1);
    check_from(s, 1, 1, 2); /* a.md (id 1) is gone: the range starts at the next id */
    CHECK_INT(cnt.chunks, 2);
    CHECK_INT(cnt.vectors, 2);
    CHECK_INT(cnt.faiss_vectors, 2);
    unitvec(want, 0, 0.0f);
    CHECK_OK(qr_store_search(s, want, 10, ids, sc, &found));
    CHECK_INT(found, 2);
    CHECK(ids[0] >= first_b2 && ids[1] >= first_b2);
    uint64_t gen = cnt.generation;
    qr_store_close(s);

    /* Manifest reflects the counts; reopen keeps everything and checkpoints. */
    qr_manifest m;
    CHECK_OK(qr_manifest_read(sdir, &m));
    CHECK_INT(m.n_docs, 1);
    CHECK_INT(m.n_chunks, 2);
    CHECK_INT(m.n_vectors, 2);
    CHECK_INT(m.generation, gen);
    CHECK_INT(m.chunk_tokens, 128);
    CHECK(strcmp(m.chunk_tokenizer, "bert-base-uncased") == 0);
    s = NULL;
    CHECK_OK(qr_store_open(sdir, &op, &s));
    if (!s)
        return qr_test_done();
    check_consistent(s);
    CHECK_OK(qr_store_txn_begin(s, false, &t));
    const void *cv;
    size_t cl;
    CHECK_OK(qr_store_ckpt_get(t, "ingest/run", &cv, &cl));
    CHECK(cl == 3 && memcmp(cv, "abc", 3) == 0);
    qr_store_txn_abort(t);

    /* A second writer is refused while the first holds the store. */
    qr_store *s2 = NULL;
    CHECK_INT(qr_store_open(sdir, &op, &s2), QR_EIO);
    qr_store_close(s);

    /* vectors.faiss deleted behind our back: rebuilt from LMDB on open. */
    char fp[300];
    snprintf(fp, sizeof fp, "%s/vectors.faiss", sdir);
    CHECK(unlink(fp) == 0);
    s = NULL;
    CHECK_OK(qr_store_open(sdir, &op, &s));
    check_consistent(s);
    qr_store_close(s);
    CHECK(stat(fp, &st) == 0);
    /* Garbage vectors.faiss: same. */
    FILE *f = fopen(fp, "wb");
    fputs("garbage", f);
    fclose(f);
    s = NULL;
    CHECK_OK(qr_store_open(sdir, &op, &s));
    CHECK_OK(qr_store_counts_get(s, &cnt));
    CHECK_INT(cnt.faiss_vectors, 2);
    qr_store_close(s);

    /* Different embedder: refused, message names both hashes. */
    qr_embedder_id e2 = emb("fnv1a64:00000000000000bb", D);
    qr_store_open_opts op2 = {.embedder = &e2};
    s = NULL;
    CHECK_INT(qr_store_open(sdir, &op2, &s), QR_EMISMATCH);
    CHECK(strstr(qr_last_error(), "00aa") && strstr(qr_last_error(), "00bb"));
    qr_embedder_id e3 = emb("fnv1a64:00000000000000aa", D + 1);
    op2.embedder = &e3;
    CHECK_INT(qr_store_open(sdir, &op2, &s), QR_EMISMATCH);

    /* Manifest version mismatch and corruption: refused, files untouched. */
    char mp[300], saved[8192], now[8192];
    snprintf(mp, sizeof mp, "%s/manifest.json", sdir);
    f = fopen(mp, "rb");
    size_t sl = fread(saved, 1, sizeof saved, f);
    fclose(f);
    char *ver = strstr(saved, "\"version\": 1");
    CHECK(ver != NULL);
    if (ver) {
        char bumped[8192];
        memcpy(bumped, saved, sl);
        bumped[ver - saved + 11] = '7';
        f = fopen(mp, "wb");
        fwrite(bumped, 1, sl, f);
        fclose(f);
        CHECK_INT(qr_store_open(sdir, &op, &s), QR_EUNSUPPORTED);
        CHECK(strstr(qr_last_error(), "version 7") != NULL);
    }
    struct stat before, after;
    char lp[300];
    snprintf(lp, sizeof lp, "%s/meta.lmdb", sdir);
    stat(lp, &before);
    f = fopen(mp, "wb");
    fwrite(saved, 1, sl / 2, f); /* truncated JSON */
    fclose(f);
    CHECK_INT(qr_store_open(sdir, &op, &s), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "manifest.json") != NULL);
    stat(lp, &after);
    CHECK(before.st_mtime == after.st_mtime && before.st_size == after.st_size);
    f = fopen(mp, "rb");
    size_t nl = fread(now, 1, sizeof now, f);
    fclose(f);
    CHECK(nl == sl / 2 && memcmp(now, saved, nl) == 0);
    f = fopen(mp, "wb");
    fwrite(saved, 1, sl, f);
    fclose(f);

    /* Re-embed: a new embedder drops vectors; put them back one by one. */
    s = NULL;
    CHECK_OK(qr_store_open(sdir, NULL, &s));
    qr_embedder_id e4 = emb("fnv1a64:00000000000000cc", 4);
    e4.normalize = false;
    CHECK_OK(qr_store_set_embedder(s, &e4));
    CHECK_OK(qr_store_counts_get(s, &cnt));
    CHECK_INT(cnt.vectors, 0);
    CHECK_INT(cnt.chunks, 2);
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    float v4[4] = {1, 2, 3, 4}, v5[4] = {-1, 0, 0, 0};
    CHECK_OK(qr_store_put_vector(t, first_b2, v4));
    CHECK_OK(qr_store_put_vector(t, first_b2 + 1, v5));
    CHECK_OK(qr_store_txn_commit(t));
    float q4[4] = {1, 2, 3, 5};
    CHECK_OK(qr_store_search(s, q4, 2, ids, sc, &found));
    CHECK_INT(found, 2);
    CHECK_INT(ids[0], first_b2);
    CHECK_NEAR(sc[0], 1.0, 1e-6); /* squared L2 */
    CHECK_NEAR(sc[1], 4 + 4 + 9 + 25, 1e-4);
    qr_store_close(s);
    CHECK_OK(qr_manifest_read(sdir, &m));
    CHECK(strcmp(m.metric, "l2") == 0 && m.embedder.dim == 4 && m.n_vectors == 2);
    rm_rf(sdir);

    /* BM25-only store: no vectors; adopting an embedder later works while empty only. */
    qr_store_open_opts nb = {.create = true};
    s = NULL;
    CHECK_OK(qr_store_open(sdir, &nb, &s));
    CHECK_INT(qr_store_search(s, v, 1, ids, sc, &found), QR_EINVAL);
    qr_store_doc d0 = {.path = "x.txt", .hash = "h", .format = "txt"};
    qr_store_chunk c0 = {.text = "hello", .text_len = 5};
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_INT(qr_store_put_doc(t, &d0, &c0, 1, v, NULL, NULL), QR_EINVAL);
    CHECK_OK(qr_store_put_doc(t, &d0, &c0, 1, NULL, NULL, NULL));
    CHECK_OK(qr_store_txn_commit(t));
    qr_store_close(s);
    CHECK_INT(qr_store_open(sdir, &op, &s), QR_EMISMATCH);
    CHECK(strstr(qr_last_error(), "re-embed") != NULL);
    rm_rf(sdir);

    /* HNSW, IVF-PQ (trained on the store's vectors at sync) and f16 storage:
     * 8 well-separated clusters of 40 points; querying a centre returns its cluster. */
    const char *factories[] = {"HNSW16", "IVF4,PQ4x4", "Flat"};
    for (int fi = 0; fi < 3; fi++) {
        qr_embedder_id el = emb("fnv1a64:0000000000000011", D);
        el.normalize = false;
        qr_store_open_opts oc = {.create = true, .embedder = &el, .factory = factories[fi],
                                 .vec_dtype = fi == 2 ? "f16" : "f32"};
        s = NULL;
        CHECK_OK(qr_store_open(sdir, &oc, &s));
        if (!s)
            continue;
        for (int cl = 0; cl < 8; cl++) {
            qr_store_chunk ch[40];
            float x[40 * D];
            char path[32];
            memset(ch, 0, sizeof ch);
            for (int i = 0; i < 40; i++) {
                ch[i].text = "t";
                ch[i].text_len = 1;
                for (int j = 0; j < D; j++)
                    x[i * D + j] = (j == cl ? 100.0f : 0.0f) + 0.01f * (float)((i * 7 + j * 3) % 11);
            }
            snprintf(path, sizeof path, "c%d", cl);
            qr_store_doc dc = {.path = path, .format = "txt"};
            CHECK_OK(qr_store_txn_begin(s, true, &t));
            CHECK_OK(qr_store_put_doc(t, &dc, ch, 40, x, NULL, NULL));
            CHECK_OK(qr_store_txn_commit(t));
        }
        /* Delete cluster 5 (HNSW rebuilds, IVF removes). */
        CHECK_OK(qr_store_txn_begin(s, true, &t));
        CHECK_OK(qr_store_delete_path(t, "c5"));
        CHECK_OK(qr_store_txn_commit(t));
        CHECK_OK(qr_store_sync(s));
        CHECK_OK(qr_store_counts_get(s, &cnt));
        CHECK_MSG(cnt.faiss_vectors == 280, "%s: faiss %lld", factories[fi], (long long)cnt.faiss_vectors);
        int good = 0;
        for (int cl = 0; cl < 8; cl++) {
            float q[D] = {0};
            uint64_t got[40];
            float gs[40];
            q[cl] = 100.0f;
            CHECK_OK(qr_store_search(s, q, 40, got, gs, &found));
            int ok = 1;
            for (int i = 0; i < found; i++)
                ok &= cl == 5 ? (got[i] - 1) / 40 != 5 : (got[i] - 1) / 40 == (uint64_t)cl;
            good += ok && found == 40;
        }
        CHECK_MSG(good == 8, "%s: %d of 8 clusters exact", factories[fi], good);
        /* Switch the index type in place: rebuilt from LMDB, same exact clusters. */
        CHECK_INT(qr_store_set_factory(s, "Bogus99"), QR_EINVAL);
        CHECK(strcmp(qr_store_manifest(s)->factory, factories[fi]) == 0);
        CHECK_OK(qr_store_set_factory(s, fi == 0 ? "Flat" : "HNSW8"));
        CHECK_OK(qr_store_counts_get(s, &cnt));
        CHECK_INT(cnt.faiss_vectors, 280);
        {
            float q[D] = {0};
            uint64_t got[40];
            float gs[40];
            int ok = 1;
            q[2] = 100.0f;
            CHECK_OK(qr_store_search(s, q, 40, got, gs, &found));
            for (int i = 0; i < found; i++)
                ok &= (got[i] - 1) / 40 == 2;
            CHECK(ok && found == 40);
        }
        qr_store_close(s);
        /* Reopen read-only: same answers from the saved file. */
        s = NULL;
        CHECK_OK(qr_store_open(sdir, &ro, &s));
        check_consistent(s);
        qr_store_close(s);
        rm_rf(sdir);
    }

    /* IVF with too few vectors to train: searches scan LMDB exactly meanwhile. */
    {
        qr_embedder_id el = emb("fnv1a64:0000000000000022", D);
        el.normalize = false;
        qr_store_open_opts oc = {.create = true, .embedder = &el, .factory = "IVF4,PQ4x4"};
        s = NULL;
        CHECK_OK(qr_store_open(sdir, &oc, &s));
        qr_store_chunk ch[10];
        float x[10 * D];
        memset(ch, 0, sizeof ch);
        for (int i = 0; i < 10; i++) {
            ch[i].text = "t";
            ch[i].text_len = 1;
            for (int j = 0; j < D; j++)
                x[i * D + j] = (float)(i * 10 + j);
        }
        qr_store_doc dc = {.path = "few", .format = "txt"};
        CHECK_OK(qr_store_txn_begin(s, true, &t));
        CHECK_OK(qr_store_put_doc(t, &dc, ch, 10, x, NULL, NULL));
        CHECK_OK(qr_store_txn_commit(t));
        float q[D];
        for (int j = 0; j < D; j++)
            q[j] = (float)(30 + j) + 1.0f; /* nearest: chunk 4 (i=3), then i=4 */
        uint64_t got[3];
        float gs[3];
        CHECK_OK(qr_store_search(s, q, 3, got, gs, &found));
        CHECK_INT(found, 3);
        CHECK_INT(got[0], 4);
        CHECK_INT(got[1], 5);
        CHECK_NEAR(gs[0], (double)D, 1e-4);               /* 8 x 1^2 */
        CHECK_NEAR(gs[1], (double)D * 81.0, 1e-2);        /* 8 x 9^2 */
        qr_store_close(s);
        rm_rf(sdir);
    }

    /* A full LMDB map: the write fails with QR_ELIMIT, abort grows the map, the retry succeeds. */
    {
        qr_store_open_opts om = {.create = true, .map_size = (size_t)1 << 20};
        s = NULL;
        CHECK_OK(qr_store_open(sdir, &om, &s));
        static char big[256 * 1024];
        memset(big, 'x', sizeof big - 1);
        qr_store_chunk cb = {.text = big, .text_len = sizeof big - 1};
        int full = 0, retried_ok = 0;
        for (int i = 0; i < 12 && s; i++) {
            char path[32];
            snprintf(path, sizeof path, "big%d", i);
            qr_store_doc db = {.path = path, .format = "txt"};
            for (int attempt = 0; attempt < 3; attempt++) {
                t = NULL;
                CHECK_OK(qr_store_txn_begin(s, true, &t));
                int rc = qr_store_put_doc(t, &db, &cb, 1, NULL, NULL, NULL);
                if (rc == 0)
                    rc = qr_store_txn_commit(t);
                else
                    qr_store_txn_abort(t);
                if (rc == 0) {
                    retried_ok += attempt > 0;
                    break;
                }
                CHECK_INT(rc, QR_ELIMIT);
                full++;
            }
        }
        CHECK(full >= 1);
        CHECK(retried_ok >= 1);
        CHECK_OK(qr_store_counts_get(s, &cnt));
        CHECK_INT(cnt.docs, 12);
        qr_store_close(s);
        rm_rf(sdir);
    }

    rm_rf(dir);
    return qr_test_done();
}
