/* bench_gpu: speed and parity of the CUDA backend, driven by bench/gpu/run.sh
 * on a GPU machine (it builds everywhere; without a GPU every mode but the
 * CPU parity dumps says so and exits 77).
 *
 * Every mode takes --act f32|bf16, the CUDA backend's activation type (KV cache
 * included); default bf16, except logits/embeds with --dtype f32 (f32).
 *
 *   bench_gpu ops                         our matmul: bf16 GEMM rate at 4096^3 and
 *                                         8192x4096x4096; GEMV bandwidth (batch 1..8) for
 *                                         bf16 / int8 / q8_0 / q4_k weights of 14336x4096
 *                                         (GGUF blocks kept as stored), and their
 *                                         batched (64) and prefill (512) GEMM rates
 *   bench_gpu decode --shape S --dtype bf16|int8 [--batch B] [--prompt P] [--tokens T]
 *                    [--graphs 0|1] [--bw GBPS] [--gemm TFLOPS]
 *                                         synthetic random-weight model of a real shape
 *                                         (S: llama3-8b, llama3.2-1b, qwen2.5-0.5b,
 *                                         smollm2-135m), built on the device without files:
 *                                         prefill of P tokens per sequence (one step per
 *                                         sequence), then T decode steps of B sequences
 *                                         (device-side greedy when the backend has topk)
 *   bench_gpu embed DIR [--batch 256] [--len 128] [--reps 5] [--dtype f16]
 *                                         qr_embed_ids on batch x len random ids
 *   bench_gpu logits DIR --ids FILE --out PREFIX [--gen 32] [--dtype f32] [--cpu]
 *                                         parity: last-position logits of the prompt in
 *                                         FILE (PREFIX.logits.bin, f32) and N greedy ids
 *                                         from the host arg-max (PREFIX.ids.txt)
 *   bench_gpu embeds DIR --ids FILE --out OUT.bin [--dtype f32] [--cpu]
 *                                         parity: embeddings of the sequences in FILE
 *                                         (one line of ids each), (n, d) f32
 *
 * Method: every timed region ends with a backend sync (device work is
 * asynchronous); one untimed warm-up first (decode: a prefill on a spare slot); decode tok/s = B * T / time of the
 * T steps. Roofline for batch-1 decode: bytes per token = the matrices (q, k,
 * v, o, gate, up, down of every layer and the LM head) at their stored size +
 * the KV cache read at the mean context, over the copy bandwidth given with
 * --bw (measured by bench/gpu/ceilings.py in the same run). Prefill fraction:
 * 2 x non-embedding parameters x tokens / time, over the GEMM rate given with
 * --gemm. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "runtime/models/model_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(int rc, const char *what)
{
    fprintf(stderr, "bench_gpu: %s: %s: %s\n", what, qr_strerror(rc), qr_last_error());
    return 1;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static inline uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}
static inline float rndf(void) { return (float)rnd() * (1.0f / 2147483648.0f) - 1.0f; }

/* Activation type of the CUDA backend: --act f32|bf16 (default: given by the mode). */
static qr_dtype act_type = QR_BF16;

/* The CUDA backend on device 0, or exit 77 (no GPU). */
static qr_backend *gpu_or_skip(void)
{
    qr_gpu_info info[16];
    int n = 0;
    if (qr_cuda_devices(info, 16, &n) || n == 0) {
        printf("SKIP: no CUDA device (%s)\n", qr_cuda_why_none());
        exit(77);
    }
    for (int i = 0; i < n; i++)
        printf("# GPU %d: %s, cc %d.%d, %.1f GiB (%.1f free)\n", info[i].index, info[i].name, info[i].cc_major,
               info[i].cc_minor, info[i].total_bytes / 1073741824.0, info[i].free_bytes / 1073741824.0);
    qr_backend *be = NULL;
    int rc = qr_backend_cuda_create_ex(0, act_type, &be);
    if (rc)
        exit(die(rc, "qr_backend_cuda_create"));
    printf("# activations: %s\n", qr_dtype_name(be->act_dtype));
    return be;
}

/* ---------------------------------------------------------------- ops */

