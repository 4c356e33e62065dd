/* Search latency over a synthetic store (bench/RESULTS.md, "Search").
 *
 *   bench_search [N=100000] [DIM=384] [QUERIES=200] [DIR=/tmp/quire-bench-search] [FACTORIES=Flat,HNSW32]
 *
 * Builds a store of N chunks (10 per document) with random unit vectors of
 * DIM floats and BM25 over synthetic text (Zipf(1) draws from 20,000
 * pseudo-words, 60-140 words a chunk), then for each FAISS factory (the store
 * is switched with qr_store_set_factory, which rebuilds the index from LMDB;
 * its time is the index build time) measures, over QUERIES queries (3-6 words
 * drawn from a random chunk; the query vector is that chunk's vector plus
 * noise, renormalised):
 *   knn     qr_store_search, k = 50 (the candidate depth of a k = 10 search)
 *   bm25    qr_bm25_search, k = 50, on an open handle and read transaction
 *   hybrid  qr_retrieve_query_vec, k = 10: dense + BM25 (depth 50 each), RRF,
 *           chunk fetch, MMR over vector cosine (the query embedding itself
 *           is not included: see the encoder figures)
 * and prints p50 / p99 / mean in milliseconds. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "index/bm25.h"
#include "index/store.h"
#include "retrieve/retrieve.h"

#define VOCAB 20000
#define PER_DOC 10

static uint64_t rs = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static double urand(void) { return (double)(rnd() >> 11) / (double)(1ull << 53); }
static double gauss(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static char words[VOCAB][16];
static double zipf_cdf[VOCAB];

static void make_vocab(void)
{
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qu", "bri", "dor",
                                "fen", "gal", "hut", "jin", "pol", "ser", "tam", "wex"};
    double z = 0;
    for (int i = 0; i < VOCAB; i++) {
        int x = i, n = 0;
        char *w = words[i];
        do {
            const char *s = syl[x % 20];
            size_t l = strlen(s);
            memcpy(w + n, s, l);
            n += (int)l;
            x /= 20;
        } while (x > 0 && n < 12);
        w[n] = '\0';
        z += 1.0 / (i + 1);
        zipf_cdf[i] = z;
    }
    for (int i = 0; i < VOCAB; i++)
        zipf_cdf[i] /= z;
}

static int zipf(void)
{
    double u = urand();
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (zipf_cdf[m] < u)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

static size_t make_text(char *buf, size_t cap, int nw)
{
    size_t n = 0;
    for (int i = 0; i < nw; i++) {
        const char *w = words[zipf()];
        size_t l = strlen(w);
        if (n + l + 2 >= cap)
            break;
        if (n)
            buf[n++] = ' ';
        memcpy(buf + n, w, l);
        n += l;
    }
    buf[n] = '\0';
    return n;
}

static void unit(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    s = sqrt(s);
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / s);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *factory, const char *what, double *ms, int n)
{
    qsort(ms, (size_t)n, sizeof *ms, cmpd);
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += ms[i];
    mean /= n;
    int i99 = (int)ceil(0.99 * n) - 1;
    printf("%-8s %-7s p50 %8.3f ms  p99 %8.3f ms  mean %8.3f ms  (%d queries)\n", factory, what, ms[n / 2],
           ms[i99 < 0 ? 0 : i99], mean, n);
}

#define DIE(rc, what)                                                                                    \
    do {                                                                                                 \
        fprintf(stderr, "bench_search: %s: %s (%s)\n", what, qr_strerror(rc), qr_last_error());          \
        return 1;                                                                                        \
    } while (0)

int main(int argc, char **argv)
{
    int N = argc > 1 ? atoi(argv[1]) : 100000;
    int dim = argc > 2 ? atoi(argv[2]) : 384;
    int Q = argc > 3 ? atoi(argv[3]) : 200;
    const char *dir = argc > 4 ? argv[4] : "/tmp/quire-bench-search";
    const char *facs = argc > 5 ? argv[5] : "Flat,HNSW32";
    if (N < PER_DOC || dim < 1 || Q < 1) {
        fprintf(stderr, "usage: bench_search [N] [DIM] [QUERIES] [DIR] [FACTORIES]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows while the HNSW build runs */
    qr_log_set_level(QR_LOG_WARN);
    make_vocab();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;

    /* ---- build ---- */
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    snprintf(e.model, sizeof e.model, "synthetic");
    snprintf(e.hash, sizeof e.hash, "fnv1a64:0123456789abcdef");
    e.dim = dim;
    snprintf(e.pooling, sizeof e.pooling, "mean");
    e.normalize = true;
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .embedder = &e};
    int rc = qr_store_open(dir, &oo, &s);
    if (rc)
        DIE(rc, "create store");
    if ((rc = qr_store_set_embedder(s, &e)))
        DIE(rc, "set embedder");
    float *vec = malloc((size_t)PER_DOC * (size_t)dim * sizeof *vec);
    static char text[PER_DOC][2048];
    double t0 = now(), t_bm = 0;
    int ndocs = N / PER_DOC;
    const int docs_per_txn = 500;
    for (int d0 = 0; d0 < ndocs; d0 += docs_per_txn) {
        qr_store_txn *t = NULL;
        qr_bm25 *bm = NULL;
        if ((rc = qr_store_txn_begin(s, true, &t)) || (rc = qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm)))
            DIE(rc, "txn");
        for (int d = d0; d < d0 + docs_per_txn && d < ndocs; d++) {
            qr_store_chunk ch[PER_DOC];
            memset(ch, 0, sizeof ch);
            for (int i = 0; i < PER_DOC; i++) {
                ch[i].text = text[i];
                ch[i].text_len = make_text(text[i], sizeof text[i], 60 + (int)(rnd() % 81));
                ch[i].ordinal = (uint32_t)i;
                ch[i].heading = "Section";
                for (int j = 0; j < dim; j++)
                    vec[(size_t)i * dim + j] = (float)gauss();
                unit(vec + (size_t)i * dim, dim);
            }
            char path[64];
            snprintf(path, sizeof path, "doc/%06d.txt", d);
            qr_store_doc doc = {.path = path, .hash = "h", .format = "txt", .title = path};
            uint64_t first = 0;
            if ((rc = qr_store_put_doc(t, &doc, ch, PER_DOC, vec, NULL, &first)))
                DIE(rc, "put_doc");
            double tb = now();
            for (int i = 0; i < PER_DOC; i++)
                if ((rc = qr_bm25_add(bm, qr_store_txn_mdb(t), first + (uint64_t)i, ch[i].text, ch[i].text_len)))
                    DIE(rc, "bm25_add");
            t_bm += now() - tb;
        }
        double tb = now();
        if ((rc = qr_bm25_flush(bm, qr_store_txn_mdb(t))))
            DIE(rc, "bm25 flush");
        t_bm += now() - tb;
        qr_bm25_close(bm);
        if ((rc = qr_store_txn_commit(t)))
            DIE(rc, "commit");
    }
    if ((rc = qr_store_sync(s)))
        DIE(rc, "sync");
    qr_store_close(s);
    s = NULL;
    printf("store: %d chunks x %d dims, %d docs: built in %.1f s (BM25 add+flush %.1f s)\n", N, dim, ndocs,
           now() - t0, t_bm);

    /* queries: words of a random chunk; the vector of that chunk plus noise */
    char **qt = calloc((size_t)Q, sizeof *qt);
    float *qv = malloc((size_t)Q * (size_t)dim * sizeof *qv);
    {
        qr_store_open_opts ro = {.readonly = true, .skip_vectors = true};
        qr_store_txn *t = NULL;
        if ((rc = qr_store_open(dir, &ro, &s)) || (rc = qr_store_txn_begin(s, false, &t)))
            DIE(rc, "open for queries");
        for (int q = 0; q < Q; q++) {
            uint64_t id = 1 + rnd() % (uint64_t)N;
            qr_store_chunk c;
            if ((rc = qr_store_get_chunk(t, id, &c)))
                id = 1, rc = qr_store_get_chunk(t, id, &c);
            if (rc)
                DIE(rc, "get_chunk");
            if ((rc = qr_store_get_vector(t, c.id, qv + (size_t)q * dim)))
                DIE(rc, "get_vector");
            for (int j = 0; j < dim; j++)
                qv[(size_t)q * dim + j] += (float)(0.02 * gauss());
            unit(qv + (size_t)q * dim, dim);
            /* 3-6 consecutive words from the chunk */
            int nw = 3 + (int)(rnd() % 4), skip = (int)(rnd() % 20);
            const char *p = c.text;
            for (int i = 0; i < skip && strchr(p, ' '); i++)
                p = strchr(p, ' ') + 1;
            const char *end = p;
            for (int i = 0; i < nw && end; i++) {
                end = strchr(end, ' ');
                if (end && i < nw - 1)
                    end++;
            }
            size_t l = end ? (size_t)(end - p) : strlen(p);
            qt[q] = malloc(l + 1);
            memcpy(qt[q], p, l);
            qt[q][l] = '\0';
        }
        qr_store_txn_abort(t);
        qr_store_close(s);
        s = NULL;
    }

    double *ms = malloc((size_t)Q * sizeof *ms);
    char fl[256];
    snprintf(fl, sizeof fl, "%s", facs);
    for (char *f = strtok(fl, ","); f; f = strtok(NULL, ",")) {
        /* switch the index type (rebuild from LMDB), timed */
        qr_store_open_opts wo = {.embedder = &e};
        if ((rc = qr_store_open(dir, &wo, &s)))
            DIE(rc, "open for set_factory");
        double tf = now();
        if ((rc = qr_store_set_factory(s, f)))
            DIE(rc, "set_factory");
        if ((rc = qr_store_sync(s)))
            DIE(rc, "sync");
        double build = now() - tf;
        qr_store_close(s);
        qr_store_open_opts ro = {.readonly = true, .embedder = &e};
        double tl = now();
        if ((rc = qr_store_open(dir, &ro, &s)))
            DIE(rc, "open readonly");
        printf("%-8s index built (incl. save) in %.1f s; store opened (FAISS load) in %.2f s\n", f, build,
               now() - tl);
        uint64_t ids[64];
        float sc[64];
        int found;
        for (int q = 0; q < Q; q++) {
            double a = now();
            if ((rc = qr_store_search(s, qv + (size_t)q * dim, 50, ids, sc, &found)))
                DIE(rc, "knn");
            ms[q] = (now() - a) * 1e3;
        }
        report(f, "knn@50", ms, Q);
        qr_store_txn *t = NULL;
        qr_bm25 *bm = NULL;
        if ((rc = qr_store_txn_begin(s, false, &t)) || (rc = qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm)))
            DIE(rc, "bm25 open");
        qr_bm25_hit hits[64];
        size_t nh;
        for (int q = 0; q < Q; q++) {
            double a = now();
            if ((rc = qr_bm25_search(bm, qr_store_txn_mdb(t), qt[q], strlen(qt[q]), 50, hits, &nh)))
                DIE(rc, "bm25");
            ms[q] = (now() - a) * 1e3;
        }
        qr_bm25_close(bm);
        qr_store_txn_abort(t);
        report(f, "bm25@50", ms, Q);
        qr_retriever *r = NULL;
        if ((rc = qr_retriever_open(s, NULL, NULL, NULL, NULL, &r)))
            DIE(rc, "retriever");
        for (int q = 0; q < Q; q++) {
            qr_results res = {0};
            double a = now();
            if ((rc = qr_retrieve_query_vec(r, qt[q], strlen(qt[q]), qv + (size_t)q * dim, 10, NULL, 0, NULL, &res)))
                DIE(rc, "hybrid");
            ms[q] = (now() - a) * 1e3;
            qr_results_free(&res);
        }
        report(f, "hybrid", ms, Q);
        qr_retriever_close(r);
        qr_store_close(s);
        s = NULL;
    }
    for (int q = 0; q < Q; q++)
        free(qt[q]);
    free(qt);
    free(qv);
    free(vec);
    free(ms);
    return 0;
}
