/* The HTTP service in-process on a free loopback port, talked to over real
 * sockets: every route's happy path and its errors, bearer auth, limits,
 * SSE framing, 503 for a full queue and the in-flight limit, client
 * disconnects cancelling generations, documents, metrics, draining.
 *
 * Parts: a BM25-only store ingested from tests/fixtures/ingest, stories260K
 * (tests/fixtures/models) as the LLM, the random-weight MiniLM fixture as the
 * embedder (for /v1/embeddings). Expected values come from the fixtures'
 * text (which passage holds "bananas"), from the stories260K greedy
 * reference ids (tests/fixtures/models/stories260K/greedy_from_bos_60.ref.txt),
 * from direct library calls (qr_embed_texts for the embeddings, qr_answer_run
 * for /v1/ask, qr_generate on the rendered chat template for 8 concurrent
 * chat requests). */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "generate/answer.h"
#include "generate/chat.h"
#include "generate/extract.h"
#include "ingest/pipeline.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "service/endpoint.h"
#include "service/server.h"
#include "tests/unit/test.h"

static const char *TOKEN = "s3cret-t0ken";
static int g_port;

/* ---------------------------------------------------------------- clients */

typedef struct {
    int status;
    char *body;
    json_t *j;
} resp;

static void resp_free(resp *r)
{
    free(r->body);
    json_decref(r->j);
    memset(r, 0, sizeof *r);
}

static resp req(const char *method, const char *path, const char *token, const char *body)
{
    resp r = {0};
    size_t len = 0;
    int rc = qr_http_request("127.0.0.1", g_port, method, path, token, "application/json", body,
                             body ? strlen(body) : 0, 20000, &r.status, &r.body, &len);
    if (rc) {
        fprintf(stderr, "request %s %s: %s\n", method, path, qr_last_error());
        r.status = -1;
        return r;
    }
    r.j = json_loads(r.body, 0, NULL);
    return r;
}

static resp post(const char *path, const char *body)
{
    return req("POST", path, TOKEN, body);
}

/* Raw request bytes over a socket; returns the whole response (malloc'd). */
static char *raw(int port, const char *bytes, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(fd, bytes, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            out = realloc(out, cap *= 2);
        ssize_t r = recv(fd, out + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static char *raws(int port, const char *s)
{
    return raw(port, s, strlen(s));
}

static const char *err_param(const resp *r)
{
    json_t *p = json_object_get(json_object_get(r->j, "error"), "param");
    return json_is_string(p) ? json_string_value(p) : "(null)";
}

static const char *err_type(const resp *r)
{
    json_t *p = json_object_get(json_object_get(r->j, "error"), "type");
    return json_is_string(p) ? json_string_value(p) : "(none)";
}

/* Splits an SSE body into its data payloads (NULL-terminated, malloc'd
 * strings); *ok false when a frame is not "data: ...\n\n". */
static char **sse_frames(const char *body, size_t *n, bool *ok)
{
    *ok = true;
    *n = 0;
    char **f = calloc(4096, sizeof *f);
    const char *p = body;
    while (*p && *n < 4095) {
        if (strncmp(p, "data: ", 6) != 0) {
            *ok = false;
            break;
        }
        const char *e = strstr(p, "\n\n");
        if (!e) {
            *ok = false;
            break;
        }
        f[(*n)++] = strndup(p + 6, (size_t)(e - p - 6));
        p = e + 2;
    }
    return f;
}

static void frames_free(char **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i]);
    free(f);
}

/* ---------------------------------------------------------------- fixtures */

static char g_dir[256];

static int make_store(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/quire-test-service-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char store[300];
    snprintf(store, sizeof store, "%s/store", g_dir);
    const char *paths[] = {FIXTURE("ingest")};
    qr_ingest_opts io;
    qr_ingest_opts_default(&io);
    io.map_size = 64u << 20;
    qr_ingest_report rep;
    int rc = qr_ingest_run(store, paths, 1, &io, &rep);
    if (rc == 0)
        qr_ingest_report_free(&rep);
    return rc;
}

/* ---------------------------------------------------------------- tests */

static void test_auth_and_basics(void)
{
    resp r = req("GET", "/health", NULL, NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "status")), "ok");
    resp_free(&r);

    r = req("GET", "/ready", NULL, NULL);
    CHECK_INT(r.status, 401);
    CHECK_STR(err_type(&r), "authentication_error");
    resp_free(&r);
    r = req("GET", "/ready", "wrong-token!", NULL);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    r = req("GET", "/ready", "s3cret-t0ke", NULL); /* a prefix of the token */
    CHECK_INT(r.status, 401);
    resp_free(&r);
    r = req("GET", "/ready", TOKEN, NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "status")), "ready");
    CHECK_STR(json_string_value(json_object_get(r.j, "llm")), "stories260K");
    CHECK_STR(json_string_value(json_object_get(r.j, "embedder")), "minilm");
    resp_free(&r);
    /* the 401 names the scheme */
    char *t = raws(g_port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(t && strstr(t, " 401 ") && strstr(t, "WWW-Authenticate: Bearer"));
    free(t);

    r = req("GET", "/v1/models", TOKEN, NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "object")), "list");
    json_t *d = json_object_get(r.j, "data");
    CHECK_INT(json_array_size(d), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(d, 0), "id")), "stories260K");
    CHECK_STR(json_string_value(json_object_get(json_array_get(d, 1), "object")), "model");
    resp_free(&r);

    r = req("GET", "/nope", TOKEN, NULL);
    CHECK_INT(r.status, 404);
    CHECK_STR(err_type(&r), "not_found_error");
    resp_free(&r);
    t = raws(g_port, "GET /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-t0ken\r\nConnection: close\r\n\r\n");
    CHECK(t && strstr(t, " 405 ") && strstr(t, "Allow: POST"));
    free(t);
}

