/* The .docx and .ipynb readers against tests/fixtures/formats (issue 13,
 * item 3). expected.json is written by make_formats.py from the same model
 * that wrote the fixtures (hand-written WordprocessingML in a zipfile,
 * notebooks through json), so every block's kind, page (a notebook's cell
 * number), heading path and exact text, the titles, the skip kinds and their
 * reasons come from outside quire. Also: a zip bomb stops at max_file_bytes
 * naming word/document.xml and the limit; the chunker never joins two cells;
 * qr_page_label names notebook pages "cell" (so do citations); the include / exclude rule of
 * ingest/filter.h entry by entry. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/prompt.h"
#include "ingest/chunker.h"
#include "ingest/filter.h"
#include "ingest/reader.h"
#include "unit/test.h"

static qr_block_kind kind_of(const char *s)
{
    static const qr_block_kind k[] = {QR_BLOCK_PARAGRAPH, QR_BLOCK_HEADING, QR_BLOCK_LIST_ITEM, QR_BLOCK_TABLE_ROW,
                                      QR_BLOCK_CODE};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(qr_block_kind_name(k[i]), s)) return k[i];
    return (qr_block_kind)-1;
}

/* Blocks must be the doc text split by "\n\n" separators, in order. */
static void check_layout(const qr_doc *d)
{
    size_t pos = 0;
    for (size_t i = 0; i < d->n_blocks; i++) {
        CHECK_INT(d->blocks[i].off, pos);
        pos = d->blocks[i].off + d->blocks[i].len;
        if (i + 1 < d->n_blocks) pos += 2;
    }
    CHECK_INT(pos, d->text_len);
    CHECK_INT(strlen(d->text), d->text_len);
}

static void check_fixture(const char *name, const json_t *want)
{
    char rel[256];
    snprintf(rel, sizeof rel, "formats/%s", name);
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE(rel), NULL, &r));
    if (!r) return;
    const char *skip = json_string_value(json_object_get(want, "skip"));
    if (skip) {
        CHECK_MSG(!strcmp(qr_skip_name(r->skip), skip), "%s: skip %s, want %s (%s)", name, qr_skip_name(r->skip),
                  skip, r->skip_reason ? r->skip_reason : "");
        const char *reason = json_string_value(json_object_get(want, "reason"));
        CHECK_MSG(r->skip_reason && strstr(r->skip_reason, reason), "%s: reason \"%s\", want \"%s\"", name,
                  r->skip_reason ? r->skip_reason : "(none)", reason);
        CHECK_INT(r->n_docs, 0);
        qr_read_result_free(r);
        return;
    }
    CHECK_MSG(r->skip == QR_SKIP_NONE, "%s: skipped: %s", name, r->skip_reason ? r->skip_reason : "");
    CHECK_MSG(!strcmp(qr_format_name(r->format), json_string_value(json_object_get(want, "format"))), "%s: format %s",
              name, qr_format_name(r->format));
    CHECK_INT(r->n_docs, 1);
    // warnings: exactly the expected ones (each a substring, in order)
    const json_t *ww = json_object_get(want, "warnings");
    CHECK_MSG(r->n_warnings == json_array_size(ww), "%s: %zu warnings (first: %s)", name, r->n_warnings,
              r->n_warnings ? r->warnings[0] : "");
    for (size_t i = 0; i < r->n_warnings && i < json_array_size(ww); i++)
        CHECK_MSG(strstr(r->warnings[i], json_string_value(json_array_get(ww, i))), "%s: warning \"%s\"", name,
                  r->warnings[i]);
    if (r->n_docs != 1) {
        qr_read_result_free(r);
        return;
    }
    const qr_doc *d = &r->docs[0];
    CHECK_MSG(!strcmp(d->title, json_string_value(json_object_get(want, "title"))), "%s: title \"%s\"", name,
              d->title);
    const char *lang = json_string_value(json_object_get(want, "language"));
    CHECK_MSG(lang ? d->language && !strcmp(d->language, lang) : !d->language, "%s: language %s", name,
              d->language ? d->language : "(none)");
    const json_t *blocks = json_object_get(want, "blocks");
    CHECK_MSG(d->n_blocks == json_array_size(blocks), "%s: %zu blocks, want %zu", name, d->n_blocks,
              json_array_size(blocks));
    for (size_t i = 0; i < d->n_blocks && i < json_array_size(blocks); i++) {
        const json_t *w = json_array_get(blocks, i);
        const qr_block *b = &d->blocks[i];
        const char *wt = json_string_value(json_array_get(w, 3));
        bool ok = b->kind == kind_of(json_string_value(json_array_get(w, 0))) &&
                  b->page == (int)json_integer_value(json_array_get(w, 1)) &&
                  !strcmp(b->heading, json_string_value(json_array_get(w, 2))) && b->len == strlen(wt) &&
                  !memcmp(d->text + b->off, wt, b->len);
        CHECK_MSG(ok, "%s block %zu: got %s p%d [%s] \"%.*s\"; want %s p%lld [%s] \"%s\"", name, i,
                  qr_block_kind_name(b->kind), b->page, b->heading, (int)b->len, d->text + b->off,
                  json_string_value(json_array_get(w, 0)), (long long)json_integer_value(json_array_get(w, 1)),
                  json_string_value(json_array_get(w, 2)), wt);
    }
    check_layout(d);
    CHECK_MSG(!strstr(d->text, "OUTPUT_MUST_NOT") && !strstr(d->text, "NOT THIS") && !strstr(d->text, "PAGE"),
              "%s: outputs, deleted text or field codes in the text", name);

    // A reduced limit: the zip bomb stops there, naming the part and the limit.
    const json_t *lim = json_object_get(want, "limited");
    if (lim) {
        qr_reader_opts o;
        qr_reader_opts_default(&o);
        o.max_file_bytes = (size_t)json_integer_value(json_object_get(lim, "max_file_bytes"));
        qr_read_result *r2 = NULL;
        CHECK_OK(qr_read_file(FIXTURE(rel), &o, &r2));
        if (r2) {
            CHECK_MSG(!strcmp(qr_skip_name(r2->skip), json_string_value(json_object_get(lim, "skip"))),
                      "%s limited: skip %s", name, qr_skip_name(r2->skip));
            char lstr[32];
            snprintf(lstr, sizeof lstr, "limit %zu", o.max_file_bytes);
            CHECK_MSG(r2->skip_reason && strstr(r2->skip_reason, json_string_value(json_object_get(lim, "reason"))) &&
                          strstr(r2->skip_reason, lstr),
                      "%s limited: reason \"%s\"", name, r2->skip_reason ? r2->skip_reason : "(none)");
            qr_read_result_free(r2);
        }
    }
    qr_read_result_free(r);
}

