/* Robustness: deterministic mutations (byte flips, insertions, truncation) of
 * every fixture through the readers and the chunker. Whatever the input, a read
 * must not fail or crash, documents must hold valid UTF-8 with blocks laid out
 * as documented, and chunks must satisfy the span invariants. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/chunker.h"
#include "ingest/reader.h"
#include "unit/ingest/chunk_check.h"
#include "unit/test.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Independent UTF-8 validity check (RFC 3629 table). */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c == 0xE0) k = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEC) k = 2;
        else if (c == 0xED) k = 2, hi = 0x9F;
        else if (c >= 0xEE && c <= 0xEF) k = 2;
        else if (c == 0xF0) k = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) k = 3;
        else if (c == 0xF4) k = 3, hi = 0x8F;
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n) return false;
            unsigned x = s[i + j];
            if (x < (j == 1 ? lo : 0x80) || x > (j == 1 ? hi : 0xBF)) return false;
        }
        i += k + 1;
    }
    return true;
}

int main(void)
{
    const struct {
        const char *file;
        int iters;
    } fx[] = {{"guide.md", 400}, {"page.html", 400}, {"records.jsonl", 400}, {"sample.c", 300},
              {"invalid_utf8.txt", 300}, {"latin1.html", 200}, {"three_pages.pdf", 40},
              // a path with '/': below tests/fixtures (issue 13, item 3)
              {"formats/sample.docx", 300}, {"formats/tides.ipynb", 300}};
    qr_chunker *ck = NULL;
    qr_chunk_opts co = {.max_tokens = 24, .overlap_tokens = 8};
    CHECK_OK(qr_chunker_create(NULL, &co, &ck));
    if (!ck) return qr_test_done();
    size_t reads = 0, docs = 0, skips = 0;
    for (size_t f = 0; f < sizeof fx / sizeof fx[0]; f++) {
        char path[512];
        if (strchr(fx[f].file, '/'))
            snprintf(path, sizeof path, "%s", fx[f].file);
        else
            snprintf(path, sizeof path, "ingest/%s", fx[f].file);
        size_t n0 = 0;
        char *orig = qr_test_slurp(FIXTURE(path), &n0);
        CHECK_MSG(orig != NULL, "%s missing", path);
        if (!orig) continue;
        char *buf = malloc(n0 + 64);
        for (int it = 0; it < fx[f].iters; it++) {
            memcpy(buf, orig, n0);
            size_t n = n0;
            int op = (int)(rnd() % 4);
            int k = 1 + (int)(rnd() % 8);
            for (int m = 0; m < k; m++) {
                if (op == 0 || op == 3) buf[rnd() % n] = (char)rnd();           // overwrite
                if (op == 1 && n + 1 < n0 + 64) {                            // insert
                    size_t at = rnd() % n;
                    memmove(buf + at + 1, buf + at, n - at);
                    static const char ins[] = "\0\xFF\xC3<>#|`\n-=*\"{}";
                    buf[at] = ins[rnd() % (sizeof ins - 1)];
                    n++;
                }
            }
            if (op == 2) n = rnd() % n; // truncate
            qr_read_result *r = NULL;
            int rc = qr_read_memory(fx[f].file, buf, n, NULL, &r);
            CHECK_MSG(rc == 0, "%s iter %d: %s", fx[f].file, it, qr_last_error());
            if (rc) continue;
            reads++;
            if (r->skip) {
                skips++;
                CHECK(r->skip_reason != NULL && r->n_docs == 0);
            }
            for (size_t d = 0; d < r->n_docs; d++) {
                const qr_doc *doc = &r->docs[d];
                docs++;
                CHECK_MSG(valid_utf8((const unsigned char *)doc->text, doc->text_len), "%s iter %d: bad UTF-8",
                          fx[f].file, it);
                CHECK(strlen(doc->text) == doc->text_len);
                CHECK(doc->title && valid_utf8((const unsigned char *)doc->title, strlen(doc->title)));
                size_t pos = 0;
                for (size_t b = 0; b < doc->n_blocks; b++) {
                    const qr_block *bl = &doc->blocks[b];
                    CHECK(bl->off == pos && bl->len > 0 && bl->heading);
                    pos = bl->off + bl->len + (b + 1 < doc->n_blocks ? 2 : 0);
                }
                CHECK(pos == doc->text_len);
                qr_chunk *ch = NULL;
                size_t nc = 0;
                CHECK_OK(qr_chunk_doc(ck, doc, &ch, &nc));
                char what[128];
                snprintf(what, sizeof what, "%s iter %d", fx[f].file, it);
                CHECK_MSG(check_chunks(doc, ch, nc, NULL, 24, what) == 0, "%s", what);
                free(ch);
            }
            qr_read_result_free(r);
        }
        free(buf);
        free(orig);
    }
    printf("%zu mutated reads: %zu documents, %zu skipped\n", reads, docs, skips);
    qr_chunker_destroy(ck);
    return qr_test_done();
}
