/* quire ingest's messages through the binary ($QUIRE_BIN), issue 13 items 2
 * and 5: the files decoded by the Windows-1252 fallback listed in the report
 * and in --json; skipped files as one info line (the list at debug level and
 * in --json, bounded); progress lines off a terminal; SIGINT and SIGTERM
 * mid-ingest (exit 130 / 143, what was committed, a store that opens and a
 * re-run that ends with the same store as an uninterrupted ingest); a
 * warning for a PATH with nothing to ingest. Also qr_ingest_report_to_json's
 * bound on files[].
 *
 * With the argument "embed" the interruption runs with a real embedder
 * (all-MiniLM-L6-v2, tools/models.sh; SKIP without it), so the stop lands
 * between embedding batches and the resumed store's vectors are compared with
 * an uninterrupted ingest's.
 *
 * A run is stopped while it is certainly going: its stderr is a pipe of one
 * page (F_SETPIPE_SZ 4096) and --progress-interval 0 writes a line per batch,
 * so a child with more lines than the pipe holds cannot finish before the
 * signal, which is sent on its first progress line. Corpora are generated in
 * the temporary directory (files of 40 words from a fixed generator, one chunk
 * each); cp1252.txt comes from tests/fixtures/encodings. */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingest/pipeline.h"
#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char base[256], out_path[512], err_path[512];

static int quire(const char *args)
{
    return ti_quire(args, out_path, err_path);
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static json_t *json_out(void) { return ti_json(out_path, "stdout"); }

static long long jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* n files of 40 words each ("f00000.txt"...), the same for a given n. */
static void make_corpus(const char *dir, int n)
{
    static const char *words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
                                  "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi",
                                  "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"};
    CHECK(mkdir(dir, 0755) == 0);
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < n; i++) {
        char name[32], text[512];
        size_t len = 0;
        for (int k = 0; k < 40; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", k ? " " : "", words[s % 24]);
        }
        snprintf(text + len, sizeof text - len, ".\n");
        snprintf(name, sizeof name, "f%05d.txt", i);
        CHECK(ti_write(dir, name, text) == 0);
    }
}

/* Whether text holds a progress line with at least min_done of n files done. */
static bool progress_seen(const char *text, int n, long min_done)
{
    for (const char *p = text; (p = strstr(p, "quire: info: ingest: ")); p++) {
        long done, total;
        if (sscanf(p, "quire: info: ingest: %ld/%ld files (", &done, &total) == 2 && total == n && done >= min_done)
            return true;
    }
    return false;
}

/* Runs quire with args (stdout to out_path), stderr through a one-page pipe;
 * sends sig on the first progress line with at least min_done of the n files
 * done, then reads the rest. Returns the exit code (-1: ended by a signal);
 * *err gets all of stderr (free it). */
static int quire_signaled(const char *args, int n, long min_done, int sig, char **err)
{
    const char *bin = getenv("QUIRE_BIN");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec '%s' %s >'%s' </dev/null", bin ? bin : "quire", args, out_path);
    int fd[2];
    CHECK(pipe(fd) == 0);
    CHECK(fcntl(fd[1], F_SETPIPE_SZ, 4096) >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    bool sent = false;
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd[0], buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (!sent && progress_seen(buf, n, min_done)) {
            CHECK(kill(pid, sig) == 0);
            sent = true;
        }
    }
    buf[len] = '\0';
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK_MSG(sent, "no progress line: %s", buf);
    *err = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* "ingest: A added, U updated, K unchanged, ..." -> A and K. */
static void summary_counts(const char *out, long *added, long *unchanged)
{
    *added = *unchanged = -1;
    long up = 0;
    CHECK_MSG(sscanf(out, "ingest: %ld added, %ld updated, %ld unchanged", added, &up, unchanged) == 3, "stdout: %s",
              out);
}

/* The same search on two stores gives the same passages with the same scores. */
static void same_search(const char *store_a, const char *store_b, const char *query)
{
    char args[2048];
    json_t *root[2], *res[2];
    const char *stores[2] = {store_a, store_b};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "search '%s' --store '%s' --json -k 10", query, stores[i]);
        CHECK_INT(quire(args), 0);
        root[i] = json_out();
        res[i] = json_object_get(root[i], "results");
    }
    CHECK_INT(json_array_size(res[0]), json_array_size(res[1]));
    CHECK(json_array_size(res[0]) > 0);
    for (size_t k = 0; k < json_array_size(res[0]) && k < json_array_size(res[1]); k++) {
        json_t *a = json_array_get(res[0], k), *b = json_array_get(res[1], k);
        CHECK_STR(json_string_value(json_object_get(a, "path")), json_string_value(json_object_get(b, "path")));
        CHECK_NEAR(json_real_value(json_object_get(a, "score")), json_real_value(json_object_get(b, "score")), 1e-6);
        json_t *da = json_object_get(a, "dense"), *db = json_object_get(b, "dense");
        if (json_is_number(da) || json_is_number(db))
            CHECK_NEAR(json_number_value(da), json_number_value(db), 1e-5);
    }
    json_decref(root[0]);
    json_decref(root[1]);
}

