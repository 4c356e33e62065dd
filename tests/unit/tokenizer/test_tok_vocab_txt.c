/* A BERT model directory without tokenizer.json: the tokenizer built from vocab.txt +
 * tokenizer_config.json (MiniLM's, linked into a temporary directory) must give the
 * Hugging Face ids of the 10,000-string oracle corpus (tests/fixtures/tokenizer/oracle,
 * minilm.ids, produced by HF tokenizers from MiniLM's tokenizer.json), with and without
 * [CLS] .. [SEP], and decode like it. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "test.h"

static int b64(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int main(void)
{
    char dir[] = "/tmp/quire_tok_vocabXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    CHECK(symlink(FIXTURE("models/all-MiniLM-L6-v2-tokenizer/vocab.txt"), p) == 0);
    snprintf(q, sizeof q, "%s/tokenizer_config.json", dir);
    CHECK(symlink(FIXTURE("models/all-MiniLM-L6-v2-tokenizer/tokenizer_config.json"), q) == 0);
    qr_tokenizer *t = NULL;
    CHECK_OK(qr_tokenizer_load(dir, &t));
    unlink(p);
    unlink(q);
    rmdir(dir);
    if (!t)
        return qr_test_done();
    CHECK_INT(qr_tokenizer_n_vocab(t), 30522);
    CHECK_INT(qr_tokenizer_pad(t), 0);
    CHECK_INT(qr_tokenizer_find(t, "[MASK]"), 103);
    CHECK(qr_tokenizer_is_special(t, 101) && qr_tokenizer_is_special(t, 102) && !qr_tokenizer_is_special(t, 1996));

    FILE *cf = fopen(FIXTURE("tokenizer/oracle/corpus.jsonl"), "rb"), *idf = fopen(FIXTURE("tokenizer/oracle/minilm.ids"), "rb");
    CHECK(cf && idf);
    char *cl = NULL, *il = NULL;
    size_t ccap = 0, icap = 0;
    ssize_t cn, in;
    int n = 0, bad = 0, bad_sp = 0;
    int32_t *want = malloc(1 << 20);
    while (cf && idf && (cn = getline(&cl, &ccap, cf)) > 0 && (in = getline(&il, &icap, idf)) >= 0) {
        json_error_t err;
        json_t *s = json_loadb(cl, (size_t)cn, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        CHECK(s && json_is_string(s));
        if (!s)
            continue;
        if (in > 0 && il[in - 1] == '\n')
            in--;
        size_t nw = (size_t)in / 3;
        for (size_t k = 0; k < nw; k++)
            want[k] = b64(il[3 * k]) * 4096 + b64(il[3 * k + 1]) * 64 + b64(il[3 * k + 2]);
        int32_t *ids = NULL;
        size_t nid = 0;
        CHECK_OK(qr_tokenize(t, json_string_value(s), json_string_length(s), false, &ids, &nid));
        if (nid != nw || (nw && memcmp(ids, want, nw * sizeof *ids) != 0)) {
            if (bad++ < 5)
                fprintf(stderr, "string %d differs: \"%s\"\n", n, json_string_value(s));
        }
        free(ids);
        CHECK_OK(qr_tokenize(t, json_string_value(s), json_string_length(s), true, &ids, &nid));
        bad_sp += !(nid == nw + 2 && ids[0] == 101 && ids[nid - 1] == 102 &&
                    (nw == 0 || memcmp(ids + 1, want, nw * sizeof *ids) == 0));
        free(ids);
        json_decref(s);
        n++;
    }
    CHECK(n >= 10000); /* the corpus: 10,000 generated strings, then the Unicode coverage strings */
    CHECK_INT(bad, 0);
    CHECK_INT(bad_sp, 0);
    printf("vocab.txt tokenizer: %d strings, %d differ without special tokens, %d with\n", n, bad, bad_sp);
    static const int32_t hw[] = {101, 7592, 1010, 2088, 999, 102};
    char *txt = NULL;
    CHECK_OK(qr_detokenize(t, hw, 6, true, &txt));
    CHECK(txt && strcmp(txt, "hello, world!") == 0);
    free(txt);
    free(want);
    free(cl);
    free(il);
    if (cf)
        fclose(cf);
    if (idf)
        fclose(idf);
    qr_tokenizer_free(t);
    return qr_test_done();
}
