/* quire tokenize --model M [--add-special] [--jsonl]
 * Without --jsonl the whole of stdin is one text and one JSON array of ids is
 * printed. With --jsonl each stdin line is a JSON string and each output line
 * the JSON array of its ids, in order. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/weights/weights.h"

typedef struct {
    const qr_tokenizer *tok;
    bool add_special;
} tok_ctx;

static int print_ids(const tok_ctx *c, const char *text, size_t len, const char *where)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = qr_tokenize(c->tok, text, len, c->add_special, &ids, &n);
    if (rc)
        return cli_fail("tokenize", rc, where);
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", (int)ids[i]);
    fputs("]\n", stdout);
    fflush(stdout);
    free(ids);
    return CLI_EXIT_OK;
}

static int on_line(const char *line, size_t len, size_t lineno, void *user)
{
    char where[64];
    snprintf(where, sizeof where, "stdin line %zu", lineno);
    json_error_t err;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j || !json_is_string(j)) {
        fprintf(stderr, "quire tokenize: %s: expected a JSON string (\"text\"), %s%s\n", where,
                j ? "got another JSON value" : "invalid JSON: ", j ? "" : err.text);
        json_decref(j);
        return CLI_EXIT_INPUT;
    }
    int code = print_ids(user, json_string_value(j), json_string_length(j), where);
    json_decref(j);
    return code;
}

int cli_tokenize(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_MODEL, QR_OPT_ADD_SPECIAL, QR_OPT_JSONL, QR_OPT_MAX_LINE_BYTES,
                                  QR_OPT_MAX_LINES, QR_OPT_LOG_LEVEL, -1};
    qr_options *o = NULL;
    char *path = NULL, *text = NULL;
    qr_tokenizer *tok = NULL;
    int code = cli_load_options("tokenize", "--model M [--add-special] [--jsonl] < input",
                                "Prints token ids as JSON arrays. Without --jsonl the whole of stdin is one text;\n"
                                "with --jsonl each stdin line is a JSON string and each output line its ids.",
                                argc, argv, allowed, &o);
    if (code >= 0)
        return code;
    if ((code = cli_resolve_model("tokenize", o, QR_OPT_MODEL, &path)) >= 0)
        goto fail;
    int rc = qr_tokenizer_load(path, &tok);
    if (rc) {
        code = cli_fail("tokenize", rc, "loading the tokenizer");
        goto fail;
    }
    tok_ctx c = {tok, qr_opt_bool(o, QR_OPT_ADD_SPECIAL)};
    if (qr_opt_bool(o, QR_OPT_JSONL)) {
        code = cli_read_lines("tokenize", o, on_line, &c);
    } else {
        size_t len = 0;
        if ((code = cli_read_all("tokenize", o, &text, &len)) == 0)
            code = print_ids(&c, text, len, "stdin");
    }
fail:
    free(text);
    qr_tokenizer_free(tok);
    free(path);
    qr_options_free(o);
    return code;
}
