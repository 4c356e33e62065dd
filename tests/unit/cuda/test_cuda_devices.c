/* The CUDA entry points of runtime/backend.h on whatever machine runs the
 * suite: built without CUDA (cuda_none.c answers "built without CUDA"), built
 * with CUDA but no usable GPU (no driver, stub libcuda, no device: every
 * cudaGetDeviceCount error is "no GPU", with CUDA's message kept, and creating
 * a backend fails cleanly), or with GPUs (their listing is sane and a backend
 * can be made and unmade on the first, with errors instead of aborts for bad
 * arguments and impossible allocations). Never skips: each case checks real
 * answers. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

static void check_not_built(void)
{
    qr_gpu_info g[4];
    int n = -1;
    qr_backend *be = NULL;
    CHECK_OK(qr_cuda_devices(g, 4, &n));
    CHECK_INT(n, 0);
    CHECK(!strcmp(qr_cuda_why_none(), "built without CUDA"));
    CHECK_INT(qr_backend_cuda_create(0, &be), QR_EUNSUPPORTED);
    CHECK(be == NULL);
    CHECK(strstr(qr_last_error(), "built without CUDA") != NULL);
    CHECK_INT(qr_backend_cuda_create_ex(0, QR_BF16, &be), QR_EUNSUPPORTED);
    CHECK(be == NULL);
}

static void check_no_gpu(void)
{
    qr_backend *be = NULL;
    const char *why = qr_cuda_why_none();
    printf("no usable GPU: %s\n", why);
    /* the reason names the failing call and keeps CUDA's code in parentheses */
    CHECK(*why != '\0');
    CHECK(strstr(why, "cudaGetDeviceCount") != NULL || strstr(why, "device ") != NULL);
    CHECK(strchr(why, '(') != NULL);
    /* asked anyway: a clean error, not an abort, and *out untouched */
    qr_clear_error();
    int rc = qr_backend_cuda_create(0, &be);
    CHECK(rc == QR_EBACKEND || rc == QR_EINVAL);
    CHECK(be == NULL);
    CHECK(strstr(qr_last_error(), "cuda: ") != NULL);
    /* a second listing gives the same answer (no sticky state in between) */
    qr_gpu_info g[2];
    int n = -1;
    CHECK_OK(qr_cuda_devices(g, 2, &n));
    CHECK_INT(n, 0);
    CHECK(*qr_cuda_why_none() != '\0');
}

