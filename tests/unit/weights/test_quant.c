/* GGUF quantized tensors through qr_wsrc and qr_convert_*: tests/fixtures/weights/quant.gguf
 * holds Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16, BF16 and F32 tensors
 * of random bytes; the expected f32 values come from an independent numpy dequantizer
 * (tools/fixtures_weights). Exact (bit for bit). */
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"
#include "tests/unit/weights/wtest.h"

static qr_backend *be; /* CPU backend: block tensors also go through weight_load */

static void check_tensor(const qr_wsrc *s, const char *name, const char *expected, qr_dtype dt, int64_t rows,
                         int64_t cols)
{
    const qr_wtensor *t = qr_wsrc_find(s, name);
    CHECK_MSG(t != NULL, "%s missing", name);
    if (!t)
        return;
    int64_t n = rows * cols;
    CHECK_MSG(t->dtype == dt, "%s: dtype %s", name, qr_dtype_name(t->dtype));
    if (rows > 1)
        CHECK(t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols);
    else
        CHECK(t->n_dims == 1 && t->shape[0] == cols);
    CHECK_INT(t->nbytes, qr_dtype_row_bytes(dt, cols) * (size_t)rows);
    char rel[256];
    size_t nb = 0;
    snprintf(rel, sizeof rel, "weights/expected/%s.f32", expected);
    float *want = (float *)qr_test_slurp(FIXTURE(rel), &nb), *got = malloc((size_t)n * 4);
    CHECK_MSG(want && nb == (size_t)n * 4, "%s", rel);
    if (want && got && nb == (size_t)n * 4) {
        CHECK_OK(qr_convert_to_f32(t->dtype, t->data, n, got));
        long bad = wt_bits_differ(got, want, (size_t)n);
        CHECK_MSG(bad == 0, "%s: %ld of %lld values differ (first: got %g want %g)", name, bad, (long long)n,
                  got[0], want[0]);
        /* values are not degenerate: some spread, no NaN */
        int nonzero = 0, nan = 0;
        for (int64_t i = 0; i < n; i++) {
            nonzero += want[i] != 0;
            nan += want[i] != want[i];
        }
        CHECK_MSG(nan == 0 && nonzero > n / 2, "%s: %d nan, %d of %lld nonzero", name, nan, nonzero, (long long)n);
        /* row helper: each single row, then the last rows together */
        memset(got, 0xff, (size_t)n * 4);
        for (int64_t r = 0; r < rows; r++)
            CHECK_OK(qr_convert_rows_to_f32(t->dtype, t->data, cols, r, 1, got + r * cols));
        CHECK_INT(wt_bits_differ(got, want, (size_t)n), 0);
        if (rows > 1) {
            memset(got, 0, (size_t)n * 4);
            CHECK_OK(qr_convert_rows_to_f32(t->dtype, t->data, cols, 1, rows - 1, got));
            CHECK_INT(wt_bits_differ(got, want + cols, (size_t)(n - cols)), 0);
        }
        /* as the model loader does: backend weight_load to f32, read back */
        qr_tensor w = {0};
        if (be && qr_dtype_block(dt) > 1) {
            memset(got, 0, (size_t)n * 4);
            CHECK_OK(be->ops->weight_load(be, t->data, dt, rows, cols, QR_F32, false, &w));
            CHECK_OK(be->ops->download(be, &w, 0, got, rows));
            CHECK_MSG(wt_bits_differ(got, want, (size_t)n) == 0, "%s: weight_load differs", name);
            be->ops->tensor_free(be, &w);
        }
    }
    free(want);
    free(got);
}

