/* Numeric parity with an independent float64 torch reference
 * (tools/reference/ref_models.py, fixtures in tests/fixtures/models/):
 * - decoders (Llama-3.1 structure with llama3 RoPE scaling, Qwen2 with q/k/v
 *   bias and tied embeddings, Mistral with GQA): logits of every prompt
 *   position (one-token steps over the KV cache), of a one-chunk prefill, and
 *   of a 16-token greedy continuation, max |d| <= 1e-3 max|logit| per row;
 *   the greedy ids exactly; qr_generate gives the same ids.
 * - encoder (MiniLM structure): 6 sequences of unequal lengths in one packed
 *   batch, cosine >= 0.99999 with the expected embeddings.
 * bf16 / f16 / int8 errors are printed (and bounded loosely).
 * Plus: truncation keeps [SEP]; a config/tensor shape mismatch is reported
 * naming the tensor and both shapes. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

static qr_backend *be;

static json_t *load_expected(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/expected.json", dir);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j)
        fprintf(stderr, "%s: %s\n", p, e.text);
    return j;
}

static int32_t *ids_of(const json_t *a, int *n)
{
    *n = (int)json_array_size(a);
    int32_t *ids = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

/* max |got - want| / max |want| over one row */
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

typedef struct {
    char buf[8192];
    size_t len;
} sink;

static int on_piece(int32_t id, const char *piece, void *user)
{
    sink *s = user;
    size_t n = strlen(piece);
    if (s->len + n < sizeof s->buf) {
        memcpy(s->buf + s->len, piece, n + 1);
        s->len += n;
    }
    (void)id;
    return 0;
}

/* Streaming pieces add up to the text; a stop string taken from the middle of
 * the greedy text cuts it exactly before its first occurrence. */
static void test_stream_stop(qr_model *m, const int32_t *prompt, int np, const qr_sample_params *p0, const char *full)
{
    qr_sample_params p = *p0;
    qr_gen_result r = {0};
    sink s = {.len = 0};
    CHECK_OK(qr_generate(m, prompt, (size_t)np, &p, on_piece, &s, &r));
    CHECK_MSG(r.text && strcmp(s.buf, r.text) == 0, "streamed '%s' vs '%s'", s.buf, r.text ? r.text : "");
    qr_gen_result_free(&r);
    size_t fl = strlen(full);
    if (fl < 8)
        return;
    char stop[8];
    memcpy(stop, full + fl / 2 - 2, 5);
    stop[5] = 0;
    const char *stops[] = {stop};
    const char *first = strstr(full, stop);
    p.stop = stops;
    p.n_stop = 1;
    memset(&s, 0, sizeof s);
    CHECK_OK(qr_generate(m, prompt, (size_t)np, &p, on_piece, &s, &r));
    printf("  stop string at byte %ld of %zu: kept %zu bytes, %zu ids, streamed %zu bytes\n",
           first ? (long)(first - full) : -1L, fl, r.text ? strlen(r.text) : 0, r.n_ids, s.len);
    CHECK(r.finish && strcmp(r.finish, "stop") == 0);
    CHECK(r.text && first && strlen(r.text) == (size_t)(first - full) && strncmp(r.text, full, strlen(r.text)) == 0);
    CHECK_MSG(r.text && strcmp(s.buf, r.text) == 0, "streamed '%s' vs '%s'", s.buf, r.text ? r.text : "");
    qr_gen_result_free(&r);
}

