/* Incremental detokenization (qr_textstream) with the Qwen2.5 byte-level BPE
 * tokenizer: multi-byte characters split over byte tokens are held back until
 * complete, stop strings are found across token boundaries and cut, possible
 * stop-string prefixes are held back, and the pieces always add up to the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/unit/test.h"

static qr_tokenizer *tok;

/* GPT-2 byte-level alphabet: the id of the token that is exactly byte b. */
static int32_t byte_id(unsigned b)
{
    unsigned cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        unsigned n = 0; /* rank of b among the unprintable bytes */
        for (unsigned x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
                n++;
        cp = 256 + n;
    }
    char s[4];
    if (cp < 0x80) {
        s[0] = (char)cp;
        s[1] = 0;
    } else {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        s[2] = 0;
    }
    return qr_tokenizer_find(tok, s);
}

typedef struct {
    char all[1024];
    char pieces[32][64];
    int n;
} log_t;

static void add(log_t *l, const char *p)
{
    strcat(l->all, p);
    if (l->n < 32)
        snprintf(l->pieces[l->n++], 64, "%s", p);
}

static void test_utf8(void)
{
    /* "é" = C3 A9 and "😀" = F0 9F 98 80, one byte token each, then "!" */
    const unsigned bytes[] = {0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, '!'};
    qr_textstream *s;
    log_t l = {.n = 0};
    CHECK_OK(qr_textstream_create(tok, NULL, 0, &s));
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        int32_t id = byte_id(bytes[i]);
        CHECK_MSG(id >= 0, "byte %02x has no token", bytes[i]);
        const char *piece;
        bool stopped;
        CHECK_OK(qr_textstream_push(s, id, false, &piece, &stopped));
        CHECK(!stopped);
        add(&l, piece);
    }
    CHECK(strcmp(l.pieces[0], "") == 0);          /* C3 alone: held */
    CHECK(strcmp(l.pieces[1], "\xC3\xA9") == 0);  /* é complete */
    CHECK(strcmp(l.pieces[2], "") == 0 && strcmp(l.pieces[3], "") == 0 && strcmp(l.pieces[4], "") == 0);
    CHECK(strcmp(l.pieces[5], "\xF0\x9F\x98\x80") == 0);
    CHECK(strcmp(l.pieces[6], "!") == 0);
    CHECK(strcmp(l.all, "\xC3\xA9\xF0\x9F\x98\x80!") == 0);
    CHECK(strcmp(qr_textstream_text(s), l.all) == 0);
    qr_textstream_free(s);

    /* an incomplete character at the end is released by flush (as the decoder renders it) */
    CHECK_OK(qr_textstream_create(tok, NULL, 0, &s));
    const char *piece;
    bool stopped;
    CHECK_OK(qr_textstream_push(s, byte_id('a'), false, &piece, &stopped));
    CHECK(strcmp(piece, "a") == 0);
    CHECK_OK(qr_textstream_push(s, byte_id(0xE2), false, &piece, &stopped));
    CHECK(strcmp(piece, "") == 0);
    CHECK_OK(qr_textstream_flush(s, &piece));
    CHECK(strlen(piece) > 0);
    CHECK(strcmp(qr_textstream_text(s), "a") != 0 && strncmp(qr_textstream_text(s), "a", 1) == 0);
    qr_textstream_free(s);
}

static void run_stop(const char *text, const char *const *stops, int n_stop, const char *want_text,
                     bool want_stopped, log_t *l, size_t *n_kept, size_t *n_pushed)
{
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(qr_tokenize(tok, text, strlen(text), false, &ids, &n));
    qr_textstream *s;
    CHECK_OK(qr_textstream_create(tok, stops, n_stop, &s));
    bool stopped = false;
    *n_pushed = 0;
    for (size_t i = 0; i < n && !stopped; i++) {
        const char *piece;
        CHECK_OK(qr_textstream_push(s, ids[i], i + 1 == n, &piece, &stopped));
        add(l, piece);
        (*n_pushed)++;
    }
    CHECK(stopped == want_stopped);
    CHECK_MSG(strcmp(qr_textstream_text(s), want_text) == 0, "text '%s' want '%s'", qr_textstream_text(s), want_text);
    CHECK_MSG(strcmp(l->all, want_text) == 0, "pieces '%s' want '%s'", l->all, want_text);
    qr_textstream_ids(s, n_kept);
    if (stopped) {
        const char *piece;
        bool st2;
        CHECK_INT(qr_textstream_push(s, ids[0], false, &piece, &st2), QR_EINVAL);
    }
    qr_textstream_free(s);
    free(ids);
}

static void test_stops(void)
{
    /* "d, th" spans the tokens " world", ",", " this" */
    const char *stops[] = {"zzz", "d, th"};
    log_t l = {.n = 0};
    size_t kept, pushed;
    run_stop("Hello world, this is a test", stops, 2, "Hello worl", true, &l, &kept, &pushed);
    CHECK_INT(kept, pushed - 1); /* the completing token is dropped */

    /* a possible stop prefix is held back, then released when it stops matching */
    const char *stops2[] = {"world!"};
    memset(&l, 0, sizeof l);
    run_stop("Hello world, again", stops2, 1, "Hello world, again", false, &l, &kept, &pushed);
    CHECK_INT(kept, pushed);
    int held = 0;
    for (int i = 0; i < l.n; i++)
        held |= strstr(l.pieces[i], "world,") != NULL; /* "world" went out together with "," */
    CHECK(held);

    /* stop string at the very start: empty text */
    const char *stops3[] = {"Hello"};
    memset(&l, 0, sizeof l);
    run_stop("Hello world", stops3, 1, "", true, &l, &kept, &pushed);
    CHECK_INT(kept, 0);

    /* two stop strings completed by the same token: the earlier match wins */
    const char *stops4[] = {"test", "a test"};
    memset(&l, 0, sizeof l);
    run_stop("Hello world, this is a test", stops4, 2, "Hello world, this is ", true, &l, &kept, &pushed);

    /* no tokenizer: ids only, stop strings refused */
    qr_textstream *s;
    CHECK_INT(qr_textstream_create(NULL, stops, 1, &s), QR_EINVAL);
    CHECK_OK(qr_textstream_create(NULL, NULL, 0, &s));
    const char *piece;
    bool st;
    CHECK_OK(qr_textstream_push(s, 5, false, &piece, &st));
    CHECK(piece[0] == 0);
    size_t n;
    const int32_t *ids = qr_textstream_ids(s, &n);
    CHECK(n == 1 && ids[0] == 5);
    qr_textstream_free(s);
    qr_textstream_free(NULL);
}

int main(void)
{
    CHECK_OK(qr_tokenizer_load_json(FIXTURE("models/qwen2.5-tokenizer/tokenizer.json"), &tok));
    if (!tok)
        return qr_test_done();
    test_utf8();
    test_stops();
    qr_tokenizer_free(tok);
    return qr_test_done();
}
