/* Continuous batching: many concurrent generations share one decoder model.
 *
 * A scheduler owns one qr_decoder_state (n_slots KV slots x n_ctx positions)
 * and one worker thread. Requests wait in a bounded FIFO; the worker admits a
 * waiting request whenever a slot is free, prefills prompts in chunks (at
 * most prefill_chunk prompt tokens per step over all sequences, so a long
 * prompt never stalls the running decodes for long), and every step runs one
 * decode token for each running request together in one qr_decoder_step
 * call. A request leaves its slot (and the slot is truncated to 0) as soon as
 * it finishes, is cancelled or fails, so the next waiting request can start
 * in the same step.
 *
 * Output goes to a per-request event queue that the consumer pulls from any
 * thread with qr_sched_next (text pieces as they become final, then one DONE
 * event carrying the result). Text pieces come from qr_textstream (stop
 * strings across token boundaries, incomplete UTF-8 held back), so the pieces
 * add up to the final text exactly.
 *
 * Sampling per request: qr_sampler with the request's qr_sample_params
 * (seeded; greedy at temperature 0), history = prompt + generated ids, eos ids
 * of the model config end a generation, max_tokens is capped so prompt +
 * completion fit n_ctx (finish "length" when the cap or max_tokens is hit).
 * A greedy request gives the same ids as qr_generate on the same prompt,
 * whatever else runs beside it (tests check this).
 *
 * Thread safety: every function may be called from any thread; one request
 * handle is used by one consumer thread at a time. */
#ifndef QR_GENERATE_SCHEDULER_H
#define QR_GENERATE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/models/model.h"

typedef struct qr_sched qr_sched;
typedef struct qr_sched_req qr_sched_req;

typedef struct qr_sched_opts {
    int n_slots;       /* concurrent generations (KV slots); default 8 */
    int n_ctx;         /* positions per slot (prompt + completion); 0 (the default) = min(model max positions, 4096) */
    int max_queue;     /* requests waiting for a slot; one more is refused with QR_EBUSY; default 64.
                        * A request submitted while a slot is free never counts as waiting
                        * (max_queue 0: only as many requests as slots). */
    int prefill_chunk; /* prompt tokens per step over all sequences; default 512 */
} qr_sched_opts;

void qr_sched_opts_default(qr_sched_opts *o);

/* m is borrowed (must outlive the scheduler). Starts the worker thread. */
int qr_sched_create(qr_model *m, const qr_sched_opts *o, qr_sched **out);

/* Cancels everything queued or running (their consumers get DONE with rc
 * QR_ECANCELED), joins the worker and frees the scheduler. Request handles
 * still held by consumers stay valid until qr_sched_release. NULL is fine. */
void qr_sched_destroy(qr_sched *s);

/* Stops admitting new requests (submit returns QR_ECANCELED from now on) and
 * waits up to grace_ms for queued and running requests to finish; whatever is
 * still running then is cancelled. Returns the number of requests cancelled.
 * Used by the service on SIGTERM. */
int qr_sched_drain(qr_sched *s, int grace_ms);

/* Queues a generation of prompt (n ids, BOS included by the caller if
 * wanted; copied) with sampling p (copied, stop strings included).
 * QR_EBUSY when max_queue requests already wait; QR_ELIMIT (naming n and
 * n_ctx) when the prompt leaves no room for one generated token; QR_EINVAL
 * for n == 0 or an id outside the vocabulary. *out must be released with
 * qr_sched_release. */
int qr_sched_submit(qr_sched *s, const int32_t *prompt, size_t n, const qr_sample_params *p,
                    qr_sched_req **out);

typedef enum {
    QR_SCHED_TEXT = 0, /* piece/len: newly final text (may be several tokens' worth) */
    QR_SCHED_DONE,     /* the request ended: result and rc are set; no more events */
    QR_SCHED_TIMEOUT,  /* nothing arrived within timeout_ms */
} qr_sched_event_kind;

typedef struct qr_sched_event {
    qr_sched_event_kind kind;
    const char *piece; /* TEXT: borrowed until the next qr_sched_next/release on this request */
    size_t len;
    int32_t n_tokens;  /* TEXT: tokens generated so far */
    /* DONE: rc 0 (finished), QR_ECANCELED (cancelled), or the error code
     * (its detail in msg). result is borrowed until qr_sched_release:
     * ids/text of the whole completion, n_prompt, finish ("stop", "length",
     * "cancelled", "error"), prefill_s (submit -> first token, queueing
     * included) and decode_s. */
    int rc;
    const char *msg;
    const qr_gen_result *result;
} qr_sched_event;

/* Waits up to timeout_ms (< 0: forever) for the next event. Returns 0 with
 * *ev filled, or a negative code on misuse (called again after DONE). */
int qr_sched_next(qr_sched_req *r, int timeout_ms, qr_sched_event *ev);

/* Asks the worker to stop the request (a client disconnected); its slot is
 * freed at the next step and the consumer then gets DONE with QR_ECANCELED.
 * Safe to call more than once and after DONE. */
void qr_sched_cancel(qr_sched_req *r);

/* Cancels the request if it is still running and drops the consumer's
 * reference; the memory is freed once the worker is done with it too. */
void qr_sched_release(qr_sched_req *r);

/* Counters for /metrics (a consistent snapshot). */
typedef struct qr_sched_stats {
    int n_slots;
    int queued;             /* waiting for a slot now */
    int running;            /* holding a slot now */
    uint64_t submitted, finished, cancelled, failed, refused_busy;
    uint64_t prompt_tokens; /* prefilled so far */
    uint64_t gen_tokens;    /* generated so far */
    uint64_t steps;         /* qr_decoder_step calls */
    /* batch_hist[i]: steps that ran i+1 sequences together (i < 64; larger in the last bucket) */
    uint64_t batch_hist[64];
} qr_sched_stats;

void qr_sched_get_stats(qr_sched *s, qr_sched_stats *out);

/* The options in effect (defaults resolved: n_ctx is the real context per
 * slot, e.g. for qr_answer_opts.n_ctx and max_tokens limits). */
void qr_sched_get_opts(const qr_sched *s, qr_sched_opts *out);

#endif
