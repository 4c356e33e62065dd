/* Helpers shared by the ingest pipeline tests: temp trees, store snapshots and
 * running the quire binary. */
#ifndef QR_TEST_INGEST_UTIL_H
#define QR_TEST_INGEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/error.h"
#include "index/bm25.h"
#include "index/store.h"
#include "tests/unit/test.h"

static inline int ti_write(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static inline int ti_copy(const char *src, const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *in = fopen(src, "rb"), *out = fopen(p, "wb");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

static inline void ti_rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Runs the quire binary ($QUIRE_BIN, else quire on PATH) with args (shell
 * words), stdin /dev/null, stdout to the file out and stderr to err; returns
 * its exit code (-1 when it did not exit). */
static inline int ti_quire(const char *args, const char *out, const char *err)
{
    const char *bin = getenv("QUIRE_BIN");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin ? bin : "quire", args, out, err);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The content of path (malloc'd, NUL-terminated); "" when it cannot be read. */
/* The JSON document in the file at path (a --json report quire wrote), or
 * NULL after a failed check naming what it was. */
static inline json_t *ti_json(const char *path, const char *what)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    CHECK_MSG(j != NULL, "%s is not JSON: %s", what, e.text);
    return j;
}

static inline char *ti_slurp(const char *path)
{
    char *s = qr_test_slurp(path, NULL);
    return s ? s : strdup("");
}

/* mkdtemp(tmpl), and below it the paths (cap bytes each) a CLI test sends
 * the binary's stdout and stderr to; returns the directory (tmpl) or NULL. */
static inline char *ti_cli_tmpdir(char *tmpl, char *out, char *err, size_t cap)
{
    if (!mkdtemp(tmpl))
        return NULL;
    snprintf(out, cap, "%s/out", tmpl);
    snprintf(err, cap, "%s/err", tmpl);
    return tmpl;
}

/* A deterministic paragraph generator: sentence s of document d. */
static inline void ti_prose(char *buf, size_t cap, int d, int n_sent)
{
    static const char *words[] = {"slurm", "node", "partition", "gpu", "memory", "batch", "queue", "job",
                                  "scheduler", "account", "limit", "time", "task", "array", "socket",
                                  "core", "thread", "license", "reservation", "priority"};
    size_t len = 0;
    unsigned x = 2166136261u ^ (unsigned)d;
    for (int s = 0; s < n_sent && len + 200 < cap; s++) {
        int nw = 6 + (int)(x % 9);
        for (int w = 0; w < nw; w++) {
            x = x * 1103515245u + 12345u;
            const char *word = words[(x >> 16) % 20];
            if (w == 0) /* sentences start upper-case */
                len += (size_t)snprintf(buf + len, cap - len, "%c%s", 'A' + (int)((x >> 8) % 26), word);
            else
                len += (size_t)snprintf(buf + len, cap - len, " %s", word);
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s", s % 5 == 4 ? ".\n\n" : ". ");
    }
    buf[len] = '\0';
}

typedef struct {
    char *s;
    size_t n, cap;
} ti_buf;

static inline void ti_append(ti_buf *b, const char *data, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            abort();
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, data, len);
    b->n += len;
    b->s[b->n] = '\0';
}

typedef struct {
    char **lines;
    size_t n, cap;
    qr_store_txn *t;
    size_t n_chunks;
} ti_snap;

static inline int ti_chunk_line(const qr_store_chunk *c, void *user)
{
    ti_buf *b = user;
    char head[256];
    int n = snprintf(head, sizeof head, "  [%u] %llu-%llu p%d {", c->ordinal, (unsigned long long)c->byte_start,
                     (unsigned long long)c->byte_end, c->page);
    ti_append(b, head, (size_t)n);
    ti_append(b, c->heading, strlen(c->heading));
    ti_append(b, "} ", 2);
    ti_append(b, c->text, c->text_len);
    ti_append(b, "\n", 1);
    return 0;
}

static inline int ti_doc_line(const qr_store_doc *d, void *user)
{
    ti_snap *s = user;
    ti_buf b = {0};
    ti_append(&b, d->path, strlen(d->path));
    char tail[256];
    int n = snprintf(tail, sizeof tail, " (%s, %s, %u chunks)\n", d->format, d->hash, d->n_chunks);
    ti_append(&b, tail, (size_t)n);
    s->n_chunks += d->n_chunks;
    int rc = qr_store_doc_chunks(s->t, d->id, ti_chunk_line, &b);
    if (rc)
        return rc;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->lines = realloc(s->lines, s->cap * sizeof *s->lines);
        if (!s->lines)
            abort();
    }
    s->lines[s->n++] = b.s;
    return 0;
}

static inline int ti_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Everything that must be equal between two stores built from the same files
 * (ids aside): documents sorted by path with their chunks (ordinal, span,
 * page, heading, text), chunk/vector counts and the BM25 statistics.
 * Returns a malloc'd string, or NULL on error. */
static inline char *ti_snapshot(const char *dir, qr_store_counts *counts_out)
{
    qr_store *st = NULL;
    qr_store_open_opts o = {.readonly = true, .map_size = (size_t)64 << 20};
    if (qr_store_open(dir, &o, &st))
        return NULL;
    ti_snap s = {0};
    qr_store_txn *t = NULL;
    char *out = NULL;
    if (qr_store_txn_begin(st, false, &t))
        goto done;
    s.t = t;
    if (qr_store_iter_docs(t, ti_doc_line, &s))
        goto done;
    qsort(s.lines, s.n, sizeof *s.lines, ti_cmp);
    ti_buf b = {0};
    for (size_t i = 0; i < s.n; i++)
        ti_append(&b, s.lines[i], strlen(s.lines[i]));
    qr_bm25 *bm = NULL;
    qr_bm25_stats bs = {0};
    if (qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm) == 0) {
        qr_bm25_get_stats(bm, qr_store_txn_mdb(t), &bs);
        qr_bm25_close(bm);
    }
    qr_store_counts c;
    qr_store_counts_get(st, &c);
    char tail[256];
    int n = snprintf(tail, sizeof tail, "docs %llu chunks %llu (sum %zu) vectors %llu faiss %lld bm25 %llu %llu %llu\n",
                     (unsigned long long)c.docs, (unsigned long long)c.chunks, s.n_chunks,
                     (unsigned long long)c.vectors, (long long)c.faiss_vectors, (unsigned long long)bs.ndocs,
                     (unsigned long long)bs.doc_count, (unsigned long long)bs.sum_ttf);
    ti_append(&b, tail, (size_t)n);
    out = b.s;
    if (counts_out)
        *counts_out = c;
done:
    for (size_t i = 0; i < s.n; i++)
        free(s.lines[i]);
    free(s.lines);
    qr_store_txn_abort(t);
    qr_store_close(st);
    return out;
}

#endif
