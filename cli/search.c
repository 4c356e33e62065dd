/* quire search "query" --store DIR [-k N] [--filter path=GLOB] [--filter key=value] [--json]
 *
 * Hybrid retrieval (retrieve/retrieve.h): dense k-NN when the store has an
 * embedder (the store's model, or --embedder, which must be the same
 * embedder), BM25, weighted reciprocal rank fusion, optional cross-encoder
 * reranking (--reranker), MMR / near-duplicate suppression, filters.
 * BM25 searches the question's keywords (qr_question_keywords: "How do I"
 * dropped, as quire ask does); the dense retriever embeds the query as given. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/retrieval.h"
#include "common/error.h"
#include "common/log.h"
#include "generate/extract.h"
#include "index/store.h"
#include "ingest/reader.h"
#include "retrieve/retrieve.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

#define SNIPPET_BYTES 240

/* Whitespace collapsed, at most SNIPPET_BYTES bytes cut on a UTF-8 boundary. */
static void snippet(const char *t, char *out, size_t cap)
{
    size_t o = 0;
    bool sp = false;
    size_t lim = cap - 4 < SNIPPET_BYTES ? cap - 4 : SNIPPET_BYTES;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            sp = o > 0;
            continue;
        }
        if (sp) {
            if (o + 1 >= lim)
                goto cut;
            out[o++] = ' ';
            sp = false;
        }
        if (o + 1 >= lim && (*p & 0xC0) != 0x80)
            goto cut;
        if (o + 1 >= lim + 3) /* continuation bytes finishing a character may overrun by 3 */
            goto cut;
        out[o++] = (char)*p;
    }
    out[o] = '\0';
    return;
cut:
    while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
        o--;
    if (o > 0 && ((unsigned char)out[o - 1] & 0x80))
        o--; /* lead byte of a character cut short */
    memcpy(out + o, "...", 4);
}

