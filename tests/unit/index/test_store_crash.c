/* Crash safety: a child process runs a random write sequence (add, replace,
 * delete documents with vectors; syncs that rewrite vectors.faiss) and is
 * killed with SIGKILL after a random delay. Reopening the store must give a
 * consistent store: LMDB records agree with each other, and FAISS holds
 * exactly the chunk ids that have an LMDB vector, each of which is found as
 * its own nearest neighbour. Flat and HNSW stores, several kill points each. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "index/store.h"
#include "tests/unit/test.h"

#define D 8
#define TRIALS 10

static uint64_t rng;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static void randvec(float *v)
{
    float n = 0;
    for (int j = 0; j < D; j++) {
        v[j] = (float)(next_u32() % 2001) / 1000.0f - 1.0f;
        n += v[j] * v[j];
    }
    n = sqrtf(n) + 1e-6f;
    for (int j = 0; j < D; j++)
        v[j] /= n;
}

static qr_embedder_id emb(void)
{
    qr_embedder_id e;
    memset(&e, 0, sizeof e);
    strcpy(e.model, "m");
    strcpy(e.hash, "fnv1a64:0000000000000001");
    e.dim = D;
    strcpy(e.pooling, "mean");
    e.normalize = true;
    return e;
}

/* The child's endless write sequence (until killed or 400 ops). */
static void child(const char *dir, uint64_t seed)
{
    qr_embedder_id e = emb();
    qr_store_open_opts o = {.embedder = &e};
    qr_store *s = NULL;
    rng = seed;
    qr_log_set_level(QR_LOG_ERROR);
    if (qr_store_open(dir, &o, &s) != 0)
        _exit(3);
    for (int op = 0; op < 400; op++) {
        qr_store_txn *t = NULL;
        char path[32];
        if (qr_store_txn_begin(s, true, &t) != 0)
            _exit(4);
        int nops = 1 + (int)(next_u32() % 3); /* several changes per transaction */
        for (int k = 0; k < nops; k++) {
            snprintf(path, sizeof path, "doc%u.txt", next_u32() % 25);
            if (next_u32() % 4 == 0) {
                int rc = qr_store_delete_path(t, path);
                if (rc && rc != QR_ENOTFOUND)
                    _exit(5);
            } else {
                qr_store_chunk ch[6];
                float x[6 * D];
                size_t n = 1 + next_u32() % 6;
                memset(ch, 0, sizeof ch);
                for (size_t i = 0; i < n; i++) {
                    ch[i].text = path;
                    ch[i].text_len = strlen(path);
                    ch[i].ordinal = (uint32_t)i;
                    randvec(x + i * D);
                }
                qr_store_doc d = {.path = path, .hash = "h", .format = "txt"};
                if (qr_store_put_doc(t, &d, ch, n, x, NULL, NULL) != 0)
                    _exit(6);
            }
        }
        if (qr_store_txn_commit(t) != 0)
            _exit(7);
        if (next_u32() % 3 == 0 && qr_store_sync(s) != 0)
            _exit(8);
    }
    qr_store_close(s);
    _exit(0);
}

typedef struct {
    qr_store_txn *t;
    int bad;
    uint64_t nchunks;
} walk;

static int chunk_of_doc(const qr_store_chunk *c, void *user)
{
    walk *w = user;
    w->nchunks++;
    return 0;
}

static int check_doc(const qr_store_doc *d, void *user)
{
    walk *w = user;
    qr_store_doc byp;
    uint64_t before = w->nchunks;
    char path[64];
    snprintf(path, sizeof path, "%s", d->path);
    uint64_t id = d->id, n = d->n_chunks;
    if (qr_store_doc_chunks(w->t, id, chunk_of_doc, w) != 0 || w->nchunks - before != n)
        w->bad++;
    if (qr_store_doc_by_path(w->t, path, &byp) != 0 || byp.id != id)
        w->bad++;
    return 0;
}

static int chunk_has_doc(const qr_store_chunk *c, void *user)
{
    walk *w = user;
    qr_store_doc d;
    if (qr_store_get_doc(w->t, c->doc_id, &d) != 0)
        w->bad++;
    return 0;
}

typedef struct {
    qr_store *s;
    qr_store_txn *t;
    int with_vec, self_top1, missing;
} vwalk;

