/* The in-process host communicator (runtime/dist/comm_host.c): N = 1, 2, 3,
 * 4, 8 ranks, one thread each, over sizes 0, 1, odd and larger than the
 * rank count. All-reduce f32 of integers-as-floats must be exact (each
 * partial sum is an integer below 2^24); of random floats within a few ulps
 * of a serial double sum and bit-identical on every rank; bf16 equal to the
 * f32 sum rounded once. All-gather and broadcast bytes exact. A rank that
 * aborts releases the others (QR_ECANCELED) and reset makes it usable again.
 * The communicator choice (qr_comm_choose) for every placement of ranks, and
 * the parked rank threads (rank_pool.h): every rank runs once per run, on the
 * same n - 1 threads for 1000 runs. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/dist/comm.h"
#include "runtime/dist/rank_pool.h"
#include "tests/unit/test.h"

#define MAXN 8
static const int64_t sizes[] = {0, 1, 7, 8, 33, 1001};
#define NS (sizeof sizes / sizeof sizes[0])

typedef struct {
    qr_comm *c;
    int rank, bad;     /* bad: failed checks seen by this rank */
    int aborter;       /* rank that aborts in the abort test (-1: none) */
    int abort_rc;
} job;

/* Rank r's value i of test s: deterministic, different per rank. */
static float ival(int r, int64_t i) { return (float)((i * 7 + r * 13) % 101 - 50); }
static float fval(int r, int64_t i) { return sinf((float)(i * 31 + r * 17) * 0.37f) * (float)(1 + r); }

static void *run(void *arg)
{
    job *j = arg;
    int N = j->c->n_ranks, r = j->rank;
    if (j->aborter >= 0) { /* the abort test */
        if (r == j->aborter)
            qr_comm_abort(j->c);
        else
            j->abort_rc = qr_comm_barrier(j->c, r);
        return NULL;
    }
    for (size_t s = 0; s < NS; s++) {
        int64_t n = sizes[s];
        float *x = malloc((size_t)(n + 1) * sizeof(float)), *y = malloc((size_t)(n + 1) * sizeof(float));
        uint16_t *b = malloc((size_t)(n + 1) * sizeof(uint16_t));
        for (int64_t i = 0; i < n; i++) {
            x[i] = ival(r, i);
            y[i] = fval(r, i);
            b[i] = qr_f32_to_bf16(ival(r, i));
        }
        if (qr_comm_allreduce(j->c, r, x, n, QR_F32) || qr_comm_allreduce(j->c, r, y, n, QR_F32) ||
            qr_comm_allreduce(j->c, r, b, n, QR_BF16))
            j->bad++;
        for (int64_t i = 0; i < n; i++) {
            double exact = 0, ref = 0, mag = 0;
            float f32 = 0;
            for (int q = 0; q < N; q++) {
                exact += ival(q, i);
                ref += fval(q, i);
                mag += fabs(fval(q, i));
                f32 += ival(q, i);
            }
            if (x[i] != (float)exact)
                j->bad++;
            if (fabs(y[i] - ref) > 4 * 1.2e-7 * mag * N)
                j->bad++;
            if (b[i] != qr_f32_to_bf16(f32))
                j->bad++;
        }
        /* every rank holds the same bits: gather y and compare */
        float *all = malloc((size_t)(n + 1) * N * sizeof(float));
        if (qr_comm_allgather(j->c, r, y, n * (int64_t)sizeof(float), all))
            j->bad++;
        for (int q = 0; q < N; q++)
            if (n && memcmp(all + (size_t)q * n, y, (size_t)n * sizeof(float)))
                j->bad++;
        /* broadcast from the last rank */
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(r * 1000 + i);
        if (qr_comm_broadcast(j->c, r, x, n * (int64_t)sizeof(float), N - 1))
            j->bad++;
        for (int64_t i = 0; i < n; i++)
            if (x[i] != (float)((N - 1) * 1000 + i))
                j->bad++;
        if (qr_comm_barrier(j->c, r))
            j->bad++;
        free(x);
        free(y);
        free(b);
        free(all);
    }
    return NULL;
}

static int run_all(qr_comm *c, int aborter, job *jobs)
{
    pthread_t th[MAXN];
    int N = c->n_ranks;
    for (int r = 0; r < N; r++) {
        jobs[r] = (job){.c = c, .rank = r, .aborter = aborter};
        pthread_create(&th[r], NULL, run, &jobs[r]);
    }
    int bad = 0;
    for (int r = 0; r < N; r++) {
        pthread_join(th[r], NULL);
        bad += jobs[r].bad;
    }
    return bad;
}

