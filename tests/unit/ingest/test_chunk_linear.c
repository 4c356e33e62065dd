/* Chunking in linear time (issue 13, item 1): a text unit with no sentence
 * break (CSV, logs, minified code) used to be cut in quadratic time because
 * split_long recounted the rest of the unit for every piece.
 *  1. Same chunks as before: every field of every chunk equals the previous
 *     implementation's, on the ingest fixtures and on generated CSV, logs,
 *     minified code, unpunctuated text, long words and Unicode, with the word
 *     approximation, MiniLM's WordPiece and Llama-3's byte-level BPE, at four
 *     sizes/overlaps. tests/fixtures/chunker/chunks_d4188e0.tsv holds, per case,
 *     the chunk count and a digest of every field as the chunker of commit
 *     d4188e0 (before this change) produced them: it was written by that code,
 *     linked into this test beside the new one, in the run that also compared
 *     the two field by field (204 cases, all equal).
 *  2. Time: a generated 8 MB unbroken CSV is chunked (word approximation, the
 *     BM25-only ingest path) within 3x the time of 8 MB of prose plus 1 s; the
 *     quadratic version took > 60 s on the 2-core dev box. With MiniLM's
 *     tokenizer a 1 MB log is chunked within 3x its prose time plus 2 s. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "ingest/chunker.h"
#include "ingest/reader.h"
#include "unit/ingest/chunk_check.h"
#include "unit/test.h"

static qr_tokenizer *tok, *tok_bpe;

/* ---------------------------------------------------------------- generated texts */

static unsigned long long rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

typedef struct {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static void word(buf *b, unsigned len)
{
    char w[64];
    if (len > 63) len = 63;
    for (unsigned i = 0; i < len; i++) w[i] = (char)('a' + rnd(26));
    w[len] = 0;
    put(b, w);
}

static void num(buf *b)
{
    char w[32];
    snprintf(w, sizeof w, "%u", rnd(1000000));
    put(b, w);
}

/* kind: 0 CSV without spaces, 1 CSV with ", " and quoted fields, 2 log lines,
 * 3 minified code (one line), 4 unpunctuated lower-case text, 5 long words
 * and a base64-like blob, 6 Unicode words, 7 prose. Stops past `size` bytes. */
static char *gen(int kind, size_t size)
{
    buf b = {0};
    put(&b, "");
    rng = 88172645463325252ULL + (unsigned long long)kind * 7919 + size; // same text whatever ran before
    static const char *uni[] = {"caf\xC3\xA9", "na\xC3\xAFve", "\xE6\x9D\xB1\xE4\xBA\xAC", "\xCE\xB1\xCE\xB2\xCE\xB3",
                                "\xF0\x9F\x98\x80", "stra\xC3\x9F" "e", "\xD0\xBC\xD0\xB8\xD1\x80"};
    while (b.n < size) {
        switch (kind) {
        case 0:
            num(&b), put(&b, ","), word(&b, 1 + rnd(9)), put(&b, ","), num(&b), put(&b, "."), num(&b), put(&b, "\n");
            break;
        case 1:
            put(&b, "\""), word(&b, 3 + rnd(6)), put(&b, " "), word(&b, 2 + rnd(5)), put(&b, "\", "), num(&b);
            put(&b, ", "), put(&b, rnd(2) ? "true" : "false"), put(&b, "\n");
            break;
        case 2:
            put(&b, "2026-12-07T01:"), num(&b), put(&b, "Z node"), num(&b), put(&b, " slurmd["), num(&b);
            put(&b, "]: job "), num(&b), put(&b, " state=RUNNING user="), word(&b, 6), put(&b, " mem="), num(&b);
            put(&b, "M\n");
            break;
        case 3:
            put(&b, "function "), word(&b, 1 + rnd(3)), put(&b, "(a,b){var c=a+b;return c*"), num(&b);
            put(&b, rnd(3) ? "}" : "} "), put(&b, "if(x.y&&z){"), word(&b, 2), put(&b, "()}");
            break;
        case 4:
            word(&b, 1 + rnd(10)), put(&b, rnd(12) ? " " : "\n");
            break;
        case 5:
            if (rnd(4)) {
                word(&b, 1 + rnd(8)), put(&b, " ");
            } else {
                unsigned n = 20 + rnd(400); // one "word" up to ~400 chars (beyond WordPiece's 100)
                for (unsigned i = 0; i < n; i += 16) word(&b, 16);
                put(&b, rnd(2) ? " " : "\n");
            }
            break;
        case 6:
            put(&b, uni[rnd(7)]), put(&b, rnd(3) ? " " : ""), word(&b, rnd(4)), put(&b, " ");
            break;
        default:
            put(&b, "The "), word(&b, 2 + rnd(8)), put(&b, " of "), word(&b, 3 + rnd(6)), put(&b, " was "), num(&b);
            put(&b, rnd(2) ? " units long. " : ", as e.g. Dr. Smith said. ");
            if (!rnd(8)) put(&b, "\n\n");
            break;
        }
    }
    return b.s;
}

/* ---------------------------------------------------------------- equality */

/* A 64-bit FNV-1a digest of every field of every chunk (the heading by its
 * text: the pointer is the document's). */
static unsigned long long fnv(unsigned long long h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}
static unsigned long long digest(const qr_chunk *a, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++) {
        long long f[5] = {(long long)a[k].off, (long long)a[k].len, a[k].page, (long long)a[k].block,
                          a[k].n_tokens};
        h = fnv(h, f, sizeof f);
        h = fnv(h, a[k].heading ? a[k].heading : "\x01(none)", a[k].heading ? strlen(a[k].heading) + 1 : 8);
    }
    return h;
}

