/* generate/scheduler: continuous batching on stories260K (tests/fixtures/models, F32).
 *
 * References are independent of the scheduler:
 *  - greedy_from_bos_60.ref.txt: a request from BOS must give its 60 ids; a
 *    request whose prompt is BOS + the first k reference ids must continue
 *    with ids k.. of the reference (greedy decoding is deterministic);
 *  - qr_generate alone on the same prompt and parameters (greedy, seeded
 *    sampling, stop strings) for prompts that the reference does not cover.
 * Seven requests run at once on three slots with a small prefill chunk, so
 * prompts are prefilled in chunks beside running decodes and requests wait
 * for slots. Each consumer runs in its own thread; the streamed pieces must
 * add up to the result text.
 * Then: batching happens (steps that ran > 1 sequence; fewer steps than
 * tokens), bounded queue (QR_EBUSY), cancel mid-generation frees the slot for
 * the next request, drain with and without grace, destroy with requests in
 * flight, argument errors. The concurrent, queue/cancel and drain tests run
 * again over a tensor-parallel model (qr_model_load_tp, TP = 2). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "generate/scheduler.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

#define N_REF 60

static int32_t ref[N_REF];
static int topk_calls, topk_sched_calls; /* test_device_select's emulated device op */

static int read_ref(void)
{
    char *t = qr_test_slurp(FIXTURE("models/stories260K/greedy_from_bos_60.ref.txt"), NULL);
    if (!t)
        return -1;
    int n = 0;
    char *p = strchr(t, '[');
    while (p && n < N_REF && *p != ']') {
        p++;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ref[n++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p != ',')
            break;
    }
    free(t);
    return n;
}

/* ---- a consumer thread per request ---- */

typedef struct {
    qr_sched_req *r;
    char text[8192];
    size_t len;
    int n_text_events;
    int32_t last_n_tokens;
    bool tokens_monotone;
    int rc;
    const qr_gen_result *res; /* borrowed until release */
    int next_after_done;
    int cancel_after; /* > 0: cancel once this many TEXT events arrived */
} consumer;

