/* Tokenizer pipeline components against Hugging Face `tokenizers` (Python, Rust core):
 * tests/fixtures/tokenizer/components.json (tools/tokenizer/gen_components.py) holds
 * tokenizer.json variants (a base file with edited normalizer / pre_tokenizer / model
 * options / added tokens / post_processor / decoder) and, for 158 texts, the ids and
 * decodes HF produced. Each variant is rebuilt here with the same edits, written to a
 * temporary file, loaded with qr_tokenizer_load_json and compared exactly. Variants marked
 * "special_as_text" are encoded with QR_TOK_SPECIAL_AS_TEXT against a reference built
 * without the special added tokens.
 *
 * usage: test_tok_components [VARIANT_PREFIX]  (runs the variants whose name starts so) */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"
#include "test.h"

static json_t *load_base(const json_t *bases, const char *name)
{
    const json_t *b = json_object_get(bases, name);
    const json_t *in = json_object_get(b, "inline");
    if (in)
        return json_deep_copy(in);
    /* base "shared" or "fixtures": both under tests/fixtures now (the ../shared/models
     * files are committed there with the same relative path) */
    const char *rel = json_string_value(json_object_get(b, "path"));
    if (!rel)
        return NULL;
    json_error_t err;
    return json_load_file(FIXTURE(rel), 0, &err);
}

static bool same_ids(const int32_t *got, size_t n, const json_t *want)
{
    if (json_array_size(want) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != got[i])
            return false;
    return true;
}

static void show(const char *what, const int32_t *ids, size_t n, const json_t *want)
{
    fprintf(stderr, "    %s got :", what);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n    %s want:", what);
    for (size_t i = 0; i < json_array_size(want) && i < 40; i++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : "";
    json_error_t err;
    json_t *fx = json_load_file(FIXTURE("tokenizer/components.json"), 0, &err);
    CHECK_MSG(fx != NULL, "components.json: %s", err.text);
    if (!fx)
        return qr_test_done();
    const json_t *bases = json_object_get(fx, "bases"), *texts = json_object_get(fx, "texts");
    const json_t *variants = json_object_get(fx, "variants");
    json_t *cache[8] = {0};
    const char *cache_name[8] = {0};
    size_t vi;
    const json_t *v;
    int n_variants = 0;
    json_array_foreach(variants, vi, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *base = json_string_value(json_object_get(v, "base"));
        if (strncmp(name, only, strlen(only)) != 0)
            continue;
        n_variants++;
        /* base json (cached: the shared files take a while to parse) */
        json_t *bj = NULL;
        for (int k = 0; k < 8; k++)
            if (cache_name[k] && strcmp(cache_name[k], base) == 0)
                bj = cache[k];
        if (!bj) {
            bj = load_base(bases, base);
            for (int k = 0; k < 8; k++)
                if (!cache_name[k]) {
                    cache_name[k] = base;
                    cache[k] = bj;
                    break;
                }
        }
        CHECK_MSG(bj != NULL, "%s: base %s", name, base);
        if (!bj)
            continue;
        json_t *j = json_deep_copy(bj);
        json_object_set_new(j, "truncation", json_null());
        json_object_set_new(j, "padding", json_null());
        const char *key;
        json_t *val;
        json_object_foreach(json_object_get(v, "set"), key, val)
            json_object_set(j, key, val);
        const json_t *keep = json_object_get(v, "model_keep");
        if (keep) { /* reduce the model to the kept keys */
            json_t *m = json_object(), *old = json_object_get(j, "model");
            size_t ki;
            const json_t *kv;
            json_array_foreach(keep, ki, kv) {
                json_t *x = json_object_get(old, json_string_value(kv));
                if (x)
                    json_object_set(m, json_string_value(kv), x);
            }
            json_object_set_new(j, "model", m);
        }
        json_object_foreach(json_object_get(v, "model"), key, val)
            json_object_set(json_object_get(j, "model"), key, val);
        const json_t *added = json_object_get(v, "added");
        if (added)
            json_array_extend(json_object_get(j, "added_tokens"), (json_t *)added);
        char path[] = "/tmp/quire_tok_componentXXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd < 0) {
            json_decref(j);
            continue;
        }
        close(fd);
        CHECK(json_dump_file(j, path, JSON_COMPACT) == 0);
        json_decref(j);
        qr_tokenizer *t = NULL;
        int rc = qr_tokenizer_load_json(path, &t);
        unlink(path);
        CHECK_MSG(rc == 0, "%s: load: %s", name, qr_last_error());
        if (rc)
            continue;
        bool special = json_is_true(json_object_get(v, "special"));
        bool decode = json_is_true(json_object_get(v, "decode"));
        unsigned sat = json_is_true(json_object_get(v, "special_as_text")) ? QR_TOK_SPECIAL_AS_TEXT : 0u;
        int bad = 0, n = 0;
        size_t ci;
        const json_t *c;
        json_array_foreach(json_object_get(v, "cases"), ci, c) {
            const json_t *tx = json_array_get(texts, ci);
            const char *s = json_string_value(tx);
            size_t len = json_string_length(tx);
            int32_t *ids = NULL;
            size_t nid = 0;
            bool ok = true;
            n++;
            CHECK_OK(qr_tokenize_ex(t, s, len, sat, &ids, &nid));
            if (!same_ids(ids, nid, json_object_get(c, "ids"))) {
                ok = false;
                fprintf(stderr, "[%s] text %zu \"%s\": ids differ\n", name, ci, s);
                show("plain", ids, nid, json_object_get(c, "ids"));
            }
            if (decode) {
                char *out = NULL;
                CHECK_OK(qr_detokenize(t, ids, nid, false, &out));
                const char *want = json_string_value(json_object_get(c, "dec"));
                if (!out || !want || strcmp(out, want) != 0) {
                    ok = false;
                    fprintf(stderr, "[%s] text %zu: decode \"%s\", want \"%s\"\n", name, ci, out ? out : "(null)",
                            want ? want : "(null)");
                }
                free(out);
            }
            free(ids);
            if (special) {
                CHECK_OK(qr_tokenize_ex(t, s, len, sat | QR_TOK_ADD_SPECIAL, &ids, &nid));
                if (!same_ids(ids, nid, json_object_get(c, "ids_sp"))) {
                    ok = false;
                    fprintf(stderr, "[%s] text %zu \"%s\": ids with special tokens differ\n", name, ci, s);
                    show("special", ids, nid, json_object_get(c, "ids_sp"));
                }
                if (decode) {
                    char *out = NULL;
                    CHECK_OK(qr_detokenize(t, ids, nid, true, &out));
                    const char *want = json_string_value(json_object_get(c, "dec_sp"));
                    if (!out || !want || strcmp(out, want) != 0) {
                        ok = false;
                        fprintf(stderr, "[%s] text %zu: decode skipping specials \"%s\", want \"%s\"\n", name, ci,
                                out ? out : "(null)", want ? want : "(null)");
                    }
                    free(out);
                }
                free(ids);
            }
            bad += !ok;
        }
        CHECK_MSG(bad == 0, "%s: %d of %d texts differ", name, bad, n);
        printf("%-28s %3d/%d texts identical\n", name, n - bad, n);
        qr_tokenizer_free(t);
    }
    CHECK(n_variants > 0);
    for (int k = 0; k < 8; k++)
        json_decref(cache[k]);
    json_decref(fx);
    return qr_test_done();
}