/* Chunks of a notebook never span two cells: each chunk's bytes lie inside
 * the blocks of its own cell (page). */
static void check_cell_chunks(void)
{
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("formats/tides.ipynb"), NULL, &r));
    if (!r || r->n_docs != 1) {
        qr_read_result_free(r);
        return;
    }
    const qr_doc *d = &r->docs[0];
    qr_chunk_opts co;
    qr_chunk_opts_default(&co);
    qr_chunker *c = NULL;
    CHECK_OK(qr_chunker_create(NULL, &co, &c));
    qr_chunk *ch = NULL;
    size_t n = 0;
    CHECK_OK(qr_chunk_doc(c, d, &ch, &n));
    int pages[] = {1, 2, 4, 5, 6}; // cell 3 is empty
    CHECK_INT(n, 5);
    for (size_t i = 0; i < n && i < 5; i++) {
        CHECK_INT(ch[i].page, pages[i]);
        for (size_t b = 0; b < d->n_blocks; b++) {
            const qr_block *k = &d->blocks[b];
            bool overlaps = k->off < ch[i].off + ch[i].len && ch[i].off < k->off + k->len;
            CHECK_MSG(!overlaps || k->page == ch[i].page, "chunk %zu (cell %d) holds text of cell %d", i, ch[i].page,
                      k->page);
        }
    }
    free(ch);
    qr_chunker_destroy(c);
    qr_read_result_free(r);
}

