/* quire's Unicode handling in normalizers and pre-tokenizers against Hugging Face
 * `tokenizers` over every code point: tests/fixtures/tokenizer/unicode_hf.json
 * (tools/tokenizer/gen_unicode_fixture.py) holds, per component (BertNormalizer and its
 * parts, NFD, Lowercase, StripAccents, BertPreTokenizer, Punctuation, WhitespaceSplit) and
 * per region of 4096 consecutive code points (one string, surrogates left out), the FNV-1a
 * 64 hash of HF's output. quire loads the same stub tokenizer.json and must hash the same
 * in every region; single_word: an added token after every code point. A mismatch names the region; the generator's --show prints HF's output. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/tokenizer/tok_internal.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/unit/test.h"

static uint64_t fnv1a64(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h;
}

/* UTF-8 of code points lo..hi-1, surrogates left out. */
static size_t region_utf8(uint32_t lo, uint32_t hi, char *buf)
{
    size_t n = 0;
    for (uint32_t c = lo; c < hi; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        if (c < 0x80) {
            buf[n++] = (char)c;
        } else if (c < 0x800) {
            buf[n++] = (char)(0xC0 | c >> 6);
            buf[n++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            buf[n++] = (char)(0xE0 | c >> 12);
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | c >> 18);
            buf[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return n;
}

int main(void)
{
    json_error_t jerr;
    json_t *fx = json_load_file(FIXTURE("tokenizer/unicode_hf.json"), 0, &jerr);
    CHECK_MSG(fx != NULL, "unicode_hf.json: %s", jerr.text);
    if (!fx)
        return qr_test_done();
    size_t region = (size_t)json_integer_value(json_object_get(fx, "region"));
    size_t n_regions = (size_t)json_integer_value(json_object_get(fx, "n_regions"));
    CHECK(region > 0 && region * n_regions == 0x110000);
    char *buf = malloc(4 * region + 1);
    char tmp[] = "/tmp/quire_tok_unicodeXXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0 && buf);
    if (fd < 0 || !buf)
        return qr_test_done();
    close(fd);
    size_t k;
    json_t *cfg;
    json_array_foreach(json_object_get(fx, "configs"), k, cfg) {
        const char *name = json_string_value(json_object_get(cfg, "name"));
        json_t *hashes = json_object_get(cfg, "hashes");
        CHECK_INT(json_array_size(hashes), n_regions);
        CHECK(json_dump_file(json_object_get(cfg, "tokenizer"), tmp, 0) == 0);
        qr_tokenizer *t = NULL;
        CHECK_OK(qr_tokenizer_load_json(tmp, &t));
        if (!t || json_array_size(hashes) != n_regions)
            continue;
        json_t *tj = json_object_get(cfg, "tokenizer");
        bool pre = !json_is_null(json_object_get(tj, "pre_tokenizer"));
        bool added = !pre && json_is_null(json_object_get(tj, "normalizer")); /* single_word */
        qr_tok_buf out = {0};
        qr_tok_pieces pieces = {0};
        int bad = 0;
        for (size_t r = 0; r < n_regions; r++) {
            size_t n = region_utf8((uint32_t)(r * region), (uint32_t)((r + 1) * region), buf);
            uint64_t h = 0xCBF29CE484222325ull;
            if (added) {
                /* every code point followed by "Q " (Q: a single_word added token) */
                qr_tok_buf q = {0};
                for (size_t i = 0; i < n;) {
                    uint32_t cp;
                    size_t cl = (size_t)qr_tok_utf8_next(buf + i, n - i, &cp);
                    CHECK_OK(qr_tok_buf_put(&q, buf + i, cl));
                    CHECK_OK(qr_tok_buf_put(&q, "Q ", 2));
                    i += cl;
                }
                int32_t *ids = NULL;
                size_t nid = 0;
                CHECK_OK(qr_tokenize(t, q.p, q.n, false, &ids, &nid));
                for (size_t i = 0; i < nid; i++) {
                    char num[16];
                    int k = snprintf(num, sizeof num, i ? ",%d" : "%d", (int)ids[i]);
                    h = fnv1a64(h, num, (size_t)k);
                }
                free(ids);
                qr_tok_buf_free(&q);
            } else if (pre) {
                CHECK_OK(qr_tok_pretokenize(t, buf, n, true, &pieces));
                for (size_t i = 0; i < pieces.n; i++) {
                    if (i)
                        h = fnv1a64(h, "", 1);
                    h = fnv1a64(h, pieces.text.p + pieces.v[i].off, pieces.v[i].len);
                }
            } else {
                CHECK_OK(qr_tok_normalize(t, buf, n, &out));
                h = fnv1a64(h, out.p ? out.p : "", out.n);
            }
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
            const char *want = json_string_value(json_array_get(hashes, r));
            if (!want || strcmp(hex, want) != 0) {
                if (bad++ < 8)
                    fprintf(stderr, "[%s] code points U+%04zX..U+%04zX differ from HF (region %zu: "
                            "tools/tokenizer/gen_unicode_fixture.py --show %zu %s)\n",
                            name, r * region, (r + 1) * region - 1, r, r, name);
            }
        }
        CHECK_MSG(bad == 0, "%s: %d of %zu regions differ", name, bad, n_regions);
        printf("%s: %zu regions, %d differ\n", name, n_regions, bad);
        qr_tok_buf_free(&out);
        qr_tok_pieces_free(&pieces);
        qr_tokenizer_free(t);
    }
    unlink(tmp);
    free(buf);
    json_decref(fx);
    return qr_test_done();
}
