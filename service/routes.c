/* quire's own routes (health, ready, metrics, models, search, ask, documents)
 * and /v1/embeddings; the generation routes are in gen.c. Shapes follow
 * service/API.md; passages and answers use the same library functions as the
 * CLI (qr_passage_to_json, qr_answer_to_json, qr_ingest_report_to_json), so
 * `quire search --json` and POST /v1/search print identical passages.
 *
 * Retrievals run in parallel on a pool of retrievers over the read-only
 * store (one at a time when they use a model; locks: service/internal.h);
 * what a response needs is copied out before the locks are let go.
 * Documents: the server keeps the store open read-only; POST/DELETE close it,
 * run the ingest pipeline on it (which opens it for writing: LMDB must not
 * be opened twice in one process) and open it again with store_rw held for
 * writing, so searches wait for the ingest to finish and then see its documents. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "generate/answer.h"
#include "generate/extract.h"
#include "index/manifest.h"
#include "ingest/filter.h"
#include "ingest/pipeline.h"
#include "service/internal.h"

/* ---------------------------------------------------------------- store */

int qs_open_store(qr_server *s);
void qs_close_store(qr_server *s);

int qs_open_store(qr_server *s)
{
    qr_store_open_opts so = {.readonly = true};
    int rc = qr_store_open(s->store_dir, &so, &s->store);
    if (rc)
        return rc;
    const qr_manifest *man = qr_store_manifest(s->store);
    qr_model *emb = man->has_embedder && s->o.embedder && s->o.ro.w_dense > 0 ? s->o.embedder : NULL;
    atomic_store(&s->dense, emb != NULL);
    atomic_store(&s->uses_model, emb || s->o.reranker);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = atomic_load(&s->uses_model) ? 1 : (int)(cores < 1 ? 1 : cores > QS_MAX_RETRIEVERS ? QS_MAX_RETRIEVERS : cores);
    for (s->n_retr = 0; s->n_retr < want; s->n_retr++) {
        if ((rc = qr_retriever_open(s->store, emb, s->o.embedder_path, s->o.reranker, &s->o.ro,
                                    &s->retr[s->n_retr]))) {
            qs_close_store(s);
            return rc;
        }
        s->retr_busy[s->n_retr] = false;
    }
    return 0;
}

void qs_close_store(qr_server *s)
{
    for (int i = 0; i < s->n_retr; i++) {
        qr_retriever_close(s->retr[i]);
        s->retr[i] = NULL;
    }
    s->n_retr = 0;
    qr_store_close(s->store);
    s->store = NULL;
}

/* A free retriever of the pool (waits for one); -1 when the store is closed.
 * Caller holds store_rw for reading, so the pool does not change meanwhile. */
static int retr_acquire(qr_server *s)
{
    pthread_mutex_lock(&s->pool_mu);
    int got = -1;
    while (s->n_retr > 0) {
        for (int i = 0; i < s->n_retr && got < 0; i++)
            if (!s->retr_busy[i])
                got = i;
        if (got >= 0)
            break;
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    }
    if (got >= 0)
        s->retr_busy[got] = true;
    pthread_mutex_unlock(&s->pool_mu);
    return got;
}

