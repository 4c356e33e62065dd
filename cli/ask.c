/* quire ask "question" --store DIR [--model M] [-k N] [--max-tokens N] [--json]
 *
 * Retrieval as quire search (retrieve/retrieve.h), then a cited answer
 * (generate/answer.h):
 *   - with --model (a language model): the top k passages become numbered
 *     sources in the prompt (the model's chat template; a model without one,
 *     e.g. a base GGUF, gets the plain "INSTRUCTION / Sources / Question /
 *     Answer:" format of generate/prompt.h), fitted to --ctx minus
 *     --max-tokens (lowest-ranked sources dropped whole and listed). The
 *     answer streams to stdout as it is generated; citations that name no
 *     source are removed while streaming (only an open "[..." is held back
 *     a moment). The source list follows the answer.
 *   - without --model: an extractive answer, the best sentences of the top
 *     passages with the same [n] citations.
 * BM25 searches the question's keywords (qr_question_keywords: "How do I ..."
 * words dropped), as quire search does; dense retrieval embeds the question
 * as asked, and the LLM sees it as asked.
 * Human output: the answer, then "Sources:" with [n] file, page, section and
 * byte span of each used source (cited ones marked), then dropped ones.
 * --json: one object (generate/answer.h qr_answer_to_json) after the run,
 * nothing streamed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/retrieval.h"
#include "common/error.h"
#include "common/log.h"
#include "generate/answer.h"
#include "generate/chat.h"
#include "index/store.h"
#include "retrieve/retrieve.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

static int print_piece(const char *p, size_t n, void *user)
{
    bool *ends_nl = user;
    fwrite(p, 1, n, stdout);
    fflush(stdout);
    if (n) *ends_nl = p[n - 1] == '\n';
    return 0;
}

static void print_sources(const qr_answer *a, const qr_source *src)
{
    printf("\nSources:\n");
    for (size_t i = 0; i < a->n_sources; i++) {
        if (a->status[i] != QR_SRC_USED) continue;
        bool cited = false;
        for (size_t k = 0; k < a->cites.n_cited; k++) cited |= (size_t)a->cites.cited[k] == i + 1;
        char *label = NULL;
        if (qr_source_label(&src[i], &label)) continue;
        printf("%s[%zu] %s, bytes %zu-%zu\n", cited ? "* " : "  ", i + 1, label, src[i].off,
               src[i].off + src[i].len);
        free(label);
    }
    size_t nd = 0;
    for (size_t i = 0; i < a->n_sources; i++) nd += a->status[i] != QR_SRC_USED;
    if (nd) {
        printf("Not used (%zu):\n", nd);
        for (size_t i = 0; i < a->n_sources; i++) {
            if (a->status[i] == QR_SRC_USED) continue;
            char *label = NULL;
            if (qr_source_label(&src[i], &label)) continue;
            printf("  - %s (%s)\n", label, a->status[i] == QR_SRC_DROPPED_LENGTH ? "dropped: prompt length"
                                                                                 : "not considered");
            free(label);
        }
    }
    if (a->cites.n_removed) {
        printf("Removed citations of sources that do not exist:");
        for (size_t k = 0; k < a->cites.n_removed; k++) printf(" [%d]", a->cites.removed[k]);
        printf("\n");
    }
    if (a->cites.n_cited) printf("(* = cited in the answer)\n");
}

int cli_ask(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_K,           QR_OPT_JSON,          QR_OPT_EMBEDDER,     QR_OPT_MODEL,
                                  QR_OPT_MAX_TOKENS,  QR_OPT_CTX,           QR_OPT_TEMPERATURE,  QR_OPT_TOP_K,
                                  QR_OPT_TOP_P,       QR_OPT_MIN_P,         QR_OPT_REPEAT_PENALTY, QR_OPT_REPEAT_LAST_N,
                                  QR_OPT_SEED,        QR_OPT_RERANKER,      QR_OPT_RRF_K,        QR_OPT_WEIGHT_DENSE,
                                  QR_OPT_WEIGHT_BM25, QR_OPT_MMR_LAMBDA,    QR_OPT_DUP_THRESHOLD, QR_OPT_MAX_PER_DOC, QR_OPT_RERANK_DEPTH,
                                  QR_OPT_FILTER,      QR_OPT_DTYPE, QR_OPT_ACT_DTYPE,         QR_OPT_THREADS,      QR_OPT_DEVICE, QR_OPT_TP,
                                  QR_OPT_LOG_LEVEL,   QR_OPT_BM25_K1, QR_OPT_BM25_B,   QR_OPT_STORE,         -1};
    /* -k N is spelled --k N for the option parser. */
    const char *dir = NULL, *question = NULL;
    int n_q = 0;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        fprintf(stderr, "quire ask: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    int na = 0;
    static char kflag[] = "--k";
    bool rest = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i == 0) {
            args[na++] = argv[i];
        } else if (rest || a[0] != '-' || a[1] == '\0') {
            question = a;
            n_q++;
        } else if (strcmp(a, "--") == 0) {
            rest = true;
        } else {
            args[na++] = strcmp(a, "-k") == 0 ? kflag : argv[i];
            const char *name = strcmp(a, "-k") == 0 ? "k" : a + 2;
            int id = strchr(a, '=') ? -1 : qr_option_find(name);
            if (id >= 0 && qr_option_def_at(id)->type != QR_OPT_BOOL && i + 1 < argc) args[na++] = argv[++i];
        }
    }
    qr_options *o = NULL;
    cli_retrieval cr = {0};
    qr_backend *be_m = NULL;
    qr_model *llm = NULL;
    char *llm_path = NULL, *keywords = NULL;
    qr_chat_template *tmpl = NULL;
    qr_retriever *r = NULL;
    qr_results res = {0};
    qr_source *src = NULL;
    qr_answer ans;
    memset(&ans, 0, sizeof ans);
    int code = cli_load_options(
        "ask", "\"question\" --store DIR [--model M] [-k N] [--max-tokens N] [--json]",
        "Answers a question from a store with citations [n] to file, page, section and byte span.\n"
        "Retrieval as quire search (-k passages). With --model (a language model: directory, .gguf, HF id or\n"
        "ollama:NAME) the passages become numbered sources in the prompt, fitted to --ctx minus --max-tokens\n"
        "(lowest-ranked sources dropped whole and listed), and the answer streams as it is generated;\n"
        "citations naming no source are removed. Without --model the answer is extractive: the best\n"
        "sentences of the top passages, cited the same way. --json prints one object: answer, citations,\n"
        "used and dropped sources.",
        na, args, allowed, &o);
    if (code >= 0) goto out;
    code = CLI_EXIT_OK;
    if (n_q != 1) {
        fprintf(stderr, "quire ask: expected one question argument (quote it), got %d\n", n_q);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    size_t qlen = strlen(question);
    if (qlen == 0 || qlen > QR_RETRIEVE_MAX_QUERY) {
        fprintf(stderr, "quire ask: the question must have 1 to %d bytes (got %zu)\n", QR_RETRIEVE_MAX_QUERY, qlen);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    dir = qr_opt_str(o, QR_OPT_STORE); /* flag, QUIRE_STORE or the config file */
    if (!*dir) {
        fprintf(stderr, "quire ask: --store DIR is required\n");
        code = CLI_EXIT_USAGE;
        goto out;
    }
    bool json = qr_opt_bool(o, QR_OPT_JSON);
    if ((code = cli_retrieval_filters("ask", o, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    /* The language model first: a bad --model fails before any work. */
    if (*qr_opt_str(o, QR_OPT_MODEL)) {
        if ((code = cli_resolve_model("ask", o, QR_OPT_MODEL, &llm_path)) >= 0 ||
            (code = cli_load_llm("ask", o, llm_path, &be_m, &llm)) >= 0)
            goto out;
        code = CLI_EXIT_OK;
        int rc = qr_chat_template_for_model(llm_path, &tmpl);
        if (rc) {
            code = cli_fail("ask", rc, "chat template");
            goto out;
        }
        if (!tmpl)
            QR_INFO("ask: %s has no chat template; using the plain prompt format", qr_opt_str(o, QR_OPT_MODEL));
    }
    if ((code = cli_retrieval_open("ask", o, dir, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    int rc;
    int k = (int)qr_opt_int(o, QR_OPT_K);
    /* BM25 searches the question's keywords (question words dropped, see
     * qr_question_keywords), as quire search does; the dense retriever
     * embeds the question as asked. */
    if ((rc = qr_question_keywords(question, &keywords))) {
        code = cli_fail("ask", rc, "question keywords");
        goto out;
    }
    QR_DEBUG("ask: BM25 query \"%s\"", keywords);
    if ((rc = qr_retriever_open(cr.store, cr.emb, cr.emb_path, cr.rr, &cr.ro, &r)) ||
        (rc = qr_retrieve_query_lex(r, question, strlen(question), keywords, strlen(keywords), k, cr.filters,
                                    (int)cr.nf, NULL, &res))) {
        code = rc == QR_ELIMIT || rc == QR_EINVAL ? CLI_EXIT_USAGE : cli_exit_code(rc);
        fprintf(stderr, "quire ask: %s\n", qr_last_error());
        goto out;
    }
    if (res.n && !(src = calloc(res.n, sizeof *src))) {
        code = cli_fail("ask", QR_ENOMEM, "sources");
        goto out;
    }
    qr_sources_from_results(&res, src);
    qr_answer_opts ao;
    qr_answer_opts_default(&ao);
    bool ends_nl = true;
    if (!json) {
        ao.on_text = print_piece;
        ao.user = &ends_nl;
    }
    ao.extract.max_sources = res.n;
    if (llm) {
        ao.model = llm;
        ao.tmpl = tmpl;
        ao.n_ctx = (int)qr_opt_int(o, QR_OPT_CTX);
        const qr_model_config *cfg = qr_model_cfg(llm);
        if (cfg->max_pos > 0 && cfg->max_pos < ao.n_ctx) {
            QR_INFO("ask: context %d limited to the model's max_position_embeddings %d", ao.n_ctx, (int)cfg->max_pos);
            ao.n_ctx = (int)cfg->max_pos;
        }
        ao.sample.temperature = (float)qr_opt_float(o, QR_OPT_TEMPERATURE);
        ao.sample.top_k = (int)qr_opt_int(o, QR_OPT_TOP_K);
        ao.sample.top_p = (float)qr_opt_float(o, QR_OPT_TOP_P);
        ao.sample.min_p = (float)qr_opt_float(o, QR_OPT_MIN_P);
        ao.sample.repeat_penalty = (float)qr_opt_float(o, QR_OPT_REPEAT_PENALTY);
        ao.sample.repeat_last_n = (int)qr_opt_int(o, QR_OPT_REPEAT_LAST_N);
        ao.sample.seed = (uint64_t)qr_opt_int(o, QR_OPT_SEED);
        ao.sample.max_tokens = (int)qr_opt_int(o, QR_OPT_MAX_TOKENS);
        if (ao.sample.max_tokens >= ao.n_ctx) {
            fprintf(stderr, "quire ask: max-tokens %d leaves no room for the prompt in a context of %d\n",
                    ao.sample.max_tokens, ao.n_ctx);
            code = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (res.n == 0 && !json) {
        printf("No passage in the store matches the question.\n");
        goto out;
    }
    if ((rc = qr_answer_run(question, src, res.n, &ao, &ans))) {
        if (!ends_nl) putchar('\n');
        code = rc == QR_ELIMIT ? CLI_EXIT_USAGE : cli_exit_code(rc);
        fprintf(stderr, "quire ask: %s\n", qr_last_error());
        goto out;
    }
    if (json) {
        json_t *j = NULL;
        if ((rc = qr_answer_to_json(&ans, question, src, &j))) {
            code = cli_fail("ask", rc, "JSON output");
            goto out;
        }
        json_object_set_new(j, "store", json_string(dir));
        json_object_set_new(j, "k", json_integer(k));
        if (llm) json_object_set_new(j, "model", json_string(qr_opt_str(o, QR_OPT_MODEL)));
        char *t = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        json_decref(j);
        if (!t) {
            code = cli_fail("ask", QR_ENOMEM, "JSON output");
            goto out;
        }
        printf("%s\n", t);
        free(t);
    } else {
        if (!*ans.text) printf(ans.extractive ? "No sentence of the top passages matches the question."
                                              : "(the model produced no answer)");
        if (!ends_nl || !*ans.text) putchar('\n');
        print_sources(&ans, src);
        if (!ans.extractive)
            QR_INFO("ask: %d prompt tokens in %.2f s, %d generated in %.2f s, finish: %s", ans.n_prompt,
                    ans.prefill_s, ans.n_generated, ans.decode_s, ans.finish ? ans.finish : "?");
    }
out:
    fflush(stdout);
    qr_answer_free(&ans);
    free(src);
    qr_results_free(&res);
    qr_retriever_close(r);
    cli_retrieval_close(&cr);
    qr_chat_template_free(tmpl);
    qr_model_free(llm);
    qr_backend_destroy(be_m);
    free(llm_path);
    free(keywords);
    qr_options_free(o);
    free(args);
    return code;
}
