/* Ollama's API beside OpenAI's (docs/api.md of github.com/ollama/ollama), so
 * that Ollama clients and front ends can point at quire:
 *   GET/HEAD /        200 "quire is running" (the ollama CLI's heartbeat)
 *   GET  /api/version {"version"}: the Ollama release whose API this follows
 *   GET  /api/tags    the loaded LLM and embedder as Ollama lists local models
 *   POST /api/show    details, model_info and capabilities of one of them
 *   POST /api/chat    {model, messages, stream?, options?} → message chunks
 *   POST /api/generate {model, prompt, system?, raw?, stream?, options?}
 *   POST /api/embed   {model, input: str | [str], truncate?, dimensions?}
 *   POST /api/embeddings (legacy) {model, prompt} → {"embedding"}
 *
 * Generation runs through the same machinery as /v1/chat/completions (gen.c:
 * the chat template, the scheduler, client-gone cancellation), so a greedy
 * /api/chat answer is the /v1/chat/completions answer. Ollama streams unless
 * the request says "stream": false: the body is NDJSON (application/x-ndjson),
 * one object per line, the last with done: true, done_reason and the counts
 * and durations (nanoseconds); an error after the 200 is one {"error"} line.
 * Errors before it are {"error": "message"} with Ollama's status codes:
 * 400 bad request, 404 "model 'x' not found" (Ollama's words), and what
 * quire does not do (format, tools, images, think, suffix, template,
 * context, logprobs) is a 400 naming the field rather than ignored.
 *
 * Model names: a request names a model by the name quire serve was given
 * (--model / --embedder as typed), or by its Ollama-style name: the base name
 * of a path without .gguf/.safetensors, "ollama:" dropped, with ":latest"
 * when it has no tag; a name without a tag matches ":latest". */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "service/internal.h"

/* The Ollama release whose API (docs/api.md, server/routes.go) these routes
 * follow; clients compare /api/version against minimum versions. */
#define OLLAMA_API_VERSION "0.32.15"

/* ---------------------------------------------------------------- names */

/* "NAME:TAG" for the model quire was started with (given = --model text). */
static void ollama_name(const char *given, char *out, size_t cap)
{
    const char *g = given;
    if (!strncmp(g, "ollama:", 7))
        g += 7;
    char base[512];
    snprintf(base, sizeof base, "%s", g);
    struct stat st;
    /* a file system path: its last component, less the weights extension */
    if (g[0] == '/' || g[0] == '.' || g[0] == '~' || (strchr(g, '/') && stat(g, &st) == 0)) {
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/')
            base[--n] = '\0';
        const char *slash = strrchr(base, '/');
        memmove(base, slash ? slash + 1 : base, strlen(slash ? slash + 1 : base) + 1);
        static const char *ext[] = {".gguf", ".safetensors", ".bin"};
        for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
            size_t l = strlen(base), e = strlen(ext[i]);
            if (l > e && !strcasecmp(base + l - e, ext[i]))
                base[l - e] = '\0';
        }
    }
    const char *last = strrchr(base, '/');
    snprintf(out, cap, "%s%s", base, strchr(last ? last : base, ':') ? "" : ":latest");
}

/* Does the request's name mean the model started as given? */
static bool name_matches(const char *req, const char *given)
{
    if (!given)
        return false;
    if (!strcmp(req, given))
        return true;
    char canon[600], want[600];
    ollama_name(given, canon, sizeof canon);
    const char *last = strrchr(req, '/');
    snprintf(want, sizeof want, "%s%s", req, strchr(last ? last : req, ':') ? "" : ":latest");
    return !strcasecmp(want, canon);
}

enum { M_LLM = 1, M_EMB = 2 };

