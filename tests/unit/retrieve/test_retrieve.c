/* Retrieval over real stores (LMDB + FAISS + BM25) built in a temp dir:
 *  - BM25-only search returns exactly index/bm25's own ranking and scores;
 *  - qr_rrf_fuse against a hand-computed fusion of two known rankings;
 *  - fused scores of a hybrid query equal sum w/(60 + rank) of the reported ranks;
 *  - path glob and metadata key=value filters;
 *  - MMR / duplicate suppression drops an exact duplicate (term-set Jaccard
 *    and vector cosine), and keeps it when switched off;
 *  - dense search with the random-weight MiniLM fixture: a chunk's own text
 *    finds it first with cosine 1; a different embedder is refused;
 *  - the per-document cap: the uncapped ranking minus each document's chunks
 *    past the cap, with and without MMR;
 *  - MMR against a reference written from the algorithm in retrieve.h (eager
 *    greedy selection, exact term sets as strings): the same passages in the
 *    same order over 40 queries x 8 option sets on a store with
 *    near-duplicate chunks and multi-chunk documents;
 *  - limits: k, query length, empty query, filters. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "index/analyzer.h"
#include "index/bm25.h"
#include "index/store.h"
#include "retrieve/retrieve.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

typedef struct {
    const char *path, *meta, *text;
} doc_spec;

/* One chunk per document keeps the expected rankings easy to reason about. */
static const doc_spec DOCS[] = {
    {"docs/gpu.md", "{\"lang\":\"en\",\"year\":2024}", "Request two GPUs for a batch job with --gres=gpu:2 in sbatch."},
    {"docs/gpu_copy.md", "{\"lang\":\"en\",\"year\":2023}", "Request two GPUs for a batch job with --gres=gpu:2 in sbatch."},
    {"docs/memory.md", "{\"lang\":\"en\"}", "Use --mem to request memory for a job; the batch script sets it per node."},
    {"docs/array.md", "{\"lang\":\"de\"}", "Job arrays submit many similar batch jobs with --array."},
    {"guide/partition.txt", "", "A partition groups nodes; choose one with --partition for the job."},
    {"guide/time.txt", "{\"lang\":\"en\"}", "The time limit of a job is set with --time; jobs past it are killed."},
    {"guide/gpu_types.txt", "{\"lang\":\"en\"}", "GPU types can be named in gres: gpu:a100:2 requests two A100 GPUs."},
    {"other/cooking.txt", "{\"lang\":\"en\"}", "Boil the pasta for ten minutes and add salt to the water."},
};
#define NDOCS (sizeof DOCS / sizeof DOCS[0])

/* Builds a store in dir: docs, chunks, BM25 postings and (when m) vectors. */
static int build_store(const char *dir, qr_model *m, const qr_embedder_id *e, uint64_t *chunk_ids)
{
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .map_size = (size_t)64 << 20};
    int rc = qr_store_open(dir, &oo, &s);
    if (rc)
        return rc;
    if (e && (rc = qr_store_set_embedder(s, e))) {
        qr_store_close(s);
        return rc;
    }
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    if ((rc = qr_store_txn_begin(s, true, &t)) || (rc = qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm)))
        goto fail;
    for (size_t i = 0; i < NDOCS; i++) {
        qr_store_chunk ch;
        memset(&ch, 0, sizeof ch);
        ch.text = DOCS[i].text;
        ch.text_len = strlen(DOCS[i].text);
        ch.byte_start = 0;
        ch.byte_end = ch.text_len;
        ch.page = (int32_t)i % 3;
        ch.heading = "Guide > Section";
        qr_store_doc d = {.path = DOCS[i].path, .hash = "h", .size = ch.text_len, .title = "Title",
                          .format = "md", .meta_json = DOCS[i].meta};
        float vec[64];
        if (m) {
            const char *tx[1] = {ch.text};
            size_t ln[1] = {ch.text_len};
            if ((rc = qr_embed_texts(m, tx, ln, 1, vec)))
                goto fail;
        }
        uint64_t first = 0;
        if ((rc = qr_store_put_doc(t, &d, &ch, 1, m ? vec : NULL, NULL, &first)) ||
            (rc = qr_bm25_add(bm, qr_store_txn_mdb(t), first, ch.text, ch.text_len)))
            goto fail;
        chunk_ids[i] = first;
    }
    if ((rc = qr_bm25_flush(bm, qr_store_txn_mdb(t))))
        goto fail;
    rc = qr_store_txn_commit(t);
    t = NULL;
