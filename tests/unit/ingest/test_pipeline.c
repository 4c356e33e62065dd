/* Ingest pipeline on real parts (readers, chunker, LMDB store, BM25, FAISS,
 * the random-weight BERT fixture): a fixture tree BM25-only and with an
 * embedder; unchanged re-ingest is a no-op; modify / remove / prune / rm;
 * prune only under the paths given and at most half the store without force;
 * embedder and chunking mismatches refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "index/bm25.h"
#include "index/store.h"
#include "ingest/chunker.h"
#include "ingest/pipeline.h"
#include "ingest/reader.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char tree[512], store[600], store2[600], store3[600];

static const qr_ingest_file *find(const qr_ingest_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_files; i++) {
        const char *slash = strrchr(r->files[i].path, '/');
        if (slash && strcmp(slash + 1, name) == 0)
            return &r->files[i];
    }
    return NULL;
}

/* The reference for a file: reader + chunker called directly. */
typedef struct {
    const char *text;
    size_t len;
    size_t i;
    int bad;
} cmp_ctx;

typedef struct {
    qr_chunk *ch;
    size_t n, i;
    const qr_doc *doc;
    int bad;
} ref_ctx;

static int cmp_chunk(const qr_store_chunk *c, void *user)
{
    ref_ctx *r = user;
    if (r->i >= r->n) {
        r->bad++;
        return 0;
    }
    const qr_chunk *e = &r->ch[r->i++];
    if (c->text_len != e->len || memcmp(c->text, r->doc->text + e->off, e->len) != 0 || c->byte_start != e->off ||
        c->byte_end != e->off + e->len || c->page != e->page || strcmp(c->heading, e->heading) != 0)
        r->bad++;
    return 0;
}

/* Checks that the store holds exactly the reference chunks of file name. */
static void check_file_chunks(qr_store *st, const qr_chunker *ck, const char *name)
{
    char path[1024], real[1024];
    snprintf(path, sizeof path, "%s/%s", tree, name);
    CHECK(realpath(path, real) != NULL);
    qr_read_result *rr = NULL;
    CHECK_OK(qr_read_file(real, NULL, &rr));
    qr_store_txn *t = NULL;
    CHECK_OK(qr_store_txn_begin(st, false, &t));
    for (size_t d = 0; rr && d < rr->n_docs; d++) {
        ref_ctx r = {.doc = &rr->docs[d]};
        CHECK_OK(qr_chunk_doc(ck, &rr->docs[d], &r.ch, &r.n));
        char dp[1100];
        if (rr->format == QR_FMT_JSONL)
            snprintf(dp, sizeof dp, "%s#L%zu", real, rr->docs[d].line_no);
        else
            snprintf(dp, sizeof dp, "%s", real);
        qr_store_doc sd;
        int rc = qr_store_doc_by_path(t, dp, &sd);
        CHECK_MSG(rc == 0, "%s not in store", dp);
        if (rc == 0) {
            CHECK_INT(sd.n_chunks, r.n);
            CHECK_OK(qr_store_doc_chunks(t, sd.id, cmp_chunk, &r));
            CHECK_MSG(r.bad == 0 && r.i == r.n, "%s: %d chunks differ", dp, r.bad);
        }
        free(r.ch);
    }
    qr_store_txn_abort(t);
    qr_read_result_free(rr);
}

static size_t bm25_hits(const char *dir, const char *query)
{
    qr_store *st = NULL;
    qr_store_open_opts o = {.readonly = true, .skip_vectors = true, .map_size = (size_t)64 << 20};
    if (qr_store_open(dir, &o, &st))
        return (size_t)-1;
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    size_t n = 0;
    qr_bm25_hit hits[64];
    if (qr_store_txn_begin(st, false, &t) == 0 && qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm) == 0)
        qr_bm25_search(bm, qr_store_txn_mdb(t), query, strlen(query), 64, hits, &n);
    qr_bm25_close(bm);
    qr_store_txn_abort(t);
    qr_store_close(st);
    return n;
}