/* The request's "model": *which M_LLM / M_EMB, or an error (400 missing, 404 unknown). */
static int find_model(qr_server *s, const json_t *body, const char **name, int *which, qs_err *e)
{
    const json_t *m = json_object_get(body, "model");
    if (!m || json_is_null(m) || (json_is_string(m) && !json_string_length(m)))
        m = json_object_get(body, "name"); /* older clients (/api/show) */
    if (!m || json_is_null(m) || (json_is_string(m) && !json_string_length(m)))
        return qs_fail(e, 400, "missing_field", "model", "model is required");
    if (!json_is_string(m))
        return qs_fail(e, 400, "type", "model", "model: must be a string");
    *name = json_string_value(m);
    *which = s->o.llm && name_matches(*name, s->llm_name)          ? M_LLM
             : s->o.embedder && name_matches(*name, s->embedder_name) ? M_EMB
                                                                     : 0;
    if (!*which)
        return qs_fail(e, 404, "model_not_found", "model", "model '%s' not found", *name);
    return 0;
}

/* ---------------------------------------------------------------- small pieces */

/* RFC 3339 in UTC with nanoseconds, trailing zeros dropped (Go's RFC3339Nano). */
static void rfc3339(const struct timespec *ts, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    char frac[16];
    snprintf(frac, sizeof frac, ".%09ld", ts->tv_nsec);
    size_t n = strlen(frac);
    while (n > 1 && frac[n - 1] == '0')
        frac[--n] = '\0';
    if (n == 1)
        frac[0] = '\0';
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s%sZ", day, frac);
}

static json_t *now_json(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char b[64];
    rfc3339(&ts, b, sizeof b);
    return json_string(b);
}

static json_int_t ns(double seconds)
{
    return seconds > 0 ? (json_int_t)(seconds * 1e9 + 0.5) : 0;
}

/* A non-empty value of a field quire does not implement: 400 naming it. */
static int refuse_if_set(const json_t *body, const char *key, const char *why, qs_err *e)
{
    const json_t *v = json_object_get(body, key);
    bool set = v && !json_is_null(v) && !json_is_false(v) && !(json_is_string(v) && !json_string_length(v)) &&
               !(json_is_array(v) && !json_array_size(v)) && !(json_is_object(v) && !json_object_size(v));
    return set ? qs_fail(e, 400, "unsupported", key, "%s: %s", key, why) : 0;
}

/* ---------------------------------------------------------------- options */

/* "options" → sampling on top of the server's defaults. Runner options
 * (num_gpu, num_thread, ...) concern how Ollama loads a model and are
 * ignored; sampling options quire does not have are refused unless they hold
 * their neutral value. *num_ctx: 0 or the request's context (checked
 * against the server's). *stop_buf holds the stop array (caller frees). */
