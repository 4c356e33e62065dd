/* Compares qr_tokenize (no special tokens) with llama.cpp's reference vocab fixtures:
 * argv[1] = tokenizer.json (relative to tests/fixtures), argv[2] = fixture stem under
 * tests/fixtures/models/vocab-fixtures. The .inp file holds the test strings, each followed
 * by a line "__ggml_vocab_test__"; line i of the .out file holds the expected ids of
 * string i, space-separated (produced by Hugging Face tokenizers, independent of us).
 * (The MiniLM vocab.txt equals the bert-bge GGUF token list once GGUF's "▁word" / "suffix"
 * spelling is mapped back to "word" / "##suffix", checked when this test was written.)
 * Each case is also decoded back and, for byte-level BPE (lossless), must round-trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "test.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON FIXTURE_STEM [roundtrip]\n", argv[0]);
        return 2;
    }
    bool roundtrip = argc > 3 && strcmp(argv[3], "roundtrip") == 0;
    char inp_path[1024], out_path[1024];
    snprintf(inp_path, sizeof inp_path, "models/vocab-fixtures/%s.inp", argv[2]);
    snprintf(out_path, sizeof out_path, "models/vocab-fixtures/%s.out", argv[2]);
    size_t ilen, olen;
    char *inp = qr_test_slurp(FIXTURE(inp_path), &ilen), *outp = qr_test_slurp(FIXTURE(out_path), &olen);
    CHECK(inp && outp);
    qr_tokenizer *t = NULL;
    CHECK_OK(qr_tokenizer_load(FIXTURE(argv[1]), &t));
    if (!inp || !outp || !t)
        return qr_test_done();

    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *ip = inp, *op = outp;
    int cases = 0, exact = 0;
    for (;;) {
        char *end = strstr(ip, sep);
        if (!end)
            break;
        char *oend = strchr(op, '\n');
        CHECK(oend != NULL);
        if (!oend)
            break;
        *oend = '\0';
        int32_t want[4096];
        size_t nw = 0;
        for (char *q = op; *q;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q)
                break;
            want[nw++] = (int32_t)v;
            q = e;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(qr_tokenize(t, ip, (size_t)(end - ip), false, &ids, &n));
        bool same = n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        CHECK_MSG(same, "case %d \"%.*s\": got %zu ids, want %zu", cases, (int)(end - ip), ip, n, nw);
        if (!same) {
            fprintf(stderr, "  got: ");
            for (size_t k = 0; k < n; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n  want:");
            for (size_t k = 0; k < nw; k++)
                fprintf(stderr, " %d", want[k]);
            fprintf(stderr, "\n");
        }
        exact += same;
        if (roundtrip) {
            char *txt = NULL;
            CHECK_OK(qr_detokenize(t, ids, n, false, &txt));
            CHECK_MSG(txt && strlen(txt) == (size_t)(end - ip) && memcmp(txt, ip, (size_t)(end - ip)) == 0,
                      "case %d does not round-trip: \"%s\"", cases, txt ? txt : "(null)");
            free(txt);
        }
        free(ids);
        cases++;
        ip = end + sizeof sep - 1;
        op = oend + 1;
    }
    CHECK(cases >= 40);
    printf("%s on %s: %d/%d cases exact\n", argv[1], argv[2], exact, cases);
    qr_tokenizer_free(t);
    free(inp);
    free(outp);
    return qr_test_done();
}
