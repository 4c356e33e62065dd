/* GGUF reader: real files from tests/fixtures/models (values checked against
 * models/README.md and against stories260K.bin, the same weights in
 * llama2.c's format), hand-built files for every value type and error path,
 * and truncations / random mutations that must fail cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/weights/gguf.h"
#include "tests/unit/test.h"

static int streq(qr_gguf_str s, const char *z) { return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0; }

static uint64_t u64_of(const qr_gguf *g, const char *key)
{
    uint64_t v = 0;
    CHECK_OK(qr_gguf_get_u64(g, key, &v));
    return v;
}

static void test_stories(void)
{
    const char *path = FIXTURE("models/stories260K/stories260K.gguf");
    qr_gguf *g = NULL;
    CHECK_OK(qr_gguf_open(path, &g));
    if (!g)
        return;
    CHECK_INT(qr_gguf_version(g), 3);
    CHECK(strcmp(qr_gguf_path(g), path) == 0);
    /* models/README.md: dim 64, 5 layers, 8 heads / 4 KV heads, FFN 172, vocab 512, eps 1e-5 */
    CHECK_INT(u64_of(g, "llama.embedding_length"), 64);
    CHECK_INT(u64_of(g, "llama.block_count"), 5);
    CHECK_INT(u64_of(g, "llama.attention.head_count"), 8);
    CHECK_INT(u64_of(g, "llama.attention.head_count_kv"), 4);
    CHECK_INT(u64_of(g, "llama.feed_forward_length"), 172);
    CHECK_INT(u64_of(g, "tokenizer.ggml.bos_token_id"), 1);
    CHECK_INT(u64_of(g, "tokenizer.ggml.eos_token_id"), 2);
    double eps = 0;
    CHECK_OK(qr_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    CHECK_NEAR(eps, 1e-5, 1e-12);
    qr_gguf_str s;
    CHECK_OK(qr_gguf_get_str(g, "general.architecture", &s));
    CHECK(streq(s, "llama"));
    qr_gguf_type et;
    uint64_t n = 0;
    CHECK_OK(qr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n));
    CHECK_INT(et, QR_GGUF_STRING);
    CHECK_INT(n, 512);
    CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s));
    CHECK(streq(s, "<s>"));
    CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 3, &s));
    CHECK(streq(s, "<0x00>")); /* byte tokens follow the 3 specials in SentencePiece vocabularies */
    CHECK_INT(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 512, &s), QR_EINVAL);
    int64_t tt = 0;
    CHECK_OK(qr_gguf_arr_i64(g, "tokenizer.ggml.token_type", 3, &tt));
    CHECK_INT(tt, 6); /* byte token */
    CHECK_INT(qr_gguf_arr_str(g, "tokenizer.ggml.scores", 0, &s), QR_EFORMAT);
    CHECK_INT(qr_gguf_get_u64(g, "no.such.key", &n), QR_ENOTFOUND);
    CHECK_INT(qr_gguf_get_u64(g, "general.architecture", &n), QR_EFORMAT);
    CHECK(!qr_gguf_has(g, "general.alignment"));
    CHECK_INT(qr_gguf_n_kv(g), 19);
    qr_gguf_type kt;
    CHECK_OK(qr_gguf_key_at(g, 0, &s, &kt));
    CHECK(streq(s, "tokenizer.ggml.tokens") && kt == QR_GGUF_ARRAY);

    CHECK_INT(qr_gguf_n_tensors(g), 3 + 5 * 9); /* embd, norm, output + 9 per layer */
    const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->dtype == QR_F32 && t->n_dims == 2 && t->shape[0] == 512 && t->shape[1] == 64);
    CHECK(t && t->nbytes == 512 * 64 * 4);
    t = qr_gguf_find_tensor(g, "blk.3.ffn_down.weight"); /* (dim, ffn) in torch order */
    CHECK(t && t->n_dims == 2 && t->shape[0] == 64 && t->shape[1] == 172);
    t = qr_gguf_find_tensor(g, "blk.3.ffn_gate.weight");
    CHECK(t && t->shape[0] == 172 && t->shape[1] == 64);
    t = qr_gguf_find_tensor(g, "blk.4.attn_k.weight"); /* (n_kv_heads * head_dim, dim) */
    CHECK(t && t->shape[0] == 32 && t->shape[1] == 64);
    t = qr_gguf_find_tensor(g, "output_norm.weight");
    CHECK(t && t->n_dims == 1 && t->shape[0] == 64);
    CHECK(qr_gguf_find_tensor(g, "blk.5.ffn_gate.weight") == NULL);
    CHECK(qr_gguf_tensor_at(g, 48) == NULL);
    for (uint64_t i = 0; i < qr_gguf_n_tensors(g); i++)
        CHECK(qr_gguf_find_tensor(g, qr_gguf_tensor_at(g, i)->name) == qr_gguf_tensor_at(g, i));

    /* stories260K.bin: 7 int32 header, then token embeddings (vocab, dim), then the
     * attention RMS weights (layers, dim): the same numbers as the GGUF tensors. */
    size_t bn = 0;
    unsigned char *bin = (unsigned char *)qr_test_slurp(FIXTURE("models/stories260K/stories260K.bin"), &bn);
    CHECK(bin && bn > 28 + 512 * 64 * 4 + 5 * 64 * 4);
    t = qr_gguf_find_tensor(g, "token_embd.weight");
    if (bin && t)
        CHECK(memcmp(t->data, bin + 28, 512 * 64 * 4) == 0);
    for (int l = 0; l < 5 && bin; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        t = qr_gguf_find_tensor(g, name);
        CHECK(t && memcmp(t->data, bin + 28 + 512 * 64 * 4 + (size_t)l * 64 * 4, 64 * 4) == 0);
    }
    free(bin);
    qr_gguf_close(g);
}

