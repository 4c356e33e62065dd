/* FAISS wrapper: translates shim errors into qr_fail() messages and makes
 * saves crash-safe. See vecindex.h. */
#include "index/vecindex.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "index/faiss_shim.h"

struct qr_vecindex {
    qr_faiss *f;
};

int qr_vecindex_create(const char *factory, int dim, bool metric_ip, qr_vecindex **out)
{
    char err[512] = "";
    qr_faiss *f = NULL;
    if (!factory || !*factory)
        factory = "Flat";
    if (dim <= 0 || dim > QR_VECINDEX_MAX_DIM)
        return qr_fail(QR_EINVAL, "vector index: dimension %d out of range 1..%d", dim, QR_VECINDEX_MAX_DIM);
    int rc = qr_faiss_new(factory, dim, metric_ip, &f, err, sizeof err);
    if (rc)
        return qr_fail(rc == QR_ENOMEM ? rc : QR_EINVAL, "vector index: factory \"%s\": %s", factory, err);
    qr_vecindex *v = calloc(1, sizeof *v);
    if (!v) {
        qr_faiss_free(f);
        return qr_fail(QR_ENOMEM, "vector index: out of memory");
    }
    v->f = f;
    *out = v;
    return 0;
}

int qr_vecindex_load(const char *path, qr_vecindex **out)
{
    char err[512] = "";
    qr_faiss *f = NULL;
    if (access(path, F_OK) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: %s", path, strerror(errno));
    int rc = qr_faiss_read(path, &f, err, sizeof err);
    if (rc)
        return qr_fail(rc == QR_ENOMEM ? rc : QR_EFORMAT, "%s: %s", path, err);
    qr_vecindex *v = calloc(1, sizeof *v);
    if (!v) {
        qr_faiss_free(f);
        return qr_fail(QR_ENOMEM, "%s: out of memory", path);
    }
    v->f = f;
    *out = v;
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int qr_vecindex_save(const qr_vecindex *v, const char *path)
{
    char err[512] = "";
    size_t n = strlen(path);
    char *tmp = malloc(n + 8), *dir = malloc(n + 1);
    int rc = 0;
    if (!tmp || !dir) {
        rc = qr_fail(QR_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, n + 8, "%s.tmp", path);
    memcpy(dir, path, n + 1);
    rc = qr_faiss_write(v->f, tmp, err, sizeof err);
    if (rc) {
        unlink(tmp);
        rc = qr_fail(QR_EIO, "%s: %s", tmp, err);
        goto fail;
    }
    // FAISS wrote through stdio and closed; make the bytes durable before the rename publishes them.
    if (fsync_path(tmp, O_RDONLY) != 0 || rename(tmp, path) != 0) {
        rc = qr_fail(QR_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        goto fail;
    }
    fsync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
fail:
    free(tmp);
    free(dir);
    return rc;
}

void qr_vecindex_free(qr_vecindex *v)
{
    if (!v)
        return;
    qr_faiss_free(v->f);
    free(v);
}

int qr_vecindex_dim(const qr_vecindex *v) { return qr_faiss_dim(v->f); }
bool qr_vecindex_metric_ip(const qr_vecindex *v) { return qr_faiss_metric_ip(v->f) != 0; }
int64_t qr_vecindex_count(const qr_vecindex *v) { return qr_faiss_ntotal(v->f); }
int64_t qr_vecindex_dead(const qr_vecindex *v) { return qr_faiss_dead(v->f); }
bool qr_vecindex_is_trained(const qr_vecindex *v) { return qr_faiss_is_trained(v->f) != 0; }
void qr_vecindex_describe(const qr_vecindex *v, char *buf, size_t len) { qr_faiss_describe(v->f, buf, len); }

int qr_vecindex_ids(const qr_vecindex *v, int64_t **ids, size_t *n)
{
    size_t cnt = (size_t)qr_faiss_ntotal(v->f);
    int64_t *a = malloc((cnt ? cnt : 1) * sizeof *a);
    if (!a)
        return qr_fail(QR_ENOMEM, "vector index: out of memory for %zu ids", cnt);
    qr_faiss_ids(v->f, a);
    *ids = a;
    *n = cnt;
    return 0;
}

int qr_vecindex_train(qr_vecindex *v, size_t n, const float *x)
{
    char err[512] = "";
    int rc = qr_faiss_train(v->f, (int64_t)n, x, err, sizeof err);
    return rc ? qr_fail(rc, "vector index: training on %zu vectors: %s", n, err) : 0;
}

int qr_vecindex_add(qr_vecindex *v, size_t n, const float *x, const int64_t *ids)
{
    char err[512] = "";
    if (n == 0)
        return 0;
    if (!qr_faiss_is_trained(v->f))
        return qr_fail(QR_EINVAL, "vector index: add before training");
    int rc = qr_faiss_add(v->f, (int64_t)n, x, ids, err, sizeof err);
    return rc ? qr_fail(rc, "vector index: adding %zu vectors: %s", n, err) : 0;
}

int qr_vecindex_remove(qr_vecindex *v, size_t n, const int64_t *ids, size_t *removed)
{
    char err[512] = "";
    int64_t r = 0;
    if (n == 0) {
        *removed = 0;
        return 0;
    }
    int rc = qr_faiss_remove(v->f, (int64_t)n, ids, &r, err, sizeof err);
    if (rc)
        return qr_fail(rc, "vector index: removing %zu ids: %s", n, err);
    *removed = (size_t)r;
    return 0;
}

int qr_vecindex_search(const qr_vecindex *v, const float *q, int k, int64_t *ids, float *scores, int *found)
{
    char err[512] = "";
    if (k <= 0 || k > QR_VECINDEX_MAX_K)
        return qr_fail(k <= 0 ? QR_EINVAL : QR_ELIMIT, "vector search: k=%d outside 1..%d", k, QR_VECINDEX_MAX_K);
    int64_t *lab = malloc((size_t)k * sizeof *lab);
    float *dist = malloc((size_t)k * sizeof *dist);
    int rc = 0, m = 0;
    if (!lab || !dist) {
        rc = qr_fail(QR_ENOMEM, "vector search: out of memory");
        goto fail;
    }
    // nprobe 16 / efSearch 64: exact on small stores, still fast on large ones.
    rc = qr_faiss_search(v->f, q, k, 16, k > 64 ? k : 64, dist, lab, err, sizeof err);
    if (rc) {
        rc = qr_fail(rc, "vector search: %s", err);
        goto fail;
    }
    for (int i = 0; i < k; i++)
        if (lab[i] >= 0) {
            ids[m] = lab[i];
            scores[m] = dist[i];
            m++;
        }
    *found = m;
fail:
    free(lab);
    free(dist);
    return rc;
}