fail:
    qr_bm25_close(bm);
    qr_store_txn_abort(t);
    qr_store_close(s);
    return rc;
}

static qr_retrieve_opts no_mmr(void)
{
    qr_retrieve_opts o;
    qr_retrieve_opts_default(&o);
    o.mmr_lambda = 1.0f;
    o.dup_threshold = 2.0f; /* off */
    return o;
}

static int find_chunk(const qr_results *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].chunk_id == id)
            return (int)i;
    return -1;
}

static void test_rrf_hand(void)
{
    /* Two rankings: A = [10, 20, 30] (weight 1), B = [30, 40, 10] (weight 0.5), k = 60.
     *   10: 1/61 + 0.5/63 = 0.0243300...   30: 1/63 + 0.5/61 = 0.0240698...
     *   20: 1/62          = 0.0161290...   40: 0.5/62       = 0.0080645...  */
    uint64_t a[] = {10, 20, 30}, b[] = {30, 40, 10};
    const uint64_t *lists[] = {a, b};
    size_t lens[] = {3, 3};
    float w[] = {1.0f, 0.5f};
    uint64_t ids[8];
    float sc[8];
    size_t n = 0;
    CHECK_OK(qr_rrf_fuse(lists, lens, w, 2, 60.0f, ids, sc, 8, &n));
    CHECK_INT(n, 4);
    CHECK_INT(ids[0], 10);
    CHECK_INT(ids[1], 30);
    CHECK_INT(ids[2], 20);
    CHECK_INT(ids[3], 40);
    CHECK_NEAR(sc[0], 0.02433004, 1e-7);
    CHECK_NEAR(sc[1], 0.02406976, 1e-7);
    CHECK_NEAR(sc[2], 0.01612903, 1e-7);
    CHECK_NEAR(sc[3], 0.00806452, 1e-7);
    /* cap truncates; a tie is broken by the lower id */
    uint64_t c[] = {7}, d[] = {5};
    const uint64_t *l2[] = {c, d};
    size_t n2[] = {1, 1};
    float w2[] = {1, 1};
    CHECK_OK(qr_rrf_fuse(l2, n2, w2, 2, 60.0f, ids, sc, 1, &n));
    CHECK_INT(n, 1);
    CHECK_INT(ids[0], 5);
}