static void test_decoder(const char *name, qr_dtype dt)
{
    char d[128];
    snprintf(d, sizeof d, "models/%s", name);
    const char *dir = FIXTURE(d);
    json_t *ex = load_expected(dir);
    CHECK(ex != NULL);
    if (!ex)
        return;
    qr_model_opts o = {.dtype = dt};
    qr_model *m = NULL;
    CHECK_OK(qr_model_load(dir, &o, be, &m));
    if (!m) {
        json_decref(ex);
        return;
    }
    const qr_model_config *c = qr_model_cfg(m);
    int V = c->vocab_size, np, ng;
    qr_mem_estimate me;
    CHECK_OK(qr_model_estimate(c, dt, 64, 1, 12, &me));
    CHECK_INT(me.weights, qr_model_weight_bytes(m));
    int32_t *prompt = ids_of(json_object_get(ex, "prompt"), &np);
    int32_t *greedy = ids_of(json_object_get(ex, "greedy"), &ng);
    const json_t *all = json_object_get(ex, "logits_all"), *dec = json_object_get(ex, "logits_decode");
    float *lg = malloc((size_t)V * sizeof *lg);
    qr_decoder_state *st = NULL;
    double e_steps = 0, e_prefill = 0, e_dec = 0;
    int agree = 0;
    CHECK_OK(qr_decoder_state_create(m, 2, 64, &st));
    if (!st)
        goto done;
    for (int i = 0; i < np; i++) { /* slot 0: one token per step */
        qr_dec_seq s = {.slot = 0, .ids = prompt + i, .n = 1};
        CHECK_OK(qr_decoder_step(st, &s, 1, lg));
        e_steps = fmax(e_steps, row_err(lg, json_array_get(all, (size_t)i), V));
    }
    qr_dec_seq s = {.slot = 1, .ids = prompt, .n = np}; /* slot 1: one chunk */
    CHECK_OK(qr_decoder_step(st, &s, 1, lg));
    e_prefill = row_err(lg, json_array_get(all, (size_t)np - 1), V);
    for (int j = 0; j < ng; j++) {
        e_dec = fmax(e_dec, row_err(lg, json_array_get(dec, (size_t)j), V));
        int t = qr_test_argmax(lg, V);
        agree += t == greedy[j];
        int32_t feed = greedy[j]; /* teacher-forced, so later rows stay comparable */
        qr_dec_seq s1 = {.slot = 1, .ids = &feed, .n = 1};
        CHECK_OK(qr_decoder_step(st, &s1, 1, lg));
    }
    e_dec = fmax(e_dec, row_err(lg, json_array_get(dec, (size_t)ng), V));
    printf("%-8s %-4s: rel max|dlogit| prompt steps %.2e, prefill %.2e, decode %.2e; greedy %d/%d; weights %.1f KiB\n",
           name, qr_dtype_name(dt), e_steps, e_prefill, e_dec, agree, ng, qr_model_weight_bytes(m) / 1024.0);
    if (dt == QR_F32) {
        CHECK(e_steps <= 1e-3);
        CHECK(e_prefill <= 1e-3);
        CHECK(e_dec <= 1e-3);
        CHECK_INT(agree, ng);
        qr_sample_params p;
        qr_sample_params_default(&p);
        p.max_tokens = ng;
        qr_gen_result r = {0};
        CHECK_OK(qr_generate(m, prompt, (size_t)np, &p, NULL, NULL, &r));
        CHECK_INT(r.n_ids, ng);
        CHECK(r.n_ids == (size_t)ng && memcmp(r.ids, greedy, (size_t)ng * sizeof *greedy) == 0);
        if (qr_model_tokenizer(m))
            test_stream_stop(m, prompt, np, &p, r.text);
        qr_gen_result_free(&r);
    } else {
        /* loose sanity bounds: reduced precision, not broken */
        CHECK(e_steps <= (dt == QR_F16 ? 1e-2 : 0.1));
    }
done:
    qr_decoder_state_free(st);
    free(lg);
    free(prompt);
    free(greedy);
    qr_model_free(m);
    json_decref(ex);
}

static double cosine(const float *a, const json_t *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        double y = json_number_value(json_array_get(b, (size_t)i));
        ab += a[i] * y;
        aa += (double)a[i] * a[i];
        bb += y * y;
    }
    return ab / sqrt(aa * bb);
}

