/* Tokenizer oracle test: quire's tokenizer.json loader against the Hugging
 * Face `tokenizers` library on a 10,000-string corpus (many scripts, emoji,
 * whitespace runs, numbers, code, URLs, long words, contractions, special-
 * token look-alikes) followed by ~1,400 strings covering every Unicode block and
 * general category. Fixtures from tools/oracle/gen_fixtures.py, format
 * described there. Requires 100% identical ids with and without special
 * tokens, and identical decode output for the strings that have one.
 * Entries of format "gguf" load a GGUF vocabulary (qr_tokenizer_load_gguf) and are
 * held to the ids of the Hugging Face tokenizer with the same vocabulary. Entries of
 * format "json2gguf" first write a GGUF vocabulary from the tokenizer.json the way
 * llama.cpp's converter does (json2gguf below), to test the GGUF loader's byte-level BPE
 * pre-tokenizers (qwen2, llama-bpe) at corpus scale.
 *
 * usage: test_oracle NAME   (NAME as in tests/fixtures/tokenizer/oracle/manifest.json) */
#include <jansson.h>
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

#ifndef MAX_SHOWN
#define MAX_SHOWN 8
#endif

typedef struct {
    char **text;
    size_t *len;
    size_t n;
} corpus;

/* Splits buf in place into lines (the trailing newline ends the last line). */
static char **split_lines(char *buf, size_t *n_out)
{
    size_t cap = 1024, n = 0;
    char **lines = malloc(cap * sizeof *lines);
    char *p = buf;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (n == cap) {
            cap *= 2;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[n++] = p;
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    *n_out = n;
    return lines;
}

static bool load_corpus(const char *path, corpus *c)
{
    char *buf = qr_test_slurp(path, NULL);
    if (!buf)
        return false;
    size_t n;
    char **lines = split_lines(buf, &n);
    c->text = calloc(n, sizeof *c->text);
    c->len = calloc(n, sizeof *c->len);
    c->n = n;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        json_error_t err;
        json_t *s = json_loads(lines[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!s || !json_is_string(s)) {
            fprintf(stderr, "%s:%zu: bad JSON string: %s\n", path, i + 1, err.text);
            ok = false;
        } else {
            c->len[i] = json_string_length(s);
            c->text[i] = malloc(c->len[i] + 1);
            memcpy(c->text[i], json_string_value(s), c->len[i] + 1);
        }
        json_decref(s);
    }
    free(lines);
    free(buf);
    return ok;
}

static int b64val(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* One .ids line: 3 base64 digits per id. Returns the count, -1 if malformed. */
static long unpack_ids(const char *line, int32_t **ids)
{
    size_t len = strlen(line);
    if (len % 3)
        return -1;
    size_t n = len / 3;
    *ids = malloc((n ? n : 1) * sizeof **ids);
    for (size_t i = 0; i < n; i++) {
        int a = b64val(line[3 * i]), b = b64val(line[3 * i + 1]), c = b64val(line[3 * i + 2]);
        if (a < 0 || b < 0 || c < 0)
            return -1;
        (*ids)[i] = (int32_t)(a * 4096 + b * 64 + c);
    }
    return (long)n;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

static void print_text(const char *label, const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    fprintf(stderr, "    %s: %.400s\n", label, d ? d : "(invalid UTF-8)");
    free(d);
    json_decref(j);
}

static size_t first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Reads a JSON array of ints into ids; returns the count. */
static size_t json_ids(json_t *arr, int32_t *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(arr) && n < cap; i++)
        ids[n++] = (int32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

/* ---- json2gguf: a GGUF vocabulary (v3, no tensors) from a byte-level BPE tokenizer.json --
 * tokenizer.ggml.tokens[id] = the piece (model vocabulary or added token), token_type 3
 * (control) for special added tokens, 4 (user-defined) for other added tokens, 1 otherwise;
 * merges "left right" in order; pre as given; bos = the post-processor's first special id
 * with add_bos_token = whether there is one (Llama-3: <|begin_of_text|>; Qwen2: none). */

static void w_bytes(FILE *f, const void *p, size_t n) { fwrite(p, 1, n, f); }
static void w_u32(FILE *f, uint32_t v) { w_bytes(f, &v, 4); }
static void w_u64(FILE *f, uint64_t v) { w_bytes(f, &v, 8); }
static void w_str(FILE *f, const char *s, size_t n)
{
    w_u64(f, n);
    w_bytes(f, s, n);
}
static void w_key(FILE *f, const char *k, uint32_t type)
{
    w_str(f, k, strlen(k));
    w_u32(f, type);
}

static bool json2gguf(const char *json_path, const char *pre, const char *out_path, int32_t bos)
{
    json_error_t err;
    json_t *root = json_load_file(json_path, 0, &err);
    if (!root) {
        fprintf(stderr, "%s: %s\n", json_path, err.text);
        return false;
    }
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if ((size_t)json_integer_value(v) + 1 > n)
            n = (size_t)json_integer_value(v) + 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        if ((size_t)json_integer_value(json_object_get(v, "id")) + 1 > n)
            n = (size_t)json_integer_value(json_object_get(v, "id")) + 1;
    }
    const char **tok = calloc(n, sizeof *tok);
    size_t *tlen = calloc(n, sizeof *tlen);
    int32_t *type = calloc(n, sizeof *type);
    json_object_foreach(vocab, k, v) {
        size_t id = (size_t)json_integer_value(v);
        tok[id] = k;
        tlen[id] = strlen(k);
        type[id] = 1;
    }
    json_array_foreach(added, i, v) {
        size_t id = (size_t)json_integer_value(json_object_get(v, "id"));
        json_t *c = json_object_get(v, "content");
        tok[id] = json_string_value(c);
        tlen[id] = json_string_length(c);
        type[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4;
    }
    bool ok = true;
    for (size_t j = 0; j < n && ok; j++)
        ok = tok[j] != NULL; /* both vocabularies here have contiguous ids */
    FILE *f = ok ? fopen(out_path, "wb") : NULL;
    if (f) {
        w_bytes(f, "GGUF", 4);
        w_u32(f, 3);
        w_u64(f, 0);
        w_u64(f, bos >= 0 ? 7 : 5);
        w_key(f, "tokenizer.ggml.model", 8);
        w_str(f, "gpt2", 4);
        w_key(f, "tokenizer.ggml.pre", 8);
        w_str(f, pre, strlen(pre));
        w_key(f, "tokenizer.ggml.tokens", 9);
        w_u32(f, 8);
        w_u64(f, n);
        for (size_t j = 0; j < n; j++)
            w_str(f, tok[j], tlen[j]);
        w_key(f, "tokenizer.ggml.token_type", 9);
        w_u32(f, 5);
        w_u64(f, n);
        w_bytes(f, type, n * sizeof *type);
        w_key(f, "tokenizer.ggml.merges", 9);
        w_u32(f, 8);
        w_u64(f, json_array_size(merges));
        json_array_foreach(merges, i, v) {
            if (json_is_string(v)) {
                w_str(f, json_string_value(v), json_string_length(v));
            } else { /* ["left", "right"] */
                json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
                w_u64(f, json_string_length(a) + 1 + json_string_length(b));
                w_bytes(f, json_string_value(a), json_string_length(a));
                w_bytes(f, " ", 1);
                w_bytes(f, json_string_value(b), json_string_length(b));
            }
        }
        if (bos >= 0) {
            w_key(f, "tokenizer.ggml.bos_token_id", 4);
            w_u32(f, (uint32_t)bos);
            w_key(f, "tokenizer.ggml.add_bos_token", 7);
            w_bytes(f, "\1", 1);
        }
        ok = fclose(f) == 0;
    } else {
        ok = false;
    }
    free(tok);
    free(tlen);
    free(type);
    json_decref(root);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    json_error_t jerr;
    json_t *manifest = json_load_file(FIXTURE("tokenizer/oracle/manifest.json"), 0, &jerr);
    CHECK_MSG(manifest != NULL, "manifest.json: %s", jerr.text);
    if (!manifest)
        return qr_test_done();

    json_t *entry = NULL, *t;
    size_t k;
    json_array_foreach(json_object_get(manifest, "tokenizers"), k, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            entry = t;
    }
    CHECK_MSG(entry != NULL, "tokenizer %s not in manifest", name);
    if (!entry) {
        json_decref(manifest);
        return qr_test_done();
    }

    corpus c = { 0 };
    CHECK(load_corpus(FIXTURE("tokenizer/oracle/corpus.jsonl"), &c));
    CHECK_INT(c.n, json_integer_value(json_object_get(manifest, "n_strings")));
    size_t n_strings = (size_t)json_integer_value(json_object_get(entry, "n_strings"));
    CHECK(n_strings > 0 && n_strings <= c.n);
    size_t n_use = n_strings < c.n ? n_strings : c.n; /* this tokenizer's share of the corpus */

    const char *stem = json_string_value(json_object_get(entry, "ids"));
    char rel[512];
    snprintf(rel, sizeof rel, "tokenizer/oracle/%s.ids", stem);
    char *ids_buf = qr_test_slurp(FIXTURE(rel), NULL);
    snprintf(rel, sizeof rel, "tokenizer/oracle/%s.dec", stem);
    char *dec_buf = qr_test_slurp(FIXTURE(rel), NULL);
    snprintf(rel, sizeof rel, "tokenizer/oracle/%s.decs", stem);
    char *decs_buf = qr_test_slurp(FIXTURE(rel), NULL);
    CHECK(ids_buf != NULL);
    CHECK(dec_buf != NULL);
    CHECK(decs_buf != NULL);
    size_t n_id_lines = 0, n_dec_lines = 0, n_decs_lines = 0;
    char **id_lines = ids_buf ? split_lines(ids_buf, &n_id_lines) : NULL;
    char **dec_lines = dec_buf ? split_lines(dec_buf, &n_dec_lines) : NULL;
    char **decs_lines = decs_buf ? split_lines(decs_buf, &n_decs_lines) : NULL;
    CHECK_INT(n_decs_lines, n_dec_lines);
    CHECK_INT(n_id_lines, n_use);
    CHECK_INT(n_dec_lines, json_integer_value(json_object_get(entry, "n_decoded")));
    /* Decoded strings: the first dec_head, then all from dec_tail on (.dec line order). */
    json_t *jhead = json_object_get(entry, "decoded_head"), *jtail = json_object_get(entry, "decoded_tail_from");
    size_t dec_head = jhead ? (size_t)json_integer_value(jhead) : n_dec_lines;
    size_t dec_tail = jtail ? (size_t)json_integer_value(jtail) : n_use;
    CHECK(dec_head <= dec_tail && dec_tail <= n_use && dec_head + (n_use - dec_tail) == n_dec_lines);

    /* base "shared" or "fixtures": both under tests/fixtures now (the ../shared/models
     * files are committed there with the same relative path) */
    const char *path = json_string_value(json_object_get(entry, "path"));
    const char *file = FIXTURE(path);
    const char *format = json_string_value(json_object_get(entry, "format"));
    qr_tokenizer *tok = NULL;
    qr_gguf *gg = NULL;
    char tmp_gguf[] = "/tmp/quire_oracle_XXXXXX";
    if (strcmp(format, "json2gguf") == 0) {
        json_t *pfx = json_object_get(entry, "special_prefix");
        int32_t bos = json_array_size(pfx) ? (int32_t)json_integer_value(json_array_get(pfx, 0)) : -1;
        int fd = mkstemp(tmp_gguf);
        CHECK(fd >= 0);
        if (fd >= 0) {
            close(fd);
            bool built = json2gguf(file, json_string_value(json_object_get(entry, "pre")), tmp_gguf, bos);
            CHECK_MSG(built, "%s: could not write a GGUF vocabulary from %s", name, file);
            if (built)
                CHECK_OK(qr_gguf_open(tmp_gguf, &gg));
            if (gg)
                CHECK_OK(qr_tokenizer_load_gguf(gg, &tok));
            unlink(tmp_gguf); /* the mapping stays valid */
        }
    } else if (strcmp(format, "gguf") == 0) {
        CHECK_OK(qr_gguf_open(file, &gg));
        if (gg)
            CHECK_OK(qr_tokenizer_load_gguf(gg, &tok));
    } else {
        CHECK_OK(qr_tokenizer_load_json(file, &tok));
    }

    int32_t prefix[16], suffix[16];
    size_t n_prefix = json_ids(json_object_get(entry, "special_prefix"), prefix, 16);
    size_t n_suffix = json_ids(json_object_get(entry, "special_suffix"), suffix, 16);
    json_t *exceptions = json_object_get(entry, "special_exceptions");

    size_t bad_plain = 0, bad_special = 0, bad_decode = 0, bad_decode_skip = 0, shown = 0, n_ids_total = 0;
    for (size_t i = 0; tok && i < n_use && i < n_id_lines; i++) {
        int32_t *want = NULL;
        long nw = unpack_ids(id_lines[i], &want);
        CHECK_MSG(nw >= 0, "%s.ids line %zu malformed", name, i + 1);
        if (nw < 0) {
            free(want);
            continue;
        }
        n_ids_total += (size_t)nw;

        int32_t *got = NULL;
        size_t ng = 0;
        int rc = qr_tokenize(tok, c.text[i], c.len[i], false, &got, &ng);
        if (rc != 0 || !same_ids(want, (size_t)nw, got, ng)) {
            bad_plain++;
            if (shown++ < MAX_SHOWN) {
                fprintf(stderr, "[%s] string %zu, no special tokens: %s\n", name, i,
                        rc ? qr_last_error() : "ids differ");
                print_text("text", c.text[i], c.len[i]);
                print_ids("want", want, (size_t)nw);
                if (!rc) {
                    print_ids("got ", got, ng);
                    fprintf(stderr, "    first difference at index %zu\n",
                            first_diff(want, (size_t)nw, got, ng));
                }
            }
        }

        /* With special tokens: prefix + ids + suffix unless listed as an exception. */
        size_t nws = n_prefix + (size_t)nw + n_suffix;
        int32_t *want_sp = malloc((nws + 1) * sizeof *want_sp);
        memcpy(want_sp, prefix, n_prefix * sizeof *prefix);
        memcpy(want_sp + n_prefix, want, (size_t)nw * sizeof *want);
        memcpy(want_sp + n_prefix + (size_t)nw, suffix, n_suffix * sizeof *suffix);
        json_t *ex;
        size_t ei;
        json_array_foreach(exceptions, ei, ex) {
            if ((size_t)json_integer_value(json_object_get(ex, "index")) == i) {
                json_t *arr = json_object_get(ex, "ids");
                nws = json_array_size(arr);
                want_sp = realloc(want_sp, (nws + 1) * sizeof *want_sp);
                json_ids(arr, want_sp, nws);
            }
        }
        int32_t *got_sp = NULL;
        size_t ngs = 0;
        rc = qr_tokenize(tok, c.text[i], c.len[i], true, &got_sp, &ngs);
        if (rc != 0 || !same_ids(want_sp, nws, got_sp, ngs)) {
            bad_special++;
            if (shown++ < MAX_SHOWN) {
                fprintf(stderr, "[%s] string %zu, with special tokens: %s\n", name, i,
                        rc ? qr_last_error() : "ids differ");
                print_text("text", c.text[i], c.len[i]);
                print_ids("want", want_sp, nws);
                if (!rc)
                    print_ids("got ", got_sp, ngs);
            }
        }

        /* Decode of the reference ids (not ours), skip_special = false. */
        /* qr_detokenize returns a NUL-terminated string, so texts with an
         * embedded NUL cannot be compared through it; they are skipped. */
        size_t dl = i < dec_head ? i : i >= dec_tail ? dec_head + (i - dec_tail) : SIZE_MAX;
        if (dl < n_dec_lines && !memchr(c.text[i], 0, c.len[i])) {
            const char *exp = c.text[i];
            size_t exp_len = c.len[i];
            json_t *js = NULL;
            if (strcmp(dec_lines[dl], "=") != 0) {
                js = json_loads(dec_lines[dl], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
                exp = js ? json_string_value(js) : "";
                exp_len = js ? json_string_length(js) : 0;
                CHECK_MSG(js != NULL, "%s.dec line %zu malformed", name, dl + 1);
            }
            char *out = NULL;
            rc = qr_detokenize(tok, want, (size_t)nw, false, &out);
            if (rc != 0 || strlen(out) != exp_len || memcmp(out, exp, exp_len) != 0) {
                bad_decode++;
                if (shown++ < MAX_SHOWN) {
                    fprintf(stderr, "[%s] string %zu, decode: %s\n", name, i, rc ? qr_last_error() : "text differs");
                    print_text("want", exp, exp_len);
                    if (!rc)
                        print_text("got ", out, strlen(out));
                }
            }
            free(out);

            /* Ids with special tokens, decoded skipping them: "=" means the text above. */
            json_t *jss = NULL;
            if (dl < n_decs_lines && strcmp(decs_lines[dl], "=") != 0) {
                jss = json_loads(decs_lines[dl], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
                CHECK_MSG(jss != NULL, "%s.decs line %zu malformed", name, dl + 1);
                exp = jss ? json_string_value(jss) : "";
                exp_len = jss ? json_string_length(jss) : 0;
            }
            out = NULL;
            rc = qr_detokenize(tok, want_sp, nws, true, &out);
            if (rc != 0 || strlen(out) != exp_len || memcmp(out, exp, exp_len) != 0) {
                bad_decode_skip++;
                if (shown++ < MAX_SHOWN) {
                    fprintf(stderr, "[%s] string %zu, decode skipping special tokens: %s\n", name, i,
                            rc ? qr_last_error() : "text differs");
                    print_text("want", exp, exp_len);
                    if (!rc)
                        print_text("got ", out, strlen(out));
                }
            }
            free(out);
            json_decref(jss);
            json_decref(js);
        }
        free(want);
        free(got);
        free(want_sp);
        free(got_sp);
    }
    printf("%s: %zu strings, %zu reference ids; mismatches: %zu without special tokens, "
           "%zu with, %zu + %zu of %zu + %zu decodes (keeping / skipping special tokens)\n",
           name, n_use, n_ids_total, bad_plain, bad_special, bad_decode, bad_decode_skip, n_dec_lines, n_dec_lines);
    CHECK_INT(bad_plain, 0);
    CHECK_INT(bad_special, 0);
    CHECK_INT(bad_decode, 0);
    CHECK_INT(bad_decode_skip, 0);

    qr_tokenizer_free(tok);
    qr_gguf_close(gg);
    for (size_t i = 0; i < c.n; i++)
        free(c.text[i]);
    free(c.text);
    free(c.len);
    free(id_lines);
    free(dec_lines);
    free(decs_lines);
    free(ids_buf);
    free(dec_buf);
    free(decs_buf);
    json_decref(manifest);
    return qr_test_done();
}