/* SIGINT once a commit is done, info on the stopped store, SIGTERM on the
 * first progress line past those files in the next run (with --json; with an embedder that is
 * often while the first batch is embedded: the batch is dropped), a complete
 * re-run; the result matches the uninterrupted store `clean`. extra: more
 * ingest flags. */
static void interrupt_and_resume(const char *corpus, int n, const char *extra, const char *clean)
{
    char store[512], args[4096];
    snprintf(store, sizeof store, "%s/stopped", base);
    snprintf(args, sizeof args, "ingest '%s' --store '%s' --progress-interval 0 %s", corpus, store, extra);
    char *err = NULL;
    CHECK_INT(quire_signaled(args, n, 1, SIGINT, &err), 130);
    CHECK_MSG(strstr(err, "quire ingest: SIGINT: stopping at the next commit point") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "quire ingest: interrupted by SIGINT: stopped at a commit point after ") != NULL, "%s", err);
    CHECK_MSG(strstr(err, "run the same command again to resume") != NULL, "%s", err);
    free(err);
    char *out = ti_slurp(out_path);
    long added1, unch;
    summary_counts(out, &added1, &unch);
    CHECK_MSG(added1 > 0 && added1 < n, "added %ld of %d", added1, n);
    char want[256];
    snprintf(want, sizeof want, "the store holds %ld documents, %ld chunks\n", added1, added1);
    CHECK_MSG(strstr(out, want) != NULL, "%s", out);
    free(out);

    // the stopped store opens and holds exactly what was reported
    snprintf(args, sizeof args, "info --store '%s' --json", store);
    CHECK_INT(quire(args), 0);
    json_t *j = json_out();
    json_t *c = json_object_get(j, "counts");
    CHECK_INT(jint(c, "docs"), added1);
    CHECK_INT(jint(c, "chunks"), added1);
    if (*extra)
        CHECK_INT(jint(c, "vectors"), added1);
    json_decref(j);

    // SIGTERM on the resumed run: 143, and the JSON report says it stopped
    snprintf(args, sizeof args, "ingest '%s' --store '%s' --progress-interval 0 --json %s", corpus, store, extra);
    /* only once the committed files (first in walk order) are passed: a stop
     * among them would count the rest as left, not unchanged */
    CHECK_INT(quire_signaled(args, n, added1, SIGTERM, &err), 143);
    CHECK_MSG(strstr(err, "quire ingest: interrupted by SIGTERM: stopped at a commit point") != NULL, "%s", err);
    free(err);
    j = json_out();
    long long added2 = jint(json_object_get(j, "counts"), "added");
    CHECK(json_is_true(json_object_get(j, "stopped")));
    CHECK_INT(jint(json_object_get(j, "counts"), "unchanged"), added1);
    CHECK_INT(jint(j, "files_left"), n - added1 - added2);
    CHECK(added1 + added2 < n);
    json_decref(j);

    // a complete run: the rest is added, the committed files are unchanged
    snprintf(args, sizeof args, "ingest '%s' --store '%s' %s", corpus, store, extra);
    CHECK_INT(quire(args), 0);
    out = ti_slurp(out_path);
    long added3;
    summary_counts(out, &added3, &unch);
    CHECK_INT(unch, added1 + added2);
    CHECK_INT(added3, n - added1 - added2);
    free(out);
    snprintf(args, sizeof args, "info --store '%s' --json", clean);
    CHECK_INT(quire(args), 0);
    json_t *jc = json_out();
    snprintf(args, sizeof args, "info --store '%s' --json", store);
    CHECK_INT(quire(args), 0);
    j = json_out();
    const char *keys[] = {"docs", "chunks", "vectors"};
    for (int k = 0; k < 3; k++)
        CHECK_INT(jint(json_object_get(j, "counts"), keys[k]), jint(json_object_get(jc, "counts"), keys[k]));
    CHECK_INT(jint(json_object_get(j, "counts"), "docs"), n);
    json_decref(j);
    json_decref(jc);
    same_search(clean, store, "alpha omega");
    same_search(clean, store, "sigma tau upsilon");
}

