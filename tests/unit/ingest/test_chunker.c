/* Chunker: sentence boundaries, span/token/page/heading invariants on every
 * fixture with the real MiniLM tokenizer, overlap, long-sentence cuts, hard
 * boundaries (PDF pages, top-level headings), the word approximation, and
 * determinism. Expected texts come from the fixtures' known contents. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/chunker.h"
#include "ingest/reader.h"
#include "unit/ingest/chunk_check.h"
#include "unit/test.h"

static qr_tokenizer *tok;   /* MiniLM (WordPiece, [CLS] .. [SEP]) */
static qr_tokenizer *tok_bpe; /* Llama-3 (byte-level BPE, BOS only) */

static qr_chunker *make(const qr_tokenizer *t, int max, int overlap)
{
    qr_chunk_opts o = {.max_tokens = max, .overlap_tokens = overlap};
    qr_chunker *c = NULL;
    CHECK_OK(qr_chunker_create(t, &o, &c));
    return c;
}

static qr_read_result *read_mem(const char *name, const char *text)
{
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_memory(name, text, strlen(text), NULL, &r));
    if (r) CHECK_INT(r->n_docs, 1);
    return r;
}

static bool span_is(const qr_doc *d, const qr_chunk *c, const char *want)
{
    bool ok = c->len == strlen(want) && !memcmp(d->text + c->off, want, c->len);
    if (!ok) fprintf(stderr, "chunk \"%.*s\" != \"%s\"\n", (int)c->len, d->text + c->off, want);
    return ok;
}

static void test_sentences(void)
{
    qr_chunker *c = make(NULL, 256, 32);
    if (!c) return;
    const char *text = "Dr. Smith went home. He saw e.g. Bob and Mr. Jones. Pi is 3.14 today! Is it? \"Yes.\" "
                       "(Really.) J. R. R. Tolkien wrote books. Version 2. Next one\nstarts here.  Last";
    const char *want[] = {"Dr. Smith went home.", "He saw e.g. Bob and Mr. Jones.", "Pi is 3.14 today!", "Is it?",
                          "\"Yes.\"", "(Really.)", "J. R. R. Tolkien wrote books.", "Version 2.",
                          "Next one\nstarts here.", "Last"};
    size_t *sp = NULL, n = 0, nw = sizeof want / sizeof want[0];
    CHECK_OK(qr_chunker_sentences(c, text, strlen(text), &sp, &n));
    CHECK_INT(n, nw);
    for (size_t i = 0; i < n && i < nw; i++) {
        size_t len = sp[2 * i + 1] - sp[2 * i];
        CHECK_MSG(len == strlen(want[i]) && !memcmp(text + sp[2 * i], want[i], len), "sentence %zu: \"%.*s\"", i,
                  (int)len, text + sp[2 * i]);
    }
    free(sp);
    // Unicode: closing curly quote, upper-case non-ASCII start, CJK full stop is not a boundary mark
    const char *u = "Il dit \xE2\x80\x9C" "bonjour.\xE2\x80\x9D \xC3\x89tait-ce vrai? \xC3\x96l ist teuer.";
    CHECK_OK(qr_chunker_sentences(c, u, strlen(u), &sp, &n));
    CHECK_INT(n, 3);
    free(sp);
    qr_chunker_destroy(c);
}

