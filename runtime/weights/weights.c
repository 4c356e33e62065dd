/* qr_wsrc: one tensor table over a GGUF file, a safetensors file, or a model
 * directory (model.safetensors.index.json shards, or model.safetensors). */
#include "runtime/weights/weights.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/weights/safetensors.h"

struct qr_wsrc {
    char *path;
    qr_gguf *gguf;      /* set for a GGUF source */
    qr_st_file **st;    /* (n_st) safetensors files */
    size_t n_st;
    qr_wtensor *t;      /* (n) all tensors, file order */
    size_t n;
    size_t *sorted;     /* (n) indexes of t sorted by name */
    uint64_t bytes;
};

void qr_wsrc_close(qr_wsrc *s)
{
    if (!s)
        return;
    qr_gguf_close(s->gguf);
    for (size_t i = 0; i < s->n_st; i++)
        qr_st_close(s->st[i]);
    free(s->st);
    free(s->t);
    free(s->sorted);
    free(s->path);
    free(s);
}

const qr_gguf *qr_wsrc_gguf(const qr_wsrc *s) { return s->gguf; }

void qr_wsrc_release(const qr_wsrc *s, const qr_wtensor *t)
{
    /* every qr_wsrc tensor lies in a read-only private file mapping
     * (qr_gguf_open, qr_st_open): never anonymous memory, whose pages
     * MADV_DONTNEED would zero */
    long pg = sysconf(_SC_PAGESIZE);
    if (!s || !t || !t->data || pg <= 0)
        return;
    uintptr_t a = (uintptr_t)t->data, e = a + t->nbytes, p = (uintptr_t)pg;
    a = (a + p - 1) / p * p;
    e = e / p * p;
    if (e > a)
        madvise((void *)a, e - a, MADV_DONTNEED); /* advice: a failure only leaves the pages resident */
}
size_t qr_wsrc_count(const qr_wsrc *s) { return s->n; }
const qr_wtensor *qr_wsrc_at(const qr_wsrc *s, size_t i) { return i < s->n ? &s->t[i] : NULL; }
uint64_t qr_wsrc_bytes(const qr_wsrc *s) { return s->bytes; }

const qr_wtensor *qr_wsrc_find(const qr_wsrc *s, const char *name)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(s->t[s->sorted[mid]].name, name);
        if (r == 0)
            return &s->t[s->sorted[mid]];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_name(const void *a, const void *b, void *t)
{
    const qr_wtensor *w = t;
    return strcmp(w[*(const size_t *)a].name, w[*(const size_t *)b].name);
}

/* Builds the sorted index; a name present twice (across shards) is an error. */
static int index_names(qr_wsrc *s)
{
    s->sorted = malloc((s->n ? s->n : 1) * sizeof *s->sorted);
    if (!s->sorted)
        return qr_fail(QR_ENOMEM, "%s: no memory", s->path);
    s->bytes = 0;
    for (size_t i = 0; i < s->n; i++) {
        s->sorted[i] = i;
        s->bytes += s->t[i].nbytes;
    }
    qsort_r(s->sorted, s->n, sizeof *s->sorted, cmp_name, s->t);
    for (size_t i = 1; i < s->n; i++) {
        const qr_wtensor *a = &s->t[s->sorted[i - 1]], *b = &s->t[s->sorted[i]];
        if (strcmp(a->name, b->name) == 0)
            return qr_fail(QR_EFORMAT, "%s: tensor '%s' appears twice (%s and %s)", s->path, a->name,
                           a->file, b->file);
    }
    return QR_OK;
}

static int from_gguf(qr_wsrc *s, const char *path)
{
    int rc = qr_gguf_open(path, &s->gguf);
    if (rc)
        return rc;
    s->n = (size_t)qr_gguf_n_tensors(s->gguf);
    s->t = calloc(s->n ? s->n : 1, sizeof *s->t);
    if (!s->t)
        return qr_fail(QR_ENOMEM, "%s: no memory", path);
    for (size_t i = 0; i < s->n; i++) {
        const qr_gguf_tensor *g = qr_gguf_tensor_at(s->gguf, i);
        qr_wtensor *t = &s->t[i];
        t->name = g->name;
        t->file = qr_gguf_path(s->gguf);
        t->dtype = g->dtype;
        t->n_dims = g->n_dims;
        memcpy(t->shape, g->shape, sizeof t->shape);
        t->data = g->data;
        t->nbytes = g->nbytes;
    }
    return QR_OK;
}

