/* CUDA topk (device-side greedy / top-k selection for sampling) against a
 * sort on the host: fresh random logits with planted ties (the lower id must
 * come first), -inf and NaN entries, several vocabulary sizes and k, f32 and
 * bf16 logits. The ids and values must match exactly. Skips (exit 77)
 * without a GPU. */
#include "tests/unit/cuda/cuda_test.h"

#include "runtime/dtype.h"

typedef struct {
    float v;
    int32_t id;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static void run(qr_backend *gpu, qr_dtype dt, int64_t n, int64_t vocab, int k)
{
    float *lg = ct_rand((size_t)(n * vocab), 8.0f);
    for (int64_t r = 0; r < n; r++) {
        float *row = lg + r * vocab;
        /* ties at the top: the maximum twice, at a high and a low id */
        int64_t a = (int64_t)(ct_next() % (uint64_t)vocab), b = (int64_t)(ct_next() % (uint64_t)vocab);
        row[a] = row[b] = 20.0f;
        row[(int64_t)(ct_next() % (uint64_t)vocab)] = -INFINITY;
        row[(int64_t)(ct_next() % (uint64_t)vocab)] = NAN; /* counts as -inf */
        if (dt == QR_BF16) /* the reference sees the values the device holds */
            for (int64_t j = 0; j < vocab; j++)
                row[j] = isnan(row[j]) ? row[j] : qr_bf16_to_f32(qr_f32_to_bf16(row[j]));
    }
    qr_tensor t = {0};
    CHECK_OK(ct_put(gpu, dt, n, vocab, lg, &t));
    int32_t *ids = malloc((size_t)(n * k) * sizeof *ids);
    float *vals = malloc((size_t)(n * k) * sizeof *vals);
    CHECK_OK(gpu->ops->topk(gpu, &t, n, k, ids, vals));
    cand *c = malloc((size_t)vocab * sizeof *c);
    int bad = 0;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < vocab; j++) {
            float v = lg[r * vocab + j];
            c[j] = (cand){isnan(v) ? -INFINITY : v, (int32_t)j};
        }
        qsort(c, (size_t)vocab, sizeof *c, cand_cmp);
        for (int i = 0; i < k; i++)
            if (ids[r * k + i] != c[i].id || vals[r * k + i] != c[i].v)
                bad++;
    }
    CHECK_MSG(bad == 0, "topk %s n %lld vocab %lld k %d: %d of %lld picks differ", qr_dtype_name(dt), (long long)n,
              (long long)vocab, k, bad, (long long)(n * k));
    free(c);
    free(ids);
    free(vals);
    free(lg);
    qr_be_tensor_free(gpu, &t);
}

int main(void)
{
    qr_backend *gpu = ct_gpu_or_skip();
    ct_seed();
    if (!gpu->ops->topk) {
        printf("SKIP: the CUDA backend has no topk op\n");
        qr_backend_destroy(gpu);
        return 77;
    }
    const int64_t vocabs[] = {100, 4097, 32000, 128256, 151936};
    const int ks[] = {1, 2, 7, 40, QR_BE_TOPK_MAX};
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++)
        for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++)
            if (ks[k] <= vocabs[v]) {
                run(gpu, QR_F32, 1 + (int64_t)(k % 3), vocabs[v], ks[k]);
                qr_tensor probe = {0};
                float one = 1.0f;
                if (ct_put(gpu, QR_BF16, 1, 1, &one, &probe) == 0) {
                    qr_be_tensor_free(gpu, &probe);
                    run(gpu, QR_BF16, 2, vocabs[v], ks[k]);
                }
            }
    /* bad k */
    {
        qr_tensor t = {0};
        float lg[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        int32_t id[70];
        CHECK_OK(ct_put(gpu, QR_F32, 1, 10, lg, &t));
        CHECK_INT(gpu->ops->topk(gpu, &t, 1, 0, id, NULL), QR_EINVAL);
        CHECK_INT(gpu->ops->topk(gpu, &t, 1, 11, id, NULL), QR_EINVAL);
        CHECK_OK(gpu->ops->topk(gpu, &t, 1, 3, id, NULL));
        CHECK(id[0] == 9 && id[1] == 8 && id[2] == 7);
        qr_be_tensor_free(gpu, &t);
    }
    qr_backend_destroy(gpu);
    return qr_test_done();
}