static void test_fixture_invariants(void)
{
    const char *files[] = {"ingest/guide.md", "ingest/page.html", "ingest/three_pages.pdf", "ingest/records.jsonl",
                           "ingest/sample.c", "ingest/invalid_utf8.txt", "ingest/latin1.html"};
    const int params[][2] = {{256, 32}, {64, 16}, {24, 8}, {16, 0}};
    for (size_t p = 0; p < sizeof params / sizeof params[0]; p++) {
        for (int with_tok = 0; with_tok < 3; with_tok++) {
            const qr_tokenizer *t = with_tok == 1 ? tok : with_tok == 2 ? tok_bpe : NULL;
            if (with_tok && !t) continue;
            qr_chunker *c = make(t, params[p][0], params[p][1]);
            if (!c) continue;
            for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
                qr_read_result *r = NULL;
                CHECK_OK(qr_read_file(FIXTURE(files[f]), NULL, &r));
                if (!r) continue;
                for (size_t d = 0; d < r->n_docs; d++) {
                    qr_chunk *ch = NULL;
                    size_t n = 0;
                    CHECK_OK(qr_chunk_doc(c, &r->docs[d], &ch, &n));
                    char what[256];
                    snprintf(what, sizeof what, "%s doc %zu max %d overlap %d %s", files[f], d, params[p][0],
                             params[p][1], with_tok == 1 ? "minilm" : with_tok == 2 ? "llama3" : "words");
                    CHECK_MSG(n > 0, "%s: no chunks", what);
                    CHECK_MSG(check_chunks(&r->docs[d], ch, n, t, params[p][0], what) == 0, "%s", what);
                    // deterministic
                    qr_chunk *ch2 = NULL;
                    size_t n2 = 0;
                    CHECK_OK(qr_chunk_doc(c, &r->docs[d], &ch2, &n2));
                    bool same = n2 == n;
                    for (size_t k = 0; same && k < n; k++)
                        same = ch[k].off == ch2[k].off && ch[k].len == ch2[k].len && ch[k].page == ch2[k].page &&
                               ch[k].heading == ch2[k].heading && ch[k].block == ch2[k].block &&
                               ch[k].n_tokens == ch2[k].n_tokens;
                    CHECK_MSG(same, "%s: not deterministic", what);
                    free(ch);
                    free(ch2);
                }
                qr_read_result_free(r);
            }
            qr_chunker_destroy(c);
        }
    }
}

/* Whole structure at the default size: hard boundaries decide the cuts. */
static void test_boundaries(void)
{
    qr_chunker *c = make(tok, 256, 32);
    if (!c) return;
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("ingest/three_pages.pdf"), NULL, &r));
    if (r && r->n_docs == 1) {
        qr_chunk *ch = NULL;
        size_t n = 0;
        CHECK_OK(qr_chunk_doc(c, &r->docs[0], &ch, &n));
        CHECK_INT(n, 3); // one per page: a chunk never spans pages
        if (n == 3) {
            CHECK(span_is(&r->docs[0], &ch[0], "Quire test document\nThe first page talks about apples.\nApples grow on trees."));
            CHECK(span_is(&r->docs[0], &ch[1], "Second page\nBananas are yellow. They are rich in potassium."));
            CHECK(span_is(&r->docs[0], &ch[2], "Third page\nCherries are small and red.\nThe end."));
            for (int i = 0; i < 3; i++) CHECK_INT(ch[i].page, i + 1);
        }
        free(ch);
    }
    qr_read_result_free(r);
    CHECK_OK(qr_read_file(FIXTURE("ingest/guide.md"), NULL, &r));
    if (r && r->n_docs == 1) {
        const qr_doc *d = &r->docs[0];
        qr_chunk *ch = NULL;
        size_t n = 0;
        CHECK_OK(qr_chunk_doc(c, d, &ch, &n));
        CHECK_INT(n, 2); // split at the second h1 ("Setext Title"), not at the h2s
        if (n == 2) {
            CHECK(span_is(d, &ch[0],
                          "Install\n\nQuire runs offline. It needs a C compiler.\n\nFrom source\n\nClone the "
                          "repository, e.g. with git. Then build it:\n\nmeson setup build\n\nninja -C build\n\n"
                          "First item\n\nSecond item\ncontinues here\n\nNumbered item"));
            CHECK(span_is(d, &ch[1],
                          "Setext Title\n\nOption | Default\n\nk | 10\n\nUsage\n\nQuoted text stays.\n\nFinal "
                          "paragraph with *emphasis*."));
            CHECK(!strcmp(ch[0].heading, "Install"));
            CHECK(!strcmp(ch[1].heading, "Setext Title"));
        }
        free(ch);
    }
    qr_read_result_free(r);
    qr_chunker_destroy(c);
}