static void test_bm25_only(const char *dir, const uint64_t *cid)
{
    qr_store *s = NULL;
    qr_store_open_opts ro = {.readonly = true};
    CHECK_OK(qr_store_open(dir, &ro, &s));
    if (!s)
        return;
    qr_retrieve_opts o = no_mmr();
    qr_retriever *r = NULL;
    CHECK_OK(qr_retriever_open(s, NULL, NULL, NULL, &o, &r));
    const char *queries[] = {"request two gpus batch job", "job time limit", "pasta", "sbatch --gres"};
    for (size_t qi = 0; qi < sizeof queries / sizeof queries[0]; qi++) {
        const char *q = queries[qi];
        /* the reference: index/bm25's own ranking through a separate handle */
        qr_store_txn *t = NULL;
        qr_bm25 *bm = NULL;
        qr_bm25_hit hits[16];
        size_t nh = 0;
        CHECK_OK(qr_store_txn_begin(s, false, &t));
        CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
        CHECK_OK(qr_bm25_search(bm, qr_store_txn_mdb(t), q, strlen(q), 5, hits, &nh));
        qr_bm25_close(bm);
        qr_store_txn_abort(t);
        qr_results res = {0};
        CHECK_OK(qr_retrieve_query(r, q, strlen(q), 5, NULL, 0, NULL, &res));
        CHECK_INT(res.n, nh);
        CHECK_INT(res.n_dense, 0);
        for (size_t i = 0; i < nh && i < res.n; i++) {
            CHECK_INT(res.items[i].chunk_id, hits[i].id);
            CHECK(res.items[i].bm25 == hits[i].score);
            CHECK_INT(res.items[i].bm25_rank, (int)i + 1);
            CHECK_INT(res.items[i].dense_rank, 0);
            CHECK_NEAR(res.items[i].fused, 1.0 / (60.0 + (double)(i + 1)), 1e-8);
        }
        qr_results_free(&res);
    }
    /* passage fields come from the store */
    qr_results res = {0};
    CHECK_OK(qr_retrieve_query(r, "pasta salt", 10, 3, NULL, 0, NULL, &res));
    CHECK(res.n >= 1);
    if (res.n >= 1) {
        CHECK_INT(res.items[0].chunk_id, cid[7]);
        CHECK(strcmp(res.items[0].path, "other/cooking.txt") == 0);
        CHECK(strcmp(res.items[0].text, DOCS[7].text) == 0);
        CHECK(strcmp(res.items[0].heading, "Guide > Section") == 0);
        CHECK(strcmp(res.items[0].title, "Title") == 0);
        CHECK_INT(res.items[0].page, 7 % 3);
        CHECK_INT(res.items[0].byte_end, strlen(DOCS[7].text));
    }
    qr_results_free(&res);

    /* filters: path glob, metadata string and number, AND */
    const char *q = "job";
    qr_retrieve_filter f1[] = {{"path", "guide/*"}};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 10, f1, 1, NULL, &res));
    CHECK_INT(res.n, 2); /* partition.txt, time.txt ("job"); gpu_types has no "job" */
    for (size_t i = 0; i < res.n; i++)
        CHECK(strncmp(res.items[i].path, "guide/", 6) == 0);
    qr_results_free(&res);
    qr_retrieve_filter f2[] = {{"lang", "de"}};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 10, f2, 1, NULL, &res));
    CHECK_INT(res.n, 1);
    if (res.n == 1)
        CHECK_INT(res.items[0].chunk_id, cid[3]);
    qr_results_free(&res);
    qr_retrieve_filter f3[] = {{"year", "2023"}};
    CHECK_OK(qr_retrieve_query(r, "gpus", 4, 10, f3, 1, NULL, &res));
    CHECK_INT(res.n, 1);
    if (res.n == 1)
        CHECK_INT(res.items[0].chunk_id, cid[1]);
    qr_results_free(&res);
    qr_retrieve_filter f4[] = {{"path", "docs/*"}, {"lang", "en"}};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 10, f4, 2, NULL, &res));
    CHECK_INT(res.n, 3); /* gpu, gpu_copy, memory; array is "de" */
    for (size_t i = 0; i < res.n; i++)
        CHECK(res.items[i].chunk_id != cid[3]);
    qr_results_free(&res);
    qr_retrieve_filter f5[] = {{"path", "nothing/*"}};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 10, f5, 1, NULL, &res));
    CHECK_INT(res.n, 0);
    qr_results_free(&res);

    /* MMR: the exact duplicate (gpu_copy.md) is dropped by default options */
    qr_retrieve_opts dflt;
    qr_retrieve_opts_default(&dflt);
    const char *g = "request two GPUs batch job";
    CHECK_OK(qr_retrieve_query(r, g, strlen(g), 5, NULL, 0, &dflt, &res));
    int a = find_chunk(&res, cid[0]), b = find_chunk(&res, cid[1]);
    CHECK(a == 0 || b == 0);
    CHECK(a < 0 || b < 0);
    qr_results_free(&res);
    CHECK_OK(qr_retrieve_query(r, g, strlen(g), 5, NULL, 0, NULL, &res)); /* retriever opts: no MMR */
    CHECK(find_chunk(&res, cid[0]) >= 0 && find_chunk(&res, cid[1]) >= 0);
    qr_results_free(&res);

    /* limits */
    CHECK_INT(qr_retrieve_query(r, "x", 1, 0, NULL, 0, NULL, &res), QR_EINVAL);
    CHECK_INT(qr_retrieve_query(r, "x", 1, QR_RETRIEVE_MAX_K + 1, NULL, 0, NULL, &res), QR_ELIMIT);
    CHECK_INT(qr_retrieve_query(r, "  \n", 3, 5, NULL, 0, NULL, &res), QR_EINVAL);
    char *big = malloc(QR_RETRIEVE_MAX_QUERY + 2);
    if (big) {
        memset(big, 'a', QR_RETRIEVE_MAX_QUERY + 1);
        CHECK_INT(qr_retrieve_query(r, big, QR_RETRIEVE_MAX_QUERY + 1, 5, NULL, 0, NULL, &res), QR_ELIMIT);
        free(big);
    }
    qr_retrieve_filter many[QR_RETRIEVE_MAX_FILTERS + 1];
    for (int i = 0; i <= QR_RETRIEVE_MAX_FILTERS; i++)
        many[i] = (qr_retrieve_filter){"path", "*"};
    CHECK_INT(qr_retrieve_query(r, "job", 3, 5, many, QR_RETRIEVE_MAX_FILTERS + 1, NULL, &res), QR_ELIMIT);
    char fs[] = "lang=en", bad[] = "noequals";
    qr_retrieve_filter pf;
    CHECK_OK(qr_retrieve_parse_filter(fs, &pf));
    CHECK(strcmp(pf.key, "lang") == 0 && strcmp(pf.value, "en") == 0);
    CHECK_INT(qr_retrieve_parse_filter(bad, &pf), QR_EINVAL);
    qr_retriever_close(r);
    qr_store_close(s);
}

