/* quire merge (index/merge.h) and ingest sharding (ingest/pipeline.h):
 * a corpus ingested as one store and as 3 shards joined by qr_merge_run must
 * give the same documents, chunks, vectors, BM25 statistics, BM25 scores and
 * dense scores (ids aside); reruns change nothing; mismatched shards are
 * refused with nothing written; the CLI exits 1 naming both embedders.
 * The shard assignment is checked against values from an independent Python
 * implementation of fnv1a64 + the splitmix64 finaliser. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/error.h"
#include "index/bm25.h"
#include "index/merge.h"
#include "index/store.h"
#include "ingest/pipeline.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/ingest/test_ingest_util.h"
#include "tests/unit/test.h"

#define MAP ((size_t)64 << 20)

static char base[256], tree[300];

static int ingest(const char *store, qr_model *m, const char *mdir, int shard, int nshards, int chunk_tokens,
                  qr_ingest_report *rep)
{
    const char *paths[] = {tree};
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.map_size = MAP;
    o.embedder = m;
    o.embedder_path = mdir;
    o.chunk.max_tokens = chunk_tokens;
    o.chunk.overlap_tokens = 8;
    o.batch = 8;
    o.shard_index = shard;
    o.shard_count = nshards;
    return qr_ingest_run(store, paths, 1, &o, rep);
}

/* A chunk's identity across stores: document path + ordinal. */
typedef struct {
    char key[600];
    float score;
} hit;

static int cmp_hit(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->key, y->key);
}

static void chunk_key(qr_store_txn *t, uint64_t id, char *key, size_t len)
{
    qr_store_chunk c;
    qr_store_doc d;
    if (qr_store_get_chunk(t, id, &c) || qr_store_get_doc(t, c.doc_id, &d)) {
        snprintf(key, len, "?");
        return;
    }
    snprintf(key, len, "%s#%u", d.path, c.ordinal);
}

/* BM25 top k (all hits) and dense top k for query, as (key, score) sorted by score then key. */
static size_t run_query(const char *dir, qr_model *m, const char *query, int dense, hit *out, size_t k)
{
    qr_store *st = NULL;
    qr_store_open_opts so = {.readonly = true, .map_size = MAP};
    if (qr_store_open(dir, &so, &st))
        return 0;
    qr_store_txn *t = NULL;
    size_t n = 0;
    if (qr_store_txn_begin(st, false, &t) == 0) {
        if (!dense) {
            qr_bm25 *bm = NULL;
            qr_bm25_hit *h = calloc(k, sizeof *h);
            if (qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm) == 0 &&
                qr_bm25_search(bm, qr_store_txn_mdb(t), query, strlen(query), k, h, &n) == 0) {
                for (size_t i = 0; i < n; i++) {
                    chunk_key(t, h[i].id, out[i].key, sizeof out[i].key);
                    out[i].score = h[i].score;
                }
            }
            qr_bm25_close(bm);
            free(h);
        } else {
            float q[64];
            const char *tx[1] = {query};
            size_t ln[1] = {strlen(query)};
            uint64_t ids[64];
            float sc[64];
            int found = 0;
            if (qr_embed_texts(m, tx, ln, 1, q) == 0 && qr_store_search(st, q, (int)k, ids, sc, &found) == 0) {
                n = (size_t)found;
                for (size_t i = 0; i < n; i++) {
                    chunk_key(t, ids[i], out[i].key, sizeof out[i].key);
                    out[i].score = sc[i];
                }
            }
        }
        qr_store_txn_abort(t);
    }
    qr_store_close(st);
    qsort(out, n, sizeof *out, cmp_hit);
    return n;
}

static void same_results(const char *a, const char *b, qr_model *m, const char *query, int dense)
{
    hit ha[512], hb[512];
    size_t k = dense ? 20 : 512; /* BM25: every hit (titles and headings are indexed too) */
    size_t na = run_query(a, m, query, dense, ha, k), nb = run_query(b, m, query, dense, hb, k);
    CHECK_MSG(na > 0 && na == nb, "%s query \"%s\": %zu vs %zu hits", dense ? "dense" : "bm25", query, na, nb);
    size_t bad = 0;
    for (size_t i = 0; i < na && i < nb; i++)
        if (strcmp(ha[i].key, hb[i].key) != 0 || fabs((double)ha[i].score - (double)hb[i].score) > 1e-6)
            bad++;
    CHECK_MSG(bad == 0, "%s query \"%s\": %zu of %zu hits differ", dense ? "dense" : "bm25", query, bad, na);
}

