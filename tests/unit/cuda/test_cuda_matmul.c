/* CUDA weight_load + matmul against the CPU backend (the reference), on
 * fresh random inputs with poisoned outputs: every weight type (f32, f16,
 * bf16, int8 per-row, GGUF Q8_0 kept in its quantisation), f32 and bf16
 * activations, with and without bias, GEMV (few rows) and GEMM (many rows)
 * paths, widths that take the vectorised and the scalar kernels. Skips
 * (exit 77) without a GPU. */
#include "tests/unit/cuda/cuda_test.h"

#include "runtime/dtype.h"

static qr_backend *cpu, *gpu;
static bool gpu_bf16; /* the GPU backend takes bf16 activation tensors */
static float x_amp = 1.0f; /* magnitude of x (issue 11: f16 weights with |x| past f16's 65504) */

/* Random GGUF Q8_0 rows: per block an f16 scale d and 32 int8 values. */
static uint8_t *make_q8_0(int64_t rows, int64_t cols)
{
    size_t rb = qr_dtype_row_bytes(QR_Q8_0, cols);
    uint8_t *p = malloc((size_t)rows * rb);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < cols / 32; b++) {
            uint8_t *blk = p + (size_t)r * rb + (size_t)b * 34;
            uint16_t d = qr_f32_to_f16((0.5f + 0.5f * fabsf(ct_unif())) / (127.0f * sqrtf((float)cols)));
            memcpy(blk, &d, 2);
            for (int i = 0; i < 32; i++)
                blk[2 + i] = (uint8_t)(int8_t)(ct_next() % 255 - 127);
        }
    return p;
}

static float round_bf16(float v) { return qr_bf16_to_f32(qr_f32_to_bf16(v)); }

/* One case: W (out, in) from src (src_dt) loaded as want on both backends
 * (the CPU loads Q8_0 as f32: its exact dequantisation), x (n, in). */
static void run_case(qr_dtype want, qr_dtype src_dt, qr_dtype act, int64_t n, int64_t out, int64_t in, bool bias)
{
    float *wf = NULL;
    const void *src;
    uint8_t *q8 = NULL;
    uint16_t *w16 = NULL;
    if (src_dt == QR_Q8_0) {
        q8 = make_q8_0(out, in);
        src = q8;
    } else {
        wf = ct_rand((size_t)(out * in), 1.0f / sqrtf((float)in));
        src = wf;
        if (src_dt == QR_F16 || src_dt == QR_BF16) {
            w16 = malloc((size_t)(out * in) * 2);
            for (int64_t i = 0; i < out * in; i++)
                w16[i] = src_dt == QR_F16 ? qr_f32_to_f16(wf[i]) : qr_f32_to_bf16(wf[i]);
            src = w16;
        }
    }
    float *x = ct_rand((size_t)(n * in), x_amp);
    if (act == QR_BF16)
        for (int64_t i = 0; i < n * in; i++)
            x[i] = round_bf16(x[i]); /* both backends see the same x */
    float *b = bias ? ct_rand((size_t)out, 0.5f) : NULL;

    qr_dtype cpu_want = want == QR_Q8_0 ? QR_F32 : want;
    qr_tensor cw = {0}, gw = {0}, cx = {0}, gx = {0}, cy = {0}, gy = {0}, cb = {0}, gb = {0};
    CHECK_OK(cpu->ops->weight_load(cpu, src, src_dt, out, in, cpu_want, false, &cw));
    CHECK_OK(gpu->ops->weight_load(gpu, src, src_dt, out, in, want, false, &gw));
    CHECK_OK(ct_put(cpu, QR_F32, n, in, x, &cx));
    CHECK_OK(ct_put(gpu, act, n, in, x, &gx));
    CHECK_OK(qr_be_tensor_alloc(cpu, QR_F32, n, out, &cy));
    CHECK_OK(qr_be_tensor_alloc(gpu, act, n, out, &gy));
    if (bias) {
        CHECK_OK(ct_put(cpu, QR_F32, 1, out, b, &cb));
        CHECK_OK(ct_put(gpu, QR_F32, 1, out, b, &gb));
    }
    CHECK_OK(ct_poison(gpu, &gy));
    CHECK_OK(cpu->ops->matmul(cpu, &cx, &cw, bias ? &cb : NULL, &cy));
    CHECK_OK(gpu->ops->matmul(gpu, &gx, &gw, bias ? &gb : NULL, &gy));
    float *ref = ct_get(cpu, &cy), *got = ct_get(gpu, &gy);
    bool int8 = want == QR_I8 || want == QR_Q8_0;
    bool gemv = n <= (int8 ? 8 : 4);
    qr_dtype op = gemv || want == QR_F32 ? QR_F32 : want == QR_F16 ? QR_F16 : QR_BF16;
    double bound = ct_bound(op, act);
    if (want == QR_Q8_0 && src_dt != QR_Q8_0)
        bound = 2e-2; /* quantised at load vs the CPU's unquantised f32 */
    double e = ref && got ? ct_nerr(got, ref, (size_t)(n * out)) : INFINITY;
    CHECK_MSG(e <= bound, "matmul w %s (from %s) x/y %s n %lld out %lld in %lld bias %d: error %.3g > %.3g",
              qr_dtype_name(want), qr_dtype_name(src_dt), qr_dtype_name(act), (long long)n, (long long)out,
              (long long)in, bias, e, bound);

    /* int8 weights: the device quantisation is the CPU's, value for value;
     * Q8_0 kept on the device: exactly GGUF's values (the CPU's dequantisation) */
    if ((want == QR_I8 && src_dt != QR_Q8_0) || (want == QR_Q8_0 && src_dt == QR_Q8_0)) {
        float *wc = ct_get(cpu, &cw), *wg = ct_get(gpu, &gw);
        size_t diff = 0;
        for (int64_t i = 0; wc && wg && i < out * in; i++)
            diff += wc[i] != wg[i];
        CHECK_MSG(wc && wg && diff == 0, "%s weights from %s: %zu of %lld values differ", qr_dtype_name(want),
                  qr_dtype_name(src_dt), diff, (long long)(out * in));
        free(wc);
        free(wg);
    }
    free(ref);
    free(got);
    qr_tensor *ts[] = {&cw, &cx, &cy, &cb};
    for (int i = 0; i < 4; i++)
        qr_be_tensor_free(cpu, ts[i]);
    qr_tensor *tg[] = {&gw, &gx, &gy, &gb};
    for (int i = 0; i < 4; i++)
        qr_be_tensor_free(gpu, tg[i]);
    free(wf);
    free(w16);
    free(q8);
    free(x);
    free(b);
}