static void retr_release(qr_server *s, int i)
{
    pthread_mutex_lock(&s->pool_mu);
    s->retr_busy[i] = false;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* ---------------------------------------------------------------- simple routes */

enum MHD_Result qs_route_health(qs_req *q)
{
    return qs_send_json(q, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result qs_route_ready(qs_req *q)
{
    qr_server *s = q->s;
    int st = atomic_load(&s->state);
    if (st != QS_STATE_READY) {
        struct MHD_Response *r =
            qs_json_response(json_pack("{s:s}", "status", st == QS_STATE_DRAINING ? "draining" : "starting"));
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        return qs_queue(q, 503, r);
    }
    json_t *j = json_object();
    json_object_set_new(j, "status", json_string("ready"));
    json_object_set_new(j, "store", json_string(s->store_dir));
    json_object_set_new(j, "embedder", s->embedder_name ? json_string(s->embedder_name) : json_null());
    json_object_set_new(j, "llm", s->llm_name ? json_string(s->llm_name) : json_null());
    return qs_send_json(q, 200, j);
}

enum MHD_Result qs_route_metrics(qs_req *q)
{
    char *t = NULL;
    size_t n = 0;
    if (qs_metrics_render(q->s, &t, &n)) {
        qs_err e = {0};
        qs_fail(&e, 500, "internal", NULL, "metrics: %s", qr_last_error());
        return qs_send_err(q, &e);
    }
    return qs_send_text(q, 200, "text/plain; version=0.0.4; charset=utf-8", t, n);
}

enum MHD_Result qs_route_models(qs_req *q)
{
    qr_server *s = q->s;
    json_t *data = json_array();
    const char *names[2] = {s->llm_name, s->embedder_name};
    for (int i = 0; i < 2; i++)
        if (names[i])
            json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", names[i], "object", "model",
                                                  "created", (json_int_t)s->started, "owned_by", "quire"));
    return qs_send_json(q, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* ---------------------------------------------------------------- request fields */

int qs_parse_filters(const json_t *body, qr_retrieve_filter *f, int *n, char (*vals)[64], qs_err *e)
{
    *n = 0;
    const json_t *fl = json_object_get(body, "filters");
    if (!fl || json_is_null(fl))
        return 0;
    if (!json_is_object(fl))
        return qs_fail(e, 400, "type", "filters", "filters: must be an object {\"path\": glob, \"meta\": {...}}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fl, k, v) {
        if (strcmp(k, "path") && strcmp(k, "meta"))
            return qs_fail(e, 400, "unknown_field", "filters", "filters: unknown member \"%.64s\" (path, meta)", k);
    }
    const json_t *p = json_object_get(fl, "path");
    if (p && !json_is_null(p)) {
        if (!json_is_string(p) || json_string_length(p) == 0)
            return qs_fail(e, 400, "type", "filters.path", "filters.path: must be a non-empty glob string");
        f[*n] = (qr_retrieve_filter){"path", json_string_value(p)};
        (*n)++;
    }
    const json_t *m = json_object_get(fl, "meta");
    if (m && !json_is_null(m)) {
        if (!json_is_object(m))
            return qs_fail(e, 400, "type", "filters.meta", "filters.meta: must be an object {key: value}");
        json_object_foreach((json_t *)m, k, v) {
            char param[96];
            snprintf(param, sizeof param, "filters.meta.%.60s", k);
            if (*n >= QR_RETRIEVE_MAX_FILTERS)
                return qs_fail(e, 400, "limit", "filters.meta", "filters: more than %d filters",
                               QR_RETRIEVE_MAX_FILTERS);
            if (!strcmp(k, "path") || !*k)
                return qs_fail(e, 400, "invalid", param, "%s: key must be non-empty and not \"path\"", param);
            if (json_is_string(v)) {
                f[*n] = (qr_retrieve_filter){k, json_string_value(v)};
            } else if (json_is_number(v) || json_is_boolean(v)) {
                /* numbers and booleans compare by their JSON text */
                char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                if (!t || strlen(t) >= 64) {
                    free(t);
                    return qs_fail(e, 400, "invalid", param, "%s: value too long", param);
                }
                snprintf(vals[*n], 64, "%s", t);
                free(t);
                f[*n] = (qr_retrieve_filter){k, vals[*n]};
            } else {
                return qs_fail(e, 400, "type", param, "%s: must be a string, number or boolean", param);
            }
            (*n)++;
        }
    }
    return 0;
}

int qs_parse_sampling(qr_server *s, const json_t *body, qr_sample_params *p, const char ***stop_buf, qs_err *e)
{
    *p = s->o.sample;
    p->stop = NULL;
    p->n_stop = 0;
    *stop_buf = NULL;
    long long v = p->max_tokens > s->o.lim.max_gen_tokens ? s->o.lim.max_gen_tokens : p->max_tokens;
    if (qs_get_int(body, "max_tokens", 1, s->o.lim.max_gen_tokens, &v, e) ||
        qs_get_int(body, "max_completion_tokens", 1, s->o.lim.max_gen_tokens, &v, e))
        return -1;
    p->max_tokens = (int)v;
    if (qs_get_float(body, "temperature", 0, 100, &p->temperature, e) ||
        qs_get_float(body, "top_p", 0, 1, &p->top_p, e) || qs_get_float(body, "min_p", 0, 1, &p->min_p, e) ||
        qs_get_float(body, "repeat_penalty", 0.01, 100, &p->repeat_penalty, e))
        return -1;
    v = p->top_k;
    if (qs_get_int(body, "top_k", 0, 1000000, &v, e))
        return -1;
    p->top_k = (int)v;
    v = (long long)p->seed;
    if (qs_get_int(body, "seed", 0, 9007199254740991LL, &v, e))
        return -1;
    p->seed = (uint64_t)v;
    v = 1;
    if (qs_get_int(body, "n", 1, 1, &v, e))
        return qs_fail(e, 400, "unsupported", "n", "n: only 1 choice per request is supported");
    const json_t *st = json_object_get(body, "stop");
    if (st && !json_is_null(st)) {
        size_t ns = json_is_array(st) ? json_array_size(st) : 1;
        if (!json_is_string(st) && !json_is_array(st))
            return qs_fail(e, 400, "type", "stop", "stop: must be a string or an array of strings");
        if (ns > 16)
            return qs_fail(e, 400, "limit", "stop", "stop: %zu stop strings exceed the limit of 16", ns);
        const char **a = calloc(ns + 1, sizeof *a);
        if (!a)
            return qs_fail(e, 500, "internal", NULL, "out of memory");
        for (size_t i = 0; i < ns; i++) {
            const json_t *x = json_is_array(st) ? json_array_get(st, i) : st;
            if (!json_is_string(x) || json_string_length(x) == 0) {
                free(a);
                char param[32];
                snprintf(param, sizeof param, json_is_array(st) ? "stop[%zu]" : "stop", i);
                return qs_fail(e, 400, "type", param, "%s: must be a non-empty string", param);
            }
            a[i] = json_string_value(x);
        }
        p->stop = a;
        p->n_stop = (int)ns;
        *stop_buf = a;
    }
    return 0;
}

/* query/question + k + filters → results (under the lock). BM25 searches the
 * query's keywords ("How do I" words dropped, qr_question_keywords), the dense
 * retriever embeds the query as given: the same split as quire search / ask. */
static int do_retrieve(qr_server *s, const json_t *body, const char *query, size_t qlen, int k, qr_results *res,
                       qs_err *e)
{
    qr_retrieve_filter f[QR_RETRIEVE_MAX_FILTERS];
    char vals[QR_RETRIEVE_MAX_FILTERS][64];
    int nf = 0;
    if (qs_parse_filters(body, f, &nf, vals, e))
        return -1;
    char *keywords = NULL;
    if (qr_question_keywords(query, &keywords))
        return qs_fail(e, 500, "internal", NULL, "query keywords: %s", qr_last_error());
    /* lock order: mu (models), store_rw, pool_mu */
    bool model = atomic_load(&s->uses_model);
    if (model)
        pthread_mutex_lock(&s->mu);
    pthread_rwlock_rdlock(&s->store_rw);
    int ri = retr_acquire(s), rc;
    if (ri >= 0) {
        rc = qr_retrieve_query_lex(s->retr[ri], query, qlen, keywords, strlen(keywords), k, f, nf, NULL, res);
        retr_release(s, ri);
    } else {
        rc = qr_fail(QR_EINTERNAL, "the store is not open (a document update failed; see the log)");
    }
    pthread_rwlock_unlock(&s->store_rw);
    if (model)
        pthread_mutex_unlock(&s->mu);
    free(keywords);
    if (rc == QR_ELIMIT || rc == QR_EINVAL)
        return qs_fail(e, 400, "invalid", NULL, "%s", qr_last_error());
    if (rc)
        return qs_fail(e, 500, "internal", NULL, "retrieval: %s", qr_last_error());
    return 0;
}

enum MHD_Result qs_route_search(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *query = NULL;
    size_t qlen = 0;
    long long k = s->o.default_k;
    if (qs_get_str(body, "query", true, QR_RETRIEVE_MAX_QUERY, &query, &qlen, &e) ||
        qs_get_int(body, "k", 1, s->o.lim.max_k, &k, &e))
        return qs_send_err(q, &e);
    qr_results res = {0};
    if (do_retrieve(s, body, query, qlen, (int)k, &res, &e))
        return qs_send_err(q, &e);
    json_t *j = qr_results_to_json(&res, query, (int)k, s->dense, s->o.reranker != NULL);
    qr_results_free(&res);
    if (!j) {
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    return qs_send_json(q, 200, j);
}

/* ---------------------------------------------------------------- ask */

/* An SSE body already complete (extractive answers): token event, answer, [DONE]. */
static enum MHD_Result send_sse_answer(qs_req *q, const char *text, json_t *answer)
{
    json_t *tok = json_pack("{s:s, s:s}", "type", "token", "text", text);
    json_object_set_new(answer, "type", json_string("answer"));
    char *a = qs_dump(tok), *b = qs_dump(answer);
    json_decref(tok);
    json_decref(answer);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = a && b ? open_memstream(&buf, &n) : NULL;
    if (f) {
        if (*text)
            fprintf(f, "data: %s\n\n", a);
        fprintf(f, "data: %s\n\ndata: [DONE]\n\n", b);
        fclose(f);
    }
    free(a);
    free(b);
    if (!buf)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    return qs_queue(q, 200, r);
}

enum MHD_Result qs_route_ask(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    const char *question = NULL;
    size_t qlen = 0;
    long long k = s->o.default_k;
    bool stream = false;
    qr_sample_params sp;
    const char **stops = NULL;
    if (qs_get_str(body, "question", true, QR_RETRIEVE_MAX_QUERY, &question, &qlen, &e) ||
        qs_get_int(body, "k", 1, s->o.lim.max_k, &k, &e) || qs_get_bool(body, "stream", &stream, &e) ||
        qs_parse_sampling(s, body, &sp, &stops, &e))
        return qs_send_err(q, &e);
    qr_results *res = calloc(1, sizeof *res);
    if (!res || do_retrieve(s, body, question, qlen, (int)k, res, &e)) {
        free(stops);
        free(res);
        if (!res)
            qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    if (s->sched) {
        enum MHD_Result r = qs_ask_llm(q, question, (int)k, res, &sp, stream);
        free(stops);
        return r;
    }
    free(stops);
    /* extractive */
    qr_source *src = calloc(res->n ? res->n : 1, sizeof *src);
    qr_answer ans;
    memset(&ans, 0, sizeof ans);
    json_t *j = NULL;
    int rc = src ? 0 : QR_ENOMEM;
    if (!rc) {
        qr_sources_from_results(res, src);
        qr_answer_opts ao;
        qr_answer_opts_default(&ao);
        ao.extract.max_sources = res->n;
        rc = qr_answer_run(question, src, res->n, &ao, &ans);
    }
    if (!rc)
        rc = qr_answer_to_json(&ans, question, src, &j);
    enum MHD_Result r;
    if (rc) {
        qs_fail(&e, 500, "internal", NULL, "answer: %s", qr_last_error());
        r = qs_send_err(q, &e);
    } else {
        json_object_set_new(j, "store", json_string(s->store_dir));
        json_object_set_new(j, "k", json_integer(k));
        r = stream ? send_sse_answer(q, ans.text ? ans.text : "", j) : qs_send_json(q, 200, j);
    }
    qr_answer_free(&ans);
    free(src);
    qr_results_free(res);
    free(res);
    return r;
}

/* ---------------------------------------------------------------- embeddings */

static char *base64(const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
    if (!o)
        return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0);
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return o;
}

int qs_embed(qr_server *s, const char *const *texts, const size_t *lens, size_t n, bool truncate,
             const char *param, float **vec, uint64_t *tokens, qs_err *e)
{
    qr_model *m = s->o.embedder;
    int dim = (int)qr_model_cfg(m)->d_model;
    float *v = malloc((n ? n : 1) * (size_t)dim * sizeof *v);
    if (!v)
        return qs_fail(e, 500, "internal", NULL, "out of memory for %zu embeddings", n);
    /* input tokens (special tokens included, cut at the encoder's limit) */
    uint64_t total = 0;
    const qr_tokenizer *tok = qr_model_tokenizer(m);
    int lim = qr_embed_seq_limit(m);
    for (size_t i = 0; i < n && tok; i++) {
        int32_t *ids = NULL;
        size_t nid = 0;
        int rc = qr_tokenize(tok, texts[i], lens[i], true, &ids, &nid);
        free(ids);
        if (rc == 0 && !truncate && nid > (size_t)lim) {
            free(v);
            char p[64];
            snprintf(p, sizeof p, n > 1 ? "%s[%zu]" : "%s", param, i);
            return qs_fail(e, 400, "context_length_exceeded", p,
                           "%s: the input length exceeds the context length (%zu tokens, the embedder takes %d)", p,
                           nid, lim);
        }
        if (rc == 0)
            total += nid < (size_t)lim ? nid : (size_t)lim;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i += 16) {
        int b = (int)(n - i < 16 ? n - i : 16);
        rc = qr_embed_texts(m, texts + i, lens + i, b, v + i * (size_t)dim);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        free(v);
        return qs_fail(e, 500, "internal", NULL, "embedding: %s", qr_last_error());
    }
    qs_metrics_add(&s->m, &s->m.embed_tokens, total);
    *vec = v;
    if (tokens)
        *tokens = total;
    return 0;
}

enum MHD_Result qs_route_embeddings(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    qr_model *m = s->o.embedder;
    if (!m) {
        qs_fail(&e, 422, "no_model", "model", "no embedder is loaded (start quire serve with --embedder)");
        return qs_send_err(q, &e);
    }
    const json_t *in = json_object_get(body, "input");
    if (!in || json_is_null(in)) {
        qs_fail(&e, 400, "missing_field", "input", "input: required (a string or an array of strings)");
        return qs_send_err(q, &e);
    }
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if (!json_is_string(in) && !json_is_array(in)) {
        qs_fail(&e, 400, "type", "input", "input: must be a string or an array of strings");
        return qs_send_err(q, &e);
    }
    if (n == 0 || n > (size_t)s->o.lim.max_inputs) {
        qs_fail(&e, 400, "limit", "input", "input: must hold 1..%d strings (got %zu)", s->o.lim.max_inputs, n);
        return qs_send_err(q, &e);
    }
    const char *fmt = "float";
    if (qs_get_str(body, "encoding_format", false, 16, &fmt, NULL, &e))
        return qs_send_err(q, &e);
    if (strcmp(fmt, "float") && strcmp(fmt, "base64")) {
        qs_fail(&e, 400, "invalid", "encoding_format", "encoding_format: must be \"float\" or \"base64\"");
        return qs_send_err(q, &e);
    }
    int dim = (int)qr_model_cfg(m)->d_model;
    long long want_dim = dim;
    if (qs_get_int(body, "dimensions", dim, dim, &want_dim, &e))
        return qs_send_err(q, &e);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    float *vec = NULL;
    if (!texts || !lens) {
        free(texts);
        free(lens);
        qs_fail(&e, 500, "internal", NULL, "out of memory for %zu embeddings", n);
        return qs_send_err(q, &e);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_is_array(in) ? json_array_get(in, i) : in;
        char param[32];
        snprintf(param, sizeof param, json_is_array(in) ? "input[%zu]" : "input", i);
        if (!json_is_string(x)) {
            qs_fail(&e, 400, "type", param, "%s: must be a string (token arrays are not supported)", param);
            break;
        }
        if (json_string_length(x) == 0) {
            qs_fail(&e, 400, "empty", param, "%s: must not be empty", param);
            break;
        }
        texts[i] = json_string_value(x);
        lens[i] = json_string_length(x);
    }
    uint64_t tokens = 0;
    if (e.status || qs_embed(s, texts, lens, n, true, "input", &vec, &tokens, &e)) {
        free(texts);
        free(lens);
        return qs_send_err(q, &e);
    }
    json_t *data = json_array();
    bool b64 = !strcmp(fmt, "base64");
    for (size_t i = 0; i < n; i++) {
        const float *v = vec + i * (size_t)dim;
        json_t *emb;
        if (b64) { /* little-endian float32, as the OpenAI API sends it */
            char *t = base64((const unsigned char *)v, (size_t)dim * sizeof *v);
            emb = t ? json_string(t) : NULL;
            free(t);
        } else {
            emb = json_array();
            for (int d = 0; d < dim; d++)
                json_array_append_new(emb, json_real(v[d]));
        }
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index", (json_int_t)i,
                                              "embedding", emb));
    }
    free(texts);
    free(lens);
    free(vec);
    json_t *j = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                          s->embedder_name ? s->embedder_name : "embedder", "usage", "prompt_tokens",
                          (json_int_t)tokens, "total_tokens", (json_int_t)tokens);
    return qs_send_json(q, 200, j);
}

/* ---------------------------------------------------------------- documents */

/* Runs fn with the store closed (the pipeline opens it for writing) and
 * opens it again, under the lock. pre (may be NULL) runs first on the open
 * store, post (may be NULL) after fn succeeded and the store was reopened,
 * both still under the lock, so they see the store fn changes and nothing
 * else. */
static int with_store_closed(qr_server *s, int (*pre)(qr_server *, void *), int (*fn)(qr_server *, void *),
                             int (*post)(qr_server *, void *), void *user)
{
    pthread_mutex_lock(&s->mu);           /* the pipeline may run the embedder */
    pthread_rwlock_wrlock(&s->store_rw); /* no retrieval while the store is closed */
    int rc = 0;
    if (pre && !s->store)
        rc = qr_fail(QR_EIO, "the store %s is not open (an earlier update failed to reopen it)", s->store_dir);
    else if (pre)
        rc = pre(s, user);
    if (rc) {
        pthread_rwlock_unlock(&s->store_rw);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    qs_close_store(s);
    rc = fn(s, user);
    char why[512];
    snprintf(why, sizeof why, "%s", qr_last_error());
    int rc2 = qs_open_store(s);
    if (rc2)
        QR_ERROR("serve: reopening the store %s after a document update failed: %s", s->store_dir,
                 qr_last_error());
    if (!rc && !rc2 && post) {
        rc2 = post(s, user);
        snprintf(why, sizeof why, "%s", qr_last_error());
    }
    pthread_rwlock_unlock(&s->store_rw);
    pthread_mutex_unlock(&s->mu);
    if (rc || rc2)
        qr_fail(rc ? rc : rc2, "%s", why);
    return rc ? rc : rc2;
}

/* The JSON entry of a document (GET /v1/documents, POST's "documents"). */
static json_t *doc_json(const qr_store_doc *d)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer((json_int_t)d->id));
    json_object_set_new(j, "path", json_string(d->path));
    json_object_set_new(j, "title", json_string(d->title ? d->title : ""));
    json_object_set_new(j, "format", d->format && *d->format ? json_string(d->format) : json_null());
    json_object_set_new(j, "chunks", json_integer((json_int_t)d->n_chunks));
    json_object_set_new(j, "bytes", json_integer((json_int_t)d->size));
    /* the source file's modification time, RFC 3339 UTC with nanoseconds (a
     * string: nanoseconds since 1970 do not fit a JSON client's double) */
    char mt[64] = "";
    time_t sec = (time_t)(d->mtime_ns >= 0 ? d->mtime_ns / 1000000000 : (d->mtime_ns - 999999999) / 1000000000);
    long long ns = (long long)(d->mtime_ns - (int64_t)sec * 1000000000);
    struct tm tm;
    if (gmtime_r(&sec, &tm)) {
        size_t n = strftime(mt, sizeof mt, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(mt + n, sizeof mt - n, ".%09lldZ", ns);
    }
    json_object_set_new(j, "mtime", mt[0] ? json_string(mt) : json_null());
    json_t *meta = d->meta_json && *d->meta_json ? json_loads(d->meta_json, 0, NULL) : NULL;
    json_object_set_new(j, "meta", meta && json_is_object(meta) ? meta : json_null());
    if (meta && !json_is_object(meta))
        json_decref(meta);
    return j;
}

/* The server's own copy of a posted text: STORE/posted/NAME (or
 * NAME.jsonl, whose one record is document "...#L1"). Returns the file for a
 * document path under it, else false. Documents from anywhere else are the
 * user's files and are never touched. */
static bool posted_file(const qr_server *s, const char *doc_path, char *out, size_t cap)
{
    char real[4096];
    if (!realpath(s->store_dir, real)) /* document paths are canonical */
        return false;
    size_t n = strlen(real);
    if (strncmp(doc_path, real, n) != 0 || strncmp(doc_path + n, "/posted/", 8) != 0)
        return false;
    const char *name = doc_path + n + 8;
    if (!*name || strchr(name, '/') || name[0] == '.')
        return false;
    size_t len = strlen(name);
    const char *hash = strstr(name, ".jsonl#L");
    if (hash && strspn(hash + 8, "0123456789") == strlen(hash + 8) && hash[8])
        len = (size_t)(hash - name) + 6; /* the record's file */
    else if (strchr(name, '#'))
        return false;
    return snprintf(out, cap, "%s/posted/%.*s", real, (int)len, name) < (int)cap;
}

#define QS_DOCS_LISTED 1000 /* documents named in a POST /v1/documents answer */

typedef struct {
    const char *path;
    qr_ingest_report rep;
    json_t *docs;   /* post: the documents written, as GET lists them */
    size_t omitted; /* past QS_DOCS_LISTED */
    const char **include, **exclude; /* globs (ingest/filter.h), borrowed from the body */
    size_t n_include, n_exclude;
    bool default_excludes;
} ingest_arg;

static int run_ingest(qr_server *s, void *user)
{
    ingest_arg *a = user;
    qr_ingest_opts io;
    qr_ingest_opts_default(&io);
    qr_manifest man;
    if (qr_manifest_read(s->store_dir, &man) == 0) {
        io.chunk.max_tokens = man.chunk_tokens;
        io.chunk.overlap_tokens = man.chunk_overlap;
        if (man.has_embedder) {
            io.embedder = s->o.embedder;
            io.embedder_path = s->o.embedder_path;
        }
    }
    io.jobs = 2;
    io.include = a->include;
    io.n_include = a->n_include;
    io.exclude = a->exclude;
    io.n_exclude = a->n_exclude;
    io.default_excludes = a->default_excludes;
    return qr_ingest_run(s->store_dir, &a->path, 1, &io, &a->rep);
}

/* After the ingest, with the store reopened: the documents it added or
 * replaced, read back from the store (a JSONL file's records are
 * documents "PATH#L<n>", so the report's file paths do not name them). */
static int list_written(qr_server *s, void *user)
{
    ingest_arg *a = user;
    if (!(a->docs = json_array()))
        return qr_fail(QR_ENOMEM, "documents");
    qr_store_txn *t = NULL;
    int rc = qr_store_txn_begin(s->store, false, &t);
    for (size_t i = 0; !rc && i < a->rep.n_files; i++) {
        const qr_ingest_file *f = &a->rep.files[i];
        for (size_t d = 0; !rc && f->doc_ids && d < f->docs; d++) {
            if (json_array_size(a->docs) >= QS_DOCS_LISTED) {
                a->omitted++;
                continue;
            }
            qr_store_doc sd;
            rc = qr_store_get_doc(t, f->doc_ids[d], &sd);
            if (!rc) {
                json_t *j = doc_json(&sd);
                json_object_set_new(j, "status", json_string(qr_ingest_status_name(f->status)));
                json_array_append_new(a->docs, j);
            }
        }
    }
    qr_store_txn_abort(t);
    return rc;
}

/* A posted text becomes a file under STORE/posted/ (so its chunks cite a
 * real file and byte span): NAME, or NAME.jsonl holding one record when
 * metadata is given. Written atomically; a second post of a name replaces it. */
static int write_posted(qr_server *s, const char *name, const char *text, size_t len, const json_t *meta,
                        char **path_out, qs_err *e)
{
    char clean[201];
    size_t n = 0;
    for (const char *p = name; *p && n < sizeof clean - 1; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_';
        clean[n++] = ok ? c : '_';
    }
    clean[n] = '\0';
    while (clean[0] == '.')
        clean[0] = '_';
    char dir[4096], path[4400], tmp[4500];
    snprintf(dir, sizeof dir, "%s/posted", s->store_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return qs_fail(e, 500, "internal", NULL, "cannot create %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s%s", dir, clean, meta ? ".jsonl" : "");
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    char *rec = NULL;
    if (meta) {
        json_t *r = json_deep_copy(meta);
        json_object_set_new(r, "text", json_stringn(text, len));
        json_object_set_new(r, "title", json_string(name));
        rec = r ? json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(r);
        if (!rec)
            return qs_fail(e, 500, "internal", NULL, "out of memory");
        text = rec;
        len = strlen(rec);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0)
            ok = false;
        else
            off += (size_t)w;
    }
    if (ok && meta)
        ok = write(fd, "\n", 1) == 1;
    if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0))
        ok = false;
    free(rec);
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return qs_fail(e, 500, "internal", NULL, "cannot write %s: %s", path, strerror(err));
    }
    if (!(*path_out = strdup(path)))
        return qs_fail(e, 500, "internal", NULL, "out of memory");
    return 0;
}