static void test_tiny_llama(void)
{
    qr_gguf *g = NULL;
    CHECK_OK(qr_gguf_open(FIXTURE("models/tiny-random-llama-2/llama-2-tiny-random.gguf"), &g));
    if (!g)
        return;
    CHECK_INT(qr_gguf_n_tensors(g), 12);
    const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->dtype == QR_F16 && t->shape[0] == 32000 && t->shape[1] == 8 && t->nbytes == 32000 * 8 * 2);
    t = qr_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t && t->dtype == QR_F16 && t->shape[0] == 8 && t->shape[1] == 32);
    t = qr_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    CHECK(t && t->dtype == QR_F32 && t->n_dims == 1 && t->shape[0] == 8);
    qr_gguf_type et;
    uint64_t n = 0;
    CHECK_OK(qr_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n));
    CHECK(et == QR_GGUF_F32 && n == 32000);
    qr_gguf_str s;
    CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 29871, &s));
    CHECK(streq(s, "\xe2\x96\x81")); /* Llama-2's lone "▁" */
    CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 31999, &s));
    CHECK(s.len > 0);
    qr_gguf_close(g);
}

static void test_vocab_only(void)
{
    static const struct { const char *file; uint64_t n; } v[] = {
        {"models/vocab-fixtures/ggml-vocab-bert-bge.gguf", 30522},
        {"models/vocab-fixtures/ggml-vocab-gpt-2.gguf", 50257},
        {"models/vocab-fixtures/ggml-vocab-llama-spm.gguf", 32000},
    };
    for (size_t i = 0; i < 3; i++) {
        qr_gguf *g = NULL;
        CHECK_OK(qr_gguf_open(FIXTURE(v[i].file), &g));
        if (!g)
            continue;
        qr_gguf_type et;
        uint64_t n = 0;
        CHECK_INT(qr_gguf_n_tensors(g), 0);
        CHECK_OK(qr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n));
        CHECK_MSG(et == QR_GGUF_STRING && n == v[i].n, "%s: %llu tokens", v[i].file, (unsigned long long)n);
        qr_gguf_str s;
        CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s));
        if (i == 0) {
            CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 101, &s));
            CHECK(streq(s, "[CLS]"));
            CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 102, &s));
            CHECK(streq(s, "[SEP]"));
            bool causal = true;
            CHECK_OK(qr_gguf_get_bool(g, "bert.attention.causal", &causal));
            CHECK(!causal);
            CHECK_INT(u64_of(g, "bert.embedding_length"), 384);
            CHECK_INT(qr_gguf_get_bool(g, "bert.embedding_length", &causal), QR_EFORMAT);
        }
        if (i == 1) {
            CHECK_OK(qr_gguf_arr_str(g, "tokenizer.ggml.tokens", 50256, &s));
            CHECK(streq(s, "<|endoftext|>"));
        }
        qr_gguf_close(g);
    }
}

