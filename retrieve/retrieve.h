/* Retrieval over a store (index/store.h): dense k-NN (FAISS, when the store
 * has an embedder and one is given) and BM25 (index/bm25.h), fused by
 * weighted reciprocal rank fusion, optionally reranked by a cross-encoder,
 * filtered (path glob, metadata key=value) and de-duplicated by MMR.
 *
 * Pipeline of qr_retrieve_query():
 *   1. depth = clamp(max(4k, opts.depth_min), k, QR_RETRIEVE_MAX_DEPTH)
 *      candidates from each retriever (dense: FAISS top-depth over the query
 *      embedding; bm25: index/bm25 top-depth). When filters are set, each
 *      retriever fetches depth * 4 (bounded) and drops non-matching chunks
 *      before ranking, so filters do not starve the result list.
 *   2. Reciprocal rank fusion (Cormack et al. 2009, weighted):
 *        fused(d) = sum over retrievers r that returned d of
 *                   w_r / (rrf_k + rank_r(d)),   rank 1-based, rrf_k = 60
 *      Ties: higher fused score first, then lower chunk id.
 *      With one retriever only (BM25-only store) the order is that
 *      retriever's order.
 *   3. Reranking (when a reranker is given): the top opts.rerank_depth fused
 *      candidates are scored by the cross-encoder (logit of
 *      [CLS] query [SEP] passage [SEP]) and re-sorted by that logit
 *      (candidates below rerank_depth keep their fused order after them).
 *   4. MMR (when opts.mmr_lambda < 1): greedy selection of k from the ordered
 *      candidates maximising
 *        lambda * rel(d) - (1 - lambda) * max_{s selected} sim(d, s)
 *      rel = the candidate's score at this stage rescaled to [0, 1]
 *      (min-max over the candidates); sim = cosine of the stored vectors
 *      when the store has vectors, else Jaccard of the analyzed term sets.
 *      Candidates with sim >= opts.dup_threshold to a selected one are
 *      dropped outright (near-duplicates) whatever lambda is.
 *      Per-document cap (opts.max_per_doc > 0): once a document has that
 *      many passages selected, its other candidates are skipped, so one
 *      long page cannot fill the whole list (the pool holds depth >= 4k
 *      candidates; fewer than k come back only when it runs out). Applied
 *      in the same greedy pass, with or without MMR; without MMR the result
 *      is the uncapped order minus each document's passages past the cap
 *      (so documents keep the order of their best passages).
 *   5. The first k are returned with their chunk/doc records.
 *
 * Threads: a retriever is used by one thread at a time. */
#ifndef QR_RETRIEVE_RETRIEVE_H
#define QR_RETRIEVE_RETRIEVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/store.h"
#include "runtime/models/model.h"

#define QR_RETRIEVE_MAX_K 1000        /* results of one query */
#define QR_RETRIEVE_MAX_DEPTH 10000   /* candidates per retriever (<= QR_VECINDEX_MAX_K) */
#define QR_RETRIEVE_MAX_QUERY 65536   /* bytes of one query */
#define QR_RETRIEVE_MAX_FILTERS 32

typedef struct qr_retriever qr_retriever;

typedef struct qr_retrieve_opts {
    float rrf_k;         /* default 60 */
    float w_dense;       /* RRF weight of the dense retriever; default 1 (0 = off) */
    float w_bm25;        /* RRF weight of BM25; default 1 (0 = off) */
    int depth_min;       /* candidates per retriever at least; default 50 */
    int rerank_depth;    /* candidates scored by the reranker; default 50 */
    float mmr_lambda;    /* 1 = no MMR (default 0.7; duplicates still dropped) */
    float dup_threshold; /* similarity at which a candidate is a duplicate; default 0.95 (> 1 = off) */
    float bm25_k1, bm25_b; /* default 0.9 / 0.4 */
    int max_per_doc;       /* passages per document in the result, 0 = no cap; default 1 */
} qr_retrieve_opts;

void qr_retrieve_opts_default(qr_retrieve_opts *o);

/* A filter: "path" with a glob (fnmatch(3), no flags: '*' matches '/'), or a
 * metadata key with a value that must equal the doc's metadata JSON member
 * (strings compared as is; numbers/booleans by their JSON text, e.g. "3",
 * "true"). All filters must match (AND). */
typedef struct qr_retrieve_filter {
    const char *key;   /* "path" or a metadata key */
    const char *value; /* glob for "path" */
} qr_retrieve_filter;