/* Many short sentences: overlap is whole trailing sentences of the previous
 * chunk, as many as fit in overlap_tokens. */
static void test_overlap(void)
{
    const char *animals[] = {"cats", "dogs", "birds", "fish", "horses", "cows", "sheep", "goats", "ducks", "mice"};
    char text[4096] = "";
    for (int i = 0; i < 40; i++) {
        char s[96];
        snprintf(s, sizeof s, "%sThe %s sleep at night number %d.", i ? " " : "", animals[i % 10], i);
        strcat(text, s);
    }
    for (int ov = 0; ov <= 16; ov += 8) {
        for (int with_tok = 0; with_tok < 2; with_tok++) {
            const qr_tokenizer *t = with_tok ? tok : NULL;
            if (with_tok && !tok) continue;
            qr_chunker *c = make(t, 40, ov);
            qr_read_result *r = read_mem("o.txt", text);
            if (!c || !r || r->n_docs != 1) {
                qr_chunker_destroy(c);
                qr_read_result_free(r);
                continue;
            }
            const qr_doc *d = &r->docs[0];
            size_t *sp = NULL, ns = 0;
            CHECK_OK(qr_chunker_sentences(c, d->text, d->text_len, &sp, &ns));
            CHECK_INT(ns, 40);
            qr_chunk *ch = NULL;
            size_t n = 0;
            CHECK_OK(qr_chunk_doc(c, d, &ch, &n));
            CHECK(check_chunks(d, ch, n, t, 40, "overlap") == 0);
            CHECK(n >= 8); // 40 sentences of about 8 tokens, 4 or 5 per chunk
            for (size_t k = 1; k < n; k++) {
                size_t pe = ch[k - 1].off + ch[k - 1].len;
                // chunks start and end on sentence boundaries
                bool starts = false, ends = false;
                size_t first_ov = ns, last_prev = 0;
                for (size_t s = 0; s < ns; s++) {
                    if (sp[2 * s] == ch[k].off) starts = true, first_ov = s;
                    if (sp[2 * s + 1] == pe) ends = true, last_prev = s;
                }
                CHECK(starts && ends);
                if (ov == 0) {
                    CHECK_MSG(ch[k].off > pe, "overlap 0: chunk %zu starts inside chunk %zu", k, k - 1);
                    continue;
                }
                CHECK_MSG(ch[k].off < pe, "chunk %zu does not overlap its predecessor", k);
                // overlap = sentences first_ov..last_prev: within ov tokens, and one more would not be
                int sum = 0, one_more = 0, nt;
                for (size_t s = first_ov; s <= last_prev && s < ns; s++) {
                    CHECK_OK(qr_chunker_count(c, d->text + sp[2 * s], sp[2 * s + 1] - sp[2 * s], &nt));
                    sum += nt - (t ? 2 : 0); // MiniLM adds [CLS] and [SEP]
                }
                CHECK_MSG(sum <= ov, "overlap of %d tokens over %d", sum, ov);
                if (first_ov > 0) {
                    size_t s = first_ov - 1;
                    CHECK_OK(qr_chunker_count(c, d->text + sp[2 * s], sp[2 * s + 1] - sp[2 * s], &nt));
                    one_more = sum + nt - (t ? 2 : 0);
                    bool prev_holds = sp[2 * s] >= ch[k - 1].off;
                    if (prev_holds) CHECK_MSG(one_more > ov, "overlap not maximal (%d could take %d)", sum, one_more);
                }
            }
            free(sp);
            free(ch);
            qr_read_result_free(r);
            qr_chunker_destroy(c);
        }
    }
}