int main(void)
{
    qr_wsrc *s = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    CHECK_OK(qr_wsrc_open(FIXTURE("weights/quant.gguf"), &s));
    if (!s) {
        qr_backend_destroy(be);
        return qr_test_done();
    }
    const qr_gguf *g = qr_wsrc_gguf(s);
    CHECK(g != NULL);
    uint64_t align = 0;
    CHECK_OK(qr_gguf_get_u64(g, "general.alignment", &align));
    CHECK_INT(align, 64);
    for (size_t i = 0; i < qr_wsrc_count(s); i++)
        CHECK((uintptr_t)qr_wsrc_at(s, i)->data % 64 == 0);
    CHECK_INT(qr_wsrc_count(s), 13);
    check_tensor(s, "q8_0.weight", "q8_0.weight", QR_Q8_0, 4, 64);
    check_tensor(s, "q4_0.weight", "q4_0.weight", QR_Q4_0, 3, 96);
    check_tensor(s, "q4_k.weight", "q4_k.weight", QR_Q4_K, 2, 512);
    check_tensor(s, "q6_k.weight", "q6_k.weight", QR_Q6_K, 3, 256);
    check_tensor(s, "f16.weight", "gguf_f16.weight", QR_F16, 2, 16);
    check_tensor(s, "bf16.weight", "gguf_bf16.weight", QR_BF16, 2, 16);
    check_tensor(s, "f32.weight", "gguf_f32.weight", QR_F32, 1, 5);
    check_tensor(s, "q4_1.weight", "q4_1.weight", QR_Q4_1, 3, 64);
    check_tensor(s, "q5_0.weight", "q5_0.weight", QR_Q5_0, 2, 896); /* Qwen2.5-0.5B row length */
    check_tensor(s, "q5_1.weight", "q5_1.weight", QR_Q5_1, 3, 96);
    check_tensor(s, "q2_k.weight", "q2_k.weight", QR_Q2_K, 3, 256);
    check_tensor(s, "q3_k.weight", "q3_k.weight", QR_Q3_K, 2, 512);
    check_tensor(s, "q5_k.weight", "q5_k.weight", QR_Q5_K, 3, 512);
    CHECK_INT(qr_wsrc_bytes(s), 4 * 2 * 34 + 3 * 3 * 18 + 2 * 2 * 144 + 3 * 210 + 64 + 64 + 20 + 3 * 2 * 20 +
                                    2 * 28 * 22 + 3 * 3 * 24 + 3 * 84 + 2 * 2 * 110 + 3 * 2 * 176);
    /* block geometry (ggml's block sizes in bytes) */
    CHECK_INT(qr_dtype_row_bytes(QR_Q4_1, 64), 40);
    CHECK_INT(qr_dtype_row_bytes(QR_Q5_0, 896), 616);
    CHECK_INT(qr_dtype_row_bytes(QR_Q5_1, 32), 24);
    CHECK_INT(qr_dtype_row_bytes(QR_Q2_K, 256), 84);
    CHECK_INT(qr_dtype_row_bytes(QR_Q3_K, 512), 220);
    CHECK_INT(qr_dtype_row_bytes(QR_Q5_K, 256), 176);
    CHECK_INT(qr_dtype_row_bytes(QR_Q5_K, 896), 0);
    CHECK(!strcmp(qr_dtype_name(QR_Q3_K), "q3_k") && !strcmp(qr_dtype_name(QR_Q5_1), "q5_1"));

    /* argument checks */
    float out[64], out3k[256];
    const qr_wtensor *t = qr_wsrc_find(s, "q8_0.weight");
    CHECK_INT(qr_convert_to_f32(QR_Q8_0, t->data, 33, out), QR_EINVAL);
    CHECK_INT(qr_convert_to_f32(QR_I8, t->data, 4, out), QR_EUNSUPPORTED);
    CHECK_INT(qr_convert_rows_to_f32(QR_Q4_K, t->data, 100, 0, 1, out), QR_EINVAL);
    qr_wsrc_close(s);
    s = NULL; /* a failed qr_wsrc_open below leaves s as it was: never a closed source */

    /* hand-made blocks with known values (from the format description) */
    unsigned char q8[34];
    uint16_t h = qr_f32_to_f16(0.5f);
    memcpy(q8, &h, 2);
    for (int i = 0; i < 32; i++)
        q8[2 + i] = (unsigned char)(int8_t)(i - 16);
    CHECK_OK(qr_convert_to_f32(QR_Q8_0, q8, 32, out));
    CHECK(out[0] == -8.0f && out[16] == 0.0f && out[31] == 7.5f);
    unsigned char q4[18];
    memcpy(q4, &h, 2);
    for (int i = 0; i < 16; i++)
        q4[2 + i] = (unsigned char)(i | (15 - i) << 4);
    CHECK_OK(qr_convert_to_f32(QR_Q4_0, q4, 32, out));
    CHECK(out[0] == -4.0f && out[15] == 3.5f && out[16] == 3.5f && out[31] == -4.0f);
    /* Q5_0: d = 0.5, fifth bits only for x[1] (qh bit 1) and x[17] (bit 17), all nibbles 0:
     * x = (0 | 16 - 16) * d = 0 there and -16 * d = -8 elsewhere */
    unsigned char q5[22] = {0};
    memcpy(q5, &h, 2);
    q5[2] = 0x02;
    q5[4] = 0x02;
    CHECK_OK(qr_convert_to_f32(QR_Q5_0, q5, 32, out));
    CHECK(out[0] == -8.0f && out[1] == 0.0f && out[16] == -8.0f && out[17] == 0.0f && out[31] == -8.0f);
    /* Q3_K: d = 0.5; every 6-bit scale 33 (low nibbles 1, top bits 2 -> 1 + 32 = 33, minus 32 = 1);
     * quants 3 everywhere; the hmask bit set only for pass 0 (values 0..31) and pass 7 (224..255):
     * x = 0.5 * 3 = 1.5 there and 0.5 * (3 - 4) = -0.5 elsewhere */
    unsigned char q3[110];
    memset(q3, 0x81, 32);
    memset(q3 + 32, 0xff, 64);
    memset(q3 + 96, 0x11, 8);
    memset(q3 + 104, 0xaa, 4);
    memcpy(q3 + 108, &h, 2);
    CHECK_OK(qr_convert_to_f32(QR_Q3_K, q3, 256, out3k));
    CHECK(out3k[0] == 1.5f && out3k[31] == 1.5f && out3k[32] == -0.5f && out3k[223] == -0.5f &&
          out3k[224] == 1.5f && out3k[255] == 1.5f);

    /* stories260K (all F32) through the same interface */
    CHECK_OK(qr_wsrc_open(FIXTURE("models/stories260K/stories260K.gguf"), &s));
    if (s) {
        CHECK_INT(qr_wsrc_count(s), 48);
        t = qr_wsrc_find(s, "blk.0.attn_q.weight");
        CHECK(t && t->shape[0] == 64 && t->shape[1] == 64 && strstr(t->file, "stories260K.gguf"));
        qr_wsrc_close(s);
    }
    qr_backend_destroy(be);
    return qr_test_done();
}
