/* The GGUF loading paths against the same torch float64 references as
 * test_parity: each HF fixture (tests/fixtures/models) is rewritten here as a
 * GGUF file the way llama.cpp's converter lays it out —
 *   llama / mistral: arch "llama", q/k rows permuted per head for interleaved
 *     RoPE: W.reshape(n_head, hd/2, 2, in).swapaxes(1, 2) ... i.e. GGUF row
 *     h*hd + 2i + j = HF row h*hd + j*hd/2 + i; llama3 rope scaling stored as
 *     the rope_freqs.weight tensor of per-frequency divisors;
 *   qwen2: arch "qwen2", NEOX rotation, nothing permuted, q/k/v biases;
 *   bert: arch "bert", llama.cpp's tensor names, pooling_type 1 (mean);
 * then loaded through qr_model_load and compared with the expected logits /
 * embeddings. A second pass writes the 2-D tensors whose rows are whole
 * 32-blocks as Q8_0 (the permutation then moves rows of blocks) and loads them
 * as f32 and as int8: errors are reported and loosely bounded. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/dtype.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"

/* ------------------------------------------------------------ GGUF writer -- */

typedef struct {
    char name[300];
    int n_dims;
    int64_t shape[2]; /* torch order */
    float *data;      /* owned */
    uint8_t *q8;      /* Q8_0 blocks when quantized (owned), else NULL */
} gt;

static bool QUANT; /* write 2-D tensors as Q8_0 */

/* GGML Q8_0: per 32 values, f16 d = max|x| / 127 and int8 q = round(x / d). */
static void quantize_q8_0(gt *t)
{
    int64_t n = t->shape[0] * t->shape[1], nb = n / 32;
    t->q8 = malloc((size_t)nb * 34);
    for (int64_t b = 0; b < nb; b++) {
        const float *x = t->data + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0;
        uint16_t h = qr_f32_to_f16(d);
        memcpy(t->q8 + b * 34, &h, 2);
        for (int i = 0; i < 32; i++)
            t->q8[b * 34 + 2 + i] = (uint8_t)(int8_t)lrintf(x[i] * id);
    }
}

typedef struct {
    FILE *kv;          /* key/value section, built in memory */
    char *kv_buf;
    size_t kv_len;
    uint64_t n_kv;
    gt t[512];
    int n_t;
} gw;

static void w_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void w_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void w_str(FILE *f, const char *s)
{
    w_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}

static void kv_u32(gw *g, const char *k, uint32_t v)
{
    w_str(g->kv, k);
    w_u32(g->kv, 4); /* GGUF_TYPE_UINT32 */
    w_u32(g->kv, v);
    g->n_kv++;
}

static void kv_f32(gw *g, const char *k, float v)
{
    w_str(g->kv, k);
    w_u32(g->kv, 6); /* GGUF_TYPE_FLOAT32 */
    fwrite(&v, 4, 1, g->kv);
    g->n_kv++;
}

static void kv_str(gw *g, const char *k, const char *v)
{
    w_str(g->kv, k);
    w_u32(g->kv, 8); /* GGUF_TYPE_STRING */
    w_str(g->kv, v);
    g->n_kv++;
}

