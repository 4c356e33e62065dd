#include "common/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"

/* Spin iterations before a waiting worker sleeps (a pause is ~20-150 cycles,
 * so this is tens of microseconds: long enough to bridge the gap between two
 * consecutive ops, short enough not to steal a core from unrelated work). */
#define QR_POOL_SPIN 4000

/* How chunks are handed out. Job g is published by storing gen = g. Chunk t
 * belongs to worker t, which takes it by moving claim[t] from below g to g;
 * the caller, once its own chunk 0 is done, takes every chunk still unclaimed
 * the same way and runs it with that chunk's tid (so per-tid scratch stays
 * private). A worker that is descheduled on a busy machine thus delays
 * nothing: it finds its chunk taken when it wakes. A claim for g can only
 * succeed while job g is unfinished, so the job fields read after a
 * successful claim are job g's. */
struct qr_threadpool {
    int n;               /* workers including the caller */
    pthread_t *threads;  /* n - 1 */
    pthread_mutex_t call_mu; /* serialises parallel_for callers */
    pthread_mutex_t mu;  /* with cv: sleeping workers */
    pthread_cond_t cv;
    _Atomic uint64_t gen;       /* generation of the current job */
    _Atomic uint64_t *claim;    /* n: generation whose chunk t was taken */
    _Atomic int64_t remaining;  /* chunks of the current job not finished */
    _Atomic bool stop;
    /* the current job, written before gen is bumped */
    qr_parallel_fn fn;
    void *ctx;
    int64_t n_items, chunk;
};

typedef struct {
    qr_threadpool *p;
    int tid;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

int qr_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* Takes chunk t of job g; false if someone else has. */
static bool claim(qr_threadpool *p, int t, uint64_t g)
{
    uint64_t c = atomic_load_explicit(&p->claim[t], memory_order_acquire);
    while (c < g)
        if (atomic_compare_exchange_weak_explicit(&p->claim[t], &c, g, memory_order_acq_rel, memory_order_acquire))
            return true;
    return false;
}

static void run_chunk(qr_threadpool *p, int t)
{
    int64_t b = (int64_t)t * p->chunk, e = b + p->chunk;
    if (e > p->n_items)
        e = p->n_items;
    if (b < e)
        p->fn(p->ctx, b, e, t);
    atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel);
}

static void *worker_main(void *argp)
{
    worker_arg *arg = argp;
    qr_threadpool *p = arg->p;
    int tid = arg->tid;
    free(arg);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < QR_POOL_SPIN; i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            break;
        seen = g;
        if (claim(p, tid, g))
            run_chunk(p, tid);
    }
    return NULL;
}

int qr_threadpool_create(int n_threads, qr_threadpool **out)
{
    if (n_threads < 0 || n_threads > 1024)
        return qr_fail(QR_EINVAL, "threadpool: n_threads %d out of range 0..1024", n_threads);
    qr_threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return qr_fail(QR_ENOMEM, "threadpool: out of memory");
    p->n = n_threads ? n_threads : qr_cpu_count();
    pthread_mutex_init(&p->call_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->stop, false);
    int started = 0;
    p->claim = calloc((size_t)p->n, sizeof *p->claim);
    if (!p->claim)
        goto nomem;
    for (int t = 0; t < p->n; t++)
        atomic_init(&p->claim[t], 0);
    if (p->n > 1) {
        p->threads = calloc((size_t)p->n - 1, sizeof *p->threads);
        if (!p->threads)
            goto nomem;
        for (; started < p->n - 1; started++) {
            worker_arg *a = malloc(sizeof *a);
            if (!a)
                goto nomem;
            a->p = p;
            a->tid = started + 1;
            if (pthread_create(&p->threads[started], NULL, worker_main, a) != 0) {
                free(a);
                goto nomem;
            }
        }
    }
    *out = p;
    return QR_OK;
nomem:
    p->n = started + 1; /* destroy joins only the threads that exist */
    qr_threadpool_destroy(p);
    return qr_fail(QR_ENOMEM, "threadpool: cannot start %d threads", n_threads);
}

void qr_threadpool_destroy(qr_threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1 && p->threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p->claim);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->call_mu);
    free(p);
}

int qr_threadpool_size(const qr_threadpool *p) { return p ? p->n : 1; }

void qr_parallel_for(qr_threadpool *p, int64_t n, int64_t grain, qr_parallel_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (!p || p->n == 1 || n <= grain) {
        fn(ctx, 0, n, 0);
        return;
    }
    /* chunk: ceil(n / threads) rounded up to a multiple of grain */
    int64_t chunk = (n + p->n - 1) / p->n;
    chunk = (chunk + grain - 1) / grain * grain;
    pthread_mutex_lock(&p->call_mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_items = n;
    p->chunk = chunk;
    /* one slot per thread; a slot past the end of [0, n) is an empty chunk */
    atomic_store_explicit(&p->remaining, p->n, memory_order_relaxed);
    uint64_t g = atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel) + 1;
    /* Wake sleepers; with none waiting this does not enter the kernel. */
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    atomic_store_explicit(&p->claim[0], g, memory_order_relaxed);
    run_chunk(p, 0);
    /* take what the workers have not started (busy machine, or a tiny job) */
    for (int t = 1; t < p->n; t++)
        if (claim(p, t, g))
            run_chunk(p, t);
    for (long i = 0; atomic_load_explicit(&p->remaining, memory_order_acquire) != 0; i++) {
        if (i < 2000)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&p->call_mu);
}
