/* quire ingest through the binary ($QUIRE_BIN) on a temp tree (issue 13,
 * item 3): .docx and .ipynb files are read (a damaged .docx is a per-file
 * skip and the run goes on), the default excludes (.git, node_modules,
 * __pycache__, a virtual environment, *.min.js, *.css, lock files) are left
 * out and counted in the report, --no-default-excludes / --include /
 * --exclude change that as ingest/filter.h says, a file named as a PATH is
 * always read, bad patterns are usage errors, and quire search names a
 * notebook's cell. Fixtures: tests/fixtures/formats (make_formats.py). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char out_path[512], err_path[512], base[256];

static int quire(const char *args)
{
    return ti_quire(args, out_path, err_path);
}

static void mk(const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/docs/%s", base, rel);
    CHECK_MSG(mkdir(p, 0755) == 0, "mkdir %s", p);
}

static void put(const char *rel, const char *text)
{
    char d[1024];
    snprintf(d, sizeof d, "%s/docs", base);
    CHECK_INT(ti_write(d, rel, text), 0);
}

/* Runs quire ingest docs/ with flags into a new store; the --json report. */
static json_t *run_json(const char *flags, const char *store)
{
    char args[4096];
    snprintf(args, sizeof args, "ingest '%s/docs' --store '%s/%s' --json %s", base, base, store, flags);
    int rc = quire(args);
    CHECK_MSG(rc == 0, "%s: exit %d: %s", args, rc, ti_slurp(err_path));
    return ti_json(out_path, args);
}

/* Paths (below docs/) of the files the report lists as added, in walk order, joined by ' '. */
static void added(json_t *j, char *buf, size_t cap)
{
    size_t k, n = 0, pre = strlen(base) + strlen("/docs/");
    json_t *f;
    buf[0] = '\0';
    json_array_foreach(json_object_get(j, "files"), k, f) {
        const char *p = json_string_value(json_object_get(f, "path"));
        if (!p || strcmp(json_string_value(json_object_get(f, "status")), "added")) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "", strlen(p) > pre ? p + pre : p);
    }
}

static void expect(const char *flags, const char *store, const char *want_added, int files, int dirs)
{
    json_t *j = run_json(flags, store);
    if (!j) return;
    char got[4096];
    added(j, got, sizeof got);
    CHECK_MSG(!strcmp(got, want_added), "%s: added \"%s\"\n  want \"%s\"", flags, got, want_added);
    json_t *ex = json_object_get(j, "excluded");
    CHECK_MSG(json_integer_value(json_object_get(ex, "files")) == files &&
                  json_integer_value(json_object_get(ex, "directories")) == dirs,
              "%s: excluded %lld files, %lld directories; want %d, %d", flags,
              (long long)json_integer_value(json_object_get(ex, "files")),
              (long long)json_integer_value(json_object_get(ex, "directories")), files, dirs);
    json_decref(j);
}