static void *consume(void *arg)
{
    consumer *c = arg;
    c->tokens_monotone = true;
    for (;;) {
        qr_sched_event ev;
        if (qr_sched_next(c->r, -1, &ev)) {
            c->rc = -999;
            return NULL;
        }
        if (ev.kind == QR_SCHED_TEXT) {
            if (c->len + ev.len < sizeof c->text) {
                memcpy(c->text + c->len, ev.piece, ev.len);
                c->len += ev.len;
                c->text[c->len] = 0;
            }
            if (ev.n_tokens < c->last_n_tokens)
                c->tokens_monotone = false;
            c->last_n_tokens = ev.n_tokens;
            c->n_text_events++;
            if (c->cancel_after && c->n_text_events == c->cancel_after)
                qr_sched_cancel(c->r);
        } else if (ev.kind == QR_SCHED_DONE) {
            c->rc = ev.rc;
            c->res = ev.result;
            qr_sched_event again;
            c->next_after_done = qr_sched_next(c->r, 0, &again);
            return NULL;
        }
    }
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

typedef struct {
    const char *name;
    int32_t prompt[64];
    size_t n;
    qr_sample_params p;
    const int32_t *want; /* reference ids (NULL: compare with qr_generate) */
    size_t n_want;
} job;

static void test_concurrent(qr_model *m)
{
    const qr_tokenizer *tok = qr_model_tokenizer(m);
    static const char *stops[] = {"ball"};
    job J[7];
    memset(J, 0, sizeof J);
    for (int i = 0; i < 7; i++)
        qr_sample_params_default(&J[i].p);
    /* 0: BOS -> the whole reference */
    J[0].name = "bos";
    J[0].prompt[0] = 1;
    J[0].n = 1;
    J[0].p.max_tokens = N_REF;
    J[0].want = ref;
    J[0].n_want = N_REF;
    /* 1: BOS + ref[0..24] -> ref[25..59] (prompt prefilled in chunks) */
    J[1].name = "bos+25";
    J[1].prompt[0] = 1;
    memcpy(J[1].prompt + 1, ref, 25 * sizeof(int32_t));
    J[1].n = 26;
    J[1].p.max_tokens = N_REF - 25;
    J[1].want = ref + 25;
    J[1].n_want = N_REF - 25;
    /* 2: BOS + ref[0..9] -> ref[10..29] */
    J[2].name = "bos+10";
    J[2].prompt[0] = 1;
    memcpy(J[2].prompt + 1, ref, 10 * sizeof(int32_t));
    J[2].n = 11;
    J[2].p.max_tokens = 20;
    J[2].want = ref + 10;
    J[2].n_want = 20;
    /* 3, 4: other prompts (tokenized text), greedy, compared with qr_generate */
    const char *texts[2] = {"The cat sat on the mat and looked at the big red dog.", "Tom had a toy car."};
    for (int k = 0; k < 2; k++) {
        job *j = &J[3 + k];
        j->name = k ? "tom" : "cat";
        j->prompt[0] = 1;
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok && qr_tokenize(tok, texts[k], strlen(texts[k]), false, &ids, &n) == 0 && n < 60) {
            memcpy(j->prompt + 1, ids, n * sizeof *ids);
            j->n = n + 1;
        } else {
            j->prompt[1] = 403;
            j->n = 2;
        }
        free(ids);
        j->p.max_tokens = k ? 45 : 33;
    }
    /* 5: seeded sampling, compared with qr_generate with the same seed */
    J[5].name = "sampled";
    J[5].prompt[0] = 1;
    J[5].prompt[1] = 403;
    J[5].n = 2;
    J[5].p.temperature = 0.9f;
    J[5].p.top_k = 40;
    J[5].p.top_p = 0.95f;
    J[5].p.seed = 1234;
    J[5].p.max_tokens = 50;
    /* 6: a stop string spanning tokens (greedy from BOS reaches "ball") */
    J[6].name = "stop";
    J[6].prompt[0] = 1;
    J[6].n = 1;
    J[6].p.max_tokens = N_REF;
    if (tok) {
        J[6].p.stop = stops;
        J[6].p.n_stop = 1;
    }

    qr_sched_opts o;
    qr_sched_opts_default(&o);
    o.n_slots = 3;
    o.n_ctx = 256;
    o.max_queue = 16;
    o.prefill_chunk = 7;
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    consumer C[7];
    pthread_t th[7];
    memset(C, 0, sizeof C);
    int n_sub = 0;
    for (int i = 0; i < 7; i++) {
        int rc = qr_sched_submit(s, J[i].prompt, J[i].n, &J[i].p, &C[i].r);
        CHECK_OK(rc);
        if (rc)
            break;
        n_sub++;
    }
    for (int i = 0; i < n_sub; i++)
        pthread_create(&th[i], NULL, consume, &C[i]);
    for (int i = 0; i < n_sub; i++)
        pthread_join(th[i], NULL);
    topk_sched_calls = topk_calls; /* before the qr_generate references below */

    size_t total_gen = 0;
    for (int i = 0; i < n_sub; i++) {
        const qr_gen_result *res = C[i].res;
        CHECK_MSG(C[i].rc == 0, "%s: rc %d", J[i].name, C[i].rc);
        CHECK_INT(C[i].next_after_done, QR_EINVAL);
        CHECK(C[i].tokens_monotone);
        if (!res)
            continue;
        total_gen += res->n_ids;
        CHECK_INT(res->n_prompt, J[i].n);
        qr_gen_result g;
        memset(&g, 0, sizeof g);
        CHECK_OK(qr_generate(m, J[i].prompt, J[i].n, &J[i].p, NULL, NULL, &g));
        CHECK_MSG(same_ids(res->ids, res->n_ids, g.ids, g.n_ids), "%s: %zu ids vs %zu from qr_generate", J[i].name,
                  res->n_ids, g.n_ids);
        if (J[i].want)
            CHECK_MSG(same_ids(res->ids, res->n_ids, J[i].want, J[i].n_want), "%s: ids differ from the reference",
                      J[i].name);
        CHECK_MSG(g.text && res->text && strcmp(g.text, res->text) == 0, "%s: text '%s' vs '%s'", J[i].name,
                  res->text, g.text);
        CHECK_MSG(res->finish && g.finish && strcmp(res->finish, g.finish) == 0, "%s: finish %s vs %s", J[i].name,
                  res->finish, g.finish);
        CHECK_MSG(res->text && strcmp(C[i].text, res->text) == 0, "%s: streamed '%s' vs '%s'", J[i].name, C[i].text,
                  res->text);
        printf("%-8s prompt %2zu  generated %2zu  finish %-6s  events %2d  %.4f s to first token  \"%.40s...\"\n",
               J[i].name, J[i].n, res->n_ids, res->finish, C[i].n_text_events, res->prefill_s, res->text);
        qr_gen_result_free(&g);
    }
    /* the stop request ends at "ball" (in the reference text) and keeps fewer ids */
    if (tok && C[6].res) {
        CHECK(strcmp(C[6].res->finish, "stop") == 0);
        CHECK(C[6].res->n_ids < N_REF);
        CHECK(C[6].res->text && !strstr(C[6].res->text, "ball"));
    }
    /* the sampled request is not the greedy one (the seed matters) */
    if (C[5].res)
        CHECK(!same_ids(C[5].res->ids, C[5].res->n_ids < 10 ? C[5].res->n_ids : 10, ref + 1, 10));

    qr_sched_stats st;
    qr_sched_get_stats(s, &st);
    uint64_t multi = 0, steps = 0, seqs = 0;
    for (int i = 0; i < 64; i++) {
        steps += st.batch_hist[i];
        seqs += st.batch_hist[i] * (uint64_t)(i + 1);
        if (i > 0)
            multi += st.batch_hist[i];
    }
    size_t prompt_total = 0;
    for (int i = 0; i < n_sub; i++)
        prompt_total += J[i].n;
    printf("stats: %llu steps for %zu generated tokens, %llu steps ran >1 sequence, %.2f sequences/step, "
           "prompt %llu, gen %llu\n",
           (unsigned long long)st.steps, total_gen, (unsigned long long)multi, steps ? (double)seqs / steps : 0.0,
           (unsigned long long)st.prompt_tokens, (unsigned long long)st.gen_tokens);
    CHECK_INT(st.steps, steps);
    CHECK(multi > 0);
    CHECK(st.steps < total_gen);
    CHECK_INT(st.submitted, 7);
    CHECK_INT(st.finished, 7);
    CHECK_INT(st.cancelled + st.failed + st.refused_busy, 0);
    CHECK_INT(st.prompt_tokens, prompt_total);
    CHECK_INT(st.queued + st.running, 0);
    CHECK_INT(st.n_slots, 3);
    /* at most 3 sequences per step (three slots) */
    for (int i = 3; i < 64; i++)
        CHECK_INT(st.batch_hist[i], 0);
    for (int i = 0; i < n_sub; i++)
        qr_sched_release(C[i].r);
    qr_sched_destroy(s);
}

