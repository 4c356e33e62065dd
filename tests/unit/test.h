/* Minimal assertion helpers for quire's unit tests. Each test program counts
 * its checks, prints failures with file:line, ends with "N passed, N failed"
 * and exits non-zero if any failed (meson reads the exit code). */
#ifndef QR_TEST_H
#define QR_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int qr_test_pass, qr_test_fail;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            qr_test_pass++;                                                           \
        } else {                                                                      \
            qr_test_fail++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (cond) {                                                           \
            qr_test_pass++;                                                   \
        } else {                                                              \
            qr_test_fail++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

#define CHECK_INT(a, b) CHECK_MSG((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define CHECK_STR(a, b)                                                                   \
    do {                                                                                  \
        const char *qr_s_a_ = (a), *qr_s_b_ = (b);                                        \
        CHECK_MSG(qr_s_a_ && qr_s_b_ && strcmp(qr_s_a_, qr_s_b_) == 0, "\"%s\" != \"%s\"", \
                  qr_s_a_ ? qr_s_a_ : "(null)", qr_s_b_ ? qr_s_b_ : "(null)");              \
    } while (0)
#define CHECK_NEAR(a, b, tol) \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %.3g)", (double)(a), (double)(b), (double)(tol))
/* A library call that must succeed; prints qr_last_error() otherwise. */
#define CHECK_OK(expr)                                                                      \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        CHECK_MSG(rc_ == 0, "%s -> %d (%s: %s)", #expr, rc_, qr_strerror(rc_), qr_last_error()); \
    } while (0)

static inline int qr_test_done(void)
{
    printf("%d passed, %d failed\n", qr_test_pass, qr_test_fail);
    return qr_test_fail ? 1 : 0;
}

/* Reads a whole file into a malloc'd, NUL-terminated buffer (caller frees);
 * NULL if it cannot be opened or read. *len (when not NULL) gets its size. */
static inline char *qr_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
        fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

/* Where a test's files come from (the one rule; tests/fixtures/models/README.md):
 *  - FIXTURE(rel): tests/fixtures (QUIRE_FIXTURES), committed with the repository: every
 *    model, tokenizer, vocabulary, chat template and reference a test reads, so a clone
 *    with nothing beside it runs them (tests/fixtures/models keeps ../shared/models' layout);
 *  - DATA(rel): ../shared/data (QUIRE_SHARED), the public evaluation sets (BEIR ArguAna,
 *    SciFact, ...) too large to commit; exits 77 (SKIP) naming what is missing;
 *  - MODEL(rel): real models fetched by tools/models.sh (QUIRE_MODELS); exits 77 likewise.
 * CI has ../shared and the models (tools/test.sh checks), so nothing skips there. */
static inline const char *qr_test_path(const char *envvar, const char *rel)
{
    static char buf[8][4096];
    static int slot;
    const char *base = getenv(envvar);
    char *b = buf[slot++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", base ? base : ".", rel);
    return b;
}
#define FIXTURE(rel) qr_test_path("QUIRE_FIXTURES", rel)

/* Path of rel under ../shared/data; exits 77 (SKIP) when it is not there. */
static inline const char *qr_test_data(const char *rel)
{
    static char buf[4][4096];
    static int slot;
    const char *base = getenv("QUIRE_SHARED");
    char *b = buf[slot++ & 3];
    snprintf(b, sizeof buf[0], "%s/data/%s", base ? base : "../shared", rel);
    if (access(b, R_OK) != 0) {
        printf("SKIP: %s not found: the evaluation data comes with ../shared (QUIRE_SHARED)\n", b);
        exit(77);
    }
    return b;
}
#define DATA(rel) qr_test_data(rel)

/* Path of a model fetched by tools/models.sh (QUIRE_MODELS); exits 77 (SKIP), naming
 * the script, when it is not there. */
static inline const char *qr_test_model(const char *rel)
{
    const char *p = qr_test_path("QUIRE_MODELS", rel);
    if (access(p, R_OK) != 0) {
        printf("SKIP: %s not found: run tools/models.sh\n", p);
        exit(77);
    }
    return p;
}
#define MODEL(rel) qr_test_model(rel)

/* Index of the largest of x[0..n) (the first on ties): a greedy token. */
static inline int qr_test_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

#endif
