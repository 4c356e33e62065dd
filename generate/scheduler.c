/* Continuous batching over one qr_decoder_state: see scheduler.h.
 *
 * Threads and locks. One worker thread runs the model; consumers (service
 * request threads) submit, pull events, cancel and release.
 *  - s->mu guards the scheduler: the FIFO of waiting requests, the slot
 *    table, flags (draining, stopping, cancel_all) and the stats. The worker
 *    sleeps on s->work when nothing is queued or running; drain sleeps on
 *    s->idle until nothing is.
 *  - r->mu guards one request's consumer side: its pending text, DONE
 *    result, reference count. The consumer sleeps on r->ev.
 *  Lock order: s->mu before r->mu (only the worker and submit take s->mu;
 *  consumer calls on a request take r->mu only). So a request handle stays
 *  usable after qr_sched_destroy: it never touches the scheduler again once
 *  the worker has published its DONE.
 *
 * Cancellation is a flag on the request (atomic) read by the worker before
 * every step. The worker only sleeps when no request is queued or running,
 * so a cancel never needs to wake it.
 *
 * References: a request starts with two (consumer + worker). The worker drops
 * its own when it publishes DONE, the consumer in qr_sched_release; whoever
 * drops the last frees it.
 *
 * Per-sequence work (sampling, eos, stop strings, max_tokens, text) is
 * qr_genseq (runtime/models/model.h), the same code qr_generate runs, so a
 * request gives the ids qr_generate would. */
#include "generate/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"

struct qr_sched_req {
    /* ---- fixed after submit ---- */
    int32_t *prompt;    // (n_prompt)
    size_t n_prompt;
    double t_submit;

    /* ---- worker only ---- */
    qr_genseq *g;       /* sampling/text state; freed at DONE */
    int slot;           /* -1 while queued */
    size_t n_fed;       /* prompt tokens prefilled so far */
    int32_t next_id;    /* sampled id to feed in the next decode step */
    double t_first;     /* first token sampled (0: not yet) */
    qr_sched_req *next; /* FIFO link while queued */
    atomic_bool cancel; /* set by the consumer, read by the worker */

    /* ---- guarded by mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t ev;
    int refs;
    char *pend;         /* text not yet handed to the consumer */
    size_t pend_len, pend_cap;
    char *out;          /* the piece last handed out (borrowed by the consumer) */
    size_t out_cap;
    int32_t n_tokens;   /* tokens generated so far */
    bool done;          /* DONE published */
    bool done_taken;    /* DONE handed to the consumer */
    int rc;
    char msg[512];
    qr_gen_result result;
};

struct qr_sched {
    qr_model *m;
    qr_sched_opts o;
    int32_t vocab;
    qr_decoder_state *st;

    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    bool draining;      /* submit refuses */
    bool cancel_all;    /* drain's grace ran out: cancel whatever is left */
    bool stopping;      /* destroy: cancel everything and exit */
    int drain_cancelled;

    qr_sched_req *q_head, *q_tail;
    int n_queued;
    qr_sched_req **run; // (n_slots) running requests in admission order, n_running of them
    int n_running;
    bool *slot_busy;    // (n_slots)
    qr_sched_stats stats;

    /* worker buffers */
    qr_dec_seq *seqs;   // (n_slots)
    qr_sched_req **seq_req; // (n_slots) request of each batched sequence
    float *logits;      // (n_slots, vocab)
    int32_t *best;      // (n_slots) arg-max ids when the device selects them
    bool dev_topk;      /* the backend selects top-k on the device */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Condition variables time out on CLOCK_MONOTONIC (immune to clock changes). */
static int cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a))
        return -1;
    int e = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return e ? -1 : 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void qr_sched_opts_default(qr_sched_opts *o)
{
    o->n_slots = 8;
    o->n_ctx = 0; /* resolved at create: min(model max positions, 4096) */
    o->max_queue = 64;
    o->prefill_chunk = QR_PREFILL_CHUNK;
}

/* ---- requests ---- */