static int parse_options(qr_server *s, const json_t *body, qr_sample_params *p, const char ***stop_buf,
                         int *num_ctx, qs_err *e)
{
    *p = s->o.sample;
    p->stop = NULL;
    p->n_stop = 0;
    *stop_buf = NULL;
    *num_ctx = 0;
    if (p->max_tokens > s->o.lim.max_gen_tokens)
        p->max_tokens = s->o.lim.max_gen_tokens;
    const json_t *o = json_object_get(body, "options");
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return qs_fail(e, 400, "type", "options", "options: must be an object");
    int rc = 0;
    long long v;
    rc = rc || qs_get_float(o, "temperature", 0, 100, &p->temperature, e);
    rc = rc || qs_get_float(o, "top_p", 0, 1, &p->top_p, e);
    rc = rc || qs_get_float(o, "min_p", 0, 1, &p->min_p, e);
    rc = rc || qs_get_float(o, "repeat_penalty", 0.01, 100, &p->repeat_penalty, e);
    v = p->top_k;
    rc = rc || qs_get_int(o, "top_k", 0, 1000000, &v, e);
    p->top_k = (int)v;
    v = p->repeat_last_n;
    rc = rc || qs_get_int(o, "repeat_last_n", -1, 1000000, &v, e);
    p->repeat_last_n = v < 0 ? 0 : (int)v; /* Ollama's -1 (the whole context) is quire's 0 */
    v = (long long)p->seed;
    rc = rc || qs_get_int(o, "seed", -9007199254740991LL, 9007199254740991LL, &v, e);
    p->seed = (uint64_t)v;
    /* num_predict: -1 (Ollama: no limit) and -2 (fill the context) run to the
     * server's --max-gen-tokens, as does 0 */
    v = 0;
    rc = rc || qs_get_int(o, "num_predict", -2, s->o.lim.max_gen_tokens, &v, e);
    if (v > 0)
        p->max_tokens = (int)v;
    else if (json_object_get(o, "num_predict") && !json_is_null(json_object_get(o, "num_predict")))
        p->max_tokens = s->o.lim.max_gen_tokens;
    v = 0;
    rc = rc || qs_get_int(o, "num_ctx", 0, 1 << 30, &v, e);
    if (!rc && v > s->n_ctx)
        rc = qs_fail(e, 400, "limit", "num_ctx", "num_ctx: %lld exceeds the context of %d tokens this server runs "
                     "(quire serve --ctx)", v, s->n_ctx);
    *num_ctx = (int)v;
    /* sampling quire does not have: only their neutral values */
    static const struct { const char *key; double neutral; } neutral[] = {
        {"presence_penalty", 0}, {"frequency_penalty", 0}, {"typical_p", 1}, {"tfs_z", 1}, {"mirostat", 0}};
    for (size_t i = 0; i < sizeof neutral / sizeof neutral[0] && !rc; i++) {
        const json_t *x = json_object_get(o, neutral[i].key);
        if (x && !json_is_null(x) && (!json_is_number(x) || json_number_value(x) != neutral[i].neutral))
            rc = qs_fail(e, 400, "unsupported", neutral[i].key, "%s: not supported by quire (only %g)",
                         neutral[i].key, neutral[i].neutral);
    }
    const json_t *st = json_object_get(o, "stop");
    if (!rc && st && !json_is_null(st)) {
        size_t n = json_is_array(st) ? json_array_size(st) : 1;
        if (!json_is_string(st) && !json_is_array(st))
            rc = qs_fail(e, 400, "type", "stop", "stop: must be an array of strings");
        else if (n > 16)
            rc = qs_fail(e, 400, "limit", "stop", "stop: %zu stop strings exceed the limit of 16", n);
        const char **a = rc ? NULL : calloc(n + 1, sizeof *a);
        if (!rc && !a)
            rc = qs_fail(e, 500, "internal", NULL, "out of memory");
        size_t k = 0;
        for (size_t i = 0; !rc && i < n; i++) {
            const json_t *x = json_is_array(st) ? json_array_get(st, i) : st;
            if (!json_is_string(x))
                rc = qs_fail(e, 400, "type", "stop", "stop[%zu]: must be a string", i);
            else if (json_string_length(x)) /* Ollama drops empty stop strings */
                a[k++] = json_string_value(x);
        }
        if (rc) {
            free(a);
        } else {
            p->stop = a;
            p->n_stop = (int)k;
            *stop_buf = a;
        }
    }
    if (rc && e->status == 400) { /* name the field as the request nests it */
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "options.%.700s", e->msg);
        snprintf(e->msg, sizeof e->msg, "%s", msg);
    }
    return rc ? -1 : 0;
}