/* A store this server cannot write (another user's, a read-only mount or
 * snapshot): 403 naming the store and the cause, before the store is closed
 * for the pipeline; searches go on. */
static bool refuse_read_only(qr_server *s, qs_err *e)
{
    if (qr_store_writable(s->store_dir) == 0)
        return false;
    qs_fail(e, 403, "read_only", NULL, "%s", qr_last_error());
    return true;
}

/* "include" / "exclude": an array of at most QR_FILTER_MAX_PATTERNS glob
 * strings of 1..QR_FILTER_MAX_PATTERN_BYTES bytes each (ingest/filter.h);
 * errors name the field ("include", "include[2]"). *out is malloc'd, its
 * strings borrowed from the body. */
static int get_globs(const json_t *body, const char *key, const char ***out, size_t *n, qs_err *e)
{
    *out = NULL;
    *n = 0;
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return qs_fail(e, 400, "type", key, "%s: must be an array of glob strings", key);
    size_t m = json_array_size(v);
    if (m > QR_FILTER_MAX_PATTERNS)
        return qs_fail(e, 400, "limit", key, "%s: %zu patterns exceed the limit of %d", key, m,
                       QR_FILTER_MAX_PATTERNS);
    for (size_t i = 0; i < m; i++) {
        const json_t *g = json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof param, "%s[%zu]", key, i);
        if (!json_is_string(g))
            return qs_fail(e, 400, "type", param, "%s: must be a string (a glob)", param);
        size_t l = json_string_length(g);
        if (!l)
            return qs_fail(e, 400, "empty", param, "%s: must not be empty", param);
        if (l > QR_FILTER_MAX_PATTERN_BYTES || strlen(json_string_value(g)) != l)
            return qs_fail(e, 400, "limit", param, "%s: %zu bytes exceed the limit of %d (or hold a NUL)", param, l,
                           QR_FILTER_MAX_PATTERN_BYTES);
    }
    if (!m)
        return 0;
    if (!(*out = malloc(m * sizeof **out)))
        return qs_fail(e, 500, "internal", NULL, "out of memory");
    for (size_t i = 0; i < m; i++)
        (*out)[i] = json_string_value(json_array_get(v, i));
    *n = m;
    return 0;
}

