/* CPU backend benchmark: memory read bandwidth, matmul as GEMV (decode) and
 * GEMM (prefill / encoder batches), attention. Prints a compact table.
 *
 *   bench_cpu [threads] [--quick]
 *
 * GEMV "stream" rows cycle over enough copies of the weight matrix to exceed
 * 1 GiB, as a model's layers do, so the weights come from DRAM, not cache;
 * "hot" rows repeat one matrix (cache-resident on a big-L3 machine). */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* ------------------------------------------------------------ bandwidth */

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    int variant;
    double sink[64];
} bw_ctx;

#if defined(__x86_64__)
#include <immintrin.h>
/* variant 0: one sequential stream; variant 1: four interleaved streams with
 * software prefetch (more requests in flight, as the GEMV kernels issue) */
__attribute__((target("avx2"))) static double read_avx2(const uint8_t *p, size_t n, int variant)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    if (variant == 0) {
        for (size_t i = 0; i + 128 <= n; i += 128) {
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
        }
    } else {
        size_t q = n / 4;
        const uint8_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
        for (size_t i = 0; i + 64 <= q; i += 64) {
            _mm_prefetch((const char *)s0 + i + 2048, _MM_HINT_T0);
            _mm_prefetch((const char *)s1 + i + 2048, _MM_HINT_T0);
            _mm_prefetch((const char *)s2 + i + 2048, _MM_HINT_T0);
            _mm_prefetch((const char *)s3 + i + 2048, _MM_HINT_T0);
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(s0 + i)));
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(s0 + i + 32)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(s1 + i)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(s1 + i + 32)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(s2 + i)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(s2 + i + 32)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(s3 + i)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(s3 + i + 32)));
        }
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (double)_mm256_extract_epi64(a, 0);
}
#endif

static double read_scalar(const uint8_t *p, size_t n)
{
    const uint64_t *q = (const uint64_t *)p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a ^= q[i];
        b ^= q[i + 1];
        c ^= q[i + 2];
        d ^= q[i + 3];
    }
    return (double)(a ^ b ^ c ^ d);
}

static void bw_job(void *v, int64_t b, int64_t e, int tid)
{
    bw_ctx *c = v;
    const size_t blk = (size_t)1 << 20;
    double s = 0;
    for (int64_t i = b; i < e; i++) {
#if defined(__x86_64__)
        s += __builtin_cpu_supports("avx2") ? read_avx2(c->buf + (size_t)i * blk, blk, c->variant)
                                            : read_scalar(c->buf + (size_t)i * blk, blk);
#else
        s += read_scalar(c->buf + (size_t)i * blk, blk);
#endif
    }
    c->sink[tid & 63] += s;
}

static double measure_bw(qr_threadpool *pool, size_t bytes, int reps)
{
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf)
        return 0;
    for (size_t i = 0; i < bytes; i += 64)
        buf[i] = (uint8_t)i;
    bw_ctx c = {buf, bytes, 0, {0}};
    double best = 1e30;
    for (int r = 0; r < 2 * reps; r++) { /* both read kernels, alternating; the faster counts */
        c.variant = r & 1;
        double t0 = now();
        qr_parallel_for(pool, (int64_t)(bytes >> 20), 1, bw_job, &c);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(buf);
    return (double)bytes / best / 1e9;
}

/* Table rows whose "% of bandwidth" column is filled in at the end, once the
 * bandwidth has been measured again (a busy machine can spoil one reading;
 * the best one is used). */
static char out_lines[128][200];
static double out_gbs[128];
static int n_out;

static void emit(double gbs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(double gbs, const char *fmt, ...)
{
    if (n_out >= 128)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out_lines[n_out], sizeof out_lines[0], fmt, ap);
    va_end(ap);
    out_gbs[n_out++] = gbs;
}

/* ------------------------------------------------------------ matmul */

static qr_backend *be;

static void die(int rc, const char *what)
{
    fprintf(stderr, "bench_cpu: %s: %s (%s)\n", what, qr_strerror(rc), qr_last_error());
    exit(1);
}

/* Seconds per matmul (best of reps) of x(n, in) . W^T over `copies` weight
 * matrices in turn (each a different memory area). */
