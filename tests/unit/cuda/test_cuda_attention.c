/* CUDA attention against the CPU backend on fresh random inputs with
 * poisoned outputs: the encoder case (varlen batch, not causal), chunked
 * causal prefill over a cache (q_pos0 > 0, sequences in different slots),
 * decode over long caches (the split-K kernel and its merge), grouped-query
 * heads, head sizes 32..256 (80: padded), f32 and bf16; then a decode step
 * captured in a graph and replayed while n_kv grows and slots change.
 * Skips (exit 77) without a GPU. */
#include "tests/unit/cuda/cuda_test.h"

#include "runtime/dtype.h"

static qr_backend *cpu, *gpu;
static bool gpu_bf16;

typedef struct {
    qr_tensor cq, ck, cv, co, gq, gk, gv, go;
    float *q, *k, *v;
    int64_t nq_rows, nkv_rows;
} att_bufs;

static void round_if(float *p, size_t n, qr_dtype dt)
{
    if (dt == QR_BF16)
        for (size_t i = 0; i < n; i++)
            p[i] = qr_bf16_to_f32(qr_f32_to_bf16(p[i]));
}

static void bufs_make(att_bufs *b, qr_dtype dt, int64_t nq_rows, int64_t nkv_rows, int n_head, int n_kv, int hd)
{
    memset(b, 0, sizeof *b);
    b->nq_rows = nq_rows;
    b->nkv_rows = nkv_rows;
    size_t nq = (size_t)nq_rows * n_head * hd, nk = (size_t)nkv_rows * n_kv * hd;
    b->q = ct_rand(nq, 1.5f);
    b->k = ct_rand(nk, 1.5f);
    b->v = ct_rand(nk, 1.0f);
    round_if(b->q, nq, dt);
    round_if(b->k, nk, dt);
    round_if(b->v, nk, dt);
    CHECK_OK(ct_put(cpu, QR_F32, nq_rows, (int64_t)n_head * hd, b->q, &b->cq));
    CHECK_OK(ct_put(cpu, QR_F32, nkv_rows, (int64_t)n_kv * hd, b->k, &b->ck));
    CHECK_OK(ct_put(cpu, QR_F32, nkv_rows, (int64_t)n_kv * hd, b->v, &b->cv));
    CHECK_OK(qr_be_tensor_alloc(cpu, QR_F32, nq_rows, (int64_t)n_head * hd, &b->co));
    CHECK_OK(ct_put(gpu, dt, nq_rows, (int64_t)n_head * hd, b->q, &b->gq));
    CHECK_OK(ct_put(gpu, dt, nkv_rows, (int64_t)n_kv * hd, b->k, &b->gk));
    CHECK_OK(ct_put(gpu, dt, nkv_rows, (int64_t)n_kv * hd, b->v, &b->gv));
    CHECK_OK(qr_be_tensor_alloc(gpu, dt, nq_rows, (int64_t)n_head * hd, &b->go));
}

static void bufs_free(att_bufs *b)
{
    qr_be_tensor_free(cpu, &b->cq);
    qr_be_tensor_free(cpu, &b->ck);
    qr_be_tensor_free(cpu, &b->cv);
    qr_be_tensor_free(cpu, &b->co);
    qr_be_tensor_free(gpu, &b->gq);
    qr_be_tensor_free(gpu, &b->gk);
    qr_be_tensor_free(gpu, &b->gv);
    qr_be_tensor_free(gpu, &b->go);
    free(b->q);
    free(b->k);
    free(b->v);
}

