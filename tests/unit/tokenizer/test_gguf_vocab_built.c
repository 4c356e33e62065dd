/* qr_tokenizer_load_gguf on small hand-built GGUF files: the score-based SentencePiece
 * rules (highest score first, leftmost on ties, byte fallback, space prefix per segment),
 * token types (control = special added token, user-defined = plain added token, matched in
 * the text), add_bos/add_eos flags, a BERT vocabulary already in "##" form, and the errors
 * for missing or malformed keys. Expected ids are worked out by hand from those rules. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/weights/gguf.h"
#include "tests/unit/test.h"

/* ---- a minimal GGUF v3 writer (metadata only, no tensors) ------------------------------ */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} wbuf;

static void put(wbuf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_s(wbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_str(wbuf *b, const char *k, const char *v)
{
    put_s(b, k);
    put_u32(b, 8);
    put_s(b, v);
    b->n_kv++;
}
static void kv_u32(wbuf *b, const char *k, uint32_t v)
{
    put_s(b, k);
    put_u32(b, 4);
    put_u32(b, v);
    b->n_kv++;
}
static void kv_bool(wbuf *b, const char *k, bool v)
{
    unsigned char c = v;
    put_s(b, k);
    put_u32(b, 7);
    put(b, &c, 1);
    b->n_kv++;
}
static void kv_strs(wbuf *b, const char *k, const char *const *v, size_t n)
{
    put_s(b, k);
    put_u32(b, 9);
    put_u32(b, 8);
    put_u64(b, n);
    for (size_t i = 0; i < n; i++)
        put_s(b, v[i]);
    b->n_kv++;
}
static void kv_f32s(wbuf *b, const char *k, const float *v, size_t n)
{
    put_s(b, k);
    put_u32(b, 9);
    put_u32(b, 6);
    put_u64(b, n);
    put(b, v, n * 4);
    b->n_kv++;
}
static void kv_i32s(wbuf *b, const char *k, const int32_t *v, size_t n)
{
    put_s(b, k);
    put_u32(b, 9);
    put_u32(b, 5);
    put_u64(b, n);
    put(b, v, n * 4);
    b->n_kv++;
}

static char g_path[64];

/* Writes header + b's key/values to a temp file and loads its tokenizer. */
static int load(wbuf *b, qr_tokenizer **t)
{
    snprintf(g_path, sizeof g_path, "/tmp/quire_vocab_XXXXXX");
    int fd = mkstemp(g_path);
    if (fd < 0)
        return -100;
    FILE *f = fdopen(fd, "wb");
    uint32_t v = 3;
    uint64_t zero = 0;
    fwrite("GGUF", 1, 4, f);
    fwrite(&v, 4, 1, f);
    fwrite(&zero, 8, 1, f);
    fwrite(&b->n_kv, 8, 1, f);
    fwrite(b->p, 1, b->n, f);
    fclose(f);
    qr_gguf *g = NULL;
    int rc = qr_gguf_open(g_path, &g);
    if (rc == 0)
        rc = qr_tokenizer_load_gguf(g, t);
    qr_gguf_close(g);
    unlink(g_path);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}

static bool ids_are(const qr_tokenizer *t, const char *text, bool special, const int32_t *want, size_t n)
{
    int32_t *got = NULL;
    size_t ng = 0;
    int rc = qr_tokenize(t, text, strlen(text), special, &got, &ng);
    bool ok = rc == 0 && ng == n && (n == 0 || memcmp(got, want, n * sizeof *got) == 0);
    if (!ok) {
        fprintf(stderr, "  \"%s\" (special %d): rc %d, got", text, special, rc);
        for (size_t i = 0; i < ng; i++)
            fprintf(stderr, " %d", got[i]);
        fputc('\n', stderr);
    }
    free(got);
    return ok;
}

#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

/* A tiny SentencePiece vocabulary. Scores make "bc" (-1) beat "ab" (-5) on "abc", and the
 * two equal-score pairs of "xyx" ("xy", "yx" at -2) resolve to the leftmost. */
static const char *const spm_tokens[] = {
    "<unk>", "<s>", "</s>", "<0x63>", "\xe2\x96\x81", "a", "b", "c", "ab", "bc",
    "x", "y", "xy", "yx", "\xe2\x96\x81" "a", "<tool>", "<0x0A>", "\xe2\x96\x81" "x"};
static const float spm_scores[] = {0, 0, 0, 0, -3, -4, -4, -4, -5, -1, -4, -4, -2, -2, -3, 0, 0, -6};
static const int32_t spm_types[] = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 6, 1};
#define N_SPM (sizeof spm_tokens / sizeof *spm_tokens)

static void spm_vocab(wbuf *b, bool with_scores)
{
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", spm_tokens, N_SPM);
    if (with_scores)
        kv_f32s(b, "tokenizer.ggml.scores", spm_scores, N_SPM);
    kv_i32s(b, "tokenizer.ggml.token_type", spm_types, N_SPM);
    kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(b, "tokenizer.ggml.unknown_token_id", 0);
}

static void test_spm(void)
{
    wbuf b = {0};
    qr_tokenizer *t = NULL;
    spm_vocab(&b, true);
    CHECK_OK(load(&b, &t));
    if (!t)
        return;
    /* "▁abc": ▁a (-3) and bc (-1) queued; bc first, then ▁a: [▁a, bc]. */
    CHECK(ids_are(t, "abc", false, IDS(14, 9)));
    /* "▁xyx": ▁x (-6), xy (-2), yx (-2): tie → leftmost xy; then ▁ + xy? not a piece: [▁, xy, x]. */
    CHECK(ids_are(t, "xyx", false, IDS(4, 12, 10)));
    /* Byte fallback: "\n" has <0x0A>; "d" has no byte piece → <unk>. "c" alone is a piece. */
    CHECK(ids_are(t, "a\nd", false, IDS(14, 16, 0)));
    /* A user-defined token splits the text; each segment gets its own space prefix. The
     * control token <s> in the text is the BOS id. */
    CHECK(ids_are(t, "a<tool>a", false, IDS(14, 15, 14)));
    CHECK(ids_are(t, "<s>a", false, IDS(1, 14)));
    CHECK(!qr_tokenizer_is_special(t, 15));
    CHECK(qr_tokenizer_is_special(t, 1));
    /* Defaults: add_bos true, add_eos false. */
    CHECK(ids_are(t, "a", true, IDS(1, 14)));
    CHECK(ids_are(t, "", true, IDS(1)));
    CHECK(ids_are(t, "", false, NULL, 0));
    char *s = NULL;
    CHECK_OK(qr_detokenize(t, IDS(1, 14, 9, 16, 15, 14), true, &s));
    CHECK_MSG(s && strcmp(s, "abc\n<tool> a") == 0, "\"%s\"", s ? s : "(null)");
    free(s);
    qr_tokenizer_free(t);

    /* Flags: no BOS, EOS, no space prefix. */
    t = NULL;
    spm_vocab(&b, true);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", false);
    kv_bool(&b, "tokenizer.ggml.add_eos_token", true);
    kv_bool(&b, "tokenizer.ggml.add_space_prefix", false);
    CHECK_OK(load(&b, &t));
    if (t) {
        CHECK(ids_are(t, "abc", true, IDS(5, 9, 2)));
        CHECK(ids_are(t, " abc", false, IDS(14, 9)));
    }
    qr_tokenizer_free(t);

    /* The llama tokenizer needs scores. */
    t = NULL;
    spm_vocab(&b, false);
    int rc = load(&b, &t);
    CHECK_MSG(rc == QR_ENOTFOUND && strstr(qr_last_error(), "tokenizer.ggml.scores"), "rc %d: %s", rc, qr_last_error());
    CHECK(t == NULL);
}

static const char *const bpe_tokens[] = {"a", "b", "c", "\xc4\xa0", "ab", "\xc4\xa0" "ab", "<|end|>", "<|user|>"};
static const int32_t bpe_types[] = {1, 1, 1, 1, 1, 1, 3, 4};
static const char *const bpe_merges[] = {"a b", "\xc4\xa0 ab"};

static void bpe_vocab(wbuf *b, const char *pre, const char *const *merges, size_t n_merges)
{
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    if (pre)
        kv_str(b, "tokenizer.ggml.pre", pre);
    kv_strs(b, "tokenizer.ggml.tokens", bpe_tokens, 8);
    kv_i32s(b, "tokenizer.ggml.token_type", bpe_types, 8);
    kv_strs(b, "tokenizer.ggml.merges", merges, n_merges);
    kv_u32(b, "tokenizer.ggml.bos_token_id", 6);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 6);
}

