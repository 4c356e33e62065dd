/* The threads of a tensor-parallel group: one per rank, created when the
 * model loads and parked between steps (a decode step used to start TP - 1
 * threads; on GPUs each rank's thread stays bound to its GPU). Rank 0 runs on
 * the caller's thread. Steps from several threads (decoder states sharing the
 * model) are serialised: the group has one communicator. */
#ifndef QR_RUNTIME_DIST_RANK_POOL_H
#define QR_RUNTIME_DIST_RANK_POOL_H

typedef struct qr_rank_pool qr_rank_pool;

/* n ranks (1..256): starts n - 1 threads. */
int qr_rank_pool_create(int n, qr_rank_pool **out);
void qr_rank_pool_free(qr_rank_pool *p);
/* fn(args[r]) for every rank r at once; returns when all have returned. */
void qr_rank_pool_run(qr_rank_pool *p, void (*fn)(void *), void *const *args);
/* Threads started so far (tests: the count stays n - 1 over many runs). */
int qr_rank_pool_threads(const qr_rank_pool *p);

#endif