static void embed_mode(void)
{
    const char *model = MODEL("all-MiniLM-L6-v2");
    char corpus[512], clean[512], args[4096], extra[1024];
    snprintf(corpus, sizeof corpus, "%s/corpus", base);
    snprintf(clean, sizeof clean, "%s/clean", base);
    enum { N = 100 };
    make_corpus(corpus, N);
    /* --batch 1: a progress line per chunk embedded; after the first commit (32
     * files) more lines are left than the pipe holds */
    snprintf(extra, sizeof extra, "--embedder '%s' --batch 1", model);
    snprintf(args, sizeof args, "ingest '%s' --store '%s' %s", corpus, clean, extra);
    CHECK_INT(quire(args), 0);
    interrupt_and_resume(corpus, N, extra, clean);
}

/* files[] keeps what is not unchanged first, in walk order, and counts the rest. */
static void json_bound(void)
{
    qr_ingest_file f[5] = {{.path = "/u0", .status = QR_INGEST_UNCHANGED},
                           {.path = "/a1", .status = QR_INGEST_ADDED},
                           {.path = "/s2", .status = QR_INGEST_SKIPPED, .reason = "binary: NUL byte"},
                           {.path = "/u3", .status = QR_INGEST_UNCHANGED},
                           {.path = "/a4", .status = QR_INGEST_ADDED, .encoding = "Windows-1252",
                            .encoding_fallback = true}};
    qr_ingest_report r = {.added = 2, .unchanged = 2, .skipped = 1, .files = f, .n_files = 5, .fallback_decoded = 1};
    const struct {
        size_t max;
        const char *paths;
    } cases[] = {{2, "/a1 /s2"}, {3, "/a1 /s2 /a4"}, {4, "/u0 /a1 /s2 /a4"}, {5, "/u0 /a1 /s2 /u3 /a4"}, {0, ""}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        json_t *j = NULL;
        CHECK_OK(qr_ingest_report_to_json_max(&r, cases[c].max, &j));
        if (!j)
            continue;
        char got[128] = "";
        json_t *files = json_object_get(j, "files");
        for (size_t i = 0; i < json_array_size(files); i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                     json_string_value(json_object_get(json_array_get(files, i), "path")));
        CHECK_STR(got, cases[c].paths);
        CHECK_INT(jint(j, "files_omitted"), 5 - (long long)json_array_size(files));
        CHECK_INT(jint(json_object_get(j, "skipped_by_reason"), "binary"), 1);
        CHECK_INT(jint(j, "fallback_decoded"), 1);
        json_decref(j);
    }
}

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/quire_ingest_msg_XXXXXX";
    char *b = ti_cli_tmpdir(tmpl, out_path, err_path, sizeof out_path);
    CHECK(b != NULL);
    if (!b)
        return qr_test_done();
    snprintf(base, sizeof base, "%s", b);
    if (argc > 1 && !strcmp(argv[1], "embed")) {
        embed_mode();
        ti_rmrf(base);
        return qr_test_done();
    }
    json_bound();

    char mixed[512], args[4096];
    snprintf(mixed, sizeof mixed, "%s/mixed", base);
    CHECK(mkdir(mixed, 0755) == 0);
    CHECK_INT(ti_copy(FIXTURE("encodings/cp1252.txt"), mixed, "cp1252.txt"), 0);
    CHECK(ti_write(mixed, "plain.txt", "Plain text in UTF-8.\n") == 0);
    CHECK(ti_write(mixed, "elf.bin", "\x7f" "ELF\x02\x01\x01 binary") == 0);
    CHECK(ti_write(mixed, "png.dat", "\x89PNG\r\n\x1a\n image") == 0);

    /* --json: the fallback file with its encoding, the skips counted by kind */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s1' --json", mixed, base);
    CHECK_INT(quire(args), 0);
    json_t *j = json_out();
    CHECK_INT(jint(j, "fallback_decoded"), 1);
    CHECK_INT(jint(j, "files_omitted"), 0);
    CHECK_INT(jint(json_object_get(j, "skipped_by_reason"), "binary"), 2);
    json_t *files = json_object_get(j, "files");
    int saw = 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *f = json_array_get(files, i);
        const char *p = json_string_value(json_object_get(f, "path"));
        const char *enc = json_string_value(json_object_get(f, "encoding"));
        if (p && strstr(p, "/cp1252.txt")) {
            saw++;
            CHECK_STR(enc, "Windows-1252");
            CHECK_STR(json_string_value(json_object_get(f, "encoding_source")), "fallback");
        } else {
            CHECK_MSG(enc == NULL, "%s: encoding %s", p, enc);
        }
    }
    CHECK_INT(saw, 1);
    json_decref(j);
    char *err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "cp1252.txt: not valid UTF-8: decoded as Windows-1252 (fallback)") != NULL, "%s", err);
    CHECK_INT(occurrences(err, "quire: info: ingest: skipped 2 files (2 binary); --log-level debug lists them"), 1);
    CHECK_MSG(strstr(err, "elf.bin") == NULL && strstr(err, "png.dat") == NULL, "%s", err);
    CHECK_MSG(strstr(err, "/4 files (") == NULL, "progress line within 5 s: %s", err);
    free(err);

    /* the text report lists it on stdout, after the summary line */
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s2'", mixed, base);
    CHECK_INT(quire(args), 0);
    char *out = ti_slurp(out_path), want[1024];
    snprintf(want, sizeof want, "\ningest: decoded as Windows-1252 (not valid UTF-8): %s/cp1252.txt\n", mixed);
    CHECK_MSG(strstr(out, want) != NULL, "%s", out);
    CHECK_INT(occurrences(out, "\n"), 2);
    free(out);

    /* a re-run: the same one info line, no path; at debug level each skipped file */
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    CHECK_INT(occurrences(err, "skipped 2 files (2 binary)"), 1);
    CHECK_MSG(strstr(err, "elf.bin") == NULL, "%s", err);
    free(err);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s2' --log-level debug", mixed, base);
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    snprintf(want, sizeof want, "quire: debug: ingest: skipped %s/elf.bin: binary", mixed);
    CHECK_MSG(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof want, "quire: debug: ingest: skipped %s/png.dat: binary", mixed);
    CHECK_MSG(strstr(err, want) != NULL, "%s", err);
    CHECK_INT(occurrences(err, "quire: info: ingest: skipped 2 files (2 binary)"), 1);
    free(err);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s2' --log-level warn", mixed, base);
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "skipped") == NULL, "%s", err);
    free(err);

    /* nothing to ingest: an empty directory, only hidden entries, only binary files */
    char empty[512], hidden[512], bins[512];
    snprintf(empty, sizeof empty, "%s/empty", base);
    snprintf(hidden, sizeof hidden, "%s/hidden", base);
    snprintf(bins, sizeof bins, "%s/bins", base);
    CHECK(mkdir(empty, 0755) == 0 && mkdir(hidden, 0755) == 0 && mkdir(bins, 0755) == 0);
    CHECK(ti_write(hidden, ".notes.txt", "hidden notes\n") == 0);
    CHECK(ti_write(bins, "x.bin", "\x7f" "ELF\x02\x01\x01 binary") == 0);
    snprintf(args, sizeof args, "ingest '%s' '%s' --store '%s/s3'", empty, hidden, base);
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    snprintf(want, sizeof want, "quire: warning: ingest: %s: no files to ingest (an empty directory)", empty);
    CHECK_MSG(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof want,
             "quire: warning: ingest: %s: no files to ingest (1 hidden entry passed over; --hidden reads them)",
             hidden);
    CHECK_MSG(strstr(err, want) != NULL, "%s", err);
    free(err);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s3'", bins, base);
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "quire: warning: ingest: nothing to ingest: all 1 files were skipped") != NULL, "%s", err);
    free(err);
    snprintf(args, sizeof args, "ingest '%s' --store '%s/s3'", mixed, base); /* files found: no warning */
    CHECK_INT(quire(args), 0);
    err = ti_slurp(err_path);
    CHECK_MSG(strstr(err, "nothing to ingest") == NULL && strstr(err, "no files to ingest") == NULL, "%s", err);
    free(err);

    /* progress off a terminal: a line per batch with --progress-interval 0
     * (here from the environment), files counting up to the total */
    enum { N = 6000 };
    char corpus[512], clean[512];
    snprintf(corpus, sizeof corpus, "%s/corpus", base);
    snprintf(clean, sizeof clean, "%s/clean", base);
    make_corpus(corpus, N);
    snprintf(args, sizeof args, "ingest '%s' --store '%s'", corpus, clean);
    setenv("QUIRE_PROGRESS_INTERVAL", "0", 1);
    CHECK_INT(quire(args), 0);
    unsetenv("QUIRE_PROGRESS_INTERVAL");
    err = ti_slurp(err_path);
    CHECK(strchr(err, '\r') == NULL);
    int lines = 0;
    long last = 0;
    bool rising = true;
    for (const char *p = err; (p = strstr(p, "quire: info: ingest: ")); p++) {
        long done, total;
        if (sscanf(p, "quire: info: ingest: %ld/%ld files (", &done, &total) != 2)
            continue;
        lines++;
        rising &= done > last && total == N;
        last = done;
    }
    CHECK_MSG(lines >= N / 32 && rising && last == N, "%d lines, last %ld: %.300s", lines, last, err);
    CHECK_MSG(strstr(err, " chunks/s, ETA ") != NULL, "%.300s", err);
    free(err);

    /* SIGINT / SIGTERM mid-ingest, resumed to the uninterrupted store */
    interrupt_and_resume(corpus, N, "", clean);

    ti_rmrf(base);
    return qr_test_done();
}