static double time_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, qr_tensor *y, int reps)
{
    int rc;
    if ((rc = be->ops->matmul(be, x, w, NULL, y)) || (rc = qr_be_sync(be))) {
        die(rc, "matmul");
        return -1;
    }
    double t0 = now();
    for (int i = 0; i < reps; i++)
        if ((rc = be->ops->matmul(be, x, w, NULL, y))) {
            die(rc, "matmul");
            return -1;
        }
    if ((rc = qr_be_sync(be))) {
        die(rc, "sync");
        return -1;
    }
    return (now() - t0) / reps;
}

static int mode_ops(void)
{
    qr_backend *be = gpu_or_skip();
    qr_dtype at = be->act_dtype;
    const int64_t big = 14336LL * 8192; /* largest matrix below */
    float *host = malloc((size_t)big * sizeof *host);
    for (int64_t i = 0; i < big; i++)
        host[i] = rndf() * 0.02f;
    /* GEMM (bf16 weights; x in the activation type, converted by matmul if f32) */
    const int64_t gs[][3] = {{4096, 4096, 4096}, {8192, 4096, 4096}, {2048, 14336, 4096}, {2048, 4096, 14336}};
    for (size_t s = 0; s < sizeof gs / sizeof gs[0]; s++) {
        int64_t n = gs[s][0], out = gs[s][1], in = gs[s][2];
        qr_tensor w = {0}, x = {0}, y = {0};
        int rc;
        if ((rc = be->ops->weight_load(be, host, QR_F32, out, in, QR_BF16, false, &w)) ||
            (rc = qr_be_tensor_alloc(be, at, n, in, &x)) || (rc = qr_be_tensor_alloc(be, at, n, out, &y)) ||
            (rc = be->ops->upload(be, &x, 0, host, n)))
            return die(rc, "gemm set-up");
        double t = time_matmul(be, &x, &w, &y, 20);
        printf("gemm bf16 %lldx%lldx%lld (x %s): %.3f ms, %.1f TFLOP/s\n", (long long)n, (long long)out,
               (long long)in, qr_dtype_name(at), t * 1e3, 2.0 * n * out * in / t / 1e12);
        qr_be_tensor_free(be, &w);
        qr_be_tensor_free(be, &x);
        qr_be_tensor_free(be, &y);
    }
    /* GEMV: batch 1..8, weights read once per call. matmul takes the GEMV up
     * to 4 rows of 16-bit weights and 8 of int8 / GGUF blocks
     * (QR_CUDA_GEMV_MAX_FLOAT / _INT8 in runtime/cuda/cuda_matmul.cu); past
     * that it is cuBLASLt, or for int8 / GGUF the tensor-core kernel up to 256
     * rows and dequantised bf16 slabs + cuBLASLt beyond, printed as such.
     * q8_0 / q4_k weights are quantized from f32 on the host at load. */
    const qr_dtype wts[] = {QR_BF16, QR_I8, QR_Q8_0, QR_Q4_K};
    const int ns[] = {1, 2, 4, 8, 64, 512};
    const int64_t out = 14336, in = 4096;
    for (size_t k = 0; k < sizeof wts / sizeof wts[0]; k++) {
        qr_tensor w[4] = {{0}}, x = {0}, y = {0};
        int rc;
        /* four weight copies rotated so no call reads from L2 */
        for (int c = 0; c < 4; c++)
            if ((rc = be->ops->weight_load(be, host + (size_t)c * 1000, QR_F32, out, in, wts[k], false, &w[c])))
                return die(rc, "gemv set-up");
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            if ((rc = qr_be_tensor_alloc(be, at, n, in, &x)) || (rc = qr_be_tensor_alloc(be, at, n, out, &y)) ||
                (rc = be->ops->upload(be, &x, 0, host, n)))
                return die(rc, "gemv set-up");
            double t = 0;
            for (int c = 0; c < 4; c++)
                t += time_matmul(be, &x, &w[c], &y, 50) / 4;
            /* GGUF tensors hold the blocks' bytes only (scales inside); int8 adds its row scales */
            double bytes = (double)out * (double)w[0].row_bytes + (wts[k] == QR_I8 ? out * 4.0 : 0);
            bool w8 = wts[k] != QR_BF16;
            bool gemv = n <= (w8 ? 8 : 4);
            printf("%s %s %lldx%lld n=%d: %.1f us, %.0f GB/s of weights, %.1f TFLOP/s\n",
                   gemv ? "gemv" : w8 && n <= 256 ? "gemm-tc" : "gemm", qr_dtype_name(wts[k]), (long long)out,
                   (long long)in, n, t * 1e6, bytes / t / 1e9, 2.0 * n * out * in / t / 1e12);
            qr_be_tensor_free(be, &x);
            qr_be_tensor_free(be, &y);
        }
        for (int c = 0; c < 4; c++)
            qr_be_tensor_free(be, &w[c]);
    }
    free(host);
    qr_backend_destroy(be);
    return 0;
}

