/* --dtype as-stored on the real SmolLM2-135M-Instruct Q4_1 GGUF (its tensors
 * are Q4_1 and Q8_0), against the same file dequantized to f32 at load:
 * - the weights held equal the file's tensor bytes within 1% (the issue's
 *   memory figure), and are far below the f32 model's;
 * - logits of a prefill and of decode steps agree within a tight bound: both
 *   models compute with the same f32 weight values (the as-stored tiles are
 *   dequantized by the same bit-exact code as the load-time conversion), so
 *   only the summation order differs (sgemm on tiles vs the GEMV kernels);
 * - greedy decoding picks the same ids (agreement printed; all must agree).
 * Those two use the dequantized-tile path (qr_backend_cpu_set_block_tiles).
 * Built with qkern's integer kernels (-Dqkern=enabled), the default path is
 * also compared: activations rounded to int8 per 32 values move logits by
 * ~1% of their range; greedy agreement is printed and must stay high.
 * Also --dtype q8_0 / q4_k on the same file: every tensor in whole blocks of
 * the asked type or the q8_0 fallback (q4_k needs 256 | cols; SmolLM2's 576
 * is not), with the bytes that implies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/cpu/cpu.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"

#define N_PROMPT 20
#define N_GREEDY 24

/* Greedy: prefill ids, then N_GREEDY decode steps; logits of the prefill's
 * last token into first (vocab floats); ids into out. */
static int greedy(qr_model *m, const int32_t *ids, int n, float *first, int32_t *out)
{
    int V = qr_model_cfg(m)->vocab_size, rc;
    qr_decoder_state *st = NULL;
    float *lg = malloc(sizeof(float) * (size_t)V);
    if ((rc = qr_decoder_state_create(m, 1, 256, &st)))
        goto done;
    qr_dec_seq s = {0, ids, n};
    if ((rc = qr_decoder_step(st, &s, 1, lg)))
        goto done;
    memcpy(first, lg, sizeof(float) * (size_t)V);
    for (int k = 0; k < N_GREEDY; k++) {
        out[k] = qr_test_argmax(lg, V);
        qr_dec_seq d = {0, &out[k], 1};
        if ((rc = qr_decoder_step(st, &d, 1, lg)))
            goto done;
    }
done:
    qr_decoder_state_free(st);
    free(lg);
    return rc;
}

