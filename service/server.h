/* quire's HTTP service (service/API.md is the contract): libmicrohttpd, one
 * thread per connection, JSON in and out, OpenAI-compatible generation and
 * embedding routes, SSE streaming, bearer-token auth, Prometheus metrics.
 *
 * Ownership. The server opens the store itself (read-only, reopened after
 * each POST/DELETE /v1/documents, which run the ingest pipeline on it) and
 * borrows the models, which must outlive it. Generation runs through one
 * scheduler (generate/scheduler.h) over the LLM; retrieval and embeddings use
 * the embedder from many connection threads, serialised by one mutex (a
 * retriever and a CPU backend are used by one thread at a time).
 *
 * Life cycle: qr_server_start (listening, /ready answers 200 at once: the
 * caller loads models before), qr_server_drain on SIGTERM (/ready 503
 * "draining", new work 503, generations get grace_ms to finish, then are
 * cancelled; the listener closes when no request is in flight or the grace
 * is over, then it returns),
 * qr_server_stop (closes the daemon and the store, frees). */
#ifndef QR_SERVICE_SERVER_H
#define QR_SERVICE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generate/chat.h"
#include "generate/scheduler.h"
#include "retrieve/retrieve.h"
#include "runtime/models/model.h"

typedef struct qr_server qr_server;

/* Request limits (the options under "---- serve ----" in configs/quire.conf). */
typedef struct qr_server_limits {
    size_t max_body_bytes;   /* 413 above */
    int max_json_depth;      /* arrays/objects nested */
    size_t max_string_bytes; /* any string in a body */
    int max_k;               /* search / ask k */
    int max_gen_tokens;      /* max_tokens of a generation */
    int max_inputs;          /* /v1/embeddings input array */
    int max_messages;        /* /v1/chat/completions messages */
    int max_inflight;        /* concurrent non-generation requests; 503 above */
} qr_server_limits;

void qr_server_limits_default(qr_server_limits *l);

typedef struct qr_server_opts {
    const char *host;          /* numeric address or name to bind; NULL: 127.0.0.1 */
    int port;                  /* 0: any free port (qr_server_port tells which) */
    const char *store_dir;     /* required */
    const char *token;         /* bearer token; NULL or "": no auth */
    /* Models (borrowed). Any may be NULL: no embedder = BM25 only and no
     * /v1/embeddings; no LLM = extractive /v1/ask and 422 on completions. */
    qr_model *embedder;
    const char *embedder_path; /* resolved path, checked against the store's manifest */
    const char *embedder_name; /* name in /v1/models and responses */
    qr_model *reranker;
    qr_model *llm;
    const char *llm_name;
    const char *llm_path;         /* resolved file or directory (size and date in /api/tags); may be NULL */
    const qr_chat_template *tmpl; /* the LLM's chat template; NULL: plain prompt formats */
    int n_ctx;                    /* LLM context per generation; 0: min(model max positions, 4096) */
    qr_sample_params sample;      /* defaults for fields a request leaves out (stop ignored) */
    int default_k;                /* k when a request gives none */
    qr_retrieve_opts ro;          /* retrieval options */
    qr_sched_opts sched;          /* slots, queue (n_ctx is set from n_ctx above) */
    qr_server_limits lim;
    int connection_limit;         /* open connections; 0: 1024 (less when RLIMIT_NOFILE is lower) */
    int idle_timeout_s;           /* a silent connection is closed after this; 0: 60 */
} qr_server_opts;

void qr_server_opts_default(qr_server_opts *o);

/* Opens the store, creates the scheduler (when an LLM is given) and starts
 * listening. QR_EIO when the address cannot be bound (message names it). */
int qr_server_start(const qr_server_opts *o, qr_server **out);

/* The port actually bound. */
int qr_server_port(const qr_server *s);

/* Turns /ready to 503 "draining" and refuses new work with 503 (connections
 * are still accepted, so health checks and pollers see the state), gives
 * in-flight work grace_ms to finish (generations still running then are
 * cancelled; their clients get an error event or a 503), waits for in-flight
 * requests to end (at most grace_ms + 2 s) and then stops accepting
 * connections. Returns the number of generations cancelled. Safe to call once. */
int qr_server_drain(qr_server *s, int grace_ms);

/* Stops the daemon (closing open connections), the scheduler, closes the
 * store and frees. NULL is fine. */
void qr_server_stop(qr_server *s);

#endif
