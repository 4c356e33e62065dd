/* quire embed --model M [--dtype D] [--batch B] --jsonl
 * Each stdin line is a JSON string; each output line the embedding as a JSON
 * array of floats printed with %.9g (enough digits to round-trip an f32).
 * Without --jsonl the whole of stdin is one text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

typedef struct {
    qr_model *m;
    int d, cap, n;
    char **texts;
    size_t *lens;
    float *out; /* (cap, d) */
    size_t first_line;
} embed_ctx;

static int flush_batch(embed_ctx *c)
{
    if (c->n == 0)
        return CLI_EXIT_OK;
    int rc = qr_embed_texts(c->m, (const char *const *)c->texts, c->lens, c->n, c->out);
    if (rc) {
        char where[96];
        snprintf(where, sizeof where, "stdin lines %zu..%zu", c->first_line, c->first_line + (size_t)c->n - 1);
        return cli_fail("embed", rc, where);
    }
    for (int i = 0; i < c->n; i++) {
        const float *v = c->out + (size_t)i * (size_t)c->d;
        putchar('[');
        for (int k = 0; k < c->d; k++)
            printf(k ? ", %.9g" : "%.9g", (double)v[k]);
        fputs("]\n", stdout);
        free(c->texts[i]);
        c->texts[i] = NULL;
    }
    fflush(stdout);
    c->first_line += (size_t)c->n;
    c->n = 0;
    return CLI_EXIT_OK;
}

static int add_text(embed_ctx *c, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        fprintf(stderr, "quire embed: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    c->texts[c->n] = copy;
    c->lens[c->n++] = len;
    return c->n == c->cap ? flush_batch(c) : CLI_EXIT_OK;
}

static int on_line(const char *line, size_t len, size_t lineno, void *user)
{
    json_error_t err;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j || !json_is_string(j)) {
        fprintf(stderr, "quire embed: stdin line %zu: expected a JSON string (\"text\"), %s%s\n", lineno,
                j ? "got another JSON value" : "invalid JSON: ", j ? "" : err.text);
        json_decref(j);
        return CLI_EXIT_INPUT;
    }
    int code = add_text(user, json_string_value(j), json_string_length(j));
    json_decref(j);
    return code;
}

int cli_embed(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_MODEL, QR_OPT_EMBEDDER, QR_OPT_DTYPE, QR_OPT_ACT_DTYPE, QR_OPT_JSONL, QR_OPT_BATCH,
                                  QR_OPT_THREADS, QR_OPT_DEVICE, QR_OPT_MAX_LINE_BYTES, QR_OPT_MAX_LINES,
                                  QR_OPT_LOG_LEVEL, -1};
    qr_options *o = NULL;
    qr_backend *be = NULL;
    qr_model *m = NULL;
    char *text = NULL;
    embed_ctx c;
    memset(&c, 0, sizeof c);
    int code = cli_load_options("embed", "--model M [--dtype D] [--batch B] --jsonl < input",
                                "Prints one embedding per input as a JSON array of floats (%.9g, round-trips f32).\n"
                                "With --jsonl each stdin line is a JSON string; without, the whole of stdin is one "
                                "text.\n--model falls back to the embedder option.",
                                argc, argv, allowed, &o);
    if (code >= 0)
        return code;
    int id = *qr_opt_str(o, QR_OPT_MODEL) || !*qr_opt_str(o, QR_OPT_EMBEDDER) ? QR_OPT_MODEL : QR_OPT_EMBEDDER;
    if ((code = cli_open_model("embed", o, id, &be, &m)) >= 0)
        goto fail;
    c.m = m;
    c.d = qr_model_cfg(m)->d_model;
    c.cap = (int)qr_opt_int(o, QR_OPT_BATCH);
    c.first_line = 1;
    c.texts = calloc((size_t)c.cap, sizeof *c.texts);
    c.lens = calloc((size_t)c.cap, sizeof *c.lens);
    c.out = malloc((size_t)c.cap * (size_t)c.d * sizeof *c.out);
    if (!c.texts || !c.lens || !c.out) {
        fprintf(stderr, "quire embed: out of memory for a batch of %d\n", c.cap);
        code = CLI_EXIT_ERROR;
        goto fail;
    }
    if (qr_opt_bool(o, QR_OPT_JSONL)) {
        code = cli_read_lines("embed", o, on_line, &c);
    } else {
        size_t len = 0;
        if ((code = cli_read_all("embed", o, &text, &len)) == 0)
            code = add_text(&c, text, len);
    }
    if (code == 0)
        code = flush_batch(&c);
fail:
    for (int i = 0; c.texts && i < c.cap; i++)
        free(c.texts[i]);
    free(c.texts);
    free(c.lens);
    free(c.out);
    free(text);
    qr_model_free(m);
    qr_backend_destroy(be);
    qr_options_free(o);
    return code;
}
