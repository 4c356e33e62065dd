/* manifest.json reader/writer (see manifest.h). */
#include "index/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static void now_iso(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void qr_manifest_init(qr_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->version = QR_MANIFEST_VERSION;
    now_iso(m->created, sizeof m->created);
    memcpy(m->updated, m->created, sizeof m->updated);
    strcpy(m->vec_dtype, "f32");
    strcpy(m->metric, "ip");
    strcpy(m->factory, "Flat");
    m->chunk_tokens = 256;
    m->chunk_overlap = 32;
}

/* Field getters: each fails with the manifest path and the field's JSON path. */
static int get_str(const char *file, json_t *o, const char *sect, const char *key, char *dst, size_t len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return qr_fail(QR_EFORMAT, "%s: %s%s%s: missing or not a string", file, sect, *sect ? "." : "", key);
    if (strlen(json_string_value(v)) >= len)
        return qr_fail(QR_EFORMAT, "%s: %s%s%s: longer than %zu bytes", file, sect, *sect ? "." : "", key, len - 1);
    strcpy(dst, json_string_value(v));
    return 0;
}

static int get_u64(const char *file, json_t *o, const char *sect, const char *key, uint64_t *dst)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return qr_fail(QR_EFORMAT, "%s: %s%s%s: missing or not a non-negative integer", file, sect, *sect ? "." : "",
                       key);
    *dst = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_int(const char *file, json_t *o, const char *sect, const char *key, int lo, int hi, int *dst)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return qr_fail(QR_EFORMAT, "%s: %s.%s: missing or not an integer in %d..%d", file, sect, key, lo, hi);
    *dst = (int)json_integer_value(v);
    return 0;
}

static int get_obj(const char *file, json_t *root, const char *key, json_t **o)
{
    *o = json_object_get(root, key);
    if (!json_is_object(*o))
        return qr_fail(QR_EFORMAT, "%s: %s: missing or not an object", file, key);
    return 0;
}

int qr_manifest_read(const char *dir, qr_manifest *out)
{
    char file[4096];
    json_error_t je;
    json_t *root = NULL, *o;
    qr_manifest m;
    int rc = 0;
    snprintf(file, sizeof file, "%s/manifest.json", dir);
    struct stat st;
    if (stat(file, &st) != 0)
        return qr_fail(errno == ENOENT ? QR_ENOTFOUND : QR_EIO, "%s: %s", file, strerror(errno));
    if (st.st_size > QR_MANIFEST_MAX_BYTES)
        return qr_fail(QR_EFORMAT, "%s: %lld bytes, over the %d limit", file, (long long)st.st_size,
                       QR_MANIFEST_MAX_BYTES);
    root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return qr_fail(QR_EFORMAT, "%s: line %d: %s", file, je.line, je.text);
    memset(&m, 0, sizeof m);
    if (!json_is_object(root)) {
        rc = qr_fail(QR_EFORMAT, "%s: not a JSON object", file);
        goto fail;
    }
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "quire-store") != 0) {
        rc = qr_fail(QR_EFORMAT, "%s: format: expected \"quire-store\"", file);
        goto fail;
    }
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver)) {
        rc = qr_fail(QR_EFORMAT, "%s: version: missing or not an integer", file);
        goto fail;
    }
    if (json_integer_value(ver) != QR_MANIFEST_VERSION) {
        rc = qr_fail(QR_EUNSUPPORTED, "%s: store format version %lld, this quire reads version %d", file,
                     (long long)json_integer_value(ver), QR_MANIFEST_VERSION);
        goto fail;
    }
    m.version = QR_MANIFEST_VERSION;
    if ((rc = get_str(file, root, "", "created", m.created, sizeof m.created)) ||
        (rc = get_str(file, root, "", "updated", m.updated, sizeof m.updated)))
        goto fail;
    json_t *e = json_object_get(root, "embedder");
    if (json_is_object(e)) {
        m.has_embedder = true;
        json_t *nz = json_object_get(e, "normalize");
        if ((rc = get_str(file, e, "embedder", "model", m.embedder.model, sizeof m.embedder.model)) ||
            (rc = get_str(file, e, "embedder", "hash", m.embedder.hash, sizeof m.embedder.hash)) ||
            (rc = get_int(file, e, "embedder", "dim", 1, 65536, &m.embedder.dim)) ||
            (rc = get_str(file, e, "embedder", "pooling", m.embedder.pooling, sizeof m.embedder.pooling)))
            goto fail;
        if (!json_is_boolean(nz)) {
            rc = qr_fail(QR_EFORMAT, "%s: embedder.normalize: missing or not a boolean", file);
            goto fail;
        }
        m.embedder.normalize = json_is_true(nz);
    } else if (!json_is_null(e)) {
        rc = qr_fail(QR_EFORMAT, "%s: embedder: missing (null for a store without one) or not an object", file);
        goto fail;
    }
    if ((rc = get_obj(file, root, "vectors", &o)) ||
        (rc = get_str(file, o, "vectors", "dtype", m.vec_dtype, sizeof m.vec_dtype)) ||
        (rc = get_str(file, o, "vectors", "metric", m.metric, sizeof m.metric)))
        goto fail;
    if (strcmp(m.vec_dtype, "f32") != 0 && strcmp(m.vec_dtype, "f16") != 0) {
        rc = qr_fail(QR_EFORMAT, "%s: vectors.dtype: \"%s\", expected f32 or f16", file, m.vec_dtype);
        goto fail;
    }
    if (strcmp(m.metric, "ip") != 0 && strcmp(m.metric, "l2") != 0) {
        rc = qr_fail(QR_EFORMAT, "%s: vectors.metric: \"%s\", expected ip or l2", file, m.metric);
        goto fail;
    }
    if ((rc = get_obj(file, root, "index", &o)) ||
        (rc = get_str(file, o, "index", "factory", m.factory, sizeof m.factory)))
        goto fail;
    if ((rc = get_obj(file, root, "chunking", &o)) ||
        (rc = get_int(file, o, "chunking", "tokens", 1, 1 << 20, &m.chunk_tokens)) ||
        (rc = get_int(file, o, "chunking", "overlap", 0, 1 << 20, &m.chunk_overlap)) ||
        (rc = get_str(file, o, "chunking", "tokenizer", m.chunk_tokenizer, sizeof m.chunk_tokenizer)))
        goto fail;
    if ((rc = get_obj(file, root, "counts", &o)) || (rc = get_u64(file, o, "counts", "docs", &m.n_docs)) ||
        (rc = get_u64(file, o, "counts", "chunks", &m.n_chunks)) ||
        (rc = get_u64(file, o, "counts", "vectors", &m.n_vectors)) ||
        (rc = get_u64(file, root, "", "generation", &m.generation)))
        goto fail;
    *out = m;
