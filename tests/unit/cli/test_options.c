/* The option table: precedence flag > env > file > default, typed parsing with
 * bounds, error messages that name source/option/bound, did-you-mean, and
 * agreement between the table and configs/quire.conf (argv[1]) both ways. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/options.h"
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/quire-opt-XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
    static char path[4][512];
    static int slot;
    char *p = path[slot++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static bool contains(const char *hay, const char *needle)
{
    bool ok = strstr(hay, needle) != NULL;
    if (!ok)
        fprintf(stderr, "  expected \"%s\" in \"%s\"\n", needle, hay);
    return ok;
}

static void test_defaults(void)
{
    qr_options *o = NULL;
    CHECK_OK(qr_options_create(&o));
    CHECK(!strcmp(qr_opt_str(o, QR_OPT_DTYPE), "f32"));
    CHECK_INT(qr_opt_int(o, QR_OPT_MAX_TOKENS), 256);
    CHECK_NEAR(qr_opt_float(o, QR_OPT_TOP_P), 0.95, 1e-12);
    CHECK(!strcmp(qr_opt_str(o, QR_OPT_MODEL), ""));
    CHECK_INT(qr_opt_count(o, QR_OPT_STOP), 0);
    CHECK_INT(qr_opt_source_of(o, QR_OPT_CTX), QR_SRC_DEFAULT);
    CHECK(!strcmp(qr_opt_origin(o, QR_OPT_CTX), "default"));
    qr_options_free(o);
    qr_options_free(NULL);
}

static void test_precedence(void)
{
    /* ctx: file, env and flag; top-k: file and env; seed: file only; stop: file list vs flags. */
    const char *conf = write_tmp("prec.conf", "# comment\n\n  ctx = 100\ntop-k=7\nseed = 11\n"
                                              "stop = \"a b\"\nstop = \"\\n\\n\"\nmodel = /m/file\n");
    setenv("QUIRE_CTX", "200", 1);
    setenv("QUIRE_TOP_K", "8", 1);
    setenv("QUIRE_MODEL", "", 1); /* empty = unset */
    char *args[] = {"--ctx", "300", "--stop", "X", "--stop=Y", "--jsonl", "pos1"};
    qr_options *o = NULL;
    CHECK_OK(qr_options_create(&o));
    CHECK_OK(qr_options_load_file(o, conf));
    CHECK_INT(qr_opt_int(o, QR_OPT_CTX), 100);
    CHECK_INT(qr_opt_count(o, QR_OPT_STOP), 2);
    CHECK(!strcmp(qr_opt_item(o, QR_OPT_STOP, 0), "a b"));
    CHECK(!strcmp(qr_opt_item(o, QR_OPT_STOP, 1), "\n\n"));
    CHECK_OK(qr_options_load_env(o));
    CHECK_INT(qr_opt_int(o, QR_OPT_CTX), 200);
    CHECK_OK(qr_options_parse_args(o, 7, args, NULL));
    CHECK_INT(qr_opt_int(o, QR_OPT_CTX), 300);
    CHECK_INT(qr_opt_source_of(o, QR_OPT_CTX), QR_SRC_FLAG);
    CHECK(!strcmp(qr_opt_origin(o, QR_OPT_CTX), "flag --ctx"));
    CHECK_INT(qr_opt_int(o, QR_OPT_TOP_K), 8);
    CHECK(!strcmp(qr_opt_origin(o, QR_OPT_TOP_K), "environment QUIRE_TOP_K"));
    CHECK_INT(qr_opt_int(o, QR_OPT_SEED), 11);
    CHECK(contains(qr_opt_origin(o, QR_OPT_SEED), "prec.conf:5"));
    CHECK(!strcmp(qr_opt_str(o, QR_OPT_MODEL), "/m/file"));
    CHECK_INT(qr_opt_count(o, QR_OPT_STOP), 2); /* flags replaced the file's list */
    CHECK(!strcmp(qr_opt_item(o, QR_OPT_STOP, 0), "X"));
    CHECK(!strcmp(qr_opt_item(o, QR_OPT_STOP, 1), "Y"));
    CHECK(qr_opt_bool(o, QR_OPT_JSONL));
    CHECK_INT(qr_options_n_positional(o), 1);
    CHECK(!strcmp(qr_options_positional(o, 0), "pos1"));
    qr_options_free(o);

    /* A lower-precedence source loaded later does not override a higher one. */
    CHECK_OK(qr_options_create(&o));
    CHECK_OK(qr_options_set(o, QR_OPT_CTX, "5", QR_SRC_FLAG, "flag --ctx"));
    CHECK_OK(qr_options_set(o, QR_OPT_CTX, "6", QR_SRC_FILE, "x:1"));
    CHECK_INT(qr_opt_int(o, QR_OPT_CTX), 5);
    qr_options_free(o);

    /* qr_options_load: --config=FILE, QUIRE_CONFIG, and the whole order. */
    const char *c2 = write_tmp("c2.conf", "ctx = 42\ntemperature = 0.25\n");
    setenv("QUIRE_CONFIG", "/nonexistent/quire.conf", 1);
    char cfgflag[600];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", c2);
    char *a2[] = {cfgflag, "--no-jsonl"};
    CHECK_OK(qr_options_create(&o));
    CHECK_OK(qr_options_load(o, 2, a2, NULL));
    CHECK_INT(qr_opt_int(o, QR_OPT_CTX), 200); /* env QUIRE_CTX still wins over the file */
    CHECK_NEAR(qr_opt_float(o, QR_OPT_TEMPERATURE), 0.25, 0);
    CHECK(!qr_opt_bool(o, QR_OPT_JSONL));
    CHECK(!strcmp(qr_options_config_path(o), c2));
    qr_options_free(o);
    /* the explicitly named file from QUIRE_CONFIG is missing: an error */
    CHECK_OK(qr_options_create(&o));
    int rc = qr_options_load(o, 0, NULL, NULL);
    CHECK_INT(rc, QR_ENOTFOUND);
    CHECK(contains(qr_last_error(), "/nonexistent/quire.conf"));
    CHECK(contains(qr_last_error(), "QUIRE_CONFIG"));
    qr_options_free(o);
    unsetenv("QUIRE_CONFIG");
    unsetenv("QUIRE_CTX");
    unsetenv("QUIRE_TOP_K");
    unsetenv("QUIRE_MODEL");
}

