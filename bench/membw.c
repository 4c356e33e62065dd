/* Streaming read bandwidth (bench/membw.h). */
#include "membw.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const uint64_t *p;
    size_t n; /* words, a multiple of 32 */
    uint64_t sum;
    double t0, t1;
    pthread_barrier_t *bar;
} bw_job;

typedef uint64_t u64x4 __attribute__((vector_size(32)));

#define BW_SUM_BODY                                                                 \
    u64x4 s[8] = {{0}};                                                             \
    const u64x4 *v = (const u64x4 *)p;                                              \
    for (size_t i = 0; i + 32 <= n; i += 32, v += 8)                               \
        for (int k = 0; k < 8; k++)                                                 \
            s[k] += v[k];                                                           \
    u64x4 t = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];                \
    return t[0] + t[1] + t[2] + t[3];

__attribute__((target("avx2"))) static uint64_t bw_sum_avx2(const uint64_t *p, size_t n) { BW_SUM_BODY }
static uint64_t bw_sum_base(const uint64_t *p, size_t n) { BW_SUM_BODY }

static void *bw_worker(void *arg)
{
    bw_job *j = arg;
    bool avx2 = __builtin_cpu_supports("avx2");
    pthread_barrier_wait(j->bar);
    j->t0 = now();
    j->sum = avx2 ? bw_sum_avx2(j->p, j->n) : bw_sum_base(j->p, j->n);
    j->t1 = now();
    return NULL;
}

int qb_membw_passes(size_t bytes, int threads, int passes, double *bw)
{
    size_t n = bytes / 8;
    uint64_t *buf = aligned_alloc(64, (n * 8 + 63) & ~(size_t)63);
    bw_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (!buf || !jobs || !th) {
        free(buf);
        free(jobs);
        free(th);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 2654435761u;
    size_t per = (n / (size_t)threads) & ~(size_t)31;
    uint64_t check = 0;
    for (int pass = 0; pass < passes; pass++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        size_t words = 0;
        for (int t = 0; t < threads; t++) {
            jobs[t].p = buf + (size_t)t * per;
            jobs[t].n = t == threads - 1 ? (n - (size_t)t * per) & ~(size_t)31 : per;
            jobs[t].bar = &bar;
            words += jobs[t].n;
            pthread_create(&th[t], NULL, bw_worker, &jobs[t]);
        }
        double t0 = 1e300, t1 = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            check += jobs[t].sum;
            t0 = jobs[t].t0 < t0 ? jobs[t].t0 : t0;
            t1 = jobs[t].t1 > t1 ? jobs[t].t1 : t1;
        }
        pthread_barrier_destroy(&bar);
        bw[pass] = (double)words * 8.0 / (t1 - t0);
    }
    free(th);
    free(jobs);
    free(buf);
    if (check == 42) /* keep the sums alive */
        fprintf(stderr, " ");
    return 0;
}