/* Compares the rows the sequences own (others are not written by contract). */
static double compare_rows(const float *got, const float *ref, const qr_attn_seq *s, int n_seq, int64_t cols)
{
    double num = 0, den = 0;
    for (int i = 0; i < n_seq; i++)
        for (int32_t r = 0; r < s[i].n_q; r++)
            for (int64_t c = 0; c < cols; c++) {
                size_t at = (size_t)(s[i].q_start + r) * (size_t)cols + (size_t)c;
                if (!isfinite(got[at]))
                    return INFINITY;
                double d = (double)got[at] - ref[at];
                num += d * d;
                den += (double)ref[at] * ref[at];
            }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void run(const char *what, qr_dtype dt, const qr_attn_seq *seqs, int n_seq, int64_t nq_rows, int64_t nkv_rows,
                int n_head, int n_kv, int hd, bool causal)
{
    att_bufs b;
    bufs_make(&b, dt, nq_rows, nkv_rows, n_head, n_kv, hd);
    float scale = 1.0f / sqrtf((float)hd);
    CHECK_OK(ct_poison(gpu, &b.go));
    CHECK_OK(cpu->ops->attention(cpu, &b.cq, &b.ck, &b.cv, seqs, n_seq, n_head, n_kv, hd, scale, causal, &b.co));
    CHECK_OK(gpu->ops->attention(gpu, &b.gq, &b.gk, &b.gv, seqs, n_seq, n_head, n_kv, hd, scale, causal, &b.go));
    float *ref = ct_get(cpu, &b.co), *got = ct_get(gpu, &b.go);
    double e = ref && got ? compare_rows(got, ref, seqs, n_seq, (int64_t)n_head * hd) : INFINITY;
    double bound = ct_bound(QR_F32, dt);
    CHECK_MSG(e <= bound, "%s (%s, heads %d/%d, hd %d, causal %d): error %.3g > %.3g", what, qr_dtype_name(dt), n_head,
              n_kv, hd, causal, e, bound);
    free(ref);
    free(got);
    bufs_free(&b);
}

static void cases(qr_dtype dt)
{
    /* encoder: packed varlen batch, not causal */
    {
        qr_attn_seq s[3] = {{0, 5, 0, 0, 5}, {5, 37, 0, 5, 37}, {42, 128, 0, 42, 128}};
        run("encoder", dt, s, 3, 170, 170, 4, 4, 32, false);
        run("encoder", dt, s, 3, 170, 170, 12, 12, 64, false);
    }
    /* chunked causal prefill over slots of a cache (slot s: rows s*256..), GQA */
    {
        qr_attn_seq s[2] = {{0, 40, 30, 256, 70}, {40, 9, 0, 512, 9}};
        run("prefill", dt, s, 2, 49, 768, 8, 2, 64, true);
        run("prefill", dt, s, 2, 49, 768, 4, 1, 128, true);
        run("prefill", dt, s, 2, 49, 768, 2, 2, 80, true);
        run("prefill", dt, s, 2, 49, 768, 2, 1, 256, true);
    }
    /* decode: one new row per sequence, short and long caches (split-K) */
    {
        qr_attn_seq s[3] = {{0, 1, 0, 0, 1}, {1, 1, 299, 4096, 300}, {2, 1, 3999, 8192, 4000}};
        run("decode", dt, s, 3, 3, 12288, 32, 8, 128, true);
        run("decode", dt, s, 3, 3, 12288, 14, 2, 64, true);
        run("decode", dt, s, 3, 3, 12288, 4, 4, 32, true);
        run("decode", dt, s, 3, 3, 12288, 2, 1, 256, true);
        run("decode", dt, s, 3, 3, 12288, 3, 3, 80, false);
    }
    /* a few rows per sequence (speculative / short chunks): still the decode kernel */
    {
        qr_attn_seq s[2] = {{0, 3, 100, 0, 103}, {3, 4, 0, 2048, 4}};
        run("decode-multi", dt, s, 2, 7, 4096, 8, 2, 64, true);
    }
    /* empty cache rows and empty sequences */
    {
        qr_attn_seq s[2] = {{0, 0, 0, 0, 0}, {0, 6, 0, 0, 6}};
        run("empty", dt, s, 2, 6, 6, 2, 1, 64, true);
    }
}

/* A decode attention captured once, replayed with growing n_kv and other slots. */
static void graph_case(qr_dtype dt)
{
    if (!gpu->ops->graph_begin) {
        printf("no graph ops: graph replay not tested\n");
        return;
    }
    const int n_head = 8, n_kv = 2, hd = 64, n_ctx = 600, n_slots = 3;
    att_bufs b;
    bufs_make(&b, dt, 2, (int64_t)n_slots * n_ctx, n_head, n_kv, hd);
    qr_attn_seq s[2]; /* the host array the graph reads again at each launch */
    s[0] = (qr_attn_seq){0, 1, 9, 0, 10};
    s[1] = (qr_attn_seq){1, 1, 0, n_ctx, 1};
    float scale = 1.0f / sqrtf((float)hd);
    qr_be_graph *g = NULL;
    CHECK_OK(gpu->ops->graph_begin(gpu));
    int rc = gpu->ops->attention(gpu, &b.gq, &b.gk, &b.gv, s, 2, n_head, n_kv, hd, scale, true, &b.go);
    CHECK_OK(rc);
    CHECK_OK(gpu->ops->graph_end(gpu, &g));
    const int32_t lens[][2] = {{10, 1}, {11, 2}, {200, 50}, {599, 600}, {3, 333}};
    for (size_t it = 0; g && it < sizeof lens / sizeof lens[0]; it++) {
        s[0] = (qr_attn_seq){0, 1, lens[it][0] - 1, (int32_t)(it % 2) * 2 * n_ctx, lens[it][0]};
        s[1] = (qr_attn_seq){1, 1, lens[it][1] - 1, n_ctx, lens[it][1]};
        CHECK_OK(ct_poison(gpu, &b.go));
        CHECK_OK(gpu->ops->graph_launch(gpu, g));
        CHECK_OK(cpu->ops->attention(cpu, &b.cq, &b.ck, &b.cv, s, 2, n_head, n_kv, hd, scale, true, &b.co));
        float *ref = ct_get(cpu, &b.co), *got = ct_get(gpu, &b.go);
        double e = ref && got ? compare_rows(got, ref, s, 2, (int64_t)n_head * hd) : INFINITY;
        CHECK_MSG(e <= ct_bound(QR_F32, dt), "graph replay %zu (%s, n_kv %d/%d): error %.3g", it, qr_dtype_name(dt),
                  lens[it][0], lens[it][1], e);
        free(ref);
        free(got);
    }
    gpu->ops->graph_free(gpu, g);
    bufs_free(&b);
}

int main(void)
{
    gpu = ct_gpu_or_skip();
    ct_seed();
    CHECK_OK(qr_backend_cpu_create(2, &cpu));
    qr_tensor t = {0};
    float one = 1.0f;
    gpu_bf16 = ct_put(gpu, QR_BF16, 1, 1, &one, &t) == 0;
    qr_be_tensor_free(gpu, &t);
    cases(QR_F32);
    graph_case(QR_F32);
    if (gpu_bf16) {
        cases(QR_BF16);
        graph_case(QR_BF16);
    }
    /* argument errors */
    {
        att_bufs b;
        bufs_make(&b, QR_F32, 4, 4, 2, 1, 32);
        qr_attn_seq bad = {0, 4, 0, 2, 4}; /* kv rows past the tensor */
        CHECK_INT(gpu->ops->attention(gpu, &b.gq, &b.gk, &b.gv, &bad, 1, 2, 1, 32, 1.0f, true, &b.go), QR_EINVAL);
        qr_attn_seq ok = {0, 4, 0, 0, 4};
        CHECK_INT(gpu->ops->attention(gpu, &b.gq, &b.gk, &b.gv, &ok, 1, 3, 1, 32, 1.0f, true, &b.go), QR_EINVAL);
        bufs_free(&b);
    }
    qr_backend_destroy(gpu);
    qr_backend_destroy(cpu);
    return qr_test_done();
}
