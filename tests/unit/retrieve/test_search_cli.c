/* `quire search` end to end on a BM25 store built here: --json results are
 * index/bm25's ranking (ids, scores, paths), filters narrow them, human output
 * shows rank, file, page, heading and snippet; exit codes for a missing store
 * (4), bad k / filter / missing query (2). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/error.h"
#include "generate/extract.h"
#include "index/bm25.h"
#include "index/store.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

static const char *TEXTS[][2] = {
    {"docs/a.md", "Request two GPUs for a batch job with --gres=gpu:2."},
    {"docs/b.md", "Memory per node is set with --mem in the batch script."},
    {"guide/c.txt", "The time limit of a job is set with --time."},
    {"guide/d.txt", "GPU types: gpu:a100:2 requests two A100 GPUs for the job."},
};
#define N 4

static char out_buf[1 << 16];

/* Runs cmd, captures stdout into out_buf; returns the exit code. */
static int run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    const char *bin = getenv("QUIRE_BIN");
    if (!bin) {
        fprintf(stderr, "QUIRE_BIN not set\n");
        return 1;
    }
    char dir[] = "/tmp/qr_search_cli_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(dir, &oo, &s));
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    uint64_t ids[N];
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
    for (int i = 0; i < N; i++) {
        qr_store_chunk c = {.text = TEXTS[i][1], .text_len = strlen(TEXTS[i][1]), .page = i + 1,
                            .heading = "Top > Sub", .byte_end = strlen(TEXTS[i][1])};
        qr_store_doc d = {.path = TEXTS[i][0], .hash = "h", .title = "T", .format = "md",
                          .meta_json = i % 2 ? "{\"team\":\"hpc\"}" : "{\"team\":\"web\"}"};
        CHECK_OK(qr_store_put_doc(t, &d, &c, 1, NULL, NULL, &ids[i]));
        CHECK_OK(qr_bm25_add(bm, qr_store_txn_mdb(t), ids[i], c.text, c.text_len));
    }
    CHECK_OK(qr_bm25_flush(bm, qr_store_txn_mdb(t)));
    CHECK_OK(qr_store_txn_commit(t));
    /* reference ranking */
    qr_bm25_hit hits[8];
    size_t nh = 0;
    /* quire search gives BM25 the question's keywords (question words dropped,
     * "two" also as "2"), as quire ask does */
    const char *q = "How can I run a job with two GPUs?";
    char *kw = NULL;
    CHECK_OK(qr_question_keywords(q, &kw));
    CHECK_MSG(kw && !strcmp(kw, "run job with two 2 GPUs"), "keywords \"%s\"", kw ? kw : "(null)");
    CHECK_OK(qr_store_txn_begin(s, false, &t));
    CHECK_OK(qr_bm25_search(bm, qr_store_txn_mdb(t), kw ? kw : q, strlen(kw ? kw : q), 8, hits, &nh));
    free(kw);
    qr_store_txn_abort(t);
    qr_bm25_close(bm);
    qr_store_close(s);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' search '%s' --store '%s' -k 8 --mmr-lambda 1 --dup-threshold 2 --json", bin, q,
             dir);
    CHECK_INT(run(cmd), 0);
    json_error_t err;
    json_t *j = json_loads(out_buf, 0, &err);
    CHECK(j != NULL);
    json_t *a = json_object_get(j, "results");
    CHECK_INT(json_array_size(a), nh);
    for (size_t i = 0; i < nh && i < json_array_size(a); i++) {
        json_t *r = json_array_get(a, i);
        CHECK_INT(json_integer_value(json_object_get(r, "chunk_id")), hits[i].id);
        CHECK_NEAR(json_real_value(json_object_get(r, "bm25")), hits[i].score, 1e-6);
        CHECK_INT(json_integer_value(json_object_get(r, "rank")), i + 1);
        CHECK_INT(json_integer_value(json_object_get(r, "bm25_rank")), i + 1);
        CHECK(json_is_null(json_object_get(r, "dense")));
        int doc = -1;
        for (int d = 0; d < N; d++)
            if (ids[d] == hits[i].id)
                doc = d;
        CHECK(doc >= 0 && strcmp(json_string_value(json_object_get(r, "path")), TEXTS[doc][0]) == 0);
        CHECK(doc >= 0 && json_integer_value(json_object_get(r, "page")) == doc + 1);
    }
    json_decref(j);

    /* filters */
    snprintf(cmd, sizeof cmd, "'%s' search '%s' --store '%s' --filter 'path=guide/*' --filter team=hpc --json", bin,
             q, dir);
    CHECK_INT(run(cmd), 0);
    j = json_loads(out_buf, 0, &err);
    a = json_object_get(j, "results");
    CHECK_INT(json_array_size(a), 1);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(a, 0), "path")), "guide/d.txt") == 0);
    json_decref(j);

    /* human output */
    snprintf(cmd, sizeof cmd, "'%s' search 'time limit' --store '%s' -k 2 --log-level error", bin, dir);
    CHECK_INT(run(cmd), 0);
    CHECK(strncmp(out_buf, "1. [", 4) == 0);
    CHECK(strstr(out_buf, "guide/c.txt  p. 3") != NULL);
    CHECK(strstr(out_buf, "Top > Sub") != NULL);
    CHECK(strstr(out_buf, "   The time limit of a job is set with --time.") != NULL);

    /* exit codes */
    snprintf(cmd, sizeof cmd, "'%s' search q --store '%s/missing' 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 4);
    snprintf(cmd, sizeof cmd, "'%s' search q --store '%s' -k 0 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' search q --store '%s' -k 5000 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' search q --store '%s' --filter nokey 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' search --store '%s' 2>/dev/null", bin, dir);
    CHECK_INT(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' search q 2>/dev/null", bin);
    CHECK_INT(run(cmd), 2);

    /* a store with an embedder: search loads the manifest's model by itself */
    char edir[300];
    snprintf(edir, sizeof edir, "%s/emb", dir);
    const char *mp = FIXTURE("models/bert_minilm");
    qr_backend *be = NULL;
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_backend_cpu_create(1, &be));
    CHECK_OK(qr_model_load(mp, &mo, be, &m));
    if (m) {
        qr_embedder_id e;
        memset(&e, 0, sizeof e);
        snprintf(e.model, sizeof e.model, "%s", mp);
        CHECK_OK(qr_embedder_hash(mp, e.hash, sizeof e.hash));
        e.dim = qr_model_cfg(m)->d_model;
        snprintf(e.pooling, sizeof e.pooling, "%s", qr_model_cfg(m)->pooling == QR_POOL_CLS ? "cls" : "mean");
        e.normalize = qr_model_cfg(m)->normalize;
        qr_store_open_opts eo = {.create = true, .map_size = (size_t)64 << 20, .embedder = &e};
        CHECK_OK(qr_store_open(edir, &eo, &s));
        if (s) {
            CHECK_OK(qr_store_set_embedder(s, &e));
            CHECK_OK(qr_store_txn_begin(s, true, &t));
            CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
            for (int i = 0; i < N; i++) {
                float v[64];
                size_t ln = strlen(TEXTS[i][1]);
                CHECK_OK(qr_embed_texts(m, &TEXTS[i][1], &ln, 1, v));
                qr_store_chunk c = {.text = TEXTS[i][1], .text_len = ln, .byte_end = ln};
                qr_store_doc d = {.path = TEXTS[i][0], .hash = "h", .format = "md"};
                CHECK_OK(qr_store_put_doc(t, &d, &c, 1, v, NULL, &ids[i]));
                CHECK_OK(qr_bm25_add(bm, qr_store_txn_mdb(t), ids[i], c.text, c.text_len));
            }
            CHECK_OK(qr_bm25_flush(bm, qr_store_txn_mdb(t)));
            CHECK_OK(qr_store_txn_commit(t));
            qr_bm25_close(bm);
            qr_store_close(s);
        }
        snprintf(cmd, sizeof cmd, "'%s' search '%s' --store '%s' -k 4 --json --log-level error", bin, TEXTS[2][1],
                 edir);
        CHECK_INT(run(cmd), 0);
        j = json_loads(out_buf, 0, &err);
        CHECK(json_is_true(json_object_get(j, "dense")));
        a = json_object_get(j, "results");
        CHECK(json_array_size(a) >= 1);
        json_t *r0 = json_array_get(a, 0);
        CHECK_INT(json_integer_value(json_object_get(r0, "chunk_id")), ids[2]);
        CHECK_INT(json_integer_value(json_object_get(r0, "dense_rank")), 1);
        json_decref(j);
        /* another embedder named explicitly is refused (tests/fixtures/models/llama3 is no encoder) */
        snprintf(cmd, sizeof cmd, "'%s' search q --store '%s' --embedder '%s' 2>/dev/null", bin, edir,
                 FIXTURE("models/llama3"));
        CHECK(run(cmd) != 0);
        qr_model_free(m);
    }
    qr_backend_destroy(be);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return qr_test_done();
}
