/* GGUF vocabularies (qr_tokenizer_load_gguf) against llama.cpp's reference vocab fixtures:
 * tests/fixtures/models/vocab-fixtures/ggml-vocab-NAME.gguf with NAME.gguf.inp (test strings, each
 * followed by a line "__ggml_vocab_test__") and NAME.gguf.out (line i: the ids of string i
 * from the Hugging Face tokenizer, no special tokens). Every case must match exactly, for
 * bert-bge (WordPiece), gpt-2 (byte-level BPE) and llama-spm (score-based SentencePiece).
 * tiny-random-llama-2 carries the same Llama-2 vocabulary (checked here: pieces, scores and
 * types id by id) and must give the llama-spm ids too. Also: special tokens added per the
 * GGUF flags, and stories260K's 512-piece vocabulary decoding its reference generation. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/weights/gguf.h"
#include "tests/unit/test.h"

#define SEP "\n__ggml_vocab_test__\n"
#define MAX_CASES 256

typedef struct {
    const char *text[MAX_CASES]; /* into inp (cut in place) */
    size_t len[MAX_CASES];
    int32_t *ids[MAX_CASES];
    size_t n_ids[MAX_CASES];
    size_t n;
    char *inp, *out;
} cases;

static void cases_free(cases *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->inp);
    free(c->out);
}