static double time_matmul(int64_t n, int64_t in, int64_t out, qr_dtype dt, int copies, int reps, size_t *wbytes)
{
    float *wh = malloc((size_t)(in * out) * sizeof(float));
    for (int64_t i = 0; i < in * out; i++)
        wh[i] = frand() * 0.1f;
    qr_tensor *w = calloc((size_t)copies, sizeof *w), x, y;
    int rc;
    for (int c = 0; c < copies; c++)
        if ((rc = be->ops->weight_load(be, wh, QR_F32, out, in, dt, false, &w[c])))
            die(rc, "weight_load");
    *wbytes = w[0].row_bytes * (size_t)out + (dt == QR_I8 ? (size_t)out * 4 : 0);
    if ((rc = qr_be_tensor_alloc(be, QR_F32, n, in, &x)) || (rc = qr_be_tensor_alloc(be, QR_F32, n, out, &y)))
        die(rc, "alloc");
    for (int64_t i = 0; i < n * in; i++)
        ((float *)x.data)[i] = frand();
    for (int c = 0; c < copies; c++) /* warm-up, page in */
        be->ops->matmul(be, &x, &w[c], NULL, &y);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int c = 0; c < copies; c++)
            be->ops->matmul(be, &x, &w[c], NULL, &y);
        double t = (now() - t0) / copies;
        best = t < best ? t : best;
    }
    for (int c = 0; c < copies; c++)
        be->ops->tensor_free(be, &w[c]);
    be->ops->tensor_free(be, &x);
    be->ops->tensor_free(be, &y);
    free(w);
    free(wh);
    return best;
}

/* Decode-step GEMVs of a whole model: every layer's q, k, v, o, gate, up, down
 * and the LM head, each a separate weight matrix, x = 1 row. */
typedef struct {
    const char *name;
    int64_t d, d_kv, d_ff, vocab;
    int n_layer;
} model_shape;

static void bench_model(const model_shape *ms, qr_dtype dt, int reps)
{
    int64_t shapes[7][2] = {{ms->d, ms->d},    {ms->d_kv, ms->d},   {ms->d_kv, ms->d}, {ms->d, ms->d},
                            {ms->d_ff, ms->d}, {ms->d_ff, ms->d}, {ms->d, ms->d_ff}};
    int n_mat = 7 * ms->n_layer + 1;
    qr_tensor *w = calloc((size_t)n_mat, sizeof *w);
    float *src = malloc((size_t)(ms->vocab * ms->d) * sizeof(float));
    for (int64_t i = 0; i < ms->vocab * ms->d; i++)
        src[i] = frand() * 0.05f;
    size_t bytes = 0;
    int rc;
    for (int i = 0; i < n_mat; i++) {
        int64_t o = i == n_mat - 1 ? ms->vocab : shapes[i % 7][0], in = i == n_mat - 1 ? ms->d : shapes[i % 7][1];
        if ((rc = be->ops->weight_load(be, src, QR_F32, o, in, dt, false, &w[i])))
            die(rc, "weight_load");
        bytes += w[i].row_bytes * (size_t)o + (dt == QR_I8 ? (size_t)o * 4 : 0);
    }
    free(src);
    qr_tensor x, y;
    int64_t maxo = ms->vocab > ms->d_ff ? ms->vocab : ms->d_ff, maxi = ms->d_ff;
    qr_be_tensor_alloc(be, QR_F32, 1, maxi, &x);
    qr_be_tensor_alloc(be, QR_F32, 1, maxo, &y);
    for (int64_t i = 0; i < maxi; i++)
        ((float *)x.data)[i] = frand();
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        for (int i = 0; i < n_mat; i++) {
            qr_tensor xv = x, yv = y;
            xv.cols = w[i].cols;
            yv.cols = w[i].rows;
            if ((rc = be->ops->matmul(be, &xv, &w[i], NULL, &yv)))
                die(rc, "matmul");
        }
        double t = now() - t0;
        if (r > 0) /* the first pass pages weights in */
            best = t < best ? t : best;
    }
    double gbs = (double)bytes / best / 1e9;
    emit(gbs, "%-14s %-5s %9.1f MB %9.2f ms %9.1f tok/s %8.2f GB/s", ms->name, qr_dtype_name(dt),
         (double)bytes / 1e6, best * 1e3, 1.0 / best, gbs);
    for (int i = 0; i < n_mat; i++)
        be->ops->tensor_free(be, &w[i]);
    be->ops->tensor_free(be, &x);
    be->ops->tensor_free(be, &y);
    free(w);
}

int main(int argc, char **argv)
{
    int nt = 0;
    int quick = 0;
    const char *model_filter = NULL; /* --model NAME: only models whose name contains NAME */
    const char *only = ""; /* bw, gemv, small, gemm, attn: run just that part (bw always runs) */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model_filter = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            nt = atoi(argv[i]);
    }
