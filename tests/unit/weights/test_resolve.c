/* qr_model_resolve over fake Hugging Face cache and Ollama store layouts
 * built in a temporary directory (environment set with setenv). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"
#include "tests/unit/weights/wtest.h"

static char root[64];

/* mkdir -p of root/rel's parent, then writes text (NULL: makes rel a directory). */
static void make(const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0700);
            *s = '/';
        }
    if (text)
        CHECK(wt_write(p, text, strlen(text)) == 0);
    else
        mkdir(p, 0700);
}

static const char *at(const char *rel)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return p;
}

/* Resolves arg and compares with root/want_rel. */
static void expect(const char *arg, const char *want_rel)
{
    char *out = NULL;
    int rc = qr_model_resolve(arg, &out);
    CHECK_MSG(rc == 0, "%s: %d %s", arg, rc, qr_last_error());
    CHECK_MSG(out && strcmp(out, at(want_rel)) == 0, "%s -> %s", arg, out ? out : "(null)");
    free(out);
}

/* Fails with code, and the detail contains each of the given strings. */
static void expect_fail(const char *arg, int code, const char *s1, const char *s2)
{
    char *out = NULL;
    int rc = qr_model_resolve(arg, &out);
    CHECK_MSG(rc == code, "%s: rc %d, want %d (%s)", arg, rc, code, qr_last_error());
    CHECK(out == NULL);
    CHECK_MSG(!s1 || strstr(qr_last_error(), s1), "%s: '%s' not in: %s", arg, s1, qr_last_error());
    CHECK_MSG(!s2 || strstr(qr_last_error(), s2), "%s: '%s' not in: %s", arg, s2, qr_last_error());
    free(out);
}

static void clear_env(void)
{
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HOME");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("OLLAMA_MODELS");
    setenv("HOME", at("nohome"), 1);
}

static void test_hf(void)
{
    make("hub/models--org--name/refs/main", "abc123\n");
    make("hub/models--org--name/refs/v1.0", "def456");
    make("hub/models--org--name/snapshots/abc123/config.json", "{}");
    make("hub/models--org--name/snapshots/def456/config.json", "{}");
    make("hub/models--org--norefs/snapshots/0011aa/config.json", "{}");
    make("hub/models--org--broken/refs/main", "ffff");
    make("hub/models--org--broken/snapshots/eeee", NULL);
    make("hub/models--gpt2/refs/main", "9a9a");
    make("hub/models--gpt2/snapshots/9a9a", NULL);

    clear_env();
    setenv("HF_HUB_CACHE", at("hub"), 1);
    expect("org/name", "hub/models--org--name/snapshots/abc123");
    expect("org/name@main", "hub/models--org--name/snapshots/abc123");
    expect("org/name@v1.0", "hub/models--org--name/snapshots/def456");
    expect("org/name@def456", "hub/models--org--name/snapshots/def456"); /* a commit hash */
    expect("org/norefs", "hub/models--org--norefs/snapshots/0011aa");
    expect("gpt2", "hub/models--gpt2/snapshots/9a9a");
    expect_fail("org/name@nope", QR_ENOTFOUND, "--revision nope", "never uses the network");
    expect_fail("org/other", QR_ENOTFOUND, "huggingface-cli download org/other", "never uses the network");
    expect_fail("org/broken", QR_ENOTFOUND, "snapshot ffff", "incomplete");
    expect_fail("org/../x", QR_ENOTFOUND, "no such file", NULL);
    expect_fail("missing-model.gguf", QR_ENOTFOUND, "no such file", NULL);

    /* HF_HOME/hub, then XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub */
    make("hfhome/hub/models--a--b/refs/main", "1");
    make("hfhome/hub/models--a--b/snapshots/1", NULL);
    make("xdg/huggingface/hub/models--a--b/refs/main", "2");
    make("xdg/huggingface/hub/models--a--b/snapshots/2", NULL);
    make("home/.cache/huggingface/hub/models--a--b/refs/main", "3");
    make("home/.cache/huggingface/hub/models--a--b/snapshots/3", NULL);
    clear_env();
    setenv("HF_HOME", at("hfhome"), 1);
    setenv("XDG_CACHE_HOME", at("xdg"), 1);
    expect("a/b", "hfhome/hub/models--a--b/snapshots/1");
    unsetenv("HF_HOME");
    expect("a/b", "xdg/huggingface/hub/models--a--b/snapshots/2");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", at("home"), 1);
    expect("a/b", "home/.cache/huggingface/hub/models--a--b/snapshots/3");
    setenv("HF_HUB_CACHE", at("hub"), 1); /* HF_HUB_CACHE wins over the rest */
    expect_fail("a/b", QR_ENOTFOUND, at("hub/models--a--b"), NULL);

    /* an existing path is returned as given */
    char *out = NULL;
    CHECK_OK(qr_model_resolve(at("hub"), &out));
    CHECK(out && strcmp(out, at("hub")) == 0);
    free(out);
    expect_fail("", QR_EINVAL, NULL, NULL);
}

#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX2 "aa23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MANIFEST(mt, dg)                                                                          \
    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\"," \
    "\"digest\":\"sha256:" HEX "\"},\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.template\","     \
    "\"digest\":\"sha256:ffff\"},{\"mediaType\":\"" mt "\",\"digest\":\"" dg "\",\"size\":4}]}"