static void add_t(gw *g, const char *name, const qr_wtensor *src, int perm_heads, int head_dim)
{
    gt *t = &g->t[g->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = src->n_dims;
    int64_t rows = src->n_dims == 2 ? src->shape[0] : 1, cols = src->n_dims == 2 ? src->shape[1] : src->shape[0];
    t->shape[0] = src->shape[0];
    t->shape[1] = src->n_dims == 2 ? src->shape[1] : 0;
    t->data = malloc((size_t)(rows * cols) * sizeof(float));
    CHECK_OK(qr_convert_to_f32(src->dtype, src->data, rows * cols, t->data));
    if (perm_heads) {
        /* units: rows of a matrix, elements of a bias */
        int64_t n_units = src->n_dims == 2 ? rows : cols, unit = src->n_dims == 2 ? cols : 1;
        int half = head_dim / 2;
        float *p = malloc((size_t)(rows * cols) * sizeof(float));
        CHECK(n_units == (int64_t)perm_heads * head_dim);
        for (int h = 0; h < perm_heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    memcpy(p + ((size_t)h * head_dim + 2 * i + j) * unit,
                           t->data + ((size_t)h * head_dim + (size_t)j * half + i) * unit, (size_t)unit * sizeof(float));
        free(t->data);
        t->data = p;
    }
    if (QUANT && t->n_dims == 2 && t->shape[1] % 32 == 0)
        quantize_q8_0(t);
}

static void add_vec(gw *g, const char *name, const float *v, int n)
{
    gt *t = &g->t[g->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = 1;
    t->shape[0] = n;
    t->data = malloc((size_t)n * sizeof(float));
    memcpy(t->data, v, (size_t)n * sizeof(float));
}

static int write_gguf(gw *g, const char *path)
{
    fflush(g->kv);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite("GGUF", 1, 4, f);
    w_u32(f, 3);
    w_u64(f, (uint64_t)g->n_t);
    w_u64(f, g->n_kv);
    fwrite(g->kv_buf, 1, g->kv_len, f);
    uint64_t off = 0;
    for (int i = 0; i < g->n_t; i++) {
        gt *t = &g->t[i];
        w_str(f, t->name);
        w_u32(f, (uint32_t)t->n_dims);
        for (int d = t->n_dims - 1; d >= 0; d--) /* ne[]: innermost first */
            w_u64(f, (uint64_t)t->shape[d]);
        w_u32(f, t->q8 ? 8 : 0); /* GGML_TYPE_Q8_0 / GGML_TYPE_F32 */
        w_u64(f, off);
        int64_t n = t->n_dims == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
        uint64_t bytes = t->q8 ? (uint64_t)n / 32 * 34 : (uint64_t)n * 4;
        off += (bytes + 31) / 32 * 32;
    }
    long pos = ftell(f);
    for (; pos % 32; pos++)
        fputc(0, f);
    for (int i = 0; i < g->n_t; i++) {
        gt *t = &g->t[i];
        int64_t n = t->n_dims == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
        int64_t bytes = t->q8 ? n / 32 * 34 : n * 4;
        fwrite(t->q8 ? (const void *)t->q8 : (const void *)t->data, 1, (size_t)bytes, f);
        for (int64_t k = bytes; k % 32; k++)
            fputc(0, f);
    }
    fclose(f);
    return 0;
}

static void gw_init(gw *g)
{
    memset(g, 0, sizeof *g);
    g->kv = open_memstream(&g->kv_buf, &g->kv_len);
}

static void gw_free(gw *g)
{
    fclose(g->kv);
    free(g->kv_buf);
    for (int i = 0; i < g->n_t; i++) {
        free(g->t[i].data);
        free(g->t[i].q8);
    }
}

/* ------------------------------------------------------------ conversion -- */

static const struct { const char *hf, *gg; } LLAMA_NAMES[] = {
    {"input_layernorm.weight", "attn_norm.weight"}, {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},   {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},       {"self_attn.v_proj.bias", "attn_v.bias"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"}, {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"},
};

static const struct { const char *hf, *gg; } BERT_NAMES[] = {
    {"attention.self.query.weight", "attn_q.weight"}, {"attention.self.query.bias", "attn_q.bias"},
    {"attention.self.key.weight", "attn_k.weight"},   {"attention.self.key.bias", "attn_k.bias"},
    {"attention.self.value.weight", "attn_v.weight"}, {"attention.self.value.bias", "attn_v.bias"},
    {"attention.output.dense.weight", "attn_output.weight"}, {"attention.output.dense.bias", "attn_output.bias"},
    {"attention.output.LayerNorm.weight", "attn_output_norm.weight"},
    {"attention.output.LayerNorm.bias", "attn_output_norm.bias"},
    {"intermediate.dense.weight", "ffn_up.weight"},   {"intermediate.dense.bias", "ffn_up.bias"},
    {"output.dense.weight", "ffn_down.weight"},       {"output.dense.bias", "ffn_down.bias"},
    {"output.LayerNorm.weight", "layer_output_norm.weight"}, {"output.LayerNorm.bias", "layer_output_norm.bias"},
};

static int convert(const char *dir, const char *out)
{
    qr_model_config c;
    qr_wsrc *w = NULL;
    gw g;
    char a[256], b[256];
    if (qr_config_from_dir(dir, &c) || qr_wsrc_open(dir, &w))
        return -1;
    gw_init(&g);
    bool bert = c.arch == QR_ARCH_BERT, llama = c.arch == QR_ARCH_LLAMA;
    const char *arch = bert ? "bert" : llama ? "llama" : "qwen2";
    kv_str(&g, "general.architecture", arch);
#define K(suffix) (snprintf(a, sizeof a, "%s.%s", arch, suffix), a)
    kv_u32(&g, K("context_length"), (uint32_t)c.max_pos);
    kv_u32(&g, K("embedding_length"), (uint32_t)c.d_model);
    kv_u32(&g, K("block_count"), (uint32_t)c.n_layer);
    kv_u32(&g, K("feed_forward_length"), (uint32_t)c.d_ff);
    kv_u32(&g, K("attention.head_count"), (uint32_t)c.n_head);
    kv_u32(&g, K("vocab_size"), (uint32_t)c.vocab_size);
    if (bert) {
        kv_f32(&g, K("attention.layer_norm_epsilon"), c.norm_eps);
        kv_u32(&g, K("pooling_type"), 1);
    } else {
        kv_u32(&g, K("attention.head_count_kv"), (uint32_t)c.n_kv_head);
        kv_f32(&g, K("attention.layer_norm_rms_epsilon"), c.norm_eps);
        kv_f32(&g, K("rope.freq_base"), c.rope_theta);
        kv_u32(&g, "tokenizer.ggml.bos_token_id", (uint32_t)c.bos_id);
        kv_u32(&g, "tokenizer.ggml.eos_token_id", (uint32_t)c.eos_ids[0]);
    }
    const qr_wtensor *t;
    if (bert) {
        static const char *const emb[][2] = {{"embeddings.word_embeddings.weight", "token_embd.weight"},
                                             {"embeddings.position_embeddings.weight", "position_embd.weight"},
                                             {"embeddings.token_type_embeddings.weight", "token_types.weight"},
                                             {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
                                             {"embeddings.LayerNorm.bias", "token_embd_norm.bias"}};
        for (size_t i = 0; i < 5; i++)
            if ((t = qr_wsrc_find(w, emb[i][0])))
                add_t(&g, emb[i][1], t, 0, 0);
        for (int l = 0; l < c.n_layer; l++)
            for (size_t i = 0; i < sizeof BERT_NAMES / sizeof BERT_NAMES[0]; i++) {
                snprintf(a, sizeof a, "encoder.layer.%d.%s", l, BERT_NAMES[i].hf);
                snprintf(b, sizeof b, "blk.%d.%s", l, BERT_NAMES[i].gg);
                if ((t = qr_wsrc_find(w, a)))
                    add_t(&g, b, t, 0, 0);
            }
    } else {
        if ((t = qr_wsrc_find(w, "model.embed_tokens.weight")))
            add_t(&g, "token_embd.weight", t, 0, 0);
        if ((t = qr_wsrc_find(w, "model.norm.weight")))
            add_t(&g, "output_norm.weight", t, 0, 0);
        if ((t = qr_wsrc_find(w, "lm_head.weight")) && !c.tie_embeddings)
            add_t(&g, "output.weight", t, 0, 0);
        for (int l = 0; l < c.n_layer; l++)
            for (size_t i = 0; i < sizeof LLAMA_NAMES / sizeof LLAMA_NAMES[0]; i++) {
                snprintf(a, sizeof a, "model.layers.%d.%s", l, LLAMA_NAMES[i].hf);
                snprintf(b, sizeof b, "blk.%d.%s", l, LLAMA_NAMES[i].gg);
                int perm = 0;
                if (llama && strstr(a, "q_proj"))
                    perm = c.n_head;
                if (llama && strstr(a, "k_proj"))
                    perm = c.n_kv_head;
                if ((t = qr_wsrc_find(w, a)))
                    add_t(&g, b, t, perm, c.head_dim);
            }
        if (c.rope_scaling == QR_ROPE_LLAMA3) {
            /* llama.cpp's converter: divisor 1 (high band), factor (low band),
             * 1 / ((1 - s)/factor + s) in between */
            float div[256];
            int half = c.head_dim / 2;
            double lo_wl = c.rope_orig_max_pos / c.rope_low_freq_factor,
                   hi_wl = c.rope_orig_max_pos / c.rope_high_freq_factor;
            for (int i = 0; i < half; i++) {
                double f = 1.0 / pow(c.rope_theta, 2.0 * i / c.head_dim), wl = 2 * 3.14159265358979323846 / f;
                if (wl < hi_wl)
                    div[i] = 1;
                else if (wl > lo_wl)
                    div[i] = c.rope_factor;
                else {
                    double s = (c.rope_orig_max_pos / wl - c.rope_low_freq_factor) /
                               (c.rope_high_freq_factor - c.rope_low_freq_factor);
                    div[i] = (float)(1.0 / ((1 - s) / c.rope_factor + s));
                }
            }
            add_vec(&g, "rope_freqs.weight", div, half);
        }
    }
#undef K
    int rc = write_gguf(&g, out);
    gw_free(&g);
    qr_wsrc_close(w);
    return rc;
}

/* ------------------------------------------------------------ checks -- */

static double row_err(const float *got, const json_t *want, int n)
{
    double e = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        double w = json_number_value(json_array_get(want, (size_t)i));
        e = fmax(e, fabs(got[i] - w));
        mx = fmax(mx, fabs(w));
    }
    return e / (mx > 0 ? mx : 1);
}

static void check_decoder(qr_model *m, json_t *ex, const char *name, const char *what)
{
    int V = qr_model_cfg(m)->vocab_size;
    const json_t *pj = json_object_get(ex, "prompt"), *gj = json_object_get(ex, "greedy");
    const json_t *all = json_object_get(ex, "logits_all"), *dec = json_object_get(ex, "logits_decode");
    int np = (int)json_array_size(pj), ng = (int)json_array_size(gj);
    int32_t prompt[64];
    for (int i = 0; i < np && i < 64; i++)
        prompt[i] = (int32_t)json_integer_value(json_array_get(pj, (size_t)i));
    float *lg = malloc((size_t)V * sizeof *lg);
    qr_decoder_state *st = NULL;
    CHECK_OK(qr_decoder_state_create(m, 1, 64, &st));
    qr_dec_seq s = {.slot = 0, .ids = prompt, .n = np};
    CHECK_OK(qr_decoder_step(st, &s, 1, lg));
    double e = row_err(lg, json_array_get(all, (size_t)np - 1), V);
    int agree = 0;
    for (int j = 0; j < ng; j++) {
        e = fmax(e, row_err(lg, json_array_get(dec, (size_t)j), V));
        int32_t want = (int32_t)json_integer_value(json_array_get(gj, (size_t)j));
        agree += qr_test_argmax(lg, V) == want;
        qr_dec_seq s1 = {.slot = 0, .ids = &want, .n = 1};
        CHECK_OK(qr_decoder_step(st, &s1, 1, lg));
    }
    printf("%-8s from GGUF %s: rel max|dlogit| %.2e, greedy %d/%d\n", name, what, e, agree, ng);
    if (!QUANT) {
        CHECK(e <= 1e-3);
        CHECK_INT(agree, ng);
    } else {
        CHECK(e <= 0.1); /* 8-bit weights: quantization error, not a wrong layout (that gives O(1)) */
    }
    qr_decoder_state_free(st);
    free(lg);
}

static void check_encoder(qr_model *m, json_t *ex, const char *what)
{
    int D = qr_model_cfg(m)->d_model;
    const json_t *in = json_object_get(ex, "inputs"), *emb = json_object_get(ex, "embeddings");
    int n = (int)json_array_size(in);
    double worst = 1;
    float *out = malloc((size_t)D * sizeof *out);
    for (int i = 0; i < n; i++) {
        const json_t *sj = json_array_get(in, (size_t)i);
        int32_t len = (int32_t)json_array_size(sj), ids[512];
        for (int k = 0; k < len && k < 512; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(sj, (size_t)k));
        const int32_t *p = ids;
        CHECK_OK(qr_embed_ids(m, &p, &len, 1, out));
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < D; k++) {
            double y = json_number_value(json_array_get(json_array_get(emb, (size_t)i), (size_t)k));
            ab += out[k] * y;
            aa += (double)out[k] * out[k];
            bb += y * y;
        }
        worst = fmin(worst, ab / sqrt(aa * bb));
    }
    printf("bert     from GGUF %s: min cosine %.8f\n", what, worst);
    CHECK(worst >= (QUANT ? 0.999 : 0.99999));
    free(out);
}

int main(void)
{
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    if (!be)
        return qr_test_done();
    const char *names[] = {"llama3", "mistral", "qwen2", "bert_minilm"};
    for (int pass = 0; pass < 3; pass++)
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        /* pass 0: F32 file; 1: Q8_0 file loaded as f32; 2: Q8_0 file loaded as int8 */
        QUANT = pass > 0;
        const char *what = pass == 0 ? "f32" : pass == 1 ? "q8_0->f32" : "q8_0->int8";
        char rel[64], path[64], exp[8300];
        snprintf(rel, sizeof rel, "models/%s", names[k]);
        const char *dir = FIXTURE(rel);
        snprintf(path, sizeof path, "/tmp/quire_test_gguf_%d_%zu.gguf", (int)getpid(), k);
        CHECK_MSG(convert(dir, path) == 0, "convert %s: %s", dir, qr_last_error());
        snprintf(exp, sizeof exp, "%s/expected.json", dir);
        json_error_t je;
        json_t *ex = json_load_file(exp, 0, &je);
        CHECK(ex != NULL);
        qr_model_opts o = {.dtype = pass == 2 ? QR_I8 : QR_F32};
        qr_model *m = NULL;
        CHECK_OK(qr_model_load(path, &o, be, &m));
        if (m && ex) {
            const qr_model_config *c = qr_model_cfg(m);
            CHECK(c->arch == (k == 3 ? QR_ARCH_BERT : k == 2 ? QR_ARCH_QWEN2 : QR_ARCH_LLAMA));
            if (k == 2)
                CHECK(c->qkv_bias && c->tie_embeddings);
            if (k == 3)
                check_encoder(m, ex, what);
            else
                check_decoder(m, ex, names[k], what);
        }
        qr_model_free(m);
        json_decref(ex);
        unlink(path);
    }
    qr_backend_destroy(be);
    return qr_test_done();
}