#define PART(name) (!only[0] || strcmp(only, name) == 0)
    int rc = qr_backend_cpu_create(nt, &be);
    if (rc)
        die(rc, "backend");
    qr_threadpool *pool;
    if ((rc = qr_threadpool_create(nt, &pool)))
        die(rc, "pool");
    int threads = qr_threadpool_size(pool);
    printf("quire bench_cpu: %d threads, kernels %s\n\n", threads, qr_backend_cpu_kernels(be));

    size_t bw_bytes = (size_t)(quick ? 256 : 1024) << 20;
    double bw = measure_bw(pool, bw_bytes, quick ? 3 : 10);
    double bw1 = 0;
    {
        qr_threadpool *one;
        qr_threadpool_create(1, &one);
        bw1 = measure_bw(one, bw_bytes, quick ? 2 : 4);
        qr_threadpool_destroy(one);
    }
    printf("memory read bandwidth (%zu MiB buffer, best of runs): %.2f GB/s (%d threads), %.2f GB/s (1 thread)\n\n",
           bw_bytes >> 20, bw, threads, bw1);

    /* whole-model decode GEMVs (matmul only: no attention, norms) */
    if (PART("model")) {
        emit(-1, "decode matmuls of a whole model, x = 1 row (weights streamed once per token)");
        emit(-1, "%-14s %-5s %12s %12s %15s %13s %7s", "model", "dtype", "weights", "per token", "tok/s", "GB/s",
             "%bw");
        static const model_shape models[] = {
            {"SmolLM2-135M", 576, 192, 1536, 49152, 30},
            {"Qwen2.5-0.5B", 896, 128, 4864, 151936, 24},
        };
        static const qr_dtype mdts[] = {QR_F32, QR_BF16, QR_I8};
        for (int mi = 0; mi < 2; mi++)
            for (int di = 0; di < 3; di++)
                if (!model_filter || strstr(models[mi].name, model_filter))
                bench_model(&models[mi], mdts[di], quick ? 3 : 8);
        emit(-1, " ");
    }

    /* GEMV: one x row (decode) */
    if (PART("gemv") || strcmp(only, "stream") == 0) {
        emit(-1, "GEMV x(1, in) . W(out, in)^T");
        emit(-1, "%-10s %-6s %-7s %10s %10s %9s %8s", "out x in", "dtype", "mode", "us/call", "calls/s", "GB/s",
             "%bw");
    }
    static const int64_t shapes[][2] = {{1536, 576}, {576, 1536}, {4864, 896}, {896, 4864}};
    static const qr_dtype dts[] = {QR_F32, QR_BF16, QR_F16, QR_I8};
    /* --only stream: just the DRAM-streaming rows of the larger shapes */
    bool stream_only = strcmp(only, "stream") == 0;
    for (size_t s = stream_only ? 2 : 0; s < 4 && (PART("gemv") || stream_only); s++)
        for (size_t d = 0; d < 4; d++)
            for (int mode = stream_only ? 1 : 0; mode < 2; mode++) {
                int64_t out = shapes[s][0], in = shapes[s][1];
                size_t one = (size_t)(out * in) * (dts[d] == QR_F32 ? 4 : dts[d] == QR_I8 ? 1 : 2);
                int copies = mode == 0 ? 1 : (int)((bw_bytes + one - 1) / one);
                if (mode == 1 && quick && copies > 64)
                    copies = 64;
                size_t wb;
                double t = time_matmul(1, in, out, dts[d], copies, mode == 0 ? 200 : (quick ? 3 : 10), &wb);
                double gbs = (double)wb / t / 1e9;
                emit(gbs, "%4lldx%-5lld %-6s %-7s %10.1f %10.0f %9.2f", (long long)out, (long long)in,
                     qr_dtype_name(dts[d]), mode ? "stream" : "hot", t * 1e6, 1.0 / t, gbs);
            }

    /* few-row matmuls: GEMV kernels vs sgemm, to place the switch-over */
    if (PART("small")) {
        printf("\nsmall n, 896x4864 (out x in), stream: us/call GEMV kernel vs sgemm path\n");
        printf("%-4s %-6s %10s %10s\n", "n", "dtype", "gemv", "sgemm");
    }
    int64_t ns[] = {1, 2, 4, 8, 16, 24, 32, 48};
    for (size_t i = 0; i < 8 && PART("small"); i++)
        for (size_t d = 0; d < 4; d += (d == 0 ? 1 : 2)) { /* f32, bf16, int8 */
            size_t one = (size_t)(896 * 4864) * (dts[d] == QR_F32 ? 4 : 2), wb;
            int copies = (int)((bw_bytes / 2 + one - 1) / one);
            qr_backend_cpu_set_gemm_min_rows(be, 1000000);
            double tg = time_matmul(ns[i], 4864, 896, dts[d], copies, 3, &wb);
            qr_backend_cpu_set_gemm_min_rows(be, 1);
            double tb = time_matmul(ns[i], 4864, 896, dts[d], copies, 3, &wb);
            qr_backend_cpu_set_gemm_min_rows(be, 0); /* back to the per-dtype default */
            printf("%-4lld %-6s %10.1f %10.1f\n", (long long)ns[i], qr_dtype_name(dts[d]), tg * 1e6, tb * 1e6);
        }

    /* GEMM: encoder-batch shape */
    if (PART("gemm"))
        printf("\nGEMM x(4096, 384) . W(1536, 384)^T\n");
    double flops = 2.0 * 4096 * 384 * 1536;
    for (size_t d = 0; d < 4 && PART("gemm"); d++) {
        size_t wb;
        double t = time_matmul(4096, 384, 1536, dts[d], 1, quick ? 2 : 5, &wb);
        printf("  backend matmul, %-5s weights: %8.2f ms  %7.1f GFLOP/s\n", qr_dtype_name(dts[d]), t * 1e3,
               flops / t / 1e9);
    }
    /* the same product as one OpenBLAS call with OpenBLAS's own threads */
    if (PART("gemm")) {
        float *a = malloc(4096 * 384 * 4), *b = malloc(1536 * 384 * 4), *c = malloc(4096 * 1536 * 4);
        for (int i = 0; i < 4096 * 384; i++)
            a[i] = frand();
        for (int i = 0; i < 1536 * 384; i++)
            b[i] = frand();
        for (int th = 1; th <= threads; th += threads > 1 ? threads - 1 : 1) {
            openblas_set_num_threads(th);
            double best = 1e30;
            for (int r = 0; r < (quick ? 2 : 5); r++) {
                double t0 = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 4096, 1536, 384, 1.0f, a, 384, b, 384, 0.0f,
                            c, 1536);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("  OpenBLAS alone, %d thread(s):   %8.2f ms  %7.1f GFLOP/s\n", th, best * 1e3, flops / best / 1e9);
        }
        openblas_set_num_threads(1);
        free(a);
        free(b);
        free(c);
    }

    /* attention: encoder batch 32 x 128, 12 heads x 32; decode step over 1024 cached keys */
    if (PART("attn")) {
        int nh = 12, hd = 32, nseq = 32, len = 128, rows = nseq * len;
        qr_tensor q, k, v, o;
        qr_be_tensor_alloc(be, QR_F32, rows, nh * hd, &q);
        qr_be_tensor_alloc(be, QR_F32, rows, nh * hd, &k);
        qr_be_tensor_alloc(be, QR_F32, rows, nh * hd, &v);
        qr_be_tensor_alloc(be, QR_F32, rows, nh * hd, &o);
        for (int64_t i = 0; i < (int64_t)rows * nh * hd; i++) {
            ((float *)q.data)[i] = frand();
            ((float *)k.data)[i] = frand();
            ((float *)v.data)[i] = frand();
        }
        qr_attn_seq seqs[32];
        for (int s = 0; s < nseq; s++)
            seqs[s] = (qr_attn_seq){s * len, len, 0, s * len, len};
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            be->ops->attention(be, &q, &k, &v, seqs, nseq, nh, nh, hd, 0.17f, false, &o);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("\nattention encoder 32 x 128 tok, 12 x 32: %.2f ms\n", best * 1e3);
        /* decode: 14 heads / 2 kv heads x 64 (Qwen2.5-0.5B), 1 query over 1024 keys */
        qr_tensor q1, k1, v1, o1;
        qr_be_tensor_alloc(be, QR_F32, 1, 14 * 64, &q1);
        qr_be_tensor_alloc(be, QR_F32, 1024, 2 * 64, &k1);
        qr_be_tensor_alloc(be, QR_F32, 1024, 2 * 64, &v1);
        qr_be_tensor_alloc(be, QR_F32, 1, 14 * 64, &o1);
        memcpy(q1.data, q.data, 14 * 64 * 4);
        memcpy(k1.data, k.data, 1024 * 128 * 4);
        memcpy(v1.data, v.data, 1024 * 128 * 4);
        qr_attn_seq s1 = {0, 1, 1023, 0, 1024};
        best = 1e30;
        for (int r = 0; r < 50; r++) {
            double t0 = now();
            be->ops->attention(be, &q1, &k1, &v1, &s1, 1, 14, 2, 64, 0.125f, true, &o1);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("attention decode 1 tok over 1024 keys, 14/2 heads x 64: %.1f us\n", best * 1e6);
        qr_tensor *ts[] = {&q, &k, &v, &o, &q1, &k1, &v1, &o1};
        for (int i = 0; i < 8; i++)
            be->ops->tensor_free(be, ts[i]);
    }
    double bw_end = measure_bw(pool, bw_bytes, quick ? 3 : 10);
    printf("\nmemory read bandwidth again: %.2f GB/s; %%bw below is against the best reading, %.2f GB/s\n\n", bw_end,
           bw_end > bw ? bw_end : bw);
    if (bw_end > bw)
        bw = bw_end;
    for (int i = 0; i < n_out; i++) {
        if (out_gbs[i] < 0)
            printf("%s\n", out_lines[i]);
        else
            printf("%s %6.0f%%\n", out_lines[i], 100.0 * out_gbs[i] / bw);
    }
    qr_threadpool_destroy(pool);
    qr_backend_destroy(be);
    return 0;
}
