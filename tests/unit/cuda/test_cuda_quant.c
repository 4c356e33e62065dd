/* GGUF weight blocks kept as stored on the CUDA backend (issue 12), against
 * the CPU reference, for every kept type (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K) on random but valid block bytes (gguf_blocks.h: every
 * quant and packed-scale byte random, f16 scales finite):
 *
 * - weight_load keeps the type and the file's row size (ql = QR_QL_GGUF,
 *   row_bytes = qr_dtype_row_bytes), and supports() says yes to matmul and
 *   embed with each kept type (no to Q2_K / Q3_K);
 * - download (the device decoder, cuda_quant.h) gives the CPU's
 *   dequantization (qr_convert_to_f32, bit-exact with ggml) bit for bit;
 * - embed from a block table: bit for bit the same rows (f32 out);
 * - matmul y = x W^T (+ bias) for n = 1, 3, 8 (decode GEMV), 40 (tensor-core
 *   kernel) and 300 (bf16 slabs + cuBLASLt) rows of x, f32 and bf16
 *   activations, against an f64 product of x with the CPU-dequantized W.
 *   Tolerance (normalised error ||gpu - ref|| / ||ref||): the GEMV decodes
 *   exactly and accumulates in f32, so f32 activations are held to 2e-5
 *   (summation order only); the tensor-core and cuBLASLt paths round W and x
 *   to bf16 (2^-9 relative each), held to 1e-2, as bf16 activations are
 *   everywhere (ct_bound, cuda_test.h);
 * - --dtype q8_0 / q4_k from f32 rows: the host quantizer's blocks
 *   (qr_quantize_row), decoded on the device bit for bit.
 * Skips (exit 77) without a GPU. */
#include "tests/unit/cuda/cuda_test.h"

#include "runtime/dtype.h"
#include "runtime/weights/weights.h"
#include "tests/unit/cuda/gguf_blocks.h"

static qr_backend *cpu, *gpu;
static bool gpu_bf16; /* the GPU backend takes bf16 activation tensors */

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static size_t bit_diffs(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += fbits(a[i]) != fbits(b[i]) && !(isnan(a[i]) && isnan(b[i]));
    return d;
}

/* W (out, in) of type t as random blocks, loaded on the GPU as stored:
 * layout, download bit for bit, and matmul for each n. */
static void type_case(qr_dtype t, int64_t out, int64_t in)
{
    uint8_t *wb = gb_make(t, out, in, 1.0f / sqrtf((float)in), ct_next);
    float *wf = malloc((size_t)(out * in) * sizeof *wf);
    CHECK_OK(qr_convert_rows_to_f32(t, wb, in, 0, out, wf));

    qr_tensor gw = {0};
    CHECK_OK(gpu->ops->weight_load(gpu, wb, t, out, in, t, false, &gw));
    CHECK_MSG(gw.dtype == t && gw.ql.kind == QR_QL_GGUF && gw.ql.block == qr_dtype_block(t) &&
                  gw.ql.block_bytes == (int32_t)qr_dtype_block_bytes(t) && gw.row_bytes == qr_dtype_row_bytes(t, in) &&
                  gw.scale == NULL,
              "%s (%lld, %lld): kept as %s, ql %d/%d/%d, row_bytes %zu (file %zu)", qr_dtype_name(t), (long long)out,
              (long long)in, qr_dtype_name(gw.dtype), (int)gw.ql.kind, (int)gw.ql.block, (int)gw.ql.block_bytes,
              gw.row_bytes, qr_dtype_row_bytes(t, in));
    float *dl = ct_get(gpu, &gw);
    size_t d = dl ? bit_diffs(dl, wf, (size_t)(out * in)) : (size_t)-1;
    CHECK_MSG(d == 0, "%s (%lld, %lld): download: %zu values differ from qr_convert_to_f32", qr_dtype_name(t),
              (long long)out, (long long)in, d);
    free(dl);

    /* embed: a few rows, repeated and out of order */
    {
        int32_t ids[5] = {(int32_t)(out - 1), 0, (int32_t)(out / 2), 0, (int32_t)(out / 3)};
        qr_tensor e = {0};
        CHECK_OK(qr_be_tensor_alloc(gpu, QR_F32, 5, in, &e));
        CHECK_OK(ct_poison(gpu, &e));
        CHECK_OK(gpu->ops->embed(gpu, &gw, ids, 5, &e));
        float *got = ct_get(gpu, &e);
        size_t ed = 0;
        for (int i = 0; got && i < 5; i++)
            ed += bit_diffs(got + (size_t)i * (size_t)in, wf + (size_t)ids[i] * (size_t)in, (size_t)in);
        CHECK_MSG(got && ed == 0, "%s: embed: %zu values differ", qr_dtype_name(t), ed);
        free(got);
        qr_be_tensor_free(gpu, &e);
    }

    const int64_t ns[] = {1, 3, 8, 40, 300};
    const qr_dtype acts[] = {QR_F32, QR_BF16};
    for (int a = 0; a < 2; a++) {
        if (acts[a] == QR_BF16 && !gpu_bf16)
            continue;
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int64_t n = ns[k];
            bool bias = (k + (size_t)a) % 2 == 0;
            float *x = ct_rand((size_t)(n * in), 1.0f);
            if (acts[a] == QR_BF16)
                for (int64_t i = 0; i < n * in; i++)
                    x[i] = qr_bf16_to_f32(qr_f32_to_bf16(x[i])); /* the reference sees the x the GPU sees */
            float *b = bias ? ct_rand((size_t)out, 0.5f) : NULL;
            float *ref = malloc((size_t)(n * out) * sizeof *ref);
            for (int64_t r = 0; r < n; r++)
                for (int64_t o = 0; o < out; o++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t j = 0; j < in; j++)
                        s += (double)x[r * in + j] * (double)wf[o * in + j];
                    ref[r * out + o] = (float)s;
                }
            qr_tensor gx = {0}, gy = {0}, gb = {0};
            CHECK_OK(ct_put(gpu, acts[a], n, in, x, &gx));
            CHECK_OK(qr_be_tensor_alloc(gpu, acts[a], n, out, &gy));
            if (bias)
                CHECK_OK(ct_put(gpu, QR_F32, 1, out, b, &gb));
            CHECK_OK(ct_poison(gpu, &gy));
            CHECK_OK(gpu->ops->matmul(gpu, &gx, &gw, bias ? &gb : NULL, &gy));
            float *got = ct_get(gpu, &gy);
            bool gemv = n <= 8; /* exact decode, f32 products (cuda_matmul.cu) */
            double bound = ct_bound(gemv ? QR_F32 : QR_BF16, acts[a]);
            double e = got ? ct_nerr(got, ref, (size_t)(n * out)) : INFINITY;
            CHECK_MSG(e <= bound, "matmul w %s (%lld, %lld) x/y %s n %lld bias %d: error %.3g > %.3g",
                      qr_dtype_name(t), (long long)out, (long long)in, qr_dtype_name(acts[a]), (long long)n, bias, e,
                      bound);
            free(got);
            free(ref);
            free(x);
            free(b);
            qr_be_tensor_free(gpu, &gx);
            qr_be_tensor_free(gpu, &gy);
            qr_be_tensor_free(gpu, &gb);
        }
    }
    qr_be_tensor_free(gpu, &gw);
    free(wf);
    free(wb);
}

