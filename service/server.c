/* The HTTP daemon: libmicrohttpd with one thread per connection (handlers may
 * block on retrieval or on a generation, and SSE readers block on the
 * scheduler's event queue), the router, bearer-token auth, body limits,
 * JSON parsing with a depth check before jansson sees the text, JSON error
 * responses (service/API.md), per-route metrics and graceful draining.
 *
 * Request flow (MHD calls the access handler several times per request; the
 * answer, an error found on the 1st call too, goes out on the last call so
 * that the connection stays open for the next request: see refuse):
 *   1st call   route + method (404/405), auth (401), draining (503), and for
 *              POST: Content-Length against the limit (413), missing length
 *              without chunked encoding (411), Content-Type (415).
 *   next calls body bytes appended (over the limit: counted and dropped; the
 *              413 goes out when the body has been read; far over it the
 *              connection is closed).
 *   last call  JSON parse (400 naming the position), depth and string limits
 *              (400 naming the field), then the route handler.
 * The completed callback records status and latency in the metrics. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "service/internal.h"

/* ---------------------------------------------------------------- small helpers */

double qs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *qs_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
}

void qs_make_id(qr_server *s, const char *prefix, char *buf, size_t len)
{
    unsigned long long n = atomic_fetch_add(&s->id_counter, 1);
    snprintf(buf, len, "%s%s%08llx", prefix, s->id_prefix, n & 0xffffffffull);
}

bool qs_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    int fd = ci->connect_fd;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP))
        return true;
    if (p.revents & POLLIN) {
        char ch;
        ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
}

static const char *type_of(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error"; /* OpenAI's type for 403 */
    case 404: return "not_found_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

int qs_fail(qs_err *e, int status, const char *code, const char *param, const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (status == 503 && e->retry_after <= 0)
        e->retry_after = 1;
    return -1;
}

/* ---------------------------------------------------------------- responses */

static const char *route_allow(int route);

enum MHD_Result qs_queue(qs_req *q, int status, struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(q->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES)
        q->status = status;
    return ok;
}

enum MHD_Result qs_send_text(qs_req *q, int status, const char *ctype, char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return qs_queue(q, status, r);
}

struct MHD_Response *qs_json_response(json_t *j)
{
    char *t = j ? qs_dump(j) : NULL;
    json_decref(j);
    if (!t)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(t);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

enum MHD_Result qs_send_json(qs_req *q, int status, json_t *j)
{
    char *t = j ? qs_dump(j) : NULL;
    json_decref(j);
    if (!t) {
        static const char oom[] = "{\"error\": {\"message\": \"out of memory building the response\", "
                                  "\"type\": \"server_error\", \"param\": null, \"code\": \"internal\"}}";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (r)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        return qs_queue(q, 500, r);
    }
    size_t n = strlen(t);
    t[n] = '\0';
    return qs_send_text(q, status, "application/json", t, n);
}

static const char *route_method(int route);

enum MHD_Result qs_send_err(qs_req *q, const qs_err *e)
{
    if (q->ollama) { /* Ollama's shape: {"error": "message"} */
        json_t *j = json_pack("{s:s}", "error", e->msg);
        if (!j) /* not UTF-8 (echoed input) */
            j = json_pack("{s:s}", "error", "invalid request (message not printable)");
        struct MHD_Response *r = qs_json_response(j);
        if (!r)
            return MHD_NO;
        if (e->status == 401)
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        if (e->status == 503) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", e->retry_after > 0 ? e->retry_after : 1);
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        if (e->status == 405)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, q->route == QS_R_OLLAMA_ROOT ? "GET, HEAD"
                                                                                          : route_method(q->route));
        return qs_queue(q, e->status, r);
    }
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string(e->msg));
    if (!json_object_get(err, "message")) /* not UTF-8 (echoed input): say so without it */
        json_object_set_new(err, "message", json_string("invalid request (message not printable)"));
    json_object_set_new(err, "type", json_string(type_of(e->status)));
    json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
    json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
    json_t *j = json_object();
    json_object_set_new(j, "error", err);
    struct MHD_Response *r = qs_json_response(j);
    if (!r)
        return MHD_NO;
    if (e->status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (e->status == 503 || e->status == 429) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", e->retry_after > 0 ? e->retry_after : 1);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (e->status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, route_allow(q->route));
    return qs_queue(q, e->status, r);
}

/* ---------------------------------------------------------------- field helpers */

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int qs_get_str(const json_t *o, const char *key, bool required, size_t max, const char **out, size_t *len,
               qs_err *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return qs_fail(e, 400, "missing_field", key, "%s: required (a string)", key);
        return 0;
    }
    if (!json_is_string(v))
        return qs_fail(e, 400, "type", key, "%s: must be a string (got %s)", key, kind_name(v));
    size_t n = json_string_length(v);
    if (n > max)
        return qs_fail(e, 400, "limit", key, "%s: %zu bytes exceed the limit of %zu", key, n, max);
    if (required && n == 0)
        return qs_fail(e, 400, "empty", key, "%s: must not be empty", key);
    *out = json_string_value(v);
    if (len)
        *len = n;
    return 0;
}