/* ---------------------------------------------------------------- synthetic decoder */

typedef struct {
    const char *name;
    int vocab, d, layers, heads, kv, hd, ff, max_pos;
    float theta;
    bool tie, qkv_bias;
} shape;

static const shape shapes[] = {
    {"llama3-8b", 128256, 4096, 32, 32, 8, 128, 14336, 8192, 500000.0f, false, false},
    {"llama3.2-1b", 128256, 2048, 16, 32, 8, 64, 8192, 8192, 500000.0f, true, false},
    {"qwen2.5-0.5b", 151936, 896, 24, 14, 2, 64, 4864, 8192, 1000000.0f, true, true},
    {"smollm2-135m", 49152, 576, 30, 9, 3, 64, 1536, 8192, 100000.0f, true, false},
};

/* Loads a (rows, cols) weight from the shared random buffer (values repeat
 * across tensors, which does not matter for speed). */
static int synth_w(qr_model *m, const float *host, int64_t rows, int64_t cols, qr_dtype dt, qr_tensor *t)
{
    int rc = m->be->ops->weight_load(m->be, host, QR_F32, rows, cols, dt, false, t);
    if (!rc)
        m->weight_bytes += (uint64_t)t->rows * t->row_bytes + (dt == QR_I8 ? (uint64_t)rows * 4 : 0);
    return rc;
}

static int synth_model(qr_backend *be, const shape *s, qr_dtype dt, qr_model **out, uint64_t *matrix_bytes)
{
    qr_model *m = calloc(1, sizeof *m);
    qr_model_config *c = &m->cfg;
    c->arch = s->qkv_bias ? QR_ARCH_QWEN2 : QR_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", s->qkv_bias ? "qwen2" : "llama");
    c->vocab_size = s->vocab;
    c->d_model = s->d;
    c->n_layer = s->layers;
    c->n_head = s->heads;
    c->n_kv_head = s->kv;
    c->head_dim = s->hd;
    c->d_ff = s->ff;
    c->max_pos = s->max_pos;
    c->norm_eps = 1e-5f;
    c->rope_theta = s->theta;
    c->tie_embeddings = s->tie;
    c->qkv_bias = s->qkv_bias;
    c->bos_id = -1;
    m->be = be;
    m->dtype = dt;
    snprintf(m->path, sizeof m->path, "synthetic:%s", s->name);
    int64_t d = s->d, dq = (int64_t)s->heads * s->hd, dkv = (int64_t)s->kv * s->hd;
    int64_t big = (int64_t)s->vocab * d > (int64_t)s->ff * d ? (int64_t)s->vocab * d : (int64_t)s->ff * d;
    float *host = malloc((size_t)big * sizeof *host);
    float *ones = malloc((size_t)(s->ff > s->d ? s->ff : s->d) * sizeof *ones);
    if (!host || !ones)
        return qr_fail(QR_ENOMEM, "synthetic weights");
    for (int64_t i = 0; i < big; i++)
        host[i] = rndf() * 0.03f;
    for (int i = 0; i < (s->ff > s->d ? s->ff : s->d); i++)
        ones[i] = 1.0f;
    m->layers = calloc((size_t)s->layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)(s->hd / 2) * sizeof *m->inv_freq);
    int rc;
    if ((rc = qr_rope_inv_freq(c, m->inv_freq)))
        return rc;
    /* embedding table in the matmul type only where matmul reads it (tied LM head) */
    if ((rc = synth_w(m, host, s->vocab, d, dt == QR_Q8_0 ? QR_BF16 : dt, &m->tok_embd)) ||
        (rc = synth_w(m, ones, 1, d, QR_F32, &m->out_norm)))
        return rc;
    if (s->tie) {
        m->lm_head = m->tok_embd;
        m->lm_head.owned = false;
        m->lm_head_tied = true;
    } else if ((rc = synth_w(m, host, s->vocab, d, dt, &m->lm_head))) {
        return rc;
    }
    for (int l = 0; l < s->layers; l++) {
        qr_layer *y = &m->layers[l];
        if ((rc = synth_w(m, ones, 1, d, QR_F32, &y->attn_norm_w)) ||
            (rc = synth_w(m, ones, 1, d, QR_F32, &y->ffn_norm_w)) ||
            (rc = synth_w(m, host + l, dq, d, dt, &y->wq)) || (rc = synth_w(m, host + 2 * l, dkv, d, dt, &y->wk)) ||
            (rc = synth_w(m, host + 3 * l, dkv, d, dt, &y->wv)) || (rc = synth_w(m, host + 4 * l, d, dq, dt, &y->wo)) ||
            (rc = synth_w(m, host + 5 * l, s->ff, d, dt, &y->w_gate)) ||
            (rc = synth_w(m, host + 6 * l, s->ff, d, dt, &y->w_up)) ||
            (rc = synth_w(m, host + 7 * l, d, s->ff, dt, &y->w_down)))
            return rc;
        if (s->qkv_bias && ((rc = synth_w(m, host, 1, dq, QR_F32, &y->bq)) ||
                            (rc = synth_w(m, host, 1, dkv, QR_F32, &y->bk)) ||
                            (rc = synth_w(m, host, 1, dkv, QR_F32, &y->bv))))
            return rc;
    }
    /* bytes a batch-1 decode step reads: every matrix once, the LM head, one embedding row */
    double es = dt == QR_F32 ? 4 : dt == QR_I8 || dt == QR_Q8_0 ? 1 : 2;
    double per_layer = (double)(dq * d + 2 * dkv * d + d * dq + 3 * (int64_t)s->ff * d) * es;
    double scales = dt == QR_I8 ? 4.0 * (dq + 2 * dkv + d + 2 * s->ff + d)
                    : dt == QR_Q8_0 ? 2.0 / 32 * (double)(dq * d + 2 * dkv * d + d * dq + 3 * (int64_t)s->ff * d) : 0;
    *matrix_bytes = (uint64_t)(s->layers * (per_layer + scales) + (double)s->vocab * d * es);
    free(host);
    free(ones);
    *out = m;
    return QR_OK;
}

