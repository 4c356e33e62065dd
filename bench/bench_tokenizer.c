/* Tokenizer throughput, single thread: MB/s of UTF-8 input for each tokenizer.json on
 * (1) the SciFact corpus (title + text of each document, English scientific prose) and
 * (2) the 10,000-string tokenizer oracle corpus (many scripts, emoji, code, whitespace).
 * Each document is one qr_tokenize call without special tokens; the best of 3 passes is
 * reported (the first pass also warms caches).
 *
 * usage: bench_tokenizer [SHARED_DIR [REPO_DIR]]   (defaults: ../shared and .; SciFact from
 * SHARED_DIR/data, the tokenizers and the oracle corpus from REPO_DIR/tests/fixtures) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"

typedef struct {
    char **doc;
    size_t *len;
    size_t n, bytes;
} corpus;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void add_doc(corpus *c, const char *s, size_t n)
{
    c->doc = realloc(c->doc, (c->n + 1) * sizeof *c->doc);
    c->len = realloc(c->len, (c->n + 1) * sizeof *c->len);
    c->doc[c->n] = malloc(n + 1);
    memcpy(c->doc[c->n], s, n);
    c->doc[c->n][n] = '\0';
    c->len[c->n++] = n;
    c->bytes += n;
}

/* One document per JSON line: fields joined by '\n' (objects), or the string itself. */
static int load_jsonl(const char *path, const char *f1, const char *f2, corpus *c)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    char *buf = NULL;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j)
            continue;
        if (json_is_string(j)) {
            add_doc(c, json_string_value(j), json_string_length(j));
        } else {
            json_t *a = json_object_get(j, f1), *b = json_object_get(j, f2);
            size_t la = json_is_string(a) ? json_string_length(a) : 0, lb = json_is_string(b) ? json_string_length(b) : 0;
            buf = realloc(buf, la + lb + 2);
            memcpy(buf, la ? json_string_value(a) : "", la);
            buf[la] = '\n';
            memcpy(buf + la + 1, lb ? json_string_value(b) : "", lb);
            add_doc(c, buf, la + 1 + lb);
        }
        json_decref(j);
    }
    free(buf);
    free(line);
    fclose(f);
    return 0;
}

static void run(const char *name, const char *path, const corpus *c, const char *cname)
{
    qr_tokenizer *t;
    double t0 = now();
    int rc = qr_tokenizer_load(path, &t);
    double load_s = now() - t0;
    if (rc) {
        printf("%-8s %-8s load failed: %s (%s)\n", name, cname, qr_strerror(rc), qr_last_error());
        return;
    }
    double best = 1e30;
    size_t n_ids = 0;
    for (int pass = 0; pass < 3; pass++) {
        double s = now();
        n_ids = 0;
        for (size_t i = 0; i < c->n; i++) {
            int32_t *ids;
            size_t n;
            if (qr_tokenize(t, c->doc[i], c->len[i], false, &ids, &n) == 0) {
                n_ids += n;
                free(ids);
            }
        }
        double e = now() - s;
        if (e < best)
            best = e;
    }
    printf("%-8s %-8s %8.2f MB/s %10.0f tokens/s  (%zu docs, %.2f MB, %zu tokens, load %.2f s)\n", name, cname,
           (double)c->bytes / 1e6 / best, (double)n_ids / best, c->n, (double)c->bytes / 1e6, n_ids, load_s);
    qr_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    const char *shared = argc > 1 ? argv[1] : "../shared";
    const char *repo = argc > 2 ? argv[2] : ".";
    char p[4096];
    corpus sci = {0}, ora = {0};
    snprintf(p, sizeof p, "%s/data/scifact/corpus.jsonl", shared);
    if (load_jsonl(p, "title", "text", &sci) != 0)
        fprintf(stderr, "cannot read %s\n", p);
    snprintf(p, sizeof p, "%s/tests/fixtures/tokenizer/oracle/corpus.jsonl", repo);
    if (load_jsonl(p, "", "", &ora) != 0)
        fprintf(stderr, "cannot read %s\n", p);
    static const struct { const char *name, *rel; } toks[] = { /* under REPO_DIR/tests/fixtures */
        {"minilm", "models/all-MiniLM-L6-v2-tokenizer/tokenizer.json"},
        {"qwen2.5", "models/qwen2.5-tokenizer/tokenizer.json"},
        {"llama3", "models/llama3-tokenizer/tokenizer.json"},
        {"llama2", "tokenizer/llama2-tokenizer.json"},
    };
    printf("tokenizer throughput, single thread, best of 3\n");
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        snprintf(p, sizeof p, "%s/tests/fixtures/%s", repo, toks[i].rel);
        if (sci.n)
            run(toks[i].name, p, &sci, "scifact");
        if (ora.n)
            run(toks[i].name, p, &ora, "oracle");
    }
    return 0;
}