static void req_free(qr_sched_req *r)
{
    qr_genseq_free(r->g);
    qr_gen_result_free(&r->result);
    free(r->prompt);
    free(r->pend);
    free(r->out);
    pthread_cond_destroy(&r->ev);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Drops one reference (r->mu held); unlocks and frees r when it was the last. */
static void req_unref_unlock(qr_sched_req *r)
{
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        req_free(r);
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return qr_fail(QR_ENOMEM, "scheduler: text buffer of %zu bytes", c);
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return QR_OK;
}

/* Worker: hands newly final text to the consumer. */
static int req_publish_text(qr_sched_req *r, const char *piece, int32_t n_tokens)
{
    size_t n = strlen(piece);
    int rc = QR_OK;
    pthread_mutex_lock(&r->mu);
    r->n_tokens = n_tokens;
    if (n && !(rc = buf_append(&r->pend, &r->pend_len, &r->pend_cap, piece, n)))
        pthread_cond_signal(&r->ev); /* only text wakes the consumer */
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Worker: ends r (already out of the queue and its slot): builds the result,
 * publishes DONE, drops the worker's reference. rc 0, QR_ECANCELED or an
 * error (msg: its detail). */
static void req_end(qr_sched *s, qr_sched_req *r, int rc, const char *msg)
{
    double t = now_s();
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    /* msg is usually qr_last_error(): copy it before the calls below, any of
     * which may fail and overwrite this thread's error text. */
    char why[sizeof r->msg];
    snprintf(why, sizeof why, "%s", msg ? msg : "");
    if (rc == QR_ECANCELED)
        qr_genseq_end(r->g, "cancelled");
    else if (rc)
        qr_genseq_end(r->g, "error");
    int rr = qr_genseq_result(r->g, &res);
    if (rr && !rc) {
        rc = rr;
        snprintf(why, sizeof why, "%s", qr_last_error());
    }
    if (rr) {
        memset(&res, 0, sizeof res);
        res.n_prompt = (int)r->n_prompt;
    }
    if (rc == QR_ECANCELED)
        res.finish = "cancelled";
    else if (rc)
        res.finish = "error";
    double t1 = r->t_first > 0 ? r->t_first : t;
    res.prefill_s = t1 - r->t_submit;
    res.decode_s = t - t1;
    size_t n_gen = qr_genseq_n_generated(r->g);
    qr_genseq_free(r->g);
    r->g = NULL;
    QR_DEBUG("scheduler: request done: prompt %zu, generated %zu, finish %s, %.3f s to first token, %.3f s decode",
             r->n_prompt, n_gen, res.finish, res.prefill_s, res.decode_s);

    pthread_mutex_lock(&s->mu);
    if (rc == 0)
        s->stats.finished++;
    else if (rc == QR_ECANCELED)
        s->stats.cancelled++;
    else
        s->stats.failed++;
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&r->mu);
    r->result = res;
    r->rc = rc;
    snprintf(r->msg, sizeof r->msg, "%s", rc == QR_ECANCELED ? "cancelled" : rc ? why : "");
    r->done = true;
    pthread_cond_signal(&r->ev);
    req_unref_unlock(r);
}

/* ---- worker ---- */

/* s->mu held. Takes cancelled requests out of the queue and the slots into
 * *ended (linked through next); with all set, every request. */
static void collect_cancelled(qr_sched *s, bool all, qr_sched_req **ended, int *n_ended)
{
    qr_sched_req **pp = &s->q_head, *prev = NULL;
    while (*pp) {
        qr_sched_req *r = *pp;
        if (all || atomic_load(&r->cancel)) {
            *pp = r->next;
            if (s->q_tail == r)
                s->q_tail = prev;
            s->n_queued--;
            r->next = *ended;
            *ended = r;
            (*n_ended)++;
        } else {
            prev = r;
            pp = &r->next;
        }
    }
    int k = 0;
    for (int i = 0; i < s->n_running; i++) {
        qr_sched_req *r = s->run[i];
        if (all || atomic_load(&r->cancel)) {
            qr_decoder_slot_truncate(s->st, r->slot, 0);
            s->slot_busy[r->slot] = false;
            r->next = *ended;
            *ended = r;
            (*n_ended)++;
        } else {
            s->run[k++] = r;
        }
    }
    s->n_running = k;
}

/* s->mu held. Moves waiting requests into free slots (FIFO). */
static void admit(qr_sched *s)
{
    while (s->q_head && s->n_running < s->o.n_slots) {
        qr_sched_req *r = s->q_head;
        s->q_head = r->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->n_queued--;
        r->next = NULL;
        int slot = 0;
        while (s->slot_busy[slot])
            slot++;
        s->slot_busy[slot] = true;
        r->slot = slot;
        r->n_fed = 0;
        s->run[s->n_running++] = r;
    }
}

/* s->mu held. Takes r out of the running set and empties its slot. */
static void leave_slot(qr_sched *s, qr_sched_req *r)
{
    qr_decoder_slot_truncate(s->st, r->slot, 0);
    s->slot_busy[r->slot] = false;
    int k = 0;
    for (int i = 0; i < s->n_running; i++)
        if (s->run[i] != r)
            s->run[k++] = s->run[i];
    s->n_running = k;
}

/* Adds a step's prompt and generated tokens counted so far to the stats (none
 * when the step failed) and zeroes the counts; s->mu held. Called before a
 * request ends too, so that its client never reads stats without its tokens. */
static void account_tokens(qr_sched *s, int rc, int *n_prefill, int *n_gen)
{
    if (!rc) {
        s->stats.prompt_tokens += (uint64_t)*n_prefill;
        s->stats.gen_tokens += (uint64_t)*n_gen;
    }
    *n_prefill = 0;
    *n_gen = 0;
}

static void *worker(void *arg)
{
    qr_sched *s = arg;
    int V = s->vocab;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        qr_sched_req *ended = NULL;
        int n_ended = 0;
        bool all = s->stopping || s->cancel_all;
        collect_cancelled(s, all, &ended, &n_ended);
        if (s->cancel_all && !s->stopping)
            s->drain_cancelled += n_ended;
        if (ended) {
            pthread_mutex_unlock(&s->mu);
            while (ended) {
                qr_sched_req *r = ended;
                ended = r->next;
                req_end(s, r, QR_ECANCELED, NULL);
            }
            pthread_mutex_lock(&s->mu);
            continue; /* flags may have changed meanwhile */
        }
        admit(s);
        if (s->n_running == 0) {
            pthread_cond_broadcast(&s->idle);
            if (s->stopping)
                break;
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }

        /* one step: a decode token for every sequence past its prompt, then
         * prompt chunks in admission order within the prefill budget */
        int n_seq = 0, n_prefill = 0;
        int budget = s->o.prefill_chunk;
        for (int i = 0; i < s->n_running; i++) {
            qr_sched_req *r = s->run[i];
            if (r->n_fed < r->n_prompt)
                continue;
            s->seqs[n_seq] = (qr_dec_seq){.slot = r->slot, .ids = &r->next_id, .n = 1};
            s->seq_req[n_seq++] = r;
        }
        for (int i = 0; i < s->n_running && budget > 0; i++) {
            qr_sched_req *r = s->run[i];
            if (r->n_fed >= r->n_prompt)
                continue;
            size_t n = r->n_prompt - r->n_fed;
            if (n > (size_t)budget)
                n = (size_t)budget;
            budget -= (int)n;
            n_prefill += (int)n;
            s->seqs[n_seq] = (qr_dec_seq){.slot = r->slot, .ids = r->prompt + r->n_fed, .n = (int32_t)n};
            s->seq_req[n_seq++] = r;
        }
        pthread_mutex_unlock(&s->mu);

        /* When every sequence of the step is plain greedy and the backend
         * selects on the device, only the arg-max ids come back instead of
         * n_seq logits rows (the same ids: lowest on ties, as qr_generate). */
        bool dev = s->dev_topk;
        for (int i = 0; dev && i < n_seq; i++)
            dev = qr_genseq_greedy(s->seq_req[i]->g);

        /* The step runs without the lock: submit, stats and drain go on
         * meanwhile. Requests in s->run only leave it on this thread. */
        int rc = dev ? qr_decoder_step_topk(s->st, s->seqs, n_seq, 1, s->best, NULL)
                     : qr_decoder_step(s->st, s->seqs, n_seq, s->logits);
        char err[512] = "";
        if (rc)
            snprintf(err, sizeof err, "%s", qr_last_error());
        double t = now_s();
        int n_gen = 0;
        for (int i = 0; i < n_seq; i++) {
            qr_sched_req *r = s->seq_req[i];
            int rr = rc;
            const char *msg = err;
            bool done = rc != 0;
            if (!rc) {
                if (r->n_fed < r->n_prompt) {
                    r->n_fed += (size_t)s->seqs[i].n;
                    if (r->n_fed < r->n_prompt)
                        continue; /* more prompt to come: these logits are not needed */
                }
                qr_genseq_tok tk;
                if ((rr = dev ? qr_genseq_next_id(r->g, s->best[i], &tk)
                              : qr_genseq_next(r->g, s->logits + (size_t)i * V, &tk))) {
                    msg = qr_last_error();
                    done = true;
                } else {
                    n_gen += !tk.eos;
                    if (r->t_first == 0)
                        r->t_first = t;
                    r->next_id = tk.id;
                    if ((rr = req_publish_text(r, tk.piece, (int32_t)qr_genseq_n_generated(r->g)))) {
                        msg = qr_last_error();
                        done = true;
                    }
                    done |= tk.done;
                }
            }
            if (done) {
                pthread_mutex_lock(&s->mu);
                leave_slot(s, r);
                account_tokens(s, rc, &n_prefill, &n_gen); /* before r's client can read the stats */
                pthread_mutex_unlock(&s->mu);
                if (rr)
                    QR_WARN("scheduler: request failed: %s: %s", qr_strerror(rr), msg);
                req_end(s, r, rr, msg);
            }
        }

        pthread_mutex_lock(&s->mu);
        s->stats.steps++;
        s->stats.batch_hist[n_seq <= 64 ? n_seq - 1 : 63]++;
        account_tokens(s, rc, &n_prefill, &n_gen);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public ---- */

/* Frees a scheduler whose worker is not running (never started or joined);
 * the flags say which synchronisation objects were initialised. */
static void sched_free(qr_sched *s, bool mu, bool work, bool idle)
{
    if (idle)
        pthread_cond_destroy(&s->idle);
    if (work)
        pthread_cond_destroy(&s->work);
    if (mu)
        pthread_mutex_destroy(&s->mu);
    qr_decoder_state_free(s->st);
    free(s->run);
    free(s->slot_busy);
    free(s->seqs);
    free(s->seq_req);
    free(s->logits);
    free(s->best);
    free(s);
}

int qr_sched_create(qr_model *m, const qr_sched_opts *o, qr_sched **out)
{
    if (!m || !out)
        return qr_fail(QR_EINVAL, "scheduler: NULL argument");
    const qr_model_config *c = qr_model_cfg(m);
    qr_sched_opts d;
    qr_sched_opts_default(&d);
    if (o)
        d = *o;
    if (d.n_ctx == 0)
        d.n_ctx = c->max_pos < 4096 ? c->max_pos : 4096;
    if (d.n_slots <= 0 || d.n_slots > 4096)
        return qr_fail(QR_EINVAL, "scheduler: n_slots %d must be 1..4096", d.n_slots);
    if (d.n_ctx < 2 || d.n_ctx > c->max_pos)
        return qr_fail(QR_EINVAL, "scheduler: n_ctx %d must be 2..%d (the model's positions)", d.n_ctx, c->max_pos);
    if (d.max_queue < 0)
        return qr_fail(QR_EINVAL, "scheduler: max_queue %d must be >= 0", d.max_queue);
    if (d.prefill_chunk <= 0)
        return qr_fail(QR_EINVAL, "scheduler: prefill_chunk %d must be positive", d.prefill_chunk);
    qr_sched *s = calloc(1, sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "scheduler");
    s->m = m;
    s->o = d;
    s->vocab = c->vocab_size;
    int rc;
    bool mu = false, work = false, idle = false;
    if ((rc = qr_decoder_state_create(m, d.n_slots, d.n_ctx, &s->st)))
        goto fail;
    s->run = calloc((size_t)d.n_slots, sizeof *s->run);
    s->slot_busy = calloc((size_t)d.n_slots, sizeof *s->slot_busy);
    s->seqs = calloc((size_t)d.n_slots, sizeof *s->seqs);
    s->seq_req = calloc((size_t)d.n_slots, sizeof *s->seq_req);
    s->logits = malloc((size_t)d.n_slots * (size_t)s->vocab * sizeof *s->logits);
    s->best = calloc((size_t)d.n_slots, sizeof *s->best);
    if (!s->run || !s->slot_busy || !s->seqs || !s->seq_req || !s->logits || !s->best) {
        rc = qr_fail(QR_ENOMEM, "scheduler: buffers for %d slots", d.n_slots);
        goto fail;
    }
    s->stats.n_slots = d.n_slots;
    s->dev_topk = qr_decoder_has_topk(s->st);
    if (!(mu = pthread_mutex_init(&s->mu, NULL) == 0) || !(work = cond_init(&s->work) == 0) ||
        !(idle = cond_init(&s->idle) == 0)) {
        rc = qr_fail(QR_ENOMEM, "scheduler: mutex/condition variable");
        goto fail;
    }
    int e = pthread_create(&s->th, NULL, worker, s);
    if (e) {
        rc = qr_fail(QR_ENOMEM, "scheduler: worker thread: %s", strerror(e));
        goto fail;
    }
    s->started = true;
    QR_INFO("scheduler: %d slots x %d positions, queue %d, prefill chunk %d", d.n_slots, d.n_ctx, d.max_queue,
            d.prefill_chunk);
    *out = s;
    return QR_OK;
fail:
    sched_free(s, mu, work, idle);
    return rc;
}

void qr_sched_destroy(qr_sched *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = s->draining = true;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    sched_free(s, true, true, true);
}

int qr_sched_drain(qr_sched *s, int grace_ms)
{
    if (!s)
        return 0;
    struct timespec dl;
    deadline_in(&dl, grace_ms > 0 ? grace_ms : 0);
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    while (s->n_queued + s->n_running > 0 && !s->cancel_all)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &dl) == ETIMEDOUT)
            break;
    if (s->n_queued + s->n_running > 0) {
        s->cancel_all = true;
        pthread_cond_signal(&s->work);
        while (s->n_queued + s->n_running > 0)
            pthread_cond_wait(&s->idle, &s->mu);
    }
    int n = s->drain_cancelled;
    s->drain_cancelled = 0;
    pthread_mutex_unlock(&s->mu);
    if (n)
        QR_INFO("scheduler: drain cancelled %d requests after %d ms of grace", n, grace_ms);
    return n;
}

