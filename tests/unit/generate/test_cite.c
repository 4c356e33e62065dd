/* generate/cite: citation groups kept, rewritten and removed (with the space
 * before them), non-citation brackets left alone, the report of cited and
 * removed numbers, and streaming: every split of the text into pieces
 * releases exactly the whole-text result. Expected strings are written by
 * hand from the rules in cite.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/cite.h"
#include "tests/unit/test.h"

static void check_clean(const char *in, size_t n_sources, const char *want)
{
    char *out = NULL;
    CHECK_OK(qr_cite_clean(in, strlen(in), n_sources, &out, NULL));
    CHECK_MSG(out && !strcmp(out, want), "clean(\"%s\", %zu) = \"%s\", want \"%s\"", in, n_sources,
              out ? out : "(null)", want);
    free(out);
}

/* Streams in pieces of every size 1..8 and checks the concatenation. */
static void check_stream(const char *in, size_t n_sources, const char *want)
{
    size_t len = strlen(in);
    for (size_t step = 1; step <= 8; step++) {
        qr_cite_stream *s = NULL;
        CHECK_OK(qr_cite_stream_create(n_sources, &s));
        char got[1024] = "";
        size_t gn = 0;
        const char *p;
        size_t pn;
        for (size_t i = 0; i < len; i += step) {
            size_t k = len - i < step ? len - i : step;
            CHECK_OK(qr_cite_stream_push(s, in + i, k, &p, &pn));
            memcpy(got + gn, p, pn);
            gn += pn;
        }
        CHECK_OK(qr_cite_stream_finish(s, &p, &pn));
        memcpy(got + gn, p, pn);
        gn += pn;
        got[gn] = 0;
        CHECK_MSG(!strcmp(got, want), "stream step %zu: \"%s\" want \"%s\"", step, got, want);
        qr_cite_stream_free(s);
    }
}

static void both(const char *in, size_t n, const char *want)
{
    check_clean(in, n, want);
    check_stream(in, n, want);
}

int main(void)
{
    /* valid groups are kept verbatim */
    both("Use --gres=gpu:2 [1].", 3, "Use --gres=gpu:2 [1].");
    both("A [1, 2] and B [3][1].", 3, "A [1, 2] and B [3][1].");
    both("A [1,2] B [2; 3]", 3, "A [1,2] B [2; 3]");
    /* invalid groups removed with the space before them */
    both("Text [9].", 3, "Text.");
    both("a [9] b", 3, "a b");
    both("a [0] [4] b", 3, "a b");
    both("a [9]b", 3, "a b");
    both("end [7]", 3, "end");
    both("x [7]\nnext", 3, "x\nnext");
    /* partly valid groups rewritten */
    both("A [1, 9, 2].", 3, "A [1, 2].");
    both("A [9][2].", 3, "A [2].");
    both("A [2] [9].", 3, "A [2].");
    /* not citations */
    both("see [note] and [1a] and [] and [1,] and [,1]", 3, "see [note] and [1a] and [] and [1,] and [,1]");
    both("array[i] = [ 1 ]", 0, "array[i] =");
    both("unclosed [1", 3, "unclosed [1");
    both("trailing spaces  ", 3, "trailing spaces  ");
    both("[[1]]", 3, "[[1]]");
    both("nested [[9]] x", 3, "nested [] x");
    both("", 3, "");
    /* a 7-digit number is not a citation */
    both("id [1234567] ok", 3, "id [1234567] ok");
    /* no sources: every citation goes */
    both("Nothing [1] here [2].", 0, "Nothing here.");

    /* the report: distinct cited numbers in first-citation order, removed ones in text order */
    qr_cite_report r;
    char *out = NULL;
    const char *t = "B [2] then [1, 2] and [5] and [3, 7][2]";
    CHECK_OK(qr_cite_clean(t, strlen(t), 3, &out, &r));
    CHECK(!strcmp(out, "B [2] then [1, 2] and and [3][2]"));
    CHECK_INT(r.n_cited, 3);
    if (r.n_cited == 3) {
        CHECK_INT(r.cited[0], 2);
        CHECK_INT(r.cited[1], 1);
        CHECK_INT(r.cited[2], 3);
    }
    CHECK_INT(r.n_removed, 2);
    if (r.n_removed == 2) {
        CHECK_INT(r.removed[0], 5);
        CHECK_INT(r.removed[1], 7);
    }
    qr_cite_report_free(&r);
    free(out);

    /* a pushed stream is not accepted after finish */
    qr_cite_stream *s = NULL;
    const char *p;
    size_t pn;
    CHECK_OK(qr_cite_stream_create(1, &s));
    CHECK_OK(qr_cite_stream_finish(s, &p, &pn));
    CHECK(qr_cite_stream_push(s, "x", 1, &p, &pn) == QR_EINVAL);
    qr_cite_stream_free(s);
    qr_cite_stream_free(NULL);
    return qr_test_done();
}