int main(void)
{
    gpu = ct_gpu_or_skip();
    ct_seed();
    CHECK_OK(qr_backend_cpu_create(2, &cpu));
    {   /* bf16 activations are optional for the tests: try one */
        qr_tensor t = {0};
        float v = 1.0f;
        gpu_bf16 = ct_put(gpu, QR_BF16, 1, 1, &v, &t) == 0;
        qr_be_tensor_free(gpu, &t);
        printf("bf16 activation tensors: %s\n", gpu_bf16 ? "yes" : "no");
    }
    const qr_dtype acts[] = {QR_F32, QR_BF16};
    const int64_t ns[] = {1, 3, 8, 40};
    /* (out, in): vectorised widths, and widths that force the scalar GEMV */
    const int64_t shapes[][2] = {{96, 64}, {257, 320}, {130, 100}, {33, 8}};
    const qr_dtype wants[] = {QR_F32, QR_F16, QR_BF16, QR_I8};
    for (int a = 0; a < 2; a++) {
        if (acts[a] == QR_BF16 && !gpu_bf16)
            continue;
        for (size_t w = 0; w < sizeof wants / sizeof wants[0]; w++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                    run_case(wants[w], QR_F32, acts[a], ns[i], shapes[s][0], shapes[s][1], (i + s) % 2 == 0);
        /* Q8_0 (columns in blocks of 32), kept as Q8_0 and converted */
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            run_case(QR_Q8_0, QR_Q8_0, acts[a], ns[i], 96, 64, i % 2 == 0);
            run_case(QR_Q8_0, QR_Q8_0, acts[a], ns[i], 257, 320, i % 2 == 1);
            run_case(QR_Q8_0, QR_F32, acts[a], ns[i], 70, 96, true); /* quantised at load (host, ggml's rule) */
            run_case(QR_BF16, QR_Q8_0, acts[a], ns[i], 65, 128, false);
            run_case(QR_I8, QR_Q8_0, acts[a], ns[i], 65, 128, true);
        }
        /* other storage types converted on the device */
        run_case(QR_F32, QR_F16, acts[a], 2, 50, 72, true);
        run_case(QR_BF16, QR_BF16, acts[a], 17, 50, 72, false);
        run_case(QR_I8, QR_BF16, acts[a], 1, 50, 72, true);
        run_case(QR_F16, QR_F16, acts[a], 64, 128, 256, true);
    }
    /* int8 / Q8_0 beyond the tensor-core kernel's rows: dequantised slabs + cuBLASLt */
    run_case(QR_I8, QR_F32, QR_F32, 100, 1024, 512, true);
    run_case(QR_I8, QR_F32, QR_F32, 300, 200, 256, true);
    run_case(QR_Q8_0, QR_Q8_0, QR_F32, 300, 130, 256, false);
    if (gpu_bf16)
        run_case(QR_I8, QR_BF16, QR_BF16, 300, 96, 128, true);
    run_case(QR_BF16, QR_F32, QR_F32, 200, 768, 384, true);
    /* f16 weights, GEMM path, activations past f16's range and below its
     * normal range: rows are scaled into f16 range (cuda_matmul.cu), so the
     * error stays at f16's rounding (ct_bound) instead of inf / lost digits */
    const float amps[] = {3e5f, 1e-6f};
    for (int a = 0; a < 2; a++) {
        x_amp = amps[a];
        run_case(QR_F16, QR_F32, QR_F32, 16, 96, 64, true);
        run_case(QR_F16, QR_F16, QR_F32, 40, 257, 320, false);
        if (gpu_bf16)
            run_case(QR_F16, QR_F32, QR_BF16, 40, 130, 128, false);
    }
    x_amp = 1.0f;

    /* argument errors */
    {
        float wv[64 * 40];
        for (int i = 0; i < 64 * 40; i++)
            wv[i] = ct_unif();
        qr_tensor t = {0}, x = {0}, y = {0};
        CHECK_INT(gpu->ops->weight_load(gpu, wv, QR_F32, 64, 40, QR_Q8_0, false, &t), QR_EINVAL);
        CHECK_OK(gpu->ops->weight_load(gpu, wv, QR_F32, 64, 40, QR_BF16, false, &t));
        CHECK_OK(qr_be_tensor_alloc(gpu, QR_F32, 2, 41, &x));
        CHECK_OK(qr_be_tensor_alloc(gpu, QR_F32, 2, 64, &y));
        CHECK_INT(gpu->ops->matmul(gpu, &x, &t, NULL, &y), QR_EINVAL);
        qr_be_tensor_free(gpu, &t);
        qr_be_tensor_free(gpu, &x);
        qr_be_tensor_free(gpu, &y);
    }
    qr_backend_destroy(gpu);
    qr_backend_destroy(cpu);
    return qr_test_done();
}