int qr_sched_submit(qr_sched *s, const int32_t *prompt, size_t n, const qr_sample_params *p, qr_sched_req **out)
{
    if (!s || !p || !out)
        return qr_fail(QR_EINVAL, "scheduler: NULL argument");
    if (n == 0 || !prompt)
        return qr_fail(QR_EINVAL, "scheduler: the prompt must hold at least one token");
    qr_sched_req *r = calloc(1, sizeof *r);
    if (!r)
        return qr_fail(QR_ENOMEM, "scheduler: request");
    int rc;
    if (pthread_mutex_init(&r->mu, NULL)) {
        free(r);
        return qr_fail(QR_ENOMEM, "scheduler: request mutex");
    }
    if (cond_init(&r->ev)) {
        pthread_mutex_destroy(&r->mu);
        free(r);
        return qr_fail(QR_ENOMEM, "scheduler: request condition variable");
    }
    r->slot = -1;
    r->refs = 2;
    atomic_init(&r->cancel, false);
    if ((rc = qr_genseq_create(s->m, prompt, n, p, s->o.n_ctx, &r->g)))
        goto fail;
    if (!(r->prompt = malloc(n * sizeof *r->prompt))) {
        rc = qr_fail(QR_ENOMEM, "scheduler: prompt of %zu ids", n);
        goto fail;
    }
    memcpy(r->prompt, prompt, n * sizeof *r->prompt);
    r->n_prompt = n;
    r->t_submit = now_s();

    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        pthread_mutex_unlock(&s->mu);
        rc = qr_fail(QR_ECANCELED, "scheduler: shutting down, no new requests");
        goto fail;
    }
    /* waiting = queued beyond the slots free now (those start at the next step) */
    int waiting = s->n_queued - (s->o.n_slots - s->n_running);
    if (waiting >= s->o.max_queue) {
        s->stats.refused_busy++;
        pthread_mutex_unlock(&s->mu);
        rc = qr_fail(QR_EBUSY, "scheduler: %d requests already wait for a slot (max_queue %d)", waiting,
                     s->o.max_queue);
        goto fail;
    }
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->n_queued++;
    s->stats.submitted++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    *out = r;
    return QR_OK;