static void test_search(void)
{
    resp r = post("/v1/search", "{\"query\": \"bananas potassium\", \"k\": 3}");
    CHECK_INT(r.status, 200);
    json_t *res = json_object_get(r.j, "results");
    CHECK(json_array_size(res) >= 1);
    json_t *p = json_array_get(res, 0);
    /* the fixture PDF's second page says "Bananas are yellow. They are rich in potassium." */
    CHECK(strstr(json_string_value(json_object_get(p, "path")), "three_pages.pdf") != NULL);
    CHECK_INT(json_integer_value(json_object_get(p, "page")), 2);
    CHECK_INT(json_integer_value(json_object_get(p, "rank")), 1);
    CHECK(strstr(json_string_value(json_object_get(p, "text")), "potassium") != NULL);
    CHECK(json_is_null(json_object_get(p, "dense")));
    CHECK_INT(json_integer_value(json_object_get(p, "bm25_rank")), 1);
    /* exactly the passage keys of quire search --json */
    static const char *keys[] = {"rank", "score", "fused", "dense", "dense_rank", "bm25", "bm25_rank", "rerank",
                                 "chunk_id", "doc_id", "path", "title", "page", "heading", "byte_start", "byte_end",
                                 "text"};
    CHECK_INT(json_object_size(p), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(json_object_get(p, keys[i]) != NULL, "key %s", keys[i]);
    CHECK_INT(json_integer_value(json_object_get(r.j, "k")), 3);
    resp_free(&r);

    /* filters: a path glob that excludes the PDF */
    r = post("/v1/search", "{\"query\": \"bananas potassium\", \"filters\": {\"path\": \"*.md\"}}");
    CHECK_INT(r.status, 200);
    res = json_object_get(r.j, "results");
    for (size_t i = 0; i < json_array_size(res); i++)
        CHECK(strstr(json_string_value(json_object_get(json_array_get(res, i), "path")), ".md") != NULL);
    resp_free(&r);

    struct {
        const char *body;
        int status;
        const char *param;
    } bad[] = {
        {"{\"query\": \"x\", \"k\": 11}", 400, "k"},
        {"{\"query\": \"x\", \"k\": 0}", 400, "k"},
        {"{\"query\": \"x\", \"k\": \"5\"}", 400, "k"},
        {"{\"query\": 5}", 400, "query"},
        {"{\"k\": 2}", 400, "query"},
        {"{\"query\": \"\"}", 400, "query"},
        {"{\"query\": \"x\", \"filters\": {\"meta\": {\"a\": [1]}}}", 400, "filters.meta.a"},
        {"{\"query\": \"x\", \"filters\": {\"bogus\": 1}}", 400, "filters"},
        {"{\"query\": \"x\", \"filters\": 3}", 400, "filters"},
        {"{\"query\": \"x\", \"query\": \"y\"}", 400, "(null)"},
        {"[1, 2]", 400, "(null)"},
        {"{\"query\": ", 400, "(null)"},
        {"", 400, "(null)"},
        {"{\"a\": [[[[[[[[[[1]]]]]]]]]]}", 400, "(null)"},
        {"\"\\u0000\"", 400, "(null)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post("/v1/search", bad[i].body);
        CHECK_MSG(r.status == bad[i].status, "%s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%s -> param %s", bad[i].body, err_param(&r));
        CHECK_STR(err_type(&r), "invalid_request_error");
        resp_free(&r);
    }
    /* a string over max-string-bytes (1000) names its field */
    char big[1200];
    memset(big, 'a', sizeof big);
    snprintf(big, sizeof big, "{\"query\": \"x\", \"extra\": {\"deep\": [\"");
    size_t l = strlen(big);
    memset(big + l, 'b', 1050);
    snprintf(big + l + 1050, sizeof big - l - 1050, "\"]}}");
    r = post("/v1/search", big);
    CHECK_INT(r.status, 400);
    CHECK_STR(err_param(&r), "extra.deep[0]");
    resp_free(&r);
    /* over max-body-bytes (4096): 413 from Content-Length */
    char *huge = malloc(6000);
    memset(huge, ' ', 5999);
    huge[0] = '{';
    huge[5998] = '}';
    huge[5999] = '\0';
    r = post("/v1/search", huge);
    CHECK_INT(r.status, 413);
    resp_free(&r);
    free(huge);
    /* 415, 411 */
    resp q = {0};
    size_t len;
    CHECK_OK(qr_http_request("127.0.0.1", g_port, "POST", "/v1/search", TOKEN, "text/plain", "{}", 2, 5000,
                             &q.status, &q.body, &len));
    CHECK_INT(q.status, 415);
    free(q.body);
    char *t = raws(g_port,
                  "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-t0ken\r\n"
                  "Content-Type: application/json\r\nConnection: close\r\n\r\n");
    CHECK(t && strstr(t, " 411 "));
    free(t);
    /* chunked body over the limit: 413 at the end */
    char chunked[8000];
    int n = snprintf(chunked, sizeof chunked,
                     "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-t0ken\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for (int c = 0; c < 3; c++) {
        n += snprintf(chunked + n, sizeof chunked - (size_t)n, "7D0\r\n");
        memset(chunked + n, ' ', 2000);
        n += 2000;
        n += snprintf(chunked + n, sizeof chunked - (size_t)n, "\r\n");
    }
    n += snprintf(chunked + n, sizeof chunked - (size_t)n, "0\r\n\r\n");
    t = raw(g_port, chunked, (size_t)n);
    CHECK(t && strstr(t, " 413 "));
    free(t);
}

/* The service's answer (scheduler) equals qr_answer_run (qr_generate) on the
 * same passages: the same prompt, the same greedy ids, the same cleaning. */
static void check_ask_equals_library(qr_model *llm, const qr_chat_template *tmpl)
{
    const char *question = "Does Quire need a C compiler to build from source?";
    char *kw = NULL;
    CHECK_OK(qr_question_keywords(question, &kw)); /* what the server searches on a BM25-only store */
    json_t *sq = json_pack("{s:s, s:i}", "query", kw ? kw : "", "k", 3);
    char *sqt = json_dumps(sq, 0);
    resp r = post("/v1/search", sqt);
    free(sqt);
    json_decref(sq);
    free(kw);
    CHECK_INT(r.status, 200);
    json_t *res = json_object_get(r.j, "results");
    size_t n = json_array_size(res);
    CHECK(n >= 1);
    qr_source src[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        json_t *p = json_array_get(res, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        json_int_t bs = json_integer_value(json_object_get(p, "byte_start")),
                   be = json_integer_value(json_object_get(p, "byte_end"));
        src[i] = (qr_source){.chunk_id = (uint64_t)json_integer_value(json_object_get(p, "chunk_id")),
                             .path = json_string_value(json_object_get(p, "path")),
                             .title = json_string_value(json_object_get(p, "title")),
                             .page = (int)json_integer_value(json_object_get(p, "page")),
                             .heading = json_string_value(json_object_get(p, "heading")),
                             .off = (size_t)bs,
                             .len = (size_t)(be - bs),
                             .text = text,
                             .text_len = strlen(text),
                             .score = json_real_value(json_object_get(p, "score"))};
    }
    qr_answer_opts ao;
    qr_answer_opts_default(&ao);
    ao.model = llm;
    ao.tmpl = tmpl;
    ao.n_ctx = 512;
    qr_sample_params_default(&ao.sample);
    ao.sample.temperature = 0;
    ao.sample.max_tokens = 24;
    qr_answer a;
    memset(&a, 0, sizeof a);
    CHECK_OK(qr_answer_run(question, src, n < 8 ? n : 8, &ao, &a));
    resp s = post("/v1/ask", "{\"question\": \"Does Quire need a C compiler to build from source?\", \"k\": 3, "
                             "\"max_tokens\": 24, \"temperature\": 0}");
    CHECK_INT(s.status, 200);
    CHECK_STR(json_string_value(json_object_get(s.j, "answer")), a.text ? a.text : "?");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(s.j, "generation"), "prompt_tokens")), a.n_prompt);
    CHECK_INT(json_array_size(json_object_get(s.j, "sources")), a.n_used);
    qr_answer_free(&a);
    resp_free(&s);
    resp_free(&r);
}