/* Runs $QUIRE_BIN with args; stderr to base/err. */
static int quire(const char *args)
{
    const char *bin = getenv("QUIRE_BIN");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s/out' 2>'%s/err' </dev/null", bin ? bin : "quire", args, base, base);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    /* the shard function against the independent reference */
    CHECK_INT(qr_ingest_shard_of("guide.md", 3), 1);
    CHECK_INT(qr_ingest_shard_of("page.html", 4), 2);
    CHECK_INT(qr_ingest_shard_of("records.jsonl", 3), 0);
    CHECK_INT(qr_ingest_shard_of("gen/doc07.txt", 4), 2);
    CHECK_INT(qr_ingest_shard_of("a/b/c.txt", 4), 3);
    CHECK_INT(qr_ingest_shard_of("a/b/c.txt", 1000003), 290398);
    CHECK_INT(qr_ingest_shard_of("guide.md", 1), 0);

    char tmpl[] = "/tmp/quire_merge_XXXXXX";
    if (!mkdtemp(tmpl)) {
        CHECK(0);
        return qr_test_done();
    }
    snprintf(base, sizeof base, "%s", tmpl);
    snprintf(tree, sizeof tree, "%s/corpus", base);
    char sub[400];
    snprintf(sub, sizeof sub, "%s/gen", tree);
    CHECK(mkdir(tree, 0755) == 0 && mkdir(sub, 0755) == 0);
    /* the reader fixtures (every format) and 30 generated prose files */
    static const char *fx[] = {"guide.md", "page.html", "latin1.html", "records.jsonl", "sample.c",
                               "three_pages.pdf", "image.png", "nul.txt"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        char src[300];
        snprintf(src, sizeof src, "ingest/%s", fx[i]);
        CHECK(ti_copy(FIXTURE(src), tree, fx[i]) == 0);
    }
    for (int d = 0; d < 30; d++) {
        char text[8192], name[64];
        ti_prose(text, sizeof text, d, 8 + d % 12);
        snprintf(name, sizeof name, "doc%02d.txt", d);
        CHECK(ti_write(sub, name, text) == 0);
    }

    qr_backend *be = NULL;
    qr_model *m = NULL;
    char mdir[1024];
    snprintf(mdir, sizeof mdir, "%s", FIXTURE("models/bert_minilm"));
    CHECK_OK(qr_backend_cpu_create(1, &be));
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_model_load(mdir, &mo, be, &m));
    if (!m)
        return qr_test_done();

    char one[400], sh[3][400], merged[400], out[2048];
    snprintf(one, sizeof one, "%s/one", base);
    snprintf(merged, sizeof merged, "%s/merged", base);
    qr_ingest_report r;
    CHECK_OK(ingest(one, m, mdir, 0, 0, 64, &r));
    size_t files = r.files_seen, chunks_one = r.chunks;
    CHECK_INT(files, 38);
    CHECK_INT(r.other_shards, 0);
    qr_ingest_report_free(&r);

    /* 3 shards: every file in exactly one, each shard non-empty */
    size_t seen = 0, chunks_sh = 0, seen_shard1 = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(sh[i], sizeof sh[i], "%s/shard-%d", base, i);
        CHECK_OK(ingest(sh[i], m, mdir, i, 3, 64, &r));
        CHECK(r.files_seen > 0);
        CHECK_INT(r.files_seen + r.other_shards, files);
        for (size_t f = 0; f < r.n_files; f++) {
            const char *p = r.files[f].path;
            CHECK_INT(qr_ingest_shard_of(p + strlen(tree) + 1, 3), i);
        }
        seen += r.files_seen;
        if (i == 1)
            seen_shard1 = r.files_seen;
        chunks_sh += r.chunks;
        qr_ingest_report_free(&r);
    }
    CHECK_INT(seen, files);
    CHECK_INT(chunks_sh, chunks_one);
    /* a rerun of a shard (a requeued array task) takes the same files: all unchanged */
    CHECK_OK(ingest(sh[1], m, mdir, 1, 3, 64, &r));
    CHECK_INT(r.added + r.updated, 0);
    qr_ingest_report_free(&r);

    const char *shards[] = {sh[0], sh[1], sh[2]};
    qr_merge_opts mopts = {.map_size = MAP, .commit_chunks = 16}; /* several transactions */
    qr_merge_report mr;
    CHECK_OK(qr_merge_run(merged, shards, 3, &mopts, &mr));
    CHECK_INT(mr.shards, 3);
    CHECK_INT(mr.chunks, chunks_one);
    CHECK_INT(mr.vectors, chunks_one);
    CHECK_INT(mr.out_chunks, chunks_one);
    CHECK(mr.commits > 2);

    qr_store_counts c1, c2;
    char *s1 = ti_snapshot(one, &c1), *s2 = ti_snapshot(merged, &c2);
    CHECK(s1 && s2 && strcmp(s1, s2) == 0); /* docs, chunks, spans, texts, counts, BM25 statistics */
    CHECK_INT(c1.docs, c2.docs);
    CHECK_INT(c1.chunks, c2.chunks);
    CHECK_INT(c2.vectors, c1.vectors);
    CHECK_INT(c2.faiss_vectors, (long long)c1.chunks);

    static const char *queries[] = {"slurm gpu partition", "memory limit of the batch queue", "install quire from source with meson", "record with two paragraphs",
                                    "scheduler priority reservation task", "page three text"};
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        same_results(one, merged, m, queries[q], 0);
        same_results(one, merged, m, queries[q], 1);
    }

    /* a rerun (a requeued merge job) writes nothing new */
    CHECK_OK(qr_merge_run(merged, shards, 3, &mopts, &mr));
    CHECK_INT(mr.docs, 0);
    CHECK_INT(mr.unchanged, c1.docs);
    char *s3 = ti_snapshot(merged, NULL);
    CHECK(s3 && s2 && strcmp(s2, s3) == 0);

    /* an interrupted merge (only shard 0 got in) completed by a full one equals a clean merge */
    char part[400];
    snprintf(part, sizeof part, "%s/partial", base);
    CHECK_OK(qr_merge_run(part, shards, 1, &mopts, &mr));
    CHECK_OK(qr_merge_run(part, shards, 3, &mopts, &mr));
    char *s4 = ti_snapshot(part, NULL);
    CHECK(s4 && s1 && strcmp(s1, s4) == 0);
    for (size_t q = 0; q < 2; q++)
        same_results(one, part, m, queries[q], 0);

    /* refusals: other chunking, no embedder, the output as a shard; nothing written */
    char other[400], bm25only[400], bad[400];
    snprintf(other, sizeof other, "%s/chunk48", base);
    snprintf(bm25only, sizeof bm25only, "%s/bm25only", base);
    snprintf(bad, sizeof bad, "%s/bad", base);
    CHECK_OK(ingest(other, m, mdir, 0, 3, 48, &r));
    qr_ingest_report_free(&r);
    CHECK_OK(ingest(bm25only, NULL, NULL, 1, 3, 64, &r));
    qr_ingest_report_free(&r);
    const char *mix1[] = {sh[0], other};
    CHECK_INT(qr_merge_run(bad, mix1, 2, &mopts, &mr), QR_EMISMATCH);
    CHECK_MSG(strstr(qr_last_error(), "chunking differs") != NULL, "%s", qr_last_error());
    const char *mix2[] = {sh[0], bm25only};
    CHECK_INT(qr_merge_run(bad, mix2, 2, &mopts, &mr), QR_EMISMATCH);
    CHECK_MSG(strstr(qr_last_error(), "embedder differs") != NULL, "%s", qr_last_error());
    struct stat stt;
    CHECK(stat(bad, &stt) != 0); /* nothing created */
    const char *self[] = {sh[0], merged};
    CHECK_INT(qr_merge_run(merged, self, 2, &mopts, &mr), QR_EINVAL);

    /* the CLI: another embedder (a copy of the model with a changed config.json hashes differently) */
    char m2[400], args[3000];
    snprintf(m2, sizeof m2, "%s/model2", base);
    snprintf(args, sizeof args, "cp -r '%s' '%s' && printf '\\n' >> '%s/config.json'", mdir, m2, m2);
    CHECK(system(args) == 0);
    char sh_other[400];
    snprintf(sh_other, sizeof sh_other, "%s/shard-other", base);
    snprintf(args, sizeof args, "ingest '%s/gen' --store '%s' --embedder '%s' --chunk-tokens 64 --chunk-overlap 8",
             tree, sh_other, m2);
    CHECK_INT(quire(args), 0);
    snprintf(args, sizeof args, "merge --store '%s' '%s' '%s'", bad, sh[0], sh_other);
    CHECK_INT(quire(args), 1);
    snprintf(out, sizeof out, "%s/err", base);
    char *err = qr_test_slurp(out, NULL);
    CHECK_MSG(err && strstr(err, "quire merge: merge: embedder differs") && strstr(err, sh[0]) &&
                  strstr(err, sh_other) && strstr(err, "model2"),
              "%s", err ? err : "(none)");
    free(err);
    CHECK(stat(bad, &stt) != 0);
    CHECK_INT(quire("merge"), 2);

    /* and a good merge through the CLI, --json */
    snprintf(args, sizeof args, "merge --store '%s/cli' '%s' '%s' '%s' --json", base, sh[2], sh[0], sh[1]);
    CHECK_INT(quire(args), 0);
    snprintf(out, sizeof out, "%s/out", base);
    char *js = qr_test_slurp(out, NULL);
    char want[64];
    snprintf(want, sizeof want, "\"chunks\": %zu", chunks_one);
    CHECK_MSG(js && strstr(js, want), "%s", js ? js : "(none)");
    free(js);
    snprintf(out, sizeof out, "%s/cli", base);
    char *s5 = ti_snapshot(out, NULL); /* shard order on the command line does not matter */
    CHECK(s5 && s1 && strcmp(s1, s5) == 0);
    /* ingest --shard through the CLI: bad values, auto from a Slurm array task, none */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/x' --shard 3/3", tree, base);
    CHECK_INT(quire(args), 2);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/x' --shard half", tree, base);
    CHECK_INT(quire(args), 2);
    setenv("SLURM_JOB_ID", "77", 1);
    setenv("SLURM_ARRAY_TASK_ID", "5", 1); /* --array=4-6: task 5 is shard 1 of 3 */
    setenv("SLURM_ARRAY_TASK_MIN", "4", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/auto1' --json", tree, base);
    CHECK_INT(quire(args), 0);
    snprintf(out, sizeof out, "%s/err", base);
    err = qr_test_slurp(out, NULL);
    CHECK_MSG(err && strstr(err, "shard 1/3 from the Slurm array task"), "%s", err ? err : "(none)");
    free(err);
    snprintf(out, sizeof out, "%s/out", base);
    js = qr_test_slurp(out, NULL);
    snprintf(want, sizeof want, "\"files_seen\": %zu", seen_shard1);
    CHECK_MSG(js && strstr(js, want), "want %s in %s", want, js ? js : "(none)");
    free(js);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/none' --shard none --json", tree, base);
    CHECK_INT(quire(args), 0);
    js = qr_test_slurp(out, NULL);
    snprintf(want, sizeof want, "\"files_seen\": %zu", files);
    CHECK_MSG(js && strstr(js, want), "want %s in %s", want, js ? js : "(none)");
    free(js);
    setenv("SLURM_ARRAY_TASK_ID", "9", 1); /* not in 4..6: refused, pointing at --shard */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/x'", tree, base);
    CHECK_INT(quire(args), 2);
    unsetenv("SLURM_JOB_ID");
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_MIN");
    unsetenv("SLURM_ARRAY_TASK_COUNT");

    free(s1);
    free(s2);
    free(s3);
    free(s4);
    free(s5);
    qr_model_free(m);
    qr_backend_destroy(be);
    if (!qr_test_pass || !getenv("QUIRE_KEEP_TMP"))
        ti_rmrf(base);
    return qr_test_done();
}