static void test_dense(const char *dir)
{
    const char *mp = FIXTURE("models/bert_minilm");
    qr_backend *be = NULL;
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_backend_cpu_create(1, &be));
    CHECK_OK(qr_model_load(mp, &mo, be, &m));
    if (!m) {
        qr_backend_destroy(be);
        return;
    }
    const qr_model_config *c = qr_model_cfg(m);
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    snprintf(e.model, sizeof e.model, "%s", mp);
    CHECK_OK(qr_embedder_hash(mp, e.hash, sizeof e.hash));
    e.dim = c->d_model;
    snprintf(e.pooling, sizeof e.pooling, "%s", c->pooling == QR_POOL_CLS ? "cls" : "mean");
    e.normalize = c->normalize;
    uint64_t cid[NDOCS];
    CHECK_OK(build_store(dir, m, &e, cid));

    qr_store *s = NULL;
    qr_store_open_opts ro = {.readonly = true, .embedder = &e};
    CHECK_OK(qr_store_open(dir, &ro, &s));
    if (!s) {
        qr_model_free(m);
        qr_backend_destroy(be);
        return;
    }
    qr_retrieve_opts o = no_mmr();
    qr_retriever *r = NULL;
    CHECK_OK(qr_retriever_open(s, m, mp, NULL, &o, &r));
    /* a chunk's own text: dense rank 1 with cosine 1 (normalized embeddings) */
    for (size_t i = 2; i < NDOCS; i++) {
        qr_results res = {0};
        CHECK_OK(qr_retrieve_query(r, DOCS[i].text, strlen(DOCS[i].text), 8, NULL, 0, NULL, &res));
        CHECK(res.n_dense > 0);
        int at = find_chunk(&res, cid[i]);
        CHECK(at >= 0);
        if (at >= 0) {
            CHECK_INT(res.items[at].dense_rank, 1);
            if (c->normalize)
                CHECK_NEAR(res.items[at].dense, 1.0, 1e-4);
        }
        /* every fused score is sum of 1/(60 + rank) over the retrievers that found it */
        for (size_t j = 0; j < res.n; j++) {
            const qr_passage *p = &res.items[j];
            double want = (p->dense_rank ? 1.0 / (60.0 + p->dense_rank) : 0) +
                          (p->bm25_rank ? 1.0 / (60.0 + p->bm25_rank) : 0);
            CHECK_NEAR(p->fused, want, 1e-7);
            if (j > 0)
                CHECK(res.items[j - 1].fused >= p->fused);
        }
        qr_results_free(&res);
    }
    /* vector MMR: the duplicate (same text, same vector) is dropped */
    qr_retrieve_opts d;
    qr_retrieve_opts_default(&d);
    qr_results res = {0};
    CHECK_OK(qr_retrieve_query(r, DOCS[0].text, strlen(DOCS[0].text), 5, NULL, 0, &d, &res));
    int a = find_chunk(&res, cid[0]), b = find_chunk(&res, cid[1]);
    CHECK((a == 0) != (b == 0));
    CHECK(a < 0 || b < 0);
    qr_results_free(&res);
    /* the query embedding given: same results without a model in the retriever */
    {
        qr_retriever *r0 = NULL;
        CHECK_OK(qr_retriever_open(s, NULL, NULL, NULL, &o, &r0));
        float qv[64];
        const char *tx[1] = {DOCS[5].text};
        size_t ln[1] = {strlen(DOCS[5].text)};
        CHECK_OK(qr_embed_texts(m, tx, ln, 1, qv));
        qr_results a1 = {0}, a2 = {0};
        CHECK_OK(qr_retrieve_query(r, tx[0], ln[0], 5, NULL, 0, NULL, &a1));
        CHECK_OK(qr_retrieve_query_vec(r0, tx[0], ln[0], qv, 5, NULL, 0, NULL, &a2));
        CHECK_INT(a1.n, a2.n);
        for (size_t i = 0; i < a1.n && i < a2.n; i++) {
            CHECK_INT(a1.items[i].chunk_id, a2.items[i].chunk_id);
            CHECK(a1.items[i].fused == a2.items[i].fused);
        }
        CHECK(a2.n_dense > 0);
        qr_results_free(&a1);
        qr_results_free(&a2);
        qr_retriever_close(r0);
    }
    /* dense weight 0: BM25 ranks only */
    qr_retrieve_opts bo = no_mmr();
    bo.w_dense = 0;
    CHECK_OK(qr_retrieve_query(r, "pasta", 5, 5, NULL, 0, &bo, &res));
    CHECK_INT(res.n_dense, 0);
    CHECK_INT(res.n, 1);
    qr_results_free(&res);
    qr_retriever_close(r);

    /* a different embedder (other content hash) is refused */
    qr_embedder_id other = e;
    snprintf(other.hash, sizeof other.hash, "fnv1a64:0000000000000000");
    qr_store *s2 = NULL;
    qr_store_open_opts ro2 = {.readonly = true, .embedder = &other};
    CHECK_INT(qr_store_open(dir, &ro2, &s2), QR_EMISMATCH);
    qr_store_close(s);
    /* retriever-level check: the model's hash is compared with the store's */
    char odir[400];
    snprintf(odir, sizeof odir, "%s_other", dir);
    uint64_t cid2[NDOCS];
    CHECK_OK(build_store(odir, m, &other, cid2));
    qr_store_open_opts ro3 = {.readonly = true};
    CHECK_OK(qr_store_open(odir, &ro3, &s2));
    if (s2) {
        CHECK_INT(qr_retriever_open(s2, m, mp, NULL, NULL, &r), QR_EMISMATCH);
        qr_store_close(s2);
    }
    rm_rf(odir);
    qr_model_free(m);
    qr_backend_destroy(be);
}