/* A request that runs long: BOS, greedy, up to the context (stories260K does
 * not produce eos early from BOS). */
static qr_sample_params long_params(void)
{
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.max_tokens = 100000;
    return p;
}

static void test_queue_and_cancel(qr_model *m)
{
    qr_sched_opts o;
    qr_sched_opts_default(&o);
    o.n_slots = 1;
    o.n_ctx = 400;
    o.max_queue = 2;
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    int32_t bos = 1;
    qr_sample_params lp = long_params(), sp;
    qr_sample_params_default(&sp);
    sp.max_tokens = 12;
    qr_sched_req *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    /* one slot + two waiting; a fourth is refused */
    CHECK_OK(qr_sched_submit(s, &bos, 1, &lp, &a));
    CHECK_OK(qr_sched_submit(s, &bos, 1, &sp, &b));
    CHECK_OK(qr_sched_submit(s, &bos, 1, &sp, &c));
    CHECK_INT(qr_sched_submit(s, &bos, 1, &sp, &d), QR_EBUSY);
    CHECK(d == NULL);
    qr_sched_stats st;
    qr_sched_get_stats(s, &st);
    CHECK_INT(st.refused_busy, 1);
    CHECK_INT(st.queued + st.running, 3);

    /* cancel a after a few pieces: it ends with QR_ECANCELED, b and c then run */
    consumer ca = {.r = a, .cancel_after = 3}, cb = {.r = b}, cc = {.r = c};
    consume(&ca);
    CHECK_INT(ca.rc, QR_ECANCELED);
    CHECK(ca.res && strcmp(ca.res->finish, "cancelled") == 0);
    CHECK(ca.res && ca.res->n_ids >= 3 && ca.res->n_ids < 399);
    CHECK(ca.res && same_ids(ca.res->ids, ca.res->n_ids < N_REF ? ca.res->n_ids : N_REF, ref,
                             ca.res->n_ids < N_REF ? ca.res->n_ids : N_REF));
    printf("cancelled after %d text events: %zu tokens generated\n", ca.n_text_events, ca.res ? ca.res->n_ids : 0);
    consume(&cb);
    consume(&cc);
    CHECK_INT(cb.rc, 0);
    CHECK_INT(cc.rc, 0);
    CHECK(cb.res && same_ids(cb.res->ids, cb.res->n_ids, ref, 12));
    CHECK(cc.res && same_ids(cc.res->ids, cc.res->n_ids, ref, 12));
    qr_sched_get_stats(s, &st);
    CHECK_INT(st.cancelled, 1);
    CHECK_INT(st.finished, 2);
    CHECK_INT(st.queued + st.running, 0);
    qr_sched_release(a);
    qr_sched_release(b);
    qr_sched_release(c);

    /* release without reading (a client gone before its first event) frees
     * the slot too: the next request completes */
    CHECK_OK(qr_sched_submit(s, &bos, 1, &lp, &a));
    qr_sched_release(a);
    CHECK_OK(qr_sched_submit(s, &bos, 1, &sp, &b));
    consumer cb2 = {.r = b};
    consume(&cb2);
    CHECK_INT(cb2.rc, 0);
    CHECK(cb2.res && same_ids(cb2.res->ids, cb2.res->n_ids, ref, 12));
    qr_sched_release(b);
    qr_sched_get_stats(s, &st);
    CHECK_INT(st.cancelled, 2);

    /* a TIMEOUT event when nothing arrives in time: a waits behind a long one */
    CHECK_OK(qr_sched_submit(s, &bos, 1, &lp, &a));
    CHECK_OK(qr_sched_submit(s, &bos, 1, &sp, &b));
    qr_sched_event ev;
    CHECK_OK(qr_sched_next(b, 0, &ev));
    CHECK_INT(ev.kind, QR_SCHED_TIMEOUT);
    qr_sched_cancel(b);
    qr_sched_cancel(b); /* twice is fine */
    consumer cb3 = {.r = b};
    consume(&cb3);
    CHECK_INT(cb3.rc, QR_ECANCELED);
    qr_sched_cancel(b); /* after DONE is fine */
    qr_sched_release(b);
    qr_sched_release(a);
    qr_sched_destroy(s);
}

