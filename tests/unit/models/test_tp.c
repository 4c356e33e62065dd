/* Tensor parallelism on the CPU (qr_model_load_tp, in-process ranks):
 * usage: test_models_tp MODEL_FIXTURE N1 [N2 ...]
 * For each N, against the same model loaded whole (TP = 1, itself checked
 * against transformers by the parity tests):
 * - logits of a 16-token prefill and 8 decode steps within 1e-5 x max|logit|;
 * - a batched step of two slots (prefill chunk + decode token) the same;
 * - 64 greedy tokens (qr_generate: the group's merged top-1) identical;
 * - 64 sampled tokens (temperature, top-k, top-p; fixed seed) identical;
 * - each rank's KV cache holds its KV heads only (1/N, or one replicated head);
 * - each rank's weight bytes equal its share computed from the config (split
 *   tensors 1/N; K/V 1/N or one replicated head; the embedding's zero row).
 * Also: a split that the rule refuses gives QR_EUNSUPPORTED with the numbers;
 * CPU ranks sum in place, and at TP=2 the staged path (as CUDA backends
 * sharing a GPU use it) gives the same logits.
 * MODEL_FIXTURE "model:NAME" is a real model (SmolLM2's Q4_1 GGUF: column
 * slices of block-quantized o_proj / down_proj, GGUF Q/K un-permutation of
 * row slices, tied embeddings), loaded at f32 so the slices dequantize to
 * exactly the whole model's values.
 * --cuda: the ranks are CUDA backends, all on the first GPU (each its own
 * stream), summing through the host communicator; TP = 1 is a CUDA backend
 * too. SKIP (77) without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/models/model_internal.h" /* the group's communicator: staged mode below */
#include "tests/unit/test.h"

#define N_PROMPT 16
#define N_DEC 8
#define N_GEN 64

static qr_backend *bes[QR_TP_MAX];

static qr_model *load(const char *path, int n)
{
    qr_model_opts o = {.dtype = QR_F32};
    qr_model *m = NULL;
    int rc = qr_model_load_tp(path, &o, bes, n, &m);
    CHECK_MSG(rc == 0, "loading %s at TP=%d: %s", path, n, qr_last_error());
    return m;
}

static float max_abs(const float *x, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* Largest |a-b| / max|a| over one logits row. */
static double rel_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d / fmax(max_abs(a, n), 1e-30);
}

/* Prefill + decode on both models, comparing every logits row. */
static void check_logits(qr_model *m1, qr_model *mn, int n)
{
    const qr_model_config *c = qr_model_cfg(m1);
    int V = c->vocab_size;
    qr_decoder_state *s1 = NULL, *sn = NULL;
    float *l1 = malloc(2 * (size_t)V * sizeof(float)), *ln = malloc(2 * (size_t)V * sizeof(float));
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        prompt[i] = (int32_t)((i * 37 + 11) % V);
    CHECK_OK(qr_decoder_state_create(m1, 2, 64, &s1));
    CHECK_OK(qr_decoder_state_create(mn, 2, 64, &sn));
    if (!s1 || !sn)
        goto done;
    double worst = 0;
    qr_dec_seq sq = {.slot = 0, .ids = prompt, .n = N_PROMPT};
    CHECK_OK(qr_decoder_step(s1, &sq, 1, l1));
    CHECK_OK(qr_decoder_step(sn, &sq, 1, ln));
    worst = fmax(worst, rel_diff(l1, ln, V));
    for (int t = 0; t < N_DEC; t++) {
        int32_t tok = qr_test_argmax(l1, V);
        qr_dec_seq d = {.slot = 0, .ids = &tok, .n = 1};
        CHECK_OK(qr_decoder_step(s1, &d, 1, l1));
        CHECK_OK(qr_decoder_step(sn, &d, 1, ln));
        worst = fmax(worst, rel_diff(l1, ln, V));
    }
    /* a batched step: slot 1's prefill chunk beside slot 0's next token */
    int32_t tok = qr_test_argmax(l1, V);
    qr_dec_seq two[2] = {{.slot = 0, .ids = &tok, .n = 1}, {.slot = 1, .ids = prompt + 3, .n = 9}};
    CHECK_OK(qr_decoder_step(s1, two, 2, l1));
    CHECK_OK(qr_decoder_step(sn, two, 2, ln));
    worst = fmax(worst, fmax(rel_diff(l1, ln, V), rel_diff(l1 + V, ln + V, V)));
    CHECK_MSG(worst <= 1e-5, "TP=%d: logits differ by %.3g x max|logit| (limit 1e-5)", n, worst);
    CHECK_INT(qr_decoder_slot_len(sn, 1), 9);
    /* each rank caches only its KV heads: 1/N of them, or one replicated head */
    const qr_model_config *cf = qr_model_cfg(m1);
    int kv_l = cf->n_kv_head % n == 0 ? cf->n_kv_head / n : 1;
    for (int r = 0; r < n; r++)
        CHECK_MSG(qr_decoder_kv_bytes(sn, r) * (uint64_t)cf->n_kv_head == qr_decoder_kv_bytes(s1, 0) * (uint64_t)kv_l,
                  "TP=%d rank %d: KV cache %llu bytes, whole %llu", n, r, (unsigned long long)qr_decoder_kv_bytes(sn, r),
                  (unsigned long long)qr_decoder_kv_bytes(s1, 0));
    CHECK(qr_decoder_kv_bytes(s1, 0) > 0 && qr_decoder_kv_bytes(sn, n) == 0);
    printf("TP=%d: logits within %.3g x max|logit| of TP=1\n", n, worst);
done:
    qr_decoder_state_free(s1);
    qr_decoder_state_free(sn);
    free(l1);
    free(ln);
}