/* The request fields quire does not implement (Ollama would act on them). */
static int refuse_unsupported(const json_t *body, const char *model, qs_err *e)
{
    const json_t *think = json_object_get(body, "think");
    if (think && !json_is_null(think) && !json_is_false(think))
        return qs_fail(e, 400, "unsupported", "think", "\"%s\" does not support thinking", model);
    if (refuse_if_set(body, "format", "structured outputs (json, schemas) are not supported by quire", e) ||
        refuse_if_set(body, "tools", "tool calling is not supported by quire", e) ||
        refuse_if_set(body, "images", "quire serves text models only", e) ||
        refuse_if_set(body, "logprobs", "not supported by quire", e) ||
        refuse_if_set(body, "top_logprobs", "not supported by quire", e) ||
        refuse_if_set(body, "template", "custom templates are not supported; quire renders the model's chat template", e) ||
        refuse_if_set(body, "context", "not supported (deprecated in Ollama): send the history to /api/chat", e))
        return -1;
    if (refuse_if_set(body, "suffix", "fill-in-the-middle is not supported by quire", e)) {
        snprintf(e->msg, sizeof e->msg, "\"%s\" does not support insert", model);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- generation */

typedef struct og {
    qs_stream st; /* first member */
    bool chat;
    char *model;  /* the name the request used: Ollama echoes it */
    double t0;    /* the request's start (total_duration) */
    qr_sched_req *r;
} og;

static void og_free(og *g)
{
    if (!g)
        return;
    qr_sched_release(g->r);
    free(g->model);
    free(g->st.out);
    free(g);
}

static void og_destroy(qs_stream *st)
{
    og_free((og *)st);
}

/* {"model", "created_at", "message": {"role", "content"} | "response", "done"} */
static json_t *og_obj(const og *g, const char *text, size_t len, bool done)
{
    json_t *t = json_stringn(text ? text : "", text ? len : 0);
    if (!t)
        return NULL;
    json_t *j = json_pack("{s:s, s:o}", "model", g->model, "created_at", now_json());
    if (!j) {
        json_decref(t);
        return NULL;
    }
    if (g->chat)
        json_object_set_new(j, "message", json_pack("{s:s, s:o}", "role", "assistant", "content", t));
    else
        json_object_set_new(j, "response", t);
    json_object_set_new(j, "done", json_boolean(done));
    return j;
}

/* The last object: done_reason, counts and durations (ns). load_duration is
 * 0 (models stay loaded for the server's life); prompt_eval_duration runs
 * from submission to the first token (queueing included). */
static json_t *og_final(const og *g, const qr_gen_result *r, const char *text, size_t len)
{
    json_t *j = og_obj(g, text, len, true);
    if (!j)
        return NULL;
    json_object_set_new(j, "done_reason",
                        json_string(r->finish && !strcmp(r->finish, "length") ? "length" : "stop"));
    json_object_set_new(j, "total_duration", json_integer(ns(qs_now() - g->t0)));
    json_object_set_new(j, "load_duration", json_integer(0));
    json_object_set_new(j, "prompt_eval_count", json_integer(r->n_prompt));
    json_object_set_new(j, "prompt_eval_duration", json_integer(ns(r->prefill_s)));
    json_object_set_new(j, "eval_count", json_integer((json_int_t)r->n_ids));
    json_object_set_new(j, "eval_duration", json_integer(ns(r->decode_s)));
    return j;
}

/* One NDJSON line (steals j). */
static int og_line(og *g, json_t *j)
{
    char *t = j ? qs_dump(j) : NULL;
    json_decref(j);
    if (!t)
        return -1;
    int rc = qs_stream_add(&g->st, t, strlen(t)) || qs_stream_add(&g->st, "\n", 1);
    free(t);
    return rc;
}

static const char *cancel_msg(qr_server *s)
{
    return atomic_load(&s->state) == QS_STATE_DRAINING ? "the server is shutting down; the generation was cancelled"
                                                       : "the generation was cancelled";
}

static int og_pump(qs_stream *st)
{
    og *g = (og *)st;
    qr_sched_event ev;
    if (qs_stream_next(st, g->r, &ev))
        return -1;
    if (ev.kind == QR_SCHED_TIMEOUT) /* NDJSON has no comment lines: stay quiet */
        return 0;
    if (ev.kind == QR_SCHED_TEXT)
        return ev.len ? og_line(g, og_obj(g, ev.piece, ev.len, false)) : 0;
    qs_gen_count(st->s, ev.result);
    int bad;
    if (ev.rc == 0) {
        bad = og_line(g, og_final(g, ev.result, "", 0));
    } else {
        char msg[600];
        if (ev.rc == QR_ECANCELED)
            snprintf(msg, sizeof msg, "%s", cancel_msg(st->s));
        else
            snprintf(msg, sizeof msg, "generation failed: %s", ev.msg ? ev.msg : qr_strerror(ev.rc));
        bad = og_line(g, json_pack("{s:s}", "error", msg));
    }
    st->finished = true;
    return bad ? -1 : 0;
}

/* "load" / "unload" answers: an empty prompt or no messages. quire keeps its
 * models loaded, so both only say done. */
static enum MHD_Result send_load(qs_req *q, bool chat, const char *model, const json_t *body)
{
    const json_t *ka = json_object_get(body, "keep_alive");
    bool unload = ka && ((json_is_number(ka) && json_number_value(ka) == 0) ||
                         (json_is_string(ka) && (!strcmp(json_string_value(ka), "0") ||
                                                 !strcmp(json_string_value(ka), "0s"))));
    og g = {.chat = chat, .model = (char *)model};
    json_t *j = og_obj(&g, "", 0, true);
    if (j)
        json_object_set_new(j, "done_reason", json_string(unload ? "unload" : "load"));
    return qs_send_json(q, 200, j);
}

/* Submits the prompt (ids, owned) and answers: NDJSON stream or one object. */
static enum MHD_Result run(qs_req *q, bool chat, const char *model, const json_t *body, int32_t *ids, size_t n,
                           const qr_sample_params *p, int num_ctx)
{
    qr_server *s = q->s;
    qs_err e = {0};
    qr_sample_params sp = *p;
    if (num_ctx > 0) { /* the request's context: prompt + completion within it */
        if (n >= (size_t)num_ctx) {
            free(ids);
            qs_fail(&e, 400, "context_length_exceeded", "num_ctx",
                    "the prompt of %zu tokens leaves no room in options.num_ctx %d", n, num_ctx);
            return qs_send_err(q, &e);
        }
        if ((size_t)sp.max_tokens > (size_t)num_ctx - n)
            sp.max_tokens = (int)((size_t)num_ctx - n);
    }
    bool stream = true; /* Ollama streams unless told not to */
    if (qs_get_bool(body, "stream", &stream, &e)) {
        free(ids);
        return qs_send_err(q, &e);
    }
    og *g = calloc(1, sizeof *g);
    if (!g || !(g->model = strdup(model))) {
        free(g);
        free(ids);
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    g->chat = chat;
    g->t0 = q->t0;
    int rc = qs_gen_submit(s, ids, n, &sp, chat ? "messages" : "prompt", &g->r, &e);
    free(ids);
    if (rc) {
        og_free(g);
        return qs_send_err(q, &e);
    }
    if (stream) {
        g->st.pump = og_pump;
        g->st.destroy = og_destroy;
        return qs_stream_start(q, &g->st, "application/x-ndjson");
    }
    qr_sched_event ev;
    if (qs_gen_wait(s, q->conn, g->r, &ev) != 0) {
        og_free(g);
        return MHD_NO; /* the client is gone: close the connection */
    }
    qs_gen_count(s, ev.result);
    json_t *j = NULL;
    if (ev.rc == QR_ECANCELED)
        qs_fail(&e, 503, "draining", NULL, "%s", cancel_msg(s));
    else if (ev.rc)
        qs_fail(&e, 500, "internal", NULL, "generation failed: %s", ev.msg ? ev.msg : qr_strerror(ev.rc));
    else if (!(j = og_final(g, ev.result, ev.result->text ? ev.result->text : "",
                            ev.result->text ? strlen(ev.result->text) : 0)))
        qs_fail(&e, 500, "internal", NULL, "building the response failed");
    og_free(g);
    return j ? qs_send_json(q, 200, j) : qs_send_err(q, &e);
}

/* The checks both generation routes start with; *model is the request's name. */
static int gen_begin(qs_req *q, const json_t *body, const char **model, qs_err *e)
{
    int which = 0;
    if (find_model(q->s, body, model, &which, e))
        return -1;
    if (which != M_LLM)
        return qs_fail(e, 400, "unsupported", "model", "\"%s\" does not support %s", *model,
                       q->route == QS_R_OLLAMA_CHAT ? "chat" : "generate");
    return refuse_unsupported(body, *model, e);
}

enum MHD_Result qs_route_ollama_chat(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *model = NULL;
    if (gen_begin(q, body, &model, &e))
        return qs_send_err(q, &e);
    const json_t *msgs = json_object_get(body, "messages");
    if (msgs && !json_is_null(msgs) && !json_is_array(msgs)) {
        qs_fail(&e, 400, "type", "messages", "messages: must be an array of {role, content}");
        return qs_send_err(q, &e);
    }
    if (!msgs || json_is_null(msgs) || !json_array_size(msgs))
        return send_load(q, true, model, body);
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (json_is_object(m) && (refuse_if_set(m, "images", "quire serves text models only", &e) ||
                                  refuse_if_set(m, "tool_calls", "tool calling is not supported by quire", &e))) {
            char param[64];
            snprintf(param, sizeof param, "messages[%zu].%.32s", i, e.param);
            char msg[sizeof e.msg];
            snprintf(msg, sizeof msg, "messages[%zu].%.700s", i, e.msg);
            qs_fail(&e, 400, "unsupported", param, "%s", msg);
            return qs_send_err(q, &e);
        }
        const json_t *c = json_is_object(m) ? json_object_get(m, "content") : NULL;
        if (c && !json_is_null(c) && !json_is_string(c)) {
            qs_fail(&e, 400, "type", "messages", "messages[%zu].content: must be a string", i);
            return qs_send_err(q, &e);
        }
    }
    qr_sample_params p;
    const char **stops = NULL;
    int num_ctx = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_options(s, body, &p, &stops, &num_ctx, &e) || qs_chat_prompt(s, msgs, &ids, &n, &e)) {
        free(stops);
        return qs_send_err(q, &e);
    }
    enum MHD_Result r = run(q, true, model, body, ids, n, &p, num_ctx); /* the scheduler copies the stops */
    free(stops);
    return r;
}

enum MHD_Result qs_route_ollama_generate(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *model = NULL, *prompt = "", *system = NULL;
    size_t plen = 0;
    bool raw = false;
    if (gen_begin(q, body, &model, &e) ||
        qs_get_str(body, "prompt", false, s->o.lim.max_string_bytes, &prompt, &plen, &e) ||
        qs_get_str(body, "system", false, s->o.lim.max_string_bytes, &system, NULL, &e) ||
        qs_get_bool(body, "raw", &raw, &e))
        return qs_send_err(q, &e);
    if (raw && system && *system) {
        qs_fail(&e, 400, "invalid", "raw", "raw mode does not support template, system, or context");
        return qs_send_err(q, &e);
    }
    if (!plen)
        return send_load(q, false, model, body);
    qr_sample_params p;
    const char **stops = NULL;
    int num_ctx = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (parse_options(s, body, &p, &stops, &num_ctx, &e))
        return qs_send_err(q, &e);
    int rc;
    if (raw) { /* the prompt as given, as /v1/completions tokenizes it */
        rc = qs_tokenize_plain(s, prompt, plen, true, &ids, &n, &e, "prompt");
    } else { /* as Ollama: [system,] user prompt through the chat template */
        json_t *msgs = json_array();
        if (system && *system)
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
        json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "user", "content", prompt, plen));
        rc = json_array_size(msgs) == (system && *system ? 2u : 1u)
                 ? qs_chat_prompt(s, msgs, &ids, &n, &e)
                 : qs_fail(&e, 500, "internal", NULL, "out of memory");
        json_decref(msgs);
    }
    if (rc) {
        free(stops);
        return qs_send_err(q, &e);
    }
    enum MHD_Result r = run(q, false, model, body, ids, n, &p, num_ctx);
    free(stops);
    return r;
}

