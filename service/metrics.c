/* Service metrics in the Prometheus text exposition format 0.0.4 (checked by
 * `promtool check metrics` in the integration tests):
 *
 *   quire_http_requests_total{route,code}           counter
 *   quire_http_request_duration_seconds{route}      histogram (until the response ended)
 *   quire_tokens_total{direction="in"|"out"}        generation prompt / completion tokens
 *   quire_embedding_tokens_total                    /v1/embeddings input tokens
 *   quire_requests_refused_total                    503 for a full queue or the in-flight limit
 *   quire_client_cancels_total                      generations cancelled by a disconnect
 *   quire_inflight_requests                         gauge (non-generation)
 *   quire_sched_* (when an LLM is loaded)           queue depth, running, slots, counters,
 *                                                   batch-size histogram (sequences per decode step)
 *   quire_gpu_memory_used_bytes{gpu}, ..._total_bytes  per visible GPU (none on a CPU build)
 *   quire_up, quire_ready                           gauges */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "service/internal.h"

static const double bounds[QS_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60,  120};
static const int codes[QS_N_CODES - 1] = {200, 201, 400, 401, 404, 405, 411, 413, 415, 422, 499, 500, 503, 504, 429};

static const char *route_names[QS_R_COUNT] = {
    [QS_R_HEALTH] = "/health",
    [QS_R_READY] = "/ready",
    [QS_R_METRICS] = "/metrics",
    [QS_R_SEARCH] = "/v1/search",
    [QS_R_ASK] = "/v1/ask",
    [QS_R_EMBEDDINGS] = "/v1/embeddings",
    [QS_R_CHAT] = "/v1/chat/completions",
    [QS_R_COMPLETIONS] = "/v1/completions",
    [QS_R_MODELS] = "/v1/models",
    [QS_R_DOCS_POST] = "/v1/documents",
    [QS_R_DOCS_DELETE] = "/v1/documents/{id}",
    [QS_R_DOCS_LIST] = "GET /v1/documents", /* POST's label is the plain path */
    [QS_R_OLLAMA_ROOT] = "/",
    [QS_R_OLLAMA_VERSION] = "/api/version",
    [QS_R_OLLAMA_TAGS] = "/api/tags",
    [QS_R_OLLAMA_SHOW] = "/api/show",
    [QS_R_OLLAMA_CHAT] = "/api/chat",
    [QS_R_OLLAMA_GENERATE] = "/api/generate",
    [QS_R_OLLAMA_EMBED] = "/api/embed",
    [QS_R_OLLAMA_EMBEDDINGS] = "/api/embeddings",
    [QS_R_OTHER] = "other",
};

const char *qs_route_name(int route)
{
    return route >= 0 && route < QS_R_COUNT ? route_names[route] : "other";
}

