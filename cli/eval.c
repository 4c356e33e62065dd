/* quire eval retrieval --beir DIR: retrieval quality on a BEIR dataset
 * (nDCG@10, Recall@100, Recall@1000, MRR@10 with trec_eval -c semantics,
 * index/eval.h), in one of two ways:
 *
 *   - BM25 reference (no --store, no --embedder): DIR/corpus.jsonl indexed as
 *     title + "\n" + text in a temporary BM25 index (qr_beir_eval_bm25), the
 *     Anserini "flat" configuration the published figures use.
 *   - Through a store (--store DIR and/or --embedder M given as flags): the
 *     corpus is ingested into the store like `quire ingest DIR/corpus.jsonl`
 *     (one document per record, chunked; a temporary store when no --store;
 *     unchanged when the store already holds that file), then every judged
 *     query runs through the retriever `quire search` uses (dense k-NN when the
 *     store has an embedder, BM25, RRF, optional --reranker) for --hits chunks
 *     (at most 1000). A document ranks where its best chunk ranks; the BEIR
 *     document id is the record's "_id" (kept in the document's metadata).
 *     MMR, near-duplicate suppression and the per-document cap serve the
 *     reader of a result list, not a ranking evaluation: they are off here
 *     unless mmr-lambda / dup-threshold / max-per-doc are set (flag,
 *     environment or config file).
 *   - MTEB's dense protocol (--embedder M --protocol mteb): one vector per
 *     document (title + " " + text, truncated at the model's max_seq_length),
 *     exact cosine search over the whole corpus (qr_beir_eval_dense); no store,
 *     no chunking, no BM25: the figure MTEB's leaderboard reports.
 * All drop the query's own id from its hits (Anserini's removeQuery, which
 * matters for ArguAna). Only flags select the store mode, so a QUIRE_STORE or a
 * config file's `embedder =` never turns the reference run into another one. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/retrieval.h"
#include "common/error.h"
#include "common/log.h"
#include "index/eval.h"
#include "index/manifest.h"
#include "index/store.h"
#include "ingest/pipeline.h"
#include "retrieve/retrieve.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: quire eval retrieval --beir DIR [--split test] [--lexical-saturation 0.9] [--lexical-length-norm 0.4] [--hits 1000] [--json]\n"
               "       quire eval retrieval --beir DIR [--store S] [--embedder M] [--reranker R] [search options]\n"
               "       quire eval retrieval --beir DIR --embedder M --protocol mteb [--batch 32] [--dtype D]\n"
               "       quire eval perplexity FILE --model M [--ctx 512] [--chunks N] [--dtype D] [--compare-dtype D2] [--json]\n\n"
               "Scores a retrieval run over the judged queries of DIR/queries.jsonl against DIR/qrels/SPLIT.tsv\n"
               "like trec_eval -c: nDCG@10, Recall@100, Recall@1000, MRR@10 (each query's own id dropped from its\n"
               "hits). Without --store and --embedder: BM25 over DIR/corpus.jsonl (title + \"\\n\" + text) in a\n"
               "temporary index. With either: the corpus is ingested into the store S (a temporary one without\n"
               "--store) and the queries run through quire search's retriever (dense + BM25 + RRF when the store\n"
               "has an embedder); MMR and duplicate suppression are off unless set. With --protocol mteb: MTEB's\n"
               "dense protocol, one vector per document (title + \" \" + text truncated at max_seq_length) and exact\n"
               "cosine search, no store. quire eval retrieval --help lists every option.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* ---- the store mode ---- */

typedef struct {
    uint64_t doc_id;
    char *beir_id; /* malloc'd */
} id_map_entry;

typedef struct {
    id_map_entry *e;
    size_t n, cap;
    const char *prefix; /* "CORPUS#L": documents of the corpus file */
    size_t prefix_len;
    size_t ndocs;       /* documents of the corpus file */
} id_map;

