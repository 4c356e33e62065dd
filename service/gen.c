/* Generation routes: /v1/chat/completions, /v1/completions (OpenAI shapes,
 * streaming included) and /v1/ask with an LLM. Every generation goes through
 * the scheduler (generate/scheduler.h): submit the prompt ids, then pull
 * events. A full queue is 503 with Retry-After; a prompt that leaves no room
 * in the context is 400 (code context_length_exceeded).
 *
 * Streaming (text/event-stream): the response body comes from an MHD
 * content-reader callback that blocks on qr_sched_next in 100 ms steps and
 * between steps checks whether the client closed its socket; if so (or when
 * MHD fails to write) the generation is cancelled and its slot freed. That
 * core (qs_stream, qs_gen_submit/wait, qs_chat_prompt) is shared with the
 * Ollama routes (ollama.c), which frame the same events as NDJSON. Frames
 * are "data: JSON\n\n", ending with "data: [DONE]\n\n":
 *   chat        chat.completion.chunk; the first delta carries the role, the
 *               last chunk has finish_reason (and, with
 *               stream_options.include_usage, one more chunk with usage)
 *   completions text_completion chunks, the last with finish_reason
 *   ask         {"type": "token", "text"} pieces of the cleaned answer
 *               (citations naming no source removed while streaming), then
 *               {"type": "answer", ...qr_answer_to_json...}
 * An error after the stream started is sent as data: {"error": {...}}. A
 * request still waiting for a slot gets an SSE comment (": waiting") every
 * 15 s so that proxies do not close the quiet connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "generate/answer.h"
#include "service/internal.h"

typedef enum { G_CHAT = 0, G_COMPL, G_ASK } gen_kind;

typedef struct qs_gen {
    qs_stream st; /* first member: the stream's destroy casts back */
    qr_server *s;
    struct MHD_Connection *conn;
    gen_kind kind;
    bool stream, include_usage;
    qr_sched_req *r;
    char id[64];
    long long created;
    char **stops;
    int n_stops;
    /* ask */
    char *question;
    int k;
    qr_results *res;
    qr_source *src;
    qr_answer_job *job; /* prompt, then citation cleaning of the pieces (generate/answer.h) */
    bool role_sent;
} qs_gen;

static void gen_free(qs_gen *g)
{
    if (!g)
        return;
    qr_sched_release(g->r);
    for (int i = 0; i < g->n_stops; i++)
        free(g->stops[i]);
    free(g->stops);
    free(g->question);
    if (g->res) {
        qr_results_free(g->res);
        free(g->res);
    }
    free(g->src);
    qr_answer_job_free(g->job);
    free(g->st.out);
    free(g);
}

/* ---------------------------------------------------------------- streams (shared with ollama.c) */

int qs_stream_add(qs_stream *st, const char *a, size_t n)
{
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < st->len + n + 1)
            cap *= 2;
        char *b = realloc(st->out, cap);
        if (!b)
            return -1;
        st->out = b;
        st->cap = cap;
    }
    memcpy(st->out + st->len, a, n);
    st->len += n;
    return 0;
}

int qs_stream_next(qs_stream *st, qr_sched_req *r, qr_sched_event *ev)
{
    if (qr_sched_next(r, 100, ev))
        return -1;
    /* MHD notices a closed socket when a write fails; while the request
     * waits in the queue nothing is written, so look every 100 ms */
    double now = qs_now();
    if (ev->kind != QR_SCHED_DONE && now >= st->next_check) {
        st->next_check = now + 0.1;
        if (qs_client_gone(st->conn)) {
            qr_sched_cancel(r); /* counted when MHD frees the stream */
            QR_DEBUG("serve: a streaming client went away; generation cancelled");
            return -1;
        }
    }
    if (ev->kind != QR_SCHED_TIMEOUT)
        st->last_out = now;
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    qs_stream *st = cls;
    for (;;) {
        if (st->pos < st->len) {
            size_t n = st->len - st->pos < max ? st->len - st->pos : max;
            memcpy(buf, st->out + st->pos, n);
            st->pos += n;
            return (ssize_t)n;
        }
        st->pos = st->len = 0;
        if (st->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->pump(st))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls)
{
    qs_stream *st = cls;
    qr_server *s = st->s;
    if (!st->finished) /* MHD gave up on the stream: the client went away */
        qs_metrics_add(&s->m, &s->m.client_cancels, 1);
    st->destroy(st); /* releases the request: cancels it if it still runs */
    atomic_fetch_sub(&s->inflight_all, 1);
}

enum MHD_Result qs_stream_start(qs_req *q, qs_stream *st, const char *ctype)
{
    st->s = q->s;
    st->conn = q->conn;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        st->destroy(st);
        return MHD_NO;
    }
    atomic_fetch_add(&q->s->inflight_all, 1); /* the stream outlives the request handler */
    st->last_out = qs_now();
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return qs_queue(q, 200, r);
}