static void test_ask_llm(void)
{
    /* with an LLM the answer mode is "llm" and it goes through the scheduler */
    resp r = post("/v1/ask", "{\"question\": \"Are bananas rich in potassium?\", \"k\": 2, \"max_tokens\": 8, "
                             "\"temperature\": 0}");
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "mode")), "llm");
    CHECK(json_array_size(json_object_get(r.j, "sources")) >= 1);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "generation"), "generated_tokens")), 8);
    CHECK_INT(json_integer_value(json_object_get(r.j, "k")), 2);
    resp_free(&r);
    /* streamed: token events, then the answer, then [DONE]; the tokens add up to the answer */
    r = post("/v1/ask", "{\"question\": \"Are bananas rich in potassium?\", \"k\": 2, \"max_tokens\": 12, "
                        "\"temperature\": 0, \"stream\": true}");
    CHECK_INT(r.status, 200);
    size_t nf = 0;
    bool ok;
    char **f = sse_frames(r.body, &nf, &ok);
    CHECK(ok);
    CHECK(nf >= 3);
    char acc[4096] = "";
    for (size_t i = 0; i + 2 < nf; i++) {
        json_t *e = json_loads(f[i], 0, NULL);
        CHECK_STR(json_string_value(json_object_get(e, "type")), "token");
        strncat(acc, json_string_value(json_object_get(e, "text")), sizeof acc - strlen(acc) - 1);
        json_decref(e);
    }
    json_t *a = nf >= 2 ? json_loads(f[nf - 2], 0, NULL) : NULL;
    CHECK_STR(json_string_value(json_object_get(a, "type")), "answer");
    CHECK_STR(json_string_value(json_object_get(a, "answer")), acc);
    json_decref(a);
    CHECK_STR(nf ? f[nf - 1] : "", "[DONE]");
    frames_free(f, nf);
    resp_free(&r);
    r = post("/v1/ask", "{\"question\": \"x\", \"max_tokens\": 100000}");
    CHECK_INT(r.status, 400);
    CHECK_STR(err_param(&r), "max_tokens");
    resp_free(&r);
}