enum MHD_Result qs_route_docs_post(qs_req *q, json_t *body)
{
    qr_server *s = q->s;
    qs_err e = {0};
    if (refuse_read_only(s, &e))
        return qs_send_err(q, &e);
    const char *path = NULL, *text = NULL, *name = NULL;
    size_t tlen = 0;
    if (qs_get_str(body, "path", false, 4095, &path, NULL, &e) ||
        qs_get_str(body, "text", false, s->o.lim.max_string_bytes, &text, &tlen, &e) ||
        qs_get_str(body, "name", false, 200, &name, NULL, &e))
        return qs_send_err(q, &e);
    const json_t *meta = json_object_get(body, "meta");
    if (meta && json_is_null(meta))
        meta = NULL;
    if (!path == !text) {
        qs_fail(&e, 400, "missing_field", path ? "text" : "path",
                "give either \"path\" (a file or directory on the server) or \"text\" with \"name\"");
        return qs_send_err(q, &e);
    }
    char *posted = NULL;
    static const char *const path_only[] = {"include", "exclude", "default_excludes"};
    for (size_t i = 0; text && i < 3; i++)
        if (json_object_get(body, path_only[i])) {
            qs_fail(&e, 400, "invalid", path_only[i], "%s: only with \"path\" (it chooses files below it)",
                    path_only[i]);
            return qs_send_err(q, &e);
        }
    if (path) {
        if (path[0] != '/') {
            qs_fail(&e, 400, "invalid", "path", "path: must be absolute (a file or directory on the server)");
            return qs_send_err(q, &e);
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            qs_fail(&e, 400, "not_found", "path", "path: %s: %s", path, strerror(errno));
            return qs_send_err(q, &e);
        }
        if (meta) {
            qs_fail(&e, 400, "invalid", "meta", "meta: only with \"text\" (files carry their own metadata)");
            return qs_send_err(q, &e);
        }
    } else {
        if (!name || !*name) {
            qs_fail(&e, 400, "missing_field", "name", "name: required with text (a file name such as notes.md)");
            return qs_send_err(q, &e);
        }
        if (tlen == 0) {
            qs_fail(&e, 400, "empty", "text", "text: must not be empty");
            return qs_send_err(q, &e);
        }
        if (meta) {
            if (!json_is_object(meta)) {
                qs_fail(&e, 400, "type", "meta", "meta: must be an object {key: value}");
                return qs_send_err(q, &e);
            }
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)meta, k, v) {
                char param[96];
                snprintf(param, sizeof param, "meta.%.60s", k);
                if (!strcmp(k, "text") || !strcmp(k, "title") || !*k) {
                    qs_fail(&e, 400, "invalid", param, "%s: reserved key", param);
                    return qs_send_err(q, &e);
                }
                if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
                    qs_fail(&e, 400, "type", param, "%s: must be a string, number or boolean", param);
                    return qs_send_err(q, &e);
                }
            }
        }
        if (write_posted(s, name, text, tlen, meta, &posted, &e))
            return qs_send_err(q, &e);
        path = posted;
    }
    ingest_arg a = {.path = path, .default_excludes = true};
    if (qs_get_bool(body, "default_excludes", &a.default_excludes, &e) ||
        get_globs(body, "include", &a.include, &a.n_include, &e) ||
        get_globs(body, "exclude", &a.exclude, &a.n_exclude, &e)) {
        free(a.include);
        free(posted);
        return qs_send_err(q, &e);
    }
    int rc = with_store_closed(s, NULL, run_ingest, list_written, &a);
    free(a.include);
    free(a.exclude);
    free(posted);
    if (rc) {
        json_decref(a.docs);
        if (rc == QR_EIO)
            qs_fail(&e, 503, "store_busy", NULL, "ingest: %s", qr_last_error());
        else if (rc == QR_EMISMATCH || rc == QR_EINVAL || rc == QR_ENOTFOUND)
            qs_fail(&e, 422, "ingest", "path", "ingest: %s", qr_last_error());
        else
            qs_fail(&e, 500, "internal", NULL, "ingest: %s", qr_last_error());
        qr_ingest_report_free(&a.rep);
        return qs_send_err(q, &e);
    }
    json_t *j = NULL;
    rc = qr_ingest_report_to_json(&a.rep, &j);
    qr_ingest_report_free(&a.rep);
    if (rc) {
        json_decref(a.docs);
        qs_fail(&e, 500, "internal", NULL, "ingest report: %s", qr_last_error());
        return qs_send_err(q, &e);
    }
    json_object_set_new(j, "documents", a.docs);
    json_object_set_new(j, "documents_omitted", json_integer((json_int_t)a.omitted));
    return qs_send_json(q, 201, j);
}