static void check_choose(void)
{
    const char *why;
    static const int cpu2[] = {-1, -1}, gpu01[] = {0, 1}, gpu00[] = {0, 0}, mix[] = {0, -1}, gpu3[] = {2, 0, 1},
                     gpu010[] = {0, 1, 0};
    CHECK_INT(qr_comm_choose(cpu2, 2, true, &why), QR_COMM_HOST_INPLACE);
    CHECK_INT(qr_comm_choose(cpu2, 2, false, &why), QR_COMM_HOST_INPLACE);
    CHECK_INT(qr_comm_choose(gpu01, 2, true, &why), QR_COMM_NCCL);
    CHECK(strstr(why, "NCCL") != NULL);
    CHECK_INT(qr_comm_choose(gpu3, 3, true, NULL), QR_COMM_NCCL);
    CHECK_INT(qr_comm_choose(gpu01, 2, false, &why), QR_COMM_HOST_STAGED);
    CHECK(strstr(why, "without NCCL") != NULL);
    CHECK_INT(qr_comm_choose(gpu00, 2, true, &why), QR_COMM_HOST_STAGED);
    CHECK(strstr(why, "one GPU") != NULL);
    CHECK_INT(qr_comm_choose(gpu010, 3, true, NULL), QR_COMM_HOST_STAGED);
    CHECK_INT(qr_comm_choose(mix, 2, true, &why), QR_COMM_HOST_STAGED);
    CHECK(strstr(why, "mixed") != NULL);
    /* CPU backends: host memory, in place; the injected NCCL-init fault names the ranks' devices */
    qr_backend *b[2] = {0};
    CHECK_OK(qr_backend_cpu_create(1, &b[0]));
    CHECK_OK(qr_backend_cpu_create(1, &b[1]));
    CHECK_INT(qr_backend_cuda_device(b[0], NULL), -1);
    qr_comm *c = NULL;
    qr_comm_kind k = QR_COMM_NCCL;
    CHECK_OK(qr_comm_create_for(b, 2, &c, &k));
    CHECK_INT(k, QR_COMM_HOST_INPLACE);
    CHECK(c && c->in_place && c->n_ranks == 2 && !strcmp(c->ops->name, "host"));
    qr_comm_destroy(c);
    c = NULL;
    qr_comm_test_fail_init(true);
    CHECK_INT(qr_comm_create_for(b, 2, &c, NULL), QR_EBACKEND);
    CHECK_MSG(strstr(qr_last_error(), "cpu, cpu") && strstr(qr_last_error(), "injected"), "%s", qr_last_error());
    CHECK(c == NULL);
    qr_comm_test_fail_init(false);
    qr_backend_destroy(b[0]);
    qr_backend_destroy(b[1]);
}

typedef struct {
    int runs;
    pthread_t last;
} pool_arg;

static void pool_fn(void *a)
{
    pool_arg *p = a;
    p->runs++;
    p->last = pthread_self();
}

static void check_pool(void)
{
    for (int n = 1; n <= 4; n++) {
        qr_rank_pool *p = NULL;
        CHECK_OK(qr_rank_pool_create(n, &p));
        pool_arg args[4] = {0};
        void *ptrs[4] = {&args[0], &args[1], &args[2], &args[3]};
        pthread_t first[4];
        for (int it = 0; it < 1000; it++) {
            qr_rank_pool_run(p, pool_fn, ptrs);
            for (int r = 0; r < n; r++) {
                if (it == 0)
                    first[r] = args[r].last;
                else if (!pthread_equal(first[r], args[r].last))
                    CHECK_MSG(false, "n=%d rank %d ran on another thread at run %d", n, r, it);
            }
        }
        for (int r = 0; r < n; r++)
            CHECK_INT(args[r].runs, 1000);
        CHECK(pthread_equal(first[0], pthread_self()));
        for (int r = 1; r < n; r++)
            CHECK(!pthread_equal(first[r], pthread_self()));
        CHECK_INT(qr_rank_pool_threads(p), n - 1);
        qr_rank_pool_free(p);
    }
    qr_rank_pool *p = NULL;
    CHECK_INT(qr_rank_pool_create(0, &p), QR_EINVAL);
}

int main(void)
{
    check_choose();
    check_pool();
    static const int ns[] = {1, 2, 3, 4, 8};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int N = ns[k];
        qr_comm *c = NULL;
        CHECK_OK(qr_comm_host_create(N, &c));
        job jobs[MAXN];
        CHECK_MSG(run_all(c, -1, jobs) == 0, "N=%d: collectives disagree with the serial reference", N);
        /* rank 0 counted 3 all-reduces per size */
        CHECK_INT(c->stats.n_allreduce, 3 * NS);
        if (N > 1) {
            run_all(c, 0, jobs);
            for (int r = 1; r < N; r++)
                CHECK_INT(jobs[r].abort_rc, QR_ECANCELED);
            qr_comm_reset(c);
            CHECK_MSG(run_all(c, -1, jobs) == 0, "N=%d: after reset", N);
        }
        qr_comm_destroy(c);
    }
    qr_comm *c = NULL;
    CHECK_INT(qr_comm_host_create(0, &c), QR_EINVAL);
    CHECK_INT(qr_comm_host_create(257, &c), QR_EINVAL);
    return qr_test_done();
}