/* Greedy from BOS must give the reference ids of stories260K. */
static void test_completions(qr_model *llm)
{
    char *ref = qr_test_slurp(FIXTURE("models/stories260K/greedy_from_bos_60.ref.txt"), NULL);
    json_t *ids = ref ? json_loads(ref, JSON_DISABLE_EOF_CHECK, NULL) : NULL; /* ids, then the text */
    free(ref);
    CHECK(json_array_size(ids) == 60);
    int32_t want[20];
    for (int i = 0; i < 20; i++)
        want[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    json_decref(ids);
    char *expect = NULL;
    CHECK_OK(qr_detokenize(qr_model_tokenizer(llm), want, 20, true, &expect));

    resp r = post("/v1/completions", "{\"model\": \"stories260K\", \"prompt\": \"\", \"max_tokens\": 20, "
                                     "\"temperature\": 0}");
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "object")), "text_completion");
    json_t *c0 = json_array_get(json_object_get(r.j, "choices"), 0);
    CHECK_STR(json_string_value(json_object_get(c0, "text")), expect ? expect : "?");
    CHECK_STR(json_string_value(json_object_get(c0, "finish_reason")), "length");
    json_t *u = json_object_get(r.j, "usage");
    CHECK_INT(json_integer_value(json_object_get(u, "completion_tokens")), 20);
    CHECK_INT(json_integer_value(json_object_get(u, "total_tokens")),
              json_integer_value(json_object_get(u, "prompt_tokens")) + 20);
    resp_free(&r);

    /* streamed: same text in text_completion chunks */
    r = post("/v1/completions", "{\"prompt\": \"\", \"max_tokens\": 20, \"temperature\": 0, \"stream\": true}");
    CHECK_INT(r.status, 200);
    size_t nf;
    bool ok;
    char **f = sse_frames(r.body, &nf, &ok);
    CHECK(ok && nf >= 3);
    char acc[4096] = "";
    const char *last_finish = NULL;
    json_t *last = NULL;
    for (size_t i = 0; i + 1 < nf; i++) {
        json_t *e = json_loads(f[i], 0, NULL);
        CHECK_STR(json_string_value(json_object_get(e, "object")), "text_completion");
        json_t *c = json_array_get(json_object_get(e, "choices"), 0);
        strncat(acc, json_string_value(json_object_get(c, "text")), sizeof acc - strlen(acc) - 1);
        json_decref(last);
        last = e;
        last_finish = json_string_value(json_object_get(c, "finish_reason"));
    }
    CHECK_STR(acc, expect ? expect : "?");
    CHECK_STR(last_finish ? last_finish : "(null)", "length");
    json_decref(last);
    CHECK_STR(f[nf - 1], "[DONE]");
    frames_free(f, nf);
    resp_free(&r);

    /* stop string: cut before it, finish "stop" */
    r = post("/v1/completions", "{\"prompt\": \"\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": [\"Lily\"]}");
    CHECK_INT(r.status, 200);
    c0 = json_array_get(json_object_get(r.j, "choices"), 0);
    const char *txt = json_string_value(json_object_get(c0, "text"));
    CHECK(txt && !strstr(txt, "Lily") && expect && !strncmp(expect, txt, strlen(txt)));
    CHECK_STR(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    resp_free(&r);
    free(expect);

    const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"max_tokens\": 5}", "prompt"},
        {"{\"prompt\": 5}", "prompt"},
        {"{\"prompt\": \"a\", \"max_tokens\": 501}", "max_tokens"},
        {"{\"prompt\": \"a\", \"temperature\": -1}", "temperature"},
        {"{\"prompt\": \"a\", \"top_p\": 2}", "top_p"},
        {"{\"prompt\": \"a\", \"n\": 2}", "n"},
        {"{\"prompt\": \"a\", \"stop\": [1]}", "stop[0]"},
        {"{\"prompt\": \"a\", \"stream\": \"yes\"}", "stream"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post("/v1/completions", bad[i].body);
        CHECK_MSG(r.status == 400, "%s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%s -> param %s", bad[i].body, err_param(&r));
        resp_free(&r);
    }
}

static void test_chat(void)
{
    const char *body = "{\"model\": \"stories260K\", \"messages\": [{\"role\": \"user\", \"content\": \"Once upon a "
                       "time\"}], \"max_tokens\": 12, \"temperature\": 0}";
    resp r = post("/v1/chat/completions", body);
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "object")), "chat.completion");
    CHECK(!strncmp(json_string_value(json_object_get(r.j, "id")), "chatcmpl-", 9));
    json_t *msg = json_object_get(json_array_get(json_object_get(r.j, "choices"), 0), "message");
    CHECK_STR(json_string_value(json_object_get(msg, "role")), "assistant");
    char *content = strdup(json_string_value(json_object_get(msg, "content")));
    CHECK(strlen(content) > 0);
    resp_free(&r);

    /* streamed: role first, content deltas adding up to the same text, finish, usage, [DONE] */
    r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Once upon a time\"}], "
                                     "\"max_tokens\": 12, \"temperature\": 0, \"stream\": true, "
                                     "\"stream_options\": {\"include_usage\": true}}");
    CHECK_INT(r.status, 200);
    size_t nf;
    bool ok;
    char **f = sse_frames(r.body, &nf, &ok);
    CHECK(ok && nf >= 4);
    json_t *first = json_loads(f[0], 0, NULL);
    json_t *d0 = json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta");
    CHECK_STR(json_string_value(json_object_get(d0, "role")), "assistant");
    CHECK_STR(json_string_value(json_object_get(first, "object")), "chat.completion.chunk");
    json_decref(first);
    char acc[4096] = "";
    for (size_t i = 1; i + 3 < nf; i++) {
        json_t *e = json_loads(f[i], 0, NULL);
        json_t *c = json_array_get(json_object_get(e, "choices"), 0);
        CHECK(json_is_null(json_object_get(c, "finish_reason")));
        strncat(acc, json_string_value(json_object_get(json_object_get(c, "delta"), "content")),
                sizeof acc - strlen(acc) - 1);
        json_decref(e);
    }
    CHECK_STR(acc, content);
    json_t *fin = json_loads(f[nf - 3], 0, NULL);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(fin, "choices"), 0), "finish_reason")),
              "length");
    json_decref(fin);
    json_t *usage = json_loads(f[nf - 2], 0, NULL);
    CHECK_INT(json_array_size(json_object_get(usage, "choices")), 0);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(usage, "usage"), "completion_tokens")), 12);
    json_decref(usage);
    CHECK_STR(f[nf - 1], "[DONE]");
    frames_free(f, nf);
    resp_free(&r);
    free(content);

    const struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "messages"},
        {"{\"messages\": []}", "messages"},
        {"{\"messages\": \"hi\"}", "messages"},
        {"{\"messages\": [1]}", "messages[0]"},
        {"{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", "messages[0].role"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 7}]}", "messages[0].content"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}, "
         "{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"user\", \"content\": \"d\"}, "
         "{\"role\": \"user\", \"content\": \"e\"}]}",
         "messages"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"stream_options\": 1}", "stream_options"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post("/v1/chat/completions", bad[i].body);
        CHECK_MSG(r.status == 400, "%s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%s -> param %s", bad[i].body, err_param(&r));
        resp_free(&r);
    }
    /* content parts */
    r = post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", "
                                     "\"text\": \"Once\"}]}], \"max_tokens\": 3}");
    CHECK_INT(r.status, 200);
    resp_free(&r);
}