fail:
    json_decref(root);
    return rc;
}

int qr_manifest_write(const char *dir, qr_manifest *m)
{
    char file[4096], tmp[4200];
    int rc = 0, fd = -1;
    char *text = NULL;
    now_iso(m->updated, sizeof m->updated);
    json_t *emb = json_null();
    if (m->has_embedder)
        emb = json_pack("{s:s, s:s, s:i, s:s, s:b}", "model", m->embedder.model, "hash", m->embedder.hash, "dim",
                        m->embedder.dim, "pooling", m->embedder.pooling, "normalize", m->embedder.normalize);
    json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:o, s:{s:s, s:s}, s:{s:s}, s:{s:i, s:i, s:s}, "
                             "s:{s:I, s:I, s:I}, s:I}",
                             "format", "quire-store", "version", QR_MANIFEST_VERSION, "created", m->created,
                             "updated", m->updated, "embedder", emb, "vectors", "dtype", m->vec_dtype, "metric",
                             m->metric, "index", "factory", m->factory, "chunking", "tokens", m->chunk_tokens,
                             "overlap", m->chunk_overlap, "tokenizer", m->chunk_tokenizer, "counts", "docs",
                             (json_int_t)m->n_docs, "chunks", (json_int_t)m->n_chunks, "vectors",
                             (json_int_t)m->n_vectors, "generation", (json_int_t)m->generation);
    snprintf(file, sizeof file, "%s/manifest.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    if (!root || !(text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER))) {
        rc = qr_fail(QR_ENOMEM, "%s: could not build JSON", file);
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rc = qr_fail(QR_EIO, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, file) != 0) {
        rc = qr_fail(QR_EIO, "%s: %s", file, strerror(errno));
        goto fail;
    }
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0)
        fsync(fd);
fail:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(text);
    json_decref(root);
    return rc;
}

bool qr_embedder_same(const qr_embedder_id *a, const qr_embedder_id *b)
{
    return strcmp(a->hash, b->hash) == 0 && a->dim == b->dim && strcmp(a->pooling, b->pooling) == 0 &&
           a->normalize == b->normalize;
}

void qr_embedder_describe(const qr_embedder_id *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s (%s, dim %d, %s pooling, %s)", e->model, *e->hash ? e->hash : "no hash", e->dim,
             e->pooling, e->normalize ? "normalized" : "not normalized");
}

/* FNV-1a 64 over a byte stream. Not cryptographic: it identifies a model
 * configuration, it does not defend against forgery. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hashes name, size and up to limit bytes of a file; missing files are skipped. */
static int hash_file(uint64_t *h, const char *path, const char *name, size_t limit)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : qr_fail(QR_EIO, "%s: %s", path, strerror(errno));
    char buf[65536];
    size_t done = 0, got;
    *h = fnv(*h, name, strlen(name) + 1);
    while (done < limit && (got = fread(buf, 1, sizeof buf < limit - done ? sizeof buf : limit - done, f)) > 0) {
        *h = fnv(*h, buf, got);
        done += got;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        uint64_t sz = (uint64_t)st.st_size;
        *h = fnv(*h, &sz, sizeof sz);
    }
    fclose(f);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int qr_embedder_hash(const char *model_path, char *hash, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    struct stat st;
    int rc = 0;
    char path[4096];
    if (stat(model_path, &st) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: %s", model_path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if ((rc = hash_file(&h, model_path, "model", 1 << 20)))
            return rc;
    } else {
        static const char *const small[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                                            "modules.json", "1_Pooling/config.json"};
        for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", model_path, small[i]);
            if ((rc = hash_file(&h, path, small[i], (size_t)64 << 20)))
                return rc;
        }
        // Weights: the safetensors header (names, shapes, dtypes, offsets) plus a
        // prefix of the data; sorted so directory order does not matter.
        DIR *d = opendir(model_path);
        if (!d)
            return qr_fail(QR_EIO, "%s: %s", model_path, strerror(errno));
        char *names[256];
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < 256) {
            size_t l = strlen(de->d_name);
            if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0 && (names[n] = strdup(de->d_name)))
                n++;
        }
        closedir(d);
        qsort(names, n, sizeof names[0], cmp_str);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%s", model_path, names[i]);
            if (!rc)
                rc = hash_file(&h, path, names[i], 1 << 20);
            free(names[i]);
        }
        if (rc)
            return rc;
    }
    snprintf(hash, len, "fnv1a64:%016llx", (unsigned long long)h);
    return 0;
}