/* The previous chunker's (count, digest) of a case, from the fixture; 0 when absent. */
static char *before;
static int lookup(const char *what, size_t *n, unsigned long long *h)
{
    size_t wl = strlen(what);
    for (const char *l = before; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        if (!strncmp(l, what, wl) && l[wl] == '\t')
            return sscanf(l + wl + 1, "%zu\t%llx", n, h) == 2;
    return 0;
}

static int same_chunks(const qr_chunker *c, const qr_doc *d, const char *what)
{
    qr_chunk *a = NULL;
    size_t na = 0, nz = 0;
    unsigned long long hz = 0;
    CHECK_OK(qr_chunk_doc(c, d, &a, &na));
    int bad = 0;
    if (!lookup(what, &nz, &hz)) {
        fprintf(stderr, "%s: not in chunks_d4188e0.tsv\n", what);
        bad = 1;
    } else if (na != nz || digest(a, na) != hz) {
        fprintf(stderr, "%s: %zu chunks (digest %016llx), previous version %zu (%016llx)\n", what, na,
                digest(a, na), nz, hz);
        bad = 1;
    }
    free(a);
    return bad;
}

static void test_same_as_before(void)
{
    const char *files[] = {"ingest/guide.md", "ingest/page.html", "ingest/three_pages.pdf", "ingest/records.jsonl",
                           "ingest/sample.c", "ingest/invalid_utf8.txt", "ingest/latin1.html"};
    const int params[][2] = {{256, 32}, {64, 16}, {24, 8}, {16, 0}};
    const char *gname[] = {"csv.csv", "quoted.csv", "slurmd.log", "min.js", "words.txt", "long.txt", "uni.txt",
                           "prose.txt"};
    enum { NGEN = 8 };
    qr_read_result *gr[NGEN] = {0};
    for (int g = 0; g < NGEN; g++) {
        char *t = gen(g, 24000);
        CHECK_OK(qr_read_memory(gname[g], t, strlen(t), NULL, &gr[g]));
        free(t);
    }
    int compared = 0;
    for (size_t p = 0; p < sizeof params / sizeof params[0]; p++) {
        for (int with_tok = 0; with_tok < 3; with_tok++) {
            const qr_tokenizer *t = with_tok == 1 ? tok : with_tok == 2 ? tok_bpe : NULL;
            if (with_tok && !t) continue;
            qr_chunk_opts o = {.max_tokens = params[p][0], .overlap_tokens = params[p][1]};
            qr_chunker *c = NULL;
            CHECK_OK(qr_chunker_create(t, &o, &c));
            if (!c) continue;
            const char *tn = with_tok == 1 ? "minilm" : with_tok == 2 ? "llama3" : "words";
            char what[256];
            for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
                qr_read_result *rr = NULL;
                CHECK_OK(qr_read_file(FIXTURE(files[f]), NULL, &rr));
                for (size_t d = 0; rr && d < rr->n_docs; d++) {
                    snprintf(what, sizeof what, "%s doc %zu max %d overlap %d %s", files[f], d, o.max_tokens,
                             o.overlap_tokens, tn);
                    CHECK_MSG(same_chunks(c, &rr->docs[d], what) == 0, "%s", what);
                    compared++;
                }
                qr_read_result_free(rr);
            }
            for (int g = 0; g < NGEN; g++) {
                if (!gr[g]) continue;
                for (size_t d = 0; d < gr[g]->n_docs; d++) {
                    snprintf(what, sizeof what, "generated %s max %d overlap %d %s", gname[g], o.max_tokens,
                             o.overlap_tokens, tn);
                    CHECK_MSG(same_chunks(c, &gr[g]->docs[d], what) == 0, "%s", what);
                    // and the shared invariants (exact token counts, coverage)
                    qr_chunk *ch = NULL;
                    size_t n = 0;
                    CHECK_OK(qr_chunk_doc(c, &gr[g]->docs[d], &ch, &n));
                    CHECK_MSG(check_chunks(&gr[g]->docs[d], ch, n, t, o.max_tokens, what) == 0, "%s", what);
                    free(ch);
                    compared++;
                }
            }
            qr_chunker_destroy(c);
        }
    }
    CHECK_MSG(compared >= 4 * 3 * (NGEN + 7), "only %d documents compared", compared);
    for (int g = 0; g < NGEN; g++) qr_read_result_free(gr[g]);
}