/* ---- hand-built files ---- */

typedef struct { unsigned char b[8192]; size_t n; } buf;
static void put(buf *b, const void *p, size_t n) { memcpy(b->b + b->n, p, n); b->n += n; }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void put_key(buf *b, const char *k, uint32_t type) { put_str(b, k); put_u32(b, type); }
static void header(buf *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b->n = 0;
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, nt);
    put_u64(b, nkv);
}
static void tinfo(buf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    put_str(b, name);
    put_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++)
        put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, off);
}
static void pad(buf *b, size_t a) { while (b->n % a) b->b[b->n++] = 0; }

static int open_buf(const buf *b, qr_gguf **g) { return qr_gguf_open_mem(b->b, b->n, "mem.gguf", g); }

static void test_value_types(void)
{
    buf b;
    header(&b, 2, 0, 11); /* version 2: same layout as 3 */
    put_key(&b, "u8", QR_GGUF_U8); b.b[b.n++] = 200;
    put_key(&b, "i8", QR_GGUF_I8); b.b[b.n++] = 0xfb; /* -5 */
    put_key(&b, "u16", QR_GGUF_U16); { uint16_t v = 65535; put(&b, &v, 2); }
    put_key(&b, "i16", QR_GGUF_I16); { int16_t v = -300; put(&b, &v, 2); }
    put_key(&b, "i32", QR_GGUF_I32); { int32_t v = -70000; put(&b, &v, 4); }
    put_key(&b, "u64", QR_GGUF_U64); put_u64(&b, UINT64_MAX);
    put_key(&b, "i64", QR_GGUF_I64); { int64_t v = INT64_MIN; put(&b, &v, 8); }
    put_key(&b, "f64", QR_GGUF_F64); { double v = 2.5; put(&b, &v, 8); }
    put_key(&b, "f32", QR_GGUF_F32); { float v = -0.75f; put(&b, &v, 4); }
    /* array of arrays of strings: [["a", "bc"], []] */
    put_key(&b, "nested", QR_GGUF_ARRAY); put_u32(&b, QR_GGUF_ARRAY); put_u64(&b, 2);
    put_u32(&b, QR_GGUF_STRING); put_u64(&b, 2); put_str(&b, "a"); put_str(&b, "bc");
    put_u32(&b, QR_GGUF_STRING); put_u64(&b, 0);
    put_key(&b, "i16s", QR_GGUF_ARRAY); put_u32(&b, QR_GGUF_I16); put_u64(&b, 3);
    { int16_t v[3] = {1, -2, 3}; put(&b, v, 6); }
    qr_gguf *g = NULL;
    CHECK_OK(open_buf(&b, &g));
    if (!g)
        return;
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    CHECK_INT(qr_gguf_version(g), 2);
    CHECK_OK(qr_gguf_get_u64(g, "u8", &u)); CHECK_INT(u, 200);
    CHECK_INT(qr_gguf_get_u64(g, "i8", &u), QR_EFORMAT); /* negative */
    CHECK_OK(qr_gguf_get_i64(g, "i8", &i)); CHECK_INT(i, -5);
    CHECK_OK(qr_gguf_get_u64(g, "u16", &u)); CHECK_INT(u, 65535);
    CHECK_OK(qr_gguf_get_i64(g, "i16", &i)); CHECK_INT(i, -300);
    CHECK_OK(qr_gguf_get_i64(g, "i32", &i)); CHECK_INT(i, -70000);
    CHECK_OK(qr_gguf_get_f64(g, "i32", &f)); CHECK(f == -70000.0);
    CHECK_OK(qr_gguf_get_u64(g, "u64", &u)); CHECK(u == UINT64_MAX);
    CHECK_INT(qr_gguf_get_i64(g, "u64", &i), QR_EFORMAT); /* does not fit */
    CHECK_OK(qr_gguf_get_i64(g, "i64", &i)); CHECK(i == INT64_MIN);
    CHECK_OK(qr_gguf_get_f64(g, "f64", &f)); CHECK(f == 2.5);
    CHECK_OK(qr_gguf_get_f64(g, "f32", &f)); CHECK(f == -0.75);
    CHECK_INT(qr_gguf_get_i64(g, "f32", &i), QR_EFORMAT);
    qr_gguf_type et;
    uint64_t n = 0;
    CHECK_OK(qr_gguf_get_arr(g, "nested", &et, &n));
    CHECK(et == QR_GGUF_ARRAY && n == 2);
    qr_gguf_str s;
    CHECK_INT(qr_gguf_arr_str(g, "nested", 0, &s), QR_EFORMAT);
    CHECK_OK(qr_gguf_arr_i64(g, "i16s", 1, &i)); CHECK_INT(i, -2);
    CHECK_OK(qr_gguf_arr_f64(g, "i16s", 2, &f)); CHECK(f == 3.0);
    CHECK_INT(qr_gguf_arr_i64(g, "i16s", 3, &i), QR_EINVAL);
    CHECK_INT(qr_gguf_get_arr(g, "u8", &et, &n), QR_EFORMAT);
    qr_gguf_close(g);

    /* version 1 is refused with a message saying so */
    header(&b, 1, 0, 0);
    CHECK_INT(open_buf(&b, &g), QR_EUNSUPPORTED);
    CHECK(strstr(qr_last_error(), "version 1") && strstr(qr_last_error(), "mem.gguf"));
    header(&b, 4, 0, 0);
    CHECK_INT(open_buf(&b, &g), QR_EUNSUPPORTED);
    header(&b, 3, 0, 0);
    memcpy(b.b, "GGUG", 4);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    /* duplicate key */
    header(&b, 3, 0, 2);
    put_key(&b, "k", QR_GGUF_U8); b.b[b.n++] = 1;
    put_key(&b, "k", QR_GGUF_U8); b.b[b.n++] = 2;
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "'k' appears twice") != NULL);
    /* unknown value type */
    header(&b, 3, 0, 1);
    put_key(&b, "k", 13); b.b[b.n++] = 1;
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    /* arrays nested too deep */
    header(&b, 3, 0, 1);
    put_key(&b, "deep", QR_GGUF_ARRAY);
    for (int d = 0; d < 20; d++) { put_u32(&b, QR_GGUF_ARRAY); put_u64(&b, 1); }
    put_u32(&b, QR_GGUF_U8); put_u64(&b, 0);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    /* huge array count */
    header(&b, 3, 0, 1);
    put_key(&b, "big", QR_GGUF_ARRAY); put_u32(&b, QR_GGUF_STRING); put_u64(&b, UINT64_MAX / 4);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "'big'") != NULL);
}