/* qr_generate's ids on both models: greedy, then sampled with a fixed seed. */
static void check_generate(qr_model *m1, qr_model *mn, int n)
{
    int32_t prompt[3] = {1, 5, 9};
    for (int sampled = 0; sampled < 2; sampled++) {
        qr_sample_params p;
        qr_sample_params_default(&p);
        p.max_tokens = N_GEN;
        if (sampled) {
            p.temperature = 0.9f;
            p.top_k = 40;
            p.top_p = 0.95f;
            p.seed = 1234;
        }
        qr_gen_result r1 = {0}, rn = {0};
        CHECK_OK(qr_generate(m1, prompt, 3, &p, NULL, NULL, &r1));
        CHECK_OK(qr_generate(mn, prompt, 3, &p, NULL, NULL, &rn));
        bool same = r1.n_ids == rn.n_ids && r1.n_ids > 0;
        for (size_t i = 0; same && i < r1.n_ids; i++)
            same = r1.ids[i] == rn.ids[i];
        CHECK_MSG(same, "TP=%d: %s tokens differ from TP=1 (%zu vs %zu ids)", n, sampled ? "sampled" : "greedy",
                  r1.n_ids, rn.n_ids);
        printf("TP=%d: %zu %s tokens identical to TP=1\n", n, r1.n_ids, sampled ? "sampled" : "greedy");
        qr_gen_result_free(&r1);
        qr_gen_result_free(&rn);
    }
}

/* Each rank's f32 weight bytes from the config: its heads, KV heads, FFN
 * columns and vocabulary rows, replicated norms, biases as the config says. */
static void check_bytes(qr_model *mn, int n)
{
    const qr_model_config *c = qr_model_cfg(mn);
    int64_t d = c->d_model, hd = c->head_dim, V = c->vocab_size, per = (V + n - 1) / n;
    int64_t h = c->n_head / n, kv = c->n_kv_head % n == 0 ? c->n_kv_head / n : 1, ff = c->d_ff / n;
    for (int r = 0; r < n; r++) {
        int64_t vr = V - r * per < per ? V - r * per : per;
        int64_t layer = 2 * h * hd * d + 2 * kv * hd * d + 3 * ff * d + 2 * d;
        if (c->qkv_bias)
            layer += h * hd + 2 * kv * hd;
        int64_t e = c->n_layer * layer + d + (vr + 1) * d + (c->tie_embeddings ? 0 : vr * d);
        CHECK_MSG(qr_model_rank_weight_bytes(mn, r) == (uint64_t)e * 4, "TP=%d rank %d: %llu weight bytes, expected %lld",
                  n, r, (unsigned long long)qr_model_rank_weight_bytes(mn, r), (long long)e * 4);
    }
}

/* ---- a failing rank ---- */
static qr_backend_ops failing_ops;
static int fail_after; /* matmul calls left before failing; < 0: never */

