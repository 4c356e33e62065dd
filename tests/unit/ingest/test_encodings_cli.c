/* quire ingest of files in other encodings, through the binary ($QUIRE_BIN):
 * the report names every file decoded by the Windows-1252 fallback, a UTF-16
 * file (BOM) is ingested rather than skipped as binary, and a search for an
 * accented word finds the Windows-1252 and UTF-16 files (issue 13, item 2).
 * Fixtures: tests/fixtures/encodings (make_encodings.py). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char out_path[512], err_path[512];

static int quire(const char *args)
{
    return ti_quire(args, out_path, err_path);
}

int main(void)
{
    char tmpl[] = "/tmp/quire_enc_cli_XXXXXX";
    char *base = ti_cli_tmpdir(tmpl, out_path, err_path, sizeof out_path);
    CHECK(base != NULL);
    if (!base) return qr_test_done();
    char tree[512], store[512], args[2048];
    snprintf(tree, sizeof tree, "%s/docs", base);
    snprintf(store, sizeof store, "%s/store", base);
    CHECK(mkdir(tree, 0755) == 0);
    const char *files[] = {"cp1252.txt", "utf16le_bom.txt", "utf8_stray.txt"};
    for (size_t i = 0; i < 3; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "encodings/%s", files[i]);
        CHECK_INT(ti_copy(FIXTURE(rel), tree, files[i]), 0);
    }
    snprintf(args, sizeof args, "ingest '%s' --store '%s'", tree, store);
    CHECK_INT(quire(args), 0);
    char *err = ti_slurp(err_path), *out = ti_slurp(out_path);
    CHECK_MSG(strstr(err, "cp1252.txt: not valid UTF-8: decoded as Windows-1252") != NULL, "stderr: %s", err);
    CHECK_MSG(strstr(err, "utf8_stray.txt: not valid UTF-8: 1 invalid byte sequences replaced by U+FFFD") != NULL,
              "stderr: %s", err);
    CHECK_MSG(strstr(err, "utf16le_bom.txt") == NULL, "utf16le_bom.txt reported: %s", err);
    CHECK_MSG(strstr(out, "3 added") != NULL && strstr(out, "0 skipped") != NULL, "stdout: %s", out);
    free(err);
    free(out);

    // Each file found by an accented word (near-duplicate suppression off: two files hold the same text)
    const char *want[] = {"/cp1252.txt", "/utf16le_bom.txt"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "search 'na\xC3\xAFve r\xC3\xA9sum\xC3\xA9' --store '%s' --json --dup-threshold 2",
                 store);
        CHECK_INT(quire(args), 0);
        json_t *j = ti_json(out_path, "search output");
        bool found = false;
        json_t *res = json_object_get(j, "results"), *it;
        size_t k;
        json_array_foreach(res, k, it)
        {
            const char *p = json_string_value(json_object_get(it, "path"));
            const char *t = json_string_value(json_object_get(it, "text"));
            if (p && t && strstr(p, want[i]) && strstr(t, "na\xC3\xAFve: r\xC3\xA9sum\xC3\xA9")) found = true;
        }
        CHECK_MSG(found, "search did not find %s", want[i]);
        json_decref(j);
    }
    snprintf(args, sizeof args, "rm -rf '%s'", base);
    CHECK_INT(system(args), 0);
    return qr_test_done();
}