/* One 2-D F32 tensor (2, 32) = 256 bytes, with the given alignment key. */
static void build_tensors(buf *b, uint32_t align, uint32_t type, uint64_t off2, uint64_t ne0)
{
    uint64_t ne[2] = {ne0, 2}, ne_a[2] = {32, 2};
    header(b, 3, 2, align ? 1 : 0);
    if (align) {
        put_key(b, "general.alignment", QR_GGUF_U32);
        put_u32(b, align);
    }
    tinfo(b, "a", 2, ne_a, 0, 0);
    tinfo(b, "b.weight", 2, ne, type, off2);
    pad(b, align ? align : 32);
    for (int i = 0; i < 2 * 256 + 256; i++)
        b->b[b->n++] = (unsigned char)i;
}

static void test_tensors(void)
{
    buf b;
    qr_gguf *g = NULL;
    build_tensors(&b, 64, 0, 256, 32);
    CHECK_OK(open_buf(&b, &g));
    if (g) {
        const qr_gguf_tensor *a = qr_gguf_find_tensor(g, "a"), *t = qr_gguf_find_tensor(g, "b.weight");
        CHECK(a && t && a->shape[0] == 2 && a->shape[1] == 32 && a->nbytes == 256);
        CHECK(a && (const unsigned char *)a->data - b.b == (ptrdiff_t)(b.n - 768));
        CHECK(a && t && (const unsigned char *)t->data - (const unsigned char *)a->data == 256);
        qr_gguf_close(g);
    }
    build_tensors(&b, 0, 0, 256, 32);
    CHECK_OK(open_buf(&b, &g));
    qr_gguf_close(g);
    build_tensors(&b, 64, 0, 32, 32); /* misaligned */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    build_tensors(&b, 32, 0, 128, 32); /* overlaps "a" */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "overlap") != NULL);
    build_tensors(&b, 32, 0, 512 + 32, 32); /* runs past the end */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "'b.weight'") != NULL);
    build_tensors(&b, 3, 0, 256, 32); /* alignment not a power of two */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    build_tensors(&b, 32, 16, 256, 256); /* IQ2_XXS: not read */
    CHECK_INT(open_buf(&b, &g), QR_EUNSUPPORTED);
    CHECK(strstr(qr_last_error(), "'b.weight'") && strstr(qr_last_error(), "IQ2_XXS"));
    build_tensors(&b, 32, 13, 256, 256); /* Q5_K (2, 256): 2 blocks of 176 bytes */
    CHECK_OK(open_buf(&b, &g));
    if (g) {
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "b.weight");
        CHECK(t && t->dtype == QR_Q5_K && t->nbytes == 352);
        qr_gguf_close(g);
    }
    build_tensors(&b, 32, 6, 256, 80); /* Q5_0 rows must be multiples of 32 */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    build_tensors(&b, 32, 6, 256, 96); /* Q5_0 (2, 96): 6 blocks of 22 bytes */
    CHECK_OK(open_buf(&b, &g));
    if (g) {
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "b.weight");
        CHECK(t && t->dtype == QR_Q5_0 && t->nbytes == 132);
        qr_gguf_close(g);
    }
    build_tensors(&b, 32, 8, 256, 48); /* Q8_0 rows must be multiples of 32 */
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    build_tensors(&b, 32, 8, 256, 32); /* Q8_0 (2, 32): 2 blocks of 34 bytes */
    CHECK_OK(open_buf(&b, &g));
    if (g) {
        const qr_gguf_tensor *t = qr_gguf_find_tensor(g, "b.weight");
        CHECK(t && t->dtype == QR_Q8_0 && t->nbytes == 68);
        qr_gguf_close(g);
    }
    /* element count that overflows */
    uint64_t ne[5] = {1u << 20, 1u << 20, 1u << 20, 1u << 20, 1};
    header(&b, 3, 1, 0);
    tinfo(&b, "huge", 4, ne, 0, 0);
    pad(&b, 32);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "'huge'") != NULL);
    /* duplicate tensor names */
    header(&b, 3, 2, 0);
    tinfo(&b, "x", 1, ne, 0, 0);
    tinfo(&b, "x", 1, ne, 0, 0);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    /* 5 dimensions */
    header(&b, 3, 1, 0);
    tinfo(&b, "x", 5, ne, 0, 0);
    CHECK_INT(open_buf(&b, &g), QR_EFORMAT);
    CHECK_INT(qr_gguf_open("/nonexistent/x.gguf", &g), QR_ENOTFOUND);
    CHECK(qr_gguf_open(".", &g) < 0);
    qr_gguf_close(NULL);
}

