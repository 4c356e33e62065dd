/* Vector index over the real FAISS: Flat against a brute-force reference,
 * HNSW and IVF-PQ by factory string on well-separated clusters (the exact
 * nearest neighbours are known by construction), remove, save/load, errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "index/vecindex.h"
#include "tests/unit/test.h"

/* Deterministic xorshift so the data never depends on libc's rand(). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

#define D 16
#define NC 20   /* clusters */
#define PER 50  /* points per cluster */
#define N (NC * PER)

/* Cluster c: centre 10*e_c-ish (far apart), points centre + small noise (±0.05). */
static void make_clusters(float *x, float *centres)
{
    for (int c = 0; c < NC; c++)
        for (int j = 0; j < D; j++)
            centres[c * D + j] = 10.0f * frand();
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            x[i * D + j] = centres[(i / PER) * D + j] + 0.05f * frand();
}

/* Brute-force squared L2 k-NN (reference). */
static void brute(const float *x, int n, const float *q, int k, int64_t *ids)
{
    float *best = malloc((size_t)k * sizeof *best);
    for (int i = 0; i < k; i++) {
        best[i] = 1e30f;
        ids[i] = -1;
    }
    for (int i = 0; i < n; i++) {
        float d = 0;
        for (int j = 0; j < D; j++)
            d += (x[i * D + j] - q[j]) * (x[i * D + j] - q[j]);
        int p = k;
        while (p > 0 && d < best[p - 1])
            p--;
        if (p >= k)
            continue;
        for (int t = k - 1; t > p; t--) {
            best[t] = best[t - 1];
            ids[t] = ids[t - 1];
        }
        best[p] = d;
        ids[p] = 1000 + i;
    }
    free(best);
}

/* Every query at a cluster centre must get back exactly that cluster's PER points. */
static int cluster_recall(qr_vecindex *v, const float *centres)
{
    int64_t ids[PER];
    float sc[PER];
    int ok = 0;
    for (int c = 0; c < NC; c++) {
        int found = 0;
        if (qr_vecindex_search(v, centres + c * D, PER, ids, sc, &found) != 0)
            return -1;
        int good = found == PER;
        for (int i = 0; i < found; i++)
            good &= (ids[i] - 1000) / PER == c;
        ok += good;
    }
    return ok;
}

