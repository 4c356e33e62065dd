/* Parked rank threads (rank_pool.h). A run bumps the generation under the
 * mutex and broadcasts; each worker runs its rank's call and counts itself
 * done; the caller runs rank 0, then waits for the count. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/error.h"
#include "runtime/dist/rank_pool.h"

typedef struct {
    struct qr_rank_pool *p;
    int rank;
} worker;

struct qr_rank_pool {
    int n, started;
    pthread_t th[256];
    worker w[256];
    pthread_mutex_t run_mu; /* one run at a time */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long generation;
    int pending;            /* workers still running this generation */
    bool quit;
    void (*fn)(void *);
    void *const *args;
};

static void *worker_main(void *arg)
{
    worker *w = arg;
    qr_rank_pool *p = w->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        void (*fn)(void *) = p->fn;
        void *a = p->args[w->rank];
        pthread_mutex_unlock(&p->mu);
        fn(a);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void qr_rank_pool_free(qr_rank_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int r = 1; r <= p->started; r++)
        pthread_join(p->th[r], NULL);
    pthread_mutex_destroy(&p->run_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}

int qr_rank_pool_create(int n, qr_rank_pool **out)
{
    if (n < 1 || n > 256)
        return qr_fail(QR_EINVAL, "rank pool: %d ranks (1..256)", n);
    qr_rank_pool *p = calloc(1, sizeof *p);
    if (!p)
        return qr_fail(QR_ENOMEM, "rank pool");
    p->n = n;
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int r = 1; r < n; r++) {
        p->w[r] = (worker){p, r};
        if (pthread_create(&p->th[r], NULL, worker_main, &p->w[r])) {
            qr_rank_pool_free(p);
            return qr_fail(QR_EINTERNAL, "tensor parallel: cannot start the thread of rank %d", r);
        }
        p->started = r;
    }
    *out = p;
    return QR_OK;
}

void qr_rank_pool_run(qr_rank_pool *p, void (*fn)(void *), void *const *args)
{
    pthread_mutex_lock(&p->run_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->args = args;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(args[0]);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
}

int qr_rank_pool_threads(const qr_rank_pool *p) { return p->started; }
