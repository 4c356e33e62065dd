/* quire generate --model M --prompt TEXT [--max-tokens N] [--temperature T] [--ids] [--json]
 * Streams the completion to stdout; with --ids the generated ids follow as a
 * JSON array on the last line; with --json nothing streams and one JSON object
 * (text, ids, finish, token counts, timings) is printed at the end. The prompt is tokenized with the tokenizer's
 * special tokens (BOS for Llama-style vocabularies); an empty prompt starts
 * from BOS. On a terminal, timing stats go to stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

typedef struct {
    bool ends_with_newline;
    bool any;
    bool quiet; /* --json: print nothing while generating */
} gen_ctx;

static int on_token(int32_t id, const char *piece, void *user)
{
    (void)id;
    gen_ctx *c = user;
    size_t n = strlen(piece);
    if (n && !c->quiet) {
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
        c->ends_with_newline = piece[n - 1] == '\n';
        c->any = true;
    }
    return 0;
}

static int print_json(const qr_gen_result *r)
{
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < r->n_ids; i++)
        json_array_append_new(ids, json_integer(r->ids[i]));
    json_t *j = json_pack("{s:s, s:o, s:s, s:i, s:I, s:f, s:f}", "text", r->text ? r->text : "", "ids", ids,
                          "finish", r->finish ? r->finish : "?", "prompt_tokens", r->n_prompt,
                          "completion_tokens", (json_int_t)r->n_ids, "prefill_s", r->prefill_s, "decode_s",
                          r->decode_s);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) {
        fprintf(stderr, "quire generate: out of memory formatting JSON\n");
        return CLI_EXIT_ERROR;
    }
    puts(s);
    free(s);
    return CLI_EXIT_OK;
}