static int out_add(qs_gen *g, const char *a, size_t n)
{
    return qs_stream_add(&g->st, a, n);
}

/* "data: <json>\n\n" (steals j). */
static int out_event(qs_gen *g, json_t *j)
{
    char *t = j ? qs_dump(j) : NULL;
    json_decref(j);
    if (!t)
        return -1;
    int rc = out_add(g, "data: ", 6) || out_add(g, t, strlen(t)) || out_add(g, "\n\n", 2);
    free(t);
    return rc;
}

static const char *model_name(const qr_server *s)
{
    return s->llm_name ? s->llm_name : "llm";
}

static const char *finish_reason(const qr_gen_result *r)
{
    return r && r->finish && !strcmp(r->finish, "length") ? "length" : "stop";
}

static json_t *usage_json(const qr_gen_result *r)
{
    json_int_t np = r ? r->n_prompt : 0, nc = r ? (json_int_t)r->n_ids : 0;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", np, "completion_tokens", nc, "total_tokens", np + nc);
}

/* One streamed chunk in the route's shape; piece NULL = the role chunk (chat). */
static json_t *chunk_json(qs_gen *g, const char *piece, size_t len, const char *finish)
{
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    if (g->kind == G_CHAT) {
        json_t *delta = json_object();
        if (!piece && !finish) {
            json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_string(""));
        } else if (piece) {
            json_t *c = json_stringn(piece, len);
            if (!c) {
                json_decref(delta);
                json_decref(choice);
                return NULL;
            }
            json_object_set_new(delta, "content", c);
        }
        json_object_set_new(choice, "delta", delta);
    } else {
        json_t *c = json_stringn(piece ? piece : "", piece ? len : 0);
        if (!c) {
            json_decref(choice);
            return NULL;
        }
        json_object_set_new(choice, "text", c);
    }
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", g->id, "object",
                     g->kind == G_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)g->created, "model", model_name(g->s), "choices", choice);
}

