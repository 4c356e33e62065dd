/* Integer matmul on GGUF blocks (runtime/cpu/quant): GEMV (decode, 1 token)
 * and GEMM (prefill, n_tok tokens) per weight type at the matmul shapes of
 * SmolLM2-135M and Qwen2.5-0.5B, against OpenBLAS sgemm on the weights
 * dequantized to f32 (the matmul quire's int8 prefill widens to today).
 *
 *   bench_quant [threads] [n_tok] [--quick] [--model] [--isa amx|avx512vnni|avxvnni|avx2|scalar]
 *
 * --model: instead, the layer matmuls of a whole prefill of SmolLM2-135M and
 * Qwen2.5-0.5B shapes (tokens/s of the matmuls alone).
 *
 * GEMM time includes quantizing the activations. GEMV "stream" cycles over
 * copies of the matrix totalling >= 256 MiB so weights come from DRAM; "hot"
 * repeats one matrix (cache-resident). Each figure is the best of several
 * repetitions (the dev box is shared); "cpu" columns divide by the process
 * CPU time of that repetition instead of wall time (all threads, spinning
 * included): on a loaded machine this is what the code does per busy core. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "runtime/cpu/quant/quant.h"
#include "runtime/weights/weights.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = qr_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* random quant bytes with small finite scales at each type's scale offsets */
static void rand_weights(qr_dtype t, uint8_t *w, size_t bytes)
{
    int bs = qr_dtype_block(t);
    size_t bb = qr_dtype_row_bytes(t, bs);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rnd();
    for (size_t o = 0; o + bb <= bytes; o += bb) {
        uint8_t *b = w + o;
        if (t == QR_Q6_K)
            put_f16(b + 208, 0.001f);
        else
            put_f16(b, 0.01f);
        if (t == QR_Q4_1 || t == QR_Q5_1 || t == QR_Q4_K || t == QR_Q5_K)
            put_f16(b + 2, 0.01f);
    }
}

typedef struct {
    const char *name;
    int64_t N, K;
} shape;

static const shape shapes[] = {
    {"smol q/o 576x576", 576, 576},   {"smol gate/up 1536x576", 1536, 576}, {"smol down 576x1536", 576, 1536},
    {"smol lm_head 49152x576", 49152, 576}, {"qwen gate/up 4864x896", 4864, 896}, {"qwen down 896x4864", 896, 4864},
};
static const qr_dtype types[] = {QR_Q8_0, QR_Q4_0, QR_Q4_1, QR_Q5_0, QR_Q5_1, QR_Q4_K, QR_Q5_K, QR_Q6_K};

/* The matmuls of one prefill of n_tok tokens through a model's layers:
 * per layer q, k, v share one quantization of x, o its own, gate/up one,
 * down one (as a backend would call quant.h). lm_head left out (prefill
 * needs logits of the last token only). Returns the best wall seconds. */
typedef struct {
    const char *name;
    int layers;
    int64_t d, kv, ff; /* hidden, k/v width, FFN width */
} model_shape;