/* A sentence longer than a chunk is cut at word boundaries, pieces overlapping. */
static void test_long_sentence(void)
{
    const char *words[] = {"river", "stone", "light", "paper", "green", "table", "water", "music", "cloud", "bread",
                           "house", "chair", "plant", "sound", "metal", "glass", "field", "storm"};
    char text[8192] = "";
    for (int i = 0; i < 400; i++) {
        if (i) strcat(text, " ");
        strcat(text, words[(i * 7) % 18]);
    }
    strcat(text, ".");
    for (int with_tok = 0; with_tok < 2; with_tok++) {
        const qr_tokenizer *t = with_tok ? tok : NULL;
        if (with_tok && !tok) continue;
        qr_chunker *c = make(t, 32, 8);
        qr_read_result *r = read_mem("l.txt", text);
        if (c && r && r->n_docs == 1) {
            const qr_doc *d = &r->docs[0];
            qr_chunk *ch = NULL;
            size_t n = 0;
            CHECK_OK(qr_chunk_doc(c, d, &ch, &n));
            CHECK(check_chunks(d, ch, n, t, 32, "long sentence") == 0);
            // 400 one-token words in pieces of <= 30 (+2 specials) words: at least 14 pieces
            CHECK(n >= 14);
            for (size_t k = 0; k < n; k++) {
                size_t e = ch[k].off + ch[k].len;
                CHECK(ch[k].off == 0 || d->text[ch[k].off - 1] == ' '); // starts at a word
                CHECK(e == d->text_len || d->text[e] == ' ');             // ends at a word
                if (k) {
                    size_t pe = ch[k - 1].off + ch[k - 1].len;
                    CHECK_MSG(ch[k].off < pe, "piece %zu does not overlap", k);
                    int nt;
                    CHECK_OK(qr_chunker_count(c, d->text + ch[k].off, pe - ch[k].off, &nt));
                    CHECK_MSG(nt - (t ? 2 : 0) <= 8, "piece overlap of %d tokens", nt);
                }
                if (k + 1 < n) CHECK_MSG(ch[k].n_tokens >= 24, "piece %zu only %d tokens", k, ch[k].n_tokens);
            }
            free(ch);
        }
        qr_read_result_free(r);
        qr_chunker_destroy(c);
    }
    // 600 CJK characters and no space: cut at character boundaries (3-byte characters);
    // BERT makes each CJK character one token, the approximation one word of 600 characters
    char *big = malloc(1801);
    for (int i = 0; i < 600; i++) memcpy(big + 3 * i, "\xE4\xB8\xAD", 3);
    big[1800] = 0;
    for (int with_tok = 0; with_tok < 2; with_tok++) {
        const qr_tokenizer *t = with_tok ? tok : NULL;
        if (with_tok && !tok) continue;
        qr_chunker *c = make(t, 32, 8);
        qr_read_result *r = read_mem("w.txt", big);
        if (c && r && r->n_docs == 1) {
            qr_chunk *ch = NULL;
            size_t n = 0;
            CHECK_OK(qr_chunk_doc(c, &r->docs[0], &ch, &n));
            CHECK(check_chunks(&r->docs[0], ch, n, t, 32, "one long word") == 0);
            for (size_t k = 0; k < n; k++) CHECK(ch[k].off % 3 == 0 && ch[k].len % 3 == 0);
            CHECK_MSG(n >= (with_tok ? 20u : 2u), "%zu chunks", n);
            free(ch);
        }
        qr_read_result_free(r);
        qr_chunker_destroy(c);
    }
    free(big);
}

/* Paragraph boundaries win over sentence boundaries once a chunk is half full. */
static void test_paragraph_preference(void)
{
    if (!tok) return;
    // paragraph A: 3 sentences; paragraph B: 3 sentences; together over 40 tokens
    const char *text = "One two three four five six. Seven eight nine ten eleven. Twelve thirteen fourteen. Fifteen sixteen seventeen eighteen.\n\n"
                       "Apples and pears are fruit. Carrots are not fruit at all. Neither are onions.";
    qr_chunker *c = make(tok, 40, 0);
    qr_read_result *r = read_mem("p.txt", text);
    if (c && r && r->n_docs == 1) {
        qr_chunk *ch = NULL;
        size_t n = 0;
        CHECK_OK(qr_chunk_doc(c, &r->docs[0], &ch, &n));
        CHECK_INT(n, 2);
        if (n == 2) {
            CHECK(span_is(&r->docs[0], &ch[0],
                          "One two three four five six. Seven eight nine ten eleven. Twelve thirteen fourteen. "
                          "Fifteen sixteen seventeen eighteen."));
            CHECK(span_is(&r->docs[0], &ch[1],
                          "Apples and pears are fruit. Carrots are not fruit at all. Neither are onions."));
        }
        free(ch);
    }
    qr_read_result_free(r);
    qr_chunker_destroy(c);
}