void qs_gen_count(qr_server *s, const qr_gen_result *r)
{
    if (!r)
        return;
    qs_metrics *m = &s->m;
    pthread_mutex_lock(&m->mu);
    m->tokens_in += (uint64_t)(r->n_prompt > 0 ? r->n_prompt : 0);
    m->tokens_out += r->n_ids;
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- ask answers */

/* The cited answer once the generation is done (qr_answer_job_finish),
 * as qr_answer_to_json prints it plus store, k and model. *tail (may be
 * NULL) gets the cleaned text still held back (borrowed from the job). */
static json_t *ask_answer_json(qs_gen *g, const qr_gen_result *r, const char **tail, size_t *tail_len)
{
    qr_answer a;
    memset(&a, 0, sizeof a);
    const char *t = NULL;
    size_t tl = 0;
    json_t *j = NULL;
    if (qr_answer_job_finish(g->job, r, &t, &tl, &a) == 0 && qr_answer_to_json(&a, g->question, g->src, &j) == 0) {
        json_object_set_new(j, "store", json_string(g->s->store_dir));
        json_object_set_new(j, "k", json_integer(g->k));
        json_object_set_new(j, "model", json_string(model_name(g->s)));
    }
    qr_answer_free(&a);
    if (tail) {
        *tail = t;
        *tail_len = tl;
    }
    return j;
}

/* ---------------------------------------------------------------- SSE */

static json_t *error_json(const char *type, const char *code, const char *msg)
{
    return json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type", type, "param", "code", code);
}

/* Waits for the next event and turns it into frames. Returns -1 to end the
 * stream with an error (client gone, out of memory). */
static int pump(qs_stream *st)
{
    qs_gen *g = (qs_gen *)st;
    if (g->kind == G_CHAT && !g->role_sent) {
        g->role_sent = true;
        return out_event(g, chunk_json(g, NULL, 0, NULL));
    }
    qr_sched_event ev;
    if (qs_stream_next(st, g->r, &ev))
        return -1;
    if (ev.kind == QR_SCHED_TIMEOUT) {
        /* a request waiting long for a slot: an SSE comment now and then keeps
         * proxies from closing the quiet connection (clients ignore it) */
        double now = qs_now();
        if (now - st->last_out >= 15.0) {
            st->last_out = now;
            return out_add(g, ": waiting\n\n", 11);
        }
        return 0;
    }
    if (ev.kind == QR_SCHED_TEXT) {
        if (!ev.len)
            return 0;
        if (g->kind == G_ASK) {
            const char *p;
            size_t n;
            if (qr_answer_job_push(g->job, ev.piece, ev.len, &p, &n))
                return -1;
            if (!n)
                return 0;
            json_t *t = json_stringn(p, n);
            return t ? out_event(g, json_pack("{s:s, s:o}", "type", "token", "text", t)) : 0;
        }
        json_t *c = chunk_json(g, ev.piece, ev.len, NULL);
        return c ? out_event(g, c) : 0;
    }
    /* DONE */
    qs_gen_count(g->s, ev.result);
    int bad = 0;
    if (ev.rc == 0) {
        if (g->kind == G_ASK) {
            const char *p = NULL;
            size_t n = 0;
            json_t *a = ask_answer_json(g, ev.result, &p, &n);
            if (a && n) {
                json_t *t = json_stringn(p, n);
                if (t)
                    bad |= out_event(g, json_pack("{s:s, s:o}", "type", "token", "text", t));
            }
            if (a) {
                json_object_set_new(a, "type", json_string("answer"));
                bad |= out_event(g, a);
            } else {
                bad |= out_event(g, error_json("server_error", "internal", "building the answer failed"));
            }
        } else {
            bad |= out_event(g, chunk_json(g, NULL, 0, finish_reason(ev.result)));
            if (g->include_usage) {
                json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
                                      g->kind == G_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                                      (json_int_t)g->created, "model", model_name(g->s), "choices", "usage",
                                      usage_json(ev.result));
                bad |= out_event(g, u);
            }
        }
    } else if (ev.rc == QR_ECANCELED) {
        bad |= out_event(g, error_json("overloaded_error", "cancelled",
                                       atomic_load(&g->s->state) == QS_STATE_DRAINING
                                           ? "the server is shutting down; the generation was cancelled"
                                           : "the generation was cancelled"));
    } else {
        char msg[600];
        snprintf(msg, sizeof msg, "generation failed: %s", ev.msg ? ev.msg : qr_strerror(ev.rc));
        bad |= out_event(g, error_json("server_error", "internal", msg));
    }
    bad |= out_add(g, "data: [DONE]\n\n", 14);
    st->finished = true;
    return bad ? -1 : 0;
}

static void destroy(qs_stream *st)
{
    gen_free((qs_gen *)st);
}

/* ---------------------------------------------------------------- submit and wait */