int main(void)
{
    float *x = malloc(sizeof(float) * N * D), centres[NC * D];
    int64_t *ids = malloc(sizeof(int64_t) * N);
    make_clusters(x, centres);
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + i;

    /* Flat L2: top-10 identical to brute force for random queries. */
    qr_vecindex *v = NULL;
    CHECK_OK(qr_vecindex_create("Flat", D, false, &v));
    CHECK(qr_vecindex_is_trained(v));
    CHECK_OK(qr_vecindex_add(v, N, x, ids));
    CHECK_INT(qr_vecindex_count(v), N);
    int exact = 0;
    for (int t = 0; t < 20; t++) {
        float q[D];
        int64_t got[10], want[10];
        float sc[10];
        int found = 0;
        for (int j = 0; j < D; j++)
            q[j] = 10.0f * frand();
        CHECK_OK(qr_vecindex_search(v, q, 10, got, sc, &found));
        brute(x, N, q, 10, want);
        exact += found == 10 && memcmp(got, want, sizeof got) == 0;
    }
    CHECK_INT(exact, 20);
    CHECK_INT(cluster_recall(v, centres), NC);

    /* Remove a whole cluster: its points never come back, count drops by PER. */
    size_t removed = 0;
    CHECK_OK(qr_vecindex_remove(v, PER, ids + 3 * PER, &removed));
    CHECK_INT(removed, PER);
    CHECK_INT(qr_vecindex_count(v), N - PER);
    {
        int64_t got[PER];
        float sc[PER];
        int found = 0, foreign = 0;
        CHECK_OK(qr_vecindex_search(v, centres + 3 * D, PER, got, sc, &found));
        for (int i = 0; i < found; i++)
            foreign += (got[i] - 1000) / PER == 3;
        CHECK_INT(found, PER);
        CHECK_INT(foreign, 0);
    }

    /* Save / load round trip keeps ids and results. */
    char dir[] = "/tmp/qr_vecXXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/v.faiss", dir);
    CHECK_OK(qr_vecindex_save(v, path));
    qr_vecindex *w = NULL;
    CHECK_OK(qr_vecindex_load(path, &w));
    if (w) {
        CHECK_INT(qr_vecindex_count(w), N - PER);
        CHECK_INT(qr_vecindex_dim(w), D);
        CHECK(!qr_vecindex_metric_ip(w));
        int64_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(qr_vecindex_ids(v, &a, &na));
        CHECK_OK(qr_vecindex_ids(w, &b, &nb));
        CHECK(na == nb && a && b && memcmp(a, b, na * sizeof *a) == 0);
        free(a);
        free(b);
    }
    qr_vecindex_free(w);
    qr_vecindex_free(v);

    /* HNSW by factory string: exact clusters. Removal leaves tombstones that
     * searches skip: a removed cluster's centre then finds other clusters only,
     * the others still find exactly their own points. */
    v = NULL;
    CHECK_OK(qr_vecindex_create("HNSW16", D, false, &v));
    CHECK_OK(qr_vecindex_add(v, N, x, ids));
    CHECK_INT(cluster_recall(v, centres), NC);
    CHECK_OK(qr_vecindex_remove(v, PER, ids + 7 * PER, &removed));
    CHECK_INT(removed, PER);
    CHECK_OK(qr_vecindex_remove(v, 1, ids + 7 * PER, &removed)); /* twice: nothing more */
    CHECK_INT(removed, 0);
    CHECK_INT(qr_vecindex_count(v), N - PER);
    CHECK_INT(qr_vecindex_dead(v), PER);
    CHECK_INT(cluster_recall(v, centres), NC - 1);
    {
        int64_t got[PER], *live = NULL;
        float sc[PER];
        int found = 0, dead_hits = 0;
        size_t nl = 0;
        CHECK_OK(qr_vecindex_search(v, centres + 7 * D, PER, got, sc, &found));
        for (int i = 0; i < found; i++)
            dead_hits += (got[i] - 1000) / PER == 7;
        CHECK_INT(found, PER);
        CHECK_INT(dead_hits, 0);
        CHECK_OK(qr_vecindex_ids(v, &live, &nl));
        int bad = 0;
        for (size_t i = 0; i < nl; i++)
            bad += (live[i] - 1000) / PER == 7;
        CHECK_INT(nl, N - PER);
        CHECK_INT(bad, 0);
        free(live);
        /* Adding after removal keeps working (positions past the tombstones). */
        float extra[D];
        int64_t xid = 999999;
        memcpy(extra, centres + 7 * D, sizeof extra);
        CHECK_OK(qr_vecindex_add(v, 1, extra, &xid));
        CHECK_OK(qr_vecindex_search(v, centres + 7 * D, 1, got, sc, &found));
        CHECK(found == 1 && got[0] == xid);
    }
    qr_vecindex_free(v);

    /* IVF-PQ: untrained until trained; then exact clusters (nprobe covers them). */
    v = NULL;
    CHECK_OK(qr_vecindex_create("IVF8,PQ4x4", D, false, &v));
    CHECK(!qr_vecindex_is_trained(v));
    CHECK_INT(qr_vecindex_add(v, N, x, ids), QR_EINVAL);
    CHECK_OK(qr_vecindex_train(v, N, x));
    CHECK(qr_vecindex_is_trained(v));
    CHECK_OK(qr_vecindex_add(v, N, x, ids));
    CHECK_INT(cluster_recall(v, centres), NC);
    CHECK_OK(qr_vecindex_remove(v, PER, ids, &removed));
    CHECK_INT(removed, PER);
    qr_vecindex_free(v);

    /* Inner product metric: score is the dot product. */
    v = NULL;
    CHECK_OK(qr_vecindex_create(NULL, 2, true, &v));
    {
        float p[4] = {1, 0, 0.6f, 0.8f}, q[2] = {0.6f, 0.8f}, sc[2];
        int64_t pid[2] = {7, 9}, got[2];
        int found = 0;
        CHECK_OK(qr_vecindex_add(v, 2, p, pid));
        CHECK_OK(qr_vecindex_search(v, q, 5, got, sc, &found));
        CHECK_INT(found, 2);
        CHECK_INT(got[0], 9);
        CHECK_NEAR(sc[0], 1.0, 1e-6);
        CHECK_NEAR(sc[1], 0.6, 1e-6);
        CHECK_INT(qr_vecindex_search(v, q, QR_VECINDEX_MAX_K + 1, got, sc, &found), QR_ELIMIT);
    }
    qr_vecindex_free(v);

    /* Errors: bad factory string and garbage file name the problem. */
    v = NULL;
    CHECK_INT(qr_vecindex_create("NoSuchIndex42", D, false, &v), QR_EINVAL);
    CHECK(strstr(qr_last_error(), "NoSuchIndex42") != NULL);
    CHECK_INT(qr_vecindex_create("IDMap,Flat", D, false, &v), QR_EINVAL);
    FILE *f = fopen(path, "wb");
    fputs("not a faiss index", f);
    fclose(f);
    CHECK_INT(qr_vecindex_load(path, &v), QR_EFORMAT);
    unlink(path);
    CHECK_INT(qr_vecindex_load(path, &v), QR_ENOTFOUND);
    rmdir(dir);

    free(x);
    free(ids);
    return qr_test_done();
}