static int map_doc(const qr_store_doc *d, void *user)
{
    id_map *m = user;
    if (strncmp(d->path, m->prefix, m->prefix_len) != 0)
        return 0; /* another file in the same store: never relevant, never counted */
    const char *id = NULL;
    json_t *j = d->meta_json && *d->meta_json ? json_loads(d->meta_json, 0, NULL) : NULL;
    json_t *v = j ? json_object_get(j, "_id") : NULL;
    char num[32];
    if (json_is_string(v)) {
        id = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        id = num;
    }
    if (!id) {
        json_decref(j);
        return qr_fail(QR_EFORMAT, "%s: no \"_id\" in the document's metadata", d->path);
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        id_map_entry *p = realloc(m->e, cap * sizeof *p);
        if (!p) {
            json_decref(j);
            return qr_fail(QR_ENOMEM, "eval: id map");
        }
        m->e = p;
        m->cap = cap;
    }
    m->e[m->n].doc_id = d->id;
    m->e[m->n].beir_id = strdup(id);
    json_decref(j);
    if (!m->e[m->n].beir_id)
        return qr_fail(QR_ENOMEM, "eval: id map");
    m->n++;
    m->ndocs++;
    return 0;
}

static int by_doc_id(const void *a, const void *b)
{
    const id_map_entry *x = a, *y = b;
    return x->doc_id < y->doc_id ? -1 : x->doc_id > y->doc_id;
}

static const char *map_find(const id_map *m, uint64_t doc_id)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->e[mid].doc_id < doc_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->e[lo].doc_id == doc_id ? m->e[lo].beir_id : NULL;
}

typedef struct {
    qr_retriever *r;
    const qr_qrels *qrels;
    const id_map *ids;
    qr_eval *ev;
    qr_eval_hit *eh;
    int k;
    size_t nrun;
} store_run;

/* One judged query: the retriever's chunks in rank order, each document at
 * the rank of its best chunk, scored n - position so that trec_eval's order
 * (score, then docno) is the retriever's order. */
static int store_query(const char *id, const char *title, const char *text, void *user)
{
    (void)title;
    store_run *c = user;
    if (!qr_qrels_has(c->qrels, id))
        return 0;
    qr_results res = {0};
    size_t len = strlen(text), m = 0;
    if (len > QR_RETRIEVE_MAX_QUERY)
        len = QR_RETRIEVE_MAX_QUERY; /* the retriever's limit; BEIR queries stay far below it */
    int rc = len ? qr_retrieve_query(c->r, text, len, c->k, NULL, 0, NULL, &res) : 0;
    if (rc)
        return rc;
    for (size_t i = 0; i < res.n; i++) {
        const char *docid = map_find(c->ids, res.items[i].doc_id);
        if (!docid || strcmp(docid, id) == 0)
            continue; /* not of this corpus; Anserini removeQuery */
        bool seen = false;
        for (size_t j = 0; j < m && !seen; j++)
            seen = c->eh[j].docid == docid; /* one string per document in the map */
        if (!seen)
            c->eh[m++].docid = docid;
    }
    for (size_t j = 0; j < m; j++)
        c->eh[j].score = (double)(m - j);
    qr_results_free(&res);
    c->nrun++;
    return qr_eval_add(c->ev, id, c->eh, m);
}

typedef struct {
    qr_eval_metrics mean;
    size_t ndocs, nchunks, nqueries_qrels, nqueries_run;
    double index_s, search_s;
    bool dense, reranked;
} store_result;