static void test_drain_destroy(qr_model *m)
{
    qr_sched_opts o;
    qr_sched_opts_default(&o);
    o.n_slots = 2;
    o.n_ctx = 400;
    o.max_queue = 8;
    int32_t bos = 1;
    qr_sample_params lp = long_params(), sp;
    qr_sample_params_default(&sp);
    sp.max_tokens = 10;

    /* drain with enough grace: short requests finish, nothing cancelled */
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    qr_sched_req *r[4] = {0};
    for (int i = 0; i < 3; i++)
        CHECK_OK(qr_sched_submit(s, &bos, 1, &sp, &r[i]));
    CHECK_INT(qr_sched_drain(s, 20000), 0);
    CHECK_INT(qr_sched_submit(s, &bos, 1, &sp, &r[3]), QR_ECANCELED);
    for (int i = 0; i < 3; i++) {
        consumer c = {.r = r[i]};
        consume(&c);
        CHECK_INT(c.rc, 0);
        CHECK(c.res && same_ids(c.res->ids, c.res->n_ids, ref, 10));
        qr_sched_release(r[i]);
    }
    qr_sched_destroy(s);

    /* drain with no grace: two long running + one queued are cancelled */
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        CHECK_OK(qr_sched_submit(s, &bos, 1, &lp, &r[i]));
    CHECK_INT(qr_sched_drain(s, 0), 3);
    for (int i = 0; i < 3; i++) {
        consumer c = {.r = r[i]};
        consume(&c);
        CHECK_INT(c.rc, QR_ECANCELED);
        CHECK(c.res && strcmp(c.res->finish, "cancelled") == 0);
        qr_sched_release(r[i]);
    }
    qr_sched_stats st;
    qr_sched_get_stats(s, &st);
    CHECK_INT(st.cancelled, 3);
    qr_sched_destroy(s);

    /* destroy with requests running, queued, released and held: handles stay
     * valid after destroy and get DONE with QR_ECANCELED */
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    for (int i = 0; i < 4; i++)
        CHECK_OK(qr_sched_submit(s, &bos, 1, &lp, &r[i]));
    qr_sched_release(r[3]);
    qr_sched_event ev;
    CHECK_OK(qr_sched_next(r[0], -1, &ev)); /* r[0] is running */
    qr_sched_destroy(s);
    for (int i = 0; i < 3; i++) {
        consumer c = {.r = r[i]};
        consume(&c);
        CHECK_INT(c.rc, QR_ECANCELED);
        CHECK_INT(c.next_after_done, QR_EINVAL);
        qr_sched_release(r[i]);
    }
    qr_sched_destroy(NULL);
    qr_sched_release(NULL);
}