static void test_code_lines(void)
{
    qr_chunker *c = make(tok, 32, 0);
    qr_read_result *r = NULL;
    CHECK_OK(qr_read_file(FIXTURE("ingest/sample.c"), NULL, &r));
    if (c && r && r->n_docs == 1) {
        const qr_doc *d = &r->docs[0];
        qr_chunk *ch = NULL;
        size_t n = 0;
        CHECK_OK(qr_chunk_doc(c, d, &ch, &n));
        CHECK(check_chunks(d, ch, n, tok, 32, "code") == 0);
        for (size_t k = 0; k < n; k++) {
            size_t e = ch[k].off + ch[k].len;
            // whole lines: starts after a newline (or at 0, or after indentation), ends at a line end
            size_t s = ch[k].off;
            while (s > 0 && d->text[s - 1] == ' ') s--;
            CHECK(s == 0 || d->text[s - 1] == '\n');
            CHECK(e == d->text_len || d->text[e] == '\n');
        }
        free(ch);
    }
    qr_read_result_free(r);
    qr_chunker_destroy(c);
}

static void test_counts_and_opts(void)
{
    qr_chunker *c = make(NULL, 256, 32);
    int n = -1;
    if (c) {
        // words up to 8 characters count 1, "internationalization" (20) counts 3, punctuation 1 each
        CHECK_OK(qr_chunker_count(c, "Hello, world! internationalization", 34, &n));
        CHECK_INT(n, 7);
        CHECK_OK(qr_chunker_count(c, "na\xC3\xAFve caf\xC3\xA9 x_y 3.14", 20, &n));
        CHECK_INT(n, 6); // naïve, café, x_y, 3, ".", 14
        CHECK_OK(qr_chunker_count(c, "", 0, &n));
        CHECK_INT(n, 0);
        qr_chunker_destroy(c);
    }
    if (tok) {
        c = make(tok, 256, 32);
        if (c) {
            CHECK_OK(qr_chunker_count(c, "", 0, &n));
            CHECK_INT(n, 2); // [CLS] [SEP]
            CHECK_OK(qr_chunker_count(c, "hello world", 11, &n));
            CHECK_INT(n, 4);
            // special-token text in a document is ordinary text, not [SEP]
            CHECK_OK(qr_chunker_count(c, "[SEP]", 5, &n));
            CHECK(n > 3);
            qr_chunker_destroy(c);
        }
    }
    qr_chunk_opts o = {.max_tokens = 9, .overlap_tokens = 0};
    qr_chunker *bad = NULL;
    if (tok) CHECK_INT(qr_chunker_create(tok, &o, &bad), QR_EINVAL); // 9 < 2 specials + 8
    o.max_tokens = 64;
    o.overlap_tokens = 33;
    CHECK_INT(qr_chunker_create(NULL, &o, &bad), QR_EINVAL);
    o.overlap_tokens = -1;
    CHECK_INT(qr_chunker_create(NULL, &o, &bad), QR_EINVAL);
    CHECK(bad == NULL);
    qr_chunker_destroy(NULL);
}

int main(void)
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
    test_sentences();
    test_fixture_invariants();
    test_boundaries();
    test_overlap();
    test_long_sentence();
    test_paragraph_preference();
    test_code_lines();
    test_counts_and_opts();
    qr_tokenizer_free(tok);
    qr_tokenizer_free(tok_bpe);
    return qr_test_done();
}