static int eval_store(qr_options *o, const char *beir, const char *split, const char *store_flag, bool json,
                      store_result *out)
{
    const char *cmd = "eval";
    char cpath[4096], qpath[4096], rpath[4096], tdir[4096] = "", canon[PATH_MAX];
    const char *dir = store_flag;
    qr_qrels *qrels = NULL;
    qr_backend *be = NULL;
    qr_model *emb = NULL;
    char *emb_path = NULL;
    cli_retrieval cr = {0};
    qr_retriever *r = NULL;
    qr_ingest_report rep;
    memset(&rep, 0, sizeof rep);
    id_map ids = {0};
    store_run run = {0};
    int code = CLI_EXIT_OK, rc;
    snprintf(cpath, sizeof cpath, "%s/corpus.jsonl", beir);
    snprintf(qpath, sizeof qpath, "%s/queries.jsonl", beir);
    snprintf(rpath, sizeof rpath, "%s/qrels/%s.tsv", beir, split);
    int hits = (int)qr_opt_int(o, QR_OPT_HITS);
    if (hits > QR_RETRIEVE_MAX_K) {
        fprintf(stderr, "quire eval: --hits %d: at most %d through a store (the retriever's limit)\n", hits,
                QR_RETRIEVE_MAX_K);
        return CLI_EXIT_USAGE;
    }
    if (strchr(split, '/') || strlen(split) > 64) {
        fprintf(stderr, "quire eval: --split '%s' must be a plain name\n", split);
        return CLI_EXIT_USAGE;
    }
    if (!realpath(cpath, canon))
        return cli_fail(cmd, qr_fail(QR_ENOTFOUND, "%s: %s", cpath, strerror(errno)), NULL);
    if ((rc = qr_qrels_create(&qrels)) || (rc = qr_qrels_load(qrels, rpath))) {
        code = cli_fail(cmd, rc, NULL);
        goto out;
    }
    if (!dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tdir, sizeof tdir, "%s/quire-eval-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tdir)) {
            code = cli_fail(cmd, qr_fail(QR_EIO, "%s: mkdtemp: %s", tdir, strerror(errno)), NULL);
            tdir[0] = 0;
            goto out;
        }
        dir = tdir;
    }
    /* The embedder: --embedder, else the one an existing store was built with
     * (ingest needs it for new chunks, the retriever for queries). Resolved and
     * loaded once, for both. */
    qr_manifest man;
    bool have_man = qr_manifest_read(dir, &man) == 0;
    qr_clear_error();
    const char *emb_arg = *qr_opt_str(o, QR_OPT_EMBEDDER) ? qr_opt_str(o, QR_OPT_EMBEDDER)
                          : have_man && man.has_embedder ? man.embedder.model
                                                         : NULL;
    if (emb_arg) {
        if (!*qr_opt_str(o, QR_OPT_EMBEDDER))
            qr_options_set(o, QR_OPT_EMBEDDER, emb_arg, QR_SRC_DEFAULT, "the store's manifest");
        if ((code = cli_resolve_model(cmd, o, QR_OPT_EMBEDDER, &emb_path)) >= 0 ||
            (code = cli_load_model(cmd, o, emb_path, &be, &emb)) >= 0)
            goto out;
        code = CLI_EXIT_OK;
    }
    qr_ingest_opts io;
    qr_ingest_opts_default(&io);
    io.embedder = emb;
    io.embedder_path = emb_path;
    io.chunk.max_tokens = (int)qr_opt_int(o, QR_OPT_CHUNK_TOKENS);
    io.chunk.overlap_tokens = (int)qr_opt_int(o, QR_OPT_CHUNK_OVERLAP);
    if (have_man) { /* an existing store keeps its chunking unless one is named, as quire ingest */
        if (qr_opt_source_of(o, QR_OPT_CHUNK_TOKENS) == QR_SRC_DEFAULT)
            io.chunk.max_tokens = man.chunk_tokens;
        if (qr_opt_source_of(o, QR_OPT_CHUNK_OVERLAP) == QR_SRC_DEFAULT)
            io.chunk.overlap_tokens = man.chunk_overlap;
    }
    io.jobs = (int)qr_opt_int(o, QR_OPT_JOBS);
    if (qr_opt_source_of(o, QR_OPT_BATCH) != QR_SRC_DEFAULT)
        io.batch = (int)qr_opt_int(o, QR_OPT_BATCH);
    const char *paths[1] = {canon};
    double t0 = now_s();
    /* A shared store this user cannot write (README "Sharing a store"): evaluate what it holds. */
    bool ro = have_man && qr_store_writable(dir) != 0;
    if (ro)
        QR_INFO("eval: %s; evaluating the documents it holds (%s is not re-ingested)", qr_last_error(), canon);
    else if ((rc = qr_ingest_run(dir, paths, 1, &io, &rep))) {
        code = cli_fail(cmd, rc, dir);
        goto out;
    }
    double t1 = now_s();
    if (!json && !ro)
        QR_INFO("eval: %s into %s: %zu added, %zu updated, %zu unchanged; %zu chunks in %.1f s", canon, dir,
                rep.added, rep.updated, rep.unchanged, rep.chunks, t1 - t0);

    /* the retriever of quire search, with the embedder loaded above */
    cr.emb = emb;
    cr.be_emb = be;
    cr.emb_path = emb_path;
    emb = NULL;
    be = NULL;
    emb_path = NULL;
    if ((code = cli_retrieval_open(cmd, o, dir, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    if (qr_opt_source_of(o, QR_OPT_MMR_LAMBDA) == QR_SRC_DEFAULT)
        cr.ro.mmr_lambda = 1.0f;
    if (qr_opt_source_of(o, QR_OPT_DUP_THRESHOLD) == QR_SRC_DEFAULT)
        cr.ro.dup_threshold = 2.0f;
    if (qr_opt_source_of(o, QR_OPT_MAX_PER_DOC) == QR_SRC_DEFAULT)
        cr.ro.max_per_doc = 0;
    const qr_manifest *sm = qr_store_manifest(cr.store);
    bool dense = cr.emb && sm->has_embedder && cr.ro.w_dense > 0;
    if ((rc = qr_retriever_open(cr.store, dense ? cr.emb : NULL, cr.emb_path, cr.rr, &cr.ro, &r))) {
        code = cli_fail(cmd, rc, dir);
        goto out;
    }

    /* BEIR ids of the corpus file's documents */
    char prefix[PATH_MAX + 8];
    snprintf(prefix, sizeof prefix, "%s#L", canon);
    ids.prefix = prefix;
    ids.prefix_len = strlen(prefix);
    qr_store_txn *t = NULL;
    if ((rc = qr_store_txn_begin(cr.store, false, &t)) || (rc = qr_store_iter_docs(t, map_doc, &ids))) {
        qr_store_txn_abort(t);
        code = cli_fail(cmd, rc, dir);
        goto out;
    }
    qr_store_txn_abort(t);
    if (ro && ids.n == 0) {
        code = cli_fail(cmd, qr_fail(QR_ENOTFOUND, "%s: holds no document of %s (read-only, so not ingested)", dir,
                                     canon), NULL);
        goto out;
    }
    if (ids.n)
        qsort(ids.e, ids.n, sizeof *ids.e, by_doc_id);
    qr_store_counts sc;
    if ((rc = qr_store_counts_get(cr.store, &sc))) {
        code = cli_fail(cmd, rc, dir);
        goto out;
    }

    run.r = r;
    run.qrels = qrels;
    run.ids = &ids;
    run.k = hits;
    if (!(run.eh = malloc((size_t)hits * sizeof *run.eh))) {
        code = cli_fail(cmd, QR_ENOMEM, "hits");
        goto out;
    }
    double t2 = now_s();
    if ((rc = qr_eval_create(qrels, &run.ev)) || (rc = qr_beir_read_queries(qpath, store_query, &run))) {
        code = cli_fail(cmd, rc, qpath);
        goto out;
    }
    double t3 = now_s();
    store_result res;
    memset(&res, 0, sizeof res);
    qr_eval_result(run.ev, &res.mean, &res.nqueries_qrels);
    res.nqueries_run = run.nrun;
    res.ndocs = ids.ndocs;
    res.nchunks = (size_t)sc.chunks;
    res.index_s = t1 - t0;
    res.search_s = t3 - t2;
    res.dense = dense;
    res.reranked = cr.rr != NULL;
    *out = res;
out:
    qr_eval_destroy(run.ev);
    free(run.eh);
    for (size_t i = 0; i < ids.n; i++)
        free(ids.e[i].beir_id);
    free(ids.e);
    qr_retriever_close(r);
    cli_retrieval_close(&cr);
    qr_model_free(emb);
    qr_backend_destroy(be);
    free(emb_path);
    qr_ingest_report_free(&rep);
    qr_qrels_destroy(qrels);
    if (tdir[0] && nftw(tdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        QR_WARN("eval: could not remove the temporary store %s: %s", tdir, strerror(errno));
    return code;
}

/* ---- MTEB's dense protocol ---- */

static int embed_cb(const char *const *texts, const size_t *lens, int n, float *out, void *user)
{
    return qr_embed_texts(user, texts, lens, n, out);
}

static int eval_mteb(qr_options *o, const char *beir, const char *split, bool json, qr_beir_result *out)
{
    const char *cmd = "eval";
    qr_backend *be = NULL;
    qr_model *emb = NULL;
    char *emb_path = NULL;
    int code, rc;
    char cpath[4096];
    struct stat sb;
    snprintf(cpath, sizeof cpath, "%s/corpus.jsonl", beir);
    if (stat(cpath, &sb) != 0) /* before loading the model */
        return cli_fail(cmd, qr_fail(QR_ENOTFOUND, "%s: %s", cpath, strerror(errno)), NULL);
    if ((code = cli_resolve_model(cmd, o, QR_OPT_EMBEDDER, &emb_path)) >= 0 ||
        (code = cli_load_model(cmd, o, emb_path, &be, &emb)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    qr_beir_dense_opts dopts = {split, (size_t)qr_opt_int(o, QR_OPT_HITS), qr_model_cfg(emb)->d_model,
                                qr_opt_source_of(o, QR_OPT_BATCH) != QR_SRC_DEFAULT ? (int)qr_opt_int(o, QR_OPT_BATCH)
                                                                                     : 32,
                                embed_cb, emb};
    if (!json)
        QR_INFO("eval: MTEB protocol, %s: one vector per document, at most %d tokens each", emb_path,
                qr_embed_seq_limit(emb));
    if ((rc = qr_beir_eval_dense(beir, &dopts, out)))
        code = cli_fail(cmd, rc, beir);
out:
    qr_model_free(emb);
    qr_backend_destroy(be);
    free(emb_path);
    return code;
}

static int print_json(json_t *j)
{
    if (!j)
        return cli_fail("eval", QR_ENOMEM, "json");
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (!s)
        return cli_fail("eval", QR_ENOMEM, "json");
    printf("%s\n", s);
    free(s);
    return CLI_EXIT_OK;
}

int cli_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    static const int allowed[] = {QR_OPT_BEIR,         QR_OPT_SPLIT,        QR_OPT_BM25_K1,      QR_OPT_BM25_B,
                                  QR_OPT_HITS,         QR_OPT_JSON,         QR_OPT_STORE,        QR_OPT_EMBEDDER,
                                  QR_OPT_RERANKER,     QR_OPT_RRF_K,        QR_OPT_WEIGHT_DENSE, QR_OPT_WEIGHT_BM25,
                                  QR_OPT_MMR_LAMBDA,   QR_OPT_DUP_THRESHOLD, QR_OPT_MAX_PER_DOC, QR_OPT_RERANK_DEPTH, QR_OPT_CHUNK_TOKENS,
                                  QR_OPT_CHUNK_OVERLAP, QR_OPT_JOBS,        QR_OPT_BATCH,        QR_OPT_DTYPE, QR_OPT_ACT_DTYPE,
                                  QR_OPT_THREADS,      QR_OPT_DEVICE,       QR_OPT_LOG_LEVEL,    QR_OPT_PROTOCOL, -1};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        eval_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "perplexity") == 0)
        return cli_eval_perplexity(argc - 1, argv + 1);
    if (strcmp(argv[1], "retrieval") != 0) {
        fprintf(stderr, "quire eval: unknown evaluation '%s' (known: retrieval, perplexity)\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    qr_options *o = NULL;
    /* argv[1] ("retrieval") stands where the command name is skipped */
    int code = cli_load_options(cmd, "retrieval --beir DIR [--split test] [--lexical-saturation 0.9] [--lexical-length-norm 0.4] [--hits 1000] "
                                     "[--store S] [--embedder M] [--protocol store|mteb] [--json]",
                                "Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, Recall@1000, MRR@10 "
                                "(trec_eval -c).\n"
                                "Without --store and --embedder: BM25 over DIR/corpus.jsonl (title + \"\\n\" + "
                                "text) in a temporary index.\n"
                                "With either: the corpus ingested into the store (temporary without --store), "
                                "queries through\nquire search's retriever; MMR and duplicate suppression off "
                                "unless set.\n"
                                "With --embedder M --protocol mteb: MTEB's dense protocol (one vector per document, "
                                "title + \" \" + text\ntruncated at max_seq_length, exact cosine search), no store.",
                                argc - 1, argv + 1, allowed, &o);
    if (code >= 0)
        return code;
    code = CLI_EXIT_OK;
    const char *dir = qr_opt_str(o, QR_OPT_BEIR);
    const char *split = qr_opt_str(o, QR_OPT_SPLIT);
    bool json = qr_opt_bool(o, QR_OPT_JSON);
    bool via_store = qr_opt_source_of(o, QR_OPT_STORE) == QR_SRC_FLAG ||
                     qr_opt_source_of(o, QR_OPT_EMBEDDER) == QR_SRC_FLAG;
    if (!*dir) {
        fprintf(stderr, "quire eval: --beir DIR is required\n");
        eval_usage(stderr);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    bool mteb = strcmp(qr_opt_str(o, QR_OPT_PROTOCOL), "mteb") == 0;
    if (mteb && (qr_opt_source_of(o, QR_OPT_EMBEDDER) != QR_SRC_FLAG || qr_opt_source_of(o, QR_OPT_STORE) == QR_SRC_FLAG)) {
        fprintf(stderr, "quire eval: --protocol mteb needs --embedder M and takes no --store (it builds no store)\n");
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (mteb) {
        qr_beir_result r;
        if ((code = eval_mteb(o, dir, split, json, &r)) != CLI_EXIT_OK)
            goto out;
        const char *emb = qr_opt_str(o, QR_OPT_EMBEDDER);
        if (json) {
            json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:{s:f, s:f, s:f, s:f}, s:I, s:I, s:I, s:f, "
                                  "s:f}",
                                  "dataset", dir, "split", split, "retriever", "dense", "protocol", "mteb", "embedder",
                                  emb, "dense", 1, "hits", (json_int_t)qr_opt_int(o, QR_OPT_HITS), "metrics",
                                  "ndcg@10", r.mean.ndcg10, "recall@100", r.mean.recall100, "recall@1000",
                                  r.mean.recall1000, "mrr@10", r.mean.mrr10, "docs", (json_int_t)r.ndocs, "queries",
                                  (json_int_t)r.nqueries_qrels, "queries_run", (json_int_t)r.nqueries_run, "index_s",
                                  r.index_s, "search_s", r.search_s);
            code = print_json(j);
        } else {
            printf("Dense (MTEB protocol: one vector per document, exact cosine), embedder %s on %s, split %s: %zu "
                   "docs, %zu queries (%zu run)\n",
                   emb, dir, split, r.ndocs, r.nqueries_qrels, r.nqueries_run);
            printf("  nDCG@10     %.4f\n  Recall@100  %.4f\n  Recall@1000 %.4f\n  MRR@10      %.4f\n", r.mean.ndcg10,
                   r.mean.recall100, r.mean.recall1000, r.mean.mrr10);
            printf("  embed corpus %.2f s (%.1f docs/s), queries + search %.2f s (%.2f ms/query)\n", r.index_s,
                   r.index_s > 0 ? (double)r.ndocs / r.index_s : 0.0, r.search_s,
                   r.nqueries_run ? r.search_s * 1e3 / (double)r.nqueries_run : 0.0);
        }
        goto out;
    }
    if (via_store) {
        const char *store = qr_opt_source_of(o, QR_OPT_STORE) == QR_SRC_FLAG ? qr_opt_str(o, QR_OPT_STORE) : NULL;
        store_result r;
        if ((code = eval_store(o, dir, split, store && *store ? store : NULL, json, &r)) != CLI_EXIT_OK)
            goto out;
        const char *emb = r.dense ? qr_opt_str(o, QR_OPT_EMBEDDER) : "";
        if (json) {
            json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:b, s:s?, s:b, s:{s:f, s:f}, s:I, s:{s:f, s:f, s:f, s:f}, "
                                  "s:I, s:I, s:I, s:I, s:f, s:f}",
                                  "dataset", dir, "split", split, "retriever", r.dense ? "hybrid" : "bm25-store",
                                  "store", store, "dense", r.dense, "embedder", r.dense ? emb : NULL, "reranked",
                                  r.reranked, "params", "k1", qr_opt_float(o, QR_OPT_BM25_K1), "b",
                                  qr_opt_float(o, QR_OPT_BM25_B), "hits", (json_int_t)qr_opt_int(o, QR_OPT_HITS),
                                  "metrics", "ndcg@10", r.mean.ndcg10, "recall@100", r.mean.recall100, "recall@1000",
                                  r.mean.recall1000, "mrr@10", r.mean.mrr10, "docs", (json_int_t)r.ndocs, "chunks",
                                  (json_int_t)r.nchunks, "queries", (json_int_t)r.nqueries_qrels, "queries_run",
                                  (json_int_t)r.nqueries_run, "index_s", r.index_s, "search_s", r.search_s);
            code = print_json(j);
        } else {
            printf("%s through the store%s%s on %s, split %s: %zu docs in %zu chunks, %zu queries (%zu run)\n",
                   r.dense ? "Hybrid (dense + BM25, RRF)" : "BM25", r.dense ? ", embedder " : "", emb, dir, split,
                   r.ndocs, r.nchunks, r.nqueries_qrels, r.nqueries_run);
            printf("  nDCG@10     %.4f\n  Recall@100  %.4f\n  Recall@1000 %.4f\n  MRR@10      %.4f\n", r.mean.ndcg10,
                   r.mean.recall100, r.mean.recall1000, r.mean.mrr10);
            printf("  ingest %.2f s, search %.2f s (%.2f ms/query)\n", r.index_s, r.search_s,
                   r.nqueries_run ? r.search_s * 1e3 / (double)r.nqueries_run : 0.0);
        }
        goto out;
    }
    qr_beir_opts bo = {split,
                       {(float)qr_opt_float(o, QR_OPT_BM25_K1), (float)qr_opt_float(o, QR_OPT_BM25_B)},
                       (size_t)qr_opt_int(o, QR_OPT_HITS),
                       NULL};
    qr_beir_result r;
    int rc = qr_beir_eval_bm25(dir, &bo, &r);
    if (rc) {
        code = cli_fail(cmd, rc, dir);
        goto out;
    }
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:{s:f, s:f}, s:I, s:{s:f, s:f, s:f, s:f}, s:I, s:I, s:I, s:I, s:f, s:f}",
                              "dataset", dir, "split", split, "retriever", "bm25", "params", "k1",
                              (double)bo.params.k1, "b", (double)bo.params.b, "hits", (json_int_t)bo.hits, "metrics",
                              "ndcg@10", r.mean.ndcg10, "recall@100", r.mean.recall100, "recall@1000",
                              r.mean.recall1000, "mrr@10", r.mean.mrr10, "docs", (json_int_t)r.ndocs, "terms",
                              (json_int_t)r.nterms, "queries", (json_int_t)r.nqueries_qrels, "queries_run",
                              (json_int_t)r.nqueries_run, "index_s", r.index_s, "search_s", r.search_s);
        code = print_json(j);
    } else {
        printf("BM25 (k1=%.2f b=%.2f) on %s, split %s: %zu docs, %llu terms, %zu queries (%zu run)\n",
               (double)bo.params.k1, (double)bo.params.b, dir, split, r.ndocs, r.nterms, r.nqueries_qrels,
               r.nqueries_run);
        printf("  nDCG@10     %.4f\n  Recall@100  %.4f\n  Recall@1000 %.4f\n  MRR@10      %.4f\n", r.mean.ndcg10,
               r.mean.recall100, r.mean.recall1000, r.mean.mrr10);
        printf("  index %.2f s (%.0f docs/s, %.1f MB/s), search %.2f s (%.2f ms/query)\n", r.index_s,
               r.index_s > 0 ? (double)r.ndocs / r.index_s : 0.0,
               r.index_s > 0 ? (double)r.corpus_bytes / r.index_s / 1e6 : 0.0, r.search_s,
               r.nqueries_run ? r.search_s * 1e3 / (double)r.nqueries_run : 0.0);
    }
out:
    qr_options_free(o);
    return code;
}