typedef struct {
    uint64_t id;
    size_t chunks;
    char posted[4400]; /* the server's file of a posted text, "" for a user's document */
} del_arg;

/* Before the delete (store open): is it a posted text? Then its file goes too. */
static int find_posted(qr_server *s, void *user)
{
    del_arg *a = user;
    qr_store_txn *t = NULL;
    qr_store_doc d;
    int rc = qr_store_txn_begin(s->store, false, &t);
    if (!rc)
        rc = qr_store_get_doc(t, a->id, &d);
    if (!rc && !posted_file(s, d.path, a->posted, sizeof a->posted))
        a->posted[0] = '\0';
    qr_store_txn_abort(t);
    return rc;
}

static int run_delete(qr_server *s, void *user)
{
    del_arg *a = user;
    int rc = qr_ingest_delete_doc(s->store_dir, a->id, &a->chunks);
    /* the file would come back at the next ingest of the store (or a re-post) */
    if (!rc && a->posted[0] && unlink(a->posted) != 0 && errno != ENOENT) {
        QR_WARN("serve: deleted document %llu but not its file %s: %s", (unsigned long long)a->id, a->posted,
                strerror(errno));
        a->posted[0] = '\0';
    }
    return rc;
}

enum MHD_Result qs_route_docs_delete(qs_req *q)
{
    qr_server *s = q->s;
    qs_err e = {0};
    if (refuse_read_only(s, &e))
        return qs_send_err(q, &e);
    const char *t = q->path_arg;
    char *end;
    errno = 0;
    unsigned long long id = strtoull(t, &end, 10);
    if (!*t || *end || errno || t[0] < '0' || t[0] > '9') {
        qs_fail(&e, 400, "invalid", "id", "id: \"%.40s\" is not a document id (a decimal number)", t);
        return qs_send_err(q, &e);
    }
    del_arg a = {.id = id};
    int rc = with_store_closed(s, find_posted, run_delete, NULL, &a);
    if (rc == QR_ENOTFOUND) {
        qs_fail(&e, 404, "not_found", "id", "no document with id %llu", id);
        return qs_send_err(q, &e);
    }
    if (rc) {
        qs_fail(&e, rc == QR_EIO ? 503 : 500, rc == QR_EIO ? "store_busy" : "internal", NULL, "delete: %s",
                qr_last_error());
        return qs_send_err(q, &e);
    }
    return qs_send_json(q, 200, json_pack("{s:I, s:I, s:o}", "deleted", (json_int_t)id, "chunks", (json_int_t)a.chunks,
                                          "removed_file", a.posted[0] ? json_string(a.posted) : json_null()));
}

