/* A persistent worker pool with a static-chunked parallel-for.
 *
 * Created once (per CPU backend) and reused for every op, so the cost of a
 * parallel region is a wake-up, not a thread start. The calling thread takes
 * part as worker 0; n_threads - 1 pool threads do the rest. Idle workers spin
 * briefly (decode issues hundreds of small ops per token, and a futex wake
 * costs more than a short op) and then sleep on a condition variable, so an
 * idle pool costs no CPU.
 *
 * Chunk t is worker t's, but a caller that finishes its own chunk first runs
 * any chunk whose worker has not yet started it (passing that chunk's tid), so
 * a worker descheduled on a busy machine delays nothing; a given tid is never
 * used by two threads at once, so per-tid scratch stays private.
 *
 * Thread safety: parallel_for calls from different threads are serialised by
 * the pool. A job function must not call qr_parallel_for on the same pool
 * (nested parallelism would deadlock); call it serially instead. */
#ifndef QR_COMMON_THREADPOOL_H
#define QR_COMMON_THREADPOOL_H

#include <stdint.h>

typedef struct qr_threadpool qr_threadpool;

/* Runs items [begin, end) of a job on worker `tid` (0 .. n_threads-1). */
typedef void (*qr_parallel_fn)(void *ctx, int64_t begin, int64_t end, int tid);

/* n_threads: total workers including the caller; 0 = online cores. */
int qr_threadpool_create(int n_threads, qr_threadpool **out);
/* Joins the workers. NULL is fine. */
void qr_threadpool_destroy(qr_threadpool *p);
/* Total workers including the caller (>= 1). */
int qr_threadpool_size(const qr_threadpool *p);
/* Online CPU cores (>= 1). */
int qr_cpu_count(void);

/* Calls fn over [0, n) split into at most n_threads contiguous chunks, each a
 * multiple of `grain` items (except the last); returns when all are done.
 * Chunk t is passed tid t, so a given (n, grain) always maps the same items
 * to the same tid. With n <= grain or a 1-thread pool, fn(ctx, 0, n, 0)
 * runs on the caller. p may be NULL (serial). */
void qr_parallel_for(qr_threadpool *p, int64_t n, int64_t grain, qr_parallel_fn fn, void *ctx);

#endif