static void make_tree(void)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/docs/deep", tree);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s/.git'", p, tree);
    CHECK(system(cmd) == 0);
    static const char *fx[] = {"guide.md", "page.html", "records.jsonl", "sample.c", "three_pages.pdf",
                               "image.png", "nul.txt", "invalid_utf8.txt", "latin1.html"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++)
        {
        char src[1024];
        snprintf(src, sizeof src, "ingest/%s", fx[i]);
        CHECK(ti_copy(FIXTURE(src), tree, fx[i]) == 0);
    }
    static char big[40000];
    for (int d = 0; d < 6; d++) {
        char name[64];
        ti_prose(big, sizeof big, d, 20 + d * 15);
        snprintf(name, sizeof name, "docs/deep/note%d.txt", d);
        CHECK(ti_write(tree, name, big) == 0);
    }
    CHECK(ti_write(tree, "docs/zebra.md", "# Zebra\n\nThe quagga zebra lives in the savanna.\n") == 0);
    CHECK(ti_write(tree, ".git/config", "hidden file, must not be ingested\n") == 0);
    CHECK(ti_write(tree, ".hidden.txt", "hidden too\n") == 0);
    /* a symlink loop and a link to a file already walked */
    snprintf(p, sizeof p, "%s/docs/deep/loop", tree);
    CHECK(symlink("../..", p) == 0);
    snprintf(p, sizeof p, "%s/docs/alias.md", tree);
    CHECK(symlink("zebra.md", p) == 0);
}