/* Sets one value from a source and expects an error whose text holds each needle. */
static void expect_error(qr_opt_source src, const char *what, const char *const *needles)
{
    qr_options *o = NULL;
    CHECK_OK(qr_options_create(&o));
    int rc;
    if (src == QR_SRC_FILE) {
        rc = qr_options_load_file(o, write_tmp("bad.conf", what));
    } else if (src == QR_SRC_ENV) {
        char name[64];
        const char *eq = strchr(what, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - what), what);
        setenv(name, eq + 1, 1);
        rc = qr_options_load_env(o);
        unsetenv(name);
    } else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", what);
        char *args[4];
        int n = 0;
        for (char *t = strtok(buf, " "); t && n < 4; t = strtok(NULL, " "))
            args[n++] = t;
        static const int allowed[] = {QR_OPT_MODEL, QR_OPT_CTX, QR_OPT_TOP_P, QR_OPT_DTYPE, QR_OPT_JSONL, -1};
        rc = qr_options_parse_args(o, n, args, allowed);
    }
    CHECK_MSG(rc == QR_EINVAL, "%s -> %d", what, rc);
    for (; *needles; needles++)
        CHECK_MSG(strstr(qr_last_error(), *needles), "%s: \"%s\" not in \"%s\"", what, *needles, qr_last_error());
    qr_options_free(o);
}

static void test_errors(void)
{
    expect_error(QR_SRC_FILE, "ctx = 8\nmax-tokens = 0\n",
                 (const char *[]){"bad.conf:2", "max-tokens", "below the minimum 1", NULL});
    expect_error(QR_SRC_FILE, "temprature = 1\n",
                 (const char *[]){"bad.conf:1", "unknown option \"temprature\"", "did you mean \"temperature\"", NULL});
    expect_error(QR_SRC_FILE, "dtype = fp8\n", (const char *[]){"bad.conf:1", "dtype", "f32|bf16|f16|int8", NULL});
    expect_error(QR_SRC_FILE, "just words\n", (const char *[]){"bad.conf:1", "name = value", NULL});
    expect_error(QR_SRC_FILE, "prompt = hi\n", (const char *[]){"bad.conf:1", "command-line switch", NULL});
    expect_error(QR_SRC_FILE, "stop = \"unterminated\n", (const char *[]){"bad.conf:1", "stop", "quoted", NULL});
    expect_error(QR_SRC_ENV, "QUIRE_TOP_P=1.5",
                 (const char *[]){"environment QUIRE_TOP_P", "top-p", "above the maximum 1", NULL});
    expect_error(QR_SRC_ENV, "QUIRE_THREADS=two", (const char *[]){"QUIRE_THREADS", "not an integer", NULL});
    expect_error(QR_SRC_ENV, "QUIRE_DEVICE=gpu", (const char *[]){"QUIRE_DEVICE", "cuda:N", NULL});
    expect_error(QR_SRC_FLAG, "--ctx 2000000", (const char *[]){"flag --ctx", "above the maximum 1048576", NULL});
    expect_error(QR_SRC_FLAG, "--ctx", (const char *[]){"flag --ctx", "missing value", NULL});
    expect_error(QR_SRC_FLAG, "--top_p 0.5", (const char *[]){"--top_p", "did you mean --top-p", NULL});
    expect_error(QR_SRC_FLAG, "--temperature 0", (const char *[]){"--temperature", "not an option of this command", NULL});
    expect_error(QR_SRC_FLAG, "--dtype=nf4", (const char *[]){"flag --dtype", "\"nf4\" is not one of", NULL});
    expect_error(QR_SRC_FLAG, "--jsonl=maybe", (const char *[]){"flag --jsonl", "not a boolean", NULL});
    expect_error(QR_SRC_FLAG, "-m x", (const char *[]){"-m", "long", NULL});
}

