/* Readers + chunker over the Slurm documentation Debian ships
 * (slurm-wlm-doc: /usr/share/doc/slurm-wlm/html). Skipped (exit 77) when the
 * package is absent; the committed fixtures carry the exact-value tests, this
 * one checks real-world robustness: every HTML page and PDF is read, images are
 * skipped as binary, and every chunk satisfies the span/token invariants. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/chunker.h"
#include "ingest/reader.h"
#include "unit/ingest/chunk_check.h"
#include "unit/test.h"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int main(void)
{
    const char *dir = "/usr/share/doc/slurm-wlm/html";
    DIR *dp = opendir(dir);
    if (!dp) {
        printf("SKIP: %s absent (Debian package slurm-wlm-doc)\n", dir);
        return 77;
    }
    char **names = NULL;
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (nn + 1) * sizeof *names);
        names[nn++] = strdup(e->d_name);
    }
    closedir(dp);
    qsort(names, nn, sizeof *names, cmp);
    qr_tokenizer *tok = NULL;
    CHECK_OK(qr_tokenizer_load(FIXTURE("models/all-MiniLM-L6-v2-tokenizer"), &tok));
    qr_chunker *ck = NULL;
    CHECK_OK(qr_chunker_create(tok, NULL, &ck));
    if (!ck) return qr_test_done();
    size_t html = 0, pdf = 0, skipped = 0, docs = 0, blocks = 0, chunks = 0, pages = 0, bad_files = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        qr_read_result *r = NULL;
        CHECK_OK(qr_read_file(path, NULL, &r));
        if (!r) continue;
        int is_doc = ends_with(names[i], ".html") || ends_with(names[i], ".pdf");
        int is_img = ends_with(names[i], ".gif") || ends_with(names[i], ".png") || ends_with(names[i], ".jpg");
        if (is_doc) {
            CHECK_MSG(r->skip == QR_SKIP_NONE && r->n_docs == 1, "%s: %s", names[i],
                      r->skip_reason ? r->skip_reason : "no document");
            if (r->skip != QR_SKIP_NONE) bad_files++;
            if (ends_with(names[i], ".html")) html++;
            else pdf++;
        }
        if (is_img) CHECK_MSG(r->skip == QR_SKIP_BINARY, "%s: not skipped as binary", names[i]);
        if (r->skip) skipped++;
        for (size_t d = 0; d < r->n_docs; d++) {
            const qr_doc *doc = &r->docs[d];
            qr_chunk *ch = NULL;
            size_t n = 0;
            CHECK_OK(qr_chunk_doc(ck, doc, &ch, &n));
            CHECK_MSG(check_chunks(doc, ch, n, tok, 256, names[i]) == 0, "%s", names[i]);
            docs++;
            blocks += doc->n_blocks;
            pages += (size_t)doc->n_pages;
            chunks += n;
            free(ch);
        }
        qr_read_result_free(r);
        free(names[i]);
    }
    free(names);
    printf("%zu files: %zu html, %zu pdf (%zu pages), %zu skipped, %zu failed documents; %zu docs, %zu blocks, %zu chunks\n",
           nn, html, pdf, pages, skipped, bad_files, docs, blocks, chunks);
    CHECK(html > 0 && pdf > 0);
    qr_chunker_destroy(ck);
    qr_tokenizer_free(tok);
    return qr_test_done();
}