int cli_generate(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_MODEL, QR_OPT_PROMPT, QR_OPT_MAX_TOKENS, QR_OPT_TEMPERATURE, QR_OPT_TOP_K,
                                  QR_OPT_TOP_P, QR_OPT_MIN_P, QR_OPT_REPEAT_PENALTY, QR_OPT_REPEAT_LAST_N,
                                  QR_OPT_SEED, QR_OPT_STOP, QR_OPT_IDS, QR_OPT_JSON, QR_OPT_DTYPE, QR_OPT_ACT_DTYPE, QR_OPT_THREADS,
                                  QR_OPT_DEVICE, QR_OPT_TP, QR_OPT_CTX, QR_OPT_LOG_LEVEL, -1};
    qr_options *o = NULL;
    qr_backend *be = NULL;
    qr_model *m = NULL;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    int code = cli_load_options("generate",
                                "--model M --prompt TEXT [--max-tokens N] [--temperature T] [--ids] [--json]",
                                "Streams a completion of TEXT to stdout (--temperature 0: greedy). With --ids the\n"
                                "generated token ids follow as a JSON array on the last line. With --json one\n"
                                "object {text, ids, finish, prompt_tokens, completion_tokens, prefill_s, decode_s}\n"
                                "is printed when generation ends.",
                                argc, argv, allowed, &o);
    if (code >= 0)
        return code;
    if ((code = cli_open_llm("generate", o, QR_OPT_MODEL, &be, &m)) >= 0)
        goto fail;
    const qr_model_config *cfg = qr_model_cfg(m);
    const char *text = qr_opt_str(o, QR_OPT_PROMPT);
    const qr_tokenizer *tok = qr_model_tokenizer(m);
    int rc = 0;
    if (!tok && *text) {
        fprintf(stderr, "quire generate: %s has no usable tokenizer, so --prompt cannot be tokenized (an empty "
                        "prompt starts from BOS)\n", qr_opt_str(o, QR_OPT_MODEL));
        code = CLI_EXIT_UNSUPPORTED;
        goto fail;
    }
    if (tok)
        rc = qr_tokenize(tok, text, strlen(text), true, &prompt, &n_prompt);
    if (rc) {
        code = cli_fail("generate", rc, "tokenizing the prompt");
        goto fail;
    }
    if (n_prompt == 0) {
        /* Nothing to condition on: start from BOS, as the model was trained. */
        int32_t bos = cfg->bos_id >= 0 ? cfg->bos_id : tok ? qr_tokenizer_bos(tok) : -1;
        if (bos < 0) {
            fprintf(stderr, "quire generate: --prompt is empty and the model has no BOS token to start from\n");
            code = CLI_EXIT_USAGE;
            goto fail;
        }
        free(prompt);
        if (!(prompt = malloc(sizeof *prompt))) {
            code = CLI_EXIT_ERROR;
            goto fail;
        }
        prompt[0] = bos;
        n_prompt = 1;
    }
    int64_t ctx = qr_opt_int(o, QR_OPT_CTX), max_tokens = qr_opt_int(o, QR_OPT_MAX_TOKENS);
    if ((int64_t)n_prompt + max_tokens > ctx) {
        fprintf(stderr, "quire generate: prompt (%zu tokens) + max-tokens (%lld, %s) exceed ctx = %lld (%s)\n",
                n_prompt, (long long)max_tokens, qr_opt_origin(o, QR_OPT_MAX_TOKENS), (long long)ctx,
                qr_opt_origin(o, QR_OPT_CTX));
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    if (cfg->max_pos > 0 && (int64_t)n_prompt + max_tokens > cfg->max_pos)
        QR_WARN("prompt + max-tokens = %lld exceeds the model's max_position_embeddings %d",
                (long long)((int64_t)n_prompt + max_tokens), (int)cfg->max_pos);
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.temperature = (float)qr_opt_float(o, QR_OPT_TEMPERATURE);
    p.top_k = (int)qr_opt_int(o, QR_OPT_TOP_K);
    p.top_p = (float)qr_opt_float(o, QR_OPT_TOP_P);
    p.min_p = (float)qr_opt_float(o, QR_OPT_MIN_P);
    p.repeat_penalty = (float)qr_opt_float(o, QR_OPT_REPEAT_PENALTY);
    p.repeat_last_n = (int)qr_opt_int(o, QR_OPT_REPEAT_LAST_N);
    p.seed = (uint64_t)qr_opt_int(o, QR_OPT_SEED);
    p.max_tokens = (int)max_tokens;
    p.stop = qr_opt_items(o, QR_OPT_STOP);
    p.n_stop = (int)qr_opt_count(o, QR_OPT_STOP);
    gen_ctx gc = {false, false, qr_opt_bool(o, QR_OPT_JSON)};
    if ((rc = qr_generate(m, prompt, n_prompt, &p, on_token, &gc, &res))) {
        if (gc.any)
            putchar('\n');
        code = cli_fail("generate", rc, "generation");
        goto fail;
    }
    if (gc.quiet) {
        code = print_json(&res);
        goto fail;
    }
    if (!gc.any || !gc.ends_with_newline)
        putchar('\n');
    if (qr_opt_bool(o, QR_OPT_IDS)) {
        putchar('[');
        for (size_t i = 0; i < res.n_ids; i++)
            printf(i ? ", %d" : "%d", (int)res.ids[i]);
        fputs("]\n", stdout);
    }
    fflush(stdout);
    if (isatty(STDERR_FILENO) || qr_log_get_level() >= QR_LOG_DEBUG)
        fprintf(stderr, "quire generate: %d prompt tokens in %.3f s (%.1f tok/s), %zu generated in %.3f s "
                        "(%.1f tok/s), finish: %s\n",
                res.n_prompt, res.prefill_s, res.prefill_s > 0 ? res.n_prompt / res.prefill_s : 0.0, res.n_ids,
                res.decode_s, res.decode_s > 0 ? (double)res.n_ids / res.decode_s : 0.0,
                res.finish ? res.finish : "?");
    code = CLI_EXIT_OK;
fail:
    qr_gen_result_free(&res);
    free(prompt);
    qr_model_free(m);
    qr_backend_destroy(be);
    qr_options_free(o);
    return code;
}
