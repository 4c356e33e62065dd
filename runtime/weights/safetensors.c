/* safetensors reader: see safetensors.h for the format and what is checked. */
#include "runtime/weights/safetensors.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/error.h"
#include "common/log.h"

struct qr_st_file {
    char *path;
    void *map;
    size_t size;
    size_t n;
    qr_wtensor *t;  /* (n) in header order */
    char **names;   /* (n) owned copies */
    char **skipped; /* (n_skipped) names of integer buffers left out */
    size_t n_skipped;
};

const char *qr_st_path(const qr_st_file *f) { return f->path; }
size_t qr_st_count(const qr_st_file *f) { return f->n; }
const qr_wtensor *qr_st_at(const qr_st_file *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

bool qr_st_skipped(const qr_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_skipped; i++)
        if (strcmp(f->skipped[i], name) == 0)
            return true;
    return false;
}

void qr_st_close(qr_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->size);
    for (size_t i = 0; f->names && i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    for (size_t i = 0; i < f->n_skipped; i++)
        free(f->skipped[i]);
    free(f->skipped);
    free(f->t);
    free(f->path);
    free(f);
}

/* dtype string -> qr_dtype and element size. Integer tensors are buffers, not
 * weights (older transformers saved BERT's int64 embeddings.position_ids):
 * they are validated and then skipped (*skip, t unset). 0 if unsupported. */
static int st_dtype(const char *s, qr_dtype *t, bool *skip)
{
    static const struct { const char *s; int size; } ints[] = {
        {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1},
    };
    *skip = false;
    if (strcmp(s, "F32") == 0) { *t = QR_F32; return 4; }
    if (strcmp(s, "F16") == 0) { *t = QR_F16; return 2; }
    if (strcmp(s, "BF16") == 0) { *t = QR_BF16; return 2; }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(s, ints[i].s) == 0) {
            *skip = true;
            return ints[i].size;
        }
    return 0;
}

/* A JSON integer that is a non-negative size. */
static int get_size(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Fills t from one header entry; data_size is the length of the data section. */
static int parse_entry(const qr_st_file *f, const char *name, json_t *e, const uint8_t *data,
                       uint64_t data_size, qr_wtensor *t, uint64_t *begin, bool *skip)
{
    const char *p = f->path;
    json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    json_t *offs = json_object_get(e, "data_offsets");
    if (!json_is_object(e) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]",
                       p, name);
    int esz = st_dtype(json_string_value(dt), &t->dtype, skip);
    if (!esz)
        return qr_fail(QR_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16; "
                       "integer buffers are skipped)", p, name, json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > 4)
        return qr_fail(QR_EUNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most 4)", p, name, nd);
    uint64_t nel = 1, end, bytes;
    t->n_dims = (int)nd;
    for (size_t d = 0; d < 4; d++) {
        uint64_t v = 1;
        if (d < nd && (get_size(json_array_get(shape, d), &v) || v > (uint64_t)INT64_MAX ||
                       __builtin_mul_overflow(nel, v, &nel)))
            return qr_fail(QR_EFORMAT, "%s: tensor '%s': bad shape[%zu]", p, name, d);
        t->shape[d] = (int64_t)v;
    }
    if (get_size(json_array_get(offs, 0), begin) || get_size(json_array_get(offs, 1), &end) ||
        *begin > end || end > data_size)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': data_offsets outside the data section (%llu bytes)",
                       p, name, (unsigned long long)data_size);
    if (__builtin_mul_overflow(nel, (uint64_t)esz, &bytes) || bytes != end - *begin)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': shape x %s size is not end - begin (%llu bytes)",
                       p, name, json_string_value(dt), (unsigned long long)(end - *begin));
    t->data = data + *begin;
    t->nbytes = (size_t)bytes;
    t->file = f->path;
    return QR_OK;
}

static int cmp_begin(const void *a, const void *b)
{
    const qr_wtensor *x = *(const qr_wtensor *const *)a, *y = *(const qr_wtensor *const *)b;
    return (x->data > y->data) - (x->data < y->data);
}

/* Rejects overlapping ranges (empty tensors overlap nothing). */
static int check_overlap(const qr_st_file *f)
{
    const qr_wtensor **s = malloc((f->n ? f->n : 1) * sizeof *s);
    if (!s)
        return qr_fail(QR_ENOMEM, "%s: no memory", f->path);
    size_t m = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->t[i].nbytes)
            s[m++] = &f->t[i];
    qsort(s, m, sizeof *s, cmp_begin);
    int rc = QR_OK;
    for (size_t i = 1; i < m && !rc; i++)
        if ((const uint8_t *)s[i - 1]->data + s[i - 1]->nbytes > (const uint8_t *)s[i]->data)
            rc = qr_fail(QR_EFORMAT, "%s: tensors '%s' and '%s' overlap", f->path, s[i - 1]->name,
                         s[i]->name);
    free(s);
    return rc;
}

static int parse(qr_st_file *f)
{
    uint64_t hlen;
    if (f->size < 8)
        return qr_fail(QR_EFORMAT, "%s: %zu bytes is too short for safetensors", f->path, f->size);
    memcpy(&hlen, f->map, 8);
    if (hlen < 2 || hlen > QR_ST_MAX_HEADER || hlen > f->size - 8)
        return qr_fail(QR_EFORMAT, "%s: header length %llu is not within the file (%zu bytes) "
                       "and the %u-byte limit", f->path, (unsigned long long)hlen, f->size,
                       QR_ST_MAX_HEADER);
    json_error_t err;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return qr_fail(QR_EFORMAT, "%s: header is not a JSON object: %s (at byte %d)", f->path,
                       root ? "wrong type" : err.text, root ? 0 : err.position);
    }
    const uint8_t *data = (const uint8_t *)f->map + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen, begin;
    size_t cap = json_object_size(root);
    int rc = QR_OK;
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    f->names = calloc(cap ? cap : 1, sizeof *f->names);
    f->skipped = calloc(cap ? cap : 1, sizeof *f->skipped);
    if (!f->t || !f->names || !f->skipped)
        rc = qr_fail(QR_ENOMEM, "%s: no memory for %zu tensors", f->path, cap);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (rc || strcmp(key, "__metadata__") == 0)
            continue;
        qr_wtensor *t = &f->t[f->n];
        bool skip = false;
        if (!(f->names[f->n] = strdup(key))) {
            rc = qr_fail(QR_ENOMEM, "%s: no memory", f->path);
            continue;
        }
        t->name = f->names[f->n++];
        rc = parse_entry(f, key, val, data, data_size, t, &begin, &skip);
        if (!rc && skip) { /* an integer buffer: checked, not kept */
            QR_DEBUG("%s: skipping integer tensor '%s'", f->path, key);
            f->skipped[f->n_skipped++] = f->names[--f->n];
            f->names[f->n] = NULL;
            memset(t, 0, sizeof *t);
        }
    }
    json_decref(root);
    return rc ? rc : check_overlap(f);
}

int qr_st_open(const char *path, qr_st_file **out)
{
    struct stat st;
    qr_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return qr_fail(QR_ENOMEM, "%s: no memory", path);
    }
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = qr_fail(errno == ENOENT ? QR_ENOTFOUND : QR_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        rc = qr_fail(QR_EIO, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        rc = qr_fail(QR_EFORMAT, "%s: %zu bytes is too short for safetensors", path, f->size);
        goto fail;
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = qr_fail(QR_EIO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = parse(f)))
        goto fail;
    *out = f;
    return QR_OK;
fail:
    qr_st_close(f);
    return rc;
}
