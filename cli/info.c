/* quire info --store DIR [--json]
 *
 * What a store holds: counts (documents, chunks, vectors), sizes on disk of
 * manifest.json / meta.lmdb / vectors.faiss, the embedder, the index type,
 * chunking parameters and documents per format. Opens the store read-only
 * without loading vectors.faiss, so it is cheap and safe while an ingest runs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/error.h"
#include "index/store.h"

#define MAX_FORMATS 64

typedef struct {
    char name[16];
    uint64_t n;
} fmt_count;

typedef struct {
    fmt_count f[MAX_FORMATS];
    int n;
} fmt_table;

static int count_format(const qr_store_doc *d, void *user)
{
    fmt_table *t = user;
    const char *name = d->format && *d->format ? d->format : "unknown";
    for (int i = 0; i < t->n; i++)
        if (strncmp(t->f[i].name, name, sizeof t->f[i].name - 1) == 0) {
            t->f[i].n++;
            return 0;
        }
    if (t->n < MAX_FORMATS) {
        snprintf(t->f[t->n].name, sizeof t->f[t->n].name, "%s", name);
        t->f[t->n++].n = 1;
    }
    return 0;
}

static uint64_t file_size(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int info_run(const char *dir, bool json)
{
    if (!*dir) {
        fprintf(stderr, "quire info: --store DIR is required\n");
        return CLI_EXIT_USAGE;
    }
    qr_store *s = NULL;
    qr_store_open_opts o = {.readonly = true, .skip_vectors = true};
    int rc = qr_store_open(dir, &o, &s);
    if (rc)
        return cli_fail("info", rc, NULL);
    qr_store_counts c;
    fmt_table ft = {.n = 0};
    qr_store_txn *t = NULL;
    if ((rc = qr_store_counts_get(s, &c)) || (rc = qr_store_txn_begin(s, false, &t)) ||
        (rc = qr_store_iter_docs(t, count_format, &ft))) {
        qr_store_txn_abort(t);
        qr_store_close(s);
        return cli_fail("info", rc, NULL);
    }
    qr_store_txn_abort(t);
    const qr_manifest *m = qr_store_manifest(s);
    uint64_t sz_man = file_size(dir, "manifest.json"), sz_lmdb = file_size(dir, "meta.lmdb"),
             sz_faiss = file_size(dir, "vectors.faiss");
    if (json) {
        json_t *fmts = json_object();
        for (int i = 0; i < ft.n; i++)
            json_object_set_new(fmts, ft.f[i].name, json_integer((json_int_t)ft.f[i].n));
        json_t *emb = m->has_embedder
                          ? json_pack("{s:s, s:s, s:i, s:s, s:b}", "model", m->embedder.model, "hash", m->embedder.hash,
                                      "dim", m->embedder.dim, "pooling", m->embedder.pooling, "normalize",
                                      m->embedder.normalize)
                          : json_null();
        json_t *root = json_pack(
            "{s:s, s:i, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:o, s:{s:s, s:s, s:s}, s:{s:i, s:i, s:s}, "
            "s:o, s:I, s:s, s:s}",
            "store", dir, "version", m->version, "counts", "docs", (json_int_t)c.docs, "chunks", (json_int_t)c.chunks,
            "vectors", (json_int_t)c.vectors, "bytes", "manifest", (json_int_t)sz_man, "meta_lmdb",
            (json_int_t)sz_lmdb, "vectors_faiss", (json_int_t)sz_faiss, "total",
            (json_int_t)(sz_man + sz_lmdb + sz_faiss), "embedder", emb, "index", "factory", m->factory, "metric",
            m->metric, "vector_dtype", m->vec_dtype, "chunking", "tokens", m->chunk_tokens, "overlap",
            m->chunk_overlap, "tokenizer", m->chunk_tokenizer, "formats", fmts, "generation",
            (json_int_t)c.generation, "created", m->created, "updated", m->updated);
        char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(root);
        qr_store_close(s);
        return text ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    }
    char b1[32], b2[32], b3[32], b4[32];
    printf("store       %s (format version %d, generation %llu)\n", dir, m->version,
           (unsigned long long)c.generation);
    printf("documents   %llu\nchunks      %llu\nvectors     %llu\n", (unsigned long long)c.docs,
           (unsigned long long)c.chunks, (unsigned long long)c.vectors);
    printf("on disk     %s (meta.lmdb %s, vectors.faiss %s, manifest %s)\n",
           cli_bytes((double)(sz_man + sz_lmdb + sz_faiss), b1, sizeof b1), cli_bytes((double)sz_lmdb, b2, sizeof b2),
           cli_bytes((double)sz_faiss, b3, sizeof b3), cli_bytes((double)sz_man, b4, sizeof b4));
    if (m->has_embedder) {
        char e[1400];
        qr_embedder_describe(&m->embedder, e, sizeof e);
        printf("embedder    %s\n", e);
        printf("index       %s, %s, vectors kept as %s\n", m->factory,
               strcmp(m->metric, "ip") == 0 ? "inner product" : "L2", m->vec_dtype);
    } else {
        printf("embedder    none (BM25-only store)\nindex       none\n");
    }
    printf("chunking    %d tokens, overlap %d%s%s\n", m->chunk_tokens, m->chunk_overlap,
           *m->chunk_tokenizer ? ", tokenizer " : "", m->chunk_tokenizer);
    printf("formats    ");
    if (ft.n == 0)
        printf(" (no documents)");
    for (int i = 0; i < ft.n; i++)
        printf(" %s %llu%s", ft.f[i].name, (unsigned long long)ft.f[i].n, i + 1 < ft.n ? "," : "");
    printf("\ncreated     %s, updated %s\n", m->created, m->updated);
    qr_store_close(s);
    return CLI_EXIT_OK;
}

int cli_info(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_STORE, QR_OPT_JSON, QR_OPT_LOG_LEVEL, -1};
    qr_options *opts = NULL;
    int code = cli_load_options("info", "--store DIR [--json]",
                                "What a store holds: counts, sizes on disk, embedder, index type, documents per format.",
                                argc, argv, allowed, &opts);
    if (code >= 0)
        return code;
    /* flag, QUIRE_STORE or the config file; copied: opts is freed before the work */
    char *dir = strdup(qr_opt_str(opts, QR_OPT_STORE));
    bool json = qr_opt_bool(opts, QR_OPT_JSON);
    qr_options_free(opts);
    if (!dir)
        return cli_fail("info", QR_ENOMEM, "options");
    code = info_run(dir, json);
    free(dir);
    return code;
}