/* GET /v1/documents?limit=N&cursor=ID&path=GLOB: documents by id, a page at a
 * time. The cursor is the last id of the previous page (ids only grow and are
 * never reused, so pages stay stable while documents are added or deleted);
 * path filters with fnmatch(3) like the search filter. */
#define QS_DOCS_PAGE_DEFAULT 100
#define QS_DOCS_PAGE_MAX 1000

typedef struct {
    const char *glob;
    size_t limit;
    json_t *data;
    bool more;
    uint64_t last;
} list_arg;

static int list_doc(const qr_store_doc *d, void *user)
{
    list_arg *a = user;
    if (a->glob && fnmatch(a->glob, d->path, 0) != 0)
        return 0;
    if (json_array_size(a->data) == a->limit) {
        a->more = true;
        return 1; /* stop: one more match says there is a next page */
    }
    a->last = d->id;
    return json_array_append_new(a->data, doc_json(d)) ? qr_fail(QR_ENOMEM, "documents: list") : 0;
}

static enum MHD_Result check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    char *bad = cls;
    if (strcmp(key, "limit") && strcmp(key, "cursor") && strcmp(key, "path") && !bad[0]) {
        snprintf(bad, 64, "%.63s", key);
        return MHD_NO;
    }
    return MHD_YES;
}