/* Agreement of configs/quire.conf with the table, both ways: every config
 * option appears exactly once as `name = default`, and every key in the file
 * is a table option. */
static void test_conf_file(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    int seen[QR_OPT_COUNT] = {0};
    char line[4096];
    int lineno = 0, keys = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *eq = strstr(line, " =");
        CHECK_MSG(eq != NULL, "%s:%d: not `name = value`: %s", path, lineno, line);
        if (!eq)
            continue;
        *eq = '\0';
        const char *val = eq[2] == ' ' ? eq + 3 : eq + 2;
        int id = qr_option_find(line);
        CHECK_MSG(id >= 0, "%s:%d: key \"%s\" is not in the option table", path, lineno, line);
        keys++;
        if (id < 0)
            continue;
        const qr_option_def *d = qr_option_def_at(id);
        CHECK_MSG(!(d->flags & QR_OPTF_CLI), "%s:%d: %s is a command-line switch", path, lineno, line);
        seen[id]++;
        CHECK_MSG(!strcmp(val, d->def), "%s:%d: %s = \"%s\" but the table's default is \"%s\"", path, lineno, line,
                  val, d->def);
    }
    fclose(f);
    int config_opts = 0;
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        const qr_option_def *d = qr_option_def_at(i);
        if (d->flags & QR_OPTF_CLI)
            continue;
        config_opts++;
        CHECK_MSG(seen[i] == 1, "option %s appears %d times in %s (want 1)", d->name, seen[i], path);
    }
    CHECK_INT(keys, config_opts);
    /* The file itself loads cleanly and leaves the defaults in place. */
    qr_options *o = NULL;
    CHECK_OK(qr_options_create(&o));
    CHECK_OK(qr_options_load_file(o, path));
    CHECK_INT(qr_opt_source_of(o, QR_OPT_DTYPE), QR_SRC_FILE);
    CHECK(!strcmp(qr_opt_str(o, QR_OPT_DTYPE), "f32"));
    CHECK_INT(qr_opt_count(o, QR_OPT_STOP), 0);
    qr_options_free(o);
}

static void test_table(void)
{
    /* names are unique, lower case with '-', defaults parse and lie within bounds */
    for (int i = 0; i < QR_OPT_COUNT; i++) {
        const qr_option_def *d = qr_option_def_at(i);
        CHECK_INT(qr_option_find(d->name), i);
        for (const char *c = d->name; *c; c++)
            CHECK_MSG((*c >= 'a' && *c <= 'z') || *c == '-', "bad option name %s", d->name);
        char env[96];
        qr_option_env_name(d, env, sizeof env);
        CHECK(!strncmp(env, "QUIRE_", 6) && !strchr(env, '-'));
    }
    char env[96];
    qr_option_env_name(qr_option_def_at(QR_OPT_REPEAT_LAST_N), env, sizeof env);
    CHECK(!strcmp(env, "QUIRE_REPEAT_LAST_N"));
    CHECK(qr_option_suggest("max_tokens", false) && !strcmp(qr_option_suggest("max_tokens", false), "max-tokens"));
    CHECK(qr_option_suggest("zzzzzzzz", false) == NULL);
    /* command-line switches are not read from the environment */
    setenv("QUIRE_JSONL", "1", 1);
    qr_options *o = NULL;
    CHECK_OK(qr_options_create(&o));
    CHECK_OK(qr_options_load_env(o));
    CHECK(!qr_opt_bool(o, QR_OPT_JSONL));
    qr_options_free(o);
    unsetenv("QUIRE_JSONL");
}

int main(int argc, char **argv)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_table();
    test_precedence();
    test_errors();
    if (argc > 1)
        test_conf_file(argv[1]);
    else
        CHECK_MSG(0, "usage: test_options path/to/configs/quire.conf");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return qr_test_done();
}
