/* What `quire search` and `quire ask` share before a query: the store, its
 * embedder, an optional reranker and the retrieval options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/retrieval.h"
#include "common/error.h"
#include "common/log.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"

/* The store's embedder, unless --embedder names one. When the manifest's model is
 * not on this machine, retrieval goes on with BM25 alone (with a warning); an
 * explicitly named embedder that cannot be loaded is an error. The model
 * argument is resolved once and that path is both loaded and checked against
 * the store (qr_retriever_open). */
static int open_embedder(const char *cmd, qr_options *o, cli_retrieval *c)
{
    const qr_manifest *man = qr_store_manifest(c->store);
    if (!man->has_embedder || qr_opt_float(o, QR_OPT_WEIGHT_DENSE) <= 0)
        return -1;
    if (*qr_opt_str(o, QR_OPT_EMBEDDER)) {
        int code = cli_resolve_model(cmd, o, QR_OPT_EMBEDDER, &c->emb_path);
        if (code >= 0)
            return code;
    } else {
        qr_options_set(o, QR_OPT_EMBEDDER, man->embedder.model, QR_SRC_DEFAULT, "the store's manifest");
        if (qr_model_resolve(man->embedder.model, &c->emb_path) != 0) {
            QR_WARN("%s: the store's embedder %s is not available (%s); searching with BM25 only", cmd,
                    man->embedder.model, qr_last_error());
            return -1;
        }
    }
    return cli_load_model(cmd, o, c->emb_path, &c->be_emb, &c->emb);
}

void cli_retrieval_options(const qr_options *o, qr_retrieve_opts *ro)
{
    qr_retrieve_opts_default(ro);
    ro->rrf_k = (float)qr_opt_float(o, QR_OPT_RRF_K);
    ro->w_dense = (float)qr_opt_float(o, QR_OPT_WEIGHT_DENSE);
    ro->w_bm25 = (float)qr_opt_float(o, QR_OPT_WEIGHT_BM25);
    ro->mmr_lambda = (float)qr_opt_float(o, QR_OPT_MMR_LAMBDA);
    ro->dup_threshold = (float)qr_opt_float(o, QR_OPT_DUP_THRESHOLD);
    ro->max_per_doc = (int)qr_opt_int(o, QR_OPT_MAX_PER_DOC);
    ro->rerank_depth = (int)qr_opt_int(o, QR_OPT_RERANK_DEPTH);
    ro->bm25_k1 = (float)qr_opt_float(o, QR_OPT_BM25_K1);
    ro->bm25_b = (float)qr_opt_float(o, QR_OPT_BM25_B);
}

int cli_retrieval_filters(const char *cmd, const qr_options *o, cli_retrieval *c)
{
    size_t nf = qr_opt_count(o, QR_OPT_FILTER);
    if (nf > QR_RETRIEVE_MAX_FILTERS) {
        fprintf(stderr, "quire %s: %zu filters exceed the limit of %d\n", cmd, nf, QR_RETRIEVE_MAX_FILTERS);
        return CLI_EXIT_USAGE;
    }
    c->filters = calloc(nf + 1, sizeof *c->filters);
    c->fcopy = calloc(nf + 1, sizeof *c->fcopy);
    if (!c->filters || !c->fcopy)
        return cli_fail(cmd, QR_ENOMEM, "filters");
    for (; c->nf < nf; c->nf++) {
        size_t i = c->nf;
        c->fcopy[i] = strdup(qr_opt_item(o, QR_OPT_FILTER, i));
        int rc = c->fcopy[i] ? qr_retrieve_parse_filter(c->fcopy[i], &c->filters[i]) : QR_ENOMEM;
        if (rc) {
            c->nf++; /* so close frees this copy too */
            fprintf(stderr, "quire %s: --filter: %s\n", cmd, qr_last_error());
            return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

int cli_retrieval_open(const char *cmd, qr_options *o, const char *dir, cli_retrieval *c)
{
    qr_store_open_opts so = {.readonly = true};
    int rc = qr_store_open(dir, &so, &c->store);
    if (rc)
        return cli_fail(cmd, rc, dir);
    int code = c->emb ? -1 : open_embedder(cmd, o, c);
    if (code >= 0)
        return code;
    if (*qr_opt_str(o, QR_OPT_RERANKER) &&
        (code = cli_open_model(cmd, o, QR_OPT_RERANKER, &c->be_rr, &c->rr)) >= 0)
        return code;
    cli_retrieval_options(o, &c->ro);
    return -1;
}

void cli_retrieval_close(cli_retrieval *c)
{
    if (!c)
        return;
    qr_store_close(c->store);
    qr_model_free(c->emb);
    qr_model_free(c->rr);
    qr_backend_destroy(c->be_emb);
    qr_backend_destroy(c->be_rr);
    free(c->emb_path);
    for (size_t i = 0; c->fcopy && i < c->nf; i++)
        free(c->fcopy[i]);
    free(c->fcopy);
    free(c->filters);
    memset(c, 0, sizeof *c);
}