int qs_gen_submit(qr_server *s, const int32_t *ids, size_t n, const qr_sample_params *p, const char *param,
                  qr_sched_req **out, qs_err *e)
{
    int rc = qr_sched_submit(s->sched, ids, n, p, out);
    if (rc == 0)
        return 0;
    *out = NULL;
    switch (rc) {
    case QR_EBUSY:
        qs_metrics_add(&s->m, &s->m.refused_busy, 1);
        return qs_fail(e, 503, "queue_full", NULL, "the generation queue is full; retry shortly");
    case QR_ECANCELED: return qs_fail(e, 503, "draining", NULL, "the server is shutting down");
    case QR_ELIMIT: return qs_fail(e, 400, "context_length_exceeded", param, "%s", qr_last_error());
    case QR_EINVAL: return qs_fail(e, 400, "invalid", NULL, "%s", qr_last_error());
    default: return qs_fail(e, 500, "internal", NULL, "submit: %s", qr_last_error());
    }
}

static int submit(qs_gen *g, const int32_t *ids, size_t n, const qr_sample_params *p, qs_err *e)
{
    qr_sample_params sp = *p;
    sp.stop = (const char *const *)g->stops;
    sp.n_stop = g->n_stops;
    return qs_gen_submit(g->s, ids, n, &sp, g->kind == G_CHAT ? "messages" : "prompt", &g->r, e);
}

int qs_gen_wait(qr_server *s, struct MHD_Connection *conn, qr_sched_req *r, qr_sched_event *ev)
{
    bool gone = false;
    double next_check = qs_now() + 0.1;
    for (;;) {
        if (qr_sched_next(r, 100, ev))
            return -1;
        if (ev->kind == QR_SCHED_DONE)
            return gone ? 1 : 0;
        /* text keeps coming while the model runs: look at the socket every 100 ms whatever arrives */
        if (!gone && qs_now() >= next_check) {
            next_check = qs_now() + 0.1;
            if (qs_client_gone(conn)) {
                gone = true;
                qr_sched_cancel(r);
                qs_metrics_add(&s->m, &s->m.client_cancels, 1);
            }
        }
    }
}

static int copy_stops(qs_gen *g, const qr_sample_params *p)
{
    if (p->n_stop <= 0)
        return 0;
    if (!(g->stops = calloc((size_t)p->n_stop, sizeof *g->stops)))
        return -1;
    for (; g->n_stops < p->n_stop; g->n_stops++)
        if (!(g->stops[g->n_stops] = strdup(p->stop[g->n_stops])))
            return -1;
    return 0;
}

static qs_gen *gen_new(qs_req *q, gen_kind kind, const qr_sample_params *p)
{
    qs_gen *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->s = q->s;
    g->conn = q->conn;
    g->kind = kind;
    g->created = (long long)time(NULL);
    qs_make_id(q->s, kind == G_CHAT ? "chatcmpl-" : kind == G_COMPL ? "cmpl-" : "ask-", g->id, sizeof g->id);
    if (copy_stops(g, p)) {
        gen_free(g);
        return NULL;
    }
    return g;
}

/* Runs a generation to the end (non-streaming) or starts its stream. */
static enum MHD_Result run(qs_req *q, qs_gen *g, const int32_t *ids, size_t n, const qr_sample_params *p)
{
    qs_err e = {0};
    if (submit(g, ids, n, p, &e)) {
        gen_free(g);
        return qs_send_err(q, &e);
    }
    if (g->stream) {
        g->st.pump = pump;
        g->st.destroy = destroy;
        return qs_stream_start(q, &g->st, "text/event-stream");
    }
    qr_sched_event ev;
    int w = qs_gen_wait(g->s, g->conn, g->r, &ev);
    if (w != 0) {
        gen_free(g);
        return MHD_NO; /* the client is gone: close the connection */
    }
    qs_gen_count(g->s, ev.result);
    if (ev.rc == QR_ECANCELED) {
        gen_free(g);
        qs_fail(&e, 503, "draining", NULL, "the server is shutting down; the generation was cancelled");
        return qs_send_err(q, &e);
    }
    if (ev.rc) {
        qs_fail(&e, 500, "internal", NULL, "generation failed: %s", ev.msg ? ev.msg : qr_strerror(ev.rc));
        gen_free(g);
        return qs_send_err(q, &e);
    }
    const qr_gen_result *r = ev.result;
    json_t *j = NULL;
    if (g->kind == G_ASK) {
        const char *p;
        size_t n;
        if (qr_answer_job_push(g->job, r->text ? r->text : "", r->text ? strlen(r->text) : 0, &p, &n) == 0)
            j = ask_answer_json(g, r, NULL, NULL);
    } else {
        json_t *text = json_string(r->text ? r->text : "");
        if (!text)
            text = json_string(""); /* cannot happen: the text stream keeps UTF-8 whole */
        json_t *choice;
        if (g->kind == G_CHAT)
            choice = json_pack("{s:I, s:{s:s, s:o}, s:n, s:s}", "index", (json_int_t)0, "message", "role",
                               "assistant", "content", text, "logprobs", "finish_reason", finish_reason(r));
        else
            choice = json_pack("{s:o, s:I, s:n, s:s}", "text", text, "index", (json_int_t)0, "logprobs",
                               "finish_reason", finish_reason(r));
        j = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", g->id, "object",
                      g->kind == G_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                      "model", model_name(g->s), "choices", choice, "usage", usage_json(r));
    }
    gen_free(g);
    if (!j) {
        qs_fail(&e, 500, "internal", NULL, "building the response failed");
        return qs_send_err(q, &e);
    }
    return qs_send_json(q, 200, j);
}