static double model_prefill(qr_threadpool *tp, const model_shape *m, qr_dtype t, int64_t n_tok, int reps,
                            double *ops_out, double *cpu_out)
{
    int64_t N[7] = {m->d, m->kv, m->kv, m->d, m->ff, m->ff, m->d};
    int64_t K[7] = {m->d, m->d, m->d, m->d, m->d, m->d, m->ff};
    uint8_t *w[7];
    double ops = 0;
    for (int i = 0; i < 7; i++) {
        size_t bytes = qr_dtype_row_bytes(t, K[i]) * (size_t)N[i];
        w[i] = malloc(bytes);
        rand_weights(t, w[i], bytes);
        ops += 2.0 * (double)N[i] * (double)K[i] * (double)n_tok;
    }
    *ops_out = ops * m->layers;
    float *x = malloc(sizeof(float) * (size_t)(n_tok * m->ff)), *y = malloc(sizeof(float) * (size_t)(n_tok * m->ff));
    for (int64_t i = 0; i < n_tok * m->ff; i++)
        x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    void *abuf = malloc(qr_qact_bytes(n_tok, m->ff));
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now(), c0 = cpu();
        for (int l = 0; l < m->layers; l++) {
            qr_qact a;
            qr_quantize_act(tp, x, (size_t)m->d, n_tok, m->d, abuf, &a);
            for (int i = 0; i < 3; i++)
                qr_qmat_mul_q(tp, t, w[i], N[i], K[i], &a, y, (size_t)N[i]);
            qr_qmat_mul(tp, t, w[3], N[3], K[3], x, (size_t)m->d, n_tok, y, (size_t)N[3]);
            qr_quantize_act(tp, x, (size_t)m->d, n_tok, m->d, abuf, &a);
            for (int i = 4; i < 6; i++)
                qr_qmat_mul_q(tp, t, w[i], N[i], K[i], &a, y, (size_t)N[i]);
            qr_qmat_mul(tp, t, w[6], N[6], K[6], x, (size_t)m->ff, n_tok, y, (size_t)N[6]);
        }
        double dt = now() - t0, dc = cpu() - c0;
        best = dt < best ? dt : best;
        best_cpu = dc < best_cpu ? dc : best_cpu;
    }
    *cpu_out = best_cpu;
    for (int i = 0; i < 7; i++)
        free(w[i]);
    free(x), free(y), free(abuf);
    return best;
}