static void test_encoder(qr_dtype dt)
{
    const char *dir = FIXTURE("models/bert_minilm");
    json_t *ex = load_expected(dir);
    CHECK(ex != NULL);
    if (!ex)
        return;
    qr_model_opts o = {.dtype = dt};
    qr_model *m = NULL;
    CHECK_OK(qr_model_load(dir, &o, be, &m));
    if (!m) {
        json_decref(ex);
        return;
    }
    const qr_model_config *c = qr_model_cfg(m);
    int D = c->d_model;
    qr_mem_estimate me;
    CHECK_OK(qr_model_estimate(c, dt, 0, 6, 100, &me));
    CHECK_INT(me.weights, qr_model_weight_bytes(m));
    CHECK_INT(me.kv_cache, 0);
    const json_t *in = json_object_get(ex, "inputs"), *emb = json_object_get(ex, "embeddings");
    int n = (int)json_array_size(in);
    int32_t **seqs = calloc((size_t)n, sizeof *seqs), *lens = calloc((size_t)n, sizeof *lens);
    float *out = malloc((size_t)n * D * sizeof *out), *one = malloc((size_t)D * sizeof *one);
    for (int i = 0; i < n; i++)
        seqs[i] = ids_of(json_array_get(in, (size_t)i), &lens[i]);
    CHECK_OK(qr_embed_ids(m, (const int32_t *const *)seqs, lens, n, out));
    double worst = 1, batch_vs_one = 0;
    for (int i = 0; i < n; i++) {
        worst = fmin(worst, cosine(out + (size_t)i * D, json_array_get(emb, (size_t)i), D));
        /* a sequence alone gives the same embedding as inside the packed batch */
        const int32_t *si = seqs[i];
        CHECK_OK(qr_embed_ids(m, &si, &lens[i], 1, one));
        for (int k = 0; k < D; k++)
            batch_vs_one = fmax(batch_vs_one, fabs(one[k] - out[(size_t)i * D + k]));
    }
    printf("bert     %-4s: min cosine %.8f over %d sequences; batch vs single max|d| %.2e\n", qr_dtype_name(dt),
           worst, n, batch_vs_one);
    if (dt == QR_F32) {
        CHECK(worst >= 0.99999);
        CHECK(batch_vs_one <= 1e-5);
        /* L2-normalised (Normalize module) */
        double nn = 0;
        for (int k = 0; k < D; k++)
            nn += (double)out[k] * out[k];
        CHECK_NEAR(nn, 1.0, 1e-5);

        /* truncation to max_seq_length (128): [CLS] x1..x126 [SEP] */
        int lim = qr_embed_seq_limit(m);
        CHECK_INT(lim, 128);
        int32_t longs[200], cut[128];
        longs[0] = 2;
        for (int i = 1; i < 199; i++)
            longs[i] = 10 + (i * 37) % 900;
        longs[199] = 3;
        memcpy(cut, longs, 127 * sizeof *cut);
        cut[127] = 3;
        const int32_t *pl = longs, *pc = cut;
        int32_t ll = 200, lc = 128;
        float *a = malloc((size_t)D * sizeof *a), *b = malloc((size_t)D * sizeof *b);
        CHECK_OK(qr_embed_ids(m, &pl, &ll, 1, a));
        CHECK_OK(qr_embed_ids(m, &pc, &lc, 1, b));
        double dmax = 0;
        for (int k = 0; k < D; k++)
            dmax = fmax(dmax, fabs(a[k] - b[k]));
        CHECK(dmax <= 1e-6);

        /* texts go through the tokenizer with [CLS]/[SEP] added */
        if (qr_model_tokenizer(m)) {
            const char *txt = "hello world";
            size_t tl = strlen(txt);
            int32_t *ids = NULL;
            size_t nid = 0;
            CHECK_OK(qr_tokenize(qr_model_tokenizer(m), txt, tl, true, &ids, &nid));
            if (ids && nid > 0) {
                const int32_t *pi = ids;
                int32_t li = (int32_t)nid;
                CHECK_OK(qr_embed_texts(m, &txt, &tl, 1, a));
                CHECK_OK(qr_embed_ids(m, &pi, &li, 1, b));
                dmax = 0;
                for (int k = 0; k < D; k++)
                    dmax = fmax(dmax, fabs(a[k] - b[k]));
                CHECK(dmax <= 1e-6);
            }
            free(ids);
            /* a long text: the content is truncated, its [SEP] kept (HF: truncate, then add specials) */
            char longtxt[4000] = "";
            for (int w = 0; w < 300; w++)
                strcat(longtxt, w % 3 ? "hello " : "world ");
            tl = strlen(longtxt);
            ids = NULL;
            CHECK_OK(qr_tokenize(qr_model_tokenizer(m), longtxt, tl, true, &ids, &nid));
            if (ids && nid > 128) {
                int32_t cut2[128];
                memcpy(cut2, ids, 127 * sizeof *cut2);
                cut2[127] = ids[nid - 1];
                CHECK(qr_tokenizer_is_special(qr_model_tokenizer(m), ids[nid - 1]));
                const int32_t *pc2 = cut2;
                int32_t lc2 = 128;
                const char *lt = longtxt;
                CHECK_OK(qr_embed_texts(m, &lt, &tl, 1, a));
                CHECK_OK(qr_embed_ids(m, &pc2, &lc2, 1, b));
                dmax = 0;
                for (int k = 0; k < D; k++)
                    dmax = fmax(dmax, fabs(a[k] - b[k]));
                CHECK(dmax <= 1e-6);
            } else {
                CHECK_MSG(0, "long text gave only %zu tokens", nid);
            }
            free(ids);
        }
        free(a);
        free(b);
        /* an id outside the vocabulary is refused */
        int32_t badseq[3] = {2, c->vocab_size, 3}, lb = 3;
        const int32_t *pb = badseq;
        CHECK_INT(qr_embed_ids(m, &pb, &lb, 1, one), QR_EINVAL);
    } else {
        CHECK(worst >= 0.999);
    }
    for (int i = 0; i < n; i++)
        free(seqs[i]);
    free(seqs);
    free(lens);
    free(out);
    free(one);
    qr_model_free(m);
    json_decref(ex);
}