/* ---------------------------------------------------------------- prompts */

int qs_tokenize_plain(qr_server *s, const char *text, size_t len, bool add_special, int32_t **ids, size_t *n,
                          qs_err *e, const char *param)
{
    const qr_tokenizer *tok = qr_model_tokenizer(s->o.llm);
    if (!tok)
        return qs_fail(e, 422, "no_tokenizer", NULL, "the loaded model has no tokenizer");
    if (qr_tokenize(tok, text, len, add_special, ids, n))
        return qs_fail(e, 400, "invalid", param, "%s: %s", param, qr_last_error());
    if (*n == 0) { /* an empty prompt starts from BOS */
        int32_t bos = qr_model_cfg(s->o.llm)->bos_id;
        if (bos < 0)
            bos = qr_tokenizer_bos(tok);
        free(*ids);
        *ids = NULL;
        if (bos < 0)
            return qs_fail(e, 400, "empty", param, "%s: empty, and the model has no BOS token to start from", param);
        if (!(*ids = malloc(sizeof **ids)))
            return qs_fail(e, 500, "internal", NULL, "out of memory");
        (*ids)[0] = bos;
        *n = 1;
    }
    return 0;
}

static bool valid_role(const char *r)
{
    static const char *roles[] = {"system", "user", "assistant", "tool", "developer"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i]))
            return true;
    return false;
}

/* messages → prompt ids: the model's chat template (add_generation_prompt),
 * or without one the contents joined by newlines after BOS. */
