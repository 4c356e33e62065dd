/* --dtype as-stored on the CUDA backend with the real SmolLM2-135M-Instruct
 * Q4_1 GGUF (Q4_1 and Q8_0 tensors, tied embeddings), against the CPU
 * backend loading the same file as-stored on its dequantized-tile path
 * (qr_backend_cpu_set_block_tiles: exact dequantized values in f32, itself
 * checked against the f32 model by tests/unit/models/test_as_stored.c):
 * - both hold the file's tensor bytes: the same weight bytes, within 1% of
 *   the file's tensor bytes (no conversion to another type on the GPU);
 * - token by token (decode steps of one row: the GEMV decodes every block
 *   exactly and multiplies in f32), logits within 1e-3 x max|logit| at each
 *   of 12 steps: f32 summation order and the device's f32 math only (a wrong
 *   block or scale moves logits by a large fraction of their range);
 * - batched prefills of 20 rows (the tensor-core kernel) and 300 rows
 *   (dequantized bf16 slabs + cuBLASLt), last-token logits within 5e-2 x
 *   max|logit|: those paths round weights and activations to bf16 (2^-9
 *   relative each) through 30 layers, the bound test_as_stored allows the
 *   CPU's int8-activation kernels.
 * usage: test_cuda_as_stored [MODEL DTYPE]: another model and --dtype
 * instead (bench/gpu/session.sh: the random-weight SmolLM2-shaped
 * safetensors model of make_models.py with q4_k, which quantizes at load to
 * Q4_K where rows are whole 256-value blocks and Q8_0 elsewhere); then both
 * backends hold the same bytes (the same quantizer) and the file-size check
 * is skipped.
 * SKIP (77) without a GPU or without the model (tools/models.sh). */
#include "tests/unit/cuda/cuda_test.h"

#include "runtime/cpu/cpu.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"

#define N_TOK 12
#define N_LONG 300

/* max |a - b| and max |a| over n values */
static void diff(const float *a, const float *b, int n, double *dmax, double *amax)
{
    *dmax = *amax = 0;
    for (int j = 0; j < n; j++) {
        *amax = fmax(*amax, fabs(a[j]));
        *dmax = fmax(*dmax, fabs((double)a[j] - b[j]));
    }
}

/* Last-token logits of one prefill of n ids on each model. */
static void prefill_case(qr_model *mc, qr_model *mg, const int32_t *ids, int n, double bound)
{
    int V = qr_model_cfg(mc)->vocab_size;
    float *lc = malloc(sizeof(float) * (size_t)V), *lg = malloc(sizeof(float) * (size_t)V);
    qr_decoder_state *sc = NULL, *sg = NULL;
    CHECK_OK(qr_decoder_state_create(mc, 1, n + 8, &sc));
    CHECK_OK(qr_decoder_state_create(mg, 1, n + 8, &sg));
    if (sc && sg) {
        qr_dec_seq s = {0, ids, n};
        CHECK_OK(qr_decoder_step(sc, &s, 1, lc));
        CHECK_OK(qr_decoder_step(sg, &s, 1, lg));
        double dmax, amax;
        diff(lc, lg, V, &dmax, &amax);
        int bc = 0, bg = 0;
        for (int j = 1; j < V; j++) {
            bc = lc[j] > lc[bc] ? j : bc;
            bg = lg[j] > lg[bg] ? j : bg;
        }
        printf("prefill of %d: max |gpu - cpu| %.3g, max |logit| %.3g (%.2e); arg-max %d / %d\n", n, dmax, amax,
               dmax / amax, bg, bc);
        CHECK_MSG(dmax <= bound * amax, "prefill of %d tokens: logits differ by %.3g x max|logit| (limit %g)", n,
                  dmax / amax, bound);
    }
    qr_decoder_state_free(sc);
    qr_decoder_state_free(sg);
    free(lc);
    free(lg);
}