int qs_get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, qs_err *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    long long x;
    if (json_is_integer(v)) {
        x = (long long)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) >= -9e18 && json_real_value(v) <= 9e18 &&
               json_real_value(v) == (double)(long long)json_real_value(v)) {
        /* 5.0 is 5; the range test comes first: converting 1e308 to long long is undefined */
        x = (long long)json_real_value(v);
    } else {
        return qs_fail(e, 400, "type", key, "%s: must be an integer (got %s)", key, kind_name(v));
    }
    if (x < lo || x > hi)
        return qs_fail(e, 400, "limit", key, "%s: must be %lld..%lld (got %lld)", key, lo, hi, x);
    *out = x;
    return 0;
}

int qs_get_num(const json_t *o, const char *key, double lo, double hi, double *out, qs_err *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return qs_fail(e, 400, "type", key, "%s: must be a number (got %s)", key, kind_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return qs_fail(e, 400, "limit", key, "%s: must be %g..%g (got %g)", key, lo, hi, x);
    *out = x;
    return 0;
}

int qs_get_float(const json_t *o, const char *key, double lo, double hi, float *out, qs_err *e)
{
    double d = *out;
    int rc = qs_get_num(o, key, lo, hi, &d, e);
    if (!rc)
        *out = (float)d;
    return rc;
}

int qs_get_bool(const json_t *o, const char *key, bool *out, qs_err *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return qs_fail(e, 400, "type", key, "%s: must be true or false (got %s)", key, kind_name(v));
    *out = json_is_true(v);
    return 0;
}

/* ---------------------------------------------------------------- body checks */

/* Deepest nesting of [ and { outside strings; stops counting past limit. The
 * text is not validated here (jansson does that next). */
static int json_depth(const char *b, size_t n, int limit)
{
    int d = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++d > max && (max = d) > limit)
                return max;
        } else if (c == ']' || c == '}') {
            d--;
        }
    }
    return max;
}

/* Every string (and object key) within the limit; names the first one that is not. */
static int check_strings(const json_t *v, char *path, size_t plen, size_t cap, size_t max, qs_err *e)
{
    if (json_is_string(v)) {
        if (json_string_length(v) > max)
            return qs_fail(e, 400, "limit", path[0] ? path : NULL, "%s: string of %zu bytes exceeds the limit of %zu",
                           path[0] ? path : "body", json_string_length(v), max);
        return 0;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            snprintf(path + plen, cap - plen, "[%zu]", i);
            if (check_strings(json_array_get(v, i), path, strlen(path), cap, max, e))
                return -1;
            path[plen] = '\0';
        }
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (strlen(k) > max)
                return qs_fail(e, 400, "limit", NULL, "body: object key of %zu bytes exceeds the limit of %zu",
                               strlen(k), max);
            snprintf(path + plen, cap - plen, "%s%.64s", plen ? "." : "", k);
            if (check_strings(x, path, strlen(path), cap, max, e))
                return -1;
            path[plen] = '\0';
        }
    }
    return 0;
}

