/* One quantized GEMV (decode: one token) streamed from DRAM, for A/B runs of
 * the runtime/cpu/quant kernels against each other (bench/RESULTS.md):
 *
 *   gemv_stream TYPE N K [threads]      e.g. gemv_stream q5_0 4864 896 2
 *
 * "hot": best of 2000 calls on one matrix (cache-resident where it fits);
 * "stream": 9 passes over copies of the matrix totalling >= 512 MB, each pass
 * timed, median and best per call. Random quant bytes with small finite
 * scales; activations from a fixed seed. Unlike bench_quant's stream column
 * (at most 64 copies) small matrices stream from DRAM here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/threadpool.h"
#include "runtime/cpu/quant/quant.h"
#include "runtime/weights/weights.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    qr_dtype t = QR_DTYPE_COUNT;
    for (int i = 0; argc >= 4 && i < QR_DTYPE_COUNT; i++)
        if (strcmp(argv[1], qr_dtype_name((qr_dtype)i)) == 0)
            t = (qr_dtype)i;
    if (t == QR_DTYPE_COUNT || !qr_qmat_supports(t)) {
        fprintf(stderr, "usage: gemv_stream TYPE N K [threads]   (TYPE: q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k)\n");
        return 2;
    }
    int64_t N = atoll(argv[2]), K = atoll(argv[3]);
    int th = argc > 4 ? atoi(argv[4]) : 2;
    int bs = qr_dtype_block(t);
    if (N <= 0 || K <= 0 || K % bs || th < 1) {
        fprintf(stderr, "gemv_stream: N, K > 0, K a multiple of %d, threads >= 1\n", bs);
        return 2;
    }
    size_t bytes = qr_dtype_row_bytes(t, K) * (size_t)N, bb = qr_dtype_row_bytes(t, bs);
    uint8_t *w = malloc(bytes);
    float *x = malloc(sizeof(float) * (size_t)K), *y = malloc(sizeof(float) * (size_t)N);
    void *abuf = malloc(qr_qact_bytes(1, K));
    int nc = (int)(512e6 / (double)bytes) + 1;
    uint8_t **c = malloc(sizeof *c * (size_t)nc);
    if (!w || !x || !y || !abuf || !c)
        return 1;
    srand(1);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rand();
    uint16_t h = qr_f32_to_f16(0.01f);
    for (size_t o = 0; o + bb <= bytes; o += bb) /* the scale (and min) f16s of every block */
        if (t == QR_Q6_K) {
            memcpy(w + o + 208, &h, 2);
        } else {
            memcpy(w + o, &h, 2);
            if (t != QR_Q8_0 && t != QR_Q4_0 && t != QR_Q5_0)
                memcpy(w + o + 2, &h, 2);
        }
    for (int64_t i = 0; i < K; i++)
        x[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    qr_qact a;
    qr_threadpool *tp = NULL;
    if (qr_quantize_act(NULL, x, (size_t)K, 1, K, abuf, &a) || (th > 1 && qr_threadpool_create(th, &tp)))
        return 1;
    double hot = 1e30;
    for (int r = 0; r < 2000; r++) {
        double t0 = now();
        qr_qmat_mul_q(tp, t, w, N, K, &a, y, (size_t)N);
        double dt = now() - t0;
        hot = dt < hot ? dt : hot;
    }
    for (int i = 0; i < nc; i++) {
        if (!(c[i] = malloc(bytes)))
            return 1;
        memcpy(c[i], w, bytes);
    }
    double pass[9];
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        for (int i = 0; i < nc; i++)
            qr_qmat_mul_q(tp, t, c[i], N, K, &a, y, (size_t)N);
        pass[r] = (now() - t0) / nc;
    }
    qsort(pass, 9, sizeof pass[0], cmp_d);
    printf("%s %lldx%lld, %d threads, ISA %s: hot %.1f us %.2f GB/s, stream median %.1f us %.2f GB/s, best %.2f GB/s\n",
           qr_dtype_name(t), (long long)N, (long long)K, th, qr_quant_isa_name(qr_quant_isa()), hot * 1e6,
           (double)bytes / hot / 1e9, pass[4] * 1e6, (double)bytes / pass[4] / 1e9, (double)bytes / pass[0] / 1e9);
    for (int i = 0; i < nc; i++)
        free(c[i]);
    free(c), free(w), free(x), free(y), free(abuf);
    qr_threadpool_destroy(tp);
    return 0;
}