static void test_bm25_only(void)
{
    const char *paths[] = {tree};
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.map_size = (size_t)64 << 20;
    o.commit_chunks = 5; /* several transactions */
    o.jobs = 3;
    qr_ingest_report r;
    CHECK_OK(qr_ingest_run(store, paths, 1, &o, &r));
    /* readable: guide.md page.html records.jsonl sample.c three_pages.pdf invalid_utf8.txt latin1.html
     * note0..5 zebra.md alias.md (a second name: a separate document) = 15; skipped: image.png nul.txt */
    CHECK_INT(r.added, 15);
    CHECK_INT(r.skipped, 2);
    CHECK_INT(r.updated + r.unchanged + r.removed, 0);
    CHECK(r.commits > 2);
    const qr_ingest_file *f = find(&r, "image.png");
    CHECK(f && f->status == QR_INGEST_SKIPPED && f->reason && strncmp(f->reason, "binary", 6) == 0);
    f = find(&r, "nul.txt");
    CHECK(f && f->status == QR_INGEST_SKIPPED && f->reason && strstr(f->reason, "NUL"));
    CHECK(find(&r, "config") == NULL && find(&r, ".hidden.txt") == NULL);
    f = find(&r, "records.jsonl");
    CHECK(f && f->status == QR_INGEST_ADDED && f->docs == 3 && f->n_warnings == 3);
    f = find(&r, "invalid_utf8.txt");
    CHECK(f && f->status == QR_INGEST_ADDED);
    size_t chunks = r.chunks, docs = r.docs;
    CHECK_INT(docs, 17); /* 14 files + 3 JSONL records */

    /* contents equal the reader + chunker called directly */
    qr_store *st = NULL;
    qr_store_open_opts so = {.readonly = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(store, &so, &st));
    if (!st) {
        qr_ingest_report_free(&r);
        return;
    }
    /* the report's doc ids name the documents each file wrote: the file's own
     * path, or FILE#L<n> for a JSONL record; 17 distinct ids in all */
    {
        qr_store_txn *t = NULL;
        CHECK_OK(qr_store_txn_begin(st, false, &t));
        uint64_t seen[32];
        size_t n_seen = 0;
        for (size_t i = 0; t && i < r.n_files; i++) {
            const qr_ingest_file *rf = &r.files[i];
            CHECK(rf->status == QR_INGEST_ADDED ? rf->doc_ids != NULL : rf->doc_ids == NULL);
            for (size_t d = 0; rf->doc_ids && d < rf->docs; d++) {
                qr_store_doc sd;
                CHECK_OK(qr_store_get_doc(t, rf->doc_ids[d], &sd));
                size_t pl = strlen(rf->path);
                bool jsonl = strstr(rf->path, ".jsonl") != NULL;
                CHECK_MSG(strncmp(sd.path, rf->path, pl) == 0 &&
                              (jsonl ? strncmp(sd.path + pl, "#L", 2) == 0 : sd.path[pl] == '\0'),
                          "doc %llu of %s is %s", (unsigned long long)rf->doc_ids[d], rf->path, sd.path);
                for (size_t k = 0; k < n_seen; k++)
                    CHECK(seen[k] != rf->doc_ids[d]);
                if (n_seen < 32)
                    seen[n_seen++] = rf->doc_ids[d];
            }
        }
        CHECK_INT(n_seen, 17);
        qr_store_txn_abort(t);
    }
    qr_ingest_report_free(&r);
    qr_chunker *ck = NULL;
    CHECK_OK(qr_chunker_create(NULL, NULL, &ck));
    static const char *names[] = {"guide.md", "page.html", "records.jsonl", "sample.c", "three_pages.pdf",
                                  "invalid_utf8.txt", "latin1.html", "docs/deep/note3.txt", "docs/zebra.md"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_file_chunks(st, ck, names[i]);
    qr_store_counts c;
    CHECK_OK(qr_store_counts_get(st, &c));
    CHECK_INT(c.docs, docs);
    CHECK_INT(c.chunks, chunks);
    CHECK_INT(c.vectors, 0);
    uint64_t gen = c.generation;
    CHECK_INT(qr_store_manifest(st)->chunk_tokens, 256);
    CHECK(!qr_store_manifest(st)->has_embedder);
    qr_store_close(st);
    char *snap1 = ti_snapshot(store, NULL);
    CHECK(snap1 && strstr(snap1, "bm25 "));
    {
        char want[128];
        snprintf(want, sizeof want, "bm25 %zu ", chunks); /* every chunk indexed */
        CHECK(snap1 && strstr(snap1, want));
    }
    CHECK_INT(bm25_hits(store, "quagga"), 2); /* zebra.md and its alias */

    /* unchanged: nothing read, nothing written */
    CHECK_OK(qr_ingest_run(store, paths, 1, &o, &r));
    CHECK_INT(r.unchanged, 15);
    CHECK_INT(r.added + r.updated + r.removed + r.chunks + r.commits, 0);
    qr_ingest_report_free(&r);
    char *snap2 = ti_snapshot(store, &c);
    CHECK(snap1 && snap2 && strcmp(snap1, snap2) == 0);
    CHECK_INT(c.generation, gen);

    /* touched (same content, new mtime): unchanged; changed file: its chunks replaced */
    char p[1024];
    snprintf(p, sizeof p, "%s/guide.md", tree);
    CHECK(utimensat(AT_FDCWD, p, NULL, 0) == 0);
    CHECK(ti_write(tree, "docs/zebra.md", "# Okapi\n\nThe okapi lives in the rainforest.\n") == 0);
    snprintf(p, sizeof p, "%s/docs/alias.md", tree);
    CHECK(unlink(p) == 0);
    CHECK_OK(qr_ingest_run(store, paths, 1, &o, &r));
    CHECK_INT(r.updated, 1);
    CHECK_INT(r.unchanged, 13);
    CHECK_INT(r.removed, 0); /* no --prune */
    f = find(&r, "zebra.md");
    CHECK(f && f->status == QR_INGEST_UPDATED && f->chunks == 1);
    qr_ingest_report_free(&r);
    CHECK_INT(bm25_hits(store, "quagga"), 1); /* only the stale alias */
    CHECK_INT(bm25_hits(store, "okapi"), 1);

    /* --prune removes the alias */
    o.prune = true;
    CHECK_OK(qr_ingest_run(store, paths, 1, &o, &r));
    CHECK_INT(r.removed, 1);
    CHECK_INT(r.unchanged, 14);
    f = find(&r, "alias.md");
    CHECK(f && f->status == QR_INGEST_REMOVED && f->docs == 1);
    qr_ingest_report_free(&r);
    CHECK_INT(bm25_hits(store, "quagga"), 0);

    /* rm: a JSONL file (3 records), a directory, and a path not in the store */
    char jp[1024], dp[1024];
    snprintf(jp, sizeof jp, "%s/records.jsonl", tree);
    snprintf(dp, sizeof dp, "%s/docs", tree);
    const char *rmp[] = {jp, dp, "/nonexistent/file.txt"};
    CHECK_OK(qr_ingest_remove(store, rmp, 3, &r));
    CHECK_INT(r.removed, 1 + 7); /* records.jsonl, note0..5, zebra.md */
    CHECK_INT(r.skipped, 1);
    f = find(&r, "records.jsonl");
    CHECK(f && f->docs == 3);
    qr_ingest_report_free(&r);
    CHECK(qr_store_open(store, &so, &st) == 0);
    CHECK_OK(qr_store_counts_get(st, &c));
    CHECK_INT(c.docs, 6); /* guide page sample three_pages invalid_utf8 latin1 */
    qr_store_close(st);
    CHECK_INT(bm25_hits(store, "okapi"), 0);
    CHECK_INT(bm25_hits(store, "partition"), 0);
    /* chunks are indexed with their document's title: page.html ("Quire & Slurm") still matches slurm */
    CHECK_INT(bm25_hits(store, "slurm"), 1); /* page.html: one chunk (its text is far below 256 tokens) */
    /* BM25 statistics equal those of a fresh store of the same files */
    const char *six[6];
    char sixp[6][1024];
    static const char *sixn[] = {"guide.md", "page.html", "sample.c", "three_pages.pdf", "invalid_utf8.txt",
                                 "latin1.html"};
    for (int i = 0; i < 6; i++) {
        snprintf(sixp[i], sizeof sixp[i], "%s/%s", tree, sixn[i]);
        six[i] = sixp[i];
    }
    o.prune = false;
    CHECK_OK(qr_ingest_run(store3, six, 6, &o, &r));
    CHECK_INT(r.added, 6);
    qr_ingest_report_free(&r);
    char *a = ti_snapshot(store, NULL), *b = ti_snapshot(store3, NULL);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);

    /* different chunking refused */
    o.chunk.max_tokens = 128;
    int rc = qr_ingest_run(store, paths, 1, &o, &r);
    CHECK_INT(rc, QR_EMISMATCH);
    CHECK(strstr(qr_last_error(), "chunked with 256"));
    qr_chunker_destroy(ck);
    free(snap1);
    free(snap2);
}