typedef struct qr_passage {
    uint64_t chunk_id, doc_id;
    char *path, *title, *heading, *text; /* malloc'd with the list */
    int32_t page;                        /* 0 = none */
    uint64_t byte_start, byte_end;
    float score;        /* final score: rerank logit when reranked, else fused RRF score */
    float fused;        /* RRF score */
    float dense;        /* dense similarity (inner product or -squared L2); valid when dense_rank > 0 */
    int dense_rank;     /* 1-based; 0 = not returned by dense */
    float bm25;         /* BM25 score; valid when bm25_rank > 0 */
    int bm25_rank;      /* 1-based; 0 = not returned by BM25 */
    float rerank;       /* cross-encoder logit; valid when reranked */
    bool reranked;
} qr_passage;

typedef struct qr_results {
    qr_passage *items;
    size_t n;
    int n_dense, n_bm25; /* candidates each retriever returned (after filters) */
    double seconds;      /* wall time of the query */
} qr_results;

/* Opens a retriever over an open store (borrowed; must outlive it).
 * embedder: the store's embedder model (NULL: BM25 only); refused with
 * QR_EMISMATCH when its identity (qr_embedder_hash of embedder_path + dim) is
 * not the store's. embedder_path: the model's path for that check (NULL:
 * check the dimension only). reranker: a model loaded for
 * qr_rerank_scores (NULL: none). Both models are borrowed. */
int qr_retriever_open(qr_store *store, qr_model *embedder, const char *embedder_path, qr_model *reranker,
                      const qr_retrieve_opts *opts, qr_retriever **out);
void qr_retriever_close(qr_retriever *r);

/* Top k passages for query (len bytes). filters: n_filters of them (may be
 * NULL). opts NULL: the retriever's. QR_ELIMIT: k > QR_RETRIEVE_MAX_K, query
 * longer than QR_RETRIEVE_MAX_QUERY or too many filters; QR_EINVAL: k < 1 or
 * empty query. *out freed with qr_results_free. */
int qr_retrieve_query(qr_retriever *r, const char *query, size_t len, int k, const qr_retrieve_filter *filters,
                      int n_filters, const qr_retrieve_opts *opts, qr_results *out);
/* Same with another query for BM25 (lex, lex_len bytes; NULL: query): the
 * dense retriever embeds query as asked, BM25 searches lex (e.g. the
 * question's keywords, qr_question_keywords in generate/extract.h, where
 * "how do I" would match every FAQ entry). */
int qr_retrieve_query_lex(qr_retriever *r, const char *query, size_t len, const char *lex, size_t lex_len, int k,
                          const qr_retrieve_filter *filters, int n_filters, const qr_retrieve_opts *opts,
                          qr_results *out);
/* Same with the query's embedding given (dim floats, from the store's
 * embedder: the caller vouches for it; used by benchmarks and by callers that
 * embed in batches). Dense search runs even when the retriever has no model. */
int qr_retrieve_query_vec(qr_retriever *r, const char *query, size_t len, const float *qvec, int k,
                          const qr_retrieve_filter *filters, int n_filters, const qr_retrieve_opts *opts,
                          qr_results *out);
void qr_results_free(qr_results *res); /* accepts NULL and zeroed results */

/* One passage as the JSON object `quire search --json` and POST /v1/search
 * print: rank (1-based, given), score, fused, dense, dense_rank, bm25,
 * bm25_rank, rerank (null when that stage did not score it), chunk_id,
 * doc_id, path, title, page (null when not paged), heading, byte_start,
 * byte_end, text. New reference (caller json_decref's); NULL when out of memory. */
json_t *qr_passage_to_json(const qr_passage *p, int rank);
/* A whole result list as JSON, the shape of `quire search --json` and POST
 * /v1/search: {query, k, dense, reranked, candidates_dense, candidates_bm25,
 * seconds, results: [qr_passage_to_json...]}. NULL when out of memory. */
json_t *qr_results_to_json(const qr_results *res, const char *query, int k, bool dense, bool reranked);

/* Parses "key=value" (CLI --filter) into f (pointers into s, which is
 * modified: '=' replaced by NUL). QR_EINVAL without '=' or empty key. */
int qr_retrieve_parse_filter(char *s, qr_retrieve_filter *f);

/* Reciprocal rank fusion of n ranked lists (exposed for tests): lists[i] has
 * lens[i] ids, best first; weights[i]. Writes up to cap (id, score) pairs,
 * best first (ties: lower id), *n_out = number written. */
int qr_rrf_fuse(const uint64_t *const *lists, const size_t *lens, const float *weights, int n_lists, float rrf_k,
                uint64_t *ids, float *scores, size_t cap, size_t *n_out);

#endif
