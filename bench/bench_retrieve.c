/* CPU time of retrieval alone, as POST /v1/search runs it (bench/serve/run.sh
 * subtracts it from the server's CPU time per request to get what HTTP, JSON
 * and the threads cost).
 *
 *   bench_retrieve STORE QUERIES.txt [K=10] [PASSES=3]
 *
 * QUERIES.txt: one query a line. Opens STORE read-only with a BM25-only
 * retriever and the default options (those of quire serve without flags),
 * then for each query does what the server's search route does between
 * parsing the body and building the answer: qr_question_keywords, then
 * qr_retrieve_query_lex with k. One warm-up pass, then PASSES timed passes
 * over all queries on one thread; prints the process CPU time and the wall
 * time per query in milliseconds (best pass) and a checksum of the chunk ids
 * returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "generate/extract.h"
#include "index/store.h"
#include "retrieve/retrieve.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pass(qr_retriever *r, char **qs, size_t nq, int k, unsigned long long *sum)
{
    for (size_t i = 0; i < nq; i++) {
        char *kw = NULL;
        qr_results res = {0};
        int rc = qr_question_keywords(qs[i], &kw);
        if (!rc)
            rc = qr_retrieve_query_lex(r, qs[i], strlen(qs[i]), kw, strlen(kw), k, NULL, 0, NULL, &res);
        free(kw);
        if (rc) {
            fprintf(stderr, "bench_retrieve: query %zu: %s\n", i + 1, qr_last_error());
            return rc;
        }
        for (size_t j = 0; j < res.n; j++)
            *sum += (unsigned long long)res.items[j].chunk_id * (unsigned long long)(j + 1);
        qr_results_free(&res);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_retrieve STORE QUERIES.txt [K=10] [PASSES=3]\n");
        return 2;
    }
    int k = argc > 3 ? atoi(argv[3]) : 10;
    int passes = argc > 4 ? atoi(argv[4]) : 3;
    qr_log_set_level(QR_LOG_ERROR);
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **qs = NULL, line[8192];
    size_t nq = 0, cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line)
            continue;
        if (nq == cap) {
            cap = cap ? cap * 2 : 1024;
            qs = realloc(qs, cap * sizeof *qs);
        }
        if (!qs || !(qs[nq++] = strdup(line)))
            return 1;
    }
    fclose(f);
    if (!nq) {
        fprintf(stderr, "bench_retrieve: %s: no queries\n", argv[2]);
        return 1;
    }
    qr_store *st = NULL;
    qr_retriever *r = NULL;
    qr_store_open_opts so = {.readonly = true, .skip_vectors = true};
    qr_retrieve_opts ro;
    qr_retrieve_opts_default(&ro);
    if (qr_store_open(argv[1], &so, &st) || qr_retriever_open(st, NULL, NULL, NULL, &ro, &r)) {
        fprintf(stderr, "bench_retrieve: %s: %s\n", argv[1], qr_last_error());
        return 1;
    }
    unsigned long long sum = 0;
    if (pass(r, qs, nq, k, &sum))
        return 1;
    double best_cpu = 1e30, best_wall = 1e30;
    for (int p = 0; p < passes; p++) {
        sum = 0;
        double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
        if (pass(r, qs, nq, k, &sum))
            return 1;
        double c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0, w = clock_s(CLOCK_MONOTONIC) - w0;
        best_cpu = c < best_cpu ? c : best_cpu;
        best_wall = w < best_wall ? w : best_wall;
    }
    printf("queries %zu k %d cpu_ms_per_query %.4f wall_ms_per_query %.4f checksum %llu\n", nq, k,
           best_cpu * 1e3 / (double)nq, best_wall * 1e3 / (double)nq, sum);
    qr_retriever_close(r);
    qr_store_close(st);
    for (size_t i = 0; i < nq; i++)
        free(qs[i]);
    free(qs);
    return 0;
}