int main(void)
{
    char tmpl[] = "/tmp/quire_formats_cli_XXXXXX";
    if (!ti_cli_tmpdir(tmpl, out_path, err_path, sizeof out_path)) {
        CHECK(0);
        return qr_test_done();
    }
    snprintf(base, sizeof base, "%s", tmpl);
    char docs[512], args[6144];
    snprintf(docs, sizeof docs, "%s/docs", base);
    CHECK(mkdir(docs, 0755) == 0);
    for (const char *const *d = (const char *const[]){"notes", "node_modules", "node_modules/lib", "__pycache__",
                                                        "env", "env/lib", "build", "sub", "sub/deep", ".git", NULL};
         *d; d++)
        mk(*d);
    CHECK_INT(ti_copy(FIXTURE("formats/sample.docx"), docs, "report.docx"), 0);
    CHECK_INT(ti_copy(FIXTURE("formats/truncated.docx"), docs, "broken.docx"), 0);
    CHECK_INT(ti_copy(FIXTURE("formats/tides.ipynb"), docs, "notes/tides.ipynb"), 0);
    put("keep.md", "# Keep\n\nKeepword text.\n");
    put("app.min.js", "var minifiedword=1;\n");
    put("site.css", "body { color: red; }\n");
    put("package-lock.json", "{\"lockfileVersion\": 3}\n");
    put("Cargo.lock", "version = 3\n");
    put("node_modules/lib/index.js", "module.exports = 1;\n");
    put("__pycache__/mod.py", "x = 1\n");
    put("env/pyvenv.cfg", "home = /usr/bin\n");
    put("env/lib/site.py", "y = 2\n");
    put("build/out.txt", "Build output.\n");
    put("sub/deep/data.txt", "Deep data.\n");
    put(".git/config", "[core]\n");

    // Defaults: the formats read, the damaged .docx skipped, 4 files and 3 directories excluded.
    const char *readable = "build/out.txt keep.md notes/tides.ipynb report.docx sub/deep/data.txt";
    json_t *j = run_json("", "s1");
    if (j) {
        char got[4096];
        added(j, got, sizeof got);
        CHECK_MSG(!strcmp(got, readable), "defaults: added \"%s\"", got);
        json_t *ex = json_object_get(j, "excluded");
        CHECK_INT(json_integer_value(json_object_get(ex, "files")), 4);
        CHECK_INT(json_integer_value(json_object_get(ex, "directories")), 3);
        size_t k;
        json_t *f;
        bool broken = false;
        json_array_foreach(json_object_get(j, "files"), k, f) {
            const char *p = json_string_value(json_object_get(f, "path"));
            const char *fmt = json_string_value(json_object_get(f, "format"));
            if (strstr(p, "/report.docx")) CHECK(fmt && !strcmp(fmt, "docx") && json_integer_value(json_object_get(f, "chunks")) > 0);
            if (strstr(p, "/tides.ipynb")) CHECK(fmt && !strcmp(fmt, "ipynb") && json_integer_value(json_object_get(f, "chunks")) >= 5);
            if (strstr(p, "/broken.docx")) {
                const char *why = json_string_value(json_object_get(f, "reason"));
                broken = !strcmp(json_string_value(json_object_get(f, "status")), "skipped") && why &&
                         strstr(why, "corrupt: not a readable zip archive");
            }
        }
        CHECK_MSG(broken, "broken.docx not reported as a corrupt skip");
        json_decref(j);
    }
    // The human summary says how many were excluded.
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s1'", docs, base);
    CHECK_INT(quire(args), 0);
    char *out = ti_slurp(out_path);
    CHECK_MSG(strstr(out, "ingest: 4 files and 3 directories excluded") != NULL, "stdout: %s", out);
    free(out);

    // --hidden walks hidden entries, but .git stays a default exclude.
    expect("--hidden", "s2", readable, 4, 4);
    // --no-default-excludes reads everything but hidden entries.
    expect("--no-default-excludes", "s3",
           "Cargo.lock __pycache__/mod.py app.min.js build/out.txt env/lib/site.py env/pyvenv.cfg keep.md "
           "node_modules/lib/index.js notes/tides.ipynb package-lock.json report.docx site.css sub/deep/data.txt",
           0, 0);
    // --include: only matching files (by name without '/', by relative path with '/'); directories are
    // not filtered by includes, default-excluded ones still are.
    expect("--include '*.md' --include 'notes/*'", "s4", "keep.md notes/tides.ipynb", 8, 3);
    // An --include naming a default-excluded file pattern reads it.
    expect("--include '*.css' --include '*.lock'", "s5", "Cargo.lock site.css", 8, 3);
    // --exclude: a directory pattern ("sub/" directories only, "build" any entry) and a file glob.
    expect("--exclude sub/ --exclude build --exclude '*.docx'", "s6", "keep.md notes/tides.ipynb", 6, 5);
    // '*' matches '/': "*deep*" excludes the directory sub/deep (by its relative path).
    expect("--exclude '*deep*'", "s7", "build/out.txt keep.md notes/tides.ipynb report.docx", 4, 4);

    // A file named as a PATH is always read.
    snprintf(args, sizeof args, "ingest '%s/app.min.js' --store '%s/s8' --json", docs, base);
    CHECK_INT(quire(args), 0);
    out = ti_slurp(out_path);
    CHECK_MSG(strstr(out, "\"added\": 1") != NULL, "explicit file: %s", out);
    free(out);

    // Bad patterns: usage errors naming the option and the limit.
    int n = snprintf(args, sizeof args, "ingest '%s' --store '%s/s9'", docs, base);
    for (int i = 0; i < 257; i++) n += snprintf(args + n, sizeof args - (size_t)n, " --include x");
    CHECK_INT(quire(args), 2);
    char *err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "--include: 257 patterns, over the limit of 256") != NULL, "stderr: %s", err);
    free(err);
    char longpat[1100];
    memset(longpat, 'a', 1025);
    longpat[1025] = '\0';
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s9' --exclude x --exclude %s", docs, base, longpat);
    CHECK_INT(quire(args), 2);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "--exclude: pattern 2 is 1025 bytes, over the limit of 1024") != NULL, "stderr: %s", err);
    free(err);

    // quire search names the notebook's cell; --json carries it as the page.
    snprintf(args, sizeof args, "search 'high tide' --store '%s/s1' --k 1", base);
    CHECK_INT(quire(args), 0);
    out = ti_slurp(out_path);
    CHECK_MSG(strstr(out, "tides.ipynb  cell 4  \xC2\xA7 Analysis of tides > Results") != NULL, "search: %s", out);
    free(out);
    snprintf(args, sizeof args, "search 'Accuracy Recall' --store '%s/s1' --k 1 --json", base);
    CHECK_INT(quire(args), 0);
    out = ti_slurp(out_path);
    CHECK_MSG(strstr(out, "report.docx") && strstr(out, "Accuracy | 0.93"), "search: %s", out);
    free(out);

    ti_rmrf(base);
    return qr_test_done();
}