/* ---------------------------------------------------------------- embeddings */

static void l2_normalize(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    double norm = sqrt(ss);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

static int embed_begin(qs_req *q, const json_t *body, const char **model, qs_err *e)
{
    int which = 0;
    if (find_model(q->s, body, model, &which, e))
        return -1;
    if (which != M_EMB)
        return qs_fail(e, 400, "unsupported", "model", "\"%s\" does not support embeddings (quire embeds with "
                       "its embedder, \"%s\")", *model, q->s->embedder_name ? q->s->embedder_name : "none loaded");
    return 0;
}

enum MHD_Result qs_route_ollama_embed(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *model = NULL;
    if (embed_begin(q, body, &model, &e))
        return qs_send_err(q, &e);
    const json_t *in = json_object_get(body, "input");
    size_t n = !in || json_is_null(in) ? 0 : json_is_array(in) ? json_array_size(in) : 1;
    if (in && !json_is_null(in) && !json_is_string(in) && !json_is_array(in)) {
        qs_fail(&e, 400, "type", "input", "invalid input type: input must be a string or an array of strings");
        return qs_send_err(q, &e);
    }
    if (json_is_string(in) && !json_string_length(in))
        n = 0; /* Ollama: "" embeds nothing */
    if (n > (size_t)s->o.lim.max_inputs) {
        qs_fail(&e, 400, "limit", "input", "input: %zu strings exceed the limit of %d", n, s->o.lim.max_inputs);
        return qs_send_err(q, &e);
    }
    bool truncate = true;
    int dim = (int)qr_model_cfg(s->o.embedder)->d_model;
    long long want = dim;
    if (qs_get_bool(body, "truncate", &truncate, &e) || qs_get_int(body, "dimensions", 0, dim, &want, &e))
        return qs_send_err(q, &e);
    if (want == 0)
        want = dim;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    float *vec = NULL;
    uint64_t tokens = 0;
    if (!texts || !lens)
        qs_fail(&e, 500, "internal", NULL, "out of memory");
    for (size_t i = 0; i < n && !e.status; i++) {
        const json_t *x = json_is_array(in) ? json_array_get(in, i) : in;
        if (!json_is_string(x))
            qs_fail(&e, 400, "type", "input", "invalid input type: input[%zu] must be a string", i);
        else if (!json_string_length(x))
            qs_fail(&e, 400, "empty", "input", "input[%zu]: must not be empty", i);
        else {
            texts[i] = json_string_value(x);
            lens[i] = json_string_length(x);
        }
    }
    if (!e.status && n)
        qs_embed(s, texts, lens, n, truncate, "input", &vec, &tokens, &e);
    free(texts);
    free(lens);
    if (e.status) {
        free(vec);
        return qs_send_err(q, &e);
    }
    /* Ollama's vectors have unit length (and are cut to dimensions, then
     * normalised again); an embedder that normalises already gives the
     * /v1/embeddings vectors unchanged */
    bool unit = qr_model_cfg(s->o.embedder)->normalize;
    json_t *embs = json_array();
    for (size_t i = 0; i < n; i++) {
        float *v = vec + i * (size_t)dim;
        if (!unit)
            l2_normalize(v, dim);
        if (want < dim)
            l2_normalize(v, (int)want);
        json_t *a = json_array();
        for (int d = 0; d < want; d++)
            json_array_append_new(a, json_real(v[d]));
        json_array_append_new(embs, a);
    }
    free(vec);
    json_t *j = json_pack("{s:s, s:o, s:I, s:I, s:I}", "model", model, "embeddings", embs, "total_duration",
                          ns(qs_now() - q->t0), "load_duration", (json_int_t)0, "prompt_eval_count",
                          (json_int_t)tokens);
    return qs_send_json(q, 200, j);
}

enum MHD_Result qs_route_ollama_embeddings(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *model = NULL, *prompt = "";
    size_t plen = 0;
    if (embed_begin(q, body, &model, &e) ||
        qs_get_str(body, "prompt", false, s->o.lim.max_string_bytes, &prompt, &plen, &e))
        return qs_send_err(q, &e);
    json_t *a = json_array();
    if (plen) { /* the embedder's vector as it is (Ollama's legacy route does not normalise) */
        float *vec = NULL;
        if (qs_embed(s, &prompt, &plen, 1, true, "prompt", &vec, NULL, &e)) {
            json_decref(a);
            return qs_send_err(q, &e);
        }
        int dim = (int)qr_model_cfg(s->o.embedder)->d_model;
        for (int d = 0; d < dim; d++)
            json_array_append_new(a, json_real(vec[d]));
        free(vec);
    }
    return qs_send_json(q, 200, json_pack("{s:o}", "embedding", a));
}

/* ---------------------------------------------------------------- models */

/* Bytes and newest modification time of a file, or of the files of a directory (one level). */
static void path_stat(const char *path, long long *size, struct timespec *mtime)
{
    *size = 0;
    memset(mtime, 0, sizeof *mtime);
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return;
    *mtime = st.st_mtim;
    if (!S_ISDIR(st.st_mode)) {
        *size = (long long)st.st_size;
        return;
    }
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char f[4352];
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        if (de->d_name[0] != '.' && stat(f, &st) == 0 && S_ISREG(st.st_mode)) {
            *size += (long long)st.st_size;
            if (st.st_mtim.tv_sec > mtime->tv_sec)
                *mtime = st.st_mtim;
        }
    }
    if (d)
        closedir(d);
}