static int query_u64(struct MHD_Connection *c, const char *key, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out, qs_err *e)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] < '0' || v[0] > '9')
        return qs_fail(e, 400, "type", key, "%s: \"%.40s\" is not a number", key, v);
    if (x < lo || x > hi)
        return qs_fail(e, 400, "limit", key, "%s: must be %llu..%llu (got %llu)", key, lo, hi, x);
    *out = x;
    return 0;
}

enum MHD_Result qs_route_docs_list(qs_req *q)
{
    qr_server *s = q->s;
    qs_err e = {0};
    char bad[64] = "";
    MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, check_query_arg, bad);
    if (bad[0]) {
        qs_fail(&e, 400, "unknown_field", bad, "%s: unknown query parameter (limit, cursor, path)", bad);
        return qs_send_err(q, &e);
    }
    unsigned long long limit = QS_DOCS_PAGE_DEFAULT, cursor = 0;
    if (query_u64(q->conn, "limit", 1, QS_DOCS_PAGE_MAX, &limit, &e) ||
        query_u64(q->conn, "cursor", 0, UINT64_MAX - 1, &cursor, &e))
        return qs_send_err(q, &e);
    const char *glob = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, "path");
    if (glob && (!*glob || strlen(glob) > 4095)) {
        qs_fail(&e, 400, "invalid", "path", "path: must be a glob of 1..4095 bytes");
        return qs_send_err(q, &e);
    }
    list_arg a = {glob, (size_t)limit, json_array(), false, 0};
    if (!a.data) {
        qs_fail(&e, 500, "internal", NULL, "out of memory");
        return qs_send_err(q, &e);
    }
    pthread_rwlock_rdlock(&s->store_rw);
    qr_store_txn *t = NULL;
    int rc = s->store ? qr_store_txn_begin(s->store, false, &t)
                      : qr_fail(QR_EIO, "the store %s is not open (an update failed to reopen it)", s->store_dir);
    if (!rc) {
        rc = qr_store_iter_docs_from(t, cursor + 1, list_doc, &a);
        if (rc == 1)
            rc = 0;
    }
    qr_store_txn_abort(t);
    pthread_rwlock_unlock(&s->store_rw);
    if (rc) {
        json_decref(a.data);
        qs_fail(&e, rc == QR_EIO ? 503 : 500, rc == QR_EIO ? "store_busy" : "internal", NULL, "documents: %s",
                qr_last_error());
        return qs_send_err(q, &e);
    }
    json_t *j = json_object();
    json_object_set_new(j, "object", json_string("list"));
    json_object_set_new(j, "data", a.data);
    json_object_set_new(j, "has_more", json_boolean(a.more));
    json_object_set_new(j, "next_cursor", a.more ? json_integer((json_int_t)a.last) : json_null());
    return qs_send_json(q, 200, j);
}
