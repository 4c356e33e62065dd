/* Text encodings in the readers (issue 13, item 2): BOMs (UTF-8/16/32, both
 * byte orders) honoured and decoded, a file that is not valid UTF-8 read as
 * Windows-1252 when plausible (with a warning naming the fallback), and every
 * replaced sequence reported. Fixtures and the expected UTF-8 texts come from
 * tests/fixtures/encodings/make_encodings.py (Python's codecs). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/reader.h"
#include "unit/test.h"

static char *slurp(const char *rel, size_t *n)
{
    FILE *f = fopen(FIXTURE(rel), "rb");
    if (!f) {
        CHECK_MSG(0, "cannot open %s", rel);
        return NULL;
    }
    char *b = malloc(1 << 16);
    *n = fread(b, 1, (1 << 16) - 1, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static bool has_warning(const qr_read_result *r, const char *needle)
{
    for (size_t i = 0; i < r->n_warnings; i++)
        if (strstr(r->warnings[i], needle)) return true;
    return false;
}

/* Reads a fixture; checks it gave one document, its text and its warnings. */
static void expect(const char *file, const char *want, const char *warning)
{
    char rel[256];
    snprintf(rel, sizeof rel, "encodings/%s", file);
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE(rel), NULL, &r));
    if (!r) return;
    CHECK_MSG(r->skip == QR_SKIP_NONE && r->n_docs == 1, "%s: skipped (%s) or %zu docs", file,
              r->skip_reason ? r->skip_reason : "-", r->n_docs);
    if (r->n_docs == 1 && want)
        CHECK_MSG(!strcmp(r->docs[0].text, want), "%s: text\n  \"%s\"\nwant\n  \"%s\"", file, r->docs[0].text, want);
    if (warning) CHECK_MSG(has_warning(r, warning), "%s: no warning with \"%s\"", file, warning);
    else CHECK_MSG(r->n_warnings == 0, "%s: unexpected warning \"%s\"", file, r->warnings[0]);
    qr_read_result_free(r);
}

int main(void)
{
    size_t n;
    char *text = slurp("encodings/expected.txt", &n);
    char *uni = slurp("encodings/expected_unicode.txt", &n);
    if (!text || !uni) return qr_test_done();

    // BOMs: decoded, no warning (nothing was guessed)
    expect("utf8_bom.txt", uni, NULL);
    expect("utf16le_bom.txt", uni, NULL);
    expect("utf16be_bom.txt", uni, NULL);
    expect("utf32le_bom.txt", uni, NULL);
    expect("utf32be_bom.txt", uni, NULL);

    // Windows-1252 fallback, named in a warning
    expect("cp1252.txt", text, "decoded as Windows-1252");
    {
        char *want = malloc(strlen(text) + 64);
        sprintf(want, "Caf\xC3\xA9 notes\n\n%s", text); // the heading is a block of its own
        expect("cp1252.md", want, "decoded as Windows-1252");
        free(want);
    }
    {
        char *first = strdup(text);
        *strstr(first, "\n\n") = 0;
        expect("cp1252.jsonl", first, "decoded as Windows-1252");
        expect("cp1252_nocharset.html", text, "decoded as Windows-1252");
        free(first);
    }
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("encodings/cp1252.jsonl"), NULL, &r));
    if (r && r->n_docs == 1) CHECK_STR(r->docs[0].title, "caf\xC3\xA9");
    qr_read_result_free(r);

    // UTF-16 HTML whose <meta> says utf-16: the BOM decides, the text is whole
    expect("utf16le_bom.html", NULL, NULL);
    CHECK_OK(qr_read_file(FIXTURE("encodings/utf16le_bom.html"), NULL, &r));
    if (r && r->n_docs == 1) {
        CHECK_MSG(strstr(r->docs[0].text, "Le caf\xC3\xA9 \xC3\xA9tait") != NULL, "html: \"%s\"", r->docs[0].text);
        CHECK_MSG(strstr(r->docs[0].text, "Emoji \xF0\x9F\x98\x80") != NULL, "html: \"%s\"", r->docs[0].text);
        CHECK_MSG(strstr(r->docs[0].text, "\xEF\xBF\xBD") == NULL, "html: U+FFFD in \"%s\"", r->docs[0].text);
    }
    qr_read_result_free(r);

    // Mostly UTF-8 with one stray byte: stays UTF-8, one U+FFFD, reported
    {
        char *want = strdup(uni);
        char *p = strstr(want, "Prices");
        char *w2 = malloc(strlen(want) + 8);
        sprintf(w2, "%.*sPr\xEF\xBF\xBD" "ces%s", (int)(p - want), want, p + 6);
        expect("utf8_stray.txt", w2, "1 invalid byte sequences replaced by U+FFFD");
        free(w2);
        free(want);
    }
    // A UTF-8 BOM before Windows-1252 bytes: declared UTF-8, no fallback
    expect("utf8_bom_cp1252.txt", "caf\xEF\xBF\xBD na\xEF\xBF\xBDve", "2 invalid byte sequences replaced by U+FFFD");
    // Unpaired surrogate in UTF-16: U+FFFD, reported
    expect("utf16le_lone_surrogate.txt", "ab\xEF\xBF\xBD" "cd", "1 invalid code units replaced by U+FFFD");

    // The existing broken-UTF-8 fixture is not read as Windows-1252 (it has
    // lead bytes with continuation bytes), and its replacements are reported.
    CHECK_OK(qr_read_file(FIXTURE("ingest/invalid_utf8.txt"), NULL, &r));
    if (r) CHECK_MSG(has_warning(r, "replaced by U+FFFD"), "invalid_utf8.txt: no warning");
    qr_read_result_free(r);

    // Binary content is still skipped as binary, not decoded
    CHECK_OK(qr_read_file(FIXTURE("ingest/image.png"), NULL, &r));
    if (r) {
        CHECK_INT(r->skip, QR_SKIP_BINARY);
        CHECK_INT(r->n_warnings, 0);
    }
    qr_read_result_free(r);
    free(text);
    free(uni);
    return qr_test_done();
}
