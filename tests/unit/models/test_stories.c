/* stories260K (llama2.c's trained 260K-parameter Llama, GGUF, F32): a 60-step
 * greedy decode from BOS must reproduce greedy_from_bos_60.ref.txt exactly.
 * The reference file's first line is the 60 generated ids (BOS not included:
 * its first id, 403, is " Once"); the second line their text.
 * This also proves the GGUF Q/K row un-permutation (model.c): without it the
 * half-rotation RoPE rotates the wrong pairs and only 10 of the 60 ids agree
 * (measured by disabling it), with it all 60 do.
 * Also: batched multi-slot steps and chunked prefill agree with one-token
 * steps, generate()'s stop strings and streaming, bf16/int8 agreement. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

#define N_REF 60

static int32_t ref[N_REF];
static char ref_text[1024]; /* second line, without its newline */

static int read_ref(void)
{
    FILE *f = fopen(FIXTURE("models/stories260K/greedy_from_bos_60.ref.txt"), "r");
    if (!f)
        return -1;
    char line[4096];
    if (!fgets(line, sizeof line, f) || !fgets(ref_text, sizeof ref_text, f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    ref_text[strcspn(ref_text, "\n")] = 0;
    char *p = strchr(line, '[');
    int n = 0;
    while (p && n < N_REF) {
        p++;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ref[n++] = (int32_t)v;
        p = strchr(end, ',');
    }
    return n;
}

/* Greedy decode of n tokens from BOS with one-token steps; returns how many agree with ref. */
static int greedy_agree(qr_model *m, int32_t *got)
{
    const qr_model_config *c = qr_model_cfg(m);
    qr_decoder_state *st = NULL;
    float *lg = malloc((size_t)c->vocab_size * sizeof *lg);
    int agree = 0;
    CHECK_OK(qr_decoder_state_create(m, 1, 128, &st));
    if (!st)
        goto done;
    int32_t tok = 1;
    for (int i = 0; i < N_REF; i++) {
        qr_dec_seq s = {.slot = 0, .ids = &tok, .n = 1};
        int rc = qr_decoder_step(st, &s, 1, lg);
        CHECK_OK(rc);
        if (rc)
            break;
        tok = qr_test_argmax(lg, c->vocab_size);
        got[i] = tok;
        agree += tok == ref[i];
    }
done:
    qr_decoder_state_free(st);
    free(lg);
    return agree;
}

typedef struct {
    char buf[4096];
    size_t len;
    int calls;
} stream;

static int on_token(int32_t id, const char *piece, void *user)
{
    stream *s = user;
    size_t n = strlen(piece);
    if (s->len + n < sizeof s->buf) {
        memcpy(s->buf + s->len, piece, n + 1);
        s->len += n;
    }
    s->calls++;
    (void)id;
    return 0;
}

static void test_generate(qr_model *m)
{
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.max_tokens = N_REF;
    int32_t bos = 1;
    qr_gen_result r = {0}, r2 = {0};
    stream s = {.len = 0};
    bool has_tok = qr_model_tokenizer(m) != NULL;
    if (!has_tok)
        printf("NOTE: no tokenizer for stories260K in this build: text, stop-string and streaming checks skipped\n");
    CHECK_OK(qr_generate(m, &bos, 1, &p, on_token, &s, &r));
    CHECK_INT(r.n_ids, N_REF);
    int same = r.n_ids == N_REF;
    for (size_t i = 0; same && i < r.n_ids; i++)
        same = r.ids[i] == ref[i];
    CHECK_MSG(same, "qr_generate ids differ from the reference");
    CHECK(strcmp(r.finish, "length") == 0);
    CHECK_INT(r.n_prompt, 1);
    CHECK(r.text != NULL);
    CHECK_INT(s.calls, N_REF);
    if (has_tok) {
        /* the reference line is the pieces printed raw (" Once ..."); a decode
         * drops the SentencePiece leading space, as HF's decode does */
        CHECK_MSG(r.text && strcmp(r.text, ref_text + (ref_text[0] == ' ')) == 0, "text '%s'", r.text);
        CHECK_MSG(r.text && strcmp(s.buf, r.text) == 0, "streamed '%s' vs text '%s'", s.buf, r.text);
    }
    printf("stories260K generate: \"%s\" (prefill %.4f s, decode %.4f s)\n", r.text, r.prefill_s, r.decode_s);
    char *full = r.text ? strdup(r.text) : NULL;
    qr_gen_result_free(&r);

    /* stop string spanning tokens: cut before it, streamed pieces add up */
    const char *stops[] = {"xyz", "ily. She"};
    if (!has_tok)
        goto no_tok;
    p.stop = stops;
    p.n_stop = 2;
    memset(&s, 0, sizeof s);
    CHECK_OK(qr_generate(m, &bos, 1, &p, on_token, &s, &r));
    CHECK(strcmp(r.finish, "stop") == 0);
    const char *at = full ? strstr(full, "ily. She") : NULL;
    CHECK(at != NULL);
    if (at && r.text) {
        CHECK_INT(strlen(r.text), (size_t)(at - full));
        CHECK(strncmp(r.text, full, (size_t)(at - full)) == 0);
    }
    CHECK_MSG(r.text && strcmp(s.buf, r.text) == 0, "streamed '%s' vs text '%s'", s.buf, r.text ? r.text : "");
    CHECK(r.n_ids < N_REF && r.n_ids > 5);
    for (size_t i = 0; i < r.n_ids; i++)
        CHECK_INT(r.ids[i], ref[i]);
    qr_gen_result_free(&r);
no_tok:
    free(full);

    /* max_tokens beyond the context is capped, not an error */
    const qr_model_config *c = qr_model_cfg(m);
    p.n_stop = 0;
    p.stop = NULL;
    p.max_tokens = 1 << 30;
    p.temperature = 1.0f;
    p.seed = 7;
    CHECK_OK(qr_generate(m, &bos, 1, &p, NULL, NULL, &r));
    CHECK(r.n_ids <= (size_t)c->max_pos - 1);
    qr_gen_result_free(&r);
    /* sampling with a seed is reproducible */
    p.max_tokens = 20;
    CHECK_OK(qr_generate(m, &bos, 1, &p, NULL, NULL, &r));
    CHECK_OK(qr_generate(m, &bos, 1, &p, NULL, NULL, &r2));
    CHECK(r.n_ids == r2.n_ids && memcmp(r.ids, r2.ids, r.n_ids * sizeof *r.ids) == 0);
    qr_gen_result_free(&r);
    qr_gen_result_free(&r2);
}

/* Prefill in one chunk + several slots in one step == one token at a time. */
static void test_batching(qr_model *m)
{
    const qr_model_config *c = qr_model_cfg(m);
    int V = c->vocab_size;
    int32_t seq[9] = {1};
    memcpy(seq + 1, ref, 8 * sizeof(int32_t));
    float *one = malloc((size_t)9 * V * sizeof(float)), *lg = malloc((size_t)3 * V * sizeof(float));
    qr_decoder_state *st = NULL;
    CHECK_OK(qr_decoder_state_create(m, 3, 32, &st));
    if (!st)
        goto done;
    /* slot 2: token by token, keep every position's logits */
    for (int i = 0; i < 9; i++) {
        qr_dec_seq s = {.slot = 2, .ids = seq + i, .n = 1};
        CHECK_OK(qr_decoder_step(st, &s, 1, one + (size_t)i * V));
    }
    CHECK_INT(qr_decoder_slot_len(st, 2), 9);
    /* one step: slot 0 prefills 6 tokens, slot 1 prefills 3 (slot 2 idle) */
    qr_dec_seq b[2] = {{.slot = 0, .ids = seq, .n = 6}, {.slot = 1, .ids = seq, .n = 3}};
    CHECK_OK(qr_decoder_step(st, b, 2, lg));
    double err = 0, mx = 0;
    for (int j = 0; j < V; j++) {
        err = fmax(err, fabs(lg[j] - one[(size_t)5 * V + j]));
        err = fmax(err, fabs(lg[V + j] - one[(size_t)2 * V + j]));
        mx = fmax(mx, fabs(one[(size_t)5 * V + j]));
    }
    /* next: slot 0 decodes one token, slot 1 prefills 5 more, slot 2 truncated and re-decoded */
    CHECK_OK(qr_decoder_slot_truncate(st, 2, 4));
    qr_dec_seq b2[3] = {{.slot = 1, .ids = seq + 3, .n = 5}, {.slot = 0, .ids = seq + 6, .n = 1},
                        {.slot = 2, .ids = seq + 4, .n = 1}};
    CHECK_OK(qr_decoder_step(st, b2, 3, lg));
    for (int j = 0; j < V; j++) {
        err = fmax(err, fabs(lg[j] - one[(size_t)7 * V + j]));
        err = fmax(err, fabs(lg[V + j] - one[(size_t)6 * V + j]));
        err = fmax(err, fabs(lg[2 * V + j] - one[(size_t)4 * V + j]));
    }
    printf("batched vs one-token steps: max |dlogit| %.3g (max |logit| %.3g)\n", err, mx);
    CHECK(err <= 1e-4 * mx);
    CHECK_INT(qr_decoder_slot_len(st, 0), 7);
    CHECK_INT(qr_decoder_slot_len(st, 1), 8);
    CHECK_INT(qr_decoder_slot_len(st, 2), 5);

    /* errors: over the context, a slot twice, a bad id; lengths unchanged */
    int32_t many[40] = {0};
    qr_dec_seq big = {.slot = 0, .ids = many, .n = 30};
    CHECK_INT(qr_decoder_step(st, &big, 1, lg), QR_ELIMIT);
    qr_dec_seq twice[2] = {{.slot = 1, .ids = seq, .n = 1}, {.slot = 1, .ids = seq, .n = 1}};
    CHECK_INT(qr_decoder_step(st, twice, 2, lg), QR_EINVAL);
    int32_t bad = V;
    qr_dec_seq badid = {.slot = 0, .ids = &bad, .n = 1};
    CHECK_INT(qr_decoder_step(st, &badid, 1, lg), QR_EINVAL);
    CHECK_INT(qr_decoder_slot_len(st, 0), 7);
done:
    qr_decoder_state_free(st);
    free(one);
    free(lg);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int n = read_ref();
    CHECK_INT(n, N_REF);
    if (n != N_REF)
        return qr_test_done();
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    if (!be)
        return qr_test_done();
    const char *path = FIXTURE("models/stories260K/stories260K.gguf");
    const qr_dtype dts[] = {QR_F32, QR_BF16, QR_F16, QR_I8};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        qr_model_opts o = {.dtype = dts[k]};
        qr_model *m = NULL;
        CHECK_OK(qr_model_load(path, &o, be, &m));
        if (!m)
            continue;
        qr_mem_estimate e;
        CHECK_OK(qr_model_estimate(qr_model_cfg(m), dts[k], 100, 2, 16, &e));
        CHECK_INT(e.weights, qr_model_weight_bytes(m)); /* config arithmetic == bytes loaded */
        CHECK_INT(e.kv_cache, 2ull * 5 * (4 * 8) * 4 * 100 * 2);
        int32_t got[N_REF];
        int agree = greedy_agree(m, got);
        printf("stories260K %s: %d/%d greedy tokens agree with the reference (weights %.1f KiB)\n",
               qr_dtype_name(dts[k]), agree, N_REF, qr_model_weight_bytes(m) / 1024.0);
        if (dts[k] == QR_F32) {
            CHECK_INT(agree, N_REF);
            if (agree != N_REF) {
                fprintf(stderr, "got:");
                for (int i = 0; i < N_REF; i++)
                    fprintf(stderr, " %d", got[i]);
                fprintf(stderr, "\n");
            }
            test_generate(m);
            test_batching(m);
        }
        qr_model_free(m);
    }
    qr_model_free(NULL);
    qr_backend_destroy(be);
    return qr_test_done();
}