/* ---------------------------------------------------------------- time */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds to chunk a generated text of `size` bytes (reading excluded);
 * *n_chunks and the largest unit's share of the text for the message. */
static double chunk_time(const qr_tokenizer *t, int kind, const char *name, size_t size, size_t *n_chunks)
{
    char *text = gen(kind, size);
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_memory(name, text, strlen(text), NULL, &r));
    free(text);
    qr_chunker *c = NULL;
    CHECK_OK(qr_chunker_create(t, NULL, &c));
    double dt = 0;
    *n_chunks = 0;
    if (r && c) {
        double t0 = now();
        for (size_t d = 0; d < r->n_docs; d++) {
            qr_chunk *ch = NULL;
            size_t n = 0;
            CHECK_OK(qr_chunk_doc(c, &r->docs[d], &ch, &n));
            *n_chunks += n;
            free(ch);
        }
        dt = now() - t0;
    }
    qr_chunker_destroy(c);
    qr_read_result_free(r);
    return dt;
}

static void test_time(void)
{
    size_t n_prose, n_csv, n_log;
    const size_t mb = 1u << 20;
    double prose = chunk_time(NULL, 7, "prose.txt", 8 * mb, &n_prose);
    double csv = chunk_time(NULL, 0, "big.csv", 8 * mb, &n_csv);
    double logs = chunk_time(NULL, 2, "big.log", 8 * mb, &n_log);
    fprintf(stderr, "words, 8 MiB: prose %.2f s (%zu chunks), CSV %.2f s (%zu chunks), log %.2f s (%zu chunks)\n",
            prose, n_prose, csv, n_csv, logs, n_log);
    CHECK(n_csv > 5000 && n_log > 5000);
#ifdef __SANITIZE_ADDRESS__
    /* ASan slows every path ~5-10x, so the fixed slack below no longer scales with the times (a
       log of 9.1 s against 2.1 s of prose failed it, the same ratio as 1.1 s against 0.24 s in a
       plain build): the sanitized run checks the chunks, the plain build checks the times. */
    return;
#endif
    CHECK_MSG(csv <= 3 * prose + 1.0, "8 MiB CSV chunked in %.2f s against %.2f s for prose", csv, prose);
    CHECK_MSG(logs <= 3 * prose + 1.0, "8 MiB log chunked in %.2f s against %.2f s for prose", logs, prose);
    if (tok) {
        prose = chunk_time(tok, 7, "prose.txt", mb, &n_prose);
        logs = chunk_time(tok, 2, "big.log", mb, &n_log);
        fprintf(stderr, "MiniLM, 1 MiB: prose %.2f s (%zu chunks), log %.2f s (%zu chunks)\n", prose, n_prose, logs,
                n_log);
        CHECK_MSG(logs <= 3 * prose + 2.0, "1 MiB log chunked in %.2f s against %.2f s for prose", logs, prose);
    }
}

int main(int argc, char **argv)
{
    const char *tp = FIXTURE("models/all-MiniLM-L6-v2-tokenizer");
    if (qr_tokenizer_load(tp, &tok) != 0) {
        fprintf(stderr, "MiniLM tokenizer not loadable (%s): %s\n", tp, qr_last_error());
        CHECK(tok != NULL); // committed under tests/fixtures/models
    }
    if (qr_tokenizer_load(FIXTURE("models/llama3-tokenizer"), &tok_bpe) != 0) {
        fprintf(stderr, "Llama-3 tokenizer not loadable: %s\n", qr_last_error());
        CHECK(tok_bpe != NULL);
    }
    before = qr_test_slurp(FIXTURE("chunker/chunks_d4188e0.tsv"), NULL);
    CHECK_MSG(before != NULL, "tests/fixtures/chunker/chunks_d4188e0.tsv missing");
    bool time_only = argc > 1 && !strcmp(argv[1], "--time");
    if (!time_only) test_same_as_before();
    test_time();
    qr_tokenizer_free(tok);
    qr_tokenizer_free(tok_bpe);
    free(before);
    return qr_test_done();
}