/* The filter rule of ingest/filter.h, entry by entry (the CLI test runs it on a tree). */
static void check_filter(void)
{
    const char *inc[] = {"*.md", "docs/*"}, *exc[] = {"build/", "*secret*", "a?c.txt"};
    qr_path_filter f = {inc, 2, exc, 3, true};
    struct {
        const char *rel;
        bool dir;
        const char *why; /* NULL: read; else a prefix of the reason */
    } t[] = {
        {"x/y/readme.md", false, NULL},           // name match at any depth
        {"docs/a/b.txt", false, NULL},            // '*' crosses '/'
        {"notes.txt", false, "no --include"},     //
        {"build", true, "--exclude build/"},      // a trailing '/': directories only
        {"sub/build", true, "--exclude build/"},  // by name below the root
        {"build", false, "no --include"},         // ... not a file named build
        {"x/my_secret.md", false, "--exclude *secret*"}, // an exclude wins over an include
        {"abc.txt", false, "--exclude a?c.txt"},  //
        {"x/node_modules", true, "default exclude node_modules/"},
        {"x/style.css", false, "no --include"},   // includes given: the default file patterns do not apply
        {"style.min.css.md", false, NULL},        //
        {"docs", true, NULL},                     // includes never exclude a directory
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *why = qr_filter_excludes(&f, t[i].rel, NULL, t[i].dir);
        CHECK_MSG(t[i].why ? why && !strncmp(why, t[i].why, strlen(t[i].why)) : !why, "%s%s: %s, want %s", t[i].rel,
                  t[i].dir ? "/" : "", why ? why : "read", t[i].why ? t[i].why : "read");
    }
    qr_path_filter d = {NULL, 0, NULL, 0, true}, off = {NULL, 0, NULL, 0, false};
    CHECK(qr_filter_excludes(&d, "a/b/app.min.js", NULL, false) != NULL);
    CHECK(qr_filter_excludes(&d, "yarn.lock", NULL, false) != NULL);
    CHECK(qr_filter_excludes(&d, "a/.git", NULL, true) != NULL);
    CHECK(qr_filter_excludes(&d, "a/app.js", NULL, false) == NULL);
    CHECK(qr_filter_excludes(&off, "a/app.min.js", NULL, false) == NULL);
    CHECK(qr_filter_excludes(&off, "node_modules", NULL, true) == NULL);
    const char *ok[] = {"a", "b"}, *empty[] = {"a", ""};
    CHECK_INT(qr_filter_check_patterns("include", ok, 2), 0);
    CHECK_INT(qr_filter_check_patterns("include", empty, 2), QR_EINVAL);
    CHECK_MSG(strstr(qr_last_error(), "include: pattern 2 is empty") != NULL, "%s", qr_last_error());
}

int main(void)
{
    json_error_t e;
    json_t *exp = json_load_file(FIXTURE("formats/expected.json"), 0, &e);
    CHECK_MSG(exp != NULL, "expected.json: %s", e.text);
    if (!exp) return qr_test_done();
    CHECK_INT(json_object_size(exp), 16);
    const char *name;
    json_t *want;
    json_object_foreach(exp, name, want) check_fixture(name, want);
    json_decref(exp);
    check_cell_chunks();
    check_filter();
    CHECK(!strcmp(qr_page_label("/a/b/tides.ipynb"), "cell"));
    CHECK(!strcmp(qr_page_label("/a/b/T.IPYNB"), "cell"));
    CHECK(!strcmp(qr_page_label("/a/b/report.pdf"), "page"));
    CHECK(!strcmp(qr_page_label(NULL), "page"));
    // citations (quire ask's Sources, the prompt's source labels) name the cell
    const qr_source srcs[] = {{.path = "/n/tides.ipynb", .title = "Tides", .page = 4, .heading = "A > Results"},
                              {.path = "/p/report.pdf", .page = 2}};
    const char *labels[] = {"/n/tides.ipynb \"Tides\", cell 4, section A > Results", "/p/report.pdf, page 2"};
    for (int i = 0; i < 2; i++) {
        char *l = NULL;
        CHECK_OK(qr_source_label(&srcs[i], &l));
        CHECK_MSG(l && !strcmp(l, labels[i]), "label \"%s\", want \"%s\"", l ? l : "", labels[i]);
        free(l);
    }
    CHECK_INT(qr_detect_format("x.docx", "PK\x03\x04", 4, NULL), QR_FMT_DOCX);
    CHECK_INT(qr_detect_format("x.zip", "PK\x03\x04", 4, NULL), QR_FMT_UNKNOWN); // other zips stay binary
    CHECK_INT(qr_detect_format("x.ipynb", "{\"cells\": []}", 13, NULL), QR_FMT_IPYNB);
    return qr_test_done();
}
