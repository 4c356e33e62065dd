/* The retrieval set-up shared by `quire search` and `quire ask`. */
#ifndef QR_CLI_RETRIEVAL_H
#define QR_CLI_RETRIEVAL_H

#include "common/options.h"
#include "index/store.h"
#include "retrieve/retrieve.h"

typedef struct cli_retrieval {
    qr_store *store;             /* opened read-only */
    struct qr_backend *be_emb, *be_rr;
    struct qr_model *emb, *rr;   /* NULL: BM25 only / no reranking */
    char *emb_path;              /* resolved embedder path (malloc'd) */
    qr_retrieve_opts ro;         /* from the option table */
    qr_retrieve_filter *filters; /* parsed --filter values (point into fcopy) */
    char **fcopy;
    size_t nf;
} cli_retrieval;

/* Parses the --filter options (path=GLOB, key=value) into c->filters, within
 * QR_RETRIEVE_MAX_FILTERS. c must be zero-initialised. Returns -1 or an exit code. */
int cli_retrieval_filters(const char *cmd, const qr_options *o, cli_retrieval *c);

/* Opens the store at dir, its embedder (the manifest's model unless --embedder),
 * the optional --reranker, and fills ro (c zero-initialised, or holding only
 * filters, or an embedder the caller loaded already: emb, be_emb and emb_path
 * set, which are used as they are and freed by cli_retrieval_close). Returns -1 to continue, or an exit
 * code after printing the error; close with cli_retrieval_close either way
 * (the retriever made from it must be closed first). */
int cli_retrieval_open(const char *cmd, qr_options *o, const char *dir, cli_retrieval *c);
void cli_retrieval_close(cli_retrieval *c);

/* The retrieval options of the option table (rrf-k, weights, MMR, duplicates,
 * rerank depth, BM25 k1 and b) over qr_retrieve_opts_default. */
void cli_retrieval_options(const qr_options *o, qr_retrieve_opts *ro);

#endif