/* Opens the safetensors files paths[0..n) and concatenates their tensors. */
static int from_st_files(qr_wsrc *s, char **paths, size_t n)
{
    int rc;
    s->st = calloc(n ? n : 1, sizeof *s->st);
    if (!s->st)
        return qr_fail(QR_ENOMEM, "%s: no memory", s->path);
    size_t total = 0;
    for (; s->n_st < n; s->n_st++) {
        if ((rc = qr_st_open(paths[s->n_st], &s->st[s->n_st])))
            return rc;
        total += qr_st_count(s->st[s->n_st]);
    }
    s->t = calloc(total ? total : 1, sizeof *s->t);
    if (!s->t)
        return qr_fail(QR_ENOMEM, "%s: no memory", s->path);
    for (size_t f = 0; f < n; f++)
        for (size_t i = 0; i < qr_st_count(s->st[f]); i++)
            s->t[s->n++] = *qr_st_at(s->st[f], i);
    return QR_OK;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sharded checkpoint: model.safetensors.index.json {"weight_map": {tensor: file}}.
 * Every listed tensor must be in the shard the index names. */
static int from_index(qr_wsrc *s, const char *dir, const char *index)
{
    json_error_t err;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &err);
    json_t *map = root ? json_object_get(root, "weight_map") : NULL;
    char **files = NULL;
    size_t nf = 0;
    int rc = QR_OK;
    if (!json_is_object(map)) {
        rc = qr_fail(QR_EFORMAT, "%s: %s", index, root ? "no \"weight_map\" object" : err.text);
        goto fail;
    }
    files = calloc(json_object_size(map) + 1, sizeof *files);
    if (!files) {
        rc = qr_fail(QR_ENOMEM, "%s: no memory", index);
        goto fail;
    }
    const char *name;
    json_t *v;
    json_object_foreach(map, name, v) { /* distinct shard files, in first-seen order */
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || strcmp(f, "..") == 0) {
            rc = qr_fail(QR_EFORMAT, "%s: tensor '%s': shard must be a file name in the same directory",
                         index, name);
            goto fail;
        }
        size_t j = 0;
        while (j < nf && strcmp(strrchr(files[j], '/') + 1, f) != 0)
            j++;
        if (j == nf && !(files[nf++] = join(dir, f))) {
            rc = qr_fail(QR_ENOMEM, "%s: no memory", index);
            goto fail;
        }
    }
    if (nf == 0) {
        rc = qr_fail(QR_EFORMAT, "%s: weight_map is empty", index);
        goto fail;
    }
    if ((rc = from_st_files(s, files, nf)) || (rc = index_names(s)))
        goto fail;
    json_object_foreach(map, name, v) {
        const qr_wtensor *t = qr_wsrc_find(s, name);
        bool skipped = false;
        for (size_t i = 0; !t && i < s->n_st; i++)
            skipped |= qr_st_skipped(s->st[i], name);
        if (skipped)
            continue;
        const char *want = json_string_value(v), *got = t ? strrchr(t->file, '/') + 1 : NULL;
        if (!t || strcmp(got, want) != 0) {
            rc = qr_fail(QR_EFORMAT, "%s: tensor '%s' is listed in %s but %s", index, name, want,
                         t ? "stored in another shard" : "missing from every shard");
            goto fail;
        }
    }
    if (s->n > json_object_size(map))
        QR_WARN("%s: shards hold %zu tensors, weight_map lists %zu", index, s->n, json_object_size(map));
fail:
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
    free(files);
    json_decref(root);
    return rc;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* A directory: index.json shards, else model.safetensors, else a lone
 * *.safetensors or *.gguf file. */
static int from_dir(qr_wsrc *s, const char *dir)
{
    char *p = join(dir, "model.safetensors.index.json"), *found = NULL;
    int rc, n_st = 0, n_gguf = 0;
    bool has_bin = false;
    if (!p)
        return qr_fail(QR_ENOMEM, "%s: no memory", dir);
    if (is_file(p)) {
        rc = from_index(s, dir, p);
        free(p);
        return rc;
    }
    free(p);
    DIR *d = opendir(dir);
    if (!d)
        return qr_fail(QR_EIO, "%s: cannot list directory: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        bool st = has_suffix(e->d_name, ".safetensors"), gg = has_suffix(e->d_name, ".gguf");
        has_bin |= has_suffix(e->d_name, ".bin") || has_suffix(e->d_name, ".pt");
        if (!st && !gg)
            continue;
        n_st += st;
        n_gguf += gg;
        /* model.safetensors wins over any other file */
        if ((st && strcmp(e->d_name, "model.safetensors") == 0) || !found) {
            free(found);
            found = join(dir, e->d_name);
        }
    }
    closedir(d);
    if (!found)
        return qr_fail(QR_ENOTFOUND, "%s: no model.safetensors, model.safetensors.index.json or .gguf file%s",
                       dir, has_bin ? " (PyTorch .bin/.pt checkpoints are not read: save the model with "
                                      "safe_serialization=True, or download its safetensors files)" : "");
    if (!has_suffix(found, "/model.safetensors") && n_st + n_gguf > 1) {
        free(found);
        return qr_fail(QR_EINVAL, "%s: %d weight files and no model.safetensors or index.json: "
                       "pass the file to use", dir, n_st + n_gguf);
    }
    rc = has_suffix(found, ".gguf") ? from_gguf(s, found) : from_st_files(s, &found, 1);
    free(found);
    return rc;
}

/* GGUF by magic, whatever the name (Ollama blobs have no extension). */
static bool looks_gguf(const char *path)
{
    char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(m, "GGUF", 4) == 0;
}

int qr_wsrc_open(const char *path, qr_wsrc **out)
{
    struct stat st;
    int rc;
    if (stat(path, &st) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: %s", path, strerror(errno));
    qr_wsrc *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return qr_fail(QR_ENOMEM, "%s: no memory", path);
    }
    if (S_ISDIR(st.st_mode))
        rc = from_dir(s, path);
    else if (looks_gguf(path))
        rc = from_gguf(s, path);
    else {
        char *p = s->path;
        rc = from_st_files(s, &p, 1);
    }
    if (!rc && !s->sorted)
        rc = index_names(s);
    if (rc) {
        qr_wsrc_close(s);
        return rc;
    }
    *out = s;
    return QR_OK;
}
