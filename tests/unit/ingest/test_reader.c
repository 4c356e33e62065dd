/* Readers: exact blocks, kinds, heading paths, pages and skip reasons from the
 * committed fixtures in tests/fixtures/ingest (their contents are known: see
 * the files and tools/fixtures_ingest/). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "ingest/reader.h"
#include "unit/test.h"

typedef struct {
    int kind; /* qr_block_kind */
    int page;
    const char *heading;
    const char *text;
} want_block;

static bool block_is(const qr_doc *d, size_t i, const want_block *w)
{
    const qr_block *b = &d->blocks[i];
    bool ok = (int)b->kind == w->kind && b->page == w->page && !strcmp(b->heading, w->heading) &&
              b->len == strlen(w->text) && !memcmp(d->text + b->off, w->text, b->len);
    if (!ok)
        fprintf(stderr, "block %zu: got %s p%d [%s] \"%.*s\"; want %s p%d [%s] \"%s\"\n", i,
                qr_block_kind_name(b->kind), b->page, b->heading, (int)b->len, d->text + b->off,
                qr_block_kind_name((qr_block_kind)w->kind), w->page, w->heading, w->text);
    return ok;
}

/* Blocks must be the doc text split by "\n\n" separators, in order. */
static void check_layout(const qr_doc *d)
{
    size_t pos = 0;
    for (size_t i = 0; i < d->n_blocks; i++) {
        CHECK_INT(d->blocks[i].off, pos);
        pos = d->blocks[i].off + d->blocks[i].len;
        if (i + 1 < d->n_blocks) {
            CHECK(pos + 2 <= d->text_len && !memcmp(d->text + pos, "\n\n", 2));
            pos += 2;
        }
    }
    CHECK_INT(pos, d->text_len);
    CHECK_INT(strlen(d->text), d->text_len);
}

static void check_doc(const qr_doc *d, const want_block *w, size_t n)
{
    CHECK_INT(d->n_blocks, n);
    for (size_t i = 0; i < n && i < d->n_blocks; i++) CHECK_MSG(block_is(d, i, &w[i]), "block %zu", i);
    check_layout(d);
}

static qr_read_result *read_fixture(const char *name)
{
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE(name), NULL, &r));
    return r;
}

enum { P = QR_BLOCK_PARAGRAPH, H = QR_BLOCK_HEADING, L = QR_BLOCK_LIST_ITEM, T = QR_BLOCK_TABLE_ROW, C = QR_BLOCK_CODE };

static void test_markdown(void)
{
    qr_read_result *r = read_fixture("ingest/guide.md");
    if (!r) return;
    CHECK_INT(r->skip, QR_SKIP_NONE);
    CHECK_INT(r->n_docs, 1);
    CHECK_INT(r->format, QR_FMT_MARKDOWN);
    if (r->n_docs != 1) goto out;
    const qr_doc *d = &r->docs[0];
    CHECK(!strcmp(d->title, "Quire Guide")); // from the front matter
    const want_block w[] = {
        {H, 0, "Install", "Install"},
        {P, 0, "Install", "Quire runs offline. It needs a C compiler."},
        {H, 0, "Install > From source", "From source"},
        {P, 0, "Install > From source", "Clone the repository, e.g. with git. Then build it:"},
        {C, 0, "Install > From source", "meson setup build\n\nninja -C build"},
        {L, 0, "Install > From source", "First item"},
        {L, 0, "Install > From source", "Second item\ncontinues here"},
        {L, 0, "Install > From source", "Numbered item"},
        {H, 0, "Setext Title", "Setext Title"},
        {T, 0, "Setext Title", "Option | Default"},
        {T, 0, "Setext Title", "k | 10"},
        {H, 0, "Setext Title > Usage", "Usage"},
        {P, 0, "Setext Title > Usage", "Quoted text stays."},
        {P, 0, "Setext Title > Usage", "Final paragraph with *emphasis*."},
    };
    check_doc(d, w, sizeof w / sizeof w[0]);
    CHECK_INT(d->blocks[0].level, 1);
    CHECK_INT(d->blocks[2].level, 2);
    CHECK_INT(d->blocks[8].level, 1);
    CHECK_INT(d->blocks[11].level, 2);
    CHECK_INT(d->n_pages, 0);
    CHECK(d->language == NULL && d->meta_json == NULL);
out:
    qr_read_result_free(r);
}