static json_t *details_json(const qr_model *m, const char *path)
{
    const qr_model_config *c = qr_model_cfg(m);
    struct stat st;
    bool dir = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    return json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format", dir ? "safetensors" : "gguf",
                     "family", c->arch_name, "families", c->arch_name, "parameter_size", "", "quantization_level", "");
}

/* One /api/tags entry. */
static json_t *tag_json(const char *given, const char *path, const qr_model *m)
{
    char name[600], when[64];
    ollama_name(given, name, sizeof name);
    long long size;
    struct timespec mt;
    path_stat(path, &size, &mt);
    rfc3339(&mt, when, sizeof when);
    return json_pack("{s:s, s:s, s:s, s:I, s:o}", "name", name, "model", name, "modified_at", when, "size",
                     (json_int_t)size, "details", details_json(m, path));
}

enum MHD_Result qs_route_ollama_tags(qs_req *q)
{
    qr_server *s = q->s;
    json_t *models = json_array();
    if (s->o.llm && s->llm_name)
        json_array_append_new(models, tag_json(s->llm_name, s->llm_path, s->o.llm));
    if (s->o.embedder && s->embedder_name)
        json_array_append_new(models, tag_json(s->embedder_name, s->embedder_path, s->o.embedder));
    return qs_send_json(q, 200, json_pack("{s:o}", "models", models));
}