static void synth_free(qr_model *m)
{
    qr_backend *be = m->be;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        qr_layer *y = &m->layers[l];
        qr_tensor *ts[] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->bq, &y->bk, &y->bv, &y->w_gate, &y->w_up,
                           &y->w_down, &y->attn_norm_w, &y->ffn_norm_w};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i]->data)
                qr_be_tensor_free(be, ts[i]);
    }
    if (!m->lm_head_tied)
        qr_be_tensor_free(be, &m->lm_head);
    qr_be_tensor_free(be, &m->tok_embd);
    qr_be_tensor_free(be, &m->out_norm);
    free(m->layers);
    free(m->inv_freq);
    free(m);
}

static int mode_decode(int argc, char **argv)
{
    const char *sn = arg(argc, argv, "--shape", "llama3-8b");
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].name, sn) == 0)
            s = &shapes[i];
    if (!s) {
        fprintf(stderr, "bench_gpu: unknown shape %s\n", sn);
        return 2;
    }
    const char *dts = arg(argc, argv, "--dtype", "bf16");
    qr_dtype dt = strcmp(dts, "q8_0") == 0 ? QR_Q8_0 : QR_BF16;
    if (dt != QR_Q8_0 && qr_dtype_parse(dts, &dt)) {
        fprintf(stderr, "bench_gpu: --dtype %s\n", dts);
        return 2;
    }
    int B = atoi(arg(argc, argv, "--batch", "1")), P = atoi(arg(argc, argv, "--prompt", "128"));
    int T = atoi(arg(argc, argv, "--tokens", "128")), graphs = atoi(arg(argc, argv, "--graphs", "1"));
    double bw = atof(arg(argc, argv, "--bw", "0")), gemm = atof(arg(argc, argv, "--gemm", "0"));
    if (B < 1 || P < 1 || T < 2)
        return 2;
    qr_backend *be = gpu_or_skip();
    qr_model *m = NULL;
    uint64_t mbytes = 0;
    int rc;
    double tl = now();
    if ((rc = synth_model(be, s, dt, &m, &mbytes)))
        return die(rc, "synthetic model");
    printf("# %s %s: %.2f GB of weights on the device, loaded in %.1f s\n", s->name, dts, m->weight_bytes / 1e9,
           now() - tl);
    qr_decoder_state *st = NULL;
    /* one slot more than B: the warm-up prefill below runs there, untimed */
    if ((rc = qr_decoder_state_create(m, B + 1, P + T + 1, &st)))
        return die(rc, "decoder state");
    qr_decoder_set_graphs(st, graphs != 0);
    int32_t *prompt = malloc((size_t)P * sizeof *prompt), *ids = malloc((size_t)(B + 1) * sizeof *ids);
    float *logits = malloc((size_t)(B + 1) * s->vocab * sizeof *logits);
    for (int i = 0; i < P; i++)
        prompt[i] = (int32_t)(rnd() % (uint32_t)s->vocab);
    bool topk = qr_decoder_has_topk(st);
    /* prefill: a warm-up on slot B (cuBLASLt heuristics, lazy module loading,
     * the memory pool's growth), then each sequence's prompt in one timed step */
    double tp = 0;
    for (int b = B; b >= 0; b--) {
        qr_dec_seq q = {.slot = b, .ids = prompt, .n = P};
        double t0 = now();
        if ((rc = topk ? qr_decoder_step_topk(st, &q, 1, 1, &ids[b], NULL) : qr_decoder_step(st, &q, 1, logits)))
            return die(rc, b == B ? "prefill (warm-up)" : "prefill");
        if (!topk)
            ids[b] = 0;
        if (b < B)
            tp += now() - t0;
    }
    int np = B;
    double nonemb = (double)m->cfg.n_layer *
                    ((double)s->heads * s->hd * s->d * 2 + 2.0 * s->kv * s->hd * s->d + 3.0 * s->ff * s->d);
    double pf_tps = (double)P * np / tp;
    printf("prefill %s %s P=%d: %.0f tok/s (%.1f ms)", s->name, dts, P, pf_tps, tp / np * 1e3);
    if (gemm > 0)
        printf(", %.1f%% of the GEMM rate %.0f TFLOP/s", 100.0 * 2 * nonemb * pf_tps / (gemm * 1e12), gemm);
    printf("\n");
    /* decode: T steps of B sequences; the first step (graph capture) untimed */
    qr_dec_seq *qs = malloc((size_t)B * sizeof *qs);
    double t0 = 0;
    for (int t = 0; t < T; t++) {
        if (t == 1) {
            if ((rc = qr_be_sync(be)))
                return die(rc, "sync");
            t0 = now();
        }
        for (int b = 0; b < B; b++)
            qs[b] = (qr_dec_seq){.slot = b, .ids = &ids[b], .n = 1};
        if (topk) {
            if ((rc = qr_decoder_step_topk(st, qs, B, 1, ids, NULL)))
                return die(rc, "decode");
        } else {
            if ((rc = qr_decoder_step(st, qs, B, logits)))
                return die(rc, "decode");
            for (int b = 0; b < B; b++) { /* host arg-max */
                const float *r = logits + (size_t)b * s->vocab;
                int32_t best = 0;
                for (int32_t j = 1; j < s->vocab; j++)
                    if (r[j] > r[best])
                        best = j;
                ids[b] = best;
            }
        }
    }
    double td = now() - t0;
    double tps = (double)B * (T - 1) / td;
    double kv_es = be->act_dtype == QR_F32 ? 4 : 2;
    double kv = 2.0 * s->layers * s->kv * s->hd * kv_es * (P + T / 2.0);
    printf("decode %s %s batch %d graphs %s %s: %.1f tok/s (%.3f ms/step)", s->name, dts, B, graphs ? "on" : "off",
           topk ? "device-greedy" : "host-greedy", tps, td / (T - 1) * 1e3);
    if (bw > 0 && B == 1)
        printf(", %.1f MB/token, %.1f%% of the %.0f GB/s roofline (%.0f tok/s)", (mbytes + kv) / 1e6,
               100.0 * (mbytes + kv) * tps / (bw * 1e9), bw, bw * 1e9 / (mbytes + kv));
    printf("\n");
    free(qs);
    free(prompt);
    free(ids);
    free(logits);
    qr_decoder_state_free(st);
    synth_free(m);
    qr_backend_destroy(be);
    return 0;
}