static void test_html(void)
{
    qr_read_result *r = read_fixture("ingest/page.html");
    if (!r) return;
    CHECK_INT(r->skip, QR_SKIP_NONE);
    CHECK_INT(r->format, QR_FMT_HTML);
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs != 1) goto out;
    const qr_doc *d = &r->docs[0];
    CHECK(!strcmp(d->title, "Quire & Slurm"));
    const want_block w[] = {
        {H, 0, "GPU jobs", "GPU jobs"},
        {P, 0, "GPU jobs", "Request GPUs with --gres."},
        {H, 0, "GPU jobs > Examples", "Examples"},
        {L, 0, "GPU jobs > Examples", "Two GPUs: --gres=gpu:2"},
        {L, 0, "GPU jobs > Examples", "One node"},
        {C, 0, "GPU jobs > Examples", "sbatch --gres=gpu:2 job.sh\nsrun hostname"},
        {T, 0, "GPU jobs > Examples", "Option | Meaning"},
        {T, 0, "GPU jobs > Examples", "-N | nodes"},
        {H, 0, "GPU jobs > Examples > Notes", "Notes"},
        {P, 0, "GPU jobs > Examples > Notes", "Be kind to the scheduler."},
        {P, 0, "GPU jobs > Examples > Notes", "Term"},
        {P, 0, "GPU jobs > Examples > Notes", "Definition here."},
        {H, 0, "GPU jobs > Limits", "Limits"},
        {P, 0, "GPU jobs > Limits", "Loose text in a div."},
        {H, 0, "GPU jobs > Article title", "Article title"}, // <header> inside <article> is content
        {P, 0, "GPU jobs > Article title", "Article body."},
        {P, 0, "GPU jobs > Article title", "Article footer."},
    };
    check_doc(d, w, sizeof w / sizeof w[0]);
    // nothing from script/style/nav/header/footer/aside/form/svg/noscript
    const char *noise[] = {"noise", "color", "Home", "Nav one", "Copyright", "Sidebar", "Search form", "svg text",
                           "Enable JS", "Role nav", "Hidden text"};
    for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++)
        CHECK_MSG(!strstr(d->text, noise[i]), "noise \"%s\" kept", noise[i]);
    CHECK_INT(d->blocks[8].level, 3);
out:
    qr_read_result_free(r);
}

static void test_html_charset(void)
{
    qr_read_result *r = read_fixture("ingest/latin1.html");
    if (!r) return;
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs == 1) {
        CHECK(!strcmp(r->docs[0].title, "Caf\xC3\xA9"));
        CHECK(!strcmp(r->docs[0].text, "Cr\xC3\xA8me br\xC3\xBBl\xC3\xA9" "e \xC3\xA0 la carte."));
    }
    qr_read_result_free(r);
    // No charset declared: UTF-8 assumed, invalid bytes become U+FFFD.
    const char html[] = "<p>na\xC3\xAFve \xFF ok</p>";
    CHECK_OK(qr_read_memory("x.html", html, sizeof html - 1, NULL, &r));
    if (r) {
        CHECK_INT(r->n_docs, 1);
        if (r->n_docs == 1) CHECK(!strcmp(r->docs[0].text, "na\xC3\xAFve \xEF\xBF\xBD ok"));
        CHECK(!strcmp(r->docs[0].title, "x.html"));
        qr_read_result_free(r);
    }
}


/* Link density (reader_html.c): blocks whose text is mostly inside <a href>
 * (tables of contents, menus, "back to top", man-page indexes) are left out;
 * content that merely contains links, and named anchors (<a id>), stay. */