/* Stores document path with the n chunks ch (text set; lengths, byte ends
 * and ordinals filled here) and adds them to the BM25 postings, in txn t. */
static void put_indexed(qr_store_txn *t, qr_bm25 *bm, const char *path, qr_store_chunk *ch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ch[i].text_len = strlen(ch[i].text);
        ch[i].byte_end = ch[i].text_len;
        ch[i].ordinal = (uint32_t)i;
    }
    qr_store_doc doc = {.path = path, .hash = "h", .size = 1, .title = "T", .format = "md"};
    uint64_t first = 0;
    CHECK_OK(qr_store_put_doc(t, &doc, ch, n, NULL, NULL, &first));
    for (size_t i = 0; i < n; i++)
        CHECK_OK(qr_bm25_add(bm, qr_store_txn_mdb(t), first + i, ch[i].text, ch[i].text_len));
}

/* Per-document cap (opts.max_per_doc): one long page must not fill the list.
 * Doc 0 has four chunks about GPUs, docs 1 and 2 one each (weaker matches).
 * Without MMR the capped list must be exactly the uncapped ranking with each
 * document's chunks past the cap removed (so each document's best chunk keeps
 * its relative order); with MMR no document exceeds the cap. */
static void test_max_per_doc(const char *dir)
{
    static const char *const long_doc[] = {
        "GPU jobs: request GPUs with --gres=gpu:2; GPU nodes have four GPUs.",
        "GPU binding: each task gets the GPU closest to its cores; GPU GPU.",
        "GPU frequency can be set for a GPU job with --gpu-freq on GPU nodes.",
        "GPU memory of a GPU is not limited by Slurm; one GPU per task.",
    };
    static const char *const short_docs[] = {"Request a GPU in sbatch with --gpus=1 for the job.",
                                             "The scheduler counts a GPU as a generic resource."};
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(dir, &oo, &s));
    if (!s)
        return;
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
    for (int d = 0; d < 3 && bm; d++) {
        qr_store_chunk ch[4];
        size_t n = d == 0 ? 4 : 1;
        memset(ch, 0, sizeof ch);
        for (size_t i = 0; i < n; i++)
            ch[i].text = d == 0 ? long_doc[i] : short_docs[d - 1];
        char path[32];
        snprintf(path, sizeof path, "doc%d.md", d);
        put_indexed(t, bm, path, ch, n);
    }
    CHECK_OK(qr_bm25_flush(bm, qr_store_txn_mdb(t)));
    qr_bm25_close(bm);
    CHECK_OK(qr_store_txn_commit(t));
    qr_retrieve_opts o = no_mmr();
    o.max_per_doc = 0;
    qr_retriever *r = NULL;
    CHECK_OK(qr_retriever_open(s, NULL, NULL, NULL, &o, &r));
    const char *q = "gpu";
    qr_results all = {0};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 10, NULL, 0, &o, &all));
    CHECK_INT(all.n, 6);
    int top0 = 0; /* chunks of doc 0 ahead of the first chunk of another doc */
    while (top0 < (int)all.n && all.items[top0].doc_id == all.items[0].doc_id)
        top0++;
    CHECK_MSG(top0 >= 3, "the long document should hold the top %d (got %d)", 3, top0);
    for (int cap = 1; cap <= 3; cap++) {
        for (int k = 2; k <= 5; k++) {
            qr_retrieve_opts oc = no_mmr();
            oc.max_per_doc = cap;
            qr_results got = {0};
            CHECK_OK(qr_retrieve_query(r, q, strlen(q), k, NULL, 0, &oc, &got));
            /* expected: the uncapped ranking filtered by the cap, first k */
            uint64_t want[10];
            size_t nw = 0;
            for (size_t i = 0; i < all.n && nw < (size_t)k; i++) {
                int seen = 0;
                for (size_t j = 0; j < nw; j++)
                    for (size_t m = 0; m < all.n; m++)
                        if (all.items[m].chunk_id == want[j])
                            seen += all.items[m].doc_id == all.items[i].doc_id;
                if (seen < cap)
                    want[nw++] = all.items[i].chunk_id;
            }
            CHECK_MSG(got.n == nw, "cap %d k %d: %zu results, want %zu", cap, k, got.n, nw);
            for (size_t i = 0; i < got.n && i < nw; i++)
                CHECK_MSG(got.items[i].chunk_id == want[i], "cap %d k %d rank %zu", cap, k, i + 1);
            qr_results_free(&got);
        }
    }
    /* cap 1, k 5: one passage per document, all three documents */
    qr_retrieve_opts o1 = no_mmr();
    o1.max_per_doc = 1;
    qr_results one = {0};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 5, NULL, 0, &o1, &one));
    CHECK_INT(one.n, 3);
    qr_results_free(&one);
    /* with MMR (term-set similarity) the cap holds too */
    qr_retrieve_opts om;
    qr_retrieve_opts_default(&om);
    om.max_per_doc = 2;
    qr_results mm = {0};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), 5, NULL, 0, &om, &mm));
    CHECK_INT(mm.n, 4);
    for (size_t i = 0; i < mm.n; i++) {
        int same = 0;
        for (size_t j = 0; j < mm.n; j++)
            same += mm.items[j].doc_id == mm.items[i].doc_id;
        CHECK_MSG(same <= 2, "MMR: doc %llu has %d passages", (unsigned long long)mm.items[i].doc_id, same);
    }
    qr_results_free(&mm);
    /* bounds */
    qr_retrieve_opts bad = no_mmr();
    bad.max_per_doc = -1;
    qr_results none = {0};
    CHECK_INT(qr_retrieve_query(r, q, strlen(q), 5, NULL, 0, &bad, &none), QR_EINVAL);
    qr_results_free(&all);
    qr_retriever_close(r);
    qr_store_close(s);
}

