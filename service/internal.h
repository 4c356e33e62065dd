/* Internals shared by the service's source files (server.c: daemon, router,
 * auth, limits; routes.c: quire's own routes and embeddings; gen.c:
 * generation routes, SSE and the streaming core; ollama.c: Ollama's /api/...
 * routes over the same machinery; metrics.c: counters and the Prometheus text).
 * Not a public header. */
#ifndef QR_SERVICE_INTERNAL_H
#define QR_SERVICE_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "generate/prompt.h"
#include "index/store.h"
#include "service/server.h"

/* Routes (metrics label = name). */
enum {
    QS_R_HEALTH = 0,
    QS_R_READY,
    QS_R_METRICS,
    QS_R_SEARCH,
    QS_R_ASK,
    QS_R_EMBEDDINGS,
    QS_R_CHAT,
    QS_R_COMPLETIONS,
    QS_R_MODELS,
    QS_R_DOCS_POST,
    QS_R_DOCS_DELETE,
    QS_R_DOCS_LIST,
    QS_R_OLLAMA_ROOT, /* Ollama's API (ollama.c); errors are {"error": "message"} on these */
    QS_R_OLLAMA_VERSION,
    QS_R_OLLAMA_TAGS,
    QS_R_OLLAMA_SHOW,
    QS_R_OLLAMA_CHAT,
    QS_R_OLLAMA_GENERATE,
    QS_R_OLLAMA_EMBED,
    QS_R_OLLAMA_EMBEDDINGS,
    QS_R_OTHER, /* unknown routes (404) */
    QS_R_COUNT
};

#define QS_N_BUCKETS 16
#define QS_MAX_RETRIEVERS 16 /* parallel BM25-only retrievals */
#define QS_N_CODES 16

typedef struct qs_metrics {
    pthread_mutex_t mu;
    uint64_t requests[QS_R_COUNT][QS_N_CODES];   /* by route and status (qs_code_index) */
    uint64_t lat_bucket[QS_R_COUNT][QS_N_BUCKETS]; /* cumulative counts per upper bound */
    uint64_t lat_count[QS_R_COUNT];
    double lat_sum[QS_R_COUNT];
    uint64_t tokens_in, tokens_out;   /* generation prompt / completion tokens */
    uint64_t embed_tokens;            /* /v1/embeddings, /api/embed(dings) input tokens */
    uint64_t refused_busy;            /* 503 for a full queue or in-flight limit */
    uint64_t client_cancels;          /* generations cancelled because the client went away */
} qs_metrics;

enum { QS_STATE_STARTING = 0, QS_STATE_READY, QS_STATE_DRAINING };

struct qr_server {
    qr_server_opts o;           /* strings below point at copies */
    char *host, *store_dir, *token, *embedder_path, *embedder_name, *llm_name, *llm_path;
    size_t token_len;
    struct MHD_Daemon *d;
    int port;
    atomic_int state;
    double started;             /* unix time */
    /* Locks (taken in this order): mu serialises the models (embedder,
     * reranker: their backends run one call at a time); store_rw is read-
     * held by every retrieval and write-held while POST/DELETE /v1/documents
     * close, update and reopen the store; pool_mu guards the retriever pool.
     * A BM25-only server keeps one retriever per core so searches run in
     * parallel (LMDB read transactions, a BM25 handle per query); with a
     * model the pool has one retriever and retrievals also hold mu. */
    pthread_mutex_t mu;
    pthread_rwlock_t store_rw;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    qr_store *store;
    qr_retriever *retr[QS_MAX_RETRIEVERS];
    bool retr_busy[QS_MAX_RETRIEVERS];
    int n_retr;
    /* atomics: read without locks by routes, rewritten (same values) when a
     * document update reopens the store */
    atomic_bool dense;          /* the retriever has an embedder */
    atomic_bool uses_model;     /* retrieval runs the embedder or the reranker: hold mu */
    qr_sched *sched;
    int n_ctx;
    atomic_int inflight_other;  /* non-generation requests being served */
    atomic_int inflight_all;    /* every request between dispatch and its end (streams included) */
    atomic_ullong conns_total;  /* TCP connections accepted (keep-alive: one for many requests) */
    atomic_int conns_open;      /* TCP connections open now */
    atomic_ullong id_counter;
    char id_prefix[17];
    qs_metrics m;
};