int main(int argc, char **argv)
{
    qr_backend *gpu = ct_gpu_or_skip();
    const char *path = argc > 2 ? argv[1] : MODEL("SmolLM2-135M-Instruct-Q4_1.gguf");
    qr_dtype dt = QR_AS_STORED;
    if (argc > 2 && qr_dtype_parse(argv[2], &dt)) {
        fprintf(stderr, "usage: test_cuda_as_stored [MODEL DTYPE]: %s\n", qr_last_error());
        return 2;
    }
    printf("%s, --dtype %s\n", path, qr_dtype_name(dt));
    qr_wsrc *src = NULL;
    CHECK_OK(qr_wsrc_open(path, &src));
    if (!src)
        return qr_test_done();
    uint64_t file_bytes = qr_wsrc_bytes(src);
    qr_wsrc_close(src);

    qr_backend *cpu = NULL;
    CHECK_OK(qr_backend_cpu_create(0, &cpu));
    if (!cpu)
        return qr_test_done();
    qr_backend_cpu_set_block_tiles(cpu, true);
    qr_model *mc = NULL, *mg = NULL;
    qr_model_opts o = {.dtype = dt};
    CHECK_OK(qr_model_load(path, &o, cpu, &mc));
    CHECK_OK(qr_model_load(path, &o, gpu, &mg));
    if (!mc || !mg)
        return qr_test_done();

    uint64_t hc = qr_model_weight_bytes(mc), hg = qr_model_weight_bytes(mg);
    printf("weights held: gpu %.2f MiB, cpu %.2f MiB, file tensors %.2f MiB\n", hg / 1048576.0, hc / 1048576.0,
           file_bytes / 1048576.0);
    CHECK_MSG(hg == hc, "gpu holds %llu weight bytes, cpu %llu", (unsigned long long)hg, (unsigned long long)hc);
    if (dt == QR_AS_STORED)
        CHECK_MSG(fabs((double)hg / (double)file_bytes - 1.0) <= 0.01, "gpu holds %.4f x the file's tensor bytes",
                  (double)hg / (double)file_bytes);

    int V = qr_model_cfg(mc)->vocab_size;
    int32_t ids[N_LONG];
    for (int i = 0; i < N_LONG; i++) /* ordinary tokens: ids from the middle of the vocabulary */
        ids[i] = 1000 + (i * 997) % 20000;

    /* token by token: the GEMV path for every matmul */
    {
        float *lc = malloc(sizeof(float) * (size_t)V), *lg = malloc(sizeof(float) * (size_t)V);
        qr_decoder_state *sc = NULL, *sg = NULL;
        CHECK_OK(qr_decoder_state_create(mc, 1, 64, &sc));
        CHECK_OK(qr_decoder_state_create(mg, 1, 64, &sg));
        double worst = 0;
        for (int t = 0; sc && sg && t < N_TOK; t++) {
            qr_dec_seq s = {0, &ids[t], 1};
            CHECK_OK(qr_decoder_step(sc, &s, 1, lc));
            CHECK_OK(qr_decoder_step(sg, &s, 1, lg));
            double dmax, amax;
            diff(lc, lg, V, &dmax, &amax);
            worst = fmax(worst, dmax / amax);
        }
        printf("decode steps: max |gpu - cpu| / max |logit| %.3g over %d steps\n", worst, N_TOK);
        CHECK_MSG(worst <= 1e-3, "decode steps: logits differ by %.3g x max|logit| (limit 1e-3)", worst);
        qr_decoder_state_free(sc);
        qr_decoder_state_free(sg);
        free(lc);
        free(lg);
    }
    prefill_case(mc, mg, ids, 20, 5e-2);
    prefill_case(mc, mg, ids, N_LONG, 5e-2);

    qr_model_free(mc);
    qr_model_free(mg);
    qr_backend_destroy(cpu);
    qr_backend_destroy(gpu);
    return qr_test_done();
}