/* ---------------------------------------------------------------- embeddings */

static int mode_embed(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[2];
    int B = atoi(arg(argc, argv, "--batch", "256")), L = atoi(arg(argc, argv, "--len", "128"));
    int reps = atoi(arg(argc, argv, "--reps", "5"));
    qr_dtype dt;
    if (qr_dtype_parse(arg(argc, argv, "--dtype", "f16"), &dt))
        return 2;
    qr_backend *be = gpu_or_skip();
    qr_model *m = NULL;
    qr_model_opts o = {.dtype = dt};
    int rc = qr_model_load(dir, &o, be, &m);
    if (rc)
        return die(rc, dir);
    const qr_model_config *c = qr_model_cfg(m);
    int32_t **seqs = malloc((size_t)B * sizeof *seqs), *lens = malloc((size_t)B * sizeof *lens);
    for (int i = 0; i < B; i++) {
        seqs[i] = malloc((size_t)L * sizeof **seqs);
        lens[i] = L;
        for (int j = 0; j < L; j++)
            seqs[i][j] = 1000 + (int32_t)(rnd() % (uint32_t)(c->vocab_size - 1000));
    }
    float *out = malloc((size_t)B * c->d_model * sizeof *out);
    if ((rc = qr_embed_ids(m, (const int32_t *const *)seqs, lens, B, out)))
        return die(rc, "embed (warm-up)");
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if ((rc = qr_embed_ids(m, (const int32_t *const *)seqs, lens, B, out)))
            return die(rc, "embed");
        double t = now() - t0;
        best = t < best ? t : best;
    }
    printf("embed %s %s %dx%d: %.0f tok/s (%.1f ms per batch, best of %d)\n", dir, qr_dtype_name(dt), B, L,
           (double)B * L / best, best * 1e3, reps);
    for (int i = 0; i < B; i++)
        free(seqs[i]);
    free(seqs);
    free(lens);
    free(out);
    qr_model_free(m);
    qr_backend_destroy(be);
    return 0;
}