void qs_metrics_init(qs_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void qs_metrics_destroy(qs_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

static int code_index(int status)
{
    for (int i = 0; i < QS_N_CODES - 1; i++)
        if (codes[i] == status)
            return i;
    return QS_N_CODES - 1;
}

void qs_metrics_observe(qs_metrics *m, int route, int status, double seconds)
{
    if (route < 0 || route >= QS_R_COUNT)
        route = QS_R_OTHER;
    pthread_mutex_lock(&m->mu);
    m->requests[route][code_index(status)]++;
    for (int b = 0; b < QS_N_BUCKETS; b++)
        if (seconds <= bounds[b])
            m->lat_bucket[route][b]++;
    m->lat_count[route]++;
    m->lat_sum[route] += seconds;
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_add(qs_metrics *m, uint64_t *counter, uint64_t n)
{
    pthread_mutex_lock(&m->mu);
    *counter += n;
    pthread_mutex_unlock(&m->mu);
}

int qs_metrics_render(qr_server *s, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return qr_fail(QR_ENOMEM, "metrics");
    qs_metrics m;
    pthread_mutex_lock(&s->m.mu);
    m = s->m;
    pthread_mutex_unlock(&s->m.mu);

    fprintf(f, "# HELP quire_up 1 while the server process runs.\n# TYPE quire_up gauge\nquire_up 1\n");
    fprintf(f, "# HELP quire_ready 1 when the server accepts work, 0 while draining.\n# TYPE quire_ready gauge\n"
               "quire_ready %d\n", atomic_load(&s->state) == QS_STATE_READY);
    fprintf(f, "# HELP quire_http_requests_total HTTP requests answered, by route and status code.\n"
               "# TYPE quire_http_requests_total counter\n");
    for (int r = 0; r < QS_R_COUNT; r++)
        for (int c = 0; c < QS_N_CODES; c++)
            if (m.requests[r][c]) {
                char code[16] = "other";
                if (c < QS_N_CODES - 1)
                    snprintf(code, sizeof code, "%d", codes[c]);
                fprintf(f, "quire_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n", route_names[r], code,
                        (unsigned long long)m.requests[r][c]);
            }
    fprintf(f, "# HELP quire_http_request_duration_seconds Time from the request line to the end of the "
               "response, by route.\n# TYPE quire_http_request_duration_seconds histogram\n");
    for (int r = 0; r < QS_R_COUNT; r++) {
        if (!m.lat_count[r])
            continue;
        for (int b = 0; b < QS_N_BUCKETS; b++)
            fprintf(f, "quire_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route_names[r],
                    bounds[b], (unsigned long long)m.lat_bucket[r][b]);
        fprintf(f, "quire_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route_names[r],
                (unsigned long long)m.lat_count[r]);
        fprintf(f, "quire_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r], m.lat_sum[r]);
        fprintf(f, "quire_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
                (unsigned long long)m.lat_count[r]);
    }
    fprintf(f, "# HELP quire_tokens_total Generation tokens: prompt tokens in, completion tokens out.\n"
               "# TYPE quire_tokens_total counter\n"
               "quire_tokens_total{direction=\"in\"} %llu\nquire_tokens_total{direction=\"out\"} %llu\n",
            (unsigned long long)m.tokens_in, (unsigned long long)m.tokens_out);
    fprintf(f, "# HELP quire_embedding_tokens_total Input tokens embedded by /v1/embeddings, /api/embed and /api/embeddings.\n"
               "# TYPE quire_embedding_tokens_total counter\nquire_embedding_tokens_total %llu\n",
            (unsigned long long)m.embed_tokens);
    fprintf(f, "# HELP quire_requests_refused_total Requests refused with 503 because a queue or the in-flight "
               "limit was full.\n# TYPE quire_requests_refused_total counter\nquire_requests_refused_total %llu\n",
            (unsigned long long)m.refused_busy);
    fprintf(f, "# HELP quire_client_cancels_total Generations cancelled because the client disconnected.\n"
               "# TYPE quire_client_cancels_total counter\nquire_client_cancels_total %llu\n",
            (unsigned long long)m.client_cancels);
    fprintf(f, "# HELP quire_inflight_requests Non-generation requests being served.\n"
               "# TYPE quire_inflight_requests gauge\nquire_inflight_requests %d\n",
            atomic_load(&s->inflight_other));
    fprintf(f, "# HELP quire_http_connections_total TCP connections accepted (a kept-alive connection carries "
               "many requests).\n# TYPE quire_http_connections_total counter\nquire_http_connections_total %llu\n",
            (unsigned long long)atomic_load(&s->conns_total));
    fprintf(f, "# HELP quire_http_connections_open TCP connections open now.\n"
               "# TYPE quire_http_connections_open gauge\nquire_http_connections_open %d\n",
            atomic_load(&s->conns_open));
    if (s->sched) {
        qr_sched_stats st;
        qr_sched_get_stats(s->sched, &st);
        fprintf(f, "# HELP quire_sched_queue_depth Generations waiting for a slot.\n"
                   "# TYPE quire_sched_queue_depth gauge\nquire_sched_queue_depth %d\n", st.queued);
        fprintf(f, "# HELP quire_sched_running Generations holding a slot.\n"
                   "# TYPE quire_sched_running gauge\nquire_sched_running %d\n", st.running);
        fprintf(f, "# HELP quire_sched_slots Generations decoded together at most.\n"
                   "# TYPE quire_sched_slots gauge\nquire_sched_slots %d\n", st.n_slots);
        fprintf(f, "# HELP quire_sched_requests_total Generations by outcome.\n"
                   "# TYPE quire_sched_requests_total counter\n"
                   "quire_sched_requests_total{outcome=\"submitted\"} %llu\n"
                   "quire_sched_requests_total{outcome=\"finished\"} %llu\n"
                   "quire_sched_requests_total{outcome=\"cancelled\"} %llu\n"
                   "quire_sched_requests_total{outcome=\"failed\"} %llu\n"
                   "quire_sched_requests_total{outcome=\"refused_busy\"} %llu\n",
                (unsigned long long)st.submitted, (unsigned long long)st.finished, (unsigned long long)st.cancelled,
                (unsigned long long)st.failed, (unsigned long long)st.refused_busy);
        fprintf(f, "# HELP quire_sched_prompt_tokens_total Prompt tokens prefilled by the scheduler.\n"
                   "# TYPE quire_sched_prompt_tokens_total counter\nquire_sched_prompt_tokens_total %llu\n",
                (unsigned long long)st.prompt_tokens);
        fprintf(f, "# HELP quire_sched_generated_tokens_total Tokens generated by the scheduler.\n"
                   "# TYPE quire_sched_generated_tokens_total counter\nquire_sched_generated_tokens_total %llu\n",
                (unsigned long long)st.gen_tokens);
        /* batch sizes: steps that ran i+1 sequences, as a cumulative histogram */
        static const int bb[] = {1, 2, 4, 8, 16, 32, 64};
        fprintf(f, "# HELP quire_sched_batch_size Sequences decoded together per scheduler step.\n"
                   "# TYPE quire_sched_batch_size histogram\n");
        uint64_t total = 0;
        double sum = 0;
        for (int i = 0; i < 64; i++) {
            total += st.batch_hist[i];
            sum += (double)st.batch_hist[i] * (i + 1);
        }
        for (size_t b = 0; b < sizeof bb / sizeof bb[0]; b++) {
            uint64_t c = 0;
            for (int i = 0; i < 64 && i + 1 <= bb[b]; i++)
                c += st.batch_hist[i];
            fprintf(f, "quire_sched_batch_size_bucket{le=\"%d\"} %llu\n", bb[b], (unsigned long long)c);
        }
        fprintf(f, "quire_sched_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)total);
        fprintf(f, "quire_sched_batch_size_sum %.0f\nquire_sched_batch_size_count %llu\n", sum,
                (unsigned long long)total);
    }
    qr_gpu_info gi[16];
    int ng = 0;
    /* CUDA builds only; without a GPU (or CUDA) there are no GPU lines */
    if (qr_cuda_built() && qr_cuda_devices(gi, 16, &ng) == 0 && ng > 0) {
        fprintf(f, "# HELP quire_gpu_memory_used_bytes GPU memory in use (all processes).\n"
                   "# TYPE quire_gpu_memory_used_bytes gauge\n");
        for (int i = 0; i < ng; i++)
            fprintf(f, "quire_gpu_memory_used_bytes{gpu=\"%d\"} %llu\n", gi[i].index,
                    (unsigned long long)(gi[i].total_bytes - gi[i].free_bytes));
        fprintf(f, "# HELP quire_gpu_memory_total_bytes GPU memory.\n# TYPE quire_gpu_memory_total_bytes gauge\n");
        for (int i = 0; i < ng; i++)
            fprintf(f, "quire_gpu_memory_total_bytes{gpu=\"%d\"} %llu\n", gi[i].index,
                    (unsigned long long)gi[i].total_bytes);
    }
    fprintf(f, "# HELP quire_gpus GPUs visible to the server (0 on a CPU build or without a GPU).\n"
               "# TYPE quire_gpus gauge\nquire_gpus %d\n", ng);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return qr_fail(QR_ENOMEM, "metrics");
    }
    *out = buf;
    *len = n;
    return 0;
}