typedef struct {
    const char *text;
    size_t len;
    uint64_t id;
} first_chunk;

static int grab_first(const qr_store_chunk *c, void *user)
{
    first_chunk *f = user;
    f->text = c->text;
    f->len = c->text_len;
    f->id = c->id;
    return 1;
}

static void test_embedder(void)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    char mdir[1024];
    snprintf(mdir, sizeof mdir, "%s", FIXTURE("models/bert_minilm"));
    CHECK_OK(qr_backend_cpu_create(2, &be));
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_model_load(mdir, &mo, be, &m));
    if (!m) {
        qr_backend_destroy(be);
        return;
    }
    const char *paths[] = {tree};
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.map_size = (size_t)64 << 20;
    o.embedder = m;
    o.embedder_path = mdir;
    o.chunk.max_tokens = 64;
    o.chunk.overlap_tokens = 8;
    o.batch = 4;
    qr_ingest_report r;
    CHECK_OK(qr_ingest_run(store2, paths, 1, &o, &r));
    CHECK(r.added >= 7);
    size_t chunks = r.chunks;
    qr_ingest_report_free(&r);
    qr_store_counts c;
    char *snap = ti_snapshot(store2, &c);
    CHECK_INT(c.chunks, chunks);
    CHECK_INT(c.vectors, chunks);
    CHECK_INT(c.faiss_vectors, (long long)chunks);
    free(snap);

    /* the tokenizer decides chunk lengths: every chunk fits 64 tokens */
    qr_store *st = NULL;
    qr_store_open_opts so = {.readonly = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(store2, &so, &st));
    if (!st)
        return;
    CHECK(qr_store_manifest(st)->has_embedder && qr_store_manifest(st)->embedder.dim == 64);
    qr_chunker *ck = NULL;
    CHECK_OK(qr_chunker_create(qr_model_tokenizer(m), &o.chunk, &ck));
    check_file_chunks(st, ck, "docs/deep/note4.txt");
    check_file_chunks(st, ck, "three_pages.pdf");
    /* a stored vector equals embedding its chunk text directly */
    qr_store_txn *t = NULL;
    CHECK_OK(qr_store_txn_begin(st, false, &t));
    first_chunk fc = {0};
    qr_store_iter_chunks(t, grab_first, &fc);
    float v[64], e[64];
    CHECK_OK(qr_store_get_vector(t, fc.id, v));
    const char *tx[1] = {fc.text};
    size_t ln[1] = {fc.len};
    CHECK_OK(qr_embed_texts(m, tx, ln, 1, e));
    double maxd = 0;
    for (int i = 0; i < 64; i++)
        maxd = fabs(v[i] - e[i]) > maxd ? fabs(v[i] - e[i]) : maxd;
    CHECK_NEAR(maxd, 0, 1e-4); /* batching pads; f32 sums may differ in the last bits */
    qr_store_txn_abort(t);
    qr_store_close(st);
    qr_chunker_destroy(ck);

    /* unchanged re-ingest with the embedder: no-op */
    CHECK_OK(qr_ingest_run(store2, paths, 1, &o, &r));
    CHECK_INT(r.added + r.updated + r.commits, 0);
    qr_ingest_report_free(&r);

    /* no embedder on an embedded store: refused; embedder on a BM25-only store: refused */
    qr_ingest_opts b;
    qr_ingest_opts_default(&b);
    b.chunk = o.chunk;
    int rc = qr_ingest_run(store2, paths, 1, &b, &r);
    CHECK_INT(rc, QR_EMISMATCH);
    CHECK(strstr(qr_last_error(), "embedded with"));
    o.chunk.max_tokens = 64;
    rc = qr_ingest_run(store3, paths, 1, &o, &r);
    CHECK_INT(rc, QR_EMISMATCH);
    CHECK(strstr(qr_last_error(), "no embedder"));
    /* another embedder (a different hash) refused */
    o.embedder_path = FIXTURE("models/llama3");
    rc = qr_ingest_run(store2, paths, 1, &o, &r);
    CHECK_INT(rc, QR_EMISMATCH);
    /* chunks longer than the encoder accepts are refused up front */
    o.embedder_path = mdir;
    o.chunk.max_tokens = 256;
    rc = qr_ingest_run(store2, paths, 1, &o, &r);
    CHECK_INT(rc, QR_EINVAL);
    qr_model_free(m);
    qr_backend_destroy(be);
}