/* ---------------------------------------------------------------- parity dumps */

/* Reads whitespace-separated ids; lines separate sequences. */
static int read_ids(const char *path, int32_t **ids, int32_t **line_len, int *n_lines, int64_t *n_ids)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return qr_fail(QR_EIO, "%s: cannot open", path);
    int64_t cap = 1024, n = 0;
    int lcap = 16, nl = 0;
    int32_t *v = malloc((size_t)cap * sizeof *v), *ll = calloc((size_t)lcap, sizeof *ll);
    char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        char *p = line, *e;
        int cnt = 0;
        for (long x = strtol(p, &e, 10); e != p; x = strtol(p, &e, 10)) {
            if (n == cap)
                v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            v[n++] = (int32_t)x;
            cnt++;
            p = e;
        }
        if (!cnt)
            continue;
        if (nl == lcap)
            ll = realloc(ll, (size_t)(lcap *= 2) * sizeof *ll);
        ll[nl++] = cnt;
    }
    fclose(f);
    *ids = v;
    *line_len = ll;
    *n_lines = nl;
    *n_ids = n;
    return QR_OK;
}

static qr_backend *parity_backend(int argc, char **argv)
{
    if (flag(argc, argv, "--cpu")) {
        qr_backend *be = NULL;
        int rc = qr_backend_cpu_create(0, &be);
        if (rc)
            exit(die(rc, "cpu backend"));
        return be;
    }
    return gpu_or_skip();
}