static void test_html_link_density(void)
{
    const char html[] =
        "<html><head><title>FAQ</title></head><body>"
        "<h1>Frequently Asked Questions</h1>"
        "<ul><li><a href=\"#gpu\">How do I request GPUs?</a></li>"
        "<li><a href=\"#mem\">How do I request memory?</a></li></ul>"
        "<p><a id=\"gpu\"><b>How do I request GPUs?</b></a><br>Use <a href=\"gres.html\">--gres</a>=gpu:2 with "
        "sbatch or srun.</p>"
        "<ul><li>See <a href=\"sbatch.html\">sbatch</a> for the batch options and their defaults.</li>"
        "<li><a href=\"srun.html\">srun</a></li></ul>"
        "<p><a href=\"#top\">Back to top</a></p>"
        "<div><a href=\"a.html\">One</a> | <a href=\"b.html\">Two</a> | <a href=\"c.html\">Three</a></div>"
        "<table><tr><td><a href=\"sacct.html\">sacct</a></td><td>displays accounting data for jobs</td></tr></table>"
        "<p><a href=\"x\">abcd</a> efgh</p>"  /* density 4/8: kept (the limit is > 0.5) */
        "<p><a href=\"x\">abcde</a> fgh</p>"  /* 5/8: dropped */
        "<div class=\"section\"><h2>Index</h2><dl><dt><a href=\"#n\">NAME</a></dt><dd><a href=\"#s\">SYNOPSIS</a>"
        "</dd></dl></div>"
        "</body></html>";
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_memory("faq.html", html, sizeof html - 1, NULL, &r));
    if (!r) return;
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs == 1) {
        const char *top = "Frequently Asked Questions";
        const want_block w[] = {
            {H, 0, top, "Frequently Asked Questions"},
            {P, 0, top, "How do I request GPUs? Use --gres=gpu:2 with sbatch or srun."},
            {L, 0, top, "See sbatch for the batch options and their defaults."},
            {T, 0, top, "sacct | displays accounting data for jobs"},
            {P, 0, top, "abcd efgh"},
            {H, 0, "Frequently Asked Questions > Index", "Index"}, // a container with a heading is descended into
        };
        check_doc(&r->docs[0], w, sizeof w / sizeof w[0]);
    }
    qr_read_result_free(r);
    // A page that is nothing but links (a site map) keeps them: they are its content.
    const char hub[] = "<h1>Docs</h1><ul><li><a href=\"a.html\">Alpha guide</a></li>"
                       "<li><a href=\"b.html\">Beta guide</a></li></ul>";
    CHECK_OK(qr_read_memory("hub.html", hub, sizeof hub - 1, NULL, &r));
    if (!r) return;
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs == 1) {
        const want_block w[] = {{H, 0, "Docs", "Docs"}, {L, 0, "Docs", "Alpha guide"}, {L, 0, "Docs", "Beta guide"}};
        check_doc(&r->docs[0], w, sizeof w / sizeof w[0]);
        CHECK(!strcmp(r->docs[0].title, "Docs"));
    }
    qr_read_result_free(r);
}

static void test_pdf(void)
{
    qr_read_result *r = read_fixture("ingest/three_pages.pdf");
    if (!r) return;
    CHECK_INT(r->skip, QR_SKIP_NONE);
    CHECK_INT(r->format, QR_FMT_PDF);
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs != 1) goto out;
    const qr_doc *d = &r->docs[0];
    CHECK(!strcmp(d->title, "Quire three pages"));
    CHECK_INT(d->n_pages, 3);
    // the text mkpdf.c draws, one line per cairo_show_text
    const want_block w[] = {
        {P, 1, "", "Quire test document\nThe first page talks about apples.\nApples grow on trees."},
        {P, 2, "", "Second page\nBananas are yellow. They are rich in potassium."},
        {P, 3, "", "Third page\nCherries are small and red.\nThe end."},
    };
    check_doc(d, w, 3);
out:
    qr_read_result_free(r);
}