static void test_ollama(void)
{
    const char *m = "ollama/manifests/registry.ollama.ai/";
    char p[512];
    snprintf(p, sizeof p, "%slibrary/tinyllama/latest", m);
    make(p, MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX));
    snprintf(p, sizeof p, "%slibrary/tinyllama/1b", m);
    make(p, MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX2));
    snprintf(p, sizeof p, "%smyns/model/q4", m);
    make(p, MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX));
    snprintf(p, sizeof p, "%slibrary/nomodel/latest", m);
    make(p, MANIFEST("application/vnd.ollama.image.license", "sha256:" HEX));
    snprintf(p, sizeof p, "%slibrary/badjson/latest", m);
    make(p, "{\"layers\": [");
    make("ollama/manifests/example.com/ns/x/latest", MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX));
    make("ollama/blobs/sha256-" HEX, "GGUF");

    clear_env();
    setenv("OLLAMA_MODELS", at("ollama"), 1);
    expect("ollama:tinyllama", "ollama/blobs/sha256-" HEX);
    expect("ollama:tinyllama:latest", "ollama/blobs/sha256-" HEX);
    expect("ollama:myns/model:q4", "ollama/blobs/sha256-" HEX);
    expect("ollama:example.com/ns/x", "ollama/blobs/sha256-" HEX);
    expect_fail("ollama:tinyllama:1b", QR_ENOTFOUND, "sha256-aa23", "ollama pull tinyllama:1b");
    expect_fail("ollama:tinyllama:7b", QR_ENOTFOUND, "ollama pull tinyllama:7b", "never uses the network");
    expect_fail("ollama:myns/model", QR_ENOTFOUND, "ollama pull myns/model:latest", NULL);
    expect_fail("ollama:nomodel", QR_EFORMAT, "application/vnd.ollama.image.model", NULL);
    expect_fail("ollama:badjson", QR_EFORMAT, "badjson/latest", NULL);
    expect_fail("ollama:../x", QR_EINVAL, NULL, NULL);
    expect_fail("ollama:", QR_EINVAL, NULL, NULL);
    expect_fail("ollama:a/b/c/d", QR_EINVAL, NULL, NULL);
    expect_fail("ollama:x:", QR_EINVAL, NULL, NULL);

    make("home/.ollama/models/manifests/registry.ollama.ai/library/t/latest",
         MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX));
    make("home/.ollama/models/blobs/sha256-" HEX, "GGUF");
    clear_env();
    setenv("HOME", at("home"), 1);
    expect("ollama:t", "home/.ollama/models/blobs/sha256-" HEX);
}

/* End to end: resolved paths open as weight sources (HF snapshot files are
 * symlinks into blobs/; Ollama blobs are GGUF files without an extension). */
static void test_open_resolved(void)
{
    size_t n = 0;
    unsigned char *st = (unsigned char *)qr_test_slurp(FIXTURE("weights/st_single/model.safetensors"), &n);
    CHECK(st != NULL);
    make("e2e/hub/models--org--tiny/blobs/.keep", "");
    CHECK(st && wt_write(at("e2e/hub/models--org--tiny/blobs/0badc0de"), st, n) == 0);
    free(st);
    make("e2e/hub/models--org--tiny/refs/main", "c0ffee");
    make("e2e/hub/models--org--tiny/snapshots/c0ffee/config.json", "{}");
    CHECK(symlink("../../blobs/0badc0de", at("e2e/hub/models--org--tiny/snapshots/c0ffee/model.safetensors")) == 0);
    unsigned char *gg = (unsigned char *)qr_test_slurp(FIXTURE("weights/quant.gguf"), &n);
    make("e2e/ollama/manifests/registry.ollama.ai/library/q/latest",
         MANIFEST("application/vnd.ollama.image.model", "sha256:" HEX));
    make("e2e/ollama/blobs/.keep", "");
    CHECK(gg && wt_write(at("e2e/ollama/blobs/sha256-" HEX), gg, n) == 0);
    free(gg);

    clear_env();
    setenv("HF_HUB_CACHE", at("e2e/hub"), 1);
    setenv("OLLAMA_MODELS", at("e2e/ollama"), 1);
    const char *args[] = {"org/tiny", "ollama:q"};
    size_t want[] = {4, 13}; /* st_single + the quant.gguf fixture */
    for (int i = 0; i < 2; i++) {
        char *path = NULL;
        qr_wsrc *s = NULL;
        CHECK_OK(qr_model_resolve(args[i], &path));
        if (path)
            CHECK_OK(qr_wsrc_open(path, &s));
        CHECK_MSG(s && qr_wsrc_count(s) == want[i], "%s: %zu tensors", args[i], s ? qr_wsrc_count(s) : 0);
        CHECK(s && (qr_wsrc_gguf(s) != NULL) == (i == 1));
        qr_wsrc_close(s);
        free(path);
    }
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/quire_resolve_XXXXXX");
    if (!mkdtemp(root))
        return 1;
    test_hf();
    test_ollama();
    test_open_resolved();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root); /* test-only cleanup of our own temp dir */
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return qr_test_done();
}