static int mode_logits(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[2], *idf = arg(argc, argv, "--ids", NULL), *pre = arg(argc, argv, "--out", NULL);
    int gen = atoi(arg(argc, argv, "--gen", "32"));
    qr_dtype dt;
    if (!idf || !pre || qr_dtype_parse(arg(argc, argv, "--dtype", "f32"), &dt))
        return 2;
    qr_backend *be = parity_backend(argc, argv);
    int32_t *ids, *ll;
    int nl;
    int64_t n;
    qr_model *m = NULL;
    int rc;
    if ((rc = read_ids(idf, &ids, &ll, &nl, &n)) || (rc = qr_model_load(dir, &(qr_model_opts){.dtype = dt}, be, &m)))
        return die(rc, dir);
    const qr_model_config *c = qr_model_cfg(m);
    qr_decoder_state *st = NULL;
    if ((rc = qr_decoder_state_create(m, 1, (int)n + gen + 1, &st)))
        return die(rc, "decoder state");
    float *lg = malloc((size_t)c->vocab_size * sizeof *lg);
    qr_dec_seq q = {.slot = 0, .ids = ids, .n = (int32_t)n};
    if ((rc = qr_decoder_step(st, &q, 1, lg)))
        return die(rc, "prefill");
    char path[4096];
    snprintf(path, sizeof path, "%s.logits.bin", pre);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(lg, sizeof *lg, (size_t)c->vocab_size, f) != (size_t)c->vocab_size)
        return die(qr_fail(QR_EIO, "%s", path), "write");
    fclose(f);
    snprintf(path, sizeof path, "%s.ids.txt", pre);
    f = fopen(path, "w");
    for (int t = 0; t < gen; t++) {
        int32_t best = 0;
        for (int32_t j = 1; j < c->vocab_size; j++)
            if (lg[j] > lg[best])
                best = j;
        fprintf(f, "%d%c", best, t + 1 == gen ? '\n' : ' ');
        qr_dec_seq one = {.slot = 0, .ids = &best, .n = 1};
        if (t + 1 < gen && (rc = qr_decoder_step(st, &one, 1, lg)))
            return die(rc, "decode");
    }
    fclose(f);
    printf("logits %s %s %s: prompt %lld, %d greedy ids -> %s.*\n", dir, qr_dtype_name(dt), be->ops->name,
           (long long)n, gen, pre);
    free(lg);
    free(ids);
    free(ll);
    qr_decoder_state_free(st);
    qr_model_free(m);
    qr_backend_destroy(be);
    return 0;
}

static int mode_embeds(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[2], *idf = arg(argc, argv, "--ids", NULL), *outp = arg(argc, argv, "--out", NULL);
    qr_dtype dt;
    if (!idf || !outp || qr_dtype_parse(arg(argc, argv, "--dtype", "f32"), &dt))
        return 2;
    qr_backend *be = parity_backend(argc, argv);
    int32_t *ids, *ll;
    int nl;
    int64_t n;
    qr_model *m = NULL;
    int rc;
    if ((rc = read_ids(idf, &ids, &ll, &nl, &n)) || (rc = qr_model_load(dir, &(qr_model_opts){.dtype = dt}, be, &m)))
        return die(rc, dir);
    const int32_t **seqs = malloc((size_t)nl * sizeof *seqs);
    int64_t off = 0;
    for (int i = 0; i < nl; i++) {
        seqs[i] = ids + off;
        off += ll[i];
    }
    int d = qr_model_cfg(m)->d_model;
    float *out = malloc((size_t)nl * d * sizeof *out);
    if ((rc = qr_embed_ids(m, seqs, ll, nl, out)))
        return die(rc, "embed");
    FILE *f = fopen(outp, "wb");
    if (!f || fwrite(out, sizeof *out, (size_t)nl * d, f) != (size_t)nl * d)
        return die(qr_fail(QR_EIO, "%s", outp), "write");
    fclose(f);
    printf("embeds %s %s %s: %d sequences -> %s\n", dir, qr_dtype_name(dt), be->ops->name, nl, outp);
    free(seqs);
    free(out);
    free(ids);
    free(ll);
    qr_model_free(m);
    qr_backend_destroy(be);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    /* speed runs compute in bf16 by default; parity runs in the weights' precision (f32 with f32) */
    const char *dflt = (strcmp(mode, "logits") == 0 || strcmp(mode, "embeds") == 0) &&
                               strcmp(arg(argc, argv, "--dtype", "f32"), "f32") == 0
                           ? "f32"
                           : "bf16";
    if (qr_dtype_parse(arg(argc, argv, "--act", dflt), &act_type) || (act_type != QR_F32 && act_type != QR_BF16)) {
        fprintf(stderr, "bench_gpu: --act f32|bf16\n");
        return 2;
    }
    if (strcmp(mode, "ops") == 0)
        return mode_ops();
    if (strcmp(mode, "decode") == 0)
        return mode_decode(argc, argv);
    if (strcmp(mode, "embed") == 0)
        return mode_embed(argc, argv);
    if (strcmp(mode, "logits") == 0)
        return mode_logits(argc, argv);
    if (strcmp(mode, "embeds") == 0)
        return mode_embeds(argc, argv);
    fprintf(stderr, "usage: bench_gpu ops | decode --shape S --dtype D ... | embed DIR ... | logits DIR ... | "
                    "embeds DIR ... (see bench/bench_gpu.c)\n");
    return 2;
}
