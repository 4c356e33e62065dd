/* membw: streaming read bandwidth of DRAM, for the "decode >= 80% of the DRAM
 * bandwidth bound" line of bench/quant/run.sh (bound tokens/s = bandwidth /
 * bytes read per decoded token).
 *
 *   membw [--threads N] [--mib M] [--passes P]     (defaults 2, 1024, 10)
 *
 * N threads each sum the 64-bit words of their share of one M MiB buffer
 * (written beforehand so its pages exist; 8 independent 256-bit accumulators,
 * AVX2 when the CPU has it, so the loop is bound by loads); each pass is timed
 * from the first thread's start to the last thread's end (taken by the workers
 * themselves, past a barrier). Prints the best and the median pass in GB/s
 * (10^9 bytes/s) on one line: "membw: best B GB/s, median D GB/s (...)". The
 * buffer must be much larger than the last-level cache to measure DRAM. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef uint64_t u64x4 __attribute__((vector_size(32)));

#define SUM_BODY                                                                    \
    u64x4 s[8] = {{0}};                                                             \
    const u64x4 *v = (const u64x4 *)p;                                              \
    for (size_t i = 0; i + 32 <= n; i += 32, v += 8)                               \
        for (int k = 0; k < 8; k++)                                                 \
            s[k] += v[k];                                                           \
    u64x4 t = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];                \
    return t[0] + t[1] + t[2] + t[3];

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) { SUM_BODY }
static uint64_t sum_base(const uint64_t *p, size_t n) { SUM_BODY }

typedef struct {
    const uint64_t *p;
    size_t n; /* words, a multiple of 32 */
    uint64_t sum;
    double t0, t1;
    pthread_barrier_t *bar;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    bool avx2 = __builtin_cpu_supports("avx2");
    pthread_barrier_wait(j->bar);
    j->t0 = now();
    j->sum = avx2 ? sum_avx2(j->p, j->n) : sum_base(j->p, j->n);
    j->t1 = now();
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int threads = 2, mib = 1024, passes = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib"))
            mib = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--passes"))
            passes = atoi(argv[i + 1]);
        else
            argc = -1;
    }
    if (argc < 0 || argc % 2 == 0 || threads < 1 || threads > 256 || mib < 1 || mib > 1 << 20 || passes < 1 ||
        passes > 1000) {
        fprintf(stderr, "usage: membw [--threads 1..256] [--mib 1..1048576] [--passes 1..1000]\n");
        return 2;
    }
    size_t n = ((size_t)mib << 20) / 8;
    uint64_t *buf = aligned_alloc(64, n * 8);
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    double *bw = calloc((size_t)passes, sizeof *bw);
    if (!buf || !jobs || !th || !bw) {
        fprintf(stderr, "membw: out of memory (%d MiB)\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 2654435761u;
    size_t per = (n / (size_t)threads) & ~(size_t)31;
    uint64_t check = 0;
    for (int pass = 0; pass < passes; pass++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        size_t bytes = 0;
        for (int t = 0; t < threads; t++) {
            jobs[t].p = buf + (size_t)t * per;
            jobs[t].n = t == threads - 1 ? (n - (size_t)t * per) & ~(size_t)31 : per;
            jobs[t].bar = &bar;
            bytes += jobs[t].n * 8;
            pthread_create(&th[t], NULL, worker, &jobs[t]);
        }
        double t0 = 1e300, t1 = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            check += jobs[t].sum;
            t0 = jobs[t].t0 < t0 ? jobs[t].t0 : t0;
            t1 = jobs[t].t1 > t1 ? jobs[t].t1 : t1;
        }
        pthread_barrier_destroy(&bar);
        bw[pass] = (double)bytes / (t1 - t0);
    }
    qsort(bw, (size_t)passes, sizeof *bw, cmp_double);
    printf("membw: best %.2f GB/s, median %.2f GB/s (%d threads, %d MiB buffer, %d passes; check %llu)\n",
           bw[passes - 1] / 1e9, bw[passes / 2] / 1e9, threads, mib, passes, (unsigned long long)(check & 0xff));
    free(bw);
    free(th);
    free(jobs);
    free(buf);
    return 0;
}