int main(int argc, char **argv)
{
    int threads = 2;
    int64_t n_tok = 129;
    bool quick = false, model = false;
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--model") == 0)
            model = true;
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            const char *n = argv[++i];
            qr_qisa want = strcmp(n, "amx") == 0          ? QR_QISA_AMX
                           : strcmp(n, "avx512vnni") == 0 ? QR_QISA_AVX512VNNI
                           : strcmp(n, "avxvnni") == 0  ? QR_QISA_AVXVNNI
                           : strcmp(n, "avx2") == 0     ? QR_QISA_AVX2
                                                        : QR_QISA_SCALAR;
            qr_quant_set_isa(want);
        }
        else if (pos++ == 0)
            threads = atoi(argv[i]);
        else
            n_tok = atoll(argv[i]);
    }
    qr_threadpool *tp = NULL;
    if (qr_threadpool_create(threads, &tp) != QR_OK)
        return 1;
    openblas_set_num_threads(threads);
    printf("bench_quant: %d threads, GEMM n_tok %lld, ISA %s\n", threads, (long long)n_tok,
           qr_quant_isa_name(qr_quant_isa()));
    printf("%-23s %-5s %9s %8s %8s %8s | %8s %8s %8s | %8s %8s\n", "shape", "type", "gemv hot", "GB/s", "GB/s cpu",
           "GB/s strm", "GEMM GOP/s", "cpu", "tok/s", "sgemm", "cpu");
    int reps = quick ? 2 : 5;
    if (model) {
        static const model_shape ms[] = {{"SmolLM2-135M", 30, 576, 192, 1536}, {"Qwen2.5-0.5B", 24, 896, 128, 4864}};
        static const qr_dtype mt[] = {QR_Q8_0, QR_Q4_0, QR_Q5_0};
        printf("prefill matmuls (layers only, %lld tokens): best of %d\n", (long long)n_tok, reps);
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++) {
                double ops, dc, dt = model_prefill(tp, &ms[i], mt[j], n_tok, reps, &ops, &dc);
                printf("%-14s %-5s %8.1f ms %8.0f tok/s %8.1f GOP/s | cpu %8.1f ms %8.1f GOP/s\n", ms[i].name,
                       qr_dtype_name(mt[j]), dt * 1e3, (double)n_tok / dt, ops / dt * 1e-9, dc * 1e3, ops / dc * 1e-9);
            }
        qr_threadpool_destroy(tp);
        return 0;
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        float *x = malloc(sizeof(float) * (size_t)(n_tok * s->K)), *y = malloc(sizeof(float) * (size_t)(n_tok * s->N));
        for (int64_t i = 0; i < n_tok * s->K; i++)
            x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
        double sgemm_gops = 0, sgemm_cpu = 0;
        bool sgemm_done = false;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            qr_dtype t = types[ti];
            if (s->K % qr_dtype_block(t))
                continue;
            size_t rb = qr_dtype_row_bytes(t, s->K), mb = rb * (size_t)s->N;
            size_t copies = (256u << 20) / mb + 1;
            if (quick || copies > 64)
                copies = quick ? 1 : 64;
            uint8_t *w = malloc(mb * copies);
            rand_weights(t, w, mb * copies);
            /* GEMV hot: one matrix repeatedly */
            double best = 1e30, gemv_cpu = 1e30;
            for (int r = 0; r < reps; r++) {
                int it = 20;
                double t0 = now(), c0 = cpu();
                for (int i = 0; i < it; i++)
                    qr_qmat_mul(tp, t, w, s->N, s->K, x, (size_t)s->K, 1, y, (size_t)s->N);
                double dt = (now() - t0) / it, dc = (cpu() - c0) / it;
                best = dt < best ? dt : best;
                gemv_cpu = dc < gemv_cpu ? dc : gemv_cpu;
            }
            double gemv_hot = best;
            /* GEMV stream: cycle over the copies */
            best = 1e30;
            for (int r = 0; r < reps && copies > 1; r++) {
                double t0 = now();
                for (size_t c = 0; c < copies; c++)
                    qr_qmat_mul(tp, t, w + c * mb, s->N, s->K, x, (size_t)s->K, 1, y, (size_t)s->N);
                double dt = (now() - t0) / (double)copies;
                best = dt < best ? dt : best;
            }
            double gemv_stream = copies > 1 ? best : 0;
            /* GEMM */
            best = 1e30;
            double best_cpu = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = now(), c0 = cpu();
                qr_qmat_mul(tp, t, w, s->N, s->K, x, (size_t)s->K, n_tok, y, (size_t)s->N);
                double dt = now() - t0, dc = cpu() - c0;
                best = dt < best ? dt : best;
                best_cpu = dc < best_cpu ? dc : best_cpu;
            }
            double ops = 2.0 * (double)s->N * (double)s->K * (double)n_tok;
            /* baseline once per shape: sgemm on the dequantized first type */
            if (!sgemm_done) {
                float *wf = malloc(sizeof(float) * (size_t)(s->N * s->K));
                qr_convert_to_f32(t, w, s->N * s->K, wf);
                double sb = 1e30, sc = 1e30;
                for (int r = 0; r < reps; r++) {
                    double t0 = now(), c0 = cpu();
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, (int)s->N, (int)s->K, 1.0f, x,
                                (int)s->K, wf, (int)s->K, 0.0f, y, (int)s->N);
                    double dt = now() - t0, dc = cpu() - c0;
                    sb = dt < sb ? dt : sb;
                    sc = dc < sc ? dc : sc;
                }
                sgemm_gops = ops / sb * 1e-9;
                sgemm_cpu = ops / sc * 1e-9;
                sgemm_done = true;
                free(wf);
            }
            printf("%-23s %-5s %7.1fus %8.1f %8.1f %8.1f | %8.1f %8.1f %8.0f | %8.1f %8.1f\n", s->name,
                   qr_dtype_name(t), gemv_hot * 1e6, (double)mb / gemv_hot * 1e-9, (double)mb / gemv_cpu * 1e-9,
                   gemv_stream > 0 ? (double)mb / gemv_stream * 1e-9 : 0.0, ops / best * 1e-9,
                   ops / best_cpu * 1e-9, (double)n_tok / best, sgemm_gops, sgemm_cpu);
            fflush(stdout);
            free(w);
        }
        free(x);
        free(y);
    }
    qr_threadpool_destroy(tp);
    return 0;
}