enum MHD_Result qs_route_ollama_show(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *model = NULL;
    int which = 0;
    if (find_model(s, body, &model, &which, &e))
        return qs_send_err(q, &e);
    bool llm = which == M_LLM;
    const qr_model *m = llm ? s->o.llm : s->o.embedder;
    const char *path = llm ? s->llm_path : s->embedder_path;
    const qr_model_config *c = qr_model_cfg(m);
    json_t *info = json_object();
    char key[96];
    json_object_set_new(info, "general.architecture", json_string(c->arch_name));
#define ARCH_KEY(k, v)                                                                                               \
    do {                                                                                                             \
        snprintf(key, sizeof key, "%s." k, c->arch_name);                                                            \
        json_object_set_new(info, key, json_integer(v));                                                             \
    } while (0)
    ARCH_KEY("context_length", llm ? s->n_ctx : qr_embed_seq_limit(m));
    ARCH_KEY("embedding_length", c->d_model);
    ARCH_KEY("block_count", c->n_layer);
    ARCH_KEY("feed_forward_length", c->d_ff);
    ARCH_KEY("attention.head_count", c->n_head);
    ARCH_KEY("attention.head_count_kv", c->n_kv_head);
    ARCH_KEY("vocab_size", c->vocab_size);
#undef ARCH_KEY
    long long size;
    struct timespec mt;
    char when[64];
    path_stat(path, &size, &mt);
    rfc3339(&mt, when, sizeof when);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:[s], s:s}", "modelfile", "", "parameters", "", "template", "",
                          "details", details_json(m, path), "model_info", info, "capabilities",
                          llm ? "completion" : "embedding", "modified_at", when);
    return qs_send_json(q, 200, j);
}

enum MHD_Result qs_route_ollama_version(qs_req *q)
{
    return qs_send_json(q, 200, json_pack("{s:s}", "version", OLLAMA_API_VERSION));
}

enum MHD_Result qs_route_ollama_root(qs_req *q)
{
    static const char msg[] = "quire is running (Ollama API under /api)";
    char *t = strdup(msg);
    return t ? qs_send_text(q, 200, "text/plain; charset=utf-8", t, sizeof msg - 1) : MHD_NO;
}