/* ---- many client threads at once ----
 * Eight clients submit 48 requests in all (BOS + the first k reference ids,
 * greedy, so every completed request must continue with reference ids k..)
 * on four slots with a queue of four: some submits meet QR_EBUSY and retry;
 * clients read everything, cancel after two events, release without reading
 * or poll with short timeouts. Then destroy while clients still wait in
 * qr_sched_next on long requests: every one gets DONE. */
typedef struct {
    qr_sched *s;
    int tid;
    int busy, completed, cancelled, bad;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    for (int it = 0; it < 6; it++) {
        int k = (c->tid * 7 + it * 5) % 30;
        int32_t prompt[32] = {1};
        memcpy(prompt + 1, ref, (size_t)k * sizeof *prompt);
        qr_sample_params p;
        qr_sample_params_default(&p);
        p.max_tokens = 1 + (c->tid * 3 + it * 11) % 30;
        qr_sched_req *r = NULL;
        int rc;
        while ((rc = qr_sched_submit(c->s, prompt, (size_t)k + 1, &p, &r)) == QR_EBUSY) {
            c->busy++;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (rc) {
            c->bad++;
            continue;
        }
        int mode = (c->tid + it) % 4;
        if (mode == 2) { /* gone before reading anything */
            qr_sched_release(r);
            continue;
        }
        int events = 0, done = 0;
        while (!done) {
            qr_sched_event ev;
            if (qr_sched_next(r, mode == 3 ? 1 : -1, &ev)) {
                c->bad++;
                break;
            }
            if (ev.kind == QR_SCHED_TEXT && ++events == 2 && mode == 1)
                qr_sched_cancel(r);
            if (ev.kind == QR_SCHED_DONE) {
                done = 1;
                if (ev.rc == 0) {
                    c->completed++;
                    if (!same_ids(ev.result->ids, ev.result->n_ids, ref + k, (size_t)p.max_tokens))
                        c->bad++;
                } else if (ev.rc == QR_ECANCELED && mode == 1) {
                    c->cancelled++;
                } else {
                    c->bad++;
                }
            }
        }
        qr_sched_release(r);
    }
    return NULL;
}

typedef struct {
    qr_sched_req *r;
    int rc;
} waiter;

static void *wait_done(void *arg)
{
    waiter *w = arg;
    w->rc = 1;
    for (;;) {
        qr_sched_event ev;
        if (qr_sched_next(w->r, -1, &ev))
            return NULL;
        if (ev.kind == QR_SCHED_DONE) {
            w->rc = ev.rc;
            return NULL;
        }
    }
}

static void test_stress(qr_model *m)
{
    qr_sched_opts o;
    qr_sched_opts_default(&o);
    o.n_slots = 4;
    o.n_ctx = 128;
    o.max_queue = 4;
    o.prefill_chunk = 5;
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    client C[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        C[i] = (client){.s = s, .tid = i};
        pthread_create(&th[i], NULL, client_main, &C[i]);
    }
    int busy = 0, completed = 0, cancelled = 0, bad = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        busy += C[i].busy;
        completed += C[i].completed;
        cancelled += C[i].cancelled;
        bad += C[i].bad;
    }
    qr_sched_stats st;
    qr_sched_get_stats(s, &st);
    printf("stress: 48 requests from 8 threads: %d completed, %d cancelled by their client, %d busy retries; "
           "stats: finished %llu cancelled %llu refused %llu, %llu steps\n",
           completed, cancelled, busy, (unsigned long long)st.finished, (unsigned long long)st.cancelled,
           (unsigned long long)st.refused_busy, (unsigned long long)st.steps);
    CHECK_INT(bad, 0);
    CHECK_INT(st.submitted, 48);
    CHECK_INT(st.finished + st.cancelled + st.failed, 48);
    CHECK_INT(st.failed, 0);
    CHECK_INT(st.refused_busy, busy);
    CHECK(completed >= 24); /* modes 0 and 3 always complete */
    CHECK((int)st.finished >= completed);
    CHECK_INT(st.queued + st.running, 0);

    /* destroy while six consumers wait on long requests (four running, two queued) */
    qr_sample_params lp = long_params();
    int32_t bos = 1;
    waiter W[6];
    pthread_t wt[6];
    int n = 0;
    for (int i = 0; i < 6; i++) {
        W[i] = (waiter){.rc = 1};
        if (qr_sched_submit(s, &bos, 1, &lp, &W[i].r) == 0)
            pthread_create(&wt[n++], NULL, wait_done, &W[i]);
    }
    CHECK_INT(n, 6);
    qr_sched_destroy(s);
    for (int i = 0; i < n; i++) {
        pthread_join(wt[i], NULL);
        CHECK_INT(W[i].rc, QR_ECANCELED);
        qr_sched_release(W[i].r);
    }
}