/* ---- MMR reference (retrieve.h, step 4), eager: after each choice every
 * remaining candidate is compared with it. Term sets are the analyzed terms
 * as strings (the retriever hashes them). */
typedef struct {
    char **t;
    size_t n, cap;
} strset;

static int strset_add(const char *term, size_t len, void *user)
{
    strset *s = user;
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->t[i]) == len && !memcmp(s->t[i], term, len))
            return 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->t = realloc(s->t, s->cap * sizeof *s->t);
    }
    s->t[s->n] = malloc(len + 1);
    memcpy(s->t[s->n], term, len);
    s->t[s->n++][len] = 0;
    return 0;
}

static double ref_jaccard(const strset *a, const strset *b)
{
    if (a->n == 0 && b->n == 0)
        return 1.0;
    size_t inter = 0;
    for (size_t i = 0; i < a->n; i++)
        for (size_t j = 0; j < b->n; j++)
            inter += !strcmp(a->t[i], b->t[j]);
    return (double)inter / (double)(a->n + b->n - inter);
}

/* pool: the fused ranking (no MMR, no cap) of depth candidates; writes the
 * chunk ids MMR selects (at most k) to out, returns their count. */
static size_t ref_mmr(qr_analyzer *an, const qr_results *pool, const qr_retrieve_opts *o, int k, uint64_t *out)
{
    size_t n = pool->n, nsel = 0;
    strset *ts = calloc(n, sizeof *ts);
    double *maxsim = calloc(n, sizeof *maxsim);
    bool *taken = calloc(n, sizeof *taken);
    size_t *sel = calloc(n, sizeof *sel);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(qr_analyzer_run(an, pool->items[i].text, strlen(pool->items[i].text), strset_add, &ts[i]));
    float lo = pool->items[0].fused, hi = pool->items[0].fused;
    for (size_t i = 1; i < n; i++) {
        lo = pool->items[i].fused < lo ? pool->items[i].fused : lo;
        hi = pool->items[i].fused > hi ? pool->items[i].fused : hi;
    }
    double lam = o->mmr_lambda;
    while (nsel < (size_t)k) {
        int best = -1;
        double bv = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (taken[i])
                continue;
            double rel = hi > lo ? ((double)pool->items[i].fused - lo) / ((double)hi - lo) : 1.0;
            double v = lam * rel - (1.0 - lam) * (nsel ? maxsim[i] : 0.0);
            if (v > bv) {
                bv = v;
                best = (int)i;
            }
        }
        if (best < 0)
            break;
        taken[best] = true;
        sel[nsel++] = (size_t)best;
        int same = 0;
        for (size_t j = 0; j < nsel; j++)
            same += pool->items[sel[j]].doc_id == pool->items[best].doc_id;
        if (o->max_per_doc > 0 && same >= o->max_per_doc)
            for (size_t i = 0; i < n; i++)
                taken[i] = taken[i] || pool->items[i].doc_id == pool->items[best].doc_id;
        for (size_t i = 0; i < n; i++) {
            if (taken[i])
                continue;
            double sim = ref_jaccard(&ts[i], &ts[best]);
            maxsim[i] = sim > maxsim[i] ? sim : maxsim[i];
            if (sim >= o->dup_threshold)
                taken[i] = true;
        }
    }
    for (size_t i = 0; i < nsel; i++)
        out[i] = pool->items[sel[i]].chunk_id;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < ts[i].n; j++)
            free(ts[i].t[j]);
        free(ts[i].t);
    }
    free(ts);
    free(maxsim);
    free(taken);
    free(sel);
    return nsel;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 30 documents of 1 to 3 chunks drawn from a small vocabulary; every fourth
 * chunk is the previous one with a word added (near-duplicates for
 * dup_threshold). */