static int check_vec(const qr_store_chunk *c, void *user)
{
    vwalk *w = user;
    float v[D];
    uint64_t id;
    float sc;
    int found = 0;
    if (qr_store_get_vector(w->t, c->id, v) != 0) {
        w->missing++; /* the sequence always stores vectors */
        return 0;
    }
    w->with_vec++;
    if (qr_store_search(w->s, v, 1, &id, &sc, &found) == 0 && found == 1 && id == c->id)
        w->self_top1++;
    return 0;
}

static void run(const char *base, const char *factory, uint64_t seed0)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", base, factory);
    qr_embedder_id e = emb();
    qr_store_open_opts oc = {.create = true, .embedder = &e, .factory = factory};
    qr_store *s = NULL;
    qr_log_set_level(QR_LOG_INFO); /* shows the reconciliation lines */
    CHECK_OK(qr_store_open(dir, &oc, &s));
    qr_store_close(s);
    int killed = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        pid_t pid = fork();
        if (pid == 0)
            child(dir, seed0 + (uint64_t)trial * 7919);
        /* Random kill point: 0..40 ms into the sequence. */
        rng = seed0 ^ (uint64_t)(trial + 1) * 0x9e3779b97f4a7c15ULL;
        struct timespec ts = {0, (long)(next_u32() % 40000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        killed += WIFSIGNALED(status);
        CHECK_MSG(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "%s trial %d: child exit %d", factory, trial, WEXITSTATUS(status));

        s = NULL;
        CHECK_OK(qr_store_open(dir, &oc, &s));
        if (!s)
            return;
        qr_store_counts c;
        CHECK_OK(qr_store_counts_get(s, &c));
        CHECK_MSG(c.faiss_vectors == (int64_t)c.vectors, "%s trial %d: faiss %lld, lmdb %llu", factory, trial,
                  (long long)c.faiss_vectors, (unsigned long long)c.vectors);
        walk w = {0};
        CHECK_OK(qr_store_txn_begin(s, false, &w.t));
        CHECK_OK(qr_store_iter_docs(w.t, check_doc, &w));
        CHECK_OK(qr_store_iter_chunks(w.t, chunk_has_doc, &w));
        CHECK_MSG(w.bad == 0, "%s trial %d: %d LMDB inconsistencies", factory, trial, w.bad);
        CHECK_INT(w.nchunks, c.chunks);
        vwalk vw = {.s = s, .t = w.t};
        CHECK_OK(qr_store_iter_chunks(w.t, check_vec, &vw));
        CHECK_INT(vw.missing, 0);
        CHECK_INT(vw.with_vec, c.vectors);
        CHECK_MSG(vw.self_top1 == vw.with_vec, "%s trial %d: %d of %d vectors find themselves", factory, trial,
                  vw.self_top1, vw.with_vec);
        /* Nothing extra: a k = all search returns only LMDB chunk ids. */
        if (c.vectors > 0) {
            int k = (int)c.vectors + 5, found = 0, extra = 0;
            uint64_t *ids = malloc((size_t)k * sizeof *ids);
            float *sc = malloc((size_t)k * sizeof *sc);
            float q[D] = {1, 0, 0, 0, 0, 0, 0, 0};
            CHECK_OK(qr_store_search(s, q, k, ids, sc, &found));
            for (int i = 0; i < found; i++) {
                qr_store_chunk ch;
                extra += qr_store_get_chunk(w.t, ids[i], &ch) != 0;
            }
            CHECK_INT(extra, 0);
            if (strcmp(factory, "Flat") == 0)
                CHECK_INT(found, c.vectors);
            free(ids);
            free(sc);
        }
        qr_store_txn_abort(w.t);
        printf("%s trial %d: generation %llu, %llu docs, %llu chunks, %llu vectors after the kill\n", factory, trial,
               (unsigned long long)c.generation, (unsigned long long)c.docs, (unsigned long long)c.chunks,
               (unsigned long long)c.vectors);
        qr_store_close(s);
    }
    printf("%s: %d of %d children killed mid-sequence\n", factory, killed, TRIALS);
    CHECK(killed >= TRIALS / 2);
}

int main(void)
{
    char base[] = "/tmp/qr_crashXXXXXX";
    CHECK(mkdtemp(base) != NULL);
    run(base, "Flat", 12345);
    run(base, "HNSW16", 777);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return qr_test_done();
}
