/* Retrieval evaluation with trec_eval -c semantics, independent of any
 * retrieval backend (ranked list in, metrics out), plus BEIR readers and a
 * BM25-over-BEIR driver (qr_beir_eval_bm25) used by `quire eval retrieval`.
 *
 * trec_eval semantics reproduced:
 *   - each query's run is sorted by score descending, then by docno descending
 *     (strcmp) on ties, whatever order the hits come in;
 *   - a document is relevant when its qrels level is >= 1; documents absent from
 *     the qrels are non-relevant; qrels rows naming documents that no run can
 *     return (missing from the corpus) still count in the number relevant;
 *   - nDCG@10: gain = relevance level (levels <= 0 give 0), discount
 *     1/log2(rank + 1), ideal DCG from the qrels' levels sorted descending;
 *   - Recall@k: relevant in the top k / number relevant (0 when none);
 *   - MRR@10: 1 / rank of the first relevant document in the top 10, else 0;
 *   - -c: means over every query in the qrels; a query with no run counts 0.
 *     Runs for queries absent from the qrels are ignored. */
#ifndef QR_INDEX_EVAL_H
#define QR_INDEX_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "index/bm25.h"

#define QR_EVAL_MAX_LINE ((size_t)64 << 20) /* bytes of one JSONL/TSV line */
#define QR_EVAL_MAX_ROWS ((size_t)100 << 20) /* lines of one file */
#define QR_EVAL_MAX_ID 1024                 /* bytes of a query or document id */

typedef struct qr_qrels qr_qrels;

int qr_qrels_create(qr_qrels **out);
void qr_qrels_destroy(qr_qrels *q);
/* Adds a judgment (a repeated (qid, docid) pair keeps the last level). */
int qr_qrels_add(qr_qrels *q, const char *qid, const char *docid, int rel);
/* Loads a BEIR qrels TSV: header line, then "query-id TAB corpus-id TAB score";
 * CRLF tolerated; blank lines skipped. */
int qr_qrels_load(qr_qrels *q, const char *path);
size_t qr_qrels_nqueries(const qr_qrels *q);
/* The i-th query id (insertion order); borrowed, lives as long as q. */
const char *qr_qrels_qid(const qr_qrels *q, size_t i);
/* Whether qid has judgments. */
bool qr_qrels_has(const qr_qrels *q, const char *qid);

typedef struct {
    const char *docid; /* borrowed */
    double score;
} qr_eval_hit;

typedef struct {
    double ndcg10, recall100, recall1000, mrr10;
} qr_eval_metrics;

/* Metrics of one query's run. hits is reordered (trec_eval order). A qid with
 * no judgments gives all zeros. */
int qr_eval_query(const qr_qrels *q, const char *qid, qr_eval_hit *hits, size_t n, qr_eval_metrics *out);

/* Accumulator over a whole run. */
typedef struct qr_eval qr_eval;
int qr_eval_create(const qr_qrels *q, qr_eval **out);
void qr_eval_destroy(qr_eval *e);
/* Adds one query's run (hits reordered); a second run for the same qid
 * replaces the first; queries not in the qrels are ignored. */
int qr_eval_add(qr_eval *e, const char *qid, qr_eval_hit *hits, size_t n);
/* Means over all qrels queries (-c); *nqueries = their number. */
int qr_eval_result(const qr_eval *e, qr_eval_metrics *mean, size_t *nqueries);

/* ---- BEIR files ---- */

/* Calls fn for each line of corpus.jsonl ({"_id","title","text"}; title may be
 * absent). Strings borrowed for the call. A non-zero return stops and is returned. */
typedef int (*qr_beir_doc_fn)(const char *id, const char *title, const char *text, void *user);
int qr_beir_read_corpus(const char *path, qr_beir_doc_fn fn, void *user);
/* queries.jsonl ({"_id","text"}); fn gets title = "". */
int qr_beir_read_queries(const char *path, qr_beir_doc_fn fn, void *user);

/* ---- BM25 over a BEIR directory (Anserini "flat" configuration) ---- */

typedef struct {
    const char *split;     /* qrels/<split>.tsv; default "test" */
    qr_bm25_params params; /* k1, b */
    size_t hits;           /* hits per query; default 1000 */
    const char *tmpdir;    /* where the temporary LMDB env goes; NULL = $TMPDIR or /tmp */
} qr_beir_opts;

typedef struct {
    qr_eval_metrics mean;
    size_t ndocs, nqueries_qrels, nqueries_run;
    unsigned long long nterms; /* total analyzed terms in the index (Lucene sumTotalTermFreq) */
    double index_s, search_s;  /* wall seconds */
    size_t corpus_bytes;
} qr_beir_result;

/* Indexes DIR/corpus.jsonl (title + "\n" + text) into a BM25 index in a
 * temporary LMDB env, runs every judged query from DIR/queries.jsonl for
 * opts->hits hits, drops the query's own id from its hits (Anserini
 * removeQuery), and evaluates against DIR/qrels/<split>.tsv. */
int qr_beir_eval_bm25(const char *dir, const qr_beir_opts *opts, qr_beir_result *out);

/* ---- dense retrieval over a BEIR directory (MTEB's protocol) ---- */

/* Embeds n texts into out (n, dim) floats; each text truncated as the model
 * does (max_seq_length). Returns 0 or a negative error code. */
typedef int (*qr_beir_embed_fn)(const char *const *texts, const size_t *lens, int n, float *out, void *user);

typedef struct {
    const char *split;      /* qrels/<split>.tsv; default "test" */
    size_t hits;            /* hits per query; default 1000 */
    int dim;                /* embedding width */
    int batch;              /* texts per embed call; default 32 */
    qr_beir_embed_fn embed; /* the embedder */
    void *user;             /* passed to embed */
} qr_beir_dense_opts;

/* MTEB's retrieval protocol (mteb's DenseRetrievalExactSearch): one vector per
 * document of DIR/corpus.jsonl, embedding (title + " " + text) with leading and
 * trailing white space stripped (text alone when the title is empty), one
 * vector per judged query of DIR/queries.jsonl, exact cosine similarity
 * against every document (vectors L2-normalised here, whatever the embedder
 * returns), the top opts->hits kept, the query's own id dropped (BEIR's
 * ignore_identical_ids) and the run scored against DIR/qrels/<split>.tsv.
 * Documents are embedded longest first in batches (as sentence-transformers
 * orders them), which changes nothing but the padding. out->index_s is the
 * corpus embedding time, out->search_s the queries' (embedding + search). */
int qr_beir_eval_dense(const char *dir, const qr_beir_dense_opts *opts, qr_beir_result *out);

#endif