static void test_mmr_reference(const char *dir)
{
    static const char *const vocab[] = {"gpu", "node", "memory", "job", "array", "partition", "time", "limit",
                                        "task", "core", "batch", "script", "queue", "account", "storage",
                                        "network", "module", "python", "compile", "cluster", "login", "quota",
                                        "scratch", "file", "error", "output", "request", "slurm", "cuda",
                                        "thread", "process", "signal"};
    const size_t nv = sizeof vocab / sizeof vocab[0];
    uint64_t rs = 0x9E3779B97F4A7C15ull;
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(dir, &oo, &s));
    if (!s)
        return;
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
    static char text[90][400];
    char prev[400] = "";
    size_t nt = 0;
    for (int d = 0; d < 30 && bm; d++) {
        qr_store_chunk ch[3];
        size_t n = 1 + xorshift(&rs) % 3;
        memset(ch, 0, sizeof ch);
        for (size_t i = 0; i < n; i++, nt++) {
            char *x = text[nt];
            if (nt % 4 == 3 && *prev) { /* near-duplicate of the previous chunk */
                snprintf(x, 400, "%.380s %s", prev, vocab[xorshift(&rs) % nv]);
            } else {
                x[0] = 0;
                size_t words = 8 + xorshift(&rs) % 12;
                for (size_t w = 0; w < words; w++)
                    snprintf(x + strlen(x), 400 - strlen(x), "%s%s", w ? " " : "", vocab[xorshift(&rs) % nv]);
            }
            snprintf(prev, sizeof prev, "%s", x);
            ch[i].text = x;
        }
        char path[32];
        snprintf(path, sizeof path, "mmr%d.md", d);
        put_indexed(t, bm, path, ch, n);
    }
    CHECK_OK(qr_bm25_flush(bm, qr_store_txn_mdb(t)));
    qr_bm25_close(bm);
    CHECK_OK(qr_store_txn_commit(t));
    qr_retriever *r = NULL;
    qr_analyzer *an = NULL;
    CHECK_OK(qr_retriever_open(s, NULL, NULL, NULL, NULL, &r));
    CHECK_OK(qr_analyzer_create(&an));
    static const struct { float lam, dup; int cap; } os[] = {{0.7f, 0.95f, 1}, {0.7f, 0.95f, 0}, {0.3f, 0.5f, 0},
                                                             {0.5f, 0.3f, 2}, {0.0f, 2.0f, 0}, {0.9f, 0.2f, 1},
                                                             {1.0f, 0.6f, 0}, {0.6f, 1.0f, 3}};
    int compared = 0, cut = 0;
    for (int qi = 0; qi < 40 && r && an; qi++) {
        char q[64];
        const char *w1 = vocab[xorshift(&rs) % nv], *w2 = vocab[xorshift(&rs) % nv], *w3 = vocab[xorshift(&rs) % nv];
        snprintf(q, sizeof q, "%s %s %s", w1, w2, w3);
        for (size_t oi = 0; oi < sizeof os / sizeof os[0]; oi++) {
            int k = 1 + (int)(xorshift(&rs) % 12);
            qr_retrieve_opts o;
            qr_retrieve_opts_default(&o);
            o.mmr_lambda = os[oi].lam;
            o.dup_threshold = os[oi].dup;
            o.max_per_doc = os[oi].cap;
            qr_retrieve_opts po = no_mmr();
            po.max_per_doc = 0;
            int depth = 4 * k > o.depth_min ? 4 * k : o.depth_min;
            qr_results pool = {0}, got = {0};
            CHECK_OK(qr_retrieve_query(r, q, strlen(q), depth, NULL, 0, &po, &pool));
            CHECK_OK(qr_retrieve_query(r, q, strlen(q), k, NULL, 0, &o, &got));
            uint64_t want[100];
            size_t nw = pool.n ? ref_mmr(an, &pool, &o, k, want) : 0;
            bool same = got.n == nw;
            for (size_t i = 0; same && i < nw; i++)
                same = got.items[i].chunk_id == want[i];
            CHECK_MSG(same, "query \"%s\", lambda %g, dup %g, cap %d, k %d: %zu passages, reference %zu", q,
                      (double)o.mmr_lambda, (double)o.dup_threshold, o.max_per_doc, k, got.n, nw);
            compared++;
            cut += nw < (size_t)k && nw < pool.n;
            qr_results_free(&pool);
            qr_results_free(&got);
        }
    }
    CHECK_INT(compared, 320);
    CHECK_MSG(cut > 20, "near-duplicates or the cap should cut some lists short (%d did)", cut);
    qr_analyzer_destroy(an);
    qr_retriever_close(r);
    qr_store_close(s);
}

int main(void)
{
    char dir[] = "/tmp/qr_retrieve_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char bdir[300], ddir[300], cdir[300];
    snprintf(bdir, sizeof bdir, "%s/bm25", dir);
    snprintf(cdir, sizeof cdir, "%s/cap", dir);
    snprintf(ddir, sizeof ddir, "%s/dense", dir);
    test_rrf_hand();
    uint64_t cid[NDOCS];
    int rc = build_store(bdir, NULL, NULL, cid);
    CHECK_OK(rc);
    if (!rc)
        test_bm25_only(bdir, cid);
    test_dense(ddir);
    test_max_per_doc(cdir);
    char mdir[300];
    snprintf(mdir, sizeof mdir, "%s/mmr", dir);
    test_mmr_reference(mdir);
    rm_rf(dir);
    return qr_test_done();
}
