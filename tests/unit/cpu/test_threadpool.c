/* common/threadpool: every item runs exactly once, on the worker its static
 * chunk says, across sizes, grains and pool sizes; many back-to-back jobs
 * (wake-up races); two threads sharing one pool; NULL pool runs serially. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/threadpool.h"
#include "tests/unit/test.h"

typedef struct {
    int64_t n, grain;
    int nt;
    _Atomic int *hits;
    _Atomic int bad_tid; /* item ran on a worker other than its chunk's */
    _Atomic int64_t sum;
} job;

static void fn(void *vctx, int64_t b, int64_t e, int tid)
{
    job *j = vctx;
    /* the documented chunking: ceil(n / nt) rounded up to grain, chunk t -> worker t */
    int64_t chunk = (j->n + j->nt - 1) / j->nt;
    chunk = (chunk + j->grain - 1) / j->grain * j->grain;
    for (int64_t i = b; i < e; i++) {
        atomic_fetch_add(&j->hits[i], 1);
        atomic_fetch_add(&j->sum, i);
        if (j->nt > 1 && j->n > j->grain && i / chunk != tid)
            atomic_fetch_add(&j->bad_tid, 1);
    }
}

static int run_check(qr_threadpool *p, int64_t n, int64_t grain)
{
    job j = {0};
    j.n = n;
    j.grain = grain < 1 ? 1 : grain;
    j.nt = qr_threadpool_size(p);
    j.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *j.hits);
    qr_parallel_for(p, n, grain, fn, &j);
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += atomic_load(&j.hits[i]) != 1;
    bad += atomic_load(&j.bad_tid) != 0;
    bad += atomic_load(&j.sum) != (n > 0 ? n * (n - 1) / 2 : 0);
    free(j.hits);
    return bad;
}

static void *hammer(void *arg)
{
    qr_threadpool *p = arg;
    intptr_t bad = 0;
    for (int r = 0; r < 2000; r++)
        bad += run_check(p, 1 + r % 97, 1 + r % 5);
    return (void *)bad;
}

int main(void)
{
    CHECK(qr_cpu_count() >= 1);
    int64_t sizes[] = {0, 1, 2, 3, 7, 16, 17, 100, 1001, 65537};
    int64_t grains[] = {0, 1, 4, 16, 1000};
    int threads[] = {0, 1, 2, 3, 5};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        qr_threadpool *p = NULL;
        CHECK_OK(qr_threadpool_create(threads[t], &p));
        CHECK_INT(qr_threadpool_size(p), threads[t] ? threads[t] : qr_cpu_count());
        int bad = 0;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                bad += run_check(p, sizes[s], grains[g]);
        CHECK_INT(bad, 0);
        /* back-to-back small jobs: exercises spin/sleep transitions */
        bad = 0;
        for (int r = 0; r < 20000; r++)
            bad += run_check(p, 2 + r % 13, 1);
        CHECK_INT(bad, 0);
        qr_threadpool_destroy(p);
    }
    /* two caller threads share one pool: calls are serialised, results exact */
    qr_threadpool *p = NULL;
    CHECK_OK(qr_threadpool_create(3, &p));
    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, hammer, p);
    pthread_create(&b, NULL, hammer, p);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK_INT((intptr_t)ra + (intptr_t)rb, 0);
    qr_threadpool_destroy(p);
    /* NULL pool: serial on the caller */
    CHECK_INT(qr_threadpool_size(NULL), 1);
    CHECK_INT(run_check(NULL, 50, 1), 0);
    qr_threadpool_destroy(NULL);
    /* bad sizes */
    CHECK_INT(qr_threadpool_create(-1, &p), QR_EINVAL);
    /* an idle pool sleeps and still wakes */
    CHECK_OK(qr_threadpool_create(2, &p));
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK_INT(run_check(p, 1000, 1), 0);
    qr_threadpool_destroy(p);
    return qr_test_done();
}