static void test_embeddings(qr_model *emb)
{
    resp r = post("/v1/embeddings", "{\"model\": \"minilm\", \"input\": [\"hello world\", \"bananas are yellow\"]}");
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "object")), "list");
    json_t *data = json_object_get(r.j, "data");
    CHECK_INT(json_array_size(data), 2);
    int dim = (int)qr_model_cfg(emb)->d_model;
    float want[2 * 64];
    const char *texts[2] = {"hello world", "bananas are yellow"};
    size_t lens[2] = {11, 18};
    CHECK(dim <= 64);
    CHECK_OK(qr_embed_texts(emb, texts, lens, 2, want));
    for (int i = 0; i < 2; i++) {
        json_t *d = json_array_get(data, (size_t)i);
        CHECK_INT(json_integer_value(json_object_get(d, "index")), i);
        json_t *v = json_object_get(d, "embedding");
        CHECK_INT(json_array_size(v), dim);
        double maxerr = 0;
        for (int k = 0; k < dim; k++) {
            double e = fabs(json_real_value(json_array_get(v, (size_t)k)) - want[i * dim + k]);
            maxerr = e > maxerr ? e : maxerr;
        }
        CHECK_NEAR(maxerr, 0, 1e-6);
    }
    CHECK(json_integer_value(json_object_get(json_object_get(r.j, "usage"), "prompt_tokens")) >= 6);
    resp_free(&r);
    /* base64 (what the openai client asks for): little-endian float32 */
    r = post("/v1/embeddings", "{\"input\": \"hello world\", \"encoding_format\": \"base64\"}");
    CHECK_INT(r.status, 200);
    const char *b = json_string_value(json_object_get(json_array_get(json_object_get(r.j, "data"), 0), "embedding"));
    CHECK(b && strlen(b) == (size_t)(dim * 4 + 2) / 3 * 4);
    if (b) { /* decode and compare */
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned char bytes[64 * 4 + 3];
        size_t nb = 0;
        unsigned acc = 0;
        int bits = 0;
        for (const char *p = b; *p && *p != '='; p++) {
            acc = acc << 6 | (unsigned)(strchr(tab, *p) - tab);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                bytes[nb++] = (unsigned char)(acc >> bits);
            }
        }
        CHECK_INT(nb, dim * 4);
        float v0;
        memcpy(&v0, bytes, 4);
        CHECK_NEAR(v0, want[0], 1e-7);
    }
    resp_free(&r);
    const struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "input"},
        {"{\"input\": 3}", "input"},
        {"{\"input\": []}", "input"},
        {"{\"input\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "input"},
        {"{\"input\": [\"a\", 5]}", "input[1]"},
        {"{\"input\": [\"\"]}", "input[0]"},
        {"{\"input\": \"a\", \"encoding_format\": \"int8\"}", "encoding_format"},
        {"{\"input\": \"a\", \"dimensions\": 3}", "dimensions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post("/v1/embeddings", bad[i].body);
        CHECK_MSG(r.status == 400, "%s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%s -> param %s", bad[i].body, err_param(&r));
        resp_free(&r);
    }
}

static void test_documents(void)
{
    resp r = post("/v1/documents", "{\"text\": \"Zebras have black and white stripes and live in Africa.\", "
                                   "\"name\": \"zebra notes.md\", \"meta\": {\"topic\": \"animals\", \"year\": 2024}}");
    CHECK_INT(r.status, 201);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "counts"), "added")), 1);
    resp_free(&r);
    r = post("/v1/search", "{\"query\": \"zebras stripes\", \"filters\": {\"meta\": {\"year\": 2024}}}");
    CHECK_INT(r.status, 200);
    json_t *res = json_object_get(r.j, "results");
    CHECK_INT(json_array_size(res), 1);
    json_t *p = json_array_get(res, 0);
    CHECK_STR(json_string_value(json_object_get(p, "title")), "zebra notes.md");
    long long doc = json_integer_value(json_object_get(p, "doc_id"));
    resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/documents/%lld", doc);
    r = req("DELETE", path, TOKEN, NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT(json_integer_value(json_object_get(r.j, "deleted")), doc);
    CHECK_INT(json_integer_value(json_object_get(r.j, "chunks")), 1);
    resp_free(&r);
    r = req("DELETE", path, TOKEN, NULL);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    r = req("DELETE", "/v1/documents/12x", TOKEN, NULL);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    r = post("/v1/search", "{\"query\": \"zebras stripes\"}");
    CHECK_INT(json_array_size(json_object_get(r.j, "results")), 0);
    resp_free(&r);
    /* a server-side path (already ingested: unchanged) */
    char body[512];
    snprintf(body, sizeof body, "{\"path\": \"%s\"}", FIXTURE("ingest/guide.md"));
    r = post("/v1/documents", body);
    CHECK_INT(r.status, 201);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "counts"), "unchanged")), 1);
    resp_free(&r);
    const struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "path"},
        {"{\"path\": \"relative/file.md\"}", "path"},
        {"{\"path\": \"/nonexistent/quire/file.md\"}", "path"},
        {"{\"text\": \"abc\"}", "name"},
        {"{\"text\": \"abc\", \"name\": \"a\", \"meta\": {\"text\": 1}}", "meta.text"},
        {"{\"text\": \"abc\", \"name\": \"a\", \"meta\": {\"k\": {}}}", "meta.k"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = post("/v1/documents", bad[i].body);
        CHECK_MSG(r.status == 400, "%s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%s -> param %s", bad[i].body, err_param(&r));
        resp_free(&r);
    }
}

/* POST /v1/documents with a path and include / exclude globs and
 * default_excludes (ingest/filter.h; issue 13, item 3): the report counts
 * what was left out; bad fields are 400s naming the field. */