/* One HTTP request (MHD's con_cls). */
typedef struct qs_req {
    qr_server *s;
    struct MHD_Connection *conn;
    int route;
    double t0;
    int status;          /* status of the queued response (0 = none) */
    bool is_post, dispatched, counted;
    bool ollama;         /* an Ollama route or any /api/ path: errors in Ollama's shape */
    char *body;
    size_t len, cap;
    size_t discarded;    /* body bytes over the limit (413) */
    bool too_big;
    struct qs_err *pending; /* an error found on the first call, sent on the last (server.c refuse) */
    char path_arg[64];   /* DELETE /v1/documents/{id}: the id text */
} qs_req;

/* An error to send: status, OpenAI-style type/code, the field (JSON path) or NULL. */
typedef struct qs_err {
    int status;
    const char *code;
    char param[192];
    char msg[768];
    int retry_after; /* 503: seconds */
} qs_err;

/* Fills e (type follows status) and returns -1. param may be NULL. */
int qs_fail(qs_err *e, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Responses: each queues one response and records its status. */
enum MHD_Result qs_send_err(qs_req *q, const qs_err *e);
enum MHD_Result qs_send_json(qs_req *q, int status, json_t *j); /* steals j */
/* A JSON response (steals j) for callers that add headers before qs_queue; NULL when out of memory. */
struct MHD_Response *qs_json_response(json_t *j);
enum MHD_Result qs_send_text(qs_req *q, int status, const char *ctype, char *text, size_t len); /* steals text */
struct MHD_Response;
enum MHD_Result qs_queue(qs_req *q, int status, struct MHD_Response *r); /* adds common headers, destroys r */

/* ---- request field helpers (absent or null = not given: *out untouched, returns 0) ---- */
int qs_get_str(const json_t *o, const char *key, bool required, size_t max, const char **out, size_t *len,
               qs_err *e);
int qs_get_int(const json_t *o, const char *key, long long lo, long long hi, long long *out, qs_err *e);
int qs_get_num(const json_t *o, const char *key, double lo, double hi, double *out, qs_err *e);
/* qs_get_num into a float (the sampling parameters) */
int qs_get_float(const json_t *o, const char *key, double lo, double hi, float *out, qs_err *e);
int qs_get_bool(const json_t *o, const char *key, bool *out, qs_err *e);

/* Sampling fields common to /v1/ask, /v1/chat/completions and /v1/completions
 * (max_tokens, max_completion_tokens, temperature, top_p, top_k, min_p,
 * repeat_penalty, seed, stop, n); p starts from the server's defaults. stop
 * strings point into body (*stop_buf holds the array; caller frees). */
int qs_parse_sampling(qr_server *s, const json_t *body, qr_sample_params *p, const char ***stop_buf, qs_err *e);

/* Embeds n texts with the server's embedder (under mu, 16 at a time): *vec
 * (n, dim) malloc'd (caller frees), *tokens the input tokens (special tokens
 * included, each cut at the encoder's limit; NULL: not counted). truncate
 * false: a text over the limit is 400 naming param (with [i] for arrays).
 * Adds the tokens to the metrics. */
int qs_embed(qr_server *s, const char *const *texts, const size_t *lens, size_t n, bool truncate,
             const char *param, float **vec, uint64_t *tokens, qs_err *e);

/* "filters": {"path": glob, "meta": {key: value}} into f (vals holds the
 * text of non-string values); *n filters. */
int qs_parse_filters(const json_t *body, qr_retrieve_filter *f, int *n, char (*vals)[64], qs_err *e);

/* Routes. */
enum MHD_Result qs_route_health(qs_req *q);
enum MHD_Result qs_route_ready(qs_req *q);
enum MHD_Result qs_route_metrics(qs_req *q);
enum MHD_Result qs_route_models(qs_req *q);
enum MHD_Result qs_route_search(qs_req *q, json_t *body);
enum MHD_Result qs_route_ask(qs_req *q, json_t *body);
enum MHD_Result qs_route_embeddings(qs_req *q, json_t *body);
enum MHD_Result qs_route_chat(qs_req *q, json_t *body);
enum MHD_Result qs_route_completions(qs_req *q, json_t *body);
enum MHD_Result qs_route_docs_post(qs_req *q, json_t *body);
enum MHD_Result qs_route_docs_delete(qs_req *q);
enum MHD_Result qs_route_docs_list(qs_req *q); /* GET /v1/documents (query: limit, cursor, path) */

/* /v1/ask with an LLM (gen.c): takes ownership of res (heap-allocated,
 * freed with qr_results_free + free); p's stop strings are copied. */
enum MHD_Result qs_ask_llm(qs_req *q, const char *question, int k, qr_results *res, const qr_sample_params *p,
                           bool stream);

/* Ollama's routes (ollama.c). */
static inline bool qs_is_ollama_route(int route)
{
    return route >= QS_R_OLLAMA_ROOT && route <= QS_R_OLLAMA_EMBEDDINGS;
}
enum MHD_Result qs_route_ollama_root(qs_req *q);
enum MHD_Result qs_route_ollama_version(qs_req *q);
enum MHD_Result qs_route_ollama_tags(qs_req *q);
enum MHD_Result qs_route_ollama_show(qs_req *q, json_t *body);
enum MHD_Result qs_route_ollama_chat(qs_req *q, json_t *body);
enum MHD_Result qs_route_ollama_generate(qs_req *q, json_t *body);
enum MHD_Result qs_route_ollama_embed(qs_req *q, json_t *body);
enum MHD_Result qs_route_ollama_embeddings(qs_req *q, json_t *body);

/* ---- gen.c: generation plumbing shared with ollama.c ---- */

/* A streamed response body: MHD's content reader hands out what pump left in
 * out; once that is used up it calls pump again, which blocks for the next
 * scheduler event (qs_stream_next), appends the frames with qs_stream_add
 * and sets finished after the last ones; -1 ends the stream with an error.
 * destroy frees the owner (st is its first member); it runs when MHD is done
 * with the stream, and a stream not finished then counts as a client cancel. */
typedef struct qs_stream {
    qr_server *s;
    struct MHD_Connection *conn;
    char *out; /* output not yet read by MHD (destroy frees it) */
    size_t len, pos, cap;
    bool finished;
    double next_check; /* next look at the client's socket */
    double last_out;   /* when the stream last got an event */
    int (*pump)(struct qs_stream *st);
    void (*destroy)(struct qs_stream *st);
} qs_stream;

int qs_stream_add(qs_stream *st, const char *a, size_t n);
/* Queues the 200 with Content-Type ctype; st (pump and destroy set) is
 * owned by the response from here on, also on failure. */
enum MHD_Result qs_stream_start(qs_req *q, qs_stream *st, const char *ctype);
/* The next event of r within 100 ms (QR_SCHED_TIMEOUT when none); -1 when the
 * client has gone (the generation is cancelled) or on misuse. */
int qs_stream_next(qs_stream *st, qr_sched_req *r, qr_sched_event *ev);

/* qr_sched_submit with its errors as HTTP: 503 queue full / draining, 400
 * context_length_exceeded naming param, 400 invalid, 500. */
int qs_gen_submit(qr_server *s, const int32_t *ids, size_t n, const qr_sample_params *p, const char *param,
                  qr_sched_req **out, qs_err *e);
/* Blocks until r is DONE, cancelling it when the client goes away: 0, 1 when
 * the client is gone, -1 on misuse. */
int qs_gen_wait(qr_server *s, struct MHD_Connection *conn, qr_sched_req *r, qr_sched_event *ev);
/* Adds a finished generation's prompt and completion tokens to the metrics. */
void qs_gen_count(qr_server *s, const qr_gen_result *r);
/* OpenAI-style messages ([{role, content}], content a string, null or text
 * parts) → prompt ids through the model's chat template (generation prompt
 * added), or without one the contents joined by newlines after BOS. *ids
 * malloc'd. */
int qs_chat_prompt(qr_server *s, const json_t *msgs, int32_t **ids, size_t *n, qs_err *e);
/* text → ids with the LLM's tokenizer (add_special: BOS as the tokenizer
 * adds it); an empty result is BOS alone. param names the field in errors. */
int qs_tokenize_plain(qr_server *s, const char *text, size_t len, bool add_special, int32_t **ids, size_t *n,
                      qs_err *e, const char *param);

/* ---- metrics.c ---- */
void qs_metrics_init(qs_metrics *m);
void qs_metrics_destroy(qs_metrics *m);
void qs_metrics_observe(qs_metrics *m, int route, int status, double seconds);
void qs_metrics_add(qs_metrics *m, uint64_t *counter, uint64_t n);
/* Prometheus text format 0.0.4; *out malloc'd. */
int qs_metrics_render(qr_server *s, char **out, size_t *len);
const char *qs_route_name(int route);

/* ---- misc ---- */
double qs_now(void);      /* monotonic seconds */
/* True when the peer closed its end of the connection (checked without blocking). */
bool qs_client_gone(struct MHD_Connection *c);
/* "chatcmpl-<24 hex>" style ids into buf. */
void qs_make_id(qr_server *s, const char *prefix, char *buf, size_t len);
/* JSON text of j (compact); NULL when out of memory. */
char *qs_dump(const json_t *j);

#endif