/* Reads everything reachable through the API, so a corrupt file that opens
 * anyway is at least fully walkable. */
static void walk(const qr_gguf *g)
{
    for (uint64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        qr_gguf_str k, s;
        qr_gguf_type t, et;
        uint64_t n, u;
        double f;
        char key[256];
        if (qr_gguf_key_at(g, i, &k, &t) || k.len >= sizeof key)
            continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = 0;
        (void)qr_gguf_get_u64(g, key, &u);
        (void)qr_gguf_get_str(g, key, &s);
        if (qr_gguf_get_arr(g, key, &et, &n) != 0)
            continue;
        for (uint64_t j = 0; j < n; j++) {
            if (qr_gguf_arr_str(g, key, j, &s) == 0) {
                volatile char c = s.len ? s.ptr[s.len - 1] : 0;
                (void)c;
            } else {
                (void)qr_gguf_arr_f64(g, key, j, &f);
            }
        }
    }
    for (uint64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        volatile unsigned char c = t->nbytes ? ((const unsigned char *)t->data)[t->nbytes - 1] : 0;
        (void)c;
    }
}

static int names_file(const char *name) { return strstr(qr_last_error(), name) != NULL; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_corruption(void)
{
    size_t n = 0;
    unsigned char *orig = (unsigned char *)qr_test_slurp(FIXTURE("models/stories260K/stories260K.gguf"), &n);
    CHECK(orig != NULL);
    if (!orig)
        return;
    const size_t infos_end = 14152; /* end of the tensor infos (found with an independent dump) */
    /* truncations: every byte of the first 512, every 5th up to the data, then through the data;
     * each copy is exactly its length, so a sanitizer sees any read past it */
    int bad = 0, tried = 0;
    for (size_t cut = 0; cut < n; cut += cut < 512 ? 1 : cut < infos_end + 64 ? 5 : 4099) {
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, orig, cut);
        qr_gguf *g = NULL;
        int rc = qr_gguf_open_mem(p, cut, "cut.gguf", &g);
        bad += rc != QR_EFORMAT || !names_file("cut.gguf");
        tried++;
        qr_gguf_close(g);
        free(p);
    }
    CHECK_MSG(bad == 0, "%d of %d truncations not rejected with EFORMAT", bad, tried);
    CHECK(tried > 2500);

    /* a few truncated copies through the file path (mmap) */
    char tmpl[] = "/tmp/quire_gguf_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    size_t cuts[] = {0, 3, 23, 24, 100, 5000, infos_end - 1, infos_end + 8, n / 2, n - 1};
    for (size_t i = 0; fd >= 0 && i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, orig, cuts[i], 0) == (ssize_t)cuts[i]);
        qr_gguf *g = NULL;
        int rc = qr_gguf_open(tmpl, &g);
        CHECK_MSG(rc == QR_EFORMAT && names_file(tmpl), "cut %zu: rc %d: %s", cuts[i], rc, qr_last_error());
        qr_gguf_close(g);
    }
    if (fd >= 0) {
        close(fd);
        unlink(tmpl);
    }

    /* 2000 seeded mutations of the header region; success is allowed (a changed
     * character in a string is still a valid file) but must then be walkable */
    unsigned char *p = malloc(n);
    int opened = 0, failed_unnamed = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(p, orig, n);
        int k = 1 + (int)(rnd() % 4);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(rnd() % (infos_end + 32));
            switch (rnd() % 4) {
            case 0: p[at] = (unsigned char)rnd(); break;
            case 1: p[at] ^= (unsigned char)(1u << (rnd() % 8)); break;
            case 2: p[at] = 0xff; break;
            default: { /* a random small or huge 64-bit value, to hit lengths and counts */
                uint64_t v = rnd() % 2 ? rnd() : rnd() % 100000;
                if (at + 8 <= n)
                    memcpy(p + at, &v, 8);
            }
            }
        }
        qr_gguf *g = NULL;
        int rc = qr_gguf_open_mem(p, n, "mut.gguf", &g);
        if (rc == 0) {
            opened++;
            walk(g);
        } else {
            failed_unnamed += !names_file("mut.gguf");
        }
        qr_gguf_close(g);
    }
    CHECK_INT(failed_unnamed, 0);
    CHECK(opened < 2000);
    printf("mutations: %d of 2000 still opened\n", opened);
    free(p);
    free(orig);
}

int main(void)
{
    test_stories();
    test_tiny_llama();
    test_vocab_only();
    test_value_types();
    test_tensors();
    test_corruption();
    return qr_test_done();
}