/* --dtype q8_0 / q4_k: f32 rows quantized at load (on the host), then decoded on the device. */
static void quantize_case(qr_dtype want, int64_t out, int64_t in)
{
    float *w = ct_rand((size_t)(out * in), 1.0f);
    size_t rb = qr_dtype_row_bytes(want, in);
    uint8_t *q = malloc((size_t)out * rb);
    float *ref = malloc((size_t)(out * in) * sizeof *ref);
    for (int64_t r = 0; r < out; r++)
        CHECK_OK(qr_quantize_row(want, w + r * in, in, q + (size_t)r * rb));
    CHECK_OK(qr_convert_rows_to_f32(want, q, in, 0, out, ref));
    qr_tensor gw = {0};
    CHECK_OK(gpu->ops->weight_load(gpu, w, QR_F32, out, in, want, false, &gw));
    CHECK(gw.dtype == want && gw.ql.kind == QR_QL_GGUF && gw.row_bytes == rb);
    float *got = ct_get(gpu, &gw);
    size_t d = got ? bit_diffs(got, ref, (size_t)(out * in)) : (size_t)-1;
    CHECK_MSG(d == 0, "f32 -> %s at load: %zu values differ from the host quantizer's", qr_dtype_name(want), d);
    free(got);
    qr_be_tensor_free(gpu, &gw);
    free(w);
    free(q);
    free(ref);
}

int main(void)
{
    gpu = ct_gpu_or_skip();
    ct_seed();
    CHECK_OK(qr_backend_cpu_create(2, &cpu));
    {
        qr_tensor t = {0};
        float v = 1.0f;
        gpu_bf16 = ct_put(gpu, QR_BF16, 1, 1, &v, &t) == 0;
        qr_be_tensor_free(gpu, &t);
        printf("bf16 activation tensors: %s\n", gpu_bf16 ? "yes" : "no");
    }
    for (int i = 0; i < GB_NTYPES; i++) {
        CHECK_MSG(qr_be_supports(gpu, QR_BE_OP_MATMUL, gb_types[i]) && qr_be_supports(gpu, QR_BE_OP_EMBED, gb_types[i]),
                  "supports %s", qr_dtype_name(gb_types[i]));
    }
    CHECK(!qr_be_supports(gpu, QR_BE_OP_MATMUL, QR_Q2_K) && !qr_be_supports(gpu, QR_BE_OP_MATMUL, QR_Q3_K));

    for (int i = 0; i < GB_NTYPES; i++) {
        qr_dtype t = gb_types[i];
        int blk = qr_dtype_block(t);
        /* (out, in): in of 1 and several blocks; with a 32-value type ins
         * that are not multiples of 64 (the tensor-core tile's k step); more
         * than 32 chunks of 32 values, so the GEMV's warp takes several spans
         * with a short last one (33 blocks; 9 super-blocks); out not a
         * multiple of the GEMV's 8 rows nor the tile's 64 */
        type_case(t, 67, blk == 32 ? 96 : 256);
        type_case(t, 130, blk == 32 ? 1056 : 2304);
    }
    quantize_case(QR_Q8_0, 40, 96);
    quantize_case(QR_Q4_K, 40, 512);

    /* argument errors: a kept type with columns not whole blocks; a type
     * that cannot be made from another (q6_k from f32) */
    {
        float wv[64 * 64];
        for (int i = 0; i < 64 * 64; i++)
            wv[i] = ct_unif();
        qr_tensor t = {0};
        CHECK_INT(gpu->ops->weight_load(gpu, wv, QR_F32, 16, 240, QR_Q4_K, false, &t), QR_EINVAL);
        CHECK_INT(gpu->ops->weight_load(gpu, wv, QR_F32, 16, 256, QR_Q6_K, false, &t), QR_EINVAL);
    }
    qr_backend_destroy(gpu);
    qr_backend_destroy(cpu);
    return qr_test_done();
}