static void test_jsonl(void)
{
    qr_read_result *r = read_fixture("ingest/records.jsonl");
    if (!r) return;
    CHECK_INT(r->skip, QR_SKIP_NONE);
    CHECK_INT(r->format, QR_FMT_JSONL);
    CHECK_INT(r->n_docs, 3);
    CHECK_INT(r->n_warnings, 3);
    if (r->n_warnings == 3) {
        CHECK(!strncmp(r->warnings[0], "line 3: invalid JSON", 20));
        CHECK(!strcmp(r->warnings[1], "line 5: no string field \"text\""));
        CHECK(!strcmp(r->warnings[2], "line 6: not a JSON object"));
    }
    if (r->n_docs == 3) {
        const qr_doc *d = r->docs;
        CHECK(!strcmp(d[0].text, "First record. It has two sentences."));
        CHECK(!strcmp(d[0].title, "One"));
        CHECK(!strcmp(d[0].meta_json, "{\"id\":1,\"lang\":\"en\"}")); // array "tags" is not scalar
        CHECK_INT(d[0].line_no, 1);
        CHECK(!strcmp(d[1].text, "Second record."));
        CHECK(!strcmp(d[1].title, "line 2"));
        CHECK(!strcmp(d[1].meta_json, "{\"_id\":\"doc2\",\"ok\":true,\"score\":0.5}"));
        CHECK_INT(d[1].line_no, 2);
        const want_block w[] = {{P, 0, "", "Third record"}, {P, 0, "", "with two paragraphs."}};
        check_doc(&d[2], w, 2);
        CHECK(!strcmp(d[2].title, "Three"));
        CHECK(!strcmp(d[2].meta_json, "{\"n\":null}"));
        CHECK_INT(d[2].line_no, 7);
        for (int i = 0; i < 3; i++) CHECK_INT(d[i].format, QR_FMT_JSONL);
    }
    qr_read_result_free(r);
    // configurable fields
    qr_reader_opts o;
    qr_reader_opts_default(&o);
    o.jsonl_text_field = "body";
    o.jsonl_title_field = "name";
    const char js[] = "{\"body\": \"Hello.\", \"name\": \"N\", \"text\": \"kept as meta\"}\n";
    CHECK_OK(qr_read_memory("x.jsonl", js, sizeof js - 1, &o, &r));
    if (r) {
        CHECK_INT(r->n_docs, 1);
        if (r->n_docs == 1) {
            CHECK(!strcmp(r->docs[0].text, "Hello."));
            CHECK(!strcmp(r->docs[0].title, "N"));
            CHECK(!strcmp(r->docs[0].meta_json, "{\"text\":\"kept as meta\"}"));
        }
        qr_read_result_free(r);
    }
    // no valid line at all: skipped as corrupt
    const char bad[] = "not json\n{\"x\": 1}\n";
    CHECK_OK(qr_read_memory("x.jsonl", bad, sizeof bad - 1, NULL, &r));
    if (r) {
        CHECK_INT(r->skip, QR_SKIP_CORRUPT);
        CHECK_INT(r->n_docs, 0);
        CHECK_INT(r->n_warnings, 2);
        qr_read_result_free(r);
    }
}

static void test_code(void)
{
    qr_read_result *r = read_fixture("ingest/sample.c");
    if (!r) return;
    CHECK_INT(r->format, QR_FMT_CODE);
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs == 1) {
        const qr_doc *d = &r->docs[0];
        CHECK(!strcmp(d->language, "c"));
        CHECK(!strcmp(d->title, "sample.c"));
        const want_block w[] = {
            {C, 0, "", "/* A sample C file. */\n#include <stdio.h>"},
            {C, 0, "", "static int add(int a, int b)\n{\n    int s = a + b;\n\n    return s;\n}"},
            {C, 0, "", "int main(void)\n{\n    printf(\"%d\\n\", add(1, 2));\n    return 0;\n}"},
        };
        check_doc(d, w, 3);
    }
    qr_read_result_free(r);
    const char *lang = NULL;
    CHECK_INT(qr_detect_format("a/b/x.py", "x = 1\n", 6, &lang), QR_FMT_CODE);
    CHECK(lang && !strcmp(lang, "python"));
    CHECK_INT(qr_detect_format("x.rs", "fn main() {}\n", 13, &lang), QR_FMT_CODE);
    CHECK(lang && !strcmp(lang, "rust"));
    CHECK_INT(qr_detect_format("run", "#!/bin/sh\necho\n", 15, &lang), QR_FMT_CODE);
    CHECK(lang && !strcmp(lang, "shell"));
}

