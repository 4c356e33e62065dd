/* `quire info --store DIR [--json]` on a store built through the API: counts,
 * formats, embedder, index type and sizes match what was written; a missing
 * store exits 4 and a missing --store exits 2. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/error.h"
#include "index/store.h"
#include "tests/unit/test.h"

static int run(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    const char *bin = getenv("QUIRE_BIN");
    snprintf(cmd, sizeof cmd, "'%s' info %s 2>/dev/null", bin ? bin : "quire", args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    char dir[] = "/tmp/qr_infoXXXXXX", sdir[300], args[400];
    static char out[65536];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    strcpy(e.model, "/models/minilm");
    strcpy(e.hash, "fnv1a64:00000000deadbeef");
    e.dim = 4;
    strcpy(e.pooling, "mean");
    e.normalize = true;
    qr_store_open_opts o = {.create = true, .embedder = &e, .factory = "HNSW8"};
    qr_store *s = NULL;
    CHECK_OK(qr_store_open(sdir, &o, &s));
    if (!s)
        return qr_test_done();
    const char *paths[] = {"a.md", "b.md", "c.pdf"}, *fmts[] = {"md", "md", "pdf"};
    qr_store_txn *t = NULL;
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    for (int i = 0; i < 3; i++) {
        qr_store_chunk ch[2] = {{.text = "x", .text_len = 1}, {.text = "y", .text_len = 1}};
        float v[8] = {1, 0, 0, 0, 0, 1, 0, 0};
        qr_store_doc d = {.path = paths[i], .format = fmts[i]};
        CHECK_OK(qr_store_put_doc(t, &d, ch, 2, v, NULL, NULL));
    }
    CHECK_OK(qr_store_txn_commit(t));
    qr_store_close(s);

    snprintf(args, sizeof args, "--store '%s' --json", sdir);
    CHECK_INT(run(args, out, sizeof out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECK(j != NULL);
    if (j) {
        json_t *c = json_object_get(j, "counts");
        CHECK_INT(json_integer_value(json_object_get(c, "docs")), 3);
        CHECK_INT(json_integer_value(json_object_get(c, "chunks")), 6);
        CHECK_INT(json_integer_value(json_object_get(c, "vectors")), 6);
        json_t *f = json_object_get(j, "formats");
        CHECK_INT(json_integer_value(json_object_get(f, "md")), 2);
        CHECK_INT(json_integer_value(json_object_get(f, "pdf")), 1);
        CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "index"), "factory")), "HNSW8") == 0);
        json_t *em = json_object_get(j, "embedder");
        CHECK_INT(json_integer_value(json_object_get(em, "dim")), 4);
        CHECK(strcmp(json_string_value(json_object_get(em, "hash")), e.hash) == 0);
        struct stat st;
        char p[400];
        snprintf(p, sizeof p, "%s/vectors.faiss", sdir);
        CHECK(stat(p, &st) == 0);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "bytes"), "vectors_faiss")), st.st_size);
        json_decref(j);
    }
    snprintf(args, sizeof args, "--store '%s'", sdir);
    CHECK_INT(run(args, out, sizeof out), 0);
    CHECK(strstr(out, "documents   3") && strstr(out, "md 2, pdf 1") && strstr(out, "HNSW8"));
    snprintf(args, sizeof args, "--store '%s/nope'", dir);
    CHECK_INT(run(args, out, sizeof out), 4);
    CHECK_INT(run("", out, sizeof out), 2);

    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    CHECK(system(args) == 0);
    return qr_test_done();
}