static void check_gpus(const qr_gpu_info *g, int n)
{
    for (int i = 0; i < n; i++) {
        printf("GPU %d: %s sm_%d%d %llu/%llu bytes free %s\n", g[i].index, g[i].name, g[i].cc_major, g[i].cc_minor,
               (unsigned long long)g[i].free_bytes, (unsigned long long)g[i].total_bytes, g[i].uuid);
        CHECK(g[i].name[0] != '\0');
        CHECK(g[i].total_bytes > 0 && g[i].free_bytes <= g[i].total_bytes);
        CHECK(g[i].cc_major >= 7);
        CHECK(!strncmp(g[i].uuid, "GPU-", 4) && strlen(g[i].uuid) == 40);
    }
    CHECK(!strcmp(qr_cuda_why_none(), ""));
    qr_backend *be = NULL;
    CHECK_INT(qr_backend_cuda_create_ex(g[0].index, QR_F16, &be), QR_EINVAL); /* activations: f32 or bf16 */
    CHECK(be == NULL);
    CHECK_INT(qr_backend_cuda_create(1000, &be), QR_EINVAL);
    CHECK(be == NULL);
    CHECK_OK(qr_backend_cuda_create_ex(g[0].index, QR_BF16, &be));
    if (!be)
        return;
    CHECK(!strcmp(be->ops->name, "cuda"));
    CHECK_INT(be->act_dtype, QR_BF16);
    qr_tensor t;
    /* more memory than any GPU has: QR_ENOMEM with the device's free memory in the message */
    CHECK_INT(be->ops->tensor_alloc(be, QR_F32, (int64_t)1 << 40, 1024, &t), QR_ENOMEM);
    CHECK(strstr(qr_last_error(), "MiB free") != NULL);
    /* and the backend still works */
    float in[6] = {1, 2, 3, 4, 5, 6}, out[6] = {0};
    CHECK_OK(be->ops->tensor_alloc(be, QR_F32, 2, 3, &t));
    CHECK_OK(be->ops->upload(be, &t, 0, in, 2));
    CHECK_OK(be->ops->download(be, &t, 0, out, 2));
    CHECK(!memcmp(in, out, sizeof in));
    CHECK_INT(be->ops->download(be, &t, 1, out, 2), QR_EINVAL); /* rows 1..3 of 2 */
    /* listing again releases only contexts no backend uses: this one's data survives */
    qr_gpu_info again[16];
    int n2 = 0;
    CHECK_OK(qr_cuda_devices(again, 16, &n2));
    CHECK_INT(n2, n);
    memset(out, 0, sizeof out);
    CHECK_OK(be->ops->download(be, &t, 0, out, 2));
    CHECK(!memcmp(in, out, sizeof in));
    CHECK_OK(qr_be_sync(be));
    qr_be_tensor_free(be, &t);
    /* out of memory while making Q8_0 weights: QR_ENOMEM naming it, not QR_EBACKEND
     * (16M columns x 1M rows: 16 TiB; src is never read, the allocation fails first) */
    static uint8_t dummy[64];
    CHECK_INT(be->ops->weight_load(be, dummy, QR_Q8_0, (int64_t)1 << 20, (int64_t)1 << 24, QR_Q8_0, false, &t),
              QR_ENOMEM);
    CHECK(strstr(qr_last_error(), "out of GPU memory") != NULL && strstr(qr_last_error(), "q8_0") != NULL);
    qr_backend_destroy(be);

    /* issue 11: a backend made after a listing released the device's context
     * (no backend left on it) sets up its own kernel attributes and pinned
     * buffers: weight_load (pinned staging) and a matmul still work */
    CHECK_OK(qr_cuda_devices(again, 16, &n2));
    be = NULL;
    CHECK_OK(qr_backend_cuda_create_ex(g[0].index, QR_F32, &be));
    if (!be)
        return;
    for (int round = 0; round < 2; round++) {
        float w[4 * 8], x[8], y[4] = {0};
        for (int i = 0; i < 32; i++)
            w[i] = (float)(i % 5) - 2.0f;
        for (int i = 0; i < 8; i++)
            x[i] = (float)i * 0.5f;
        qr_tensor tw = {0}, tx = {0}, ty = {0};
        CHECK_OK(be->ops->weight_load(be, w, QR_F32, 4, 8, QR_F32, false, &tw));
        CHECK_OK(be->ops->tensor_alloc(be, QR_F32, 1, 8, &tx));
        CHECK_OK(be->ops->tensor_alloc(be, QR_F32, 1, 4, &ty));
        CHECK_OK(be->ops->upload(be, &tx, 0, x, 1));
        CHECK_OK(be->ops->matmul(be, &tx, &tw, NULL, &ty));
        CHECK_OK(be->ops->download(be, &ty, 0, y, 1));
        for (int r = 0; r < 4; r++) {
            float ref = 0;
            for (int c = 0; c < 8; c++)
                ref += w[r * 8 + c] * x[c];
            CHECK_NEAR(y[r], ref, 1e-5);
        }
        qr_be_tensor_free(be, &tw);
        qr_be_tensor_free(be, &tx);
        qr_be_tensor_free(be, &ty);
        if (round == 0) { /* destroy, list (releases the context), make a new one: round 2 */
            qr_backend_destroy(be);
            be = NULL;
            CHECK_OK(qr_cuda_devices(again, 16, &n2));
            CHECK_OK(qr_backend_cuda_create_ex(g[0].index, QR_F32, &be));
            if (!be)
                return;
        }
    }
    qr_backend_destroy(be);
}

int main(void)
{
    qr_gpu_info g[16];
    int n = -1;
    CHECK_OK(qr_cuda_devices(g, 16, &n));
    CHECK(n >= 0 && n <= 16);
    CHECK_INT(qr_cuda_devices(NULL, 1, &n), QR_EINVAL * qr_cuda_built()); /* NULL array of 1: rejected when built */
    CHECK_OK(qr_cuda_devices(g, 16, &n));
    if (!qr_cuda_built())
        check_not_built();
    else if (n == 0)
        check_no_gpu();
    else
        check_gpus(g, n);
    return qr_test_done();
}
