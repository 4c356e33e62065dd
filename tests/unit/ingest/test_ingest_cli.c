/* quire ingest / quire rm through the binary ($QUIRE_BIN): exit codes, the
 * one-line summary, the --json report, refusals, no progress bar off a terminal,
 * --prune only under the PATHs given and --force past half of the store. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char base[256], out_path[512], err_path[512];

static int quire(const char *args)
{
    return ti_quire(args, out_path, err_path);
}

static json_t *json_out(void) { return ti_json(out_path, "stdout"); }

static long long count(json_t *j, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(j, "counts"), key));
}

int main(void)
{
    char tmpl[] = "/tmp/quire_ingest_cli_XXXXXX";
    char *b = ti_cli_tmpdir(tmpl, out_path, err_path, sizeof out_path);
    CHECK(b != NULL);
    if (!b)
        return qr_test_done();
    snprintf(base, sizeof base, "%s", b);
    char tree[512], args[2048];
    snprintf(tree, sizeof tree, "%s/tree", base);
    CHECK(mkdir(tree, 0755) == 0);
    CHECK(ti_write(tree, "a.md", "# Alpha\n\nThe aardvark eats ants at night.\n") == 0);
    CHECK(ti_write(tree, "b.txt", "Bees make honey. Honey is sweet.\n") == 0);
    CHECK(ti_write(tree, "c.bin", "\x7f" "ELF\x02\x01\x01binary") == 0);

    /* usage errors */
    CHECK_INT(quire("ingest"), 2);
    snprintf(args, sizeof args, "ingest --store '%s/s'", base);
    CHECK_INT(quire(args), 2);
    CHECK_INT(quire("ingest --help"), 0);

    /* first run, --json */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s' --json", tree, base);
    CHECK_INT(quire(args), 0);
    json_t *j = json_out();
    CHECK_INT(count(j, "added"), 2);
    CHECK_INT(count(j, "skipped"), 1);
    CHECK_INT(json_integer_value(json_object_get(j, "chunks")), 2);
    CHECK_INT(json_integer_value(json_object_get(j, "store_docs")), 2);
    CHECK_INT(json_integer_value(json_object_get(j, "store_chunks")), 2);
    json_t *files = json_object_get(j, "files");
    CHECK_INT(json_array_size(files), 3);
    int saw_bin = 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *f = json_array_get(files, i);
        const char *p = json_string_value(json_object_get(f, "path"));
        if (p && strstr(p, "c.bin")) {
            saw_bin = 1;
            CHECK(!strcmp(json_string_value(json_object_get(f, "status")), "skipped"));
            const char *r = json_string_value(json_object_get(f, "reason"));
            CHECK(r && !strncmp(r, "binary", 6));
        }
    }
    CHECK(saw_bin);
    CHECK(json_object_get(json_object_get(j, "timings_s"), "total") != NULL);
    json_decref(j);
    char *err = ti_slurp(err_path);
    CHECK(strchr(err, '\r') == NULL); /* no progress bar off a terminal */
    free(err);

    /* second run: one summary line, all unchanged */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s'", tree, base);
    CHECK_INT(quire(args), 0);
    char *out = ti_slurp(out_path);
    CHECK_MSG(!strncmp(out, "ingest: 0 added, 0 updated, 2 unchanged, 0 removed, 1 skipped", 61), "%s", out);
    /* nothing written this time, and the line says the store still holds both (issue 13 item 5) */
    CHECK_MSG(strstr(out, "; 0 documents, 0 chunks written in ") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "; the store holds 2 documents, 2 chunks\n") != NULL, "%s", out);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
    free(out);

    /* other chunking refused, exit 1 with the reason */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s' --chunk-tokens 128", tree, base);
    CHECK_INT(quire(args), 1);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "chunked with 256") != NULL, "%s", err);
    free(err);

    /* --chunk-overlap 0 is kept as 0 (it was stored as the default 32, and the next plain ingest
     * then failed: "overlap_tokens 32 outside [0, 8]") */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/o0' --chunk-tokens 16 --chunk-overlap 0", tree, base);
    CHECK_INT(quire(args), 0);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/o0'", tree, base);
    CHECK_INT(quire(args), 0);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/o0/manifest.json", base);
    json_t *man = json_load_file(mp, 0, NULL);
    CHECK(man != NULL);
    json_t *ov = json_object_get(json_object_get(man, "chunking"), "overlap");
    CHECK_MSG(json_is_integer(ov) && json_integer_value(ov) == 0, "manifest overlap %s", ov ? "not 0" : "missing");
    json_decref(man);

    /* rm a file, then a path not in the store */
    snprintf(args, sizeof args, "rm '%s/a.md' --store '%s/s' --json", tree, base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_INT(count(j, "removed"), 1);
    json_decref(j);
    snprintf(args, sizeof args, "rm '%s/a.md' --store '%s/s' --json", tree, base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_INT(count(j, "removed"), 0);
    CHECK_INT(count(j, "skipped"), 1);
    json_decref(j);

    /* deleted file + --prune */
    char p[600];
    snprintf(p, sizeof p, "%s/b.txt", tree);
    CHECK(unlink(p) == 0);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s' --prune --json", tree, base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_INT(count(j, "removed"), 1);
    CHECK_INT(count(j, "added"), 1); /* a.md again (rm dropped it) */
    json_decref(j);
    snprintf(args, sizeof args, "info --store '%s/s' --json", base);
    CHECK_INT(quire(args), 0);
    out = ti_slurp(out_path);
    CHECK(strstr(out, "\"documents\": 1") || strstr(out, "\"docs\": 1"));
    free(out);

    /* --faiss-index: a new store takes it; an existing one changes only when it is named again */
    char mdl[600];
    snprintf(mdl, sizeof mdl, "%s", FIXTURE("models/bert_minilm"));
    snprintf(args, sizeof args, "ingest '%s' --store '%s/h' --chunk-tokens 64 --embedder '%s' --faiss-index HNSW32 --json", tree, base,
             mdl);
    CHECK_INT(quire(args), 0);
    snprintf(args, sizeof args, "info --store '%s/h' --json", base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "index"), "factory")), "HNSW32");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "counts"), "vectors")), 1);
    json_decref(j);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/h' --chunk-tokens 64 --embedder '%s'", tree, base, mdl);
    CHECK_INT(quire(args), 0); /* default factory: the store keeps HNSW32 */
    snprintf(args, sizeof args, "info --store '%s/h' --json", base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "index"), "factory")), "HNSW32");
    json_decref(j);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/h' --chunk-tokens 64 --embedder '%s' --faiss-index Flat", tree, base, mdl);
    CHECK_INT(quire(args), 0);
    snprintf(args, sizeof args, "info --store '%s/h' --json", base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "index"), "factory")), "Flat");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "counts"), "vectors")), 1);
    json_decref(j);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/h2' --chunk-tokens 64 --embedder '%s' --faiss-index NoSuchIndex", tree, base,
             mdl);
    CHECK(quire(args) != 0);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "NoSuchIndex") != NULL, "%s", err);
    free(err);

    /* --prune only under the PATHs given; more than half of the store only with --force */
    char pa[600], pb[600], pboff[600];
    snprintf(pa, sizeof pa, "%s/pa", base);
    snprintf(pb, sizeof pb, "%s/pb", base);
    snprintf(pboff, sizeof pboff, "%s/pb_unmounted", base);
    CHECK(mkdir(pa, 0755) == 0 && mkdir(pb, 0755) == 0);
    CHECK(ti_write(pa, "kept.txt", "Kept here.\n") == 0 && ti_write(pb, "x.txt", "Elsewhere x.\n") == 0 &&
          ti_write(pb, "y.txt", "Elsewhere y.\n") == 0);
    snprintf(args, sizeof args, "ingest '%s' '%s' --store '%s/p' --json", pa, pb, base);
    CHECK_INT(quire(args), 0);
    CHECK(rename(pb, pboff) == 0); /* pb's file system "not mounted" */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/p' --prune --json", pa, base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_INT(count(j, "removed"), 0); /* pb is not under pa */
    CHECK_INT(count(j, "unchanged"), 1);
    json_decref(j);
    snprintf(args, sizeof args, "ingest --store '%s/p' --prune", base);
    CHECK_INT(quire(args), 3); /* QR_ELIMIT */
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "quire ingest: ingest: --prune would remove 2 of the store's 3 documents (2 files") &&
                  strstr(err, "pass --force"),
              "%s", err);
    free(err);
    snprintf(args, sizeof args, "ingest --store '%s/p' --prune --force --json", base);
    CHECK_INT(quire(args), 0);
    j = json_out();
    CHECK_INT(count(j, "removed"), 2);
    json_decref(j);

    ti_rmrf(base);
    return qr_test_done();
}