static void test_errors(qr_model *m)
{
    qr_sched_opts o;
    qr_sched_opts_default(&o);
    CHECK_INT(o.n_slots, 8);
    CHECK_INT(o.max_queue, 64);
    CHECK_INT(o.prefill_chunk, 512);
    o.n_slots = 2;
    o.n_ctx = 16;
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (!s)
        return;
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.max_tokens = 100; /* capped to the context: finish "length" */
    int32_t ids[16] = {1, 403, 407};
    qr_sched_req *r = NULL;
    CHECK_INT(qr_sched_submit(s, ids, 0, &p, &r), QR_EINVAL);
    int32_t bad[2] = {1, qr_model_cfg(m)->vocab_size};
    CHECK_INT(qr_sched_submit(s, bad, 2, &p, &r), QR_EINVAL);
    CHECK_INT(qr_sched_submit(s, ids, 16, &p, &r), QR_ELIMIT);
    CHECK(strstr(qr_last_error(), "16") != NULL);
    CHECK(r == NULL);
    CHECK_OK(qr_sched_submit(s, ids, 1, &p, &r));
    consumer c = {.r = r};
    consume(&c);
    CHECK_INT(c.rc, 0);
    CHECK(c.res && c.res->n_ids == 15 && strcmp(c.res->finish, "length") == 0);
    CHECK(c.res && same_ids(c.res->ids, c.res->n_ids, ref, 15));
    qr_sched_release(r);
    qr_sched_destroy(s);
    /* max_queue 0: as many requests as slots, none waiting */
    o.max_queue = 0;
    o.n_ctx = 400;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (s) {
        qr_sample_params lp = long_params();
        qr_sched_req *q[3] = {0};
        CHECK_OK(qr_sched_submit(s, ids, 1, &lp, &q[0]));
        CHECK_OK(qr_sched_submit(s, ids, 1, &lp, &q[1]));
        CHECK_INT(qr_sched_submit(s, ids, 1, &lp, &q[2]), QR_EBUSY);
        qr_sched_opts got;
        qr_sched_get_opts(s, &got);
        CHECK_INT(got.n_ctx, 400);
        CHECK_INT(got.max_queue, 0);
        qr_sched_release(q[0]);
        qr_sched_release(q[1]);
        qr_sched_destroy(s);
    }
    /* n_ctx 0 resolves to min(max positions, 4096) */
    o.n_ctx = 0;
    CHECK_OK(qr_sched_create(m, &o, &s));
    if (s) {
        qr_sched_opts got;
        qr_sched_get_opts(s, &got);
        int mp = qr_model_cfg(m)->max_pos;
        CHECK_INT(got.n_ctx, mp < 4096 ? mp : 4096);
        qr_sched_destroy(s);
    }
    o.n_ctx = qr_model_cfg(m)->max_pos + 1;
    CHECK_INT(qr_sched_create(m, &o, &s), QR_EINVAL);
    o.n_ctx = 0; /* default: min(max positions, 4096) */
    o.n_slots = 0;
    CHECK_INT(qr_sched_create(m, &o, &s), QR_EINVAL);
}

