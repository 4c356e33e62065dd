/* safetensors through qr_wsrc: single file and 2-shard fixtures written by
 * tools/fixtures_weights/make_fixtures.py (expected values from numpy), and
 * corrupt copies (truncated, bad header, bad entries, mutations). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"
#include "tests/unit/weights/wtest.h"

/* Converts t to f32 and compares bit-for-bit with expected/<name>.f32. */
static void check_values(const qr_wtensor *t, const char *expected_name)
{
    char rel[256];
    size_t n = 0;
    snprintf(rel, sizeof rel, "weights/expected/%s.f32", expected_name);
    float *want = (float *)qr_test_slurp(FIXTURE(rel), &n);
    CHECK_MSG(want != NULL, "%s", rel);
    int64_t nel = 1;
    for (int d = 0; d < t->n_dims; d++)
        nel *= t->shape[d];
    CHECK_MSG((size_t)nel * 4 == n, "%s: %lld elements, expected file %zu bytes", t->name, (long long)nel, n);
    float *got = malloc((size_t)nel * 4 + 4);
    if (want && got && (size_t)nel * 4 == n) {
        CHECK_OK(qr_convert_to_f32(t->dtype, t->data, nel, got));
        long bad = wt_bits_differ(got, want, (size_t)nel);
        CHECK_MSG(bad == 0, "%s: %ld of %lld values differ", t->name, bad, (long long)nel);
    }
    free(got);
    free(want);
}

static void test_single(void)
{
    qr_wsrc *s = NULL;
    const char *dir = FIXTURE("weights/st_single");
    CHECK_OK(qr_wsrc_open(dir, &s));
    if (!s)
        return;
    CHECK(qr_wsrc_gguf(s) == NULL);
    CHECK_INT(qr_wsrc_count(s), 4); /* __metadata__ is not a tensor */
    CHECK(qr_wsrc_find(s, "__metadata__") == NULL);
    const qr_wtensor *t = qr_wsrc_find(s, "f32.weight");
    CHECK(t && t->dtype == QR_F32 && t->n_dims == 2 && t->shape[0] == 3 && t->shape[1] == 5 && t->nbytes == 60);
    CHECK(t && strstr(t->file, "st_single/model.safetensors") != NULL);
    if (t)
        check_values(t, "f32.weight");
    t = qr_wsrc_find(s, "f16.weight");
    CHECK(t && t->dtype == QR_F16 && t->shape[0] == 4 && t->shape[1] == 8 && t->nbytes == 64);
    if (t)
        check_values(t, "f16.weight");
    t = qr_wsrc_find(s, "bf16.weight");
    CHECK(t && t->dtype == QR_BF16 && t->n_dims == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4);
    if (t)
        check_values(t, "bf16.weight");
    t = qr_wsrc_find(s, "scalar");
    CHECK(t && t->n_dims == 0 && t->nbytes == 4);
    if (t)
        check_values(t, "scalar");
    CHECK_INT(qr_wsrc_bytes(s), 60 + 64 + 48 + 4);
    qr_wsrc_close(s);

    /* the file itself opens the same way */
    CHECK_OK(qr_wsrc_open(FIXTURE("weights/st_single/model.safetensors"), &s));
    if (s)
        CHECK_INT(qr_wsrc_count(s), 4);
    qr_wsrc_close(s);
}

static void test_sharded(void)
{
    qr_wsrc *s = NULL;
    CHECK_OK(qr_wsrc_open(FIXTURE("weights/st_sharded"), &s));
    if (!s)
        return;
    static const char *names[] = {"model.embed.weight", "model.layers.0.w", "model.layers.1.w", "lm_head.weight"};
    static const char *files[] = {"00001", "00001", "00002", "00002"};
    CHECK_INT(qr_wsrc_count(s), 4);
    for (int i = 0; i < 4; i++) {
        const qr_wtensor *t = qr_wsrc_find(s, names[i]);
        CHECK_MSG(t != NULL, "%s", names[i]);
        if (!t)
            continue;
        CHECK(strstr(t->file, files[i]) != NULL);
        check_values(t, names[i]);
    }
    CHECK(qr_wsrc_at(s, 4) == NULL && qr_wsrc_at(s, 0) != NULL);
    CHECK(qr_wsrc_find(s, "model.position_ids") == NULL); /* I64 buffer listed in the index: skipped */
    qr_wsrc_close(s);
}

/* ---- corrupt files ---- */

static char tmpdir[64];
static size_t last_count; /* tensors of the last file opened by open_bytes */
static bool last_found_b;

static int open_bytes(const char *name, const void *p, size_t n, qr_wsrc **s)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path); /* a new inode: rewriting with O_TRUNC forces a flush on ext4 (auto_da_alloc) */
    CHECK(wt_write(path, p, n) == 0);
    *s = NULL;
    int rc = qr_wsrc_open(path, s);
    if (rc == 0) {
        last_count = qr_wsrc_count(*s);
        last_found_b = qr_wsrc_find(*s, "b") != NULL;
        qr_wsrc_close(*s);
    }
    return rc;
}

/* A one-tensor file: header JSON (padded to 8) then data bytes. */
static int open_header(const char *json, size_t data_bytes)
{
    unsigned char b[4096] = {0};
    uint64_t h = strlen(json);
    memcpy(b, &h, 8);
    memcpy(b + 8, json, h);
    qr_wsrc *s;
    return open_bytes("h.safetensors", b, 8 + h + data_bytes, &s);
}