int qs_chat_prompt(qr_server *s, const json_t *msgs, int32_t **ids, size_t *n, qs_err *e)
{
    if (!msgs || json_is_null(msgs))
        return qs_fail(e, 400, "missing_field", "messages", "messages: required (an array of {role, content})");
    if (!json_is_array(msgs))
        return qs_fail(e, 400, "type", "messages", "messages: must be an array of {role, content}");
    size_t nm = json_array_size(msgs);
    if (nm == 0 || nm > (size_t)s->o.lim.max_messages)
        return qs_fail(e, 400, "limit", "messages", "messages: must hold 1..%d messages (got %zu)",
                       s->o.lim.max_messages, nm);
    qr_chat_message *m = calloc(nm, sizeof *m);
    char **owned = calloc(nm, sizeof *owned);
    int rc = 0;
    if (!m || !owned) {
        rc = qs_fail(e, 500, "internal", NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nm && !rc; i++) {
        const json_t *x = json_array_get(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(x)) {
            rc = qs_fail(e, 400, "type", param, "%s: must be an object {role, content}", param);
            break;
        }
        const json_t *role = json_object_get(x, "role"), *content = json_object_get(x, "content");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role) || !valid_role(json_string_value(role))) {
            rc = qs_fail(e, 400, "invalid", param, "%s: must be system, user, assistant, tool or developer", param);
            break;
        }
        m[i].role = json_string_value(role);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (json_is_string(content)) {
            m[i].content = json_string_value(content);
        } else if (json_is_array(content)) { /* content parts: the text parts joined */
            size_t total = 0;
            for (size_t k = 0; k < json_array_size(content); k++) {
                const json_t *part = json_array_get(content, k);
                const json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text)) {
                    rc = qs_fail(e, 400, "unsupported", param, "%s[%zu]: only {\"type\": \"text\", \"text\": ...} "
                                 "parts are supported", param, k);
                    break;
                }
                total += json_string_length(text);
            }
            if (rc)
                break;
            if (!(owned[i] = malloc(total + 1))) {
                rc = qs_fail(e, 500, "internal", NULL, "out of memory");
                break;
            }
            size_t off = 0;
            for (size_t k = 0; k < json_array_size(content); k++) {
                const json_t *text = json_object_get(json_array_get(content, k), "text");
                memcpy(owned[i] + off, json_string_value(text), json_string_length(text));
                off += json_string_length(text);
            }
            owned[i][off] = '\0';
            m[i].content = owned[i];
        } else if (!content || json_is_null(content)) {
            m[i].content = NULL;
        } else {
            rc = qs_fail(e, 400, "type", param, "%s: must be a string or an array of text parts", param);
        }
    }
    if (rc)
        goto out;
    if (s->o.tmpl) {
        qr_chat_opts co;
        memset(&co, 0, sizeof co);
        co.add_generation_prompt = 1;
        co.system_fallback = 1;
        char *text = NULL;
        size_t tl = 0;
        if (qr_chat_render(s->o.tmpl, m, nm, &co, &text, &tl)) {
            rc = qs_fail(e, 400, "template", "messages", "messages: the chat template refused them: %s",
                         qr_last_error());
            goto out;
        }
        /* as transformers' apply_chat_template: the template writes the special tokens */
        rc = qs_tokenize_plain(s, text, tl, false, ids, n, e, "messages");
        free(text);
    } else {
        size_t total = 0;
        for (size_t i = 0; i < nm; i++)
            total += (m[i].content ? strlen(m[i].content) : 0) + 1;
        char *text = malloc(total + 1);
        if (!text) {
            rc = qs_fail(e, 500, "internal", NULL, "out of memory");
            goto out;
        }
        size_t off = 0;
        for (size_t i = 0; i < nm; i++) {
            if (!m[i].content || !*m[i].content)
                continue;
            if (off)
                text[off++] = '\n';
            size_t l = strlen(m[i].content);
            memcpy(text + off, m[i].content, l);
            off += l;
        }
        text[off] = '\0';
        rc = qs_tokenize_plain(s, text, off, true, ids, n, e, "messages");
        free(text);
    }
out:
    for (size_t i = 0; owned && i < nm; i++)
        free(owned[i]);
    free(owned);
    free(m);
    return rc;
}

static int no_llm(qs_req *q)
{
    qs_err e = {0};
    qs_fail(&e, 422, "no_model", "model", "no language model is loaded (start quire serve with --model)");
    return qs_send_err(q, &e);
}

static int parse_stream(const json_t *body, bool *stream, bool *usage, qs_err *e)
{
    if (qs_get_bool(body, "stream", stream, e))
        return -1;
    const json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return qs_fail(e, 400, "type", "stream_options", "stream_options: must be an object");
        const json_t *iu = json_object_get(so, "include_usage");
        if (iu && !json_is_null(iu)) {
            if (!json_is_boolean(iu))
                return qs_fail(e, 400, "type", "stream_options.include_usage",
                               "stream_options.include_usage: must be true or false");
            *usage = json_is_true(iu);
        }
    }
    return 0;
}