static void test_documents_filters(void)
{
    char tree[400], p[500], body[4096];
    snprintf(tree, sizeof tree, "%s/filters", g_dir);
    CHECK(mkdir(tree, 0755) == 0);
    snprintf(p, sizeof p, "%s/node_modules", tree);
    CHECK(mkdir(p, 0755) == 0);
    const char *files[][2] = {{"okapi.md", "Okapis are forest giraffes of the Congo.\n"},
                              {"okapi.txt", "Okapi notes in plain text.\n"},
                              {"app.min.js", "var okapi=1;\n"},
                              {"node_modules/okapi.md", "Okapi module readme.\n"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", tree, files[i][0]);
        FILE *f = fopen(p, "w");
        CHECK(f && fputs(files[i][1], f) >= 0 && fclose(f) == 0);
    }
    snprintf(body, sizeof body, "{\"path\": \"%s\", \"exclude\": [\"*.txt\"]}", tree);
    resp r = post("/v1/documents", body);
    CHECK_INT(r.status, 201);
    json_t *ex = json_object_get(r.j, "excluded");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "counts"), "added")), 1); // okapi.md
    CHECK_INT(json_integer_value(json_object_get(ex, "files")), 2);       // okapi.txt, app.min.js
    CHECK_INT(json_integer_value(json_object_get(ex, "directories")), 1); // node_modules
    resp_free(&r);
    snprintf(body, sizeof body, "{\"path\": \"%s\", \"include\": [\"*.js\", \"node_modules/*\"], "
             "\"default_excludes\": false}", tree);
    r = post("/v1/documents", body);
    CHECK_INT(r.status, 201);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "counts"), "added")), 2);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r.j, "excluded"), "files")), 2);
    resp_free(&r);

    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "[");
    for (int i = 0; i < 257; i++) n += (size_t)snprintf(many + n, sizeof many - n, "%s\"x\"", i ? "," : "");
    snprintf(many + n, sizeof many - n, "]");
    char longpat[1100];
    memset(longpat, 'a', 1025);
    longpat[1025] = '\0';
    struct {
        char body[4600];
        const char *param;
    } bad[8];
    snprintf(bad[0].body, sizeof bad[0].body, "{\"path\": \"%s\", \"include\": \"*.md\"}", tree);
    bad[0].param = "include";
    snprintf(bad[1].body, sizeof bad[1].body, "{\"path\": \"%s\", \"include\": [\"*.md\", \"\"]}", tree);
    bad[1].param = "include[1]";
    snprintf(bad[2].body, sizeof bad[2].body, "{\"path\": \"%s\", \"exclude\": [1]}", tree);
    bad[2].param = "exclude[0]";
    snprintf(bad[3].body, sizeof bad[3].body, "{\"path\": \"%s\", \"exclude\": %s}", tree, many);
    bad[3].param = "exclude";
    snprintf(bad[4].body, sizeof bad[4].body, "{\"path\": \"%s\", \"include\": [\"%s\"]}", tree, longpat);
    bad[4].param = "include[0]";
    snprintf(bad[5].body, sizeof bad[5].body, "{\"path\": \"%s\", \"default_excludes\": \"no\"}", tree);
    bad[5].param = "default_excludes";
    snprintf(bad[6].body, sizeof bad[6].body, "{\"text\": \"abc\", \"name\": \"a.md\", \"include\": [\"*\"]}");
    bad[6].param = "include";
    snprintf(bad[7].body, sizeof bad[7].body, "{\"text\": \"abc\", \"name\": \"a.md\", \"default_excludes\": true}");
    bad[7].param = "default_excludes";
    for (size_t i = 0; i < 8; i++) {
        r = post("/v1/documents", bad[i].body);
        CHECK_MSG(r.status == 400, "%.80s -> %d", bad[i].body, r.status);
        CHECK_MSG(!strcmp(err_param(&r), bad[i].param), "%.80s -> param %s", bad[i].body, err_param(&r));
        resp_free(&r);
    }
}

/* A streaming client that reads the first frame and hangs up: its
 * generation must be cancelled (slot freed) long before max_tokens. */
static void test_disconnect(void)
{
    const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 500, \"stream\": true}";
    char reqb[1024];
    int n = snprintf(reqb, sizeof reqb,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     TOKEN, strlen(body), body);
    int cancelled_before = -1, cancelled_after = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        resp m = req("GET", "/metrics", TOKEN, NULL);
        const char *c = m.body ? strstr(m.body, "\nquire_client_cancels_total ") : NULL;
        if (attempt == 0)
            cancelled_before = c ? atoi(c + 28) : -1;
        else
            cancelled_after = c ? atoi(c + 28) : -1;
        resp_free(&m);
        if (attempt == 1)
            break;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(send(fd, reqb, (size_t)n, MSG_NOSIGNAL) == n);
        char buf[256];
        CHECK(recv(fd, buf, sizeof buf, 0) > 0); /* the headers have come: the generation runs */
        close(fd);
        /* the server notices within its 200 ms poll */
        for (int i = 0; i < 50; i++) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_MSG(cancelled_after == cancelled_before + 1, "client cancels %d -> %d", cancelled_before, cancelled_after);
    /* and the scheduler cancelled it (freed its slot) instead of finishing 500 tokens */
    resp m = req("GET", "/metrics", TOKEN, NULL);
    const char *c = m.body ? strstr(m.body, "quire_sched_requests_total{outcome=\"cancelled\"} ") : NULL;
    CHECK(c && atoi(c + strlen("quire_sched_requests_total{outcome=\"cancelled\"} ")) >= 1);
    resp_free(&m);
}