static int failing_weight_load(qr_backend *be, const void *src, qr_dtype sd, int64_t r, int64_t c, qr_dtype want,
                               bool alias, qr_tensor *out)
{
    return qr_fail(QR_ENOMEM, "emulated out of memory");
}

static int failing_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *b, qr_tensor *y)
{
    if (fail_after >= 0 && fail_after-- == 0)
        return qr_fail(QR_EBACKEND, "emulated device error");
    return bes[0]->ops->matmul(be, x, w, b, y);
}

/* Backend memory held: weight loads and allocations minus frees, on every rank. */
static qr_backend_ops counting_ops;
static const qr_backend_ops *real_ops;
static int live;
static int counting_weight_load(qr_backend *be, const void *src, qr_dtype sd, int64_t r, int64_t c, qr_dtype want,
                                bool may_alias, qr_tensor *out)
{
    int rc = real_ops->weight_load(be, src, sd, r, c, want, may_alias, out);
    live += rc == 0;
    return rc;
}
static int counting_alloc(qr_backend *be, qr_dtype dt, int64_t r, int64_t c, qr_tensor *out)
{
    int rc = real_ops->tensor_alloc(be, dt, r, c, out);
    live += rc == 0;
    return rc;
}
static void counting_free(qr_backend *be, qr_tensor *t)
{
    live--;
    real_ops->tensor_free(be, t);
}

/* The communicator fails to start (as an NCCL initialisation error would:
 * runtime/dist fault injection) after every rank loaded: the load fails
 * naming the ranks' devices, and every weight the ranks loaded is freed. */
static void check_comm_init_failure(const char *path)
{
    real_ops = bes[0]->ops;
    counting_ops = *real_ops;
    counting_ops.weight_load = counting_weight_load;
    counting_ops.tensor_alloc = counting_alloc;
    counting_ops.tensor_free = counting_free;
    bes[0]->ops = bes[1]->ops = &counting_ops;
    live = 0;
    qr_model *bad = NULL;
    qr_model_opts o = {.dtype = QR_F32};
    qr_comm_test_fail_init(true);
    int rc = qr_model_load_tp(path, &o, bes, 2, &bad);
    qr_comm_test_fail_init(false);
    CHECK_INT(rc, QR_EBACKEND);
    CHECK_MSG(strstr(qr_last_error(), "over 2 ranks") && strstr(qr_last_error(), "cpu, cpu") &&
                  strstr(qr_last_error(), "injected"),
              "load error: %s", qr_last_error());
    CHECK(bad == NULL);
    CHECK_MSG(live == 0, "%d backend tensors left after the failed load", live);
    bes[0]->ops = bes[1]->ops = real_ops;
    printf("TP=2: a communicator that fails to start fails the load naming the devices; nothing kept\n");
}

/* Rank 1 fails while loading: the load fails naming it, nothing is kept.
 * Rank 1 fails in the middle of a step: the step fails naming it (the other
 * rank is released from its all-reduce, not left waiting), the slot keeps its
 * length, and the next step runs normally (same logits as a fresh run). */