/* OpenAI request fields quire does not implement: a 400 naming the field
 * (code "unsupported") rather than an answer that silently ignores what the
 * client asked for. Only values that ask for something are refused; the
 * neutral ones clients send as defaults pass (response_format {"type":
 * "text"}, tool_choice / function_call "none" or "auto" with no tools, empty
 * tools / functions / logit_bias, logprobs false or 0, top_logprobs 0,
 * best_of 1, echo false, an empty suffix, penalties 0). n is checked with the
 * sampling fields (qs_parse_sampling). Hints that do not change the answer
 * (user, store, metadata, service_tier, prediction, parallel_tool_calls,
 * reasoning_effort) are ignored like any unknown field. */
static int check_unsupported(const json_t *body, bool chat, qs_err *e)
{
    const json_t *v = json_object_get(body, "response_format");
    if (v && !json_is_null(v)) {
        const json_t *ty = json_is_object(v) ? json_object_get(v, "type") : NULL;
        if (!json_is_string(ty) || strcmp(json_string_value(ty), "text") != 0)
            return qs_fail(e, 400, "unsupported", "response_format",
                           "response_format: only {\"type\": \"text\"} is supported (no JSON mode or schemas)");
    }
    static const char *const lists[] = {"tools", "functions"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        v = json_object_get(body, lists[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
            return qs_fail(e, 400, "unsupported", lists[i], "%s: tool and function calling are not supported",
                           lists[i]);
    }
    static const char *const choices[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        v = json_object_get(body, choices[i]);
        if (v && !json_is_null(v) &&
            !(json_is_string(v) && (!strcmp(json_string_value(v), "none") || !strcmp(json_string_value(v), "auto"))))
            return qs_fail(e, 400, "unsupported", choices[i],
                           "%s: tool and function calling are not supported (only \"none\" or \"auto\")", choices[i]);
    }
    v = json_object_get(body, "logprobs"); /* chat: a boolean; completions: an integer 0..5 */
    if (v && (json_is_true(v) || (json_is_number(v) && json_number_value(v) != 0)))
        return qs_fail(e, 400, "unsupported", "logprobs", "logprobs: log probabilities are not returned");
    v = json_object_get(body, "top_logprobs");
    if (v && json_is_number(v) && json_number_value(v) != 0)
        return qs_fail(e, 400, "unsupported", "top_logprobs", "top_logprobs: log probabilities are not returned");
    v = json_object_get(body, "logit_bias");
    if (v && json_is_object(v) && json_object_size(v) > 0)
        return qs_fail(e, 400, "unsupported", "logit_bias", "logit_bias: not supported");
    static const char *const pens[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof pens / sizeof pens[0]; i++) {
        v = json_object_get(body, pens[i]);
        if (v && json_is_number(v) && json_number_value(v) != 0)
            return qs_fail(e, 400, "unsupported", pens[i], "%s: not supported (quire has repeat_penalty)", pens[i]);
    }
    if (chat) {
        v = json_object_get(body, "audio");
        if (v && !json_is_null(v))
            return qs_fail(e, 400, "unsupported", "audio", "audio: only text output is supported");
        v = json_object_get(body, "modalities");
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            const json_t *m = json_array_get(v, i);
            if (!json_is_string(m) || strcmp(json_string_value(m), "text") != 0)
                return qs_fail(e, 400, "unsupported", "modalities", "modalities: only [\"text\"] is supported");
        }
    } else {
        v = json_object_get(body, "best_of");
        if (v && json_is_number(v) && json_number_value(v) != 1)
            return qs_fail(e, 400, "unsupported", "best_of", "best_of: only 1 is supported");
        v = json_object_get(body, "echo");
        if (json_is_true(v))
            return qs_fail(e, 400, "unsupported", "echo", "echo: not supported");
        v = json_object_get(body, "suffix");
        if (v && json_is_string(v) && json_string_length(v) > 0)
            return qs_fail(e, 400, "unsupported", "suffix", "suffix: insertion (text after the completion) is not supported");
    }
    return 0;
}

/* Runs a parsed OpenAI-style request (chat or completion) through the
 * scheduler; takes ownership of ids. */
static enum MHD_Result start(qs_req *q, gen_kind kind, const qr_sample_params *p, bool stream, bool usage, int32_t *ids,
                             size_t n)
{
    qs_gen *g = gen_new(q, kind, p);
    if (!g) {
        free(ids);
        qs_err e = {0};
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    g->stream = stream;
    g->include_usage = usage;
    enum MHD_Result r = run(q, g, ids, n, p);
    free(ids);
    return r;
}

enum MHD_Result qs_route_chat(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    if (!s->sched)
        return no_llm(q);
    qs_err e = {0};
    qr_sample_params p;
    const char **stops = NULL;
    bool stream = false, usage = false;
    int32_t *ids = NULL;
    size_t n = 0;
    if (check_unsupported(body, true, &e) || qs_parse_sampling(s, body, &p, &stops, &e) ||
        parse_stream(body, &stream, &usage, &e) || qs_chat_prompt(s, json_object_get(body, "messages"), &ids, &n, &e)) {
        free(stops);
        return qs_send_err(q, &e);
    }
    enum MHD_Result r = start(q, G_CHAT, &p, stream, usage, ids, n); /* copies the stop strings */
    free(stops);
    return r;
}

enum MHD_Result qs_route_completions(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    if (!s->sched)
        return no_llm(q);
    qs_err e = {0};
    qr_sample_params p;
    const char **stops = NULL;
    bool stream = false, usage = false;
    int32_t *ids = NULL;
    size_t n = 0;
    const json_t *pr = json_object_get(body, "prompt");
    if (json_is_array(pr) && json_array_size(pr) == 1 && json_is_string(json_array_get(pr, 0)))
        pr = json_array_get(pr, 0); /* ["text"]: one prompt */
    if (!pr || json_is_null(pr)) {
        qs_fail(&e, 400, "missing_field", "prompt", "prompt: required (a string)");
        return qs_send_err(q, &e);
    }
    if (!json_is_string(pr)) {
        qs_fail(&e, 400, "type", "prompt", "prompt: must be a string (token arrays and batches are not supported)");
        return qs_send_err(q, &e);
    }
    if (check_unsupported(body, false, &e) || qs_parse_sampling(s, body, &p, &stops, &e) ||
        parse_stream(body, &stream, &usage, &e) ||
        qs_tokenize_plain(s, json_string_value(pr), json_string_length(pr), true, &ids, &n, &e, "prompt")) {
        free(stops);
        return qs_send_err(q, &e);
    }
    enum MHD_Result r = start(q, G_COMPL, &p, stream, usage, ids, n); /* copies the stop strings */
    free(stops);
    return r;
}

enum MHD_Result qs_ask_llm(qs_req *q, const char *question, int k, qr_results *res, const qr_sample_params *p,
                           bool stream)
{
    qr_server *s = q->s;
    qs_err e = {0};
    qs_gen *g = gen_new(q, G_ASK, p);
    if (!g) {
        qr_results_free(res);
        free(res);
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    g->res = res;
    g->k = k;
    g->stream = stream;
    g->question = strdup(question);
    g->src = calloc(res->n ? res->n : 1, sizeof *g->src);
    if (!g->question || !g->src) {
        gen_free(g);
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    qr_sources_from_results(res, g->src);
    qr_answer_opts ao;
    qr_answer_opts_default(&ao);
    ao.model = s->o.llm;
    ao.tmpl = s->o.tmpl;
    ao.n_ctx = s->n_ctx; /* the scheduler's */
    ao.sample = *p;
    int rc = qr_answer_prepare(question, g->src, res->n, &ao, &g->job);
    if (rc) {
        gen_free(g);
        if (rc == QR_ELIMIT || rc == QR_EINVAL)
            qs_fail(&e, 400, "context_length_exceeded", "max_tokens", "%s", qr_last_error());
        else
            qs_fail(&e, 500, "internal", NULL, "prompt: %s", qr_last_error());
        return qs_send_err(q, &e);
    }
    size_t n_ids = 0;
    const int32_t *ids = qr_answer_job_prompt(g->job, &n_ids);
    return run(q, g, ids, n_ids, p);
}