static void test_bpe(void)
{
    wbuf b = {0};
    qr_tokenizer *t = NULL;
    bpe_vocab(&b, "gpt-2", bpe_merges, 2);
    CHECK_OK(load(&b, &t));
    if (t) {
        CHECK(ids_are(t, "ab ab<|end|>c<|user|>", false, IDS(4, 5, 6, 2, 7)));
        /* No add_bos_token key: GPT-2 adds nothing. */
        CHECK(ids_are(t, "ab", true, IDS(4)));
        CHECK(qr_tokenizer_is_special(t, 6));
        CHECK(!qr_tokenizer_is_special(t, 7));
    }
    qr_tokenizer_free(t);

    /* Llama-3 pre-tokenizer: BOS by default. */
    t = NULL;
    bpe_vocab(&b, "llama-bpe", bpe_merges, 2);
    CHECK_OK(load(&b, &t));
    if (t)
        CHECK(ids_are(t, "ab", true, IDS(6, 4)));
    qr_tokenizer_free(t);

    t = NULL;
    bpe_vocab(&b, "tekken", bpe_merges, 2);
    int rc = load(&b, &t);
    CHECK_MSG(rc == QR_EUNSUPPORTED && strstr(qr_last_error(), "tekken"), "rc %d: %s", rc, qr_last_error());

    static const char *const bad_merges[] = {"a b", "b c"}; /* "bc" is not a piece */
    bpe_vocab(&b, NULL, bad_merges, 2);
    rc = load(&b, &t);
    CHECK_MSG(rc == QR_EFORMAT && strstr(qr_last_error(), "merges[1]"), "rc %d: %s", rc, qr_last_error());

    static const char *const no_space[] = {"ab"};
    bpe_vocab(&b, NULL, no_space, 1);
    rc = load(&b, &t);
    CHECK_MSG(rc == QR_EFORMAT && strstr(qr_last_error(), "merges[0]"), "rc %d: %s", rc, qr_last_error());
    CHECK(t == NULL);
}

