/* BM25 speed, single thread, on BEIR datasets (SciFact, ArguAna by default):
 *   - analyzer throughput (MB/s of title + "\n" + text through the English analyzer);
 *   - indexing: all documents added in one LMDB write transaction, flushed and
 *     committed (MDB_NOSYNC env in a temporary directory): docs/s and MB/s;
 *   - query latency over every query in queries.jsonl (k = 10 and k = 1000):
 *     p50 / p99 / mean of 3 passes after a warm-up pass, and queries/s (queries
 *     over the wall time of a whole pass, mean of the 3);
 *   - quality of the same index configuration (qr_beir_eval_bm25: judged queries,
 *     1000 hits, trec_eval -c).
 * The corpus is read into memory before timing (JSON parsing is not counted).
 * The table rows give thread CPU time (see now()); the "RESULT" and "QUALITY"
 * lines (for bench/anchor/run.sh, which puts them beside Lucene's) give wall
 * time as well.
 *
 * usage: bench_bm25 [DATASET_DIR...]   (default ../shared/data/scifact ../shared/data/arguana) */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "index/analyzer.h"
#include "index/bm25.h"
#include "index/eval.h"

typedef struct {
    char **s;
    size_t *len;
    size_t n, cap, bytes;
} texts;

/* Thread CPU time: the build machines are shared and often oversubscribed, so
 * wall time measures the neighbours; CPU time (user + system, which includes
 * LMDB's writes) measures this code. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *base_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    const char *b = dir + n;
    while (b > dir && b[-1] != '/')
        b--;
    static char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(dir + n - b), b);
    return name;
}

static int push(texts *t, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), n = la ? la + 1 + lb : lb;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->s = realloc(t->s, t->cap * sizeof *t->s);
        t->len = realloc(t->len, t->cap * sizeof *t->len);
        if (!t->s || !t->len)
            return QR_ENOMEM;
    }
    char *p = malloc(n + 1);
    if (!p)
        return QR_ENOMEM;
    if (la) {
        memcpy(p, a, la);
        p[la] = '\n';
        memcpy(p + la + 1, b, lb);
    } else {
        memcpy(p, b, lb);
    }
    p[n] = 0;
    t->s[t->n] = p;
    t->len[t->n++] = n;
    t->bytes += n;
    return 0;
}

static int on_doc(const char *id, const char *title, const char *text, void *user)
{
    (void)id;
    return push(user, title, text);
}

static int on_query(const char *id, const char *title, const char *text, void *user)
{
    (void)id;
    (void)title;
    return push(user, "", text);
}

static int count_term(const char *t, size_t len, void *user)
{
    (void)t;
    (void)len;
    ++*(size_t *)user;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void free_texts(texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->len);
}

static int bench(const char *dir)
{
    char path[4096];
    texts docs = {0}, qs = {0};
    snprintf(path, sizeof path, "%s/corpus.jsonl", dir);
    if (qr_beir_read_corpus(path, on_doc, &docs)) {
        fprintf(stderr, "bench_bm25: %s: %s\n", path, qr_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/queries.jsonl", dir);
    if (qr_beir_read_queries(path, on_query, &qs)) {
        fprintf(stderr, "bench_bm25: %s: %s\n", path, qr_last_error());
        return 1;
    }
    /* analyzer alone, best of 3 */
    qr_analyzer *an = NULL;
    qr_analyzer_create(&an);
    double best_an = 1e30;
    size_t nterms = 0;
    for (int r = 0; r < 3; r++) {
        nterms = 0;
        double t0 = now();
        for (size_t i = 0; i < docs.n; i++)
            qr_analyzer_run(an, docs.s[i], docs.len[i], count_term, &nterms);
        double dt = now() - t0;
        if (dt < best_an)
            best_an = dt;
    }
    qr_analyzer_destroy(an);

    /* indexing, best of 3 fresh environments */
    double best_ix = 1e30, best_ix_wall = 1e30;
    char tdir[4096];
    MDB_env *env = NULL;
    qr_bm25 *ix = NULL;
    size_t db_bytes = 0;
    for (int r = 0; r < 3; r++) {
        if (env) {
            qr_bm25_close(ix);
            ix = NULL;
            mdb_env_close(env);
            char p[4200];
            snprintf(p, sizeof p, "%s/data.mdb", tdir);
            unlink(p);
            snprintf(p, sizeof p, "%s/lock.mdb", tdir);
            unlink(p);
            rmdir(tdir);
        }
        snprintf(tdir, sizeof tdir, "%s/quire-bench-bm25-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tdir) || mdb_env_create(&env) || mdb_env_set_maxdbs(env, 32) ||
            mdb_env_set_mapsize(env, (size_t)4 << 30) || mdb_env_open(env, tdir, MDB_NOSYNC, 0600)) {
            fprintf(stderr, "bench_bm25: cannot create LMDB env in %s\n", tdir);
            return 1;
        }
        MDB_txn *txn;
        double t0 = now(), w0 = wall();
        mdb_txn_begin(env, NULL, 0, &txn);
        if (qr_bm25_open(txn, NULL, &ix)) {
            fprintf(stderr, "bench_bm25: %s\n", qr_last_error());
            return 1;
        }
        for (size_t i = 0; i < docs.n; i++)
            if (qr_bm25_add(ix, txn, i, docs.s[i], docs.len[i])) {
                fprintf(stderr, "bench_bm25: %s\n", qr_last_error());
                return 1;
            }
        qr_bm25_flush(ix, txn);
        mdb_txn_commit(txn);
        double dt = now() - t0, dw = wall() - w0;
        if (dt < best_ix)
            best_ix = dt;
        if (dw < best_ix_wall)
            best_ix_wall = dw;
        MDB_stat st;
        mdb_env_stat(env, &st);
        MDB_envinfo ei;
        mdb_env_info(env, &ei);
        db_bytes = (ei.me_last_pgno + 1) * (size_t)st.ms_psize;
    }
    printf("| %s | %zu docs, %.1f MB, %zu terms | analyzer %.1f MB/s | index %.0f docs/s, %.1f MB/s (%.3f s, %.1f MB LMDB) |\n",
           dir, docs.n, (double)docs.bytes / 1e6, nterms, (double)docs.bytes / best_an / 1e6,
           (double)docs.n / best_ix, (double)docs.bytes / best_ix / 1e6, best_ix, (double)db_bytes / 1e6);

    /* queries */
    size_t ks[2] = {10, 1000};
    qr_bm25_hit *hits = malloc(1000 * sizeof *hits);
    double *lat = malloc(qs.n * 3 * sizeof *lat), *latw = malloc(qs.n * 3 * sizeof *latw);
    char result[1024];
    int rl = snprintf(result, sizeof result, "RESULT engine=quire dataset=%s docs=%zu terms=%zu index_wall=%.4f index_cpu=%.4f",
                      base_name(dir), docs.n, nterms, best_ix_wall, best_ix);
    MDB_txn *rt;
    mdb_txn_begin(env, NULL, MDB_RDONLY, &rt);
    for (int kk = 0; kk < 2; kk++) {
        size_t nl = 0, nh;
        double pass_wall = 0;
        for (int pass = 0; pass < 4; pass++) {
            double p0 = wall();
            for (size_t i = 0; i < qs.n; i++) {
                double t0 = now(), w0 = wall();
                qr_bm25_search(ix, rt, qs.s[i], qs.len[i], ks[kk], hits, &nh);
                double dt = now() - t0, dw = wall() - w0;
                if (pass > 0) {
                    lat[nl] = dt;
                    latw[nl++] = dw;
                }
            }
            if (pass > 0)
                pass_wall += wall() - p0;
        }
        double sum = 0;
        for (size_t i = 0; i < nl; i++)
            sum += lat[i];
        qsort(lat, nl, sizeof *lat, cmp_d);
        qsort(latw, nl, sizeof *latw, cmp_d);
        printf("|   queries k=%zu | %zu queries (mean %.0f bytes) | p50 %.3f ms | p99 %.3f ms | mean %.3f ms |\n", ks[kk],
               qs.n, (double)qs.bytes / (double)qs.n, lat[nl / 2] * 1e3, lat[(size_t)((double)nl * 0.99)] * 1e3,
               sum / (double)nl * 1e3);
        double qps = (double)nl / pass_wall;
        if (rl > 0 && (size_t)rl < sizeof result)
            rl += snprintf(result + rl, sizeof result - (size_t)rl, " k%zu_p50=%.4f k%zu_p99=%.4f k%zu_cpu_p50=%.4f k%zu_qps=%.1f",
                           ks[kk], latw[nl / 2] * 1e3, ks[kk], latw[(size_t)((double)nl * 0.99)] * 1e3, ks[kk],
                           lat[nl / 2] * 1e3, ks[kk], qps);
    }
    printf("%s\n", result);
    mdb_txn_abort(rt);
    free(hits);
    free(lat);
    free(latw);
    qr_bm25_close(ix);
    mdb_env_close(env);
    char p[4200];
    snprintf(p, sizeof p, "%s/data.mdb", tdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", tdir);
    unlink(p);
    rmdir(tdir);
    /* quality of the same configuration (its own temporary index) */
    qr_beir_result er;
    qr_beir_opts eo = {"test", qr_bm25_default_params(), 1000, NULL};
    if (qr_beir_eval_bm25(dir, &eo, &er) == 0)
        printf("QUALITY engine=quire dataset=%s queries=%zu run=%zu ndcg10=%.4f r100=%.4f r1000=%.4f mrr10=%.4f\n",
               base_name(dir), er.nqueries_qrels, er.nqueries_run, er.mean.ndcg10, er.mean.recall100,
               er.mean.recall1000, er.mean.mrr10);
    else
        fprintf(stderr, "bench_bm25: %s: %s\n", dir, qr_last_error());
    free_texts(&docs);
    free_texts(&qs);
    return 0;
}

int main(int argc, char **argv)
{
    const char *def[] = {"../shared/data/scifact", "../shared/data/arguana"};
    int rc = 0;
    if (argc > 1)
        for (int i = 1; i < argc; i++)
            rc |= bench(argv[i]);
    else
        for (int i = 0; i < 2; i++)
            rc |= bench(def[i]);
    return rc;
}