/* A config that disagrees with the weights: the error names the tensor and both shapes. */
static void test_shape_mismatch(void)
{
    char tmp[] = "/tmp/quire_test_parity_XXXXXX";
    if (!mkdtemp(tmp)) {
        CHECK(0);
        return;
    }
    char src[4096], dst[4096], *abs_fix = realpath(FIXTURE("models/qwen2"), NULL);
    CHECK(abs_fix != NULL);
    if (!abs_fix)
        return;
    snprintf(src, sizeof src, "%s/model.safetensors", abs_fix);
    snprintf(dst, sizeof dst, "%s/model.safetensors", tmp);
    CHECK(symlink(src, dst) == 0);
    snprintf(dst, sizeof dst, "%s/config.json", tmp);
    FILE *f = fopen(dst, "w");
    fputs("{\"model_type\": \"qwen2\", \"hidden_size\": 56, \"intermediate_size\": 160, \"num_attention_heads\": 7,"
          " \"num_key_value_heads\": 1, \"num_hidden_layers\": 2, \"vocab_size\": 512, \"tie_word_embeddings\": true}",
          f);
    fclose(f);
    qr_model_opts o = {.dtype = QR_F32};
    qr_model *m = NULL;
    int rc = qr_model_load(tmp, &o, be, &m);
    CHECK_INT(rc, QR_EFORMAT);
    const char *e = qr_last_error();
    CHECK_MSG(strstr(e, "mlp.gate_proj.weight") && strstr(e, "(160, 56)") && strstr(e, "(152, 56)"), "%s", e);
    printf("shape mismatch: %s\n", e);
    qr_model_free(m);
    m = NULL;
    /* untied config over a file without lm_head.weight: the missing tensor is named */
    f = fopen(dst, "w");
    fputs("{\"model_type\": \"qwen2\", \"hidden_size\": 56, \"intermediate_size\": 152, \"num_attention_heads\": 7,"
          " \"num_key_value_heads\": 1, \"num_hidden_layers\": 2, \"vocab_size\": 512, \"tie_word_embeddings\": false}",
          f);
    fclose(f);
    rc = qr_model_load(tmp, &o, be, &m);
    CHECK_INT(rc, QR_ENOTFOUND);
    CHECK_MSG(strstr(qr_last_error(), "lm_head.weight") != NULL, "%s", qr_last_error());
    qr_model_free(m);
    snprintf(dst, sizeof dst, "%s/model.safetensors", tmp);
    unlink(dst);
    snprintf(dst, sizeof dst, "%s/config.json", tmp);
    unlink(dst);
    rmdir(tmp);
    free(abs_fix);
}

int main(void)
{
    CHECK_OK(qr_backend_cpu_create(2, &be));
    if (!be)
        return qr_test_done();
    const qr_dtype dts[] = {QR_F32, QR_BF16, QR_F16, QR_I8};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        test_decoder("llama3", dts[k]);
        test_decoder("qwen2", dts[k]);
        test_decoder("mistral", dts[k]);
        test_encoder(dts[k]);
    }
    test_shape_mismatch();
    qr_backend_destroy(be);
    return qr_test_done();
}