int cli_search(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_STORE, QR_OPT_K,          QR_OPT_FILTER,       QR_OPT_JSON,        QR_OPT_EMBEDDER,
                                  QR_OPT_RERANKER,   QR_OPT_RRF_K,        QR_OPT_WEIGHT_DENSE, QR_OPT_WEIGHT_BM25,
                                  QR_OPT_MMR_LAMBDA, QR_OPT_DUP_THRESHOLD, QR_OPT_MAX_PER_DOC, QR_OPT_RERANK_DEPTH, QR_OPT_DTYPE, QR_OPT_ACT_DTYPE,
                                  QR_OPT_THREADS,    QR_OPT_DEVICE,       QR_OPT_LOG_LEVEL,   QR_OPT_BM25_K1,      QR_OPT_BM25_B,      -1};
    /* -k N is spelled --k N for the option parser. */
    const char *dir = NULL;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fprintf(stderr, "quire search: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    int na = 0;
    static char kflag[] = "--k";
    const char *query = NULL;
    int n_query = 0;
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i == 0) {
            args[na++] = argv[i];
        } else if (rest || a[0] != '-' || a[1] == '\0') {
            query = a; /* the query (positional); cli_load_options takes none */
            n_query++;
        } else if (strcmp(a, "--") == 0) {
            rest = true;
        } else {
            /* a flag; one taking a value carries the next argument with it */
            args[na++] = strcmp(a, "-k") == 0 ? kflag : argv[i];
            const char *name = strcmp(a, "-k") == 0 ? "k" : a + 2;
            int id = strchr(a, '=') ? -1 : qr_option_find(name);
            if (id >= 0 && qr_option_def_at(id)->type != QR_OPT_BOOL && i + 1 < argc)
                args[na++] = argv[++i];
        }
    }
    qr_options *o = NULL;
    cli_retrieval cr = {0};
    qr_retriever *r = NULL;
    qr_results res = {0};
    char *keywords = NULL;
    int code = cli_load_options(
        "search", "\"query\" --store DIR [-k N] [--filter path=GLOB] [--filter key=value] [--json]",
        "Hybrid search of a store: dense k-NN (when the store has an embedder: its model, or --embedder naming\n"
        "the same one) and BM25, fused by reciprocal rank fusion (score = sum of weight / (rrf-k + rank)),\n"
        "optionally reranked by a cross-encoder (--reranker), with near-duplicates suppressed by MMR.\n"
        "--filter path=GLOB matches the document path (fnmatch); --filter key=value a metadata member.\n"
        "Prints rank, score, file, page, heading path and a snippet; --json prints one JSON object.",
        na, args, allowed, &o);
    if (code >= 0)
        goto out;
    code = CLI_EXIT_OK;
    if (n_query != 1) {
        fprintf(stderr, "quire search: expected one query argument (quote it), got %d\n", n_query);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    size_t qlen = strlen(query);
    if (qlen > QR_RETRIEVE_MAX_QUERY) {
        fprintf(stderr, "quire search: query of %zu bytes exceeds the limit of %d\n", qlen, QR_RETRIEVE_MAX_QUERY);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    dir = qr_opt_str(o, QR_OPT_STORE); /* flag, QUIRE_STORE or the config file */
    if (!*dir) {
        fprintf(stderr, "quire search: --store DIR is required\n");
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if ((code = cli_retrieval_filters("search", o, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;

    if ((code = cli_retrieval_open("search", o, dir, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    int rc;
    int k = (int)qr_opt_int(o, QR_OPT_K);
    if ((rc = qr_question_keywords(query, &keywords))) {
        code = cli_fail("search", rc, "query keywords");
        goto out;
    }
    QR_DEBUG("search: BM25 query \"%s\"", keywords);
    if ((rc = qr_retriever_open(cr.store, cr.emb, cr.emb_path, cr.rr, &cr.ro, &r)) ||
        (rc = qr_retrieve_query_lex(r, query, qlen, keywords, strlen(keywords), k, cr.filters, (int)cr.nf, NULL,
                                    &res))) {
        code = rc == QR_ELIMIT || rc == QR_EINVAL ? CLI_EXIT_USAGE : cli_exit_code(rc);
        fprintf(stderr, "quire search: %s\n", qr_last_error());
        goto out;
    }
    if (qr_opt_bool(o, QR_OPT_JSON)) {
        json_t *j = qr_results_to_json(&res, query, k, cr.emb != NULL, cr.rr != NULL);
        if (j) /* the CLI also says which store */
            json_object_set_new(j, "store", json_string(dir));
        char *t = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        json_decref(j);
        if (!t) {
            code = cli_fail("search", QR_ENOMEM, "JSON output");
            goto out;
        }
        printf("%s\n", t);
        free(t);
    } else {
        if (res.n == 0)
            printf("no results\n");
        for (size_t i = 0; i < res.n; i++) {
            const qr_passage *p = &res.items[i];
            char sn[SNIPPET_BYTES + 8], page[32] = "";
            snippet(p->text, sn, sizeof sn);
            if (p->page)
                snprintf(page, sizeof page, "  %s %d", strcmp(qr_page_label(p->path), "cell") ? "p." : "cell",
                         (int)p->page); // a notebook's page is its cell number
            printf("%zu. [%.4f] %s%s%s%s\n", i + 1, (double)p->score, p->path, page, *p->heading ? "  § " : "",
                   p->heading);
            printf("   %s\n", sn);
        }
        QR_INFO("search: %zu results in %.1f ms (%d dense, %d bm25 candidates%s)", res.n, res.seconds * 1e3,
                res.n_dense, res.n_bm25, cr.rr ? ", reranked" : "");
    }
out:
    free(keywords);
    qr_results_free(&res);
    qr_retriever_close(r);
    cli_retrieval_close(&cr);
    qr_options_free(o);
    free(args);
    return code;
}