static void test_metrics(void)
{
    resp r = req("GET", "/metrics", TOKEN, NULL);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "# TYPE quire_http_request_duration_seconds histogram"));
    CHECK(r.body && strstr(r.body, "quire_http_requests_total{route=\"/health\",code=\"200\"} 1\n"));
    CHECK(r.body && strstr(r.body, "quire_http_requests_total{route=\"/v1/models\",code=\"200\"} 1\n"));
    CHECK(r.body && strstr(r.body, "quire_sched_batch_size_bucket{le=\"+Inf\"}"));
    CHECK(r.body && strstr(r.body, "quire_tokens_total{direction=\"out\"}"));
    CHECK(r.body && strstr(r.body, "quire_gpus 0\n"));
    resp_free(&r);
}

typedef struct {
    const char *body;
    resp r;
} job;

static void *run_job(void *p)
{
    job *j = p;
    j->r = post("/v1/completions", j->body);
    return NULL;
}

typedef struct {
    const char *body;
    resp r;
} chat_job;

static void *run_chat(void *p)
{
    chat_job *j = p;
    j->r = post("/v1/chat/completions", j->body);
    return NULL;
}

/* With a chat template: the prompt is the rendered conversation (special
 * tokens from the template text, no BOS added), and 8 concurrent requests
 * (rendered in 8 connection threads, decoded together by the scheduler) each
 * give what qr_generate gives on that prompt alone. */
static void test_chat_template(qr_model *llm, const qr_chat_template *tmpl)
{
    qr_chat_message m[2] = {{"system", "Tell short stories."}, {"user", "Once upon a time"}};
    qr_chat_opts co;
    memset(&co, 0, sizeof co);
    co.add_generation_prompt = 1;
    char *text = NULL;
    size_t tl = 0;
    CHECK_OK(qr_chat_render(tmpl, m, 2, &co, &text, &tl));
    CHECK(text && strstr(text, "<|user|>Once upon a time"));
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(qr_tokenize(qr_model_tokenizer(llm), text, tl, false, &ids, &n));
    qr_sample_params sp;
    qr_sample_params_default(&sp);
    sp.temperature = 0;
    sp.max_tokens = 16;
    qr_gen_result g;
    memset(&g, 0, sizeof g);
    CHECK_OK(qr_generate(llm, ids, n, &sp, NULL, NULL, &g));
    chat_job jobs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        jobs[i].body = "{\"messages\": [{\"role\": \"system\", \"content\": \"Tell short stories.\"}, "
                       "{\"role\": \"user\", \"content\": \"Once upon a time\"}], \"max_tokens\": 16, "
                       "\"temperature\": 0}";
        pthread_create(&th[i], NULL, run_chat, &jobs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(jobs[i].r.status, 200);
        json_t *c0 = json_array_get(json_object_get(jobs[i].r.j, "choices"), 0);
        CHECK_STR(json_string_value(json_object_get(json_object_get(c0, "message"), "content")), g.text ? g.text : "?");
        CHECK_INT(json_integer_value(json_object_get(json_object_get(jobs[i].r.j, "usage"), "prompt_tokens")), n);
        resp_free(&jobs[i].r);
    }
    qr_gen_result_free(&g);
    free(ids);
    free(text);
}

/* Server B: one slot, no queue, no room for other requests: 503s with Retry-After. */
static void test_busy(qr_model *llm, const char *store)
{
    qr_server_opts o;
    qr_server_opts_default(&o);
    o.store_dir = store;
    o.llm = llm;
    o.llm_name = "stories260K";
    o.sched.n_slots = 1;
    o.sched.max_queue = 0;
    o.lim.max_inflight = 0; /* every non-generation request is over the limit */
    o.sample.temperature = 0;
    qr_server *s = NULL;
    CHECK_OK(qr_server_start(&o, &s));
    if (!s)
        return;
    int saved = g_port;
    g_port = qr_server_port(s);
    char *t = raws(g_port,
                  "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
                  "Connection: close\r\n\r\n{\"query\": \"a\"}");
    CHECK(t && strstr(t, " 503 ") && strstr(t, "Retry-After: "));
    CHECK(t && strstr(t, "overloaded_error"));
    free(t);
    /* generations: several at once on one slot and no queue, so some are refused */
    job jobs[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        jobs[i].body = "{\"prompt\": \"Once\", \"max_tokens\": 400}";
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    int n200 = 0, n503 = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        n200 += jobs[i].r.status == 200;
        if (jobs[i].r.status == 503) {
            n503++;
            CHECK_STR(err_type(&jobs[i].r), "overloaded_error");
        }
        resp_free(&jobs[i].r);
    }
    CHECK(n200 >= 1);
    CHECK_MSG(n503 >= 1, "%d of 6 refused", n503);
    CHECK_INT(n200 + n503, 6);

    /* draining: a streamed generation in flight ends with its frames, [DONE]; then /ready is unreachable */
    CHECK_INT(qr_server_drain(s, 1000), 0);
    resp r = req("GET", "/health", NULL, NULL);
    CHECK_INT(r.status, -1); /* no longer accepting connections */
    resp_free(&r);
    qr_server_stop(s);
    g_port = saved;
}

/* Drain with a stream running: the client still gets a complete stream. */
typedef struct {
    char *out;
} stream_job;

static void *run_stream(void *p)
{
    stream_job *j = p;
    const char *body = "{\"prompt\": \"Once\", \"max_tokens\": 300, \"stream\": true}";
    char reqb[1024];
    int n = snprintf(reqb, sizeof reqb,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     TOKEN, strlen(body), body);
    j->out = raw(g_port, reqb, (size_t)n);
    return NULL;
}