static int last_error_has(const char *a, const char *b)
{
    return strstr(qr_last_error(), a) && (!b || strstr(qr_last_error(), b));
}

static void test_corrupt(void)
{
    size_t n = 0;
    unsigned char *orig = (unsigned char *)qr_test_slurp(FIXTURE("weights/st_single/model.safetensors"), &n);
    CHECK(orig != NULL);
    if (!orig)
        return;
    qr_wsrc *s;
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) { /* every truncation fails and names the file */
        int rc = open_bytes("cut.safetensors", orig, cut, &s);
        bad += rc != QR_EFORMAT || !last_error_has("cut.safetensors", NULL);
    }
    CHECK_MSG(bad == 0, "%d of %zu truncations not rejected", bad, n);

    uint64_t hl;
    memcpy(&hl, orig, 8);
    unsigned char *p = malloc(n);
    memcpy(p, orig, n);
    uint64_t huge = UINT64_MAX - 3;
    memcpy(p, &huge, 8);
    CHECK_INT(open_bytes("len.safetensors", p, n, &s), QR_EFORMAT);
    CHECK(last_error_has("len.safetensors", "header length"));

    /* 500 seeded mutations of the header: never a crash; errors name the file */
    uint64_t st = 12345;
    int unnamed = 0, opened = 0;
    for (int it = 0; it < 500; it++) {
        memcpy(p, orig, n);
        for (int k = 0; k < 3; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            p[(st >> 33) % (8 + hl)] = (unsigned char)(st >> 20);
        }
        int rc = open_bytes("mut.safetensors", p, n, &s);
        opened += rc == 0;
        unnamed += rc != 0 && !last_error_has("mut.safetensors", NULL);
    }
    CHECK_INT(unnamed, 0);
    printf("mutations: %d of 500 still opened\n", opened);
    free(p);
    free(orig);

    CHECK_OK(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16));
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 15), QR_EFORMAT);
    CHECK(last_error_has("h.safetensors", "'a'"));
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 32), QR_EFORMAT);
    CHECK(last_error_has("'a'", "end - begin"));
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16), QR_EUNSUPPORTED);
    CHECK(last_error_has("'a'", "F64"));
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), QR_EUNSUPPORTED);
    /* integer buffers are validated, then skipped */
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), QR_EFORMAT);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[0,16]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24), 0);
    CHECK_INT(last_count, 1);
    CHECK(last_found_b);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4),
              QR_EUNSUPPORTED);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), QR_EFORMAT);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8), QR_EFORMAT);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), QR_EFORMAT);
    CHECK(last_error_has("overlap", NULL));
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                          "\"data_offsets\":[0,16]}}", 16), QR_EFORMAT);
    CHECK_INT(open_header("{\"a\":1,\"a\":2}", 0), QR_EFORMAT); /* duplicate key */
    CHECK_INT(open_header("[1, 2]  ", 0), QR_EFORMAT);
    CHECK_INT(open_header("{\"a\":{\"dtype\":\"F32\"", 0), QR_EFORMAT);
    CHECK_INT(open_header("{\"__metadata__\":{\"k\":\"v\"}}", 0), 0); /* no tensors is valid */
}

/* Shard index problems. */
static void test_bad_index(void)
{
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/shards", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    size_t n;
    unsigned char *a = (unsigned char *)qr_test_slurp(FIXTURE("weights/st_sharded/model-00001-of-00002.safetensors"), &n);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    CHECK(a && wt_write(path, a, n) == 0);
    free(a);
    const char *idx[] = {
        "{\"weight_map\":{\"model.embed.weight\":\"a.safetensors\",\"x\":\"a.safetensors\"}}",
        "{\"weight_map\":{\"model.embed.weight\":\"missing.safetensors\"}}",
        "{\"weight_map\":{\"model.embed.weight\":\"../a.safetensors\"}}",
        "{\"weight_map\":{}}",
        "{\"weight\":{}}",
        "not json",
    };
    int want[] = {QR_EFORMAT, QR_ENOTFOUND, QR_EFORMAT, QR_EFORMAT, QR_EFORMAT, QR_EFORMAT};
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    for (int i = 0; i < 6; i++) {
        CHECK(wt_write(path, idx[i], strlen(idx[i])) == 0);
        qr_wsrc *s = NULL;
        int rc = qr_wsrc_open(dir, &s);
        CHECK_MSG(rc == want[i], "index %d: rc %d: %s", i, rc, qr_last_error());
        qr_wsrc_close(s);
    }
    CHECK(last_error_has("model.safetensors.index.json", NULL));
    unlink(path);
    /* without the index: a lone safetensors file in the directory is used */
    qr_wsrc *s = NULL;
    CHECK_OK(qr_wsrc_open(dir, &s));
    if (s)
        CHECK(qr_wsrc_find(s, "model.layers.0.w") != NULL);
    qr_wsrc_close(s);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    CHECK(wt_write(path, "x", 1) == 0);
    CHECK_INT(qr_wsrc_open(dir, &s), QR_ENOTFOUND);
    CHECK(last_error_has("safetensors", ".bin"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/quire_st_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    test_single();
    test_sharded();
    test_corrupt();
    test_bad_index();
    char path[256];
    const char *files[] = {"cut.safetensors", "len.safetensors", "mut.safetensors", "h.safetensors"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return qr_test_done();
}