/* --prune only under the paths given, and not more than half of the store
 * without force. Layout: a/{a1,a2,a3}.txt, ab/c1.txt (a sibling whose name
 * starts with "a": not under a), b/{b1,b2}.txt + b/recs.jsonl (3 records):
 * 9 documents in 8 files. Then a/a1.txt is deleted, ab/c1.txt too, and b is
 * renamed away (a file system not mounted here). */
static void test_prune_scope(const char *base)
{
    char root[600], a[700], ab[700], b[700], boff[700], p[800];
    snprintf(root, sizeof root, "%s/prune", base);
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(ab, sizeof ab, "%s/ab", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(boff, sizeof boff, "%s/b_unmounted", root);
    char st_dir[700];
    snprintf(st_dir, sizeof st_dir, "%s/store", root);
    CHECK(mkdir(root, 0755) == 0 && mkdir(a, 0755) == 0 && mkdir(ab, 0755) == 0 && mkdir(b, 0755) == 0);
    CHECK(ti_write(a, "a1.txt", "Alpha one.\n") == 0 && ti_write(a, "a2.txt", "Alpha two.\n") == 0 &&
          ti_write(a, "a3.txt", "Alpha three.\n") == 0 && ti_write(ab, "c1.txt", "Sibling.\n") == 0 &&
          ti_write(b, "b1.txt", "Beta one.\n") == 0 && ti_write(b, "b2.txt", "Beta two.\n") == 0);
    CHECK(ti_write(b, "recs.jsonl", "{\"text\": \"r1\"}\n{\"text\": \"r2\"}\n{\"text\": \"r3\"}\n") == 0);
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.map_size = (size_t)64 << 20;
    qr_ingest_report r;
    const char *all[] = {a, ab, b};
    CHECK_OK(qr_ingest_run(st_dir, all, 3, &o, &r));
    CHECK_INT(r.added, 7);
    CHECK_INT(r.docs, 9);
    qr_ingest_report_free(&r);

    snprintf(p, sizeof p, "%s/a1.txt", a);
    CHECK(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/c1.txt", ab);
    CHECK(unlink(p) == 0);
    CHECK(rename(b, boff) == 0);

    /* under a: only a1 goes; ab/c1 and all of b are outside a */
    o.prune = true;
    const char *only_a[] = {a};
    CHECK_OK(qr_ingest_run(st_dir, only_a, 1, &o, &r));
    CHECK_INT(r.removed, 1);
    CHECK_INT(r.unchanged, 2);
    const qr_ingest_file *f = find(&r, "a1.txt");
    CHECK(f && f->status == QR_INGEST_REMOVED && f->docs == 1);
    qr_ingest_report_free(&r);
    qr_store *st = NULL;
    qr_store_counts c;
    qr_store_open_opts so = {.readonly = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(st_dir, &so, &st));
    CHECK_OK(qr_store_counts_get(st, &c));
    CHECK_INT(c.docs, 8);
    qr_store_close(st);

    /* no path: the whole store; c1 + b's 3 files = 4 files, 1 + 5 = 6 of 8
     * documents (by files it would be 4 of 8, exactly half): refused, with
     * the counts and the flag named, and nothing removed */
    qr_clear_error();
    int rc = qr_ingest_run(st_dir, NULL, 0, &o, &r);
    CHECK_INT(rc, QR_ELIMIT);
    CHECK_STR(qr_last_error(), "ingest: --prune would remove 6 of the store's 8 documents (4 files no longer "
                               "found under the paths given), more than half: check that those paths are mounted "
                               "and readable, or pass --force to prune anyway (nothing was pruned; the files "
                               "added or updated by this run are committed)");
    CHECK_OK(qr_store_open(st_dir, &so, &st));
    CHECK_OK(qr_store_counts_get(st, &c));
    CHECK_INT(c.docs, 8);
    qr_store_close(st);
    /* the same for the gone path b itself: 5 of 8 */
    const char *only_b[] = {b};
    CHECK_INT(qr_ingest_run(st_dir, only_b, 1, &o, &r), QR_ELIMIT);
    CHECK(strstr(qr_last_error(), "remove 5 of the store's 8 documents (3 files") != NULL);

    /* force: they go */
    o.force = true;
    CHECK_OK(qr_ingest_run(st_dir, NULL, 0, &o, &r));
    CHECK_INT(r.removed, 4);
    f = find(&r, "recs.jsonl");
    CHECK(f && f->status == QR_INGEST_REMOVED && f->docs == 3);
    qr_ingest_report_free(&r);
    CHECK_OK(qr_store_open(st_dir, &so, &st));
    CHECK_OK(qr_store_counts_get(st, &c));
    CHECK_INT(c.docs, 2);
    qr_store_close(st);
}

int main(void)
{
    char tmpl[] = "/tmp/quire_pipeline_XXXXXX";
    char *base = mkdtemp(tmpl);
    CHECK(base != NULL);
    if (!base)
        return qr_test_done();
    snprintf(tree, sizeof tree, "%s/tree", base);
    snprintf(store, sizeof store, "%s/store", base);
    snprintf(store2, sizeof store2, "%s/store_emb", base);
    snprintf(store3, sizeof store3, "%s/store_fresh", base);
    make_tree();
    test_bm25_only();
    test_embedder();
    test_prune_scope(base);
    ti_rmrf(base);
    return qr_test_done();
}
