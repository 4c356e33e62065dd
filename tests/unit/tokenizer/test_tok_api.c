/* Tokenizer API behaviour: special tokens and ids (values from the tokenizer files and
 * Hugging Face's published BERT ids), decoding, the documented invalid-UTF-8 policy (the
 * ids of invalid bytes equal those of the same text with U+FFFD written explicitly), input
 * limits, error codes for unsupported / malformed / missing files, loading by directory
 * and by .gguf path, very long words, and concurrent use of one tokenizer. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "test.h"

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static bool tok_eq(const qr_tokenizer *t, const char *s, size_t len, bool sp, const int32_t *want, size_t nw)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = qr_tokenize(t, s, len, sp, &ids, &n);
    bool ok = rc == 0 && ids_eq(ids, n, want, nw);
    if (!ok) {
        fprintf(stderr, "  \"%.*s\" -> rc %d:", (int)len, s, rc);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

/* ids(a) == ids(b) */
static bool same_tokens(const qr_tokenizer *t, const char *a, size_t la, const char *b)
{
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool ok = qr_tokenize(t, a, la, false, &x, &nx) == 0 && qr_tokenize(t, b, strlen(b), false, &y, &ny) == 0 &&
              ids_eq(x, nx, y, ny);
    free(x);
    free(y);
    return ok;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

typedef struct {
    const qr_tokenizer *t;
    int bad;
} thread_arg;

static const char *const thread_texts[] = {
    "The quick brown fox jumps over the lazy dog.", "naïve café résumé", "日本語のテキストです。",
    "def f(x):\n    return x ** 2  # square", "1234567890 3.14159 -42", "emoji 🙂👍🏽 and more",
};

static void *worker(void *p)
{
    thread_arg *a = p;
    for (int rep = 0; rep < 300; rep++)
        for (size_t k = 0; k < sizeof thread_texts / sizeof *thread_texts; k++) {
            char buf[256];
            /* vary the words so the cache keeps changing */
            snprintf(buf, sizeof buf, "%s w%d", thread_texts[k], rep % 37);
            int32_t *ids = NULL;
            size_t n = 0;
            if (qr_tokenize(a->t, buf, strlen(buf), false, &ids, &n) != 0) {
                a->bad++;
                continue;
            }
            char *back = NULL;
            if (qr_detokenize(a->t, ids, n, false, &back) != 0 || strcmp(back, buf) != 0)
                a->bad++;
            free(back);
            free(ids);
        }
    return NULL;
}

int main(void)
{
    qr_tokenizer *bert = NULL, *llama3 = NULL, *qwen = NULL, *gg = NULL;
    CHECK_OK(qr_tokenizer_load(FIXTURE("models/all-MiniLM-L6-v2-tokenizer"), &bert));
    CHECK_OK(qr_tokenizer_load(FIXTURE("models/llama3-tokenizer"), &llama3));
    CHECK_OK(qr_tokenizer_load_json(FIXTURE("models/qwen2.5-tokenizer/tokenizer.json"), &qwen));
    if (!bert || !llama3 || !qwen)
        return qr_test_done();

    /* BERT: [CLS] hello , world ! [SEP] (bert-base-uncased ids) */
    static const int32_t hw[] = {101, 7592, 1010, 2088, 999, 102};
    CHECK(tok_eq(bert, "Hello, world!", 13, true, hw, 6));
    CHECK(tok_eq(bert, "Hello, world!", 13, false, hw + 1, 4));
    static const int32_t cls_sep[] = {101, 102};
    CHECK(tok_eq(bert, "", 0, true, cls_sep, 2));
    CHECK(tok_eq(bert, "", 0, false, NULL, 0));
    CHECK_INT(qr_tokenizer_n_vocab(bert), 30522);
    CHECK_INT(qr_tokenizer_pad(bert), 0);
    CHECK_INT(qr_tokenizer_find(bert, "[MASK]"), 103);
    CHECK_INT(qr_tokenizer_find(bert, "hello"), 7592);
    CHECK_INT(qr_tokenizer_find(bert, "no-such-token"), -1);
    CHECK(qr_tokenizer_is_special(bert, 101) && qr_tokenizer_is_special(bert, 0));
    CHECK(!qr_tokenizer_is_special(bert, 7592) && !qr_tokenizer_is_special(bert, -1));
    CHECK(qr_tokenizer_piece(bert, 7592) && strcmp(qr_tokenizer_piece(bert, 7592), "hello") == 0);
    CHECK(qr_tokenizer_piece(bert, 30522) == NULL);
    char *txt = NULL;
    CHECK_OK(qr_detokenize(bert, hw, 6, true, &txt));
    CHECK(txt && strcmp(txt, "hello, world!") == 0);
    free(txt);
    txt = NULL;
    CHECK_OK(qr_detokenize(bert, hw, 6, false, &txt));
    CHECK(txt && strcmp(txt, "[CLS] hello, world! [SEP]") == 0);
    free(txt);

    /* Llama-3: BOS from the template; ids from ggml-vocab-llama-bpe ("Hello world") */
    static const int32_t l3[] = {128000, 9906, 1917};
    CHECK(tok_eq(llama3, "Hello world", 11, true, l3, 3));
    CHECK_INT(qr_tokenizer_bos(llama3), 128000);
    CHECK_INT(qr_tokenizer_eos(llama3), 128001);
    txt = NULL;
    CHECK_OK(qr_detokenize(llama3, l3, 3, true, &txt));
    CHECK(txt && strcmp(txt, "Hello world") == 0);
    free(txt);
    txt = NULL;
    CHECK_OK(qr_detokenize(llama3, l3, 3, false, &txt));
    CHECK(txt && strcmp(txt, "<|begin_of_text|>Hello world") == 0);
    free(txt);
    /* special tokens in text are matched as such */
    static const int32_t l3sp[] = {128000, 9906, 128009};
    CHECK(tok_eq(llama3, "<|begin_of_text|>Hello<|eot_id|>", 32, false, l3sp, 3));

    /* Qwen2.5: specials from tokenizer_config.json (bos null, eos <|im_end|>, pad <|endoftext|>) */
    CHECK_INT(qr_tokenizer_bos(qwen), -1);
    CHECK_INT(qr_tokenizer_eos(qwen), 151645);
    CHECK_INT(qr_tokenizer_pad(qwen), 151643);

    /* Invalid UTF-8: each maximal invalid subsequence is one U+FFFD. */
    CHECK(same_tokens(qwen, "a\xC3(", 3, "a\xEF\xBF\xBD("));
    CHECK(same_tokens(qwen, "\xF0\x9F\x98", 3, "\xEF\xBF\xBD"));                                /* truncated */
    CHECK(same_tokens(qwen, "\xED\xA0\x80x", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"));       /* surrogate */
    CHECK(same_tokens(qwen, "\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"));                         /* overlong */
    CHECK(same_tokens(qwen, "\xFF\xFE hi", 5, "\xEF\xBF\xBD\xEF\xBF\xBD hi"));
    CHECK(same_tokens(bert, "caf\xE9 ok", 7, "caf\xEF\xBF\xBD ok"));
    CHECK(!same_tokens(qwen, "\xF0\x9F\x98\x80", 4, "\xEF\xBF\xBD"));                          /* valid emoji */
    CHECK(same_tokens(qwen, "a\0b", 3, "a\xEF\xBF\xBD" "b") == false);                         /* NUL is text */

    /* Limits and errors */
    {
        static const char small[16];
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_INT(qr_tokenize(qwen, small, ((size_t)64 << 20) + 1, false, &ids, &n), QR_ELIMIT);
        CHECK(ids == NULL);
        CHECK_INT(qr_tokenize(qwen, NULL, 5, false, &ids, &n), QR_EINVAL);
        /* one 5 MiB pre-token (byte-level BPE splits nothing in a run of letters) */
        size_t wl = (size_t)5 << 20;
        char *w = malloc(wl);
        memset(w, 'q', wl);
        CHECK_INT(qr_tokenize(qwen, w, wl, false, &ids, &n), QR_ELIMIT);
        CHECK(ids == NULL);
        free(w);
    }
    qr_tokenizer *bad = NULL;
    CHECK_INT(qr_tokenizer_load(FIXTURE("models/no-such-dir"), &bad), QR_ENOTFOUND);
    /* a model directory with neither tokenizer.json nor vocab.txt (its vocabulary is in the GGUF) */
    CHECK_INT(qr_tokenizer_load(FIXTURE("models/stories260K"), &bad), QR_ENOTFOUND);
    char dir[] = "/tmp/quire_tok_apiXXXXXX";
    if (mkdtemp(dir)) {
        char p[256];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        CHECK(write_file(p, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}") == 0);
        CHECK_INT(qr_tokenizer_load(dir, &bad), QR_EUNSUPPORTED);
        CHECK(strstr(qr_last_error(), "Unigram") && strstr(qr_last_error(), p));
        CHECK(write_file(p, "{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": \"WordPiece\", "
                            "\"vocab\": {\"[UNK]\": 0, \"a\": 1}}}") == 0);
        CHECK_INT(qr_tokenizer_load_json(p, &bad), QR_EUNSUPPORTED);
        CHECK(strstr(qr_last_error(), "normalizer") && strstr(qr_last_error(), "Precompiled"));
        CHECK(write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}") == 0);
        CHECK_INT(qr_tokenizer_load_json(p, &bad), QR_EFORMAT); /* merge part not in vocab */
        CHECK(write_file(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, ") == 0);
        CHECK_INT(qr_tokenizer_load_json(p, &bad), QR_EFORMAT); /* truncated JSON */
        CHECK(write_file(p, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}") == 0);
        CHECK_INT(qr_tokenizer_load_json(p, &bad), QR_EFORMAT); /* [UNK] missing */
        CHECK(write_file(p, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"a\": 1}}, "
                            "\"post_processor\": {\"type\": \"BertProcessing\", \"sep\": [\"x\", 7], "
                            "\"cls\": [\"y\", 1]}}") == 0);
        CHECK_INT(qr_tokenizer_load_json(p, &bad), QR_EFORMAT); /* special id out of range */
        CHECK(bad == NULL);

        /* Every truncation and 2000 random byte mutations of a small tokenizer.json load
         * or fail cleanly (run under ASan in the sanitizer job), and what loads encodes. */
        static const char good[] =
            "{\"added_tokens\": [{\"id\": 0, \"content\": \"[UNK]\", \"special\": true}, "
            "{\"id\": 4, \"content\": \"[CLS]\", \"special\": true, \"lstrip\": true}],"
            "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, "
            "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\d\"}, \"content\": \"a\"}]},"
            "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\"},"
            "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\"}}, "
            "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"[CLS]\": {\"ids\": [4]}}},"
            "\"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\"},"
            "\"model\": {\"type\": \"BPE\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \"[CLS]\": 4}, "
            "\"merges\": [\"a b\"]}}";
        CHECK_OK(write_file(p, good));
        CHECK_OK(qr_tokenizer_load_json(p, &bad));
        static const int32_t good_ids[] = {4, 3, 3, 0, 1}; /* HF tokenizers 0.23.2 on this file */
        if (bad)
            CHECK(tok_eq(bad, "ab 1b c a", 9, true, good_ids, 5));
        qr_tokenizer_free(bad);
        bad = NULL;
        size_t glen = strlen(good);
        char *m = malloc(glen + 1);
        unsigned seed = 12345;
        int loaded = 0;
        for (size_t k = 0; k < glen + 2000; k++) {
            memcpy(m, good, glen + 1);
            if (k < glen) {
                m[k] = '\0';
            } else {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % glen;
                seed = seed * 1103515245u + 12345u;
                m[at] = (char)(seed >> 16);
            }
            if (write_file(p, m) != 0)
                continue;
            qr_tokenizer *x = NULL;
            int rc = qr_tokenizer_load_json(p, &x);
            if (rc == 0) {
                int32_t *ids = NULL;
                size_t n = 0;
                char *d = NULL;
                loaded++;
                static const char probe[] = "ab 1b [CLS]c a\xff";
                if (qr_tokenize(x, probe, sizeof probe - 1, true, &ids, &n) == 0 &&
                    qr_detokenize(x, ids, n, false, &d) == 0)
                    free(d);
                free(ids);
            } else {
                CHECK(x == NULL && rc < 0);
            }
            qr_tokenizer_free(x);
        }
        CHECK(loaded > 0);
        free(m);
        unlink(p);
        rmdir(dir);
    }

    /* .gguf path: the bge vocabulary gives the same WordPiece ids as MiniLM's tokenizer.json */
    CHECK_OK(qr_tokenizer_load(FIXTURE("models/vocab-fixtures/ggml-vocab-bert-bge.gguf"), &gg));
    if (gg) {
        CHECK(tok_eq(gg, "Hello, world!", 13, false, hw + 1, 4));
        qr_tokenizer_free(gg);
    }

    /* Very long words stay linear: 2 MB without any pre-token boundary. */
    {
        size_t n = 2u << 20;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            big[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
        big[n] = '\0';
        qr_tokenizer *l2 = NULL;
        CHECK_OK(qr_tokenizer_load_json(FIXTURE("tokenizer/llama2-tokenizer.json"), &l2));
        const qr_tokenizer *ts[] = {l2, qwen, bert};
        for (int k = 0; k < 3; k++) {
            if (!ts[k])
                continue;
            clock_t c0 = clock();
            int32_t *ids = NULL;
            size_t nid = 0;
            CHECK_OK(qr_tokenize(ts[k], big, n, false, &ids, &nid));
            double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
            CHECK_MSG(s < 10.0, "tokenizer %d: 2 MB word took %.1f s", k, s);
            CHECK(nid > 0);
            if (k < 2) { /* BPE with byte fallback / byte-level: lossless */
                char *back = NULL;
                CHECK_OK(qr_detokenize(ts[k], ids, nid, false, &back));
                const char *b = back ? back : "";
                if (k == 0 && *b == ' ')
                    b++; /* SentencePiece decoding drops the prepended space only once */
                CHECK(back && strcmp(b, big) == 0);
                free(back);
            }
            free(ids);
        }
        qr_tokenizer_free(l2);
        free(big);
    }

    /* Concurrency: one tokenizer, four threads, lossless round trips throughout. */
    {
        pthread_t th[4];
        thread_arg a[4];
        for (int i = 0; i < 4; i++) {
            a[i] = (thread_arg){qwen, 0};
            pthread_create(&th[i], NULL, worker, &a[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK_INT(a[i].bad, 0);
        }
    }

    qr_tokenizer_free(bert);
    qr_tokenizer_free(llama3);
    qr_tokenizer_free(qwen);
    qr_tokenizer_free(NULL);
    return qr_test_done();
}