fail:
    req_free(r);
    return rc;
}

int qr_sched_next(qr_sched_req *r, int timeout_ms, qr_sched_event *ev)
{
    if (!r || !ev)
        return qr_fail(QR_EINVAL, "scheduler: NULL argument");
    struct timespec dl;
    if (timeout_ms >= 0)
        deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    if (r->done_taken) {
        pthread_mutex_unlock(&r->mu);
        return qr_fail(QR_EINVAL, "scheduler: qr_sched_next after DONE");
    }
    while (!r->pend_len && !r->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->ev, &r->mu);
        else if (pthread_cond_timedwait(&r->ev, &r->mu, &dl) == ETIMEDOUT)
            break;
    }
    memset(ev, 0, sizeof *ev);
    if (r->pend_len) {
        /* hand the pending buffer over; the worker appends to the other one */
        char *b = r->out;
        size_t cap = r->out_cap;
        r->out = r->pend;
        r->out_cap = r->pend_cap;
        r->pend = b;
        r->pend_cap = cap;
        ev->kind = QR_SCHED_TEXT;
        ev->piece = r->out;
        ev->len = r->pend_len;
        ev->n_tokens = r->n_tokens;
        r->pend_len = 0;
        if (r->pend)
            r->pend[0] = 0;
    } else if (r->done) {
        ev->kind = QR_SCHED_DONE;
        ev->rc = r->rc;
        ev->msg = r->msg;
        ev->result = &r->result;
        ev->n_tokens = r->n_tokens;
        r->done_taken = true;
    } else {
        ev->kind = QR_SCHED_TIMEOUT;
        ev->n_tokens = r->n_tokens;
    }
    pthread_mutex_unlock(&r->mu);
    return QR_OK;
}

void qr_sched_cancel(qr_sched_req *r)
{
    if (r)
        atomic_store(&r->cancel, true);
}

void qr_sched_release(qr_sched_req *r)
{
    if (!r)
        return;
    atomic_store(&r->cancel, true);
    pthread_mutex_lock(&r->mu);
    req_unref_unlock(r);
}

void qr_sched_get_opts(const qr_sched *s, qr_sched_opts *out)
{
    if (s && out)
        *out = s->o; /* fixed after create: no lock needed */
}

void qr_sched_get_stats(qr_sched *s, qr_sched_stats *out)
{
    if (!s || !out)
        return;
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->queued = s->n_queued;
    out->running = s->n_running;
    pthread_mutex_unlock(&s->mu);
}