static void test_drain(qr_server *s)
{
    stream_job j = {0};
    pthread_t th;
    /* a connection opened before the drain (kept alive by a client) */
    int keep = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(connect(keep, (struct sockaddr *)&a, sizeof a) == 0);
    pthread_create(&th, NULL, run_stream, &j);
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int cancelled = qr_server_drain(s, 0); /* no grace: whatever runs is cancelled */
    pthread_join(th, NULL);
    /* on it, /ready now says draining (libmicrohttpd closes it after that answer) */
    char rq[512];
    int n = snprintf(rq, sizeof rq, "GET /ready HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", TOKEN);
    CHECK(send(keep, rq, (size_t)n, MSG_NOSIGNAL) == n);
    struct timeval tv = {5, 0};
    setsockopt(keep, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    size_t got = 0;
    for (ssize_t r; got < sizeof buf - 1 && (r = recv(keep, buf + got, sizeof buf - 1 - got, 0)) > 0;)
        got += (size_t)r;
    buf[got] = '\0';
    close(keep);
    CHECK_MSG(strstr(buf, " 503 ") && strstr(buf, "\"draining\"") && strstr(buf, "Retry-After: "), "%s", buf);
    CHECK(cancelled >= 0);
    CHECK(j.out && strstr(j.out, " 200 "));
    /* either it finished or it was cancelled with an error event; [DONE] ends it either way */
    CHECK(j.out && strstr(j.out, "data: [DONE]"));
    free(j.out);
}

/* Server C: no models at all: extractive answers, 422 for model routes. */
static void test_no_models(const char *store)
{
    qr_server_opts o;
    qr_server_opts_default(&o);
    o.store_dir = store;
    qr_server *s = NULL;
    CHECK_OK(qr_server_start(&o, &s));
    if (!s)
        return;
    int saved = g_port;
    g_port = qr_server_port(s);
    resp r = req("GET", "/ready", NULL, NULL);
    CHECK_INT(r.status, 200);
    CHECK(json_is_null(json_object_get(r.j, "llm")));
    CHECK(json_is_null(json_object_get(r.j, "embedder")));
    resp_free(&r);
    r = req("GET", "/v1/models", NULL, NULL);
    CHECK_INT(json_array_size(json_object_get(r.j, "data")), 0);
    resp_free(&r);
    r = req("POST", "/v1/ask", NULL, "{\"question\": \"Does Quire need a C compiler to build from source?\", \"k\": 3}");
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(r.j, "mode")), "extractive");
    /* the extractive answer quotes guide.md's sentence and cites it */
    const char *ans = json_string_value(json_object_get(r.j, "answer"));
    CHECK(ans && strstr(ans, "It needs a C compiler. [1]"));
    CHECK(strstr(json_string_value(json_object_get(json_array_get(json_object_get(r.j, "citations"), 0), "path")),
                 "guide.md") != NULL);
    resp_free(&r);
    r = req("POST", "/v1/ask", NULL, "{\"question\": \"Does Quire need a C compiler to build from source?\", \"stream\": true}");
    CHECK_INT(r.status, 200);
    size_t nf;
    bool ok;
    char **f = sse_frames(r.body, &nf, &ok);
    CHECK(ok && nf == 3);
    CHECK(nf == 3 && strstr(f[0], "\"type\":\"token\"") && strstr(f[1], "\"type\":\"answer\"") &&
          !strcmp(f[2], "[DONE]"));
    frames_free(f, nf);
    resp_free(&r);
    const char *routes[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"};
    for (int i = 0; i < 3; i++) {
        r = req("POST", routes[i], NULL, "{\"prompt\": \"a\", \"input\": \"a\", \"messages\": []}");
        CHECK_MSG(r.status == 422, "%s -> %d", routes[i], r.status);
        resp_free(&r);
    }
    qr_server_stop(s);
    g_port = saved;
}

int main(void)
{
    qr_log_set_level(QR_LOG_WARN);
    CHECK_OK(make_store());
    char store[300];
    snprintf(store, sizeof store, "%s/store", g_dir);
    qr_backend *be = NULL, *be2 = NULL;
    qr_model *llm = NULL, *emb = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_backend_cpu_create(1, &be));
    CHECK_OK(qr_backend_cpu_create(1, &be2));
    CHECK_OK(qr_model_load(FIXTURE("models/stories260K/stories260K.gguf"), &mo, be, &llm));
    CHECK_OK(qr_model_load(FIXTURE("models/bert_minilm"), &mo, be2, &emb));
    if (!llm || !emb)
        return qr_test_done();

    qr_server_opts o;
    qr_server_opts_default(&o);
    o.store_dir = store;
    o.token = TOKEN;
    o.llm = llm;
    o.llm_name = "stories260K";
    o.embedder = emb;
    o.embedder_name = "minilm";
    o.n_ctx = 512;
    o.sample.temperature = 0;
    o.lim.max_body_bytes = 4096;
    o.lim.max_json_depth = 8;
    o.lim.max_string_bytes = 1000;
    o.lim.max_k = 10;
    o.lim.max_gen_tokens = 500;
    o.lim.max_inputs = 4;
    o.lim.max_messages = 4;
    o.sched.n_slots = 4;
    /* a small chat template of our own (stories260K has none) */
    static const char tmpl_text[] = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                                    "{% if add_generation_prompt %}<|assistant|>{% endif %}";
    qr_chat_template *tmpl = NULL;
    CHECK_OK(qr_chat_template_from_string(tmpl_text, sizeof tmpl_text - 1, "<s>", "</s>", &tmpl));
    o.tmpl = tmpl;
    qr_server *s = NULL;
    CHECK_OK(qr_server_start(&o, &s));
    if (!s)
        return qr_test_done();
    g_port = qr_server_port(s);
    CHECK(g_port > 0);

    test_auth_and_basics();
    test_search();
    test_ask_llm();
    check_ask_equals_library(llm, tmpl);
    test_completions(llm);
    test_chat();
    test_chat_template(llm, tmpl);
    test_embeddings(emb);
    test_documents();
    test_documents_filters();
    test_disconnect();
    test_metrics();
    test_drain(s);
    qr_server_stop(s);

    test_busy(llm, store);
    test_no_models(store);

    qr_chat_template_free(tmpl);
    qr_model_free(llm);
    qr_model_free(emb);
    qr_backend_destroy(be);
    qr_backend_destroy(be2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    return qr_test_done();
}