/* Reads NAME.gguf.inp / .out; false (with a message) if malformed. */
static bool read_cases(const char *base, cases *c)
{
    char path[4096];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s.inp", base);
    c->inp = qr_test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s.out", base);
    c->out = qr_test_slurp(path, NULL);
    if (!c->inp || !c->out) {
        fprintf(stderr, "%s: cannot read .inp/.out\n", base);
        return false;
    }
    char *p = c->inp;
    char *s;
    while ((s = strstr(p, SEP)) != NULL && c->n < MAX_CASES) {
        c->text[c->n] = p;
        c->len[c->n] = (size_t)(s - p);
        c->n++;
        p = s + strlen(SEP);
    }
    if (*p) {
        fprintf(stderr, "%s.inp: text after the last separator\n", base);
        return false;
    }
    size_t line = 0;
    char *q = c->out;
    while (*q && line < c->n) {
        char *nl = strchr(q, '\n');
        if (nl)
            *nl = 0;
        size_t cap = strlen(q) / 2 + 1, k = 0;
        c->ids[line] = malloc(cap * sizeof(int32_t));
        char *e;
        for (long v = strtol(q, &e, 10); e != q; v = strtol(q, &e, 10)) {
            c->ids[line][k++] = (int32_t)v;
            q = e;
        }
        c->n_ids[line++] = k;
        q = nl ? nl + 1 : q + strlen(q);
    }
    if (line != c->n || *q) {
        fprintf(stderr, "%s.out: %zu id lines for %zu strings\n", base, line, c->n);
        return false;
    }
    return true;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static bool same(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* All cases of `fixture` (a vocab-fixtures base name) through the vocabulary in gguf_path.
 * prefix/suffix: what add_special must put around the ids. Returns the mismatch count. */
static size_t run_cases(const char *label, const char *gguf_path, const char *fixture, const int32_t *prefix,
                        size_t n_prefix, const int32_t *suffix, size_t n_suffix)
{
    char base[512];
    snprintf(base, sizeof base, "models/vocab-fixtures/%s", fixture);
    cases c;
    bool ok = read_cases(FIXTURE(base), &c);
    CHECK_MSG(ok, "%s: fixture unreadable", fixture);
    CHECK_MSG(c.n == 46, "%s: %zu cases", fixture, c.n);
    qr_gguf *g = NULL;
    qr_tokenizer *t = NULL;
    CHECK_OK(qr_gguf_open(gguf_path, &g));
    if (g)
        CHECK_OK(qr_tokenizer_load_gguf(g, &t));
    size_t bad = 0;
    for (size_t i = 0; ok && t && i < c.n; i++) {
        int32_t *got = NULL;
        size_t ng = 0;
        int rc = qr_tokenize(t, c.text[i], c.len[i], false, &got, &ng);
        if (rc || !same(c.ids[i], c.n_ids[i], got, ng)) {
            bad++;
            fprintf(stderr, "[%s] case %zu \"%.*s\": %s\n", label, i, (int)c.len[i], c.text[i],
                    rc ? qr_last_error() : "ids differ");
            print_ids("want", c.ids[i], c.n_ids[i]);
            if (!rc)
                print_ids("got ", got, ng);
        }
        free(got);

        /* add_special: the same ids inside the GGUF's prefix/suffix. */
        got = NULL;
        rc = qr_tokenize(t, c.text[i], c.len[i], true, &got, &ng);
        bool sp_ok = rc == 0 && ng == n_prefix + c.n_ids[i] + n_suffix &&
                     (n_prefix == 0 || memcmp(got, prefix, n_prefix * sizeof *got) == 0) &&
                     (c.n_ids[i] == 0 || memcmp(got + n_prefix, c.ids[i], c.n_ids[i] * sizeof *got) == 0) &&
                     (n_suffix == 0 || memcmp(got + n_prefix + c.n_ids[i], suffix, n_suffix * sizeof *got) == 0);
        CHECK_MSG(sp_ok, "[%s] case %zu with special tokens", label, i);
        free(got);
    }
    printf("%s: %zu/%zu cases identical\n", label, c.n - bad, c.n);
    CHECK_MSG(bad == 0, "%s: %zu mismatches", label, bad);
    qr_tokenizer_free(t);
    qr_gguf_close(g);
    cases_free(&c);
    return bad;
}

/* The claim that tiny-random-llama-2 holds ggml-vocab-llama-spm's vocabulary. */
static void check_same_vocab(const char *a_path, const char *b_path)
{
    qr_gguf *a = NULL, *b = NULL;
    CHECK_OK(qr_gguf_open(a_path, &a));
    CHECK_OK(qr_gguf_open(b_path, &b));
    if (!a || !b) {
        qr_gguf_close(a);
        qr_gguf_close(b);
        return;
    }
    qr_gguf_type ta, tb;
    uint64_t na = 0, nb = 0;
    CHECK_OK(qr_gguf_get_arr(a, "tokenizer.ggml.tokens", &ta, &na));
    CHECK_OK(qr_gguf_get_arr(b, "tokenizer.ggml.tokens", &tb, &nb));
    CHECK_INT(na, 32000);
    CHECK_INT(na, nb);
    size_t diff = 0;
    for (uint64_t i = 0; i < na && i < nb; i++) {
        qr_gguf_str sa, sb;
        double fa, fb;
        int64_t ya, yb;
        if (qr_gguf_arr_str(a, "tokenizer.ggml.tokens", i, &sa) || qr_gguf_arr_str(b, "tokenizer.ggml.tokens", i, &sb) ||
            qr_gguf_arr_f64(a, "tokenizer.ggml.scores", i, &fa) || qr_gguf_arr_f64(b, "tokenizer.ggml.scores", i, &fb) ||
            qr_gguf_arr_i64(a, "tokenizer.ggml.token_type", i, &ya) ||
            qr_gguf_arr_i64(b, "tokenizer.ggml.token_type", i, &yb) || sa.len != sb.len ||
            memcmp(sa.ptr, sb.ptr, sa.len) != 0 || fa != fb || ya != yb)
            diff++;
    }
    CHECK_MSG(diff == 0, "tiny-random-llama-2 vs llama-spm: %zu ids differ", diff);
    qr_gguf_close(a);
    qr_gguf_close(b);
}

/* stories260K: 512-piece SentencePiece vocabulary; its reference greedy generation (ids on
 * line 1, the text llama2.c printed on line 2) must decode to that text. llama2.c keeps the
 * space of the first piece ("▁Once"); the Hugging Face decoder strips one leading space. */
static void check_stories(void)
{
    char *ref = qr_test_slurp(FIXTURE("models/stories260K/greedy_from_bos_60.ref.txt"), NULL);
    CHECK(ref != NULL);
    if (!ref)
        return;
    char *nl = strchr(ref, '\n');
    CHECK(nl != NULL);
    if (!nl) {
        free(ref);
        return;
    }
    *nl = 0;
    char *text = nl + 1;
    size_t tl = strlen(text);
    while (tl && text[tl - 1] == '\n')
        text[--tl] = 0;
    int32_t ids[128];
    size_t n = 0;
    for (char *p = ref; *p && n < 128; p++)
        if (*p >= '0' && *p <= '9')
            ids[n++] = (int32_t)strtol(p, &p, 10);
    CHECK_INT(n, 60);
    qr_gguf *g = NULL;
    qr_tokenizer *t = NULL;
    CHECK_OK(qr_gguf_open(FIXTURE("models/stories260K/stories260K.gguf"), &g));
    if (g)
        CHECK_OK(qr_tokenizer_load_gguf(g, &t));
    if (t) {
        CHECK_INT(qr_tokenizer_n_vocab(t), 512);
        CHECK_INT(qr_tokenizer_bos(t), 1);
        CHECK_INT(qr_tokenizer_eos(t), 2);
        char *out = NULL;
        CHECK_OK(qr_detokenize(t, ids, n, true, &out));
        CHECK_MSG(out && text[0] == ' ' && strcmp(out, text + 1) == 0, "decoded \"%s\"", out ? out : "(null)");
        free(out);
    }
    qr_tokenizer_free(t);
    qr_gguf_close(g);
    free(ref);
}

/* Tokenizer-level facts of each vocabulary (ids from the GGUF keys, looked up by piece). */
static void check_props(void)
{
    qr_gguf *g = NULL;
    qr_tokenizer *t = NULL;
    CHECK_OK(qr_gguf_open(FIXTURE("models/vocab-fixtures/ggml-vocab-bert-bge.gguf"), &g));
    if (g && qr_tokenizer_load_gguf(g, &t) == 0) {
        CHECK_INT(qr_tokenizer_n_vocab(t), 30522);
        CHECK_INT(qr_tokenizer_find(t, "[CLS]"), 101);
        CHECK_INT(qr_tokenizer_find(t, "[SEP]"), 102);
        CHECK_INT(qr_tokenizer_pad(t), 0);
        CHECK(qr_tokenizer_is_special(t, 101));
        CHECK(!qr_tokenizer_is_special(t, 2000));
        /* WordPiece form restored: "▁the" is "the", a bare piece is a "##" continuation. */
        CHECK(qr_tokenizer_piece(t, 1996) && strcmp(qr_tokenizer_piece(t, 1996), "the") == 0);
        CHECK(qr_tokenizer_piece(t, 2075) && strcmp(qr_tokenizer_piece(t, 2075), "##ing") == 0);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(qr_tokenize(t, "Hello [SEP] world", 17, false, &ids, &n));
        CHECK(n == 3 && ids[1] == 102);
        char *s = NULL;
        if (ids)
            CHECK_OK(qr_detokenize(t, ids, n, true, &s));
        CHECK_MSG(s && strcmp(s, "hello world") == 0, "\"%s\"", s ? s : "(null)");
        free(s);
        free(ids);
    }
    qr_tokenizer_free(t);
    qr_gguf_close(g);

    g = NULL;
    t = NULL;
    CHECK_OK(qr_gguf_open(FIXTURE("models/vocab-fixtures/ggml-vocab-gpt-2.gguf"), &g));
    if (g && qr_tokenizer_load_gguf(g, &t) == 0) {
        CHECK_INT(qr_tokenizer_n_vocab(t), 50257);
        CHECK_INT(qr_tokenizer_eos(t), 50256);
        CHECK_INT(qr_tokenizer_find(t, "<|endoftext|>"), 50256);
        CHECK(qr_tokenizer_is_special(t, 50256));
        const char *txt = "Hello world<|endoftext|> caf\xc3\xa9 \xf0\x9f\xa6\x99";
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(qr_tokenize(t, txt, strlen(txt), false, &ids, &n));
        char *s = NULL;
        if (ids)
            CHECK_OK(qr_detokenize(t, ids, n, false, &s));
        CHECK_MSG(s && strcmp(s, txt) == 0, "\"%s\"", s ? s : "(null)");
        free(s);
        free(ids);
    }
    qr_tokenizer_free(t);
    qr_gguf_close(g);
}

int main(void)
{
    const int32_t llama_bos[] = {1}, bert_cls[] = {101}, bert_sep[] = {102};
    run_cases("bert-bge", FIXTURE("models/vocab-fixtures/ggml-vocab-bert-bge.gguf"), "ggml-vocab-bert-bge.gguf",
              bert_cls, 1, bert_sep, 1);
    /* GPT-2 adds no special tokens (no add_bos_token key; the HF tokenizer adds none). */
    run_cases("gpt-2", FIXTURE("models/vocab-fixtures/ggml-vocab-gpt-2.gguf"), "ggml-vocab-gpt-2.gguf", NULL, 0,
              NULL, 0);
    run_cases("llama-spm", FIXTURE("models/vocab-fixtures/ggml-vocab-llama-spm.gguf"), "ggml-vocab-llama-spm.gguf",
              llama_bos, 1, NULL, 0);
    check_same_vocab(FIXTURE("models/tiny-random-llama-2/llama-2-tiny-random.gguf"),
                     FIXTURE("models/vocab-fixtures/ggml-vocab-llama-spm.gguf"));
    run_cases("tiny-random-llama-2", FIXTURE("models/tiny-random-llama-2/llama-2-tiny-random.gguf"),
              "ggml-vocab-llama-spm.gguf", llama_bos, 1, NULL, 0);
    check_stories();
    check_props();
    return qr_test_done();
}