static void test_bert_hash_form(void)
{
    static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##lo", "hel", "!"};
    static const int32_t types[] = {3, 3, 3, 3, 1, 1, 1, 1};
    wbuf b = {0};
    qr_tokenizer *t = NULL;
    kv_str(&b, "tokenizer.ggml.model", "bert");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 8);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, 8);
    kv_u32(&b, "tokenizer.ggml.unknown_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.cls_token_id", 2);
    kv_u32(&b, "tokenizer.ggml.seperator_token_id", 3);
    kv_u32(&b, "tokenizer.ggml.padding_token_id", 0);
    CHECK_OK(load(&b, &t));
    if (t) {
        /* Lowercased, punctuation split, longest-first WordPiece, unknown words → [UNK]. */
        CHECK(ids_are(t, "HELLOlo! helx", false, IDS(4, 5, 7, 1)));
        CHECK(ids_are(t, "hello", true, IDS(2, 4, 3)));
        CHECK_INT(qr_tokenizer_pad(t), 0);
    }
    qr_tokenizer_free(t);
}

static void test_errors(void)
{
    wbuf b = {0};
    qr_tokenizer *t = NULL;
    kv_str(&b, "general.architecture", "llama");
    int rc = load(&b, &t);
    CHECK_MSG(rc == QR_ENOTFOUND && strstr(qr_last_error(), "tokenizer.ggml.model"), "rc %d: %s", rc, qr_last_error());

    kv_str(&b, "tokenizer.ggml.model", "rwkv");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, N_SPM);
    rc = load(&b, &t);
    CHECK_MSG(rc == QR_EUNSUPPORTED && strstr(qr_last_error(), "rwkv"), "rc %d: %s", rc, qr_last_error());

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, N_SPM);
    kv_f32s(&b, "tokenizer.ggml.scores", spm_scores, N_SPM);
    kv_i32s(&b, "tokenizer.ggml.token_type", spm_types, N_SPM - 1);
    rc = load(&b, &t);
    CHECK_MSG(rc == QR_EFORMAT && strstr(qr_last_error(), "token_type"), "rc %d: %s", rc, qr_last_error());

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, N_SPM);
    kv_f32s(&b, "tokenizer.ggml.scores", spm_scores, N_SPM - 2);
    rc = load(&b, &t);
    CHECK_MSG(rc == QR_EFORMAT && strstr(qr_last_error(), "scores"), "rc %d: %s", rc, qr_last_error());

    /* An empty piece (seen in real files) is an id without a piece, not an error. */
    static const char *const empty_piece[] = {"<unk>", "", "\xe2\x96\x81" "a"};
    static const float sc[] = {0, 0, 0};
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", empty_piece, 3);
    kv_f32s(&b, "tokenizer.ggml.scores", sc, 3);
    CHECK_OK(load(&b, &t));
    if (t) {
        CHECK_INT(qr_tokenizer_n_vocab(t), 3);
        CHECK(ids_are(t, "a", false, IDS(2)));
    }
    qr_tokenizer_free(t);
    t = NULL;
    CHECK(t == NULL);
}

int main(void)
{
    test_spm();
    test_bpe();
    test_bert_hash_form();
    test_errors();
    return qr_test_done();
}