int main(void)
{
    const char *path = MODEL("SmolLM2-135M-Instruct-Q4_1.gguf");
    qr_wsrc *src = NULL;
    CHECK_OK(qr_wsrc_open(path, &src));
    if (!src)
        return qr_test_done();
    uint64_t file_bytes = qr_wsrc_bytes(src);
    qr_wsrc_close(src);

    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    if (!be)
        return qr_test_done();
    qr_backend_cpu_set_block_tiles(be, true);
    qr_model *mf = NULL, *ms = NULL;
    qr_model_opts of = {.dtype = QR_F32}, os = {.dtype = QR_AS_STORED};
    CHECK_OK(qr_model_load(path, &of, be, &mf));
    CHECK_OK(qr_model_load(path, &os, be, &ms));
    if (!mf || !ms)
        return qr_test_done();

    uint64_t held = qr_model_weight_bytes(ms);
    double ratio = (double)held / (double)file_bytes;
    printf("as-stored weights %.2f MiB, file tensors %.2f MiB (ratio %.4f); f32 %.2f MiB\n", held / 1048576.0,
           file_bytes / 1048576.0, ratio, qr_model_weight_bytes(mf) / 1048576.0);
    CHECK_MSG(fabs(ratio - 1.0) <= 0.01, "as-stored holds %.4f x the file's tensor bytes", ratio);
    CHECK(qr_model_weight_bytes(mf) > 5 * held);

    int V = qr_model_cfg(mf)->vocab_size;
    int32_t prompt[N_PROMPT], gf[N_GREEDY], gs[N_GREEDY];
    for (int i = 0; i < N_PROMPT; i++) /* ordinary tokens: ids from the middle of the vocabulary */
        prompt[i] = 1000 + (i * 997) % 20000;
    float *lf = malloc(sizeof(float) * (size_t)V), *ls = malloc(sizeof(float) * (size_t)V);
    CHECK_OK(greedy(mf, prompt, N_PROMPT, lf, gf));
    CHECK_OK(greedy(ms, prompt, N_PROMPT, ls, gs));
    double amax = 0, dmax = 0;
    for (int j = 0; j < V; j++) {
        amax = fmax(amax, fabs(lf[j]));
        dmax = fmax(dmax, fabs((double)lf[j] - ls[j]));
    }
    printf("prefill logits: max |as-stored - f32| %.3g, max |logit| %.3g\n", dmax, amax);
    /* f32 summation-order noise through 30 layers: 1e-6 of max |logit|
     * measured (2.8e-5 of 28.9); a wrong block (one bad scale) moves logits
     * by far more */
    CHECK_MSG(dmax <= 1e-5 * amax, "logits differ by %.3g (max |logit| %.3g)", dmax, amax);
    int agree = 0;
    while (agree < N_GREEDY && gf[agree] == gs[agree])
        agree++;
    printf("greedy agreement as-stored vs f32: %d of %d tokens identical before the first difference\n", agree,
           N_GREEDY);
    CHECK_INT(agree, N_GREEDY);
    if (qr_backend_cpu_has_qkern()) {
        qr_backend_cpu_set_block_tiles(be, false);
        CHECK_OK(greedy(ms, prompt, N_PROMPT, ls, gs));
        qr_backend_cpu_set_block_tiles(be, true);
        dmax = 0;
        for (int j = 0; j < V; j++)
            dmax = fmax(dmax, fabs((double)lf[j] - ls[j]));
        int same = 0;
        while (same < N_GREEDY && gf[same] == gs[same])
            same++;
        printf("integer kernels: max |logit - f32| %.3g (max |logit| %.3g); greedy agreement %d of %d\n", dmax, amax,
               same, N_GREEDY);
        CHECK_MSG(dmax <= 0.05 * amax, "integer-kernel logits differ by %.3g", dmax);
        CHECK_MSG(same >= N_GREEDY / 2, "integer kernels: greedy ids differ from token %d", same);
    }
    free(lf);
    free(ls);
    qr_model_free(mf);
    qr_model_free(ms);

    /* quantized at load: q8_0 everywhere (576 and 1536 are whole blocks of 32);
     * q4_k falls back to q8_0 for the 576-column tensors and keeps q4_k for
     * the 1536-column ffn_down: bytes below q8_0's */
    qr_model_opts o8 = {.dtype = QR_Q8_0}, o4 = {.dtype = QR_Q4_K};
    qr_model *m8 = NULL, *m4 = NULL;
    CHECK_OK(qr_model_load(path, &o8, be, &m8));
    CHECK_OK(qr_model_load(path, &o4, be, &m4));
    if (m8 && m4) {
        const qr_model_config *c = qr_model_cfg(m8);
        double elems = 0, vec = (double)c->n_layer * 2 * c->d_model + c->d_model; /* RMSNorm weights, f32 */
        double d = c->d_model, ff = c->d_ff, dq = (double)c->n_head * c->head_dim,
               dkv = (double)c->n_kv_head * c->head_dim;
        elems = c->n_layer * (dq * d + 2 * dkv * d + d * dq + 3 * ff * d) + (double)c->vocab_size * d;
        double want8 = elems * 34 / 32 + vec * 4;
        CHECK_NEAR((double)qr_model_weight_bytes(m8), want8, 0.5);
        double down = c->n_layer * ff * d; /* ffn_down: cols = d_ff = 1536 = 6 x 256 */
        double want4 = (elems - down) * 34 / 32 + down * 144 / 256 + vec * 4;
        CHECK_NEAR((double)qr_model_weight_bytes(m4), want4, 0.5);
    }
    qr_model_free(m8);
    qr_model_free(m4);
    qr_backend_destroy(be);
    return qr_test_done();
}
