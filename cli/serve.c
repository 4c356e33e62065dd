/* quire serve --store DIR [--model LLM] [--embedder M] [--listen HOST:PORT]
 *             [--token-file F] [--endpoint-file F]
 *
 * Loads the models, starts the HTTP service (service/server.h, contract in
 * service/API.md), writes the endpoint file once it answers, and runs until
 * SIGTERM or SIGINT: then it stops accepting, lets in-flight work finish for
 * --grace seconds (generations still running are cancelled), removes the
 * endpoint file, closes the store and exits 0 (Slurm sends SIGTERM before it
 * kills a job).
 *
 * Auth: --token-file F (created with a random token when F does not exist)
 * makes every route but /health require `Authorization: Bearer TOKEN`. A
 * non-loopback --listen without a token file creates one next to the
 * endpoint file (mode 0600) and says where: other users on a shared node
 * must not reach the models or the store. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/retrieval.h"
#include "common/error.h"
#include "common/log.h"
#include "common/slurm.h"
#include "generate/chat.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "service/endpoint.h"
#include "service/server.h"


static sem_t stop_sem;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    if (!stop_signal)
        stop_signal = sig;
    sem_post(&stop_sem); /* async-signal-safe */
}

int cli_serve(int argc, char **argv)
{
    static const int allowed[] = {
        QR_OPT_STORE,          QR_OPT_MODEL,          QR_OPT_EMBEDDER,       QR_OPT_RERANKER,    QR_OPT_LISTEN,
        QR_OPT_TOKEN_FILE,     QR_OPT_ENDPOINT_FILE,  QR_OPT_SLOTS,          QR_OPT_QUEUE,       QR_OPT_MAX_INFLIGHT,
        QR_OPT_GRACE,          QR_OPT_MAX_BODY_BYTES, QR_OPT_MAX_JSON_DEPTH, QR_OPT_MAX_STRING_BYTES,
        QR_OPT_MAX_K,          QR_OPT_MAX_GEN_TOKENS, QR_OPT_MAX_INPUTS,     QR_OPT_MAX_MESSAGES, QR_OPT_K,
        QR_OPT_CTX,            QR_OPT_MAX_TOKENS,     QR_OPT_TEMPERATURE,    QR_OPT_TOP_K,       QR_OPT_TOP_P,
        QR_OPT_MIN_P,          QR_OPT_REPEAT_PENALTY, QR_OPT_REPEAT_LAST_N,  QR_OPT_SEED,        QR_OPT_RRF_K,
        QR_OPT_WEIGHT_DENSE,   QR_OPT_WEIGHT_BM25,    QR_OPT_MMR_LAMBDA,     QR_OPT_DUP_THRESHOLD, QR_OPT_MAX_PER_DOC,
        QR_OPT_RERANK_DEPTH,   QR_OPT_IDLE_TIMEOUT,   QR_OPT_DTYPE, QR_OPT_ACT_DTYPE,          QR_OPT_THREADS,        QR_OPT_DEVICE, QR_OPT_TP,      QR_OPT_LOG_LEVEL,
        -1};
    qr_options *o = NULL;
    cli_retrieval cr = {0};
    qr_backend *be_m = NULL, *be_e2 = NULL;
    qr_model *llm = NULL, *emb2 = NULL;
    char *llm_path = NULL, *token = NULL, *emb2_path = NULL;
    qr_chat_template *tmpl = NULL;
    qr_server *srv = NULL;
    char endpoint[PATH_MAX] = "", tokfile[PATH_MAX] = "";
    bool wrote_endpoint = false;
    /* SIGTERM/SIGINT only post a semaphore that this thread waits on once the
     * server runs. A handler (not a blocked mask + sigwait) because some
     * threads exist before main runs (OpenBLAS starts its pool in a library
     * constructor) and would take a second SIGTERM with the default action —
     * Slurm signals both the batch shell and the step. A signal during
     * start-up is remembered and drains at once when ready. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sem_init(&stop_sem, 0, 0);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int code = cli_load_options(
        "serve", "--store DIR [--model LLM] [--embedder M] [--listen HOST:PORT] [--token-file F] [--endpoint-file F]",
        "HTTP API over a store (service/API.md): /v1/search, /v1/ask (extractive without --model), OpenAI-compatible\n"
        "/v1/chat/completions, /v1/completions, /v1/embeddings and /v1/models (streaming included), GET, POST and\n"
        "DELETE /v1/documents, /health, /ready and /metrics (Prometheus). Generations share the model through a\n"
        "continuous-batching scheduler (--slots at once, --queue waiting; more get 503 with Retry-After).\n"
        "Listens on 127.0.0.1 by default (port 0 = any free port). Once ready it writes the endpoint file\n"
        "(default quire-endpoint-$SLURM_JOB_ID.json in a Slurm job, else quire-endpoint.json) with host, port,\n"
        "url, token_file and pid; `quire wait FILE` blocks until then. --token-file F (created when missing)\n"
        "makes every route but /health need `Authorization: Bearer TOKEN`; a non-loopback --listen without one\n"
        "creates a token file (mode 0600) next to the endpoint file. SIGTERM/SIGINT: /ready and new work 503\n"
        "(draining), in-flight work gets --grace seconds, the rest is cancelled; then stop accepting, close the\n"
        "store, exit 0.",
        argc, argv, allowed, &o);
    if (code >= 0)
        goto out;
    code = CLI_EXIT_OK;
    const char *dir = qr_opt_str(o, QR_OPT_STORE);
    if (!*dir) {
        fprintf(stderr, "quire serve: --store DIR is required\n");
        code = CLI_EXIT_USAGE;
        goto out;
    }
    char host[256];
    int port = 0;
    if (qr_listen_parse(qr_opt_str(o, QR_OPT_LISTEN), host, sizeof host, &port)) {
        fprintf(stderr, "quire serve: %s (%s)\n", qr_last_error(), qr_opt_origin(o, QR_OPT_LISTEN));
        code = CLI_EXIT_USAGE;
        goto out;
    }
    qr_slurm_env senv;
    qr_slurm_env_read(&senv);
    if (*qr_opt_str(o, QR_OPT_ENDPOINT_FILE))
        snprintf(endpoint, sizeof endpoint, "%s", qr_opt_str(o, QR_OPT_ENDPOINT_FILE));
    else
        qr_slurm_endpoint_name(&senv, endpoint, sizeof endpoint);

    /* the token: read it, or create the file */
    int rc;
    if (*qr_opt_str(o, QR_OPT_TOKEN_FILE)) {
        snprintf(tokfile, sizeof tokfile, "%s", qr_opt_str(o, QR_OPT_TOKEN_FILE));
        rc = qr_token_read(tokfile, &token);
        if (rc == QR_ENOTFOUND) {
            if ((rc = qr_token_create(tokfile, &token)) == 0)
                QR_INFO("serve: created token file %s (mode 0600)", tokfile);
        }
        if (rc) {
            code = cli_fail("serve", rc, "token file");
            goto out;
        }
        struct stat st;
        if (stat(tokfile, &st) == 0 && (st.st_mode & 077))
            QR_WARN("serve: token file %s can be read by other users (mode %03o); chmod 600 %s", tokfile,
                    (unsigned)(st.st_mode & 0777), tokfile);
    } else if (!qr_host_is_loopback(host)) {
        char ep[PATH_MAX];
        snprintf(ep, sizeof ep, "%s", endpoint);
        snprintf(tokfile, sizeof tokfile, "%s/quire-token%s%s", dirname(ep), senv.job_id[0] ? "-" : "",
                 senv.job_id);
        if ((rc = qr_token_create(tokfile, &token))) {
            code = cli_fail("serve", rc, "creating a token file");
            goto out;
        }
        QR_WARN("serve: listening on %s (not loopback) without --token-file: created %s (mode 0600); clients "
                "send `Authorization: Bearer $(cat %s)`", host, tokfile, tokfile);
    }

    /* models: the LLM first (a bad --model fails before any other work) */
    if (*qr_opt_str(o, QR_OPT_MODEL)) {
        if ((code = cli_resolve_model("serve", o, QR_OPT_MODEL, &llm_path)) >= 0 ||
            (code = cli_open_llm("serve", o, QR_OPT_MODEL, &be_m, &llm)) >= 0)
            goto out;
        code = CLI_EXIT_OK;
        if ((rc = qr_chat_template_for_model(llm_path, &tmpl))) {
            code = cli_fail("serve", rc, "chat template");
            goto out;
        }
        if (!tmpl)
            QR_INFO("serve: %s has no chat template; chat prompts are the messages' contents after BOS",
                    qr_opt_str(o, QR_OPT_MODEL));
    }
    bool explicit_emb = *qr_opt_str(o, QR_OPT_EMBEDDER) != '\0';
    if ((code = cli_retrieval_open("serve", o, dir, &cr)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    /* the server opens the store itself (and reopens it after document updates) */
    qr_store_close(cr.store);
    cr.store = NULL;
    qr_model *emb = cr.emb;
    const char *emb_path = cr.emb_path;
    if (!emb && explicit_emb) { /* a store without vectors: the embedder serves /v1/embeddings only */
        if ((code = cli_resolve_model("serve", o, QR_OPT_EMBEDDER, &emb2_path)) >= 0 ||
            (code = cli_open_model("serve", o, QR_OPT_EMBEDDER, &be_e2, &emb2)) >= 0)
            goto out;
        code = CLI_EXIT_OK;
        emb = emb2;
        emb_path = emb2_path;
    }

    /* GPUs of the allocation against those used (logged once; cli_open_model
     * already did when a model was loaded; a BM25-only server computes nothing) */
    cli_log_gpus(NULL, 0);

    qr_server_opts so;
    qr_server_opts_default(&so);
    so.host = host;
    so.port = port;
    so.store_dir = dir;
    so.token = token;
    so.embedder = emb;
    so.embedder_path = emb_path;
    so.embedder_name = emb ? qr_opt_str(o, QR_OPT_EMBEDDER) : NULL;
    so.reranker = cr.rr;
    so.llm = llm;
    so.llm_name = llm ? qr_opt_str(o, QR_OPT_MODEL) : NULL;
    so.llm_path = llm ? llm_path : NULL;
    so.tmpl = tmpl;
    so.n_ctx = (int)qr_opt_int(o, QR_OPT_CTX);
    so.sample.temperature = (float)qr_opt_float(o, QR_OPT_TEMPERATURE);
    so.sample.top_k = (int)qr_opt_int(o, QR_OPT_TOP_K);
    so.sample.top_p = (float)qr_opt_float(o, QR_OPT_TOP_P);
    so.sample.min_p = (float)qr_opt_float(o, QR_OPT_MIN_P);
    so.sample.repeat_penalty = (float)qr_opt_float(o, QR_OPT_REPEAT_PENALTY);
    so.sample.repeat_last_n = (int)qr_opt_int(o, QR_OPT_REPEAT_LAST_N);
    so.sample.seed = (uint64_t)qr_opt_int(o, QR_OPT_SEED);
    so.sample.max_tokens = (int)qr_opt_int(o, QR_OPT_MAX_TOKENS);
    so.default_k = (int)qr_opt_int(o, QR_OPT_K);
    so.ro = cr.ro;
    so.sched.n_slots = (int)qr_opt_int(o, QR_OPT_SLOTS);
    so.sched.max_queue = (int)qr_opt_int(o, QR_OPT_QUEUE);
    so.lim.max_body_bytes = (size_t)qr_opt_int(o, QR_OPT_MAX_BODY_BYTES);
    so.lim.max_json_depth = (int)qr_opt_int(o, QR_OPT_MAX_JSON_DEPTH);
    so.lim.max_string_bytes = (size_t)qr_opt_int(o, QR_OPT_MAX_STRING_BYTES);
    so.lim.max_k = (int)qr_opt_int(o, QR_OPT_MAX_K);
    so.lim.max_gen_tokens = (int)qr_opt_int(o, QR_OPT_MAX_GEN_TOKENS);
    so.lim.max_inputs = (int)qr_opt_int(o, QR_OPT_MAX_INPUTS);
    so.lim.max_messages = (int)qr_opt_int(o, QR_OPT_MAX_MESSAGES);
    so.lim.max_inflight = (int)qr_opt_int(o, QR_OPT_MAX_INFLIGHT);
    so.idle_timeout_s = (int)qr_opt_int(o, QR_OPT_IDLE_TIMEOUT);


    if ((rc = qr_server_start(&so, &srv))) {
        code = cli_fail("serve", rc, "starting the server");
        goto out;
    }
    int bound = qr_server_port(srv);
    /* a wildcard address is not one clients can connect to: name this host */
    char ehost[256];
    snprintf(ehost, sizeof ehost, "%s", host);
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
        if (gethostname(ehost, sizeof ehost) != 0)
            snprintf(ehost, sizeof ehost, "%s", host);
        ehost[sizeof ehost - 1] = '\0';
    }
    if ((rc = qr_endpoint_write(endpoint, ehost, bound, tokfile[0] ? tokfile : NULL))) {
        code = cli_fail("serve", rc, "endpoint file");
        goto out;
    }
    wrote_endpoint = true;
    QR_INFO("serve: listening on http://%s%s%s:%d (store %s, embedder %s, llm %s%s); endpoint file %s", strchr(host, ':') ? "[" : "",
            host, strchr(host, ':') ? "]" : "", bound, dir, emb ? so.embedder_name : "none (BM25 only)",
            llm ? so.llm_name : "none (extractive answers)", token ? ", bearer token required" : "", endpoint);

    while (sem_wait(&stop_sem) != 0)
        ; /* EINTR */
    int sig = stop_signal;
    int grace = (int)qr_opt_int(o, QR_OPT_GRACE);
    QR_INFO("serve: %s: draining (grace %d s)", sig == SIGTERM ? "SIGTERM" : "SIGINT", grace);
    unlink(endpoint);
    wrote_endpoint = false;
    int cancelled = qr_server_drain(srv, grace * 1000);
    QR_INFO("serve: stopped (%d generation%s cancelled)", cancelled, cancelled == 1 ? "" : "s");
out:
    if (wrote_endpoint)
        unlink(endpoint);
    qr_server_stop(srv);
    cli_retrieval_close(&cr);
    qr_chat_template_free(tmpl);
    qr_model_free(llm);
    qr_backend_destroy(be_m);
    qr_model_free(emb2);
    qr_backend_destroy(be_e2);
    free(emb2_path);
    free(llm_path);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    qr_options_free(o);
    return code;
}