static void test_detect(void)
{
    CHECK_INT(qr_detect_format("notes", "  <!DOCTYPE html><p>x", 21, NULL), QR_FMT_HTML);
    CHECK_INT(qr_detect_format("notes", "%PDF-1.7\n", 9, NULL), QR_FMT_PDF);
    CHECK_INT(qr_detect_format("report.txt", "%PDF-1.7\n", 9, NULL), QR_FMT_PDF); // magic wins
    CHECK_INT(qr_detect_format("notes", "plain words\n", 12, NULL), QR_FMT_TEXT);
    CHECK_INT(qr_detect_format("x.MD", "# a\n", 4, NULL), QR_FMT_MARKDOWN);
    CHECK_INT(qr_detect_format("x.ndjson", "{}\n", 3, NULL), QR_FMT_JSONL);
    CHECK_INT(qr_detect_format("x.txt", "a\0b", 3, NULL), QR_FMT_UNKNOWN);
    char ctl[100];
    memset(ctl, 'a', sizeof ctl);
    for (int i = 0; i < 11; i++) ctl[i * 9] = 0x01; // 11% control characters
    CHECK_INT(qr_detect_format("x.txt", ctl, sizeof ctl, NULL), QR_FMT_UNKNOWN);
    for (int i = 0; i < 11; i++) ctl[i * 9] = i < 9 ? 0x01 : 'a'; // 9%: still text
    CHECK_INT(qr_detect_format("x.txt", ctl, sizeof ctl, NULL), QR_FMT_TEXT);
}

static void test_skips(void)
{
    struct {
        const char *file;
        qr_skip_kind kind;
        const char *reason;
    } cases[] = {
        {"ingest/image.png", QR_SKIP_BINARY, "binary content (binary magic number)"},
        {"ingest/nul.txt", QR_SKIP_BINARY, "binary content (NUL byte)"},
        {"ingest/encrypted.pdf", QR_SKIP_ENCRYPTED, "encrypted PDF"},
        {"ingest/corrupt.pdf", QR_SKIP_CORRUPT, "PDF cannot be opened"},
        {"ingest/does-not-exist.txt", QR_SKIP_UNREADABLE, "cannot open: No such file or directory"},
        {"ingest", QR_SKIP_UNREADABLE, "not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qr_read_result *r = read_fixture(cases[i].file);
        if (!r) continue;
        CHECK_MSG(r->skip == cases[i].kind, "%s: skip %s", cases[i].file, qr_skip_name(r->skip));
        CHECK_MSG(r->skip_reason && !strncmp(r->skip_reason, cases[i].reason, strlen(cases[i].reason)),
                  "%s: reason %s", cases[i].file, r->skip_reason ? r->skip_reason : "(null)");
        CHECK_INT(r->n_docs, 0);
        qr_read_result_free(r);
    }
    // size limit
    qr_reader_opts o;
    qr_reader_opts_default(&o);
    o.max_file_bytes = 100;
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("ingest/guide.md"), &o, &r));
    if (r) {
        CHECK_INT(r->skip, QR_SKIP_TOO_LARGE);
        CHECK(r->skip_reason && strstr(r->skip_reason, "over the limit 100"));
        qr_read_result_free(r);
    }
    // empty and whitespace-only text
    CHECK_OK(qr_read_memory("e.txt", " \n\n \n", 5, NULL, &r));
    if (r) {
        CHECK_INT(r->skip, QR_SKIP_EMPTY);
        qr_read_result_free(r);
    }
    // permission denied (root reads anything, so only checked as non-root)
    if (geteuid() != 0) {
        char path[] = "/tmp/quire_noperm_XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
            CHECK(write(fd, "secret\n", 7) == 7);
            close(fd);
            chmod(path, 0);
            CHECK_OK(qr_read_file(path, NULL, &r));
            if (r) {
                CHECK_INT(r->skip, QR_SKIP_UNREADABLE);
                CHECK(r->skip_reason && strstr(r->skip_reason, "Permission denied"));
                qr_read_result_free(r);
            }
            unlink(path);
        }
    } else {
        printf("running as root: permission skip not checked\n");
    }
}