static void check_failing_rank(const char *path, qr_model *m1)
{
    const qr_backend_ops *cpu = bes[1]->ops;
    failing_ops = *cpu;
    failing_ops.weight_load = failing_weight_load;
    bes[1]->ops = &failing_ops;
    qr_model *bad = NULL;
    qr_model_opts o = {.dtype = QR_F32};
    int rc = qr_model_load_tp(path, &o, bes, 2, &bad);
    CHECK_INT(rc, QR_ENOMEM);
    CHECK_MSG(strstr(qr_last_error(), "rank 1 of 2") && strstr(qr_last_error(), "emulated out of memory"),
              "load error: %s", qr_last_error());
    CHECK(bad == NULL);
    bes[1]->ops = cpu;

    qr_model *m2 = load(path, 2);
    if (!m2)
        return;
    int V = qr_model_cfg(m2)->vocab_size;
    float *l1 = malloc((size_t)V * sizeof(float)), *l2 = malloc((size_t)V * sizeof(float));
    qr_decoder_state *s1 = NULL, *s2 = NULL;
    CHECK_OK(qr_decoder_state_create(m1, 1, 32, &s1));
    CHECK_OK(qr_decoder_state_create(m2, 1, 32, &s2));
    int32_t ids[4] = {1, 7, 9, 11};
    qr_dec_seq sq = {.slot = 0, .ids = ids, .n = 4};
    failing_ops = *cpu;
    failing_ops.matmul = failing_matmul;
    failing_ops.matmul_n = NULL; /* every product through the failing matmul */
    fail_after = 5; /* inside the first layer, after rank 0 reached an all-reduce */
    bes[1]->ops = &failing_ops;
    rc = s2 ? qr_decoder_step(s2, &sq, 1, l2) : -1;
    CHECK_INT(rc, QR_EBACKEND);
    CHECK_MSG(strstr(qr_last_error(), "rank 1") && strstr(qr_last_error(), "emulated device error"),
              "step error: %s", qr_last_error());
    CHECK_INT(s2 ? qr_decoder_slot_len(s2, 0) : -1, 0);
    bes[1]->ops = cpu;
    if (s1 && s2) {
        CHECK_OK(qr_decoder_step(s1, &sq, 1, l1));
        CHECK_OK(qr_decoder_step(s2, &sq, 1, l2));
        CHECK_MSG(rel_diff(l1, l2, V) <= 1e-5, "after a failed step: %.3g", rel_diff(l1, l2, V));
    }
    printf("TP=2: a rank failing at load or mid-step fails the call naming it; the next step runs\n");
    qr_decoder_state_free(s1);
    qr_decoder_state_free(s2);
    free(l1);
    free(l2);
    qr_model_free(m2);
}

int main(int argc, char **argv)
{
    bool cuda = argc > 1 && strcmp(argv[1], "--cuda") == 0;
    if (cuda) {
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s [--cuda] MODEL_FIXTURE N...\n", argv[0]);
        return 2;
    }
    char path[4096];
    /* "model:NAME": a real model tools/models.sh fetched (SKIP when absent) */
    if (strncmp(argv[1], "model:", 6) == 0)
        snprintf(path, sizeof path, "%s", MODEL(argv[1] + 6));
    else
        snprintf(path, sizeof path, "%s", FIXTURE(argv[1]));
    if (cuda) { /* every rank a CUDA backend of its own on the first GPU */
        qr_gpu_info g[4];
        int ng = 0;
        if (qr_cuda_devices(g, 4, &ng) || ng == 0) {
            printf("SKIP: no usable GPU (%s)\n", qr_cuda_why_none());
            return 77;
        }
        for (int i = 0; i < 8; i++)
            CHECK_OK(qr_backend_cuda_create(g[0].index, &bes[i]));
    } else {
        for (int i = 0; i < 8; i++)
            CHECK_OK(qr_backend_cpu_create(1, &bes[i]));
    }
    qr_model *m1 = load(path, 1);
    for (int a = 2; m1 && a < argc; a++) {
        int n = atoi(argv[a]);
        if (n < 0) { /* a count the rule refuses */
            qr_model *bad = NULL;
            qr_model_opts o = {.dtype = QR_F32};
            int rc = qr_model_load_tp(path, &o, bes, -n, &bad);
            CHECK_INT(rc, QR_EUNSUPPORTED);
            CHECK_MSG(strstr(qr_last_error(), "cannot shard") != NULL, "message: %s", qr_last_error());
            printf("TP=%d refused: %s\n", -n, qr_last_error());
            continue;
        }
        if (n == 2 && !cuda) {
            check_failing_rank(path, m1);
            check_comm_init_failure(path);
        }
        qr_model *mn = load(path, n);
        if (!mn)
            continue;
        CHECK_INT(qr_model_tp(mn), n);
        check_bytes(mn, n);
        CHECK(mn->comm && mn->comm->in_place == !cuda); /* CPU ranks: in place; CUDA ranks on one GPU: staged */
        check_logits(m1, mn, n);
        check_generate(m1, mn, n);
        if (n == 2 && !cuda) { /* the staged path (download, sum, upload) that CUDA backends sharing a GPU use */
            mn->comm->in_place = false;
            check_logits(m1, mn, n);
        }
        qr_model_free(mn);
    }
    qr_model_free(m1);
    for (int i = 0; i < 8; i++)
        qr_backend_destroy(bes[i]);
    return qr_test_done();
}