/* ---- device-side selection, emulated on the CPU ----
 * A backend with the optional topk op (CUDA) lets all-greedy steps return
 * arg-max ids instead of logits rows. The CPU backend has none; this test
 * gives it one (logits downloaded, best ids picked on the host, lowest id on
 * ties) so the scheduler's topk path runs here, and the concurrent test must
 * give the same ids (reference included). */
static qr_backend_ops topk_ops;

static int host_topk(qr_backend *be, const qr_tensor *logits, int64_t n, int k, int32_t *ids, float *vals)
{
    int64_t V = logits->cols;
    float *row = malloc((size_t)V * sizeof *row);
    if (!row)
        return QR_ENOMEM;
    topk_calls++;
    for (int64_t i = 0; i < n; i++) {
        int rc = be->ops->download(be, logits, i, row, 1);
        if (rc) {
            free(row);
            return rc;
        }
        for (int j = 0; j < k; j++) {
            int64_t b = -1;
            for (int64_t v = 0; v < V; v++) {
                bool taken = false;
                for (int t = 0; t < j; t++)
                    taken |= ids[i * k + t] == v;
                if (!taken && (b < 0 || row[v] > row[b]))
                    b = v;
            }
            ids[i * k + j] = (int32_t)b;
            if (vals)
                vals[i * k + j] = row[b];
        }
    }
    free(row);
    return QR_OK;
}

static void test_device_select(qr_backend *be, qr_model *m)
{
    const qr_backend_ops *cpu = be->ops;
    topk_ops = *cpu;
    topk_ops.topk = host_topk;
    be->ops = &topk_ops;
    topk_calls = 0;
    test_concurrent(m);
    printf("device-select emulation: %d of the scheduler's steps selected on the device\n", topk_sched_calls);
    CHECK(topk_sched_calls > 0);
    be->ops = cpu;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK_INT(read_ref(), N_REF);
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    if (be)
        CHECK_OK(qr_model_load(FIXTURE("models/stories260K/stories260K.gguf"), &mo, be, &m));
    if (m) {
        test_concurrent(m);
        test_queue_and_cancel(m);
        test_drain_destroy(m);
        test_errors(m);
        test_stress(m);
        test_device_select(be, m);
    }
    qr_model_free(m);
    qr_backend_destroy(be);

    /* The same over a tensor-parallel model (two in-process ranks, one
     * thread each per step): one scheduler step drives both ranks. */
    qr_backend *b2[2] = {NULL, NULL};
    qr_model *m2 = NULL;
    CHECK_OK(qr_backend_cpu_create(1, &b2[0]));
    CHECK_OK(qr_backend_cpu_create(1, &b2[1]));
    if (b2[0] && b2[1])
        CHECK_OK(qr_model_load_tp(FIXTURE("models/stories260K/stories260K.gguf"), &mo, b2, 2, &m2));
    if (m2) {
        CHECK_INT(qr_model_tp(m2), 2);
        printf("TP=2:\n");
        test_concurrent(m2);
        test_queue_and_cancel(m2);
        test_drain_destroy(m2);
    }
    qr_model_free(m2);
    qr_backend_destroy(b2[0]);
    qr_backend_destroy(b2[1]);
    return qr_test_done();
}