static void test_utf8(void)
{
    qr_read_result *r = read_fixture("ingest/invalid_utf8.txt");
    if (!r) return;
    CHECK_INT(r->n_docs, 1);
    if (r->n_docs == 1) {
        // each maximal invalid subpart -> one U+FFFD (see make_binary_fixtures.py)
        const want_block w[] = {
            {P, 0, "", "Bad a\xEF\xBF\xBD( here."},
            {P, 0, "", "Never \xEF\xBF\xBD valid."},
            {P, 0, "", "Surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end."},
            {P, 0, "", "Cut \xEF\xBF\xBD emoji."},
        };
        check_doc(&r->docs[0], w, 4);
    }
    qr_read_result_free(r);
    struct {
        const char *in, *out;
    } cases[] = {
        {"a\xC3(", "a\xEF\xBF\xBD("},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong: C0 never valid
        {"\xE0\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, // E0 needs A0..BF
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, // > U+10FFFF
        {"\xE2\x82", "\xEF\xBF\xBD"},                              // truncated at the end
        {"ok \xF0\x9F\x98\x80", "ok \xF0\x9F\x98\x80"},            // valid 4-byte kept
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o = NULL;
        size_t n = 0;
        CHECK_OK(qr_utf8_lossy(cases[i].in, strlen(cases[i].in), &o, &n));
        CHECK_MSG(o && !strcmp(o, cases[i].out) && n == strlen(cases[i].out), "case %zu", i);
        free(o);
    }
    // CRLF and controls
    const char t[] = "one\r\ntwo\rthree\x01x\x7F";
    CHECK_OK(qr_read_memory("t.txt", t, sizeof t - 1, NULL, &r));
    if (r) {
        if (r->n_docs == 1) CHECK(!strcmp(r->docs[0].text, "one\ntwo\nthree x"));
        qr_read_result_free(r);
    }
}

static void test_limits(void)
{
    qr_reader_opts o;
    qr_reader_opts_default(&o);
    o.max_blocks = 3;
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("ingest/guide.md"), &o, &r));
    if (r) {
        CHECK_INT(r->n_docs, 1);
        if (r->n_docs) CHECK_INT(r->docs[0].n_blocks, 3);
        CHECK_INT(r->n_warnings, 1);
        if (r->n_warnings) CHECK(!strcmp(r->warnings[0], "truncated at 3 blocks"));
        qr_read_result_free(r);
    }
    qr_reader_opts_default(&o);
    o.max_line_bytes = 4;
    CHECK_OK(qr_read_memory("l.txt", "abcdefghij\n", 11, &o, &r));
    if (r) {
        if (r->n_docs) CHECK(!strcmp(r->docs[0].text, "abcd\nefgh\nij"));
        CHECK_INT(r->n_warnings, 1);
        qr_read_result_free(r);
    }
    // a line break never splits a UTF-8 character
    CHECK_OK(qr_read_memory("l.txt", "ab\xC3\xA9\xC3\xA9xyz", 9, &o, &r));
    if (r) {
        if (r->n_docs) CHECK(!strcmp(r->docs[0].text, "ab\xC3\xA9\n\xC3\xA9xy\nz")); // 4-byte lines
        qr_read_result_free(r);
    }
    qr_reader_opts_default(&o);
    o.max_record_bytes = 20;
    const char js[] = "{\"text\": \"a longer record\"}\n{\"text\":\"ok\"}\n";
    CHECK_OK(qr_read_memory("x.jsonl", js, sizeof js - 1, &o, &r));
    if (r) {
        CHECK_INT(r->n_docs, 1);
        CHECK_INT(r->n_warnings, 1);
        if (r->n_warnings) CHECK(strstr(r->warnings[0], "line 1: 27 bytes over the record limit 20") != NULL);
        qr_read_result_free(r);
    }
}

int main(void)
{
    test_markdown();
    test_html();
    test_html_charset();
    test_html_link_density();
    test_pdf();
    test_jsonl();
    test_code();
    test_detect();
    test_skips();
    test_utf8();
    test_limits();
    return qr_test_done();
}