static int parse_body(qr_server *s, qs_req *q, json_t **out, qs_err *e)
{
    if (q->len == 0)
        return qs_fail(e, 400, "invalid_json", NULL, "body: empty; expected a JSON object");
    int depth = json_depth(q->body, q->len, s->o.lim.max_json_depth);
    if (depth > s->o.lim.max_json_depth)
        return qs_fail(e, 400, "limit", NULL, "body: JSON nested deeper than the limit of %d",
                       s->o.lim.max_json_depth);
    json_error_t je;
    json_t *j = json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return qs_fail(e, 400, "invalid_json", NULL, "body: invalid JSON at line %d, column %d: %s", je.line,
                       je.column, je.text);
    if (!json_is_object(j)) {
        qs_fail(e, 400, "invalid_json", NULL, "body: expected a JSON object (got %s)", kind_name(j));
        json_decref(j);
        return -1;
    }
    char path[256] = "";
    if (check_strings(j, path, 0, sizeof path, s->o.lim.max_string_bytes, e)) {
        json_decref(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* ---------------------------------------------------------------- routing */

static int find_route(const char *url, char *arg, size_t arglen)
{
    static const struct { const char *path; int route; } tab[] = {
        {"/health", QS_R_HEALTH},
        {"/ready", QS_R_READY},
        {"/metrics", QS_R_METRICS},
        {"/v1/search", QS_R_SEARCH},
        {"/v1/ask", QS_R_ASK},
        {"/v1/embeddings", QS_R_EMBEDDINGS},
        {"/v1/chat/completions", QS_R_CHAT},
        {"/v1/completions", QS_R_COMPLETIONS},
        {"/v1/models", QS_R_MODELS},
        {"/v1/documents", QS_R_DOCS_POST},
        {"/", QS_R_OLLAMA_ROOT},
        {"/api/version", QS_R_OLLAMA_VERSION},
        {"/api/tags", QS_R_OLLAMA_TAGS},
        {"/api/show", QS_R_OLLAMA_SHOW},
        {"/api/chat", QS_R_OLLAMA_CHAT},
        {"/api/generate", QS_R_OLLAMA_GENERATE},
        {"/api/embed", QS_R_OLLAMA_EMBED},
        {"/api/embeddings", QS_R_OLLAMA_EMBEDDINGS},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(url, tab[i].path))
            return tab[i].route;
    static const char pre[] = "/v1/documents/";
    if (!strncmp(url, pre, sizeof pre - 1) && url[sizeof pre - 1] && !strchr(url + sizeof pre - 1, '/')) {
        snprintf(arg, arglen, "%s", url + sizeof pre - 1);
        return QS_R_DOCS_DELETE;
    }
    return QS_R_OTHER;
}

static const char *route_method(int route)
{
    switch (route) {
    case QS_R_HEALTH:
    case QS_R_READY:
    case QS_R_METRICS:
    case QS_R_MODELS:
    case QS_R_DOCS_LIST:
    case QS_R_OLLAMA_ROOT:
    case QS_R_OLLAMA_VERSION:
    case QS_R_OLLAMA_TAGS: return "GET";
    case QS_R_DOCS_DELETE: return "DELETE";
    default: return "POST";
    }
}

/* The Allow header of a 405: every method of the route's path. */
static const char *route_allow(int route)
{
    return route == QS_R_DOCS_POST || route == QS_R_DOCS_LIST ? "GET, POST" : route_method(route);
}

static bool is_generation(int route)
{
    return route == QS_R_CHAT || route == QS_R_COMPLETIONS || route == QS_R_ASK || route == QS_R_OLLAMA_CHAT ||
           route == QS_R_OLLAMA_GENERATE;
}

/* Constant-time comparison: the time depends on the token's length only. */
static bool token_ok(const qr_server *s, const char *hdr)
{
    if (!hdr)
        return false;
    if (strncasecmp(hdr, "Bearer ", 7) != 0)
        return false;
    const char *t = hdr + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    unsigned char d = (unsigned char)(n != s->token_len);
    for (size_t i = 0; i < s->token_len; i++) {
        unsigned char x = i < n ? (unsigned char)t[i] : 0;
        d |= (unsigned char)(x ^ (unsigned char)s->token[i]);
    }
    return d == 0;
}

static bool json_ctype(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    static const char aj[] = "application/json";
    if (strncasecmp(ct, aj, sizeof aj - 1) != 0)
        return false;
    char c = ct[sizeof aj - 1];
    return c == '\0' || c == ';' || c == ' ';
}

static enum MHD_Result count_cl(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        (*(int *)cls)++;
    return MHD_YES;
}

static enum MHD_Result dispatch(qr_server *s, qs_req *q)
{
    qs_err e = {0};
    q->dispatched = true;
    switch (q->route) {
    case QS_R_HEALTH: return qs_route_health(q);
    case QS_R_READY: return qs_route_ready(q);
    case QS_R_METRICS: return qs_route_metrics(q);
    case QS_R_MODELS: return qs_route_models(q);
    case QS_R_OLLAMA_ROOT: return qs_route_ollama_root(q);
    case QS_R_OLLAMA_VERSION: return qs_route_ollama_version(q);
    case QS_R_OLLAMA_TAGS: return qs_route_ollama_tags(q);
    default: break;
    }
    if (atomic_load(&s->state) != QS_STATE_READY) {
        qs_fail(&e, 503, "draining", NULL, "the server is shutting down");
        return qs_send_err(q, &e);
    }
    /* Non-generation work is bounded here; generations by the scheduler's queue. */
    bool gen = is_generation(q->route) && s->sched;
    if (!gen) {
        int n = atomic_fetch_add(&s->inflight_other, 1);
        q->counted = true;
        if (n >= s->o.lim.max_inflight) {
            qs_metrics_add(&s->m, &s->m.refused_busy, 1);
            qs_fail(&e, 503, "busy", NULL, "too many requests in flight (limit %d); retry shortly",
                    s->o.lim.max_inflight);
            return qs_send_err(q, &e);
        }
    }
    if (q->route == QS_R_DOCS_DELETE)
        return qs_route_docs_delete(q);
    if (q->route == QS_R_DOCS_LIST)
        return qs_route_docs_list(q);
    if (q->too_big) {
        qs_fail(&e, 413, "limit", NULL, "body: more than the limit of %zu bytes", s->o.lim.max_body_bytes);
        return qs_send_err(q, &e);
    }
    json_t *body = NULL;
    if (parse_body(s, q, &body, &e))
        return qs_send_err(q, &e);
    enum MHD_Result r;
    switch (q->route) {
    case QS_R_SEARCH: r = qs_route_search(q, body); break;
    case QS_R_ASK: r = qs_route_ask(q, body); break;
    case QS_R_EMBEDDINGS: r = qs_route_embeddings(q, body); break;
    case QS_R_CHAT: r = qs_route_chat(q, body); break;
    case QS_R_COMPLETIONS: r = qs_route_completions(q, body); break;
    case QS_R_DOCS_POST: r = qs_route_docs_post(q, body); break;
    case QS_R_OLLAMA_SHOW: r = qs_route_ollama_show(q, body); break;
    case QS_R_OLLAMA_CHAT: r = qs_route_ollama_chat(q, body); break;
    case QS_R_OLLAMA_GENERATE: r = qs_route_ollama_generate(q, body); break;
    case QS_R_OLLAMA_EMBED: r = qs_route_ollama_embed(q, body); break;
    case QS_R_OLLAMA_EMBEDDINGS: r = qs_route_ollama_embeddings(q, body); break;
    default:
        qs_fail(&e, 500, "internal", NULL, "no handler for this route");
        r = qs_send_err(q, &e);
    }
    json_decref(body);
    return r;
}

/* An error found on the first call is answered on the last one, when the
 * whole request has been read: libmicrohttpd (0.9.75) closes the connection
 * after a response queued earlier, even for a GET without a body, so a
 * client could not reuse its connection after a 404 or a 401. The body of a
 * refused request is read and dropped (closed far past the body limit, like
 * a 413). `now` answers at once (the connection then closes): a
 * Content-Length over the limit, or a client waiting for 100 Continue. */
static enum MHD_Result refuse(qs_req *q, const qs_err *e, bool now)
{
    if (now)
        return qs_send_err(q, e);
    if (!(q->pending = malloc(sizeof *e)))
        return MHD_NO;
    *q->pending = *e;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    qr_server *s = cls;
    qs_req *q = *con_cls;
    qs_err e = {0};
    if (!q) {
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        *con_cls = q;
        q->s = s;
        q->conn = conn;
        q->t0 = qs_now();
        atomic_fetch_add(&s->inflight_all, 1);
        q->route = find_route(url, q->path_arg, sizeof q->path_arg);
        if (q->route == QS_R_DOCS_POST && !strcmp(method, "GET"))
            q->route = QS_R_DOCS_LIST; /* one path, two routes */
        q->ollama = qs_is_ollama_route(q->route) || !strncmp(url, "/api/", 5);
        /* a client that waits for 100 Continue sends no body unless told to: refuse it at once */
        bool now = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT) != NULL;
        if (!strcmp(version, MHD_HTTP_VERSION_1_1) &&
            !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)) { /* RFC 9112 3.2 */
            qs_fail(&e, 400, "no_host", NULL, "HTTP/1.1 request without a Host header");
            return refuse(q, &e, now);
        }
        if (q->route == QS_R_OTHER) {
            qs_fail(&e, 404, "unknown_route", NULL, "no route %s %.200s", method, url);
            return refuse(q, &e, now);
        }
        if (strcmp(method, route_method(q->route)) != 0 &&
            !(q->route == QS_R_OLLAMA_ROOT && !strcmp(method, "HEAD"))) { /* ollama's heartbeat is HEAD / */
            qs_fail(&e, 405, "method", NULL, "%s %.200s: method not allowed (use %s)", method, url,
                    route_allow(q->route));
            return refuse(q, &e, now);
        }
        if (q->route != QS_R_HEALTH && s->token_len &&
            !token_ok(s, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))) {
            qs_fail(&e, 401, "unauthorized", NULL, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
            return refuse(q, &e, now);
        }
        q->is_post = !strcmp(method, "POST");
        if (q->is_post) {
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            int n_cl = 0;
            MHD_get_connection_values(conn, MHD_HEADER_KIND, count_cl, &n_cl);
            if (n_cl > 1) { /* RFC 9112 6.3: ambiguous framing, a request-smuggling vector */
                qs_fail(&e, 400, "content_length", NULL, "body: more than one Content-Length header");
                return refuse(q, &e, now);
            }
            const char *te =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
            if (cl) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(cl, &end, 10);
                if (errno || *end || n > s->o.lim.max_body_bytes) {
                    qs_fail(&e, 413, "limit", NULL, "body: Content-Length %.40s exceeds the limit of %zu bytes", cl,
                            s->o.lim.max_body_bytes);
                    return refuse(q, &e, true); /* not worth reading: the connection closes */
                }
            } else if (!te || strcasecmp(te, "chunked") != 0) {
                qs_fail(&e, 411, "length_required", NULL, "body: Content-Length required");
                return refuse(q, &e, now);
            }
            /* Ollama ignores Content-Type (its docs use curl -d, which sends a form type) */
            if (!qs_is_ollama_route(q->route) &&
                !json_ctype(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
                qs_fail(&e, 415, "content_type", NULL, "Content-Type must be application/json");
                return refuse(q, &e, now);
            }
        }
        return MHD_YES; /* answered on the last call, even without a body (see refuse) */
    }
    if (q->status) { /* already answered (e.g. 413): drop what still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (q->pending || q->too_big || q->len + n > s->o.lim.max_body_bytes) {
            q->too_big = !q->pending; /* a request already refused: its body is read and dropped */
            q->discarded += n;
            /* a client that goes on sending far past the limit loses the connection */
            return q->discarded > 4 * s->o.lim.max_body_bytes + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (q->len + n + 1 > q->cap) {
            size_t cap = q->cap ? q->cap : 4096;
            while (cap < q->len + n + 1)
                cap *= 2;
            char *b = realloc(q->body, cap);
            if (!b)
                return MHD_NO;
            q->body = b;
            q->cap = cap;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        q->body[q->len] = '\0';
        return MHD_YES;
    }
    if (q->dispatched)
        return MHD_YES;
    if (q->pending) {
        q->dispatched = true;
        return qs_send_err(q, q->pending);
    }
    return dispatch(s, q);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    qr_server *s = cls;
    qs_req *q = *con_cls;
    if (!q)
        return;
    int status = q->status ? q->status : 499; /* 499: the client went away before an answer */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && q->status == 200 && q->route != QS_R_HEALTH)
        status = q->status; /* a stream cut short still had status 200 */
    qs_metrics_observe(&s->m, q->route, status, qs_now() - q->t0);
    if (q->counted)
        atomic_fetch_sub(&s->inflight_other, 1);
    atomic_fetch_sub(&s->inflight_all, 1);
    free(q->pending);
    free(q->body);
    free(q);
    *con_cls = NULL;
}

/* Connection counts for /metrics: with keep-alive one connection carries many requests. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_ctx;
    qr_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->conns_total, 1);
        atomic_fetch_add(&s->conns_open, 1);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->conns_open, 1);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    QR_DEBUG("serve: libmicrohttpd: %s", buf);
}

/* ---------------------------------------------------------------- life cycle */

void qr_server_limits_default(qr_server_limits *l)
{
    l->max_body_bytes = 4u << 20;
    l->max_json_depth = 32;
    l->max_string_bytes = 1u << 20;
    l->max_k = 100;
    l->max_gen_tokens = 4096;
    l->max_inputs = 256;
    l->max_messages = 256;
    l->max_inflight = 64;
}

void qr_server_opts_default(qr_server_opts *o)
{
    memset(o, 0, sizeof *o);
    qr_sample_params_default(&o->sample);
    o->sample.max_tokens = 256;
    o->default_k = 5;
    qr_retrieve_opts_default(&o->ro);
    qr_sched_opts_default(&o->sched);
    qr_server_limits_default(&o->lim);
}

int qs_open_store(qr_server *s); /* routes.c */
void qs_close_store(qr_server *s);

static char *dup_or_null(const char *x)
{
    return x && *x ? strdup(x) : NULL;
}

int qr_server_start(const qr_server_opts *o, qr_server **out)
{
    if (!o || !o->store_dir || !*o->store_dir)
        return qr_fail(QR_EINVAL, "serve: no store directory");
    qr_server *s = calloc(1, sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "serve: server");
    s->o = *o;
    s->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    s->store_dir = strdup(o->store_dir);
    s->token = dup_or_null(o->token);
    s->token_len = s->token ? strlen(s->token) : 0;
    s->embedder_path = dup_or_null(o->embedder_path);
    s->embedder_name = dup_or_null(o->embedder_name);
    s->llm_name = dup_or_null(o->llm_name);
    s->llm_path = dup_or_null(o->llm_path);
    s->o.host = s->host;
    s->o.store_dir = s->store_dir;
    s->o.token = s->token;
    s->o.embedder_path = s->embedder_path;
    s->o.embedder_name = s->embedder_name;
    s->o.llm_name = s->llm_name;
    s->o.llm_path = s->llm_path;
    s->o.sample.stop = NULL;
    s->o.sample.n_stop = 0;
    if (s->o.default_k < 1)
        s->o.default_k = 5;
    if (s->o.default_k > s->o.lim.max_k)
        s->o.default_k = s->o.lim.max_k;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    {   /* writer preference: a document update is not starved by a stream of searches */
        pthread_rwlockattr_t ra;
        pthread_rwlockattr_init(&ra);
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&s->store_rw, &ra);
        pthread_rwlockattr_destroy(&ra);
    }
    qs_metrics_init(&s->m);
    atomic_init(&s->state, QS_STATE_STARTING);
    atomic_init(&s->inflight_other, 0);
    atomic_init(&s->inflight_all, 0);
    atomic_init(&s->id_counter, 0);
    atomic_init(&s->conns_total, 0);
    atomic_init(&s->conns_open, 0);
    s->started = (double)time(NULL);
    {
        unsigned char rnd[4] = {0};
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd)
                memset(rnd, 0, sizeof rnd);
            close(fd);
        }
        snprintf(s->id_prefix, sizeof s->id_prefix, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    }
    int rc = 0;
    struct addrinfo *ai = NULL;
    if (!s->host || !s->store_dir || (o->token && *o->token && !s->token)) {
        rc = qr_fail(QR_ENOMEM, "serve: options");
        goto fail;
    }
    if ((rc = qs_open_store(s)))
        goto fail;
    if (o->llm) {
        const qr_model_config *cfg = qr_model_cfg(o->llm);
        int n_ctx = o->n_ctx > 0 ? o->n_ctx : 4096;
        if (cfg->max_pos > 0 && cfg->max_pos < n_ctx)
            n_ctx = (int)cfg->max_pos;
        s->n_ctx = n_ctx;
        qr_sched_opts so = o->sched;
        so.n_ctx = n_ctx;
        if ((rc = qr_sched_create(o->llm, &so, &s->sched)))
            goto fail;
    }
    /* bind address */
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    int g = getaddrinfo(s->host, portstr, &hints, &ai);
    if (g) {
        rc = qr_fail(QR_EINVAL, "serve: listen address %s: %s", s->host, gai_strerror(g));
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Open connections: idle or slow ones (a slowloris client) must not lock
     * out real ones, so allow many more than are served at once; each is a
     * thread that mostly sleeps. Bounded by the descriptors we may open. */
    unsigned conn_limit = 1024;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024 + 128)
        conn_limit = rl.rlim_cur > 192 ? (unsigned)rl.rlim_cur - 128 : 64;
    if (o->connection_limit > 0)
        conn_limit = (unsigned)o->connection_limit;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u << 20),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->idle_timeout_s > 0 ? o->idle_timeout_s : 60),
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_END);
    if (!s->d) {
        rc = qr_fail(QR_EIO, "serve: cannot listen on %s port %d (address in use, or not an address of this host)",
                     s->host, o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!di || getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = qr_fail(QR_EIO, "serve: cannot read the bound port: %s", strerror(errno));
        goto fail;
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    atomic_store(&s->state, QS_STATE_READY);
    *out = s;
    return 0;
fail:
    if (ai)
        freeaddrinfo(ai);
    qr_server_stop(s);
    return rc;
}

int qr_server_port(const qr_server *s)
{
    return s ? s->port : 0;
}

int qr_server_drain(qr_server *s, int grace_ms)
{
    if (!s || atomic_exchange(&s->state, QS_STATE_DRAINING) == QS_STATE_DRAINING)
        return 0;
    /* The listener stays open while in-flight work finishes: /ready answers
     * 503 "draining" (a load balancer or a client's poll takes the server out
     * of rotation), new work is refused with 503 + Retry-After, /health still
     * answers; then the listener closes. */
    double t0 = qs_now();
    int cancelled = s->sched ? qr_sched_drain(s->sched, grace_ms) : 0;
    /* Requests other than generations (and streams writing their last events)
     * finish on their own; wait for them within what is left of the grace. */
    double until = t0 + (double)grace_ms / 1000.0 + 2.0;
    while (atomic_load(&s->inflight_all) > 0 && qs_now() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->inflight_all) > 0)
        QR_WARN("serve: %d requests still open after the grace period", atomic_load(&s->inflight_all));
    if (s->d) {
        MHD_socket fd = MHD_quiesce_daemon(s->d);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    return cancelled;
}

void qr_server_stop(qr_server *s)
{
    if (!s)
        return;
    atomic_store(&s->state, QS_STATE_DRAINING);
    /* end every generation first: connection threads that stream one are
     * joined by MHD_stop_daemon */
    if (s->sched)
        qr_sched_drain(s->sched, 0);
    if (s->d)
        MHD_stop_daemon(s->d);
    qr_sched_destroy(s->sched);
    qs_close_store(s);
    qs_metrics_destroy(&s->m);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_cond_destroy(&s->pool_cv);
    pthread_rwlock_destroy(&s->store_rw);
    free(s->host);
    free(s->store_dir);
    if (s->token) {
        memset(s->token, 0, s->token_len);
        free(s->token);
    }
    free(s->embedder_path);
    free(s->embedder_name);
    free(s->llm_name);
    free(s->llm_path);
    free(s);
}
