/* GGUF reader: see gguf.h for the format. The whole file is parsed and
 * validated once on open; lookups afterwards only read validated bytes.
 *
 * Validation strategy: a cursor never reads past the mapping (every read
 * checks the remaining length first), every count is bounded by the bytes left
 * before anything is allocated for it, and size arithmetic uses overflow
 * checked builtins. Nesting of arrays is limited, so recursion is bounded. */
#include "runtime/weights/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

#define GGUF_MAX_DEPTH 8       /* nested arrays deeper than this are refused */
#define GGUF_MAX_NAME 1024     /* tensor name length limit (ggml uses 64) */
#define GGUF_DEFAULT_ALIGN 32

typedef struct {
    qr_gguf_str key;
    uint32_t type;     /* qr_gguf_type */
    size_t val;        /* file offset of the value; for arrays of the first element */
    uint32_t elem;     /* arrays: element type */
    uint64_t n;        /* arrays: element count */
    uint64_t *str_off; /* arrays of strings: offset of each element, else NULL */
} gguf_kv;

struct qr_gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    bool mapped; /* base is our mmap, unmapped on close */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    uint32_t *kv_sorted; /* indexes into kv, sorted by key, for lookups */
    qr_gguf_tensor *tensors;
    uint64_t *t_sorted;  /* indexes into tensors, sorted by name */
};

/* ---- cursor ---- */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    char what[200]; /* what is being read, for error messages */
} cursor;

static int need(cursor *c, uint64_t n)
{
    if (n > c->size - c->pos)
        return qr_fail(QR_EFORMAT, "%s: %s: truncated (needs %llu bytes at offset %zu, file has %zu)",
                       c->path, c->what, (unsigned long long)n, c->pos, c->size);
    return QR_OK;
}

static int rd_u32(cursor *c, uint32_t *v)
{
    int rc = need(c, 4);
    if (rc)
        return rc;
    memcpy(v, c->p + c->pos, 4); /* GGUF is little-endian, as are our hosts */
    c->pos += 4;
    return QR_OK;
}

static int rd_u64(cursor *c, uint64_t *v)
{
    int rc = need(c, 8);
    if (rc)
        return rc;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return QR_OK;
}

static int rd_str(cursor *c, qr_gguf_str *s)
{
    uint64_t len;
    int rc = rd_u64(c, &len);
    if (rc || (rc = need(c, len)))
        return rc;
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return QR_OK;
}

/* Bytes of a fixed-size value type; 0 for string/array; -1 for unknown. */
static int type_size(uint32_t t)
{
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sz / sizeof sz[0] ? sz[t] : -1;
}

static int skip_value(cursor *c, uint32_t type, int depth, gguf_kv *kv);

/* Array body: element type, count, elements. kv (top level only) records it. */
static int skip_array(cursor *c, int depth, gguf_kv *kv)
{
    uint32_t elem;
    uint64_t n;
    int rc;
    if ((rc = rd_u32(c, &elem)) || (rc = rd_u64(c, &n)))
        return rc;
    int esz = type_size(elem);
    if (esz < 0)
        return qr_fail(QR_EFORMAT, "%s: %s: unknown array element type %u", c->path, c->what, elem);
    if (depth >= GGUF_MAX_DEPTH)
        return qr_fail(QR_EFORMAT, "%s: %s: arrays nested deeper than %d", c->path, c->what,
                       GGUF_MAX_DEPTH);
    /* smallest encoding of one element: bounds n before any loop or allocation */
    uint64_t min = esz > 0 ? (uint64_t)esz : elem == QR_GGUF_STRING ? 8 : 12;
    if (n > (c->size - c->pos) / min)
        return qr_fail(QR_EFORMAT, "%s: %s: array of %llu elements does not fit in the file",
                       c->path, c->what, (unsigned long long)n);
    if (kv) {
        kv->elem = elem;
        kv->n = n;
        kv->val = c->pos;
    }
    if (esz > 0) {
        c->pos += (size_t)(n * (uint64_t)esz);
        return QR_OK;
    }
    if (kv && elem == QR_GGUF_STRING && n > 0) {
        kv->str_off = malloc((size_t)n * sizeof *kv->str_off);
        if (!kv->str_off)
            return qr_fail(QR_ENOMEM, "%s: %s: no memory for %llu strings", c->path, c->what,
                           (unsigned long long)n);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (kv && kv->str_off)
            kv->str_off[i] = c->pos;
        if ((rc = skip_value(c, elem, depth + 1, NULL)))
            return rc;
    }
    return QR_OK;
}

static int skip_value(cursor *c, uint32_t type, int depth, gguf_kv *kv)
{
    qr_gguf_str s;
    int sz = type_size(type);
    if (sz < 0)
        return qr_fail(QR_EFORMAT, "%s: %s: unknown value type %u", c->path, c->what, type);
    if (type == QR_GGUF_STRING)
        return rd_str(c, &s);
    if (type == QR_GGUF_ARRAY)
        return skip_array(c, depth, kv);
    int rc = need(c, (uint64_t)sz);
    if (!rc)
        c->pos += (size_t)sz;
    return rc;
}

/* ---- ggml tensor types ---- */

static const char *ggml_type_name(uint32_t t)
{
    static const char *names[] = {
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
        "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
        "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* ggml type id -> qr_dtype; -1 if quire does not read it. */
static int ggml_to_dtype(uint32_t t)
{
    switch (t) {
    case 0: return QR_F32;
    case 1: return QR_F16;
    case 2: return QR_Q4_0;
    case 3: return QR_Q4_1;
    case 6: return QR_Q5_0;
    case 7: return QR_Q5_1;
    case 8: return QR_Q8_0;
    case 10: return QR_Q2_K;
    case 11: return QR_Q3_K;
    case 12: return QR_Q4_K;
    case 13: return QR_Q5_K;
    case 14: return QR_Q6_K;
    case 30: return QR_BF16;
    default: return -1;
    }
}

/* ---- sorting for lookups and duplicate detection ---- */

static int str_cmp(qr_gguf_str a, qr_gguf_str b)
{
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int r = memcmp(a.ptr, b.ptr, n);
    return r ? r : (a.len > b.len) - (a.len < b.len);
}

/* qsort_r (glibc) keeps opening files from several threads safe. */
static int cmp_kv_idx(const void *a, const void *b, void *base)
{
    const gguf_kv *kv = base;
    return str_cmp(kv[*(const uint32_t *)a].key, kv[*(const uint32_t *)b].key);
}

static int cmp_t_idx(const void *a, const void *b, void *base)
{
    const qr_gguf_tensor *t = base;
    return strcmp(t[*(const uint64_t *)a].name, t[*(const uint64_t *)b].name);
}

static int cmp_t_off(const void *a, const void *b, void *base)
{
    const qr_gguf_tensor *x = (const qr_gguf_tensor *)base + *(const uint64_t *)a;
    const qr_gguf_tensor *y = (const qr_gguf_tensor *)base + *(const uint64_t *)b;
    return (x->data > y->data) - (x->data < y->data);
}

/* ---- parsing ---- */

static int parse_kvs(qr_gguf *g, cursor *c, uint32_t *alignment)
{
    int rc;
    /* smallest kv: 8-byte key length + 4-byte type + 1-byte value */
    if (g->n_kv > (c->size - c->pos) / 13)
        return qr_fail(QR_EFORMAT, "%s: header: %llu metadata entries cannot fit in the file",
                       g->path, (unsigned long long)g->n_kv);
    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    g->kv_sorted = malloc((g->n_kv ? (size_t)g->n_kv : 1) * sizeof *g->kv_sorted);
    if (!g->kv || !g->kv_sorted)
        return qr_fail(QR_ENOMEM, "%s: no memory for metadata", g->path);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        snprintf(c->what, sizeof c->what, "metadata entry %llu", (unsigned long long)i);
        if ((rc = rd_str(c, &kv->key)))
            return rc;
        snprintf(c->what, sizeof c->what, "metadata key '%.*s'",
                 (int)(kv->key.len > 120 ? 120 : kv->key.len), kv->key.ptr);
        if ((rc = rd_u32(c, &kv->type)))
            return rc;
        kv->val = c->pos;
        if ((rc = skip_value(c, kv->type, 0, kv)))
            return rc;
        g->kv_sorted[i] = (uint32_t)i;
    }
    qsort_r(g->kv_sorted, (size_t)g->n_kv, sizeof *g->kv_sorted, cmp_kv_idx, g->kv);
    for (uint64_t i = 1; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[g->kv_sorted[i]];
        if (str_cmp(g->kv[g->kv_sorted[i - 1]].key, kv->key) == 0)
            return qr_fail(QR_EFORMAT, "%s: metadata key '%.*s' appears twice", g->path,
                           (int)(kv->key.len > 120 ? 120 : kv->key.len), kv->key.ptr);
    }
    *alignment = GGUF_DEFAULT_ALIGN;
    if (qr_gguf_has(g, "general.alignment")) {
        uint64_t a;
        const char *k = "general.alignment";
        if (qr_gguf_get_u64(g, k, &a) || a == 0 || a > (1u << 30) || (a & (a - 1)))
            return qr_fail(QR_EFORMAT, "%s: metadata key '%s': must be a power of two u32", g->path, k);
        *alignment = (uint32_t)a;
    }
    return QR_OK;
}

/* Reads one tensor info; data offsets are resolved later. */
static int parse_tensor_info(qr_gguf *g, cursor *c, uint64_t i, uint64_t *offset)
{
    qr_gguf_str name;
    uint32_t n_dims, type;
    uint64_t ne[4];
    int rc;
    qr_gguf_tensor *t = &g->tensors[i];
    snprintf(c->what, sizeof c->what, "tensor %llu", (unsigned long long)i);
    if ((rc = rd_str(c, &name)))
        return rc;
    if (name.len == 0 || name.len > GGUF_MAX_NAME || memchr(name.ptr, 0, (size_t)name.len))
        return qr_fail(QR_EFORMAT, "%s: tensor %llu: bad name (length %llu)", g->path,
                       (unsigned long long)i, (unsigned long long)name.len);
    char *copy = malloc((size_t)name.len + 1); /* owned by g: freed in qr_gguf_close */
    if (!copy)
        return qr_fail(QR_ENOMEM, "%s: tensor %llu: no memory", g->path, (unsigned long long)i);
    memcpy(copy, name.ptr, (size_t)name.len);
    copy[name.len] = '\0';
    t->name = copy;
    snprintf(c->what, sizeof c->what, "tensor '%s'", t->name);
    if ((rc = rd_u32(c, &n_dims)))
        return rc;
    if (n_dims < 1 || n_dims > 4)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': %u dimensions (1 to 4 allowed)", g->path,
                       t->name, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        if ((rc = rd_u64(c, &ne[d])))
            return rc;
    if ((rc = rd_u32(c, &type)) || (rc = rd_u64(c, offset)))
        return rc;
    int dt = ggml_to_dtype(type);
    if (dt < 0)
        return qr_fail(QR_EUNSUPPORTED,
                       "%s: tensor '%s': ggml type %s (%u) is not supported "
                       "(quire reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                       g->path, t->name, ggml_type_name(type), type);
    t->dtype = (qr_dtype)dt;
    t->n_dims = (int)n_dims;
    /* bytes = ne0 / block * block_bytes * ne1 * ne2 * ne3, overflow-checked */
    uint64_t block = (uint64_t)qr_dtype_block(t->dtype), nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] > (uint64_t)INT64_MAX || __builtin_mul_overflow(nel, ne[d], &nel))
            return qr_fail(QR_EFORMAT, "%s: tensor '%s': dimension %u (%llu) too large", g->path,
                           t->name, d, (unsigned long long)ne[d]);
        t->shape[n_dims - 1 - d] = (int64_t)ne[d]; /* torch order: outermost first */
    }
    for (uint32_t d = n_dims; d < 4; d++)
        t->shape[d] = 1;
    if (ne[0] % block)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': row length %llu is not a multiple of the %s "
                       "block size %llu", g->path, t->name, (unsigned long long)ne[0],
                       qr_dtype_name(t->dtype), (unsigned long long)block);
    uint64_t row_bytes = qr_dtype_row_bytes(t->dtype, block), bytes;
    if (__builtin_mul_overflow(nel / block, row_bytes, &bytes) || bytes > c->size)
        return qr_fail(QR_EFORMAT, "%s: tensor '%s': %llu elements cannot fit in the file", g->path,
                       t->name, (unsigned long long)nel);
    t->nbytes = (size_t)bytes;
    return QR_OK;
}

static int parse(qr_gguf *g)
{
    cursor c = {.p = g->base, .size = g->size, .path = g->path};
    uint32_t magic, alignment;
    int rc;
    snprintf(c.what, sizeof c.what, "header");
    if ((rc = rd_u32(&c, &magic)))
        return rc;
    if (memcmp(&magic, "GGUF", 4) != 0)
        return qr_fail(QR_EFORMAT, "%s: not a GGUF file (bad magic)", g->path);
    if ((rc = rd_u32(&c, &g->version)))
        return rc;
    if (g->version == 1)
        return qr_fail(QR_EUNSUPPORTED, "%s: GGUF version 1 is not supported (only 2 and 3); "
                       "re-convert the model with a current llama.cpp", g->path);
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return qr_fail(QR_EUNSUPPORTED, "%s: big-endian GGUF is not supported", g->path);
    if (g->version != 2 && g->version != 3)
        return qr_fail(QR_EUNSUPPORTED, "%s: GGUF version %u is not supported (only 2 and 3)",
                       g->path, g->version);
    if ((rc = rd_u64(&c, &g->n_tensors)) || (rc = rd_u64(&c, &g->n_kv)))
        return rc;
    if ((rc = parse_kvs(g, &c, &alignment)))
        return rc;

    /* tensor infos: smallest is 8 (name len) + 1 (name) + 4 + 8 + 4 + 8 = 33 bytes */
    if (g->n_tensors > (c.size - c.pos) / 33)
        return qr_fail(QR_EFORMAT, "%s: header: %llu tensors cannot fit in the file", g->path,
                       (unsigned long long)g->n_tensors);
    size_t nt = g->n_tensors ? (size_t)g->n_tensors : 1;
    g->tensors = calloc(nt, sizeof *g->tensors);
    g->t_sorted = malloc(nt * sizeof *g->t_sorted);
    uint64_t *offsets = malloc(nt * sizeof *offsets);
    if (!g->tensors || !g->t_sorted || !offsets) {
        free(offsets);
        return qr_fail(QR_ENOMEM, "%s: no memory for %llu tensor infos", g->path,
                       (unsigned long long)g->n_tensors);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if ((rc = parse_tensor_info(g, &c, i, &offsets[i]))) {
            free(offsets);
            return rc;
        }
        g->t_sorted[i] = i;
    }

    /* data section: after the infos, padded to the alignment */
    size_t data = c.pos + (alignment - c.pos % alignment) % alignment;
    if (g->n_tensors > 0 && data > c.size) {
        free(offsets);
        return qr_fail(QR_EFORMAT, "%s: truncated before the tensor data section", g->path);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        qr_gguf_tensor *t = &g->tensors[i];
        uint64_t off = offsets[i];
        if (off % alignment || off > c.size - data || t->nbytes > c.size - data - off) {
            rc = qr_fail(QR_EFORMAT, "%s: tensor '%s': data at offset %llu (+%zu bytes) is %s",
                         g->path, t->name, (unsigned long long)off, t->nbytes,
                         off % alignment ? "not aligned" : "past the end of the file");
            free(offsets);
            return rc;
        }
        t->data = g->base + data + off;
    }
    free(offsets);

    qsort_r(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_t_off, g->tensors);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const qr_gguf_tensor *a = &g->tensors[g->t_sorted[i - 1]], *b = &g->tensors[g->t_sorted[i]];
        if ((const uint8_t *)a->data + a->nbytes > (const uint8_t *)b->data)
            return qr_fail(QR_EFORMAT, "%s: tensors '%s' and '%s' overlap", g->path, a->name, b->name);
    }
    qsort_r(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_t_idx, g->tensors);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (strcmp(g->tensors[g->t_sorted[i - 1]].name, g->tensors[g->t_sorted[i]].name) == 0)
            return qr_fail(QR_EFORMAT, "%s: tensor '%s' appears twice", g->path,
                           g->tensors[g->t_sorted[i]].name);
    return QR_OK;
}

int qr_gguf_open_mem(const void *data, size_t size, const char *name, qr_gguf **out)
{
    qr_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name ? name : "(memory)"))) {
        free(g);
        return qr_fail(QR_ENOMEM, "%s: no memory", name ? name : "(memory)");
    }
    g->base = data;
    g->size = size;
    int rc = parse(g);
    if (rc) {
        qr_gguf_close(g);
        return rc;
    }
    *out = g;
    return QR_OK;
}

int qr_gguf_open(const char *path, qr_gguf **out)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qr_fail(errno == ENOENT ? QR_ENOTFOUND : QR_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qr_fail(QR_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return qr_fail(QR_EFORMAT, "%s: %lld bytes is too short for a GGUF file", path,
                       (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return qr_fail(QR_EIO, "%s: mmap failed: %s", path, strerror(errno));
    qr_gguf *g;
    int rc = qr_gguf_open_mem(map, (size_t)st.st_size, path, &g);
    if (rc) {
        munmap(map, (size_t)st.st_size);
        return rc;
    }
    g->mapped = true;
    *out = g;
    return QR_OK;
}

void qr_gguf_close(qr_gguf *g)
{
    if (!g)
        return;
    if (g->mapped)
        munmap((void *)g->base, g->size);
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_off);
    free(g->kv);
    free(g->kv_sorted);
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->t_sorted);
    free(g->path);
    free(g);
}

const char *qr_gguf_path(const qr_gguf *g) { return g->path; }
uint32_t qr_gguf_version(const qr_gguf *g) { return g->version; }
uint64_t qr_gguf_n_tensors(const qr_gguf *g) { return g->n_tensors; }
uint64_t qr_gguf_n_kv(const qr_gguf *g) { return g->n_kv; }

const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *g, const char *name)
{
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const qr_gguf_tensor *t = &g->tensors[g->t_sorted[mid]];
        int r = strcmp(t->name, name);
        if (r == 0)
            return t;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- metadata ---- */

static const gguf_kv *find_kv(const qr_gguf *g, const char *key)
{
    qr_gguf_str k = {key, strlen(key)};
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const gguf_kv *kv = &g->kv[g->kv_sorted[mid]];
        int r = str_cmp(kv->key, k);
        if (r == 0)
            return kv;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool qr_gguf_has(const qr_gguf *g, const char *key) { return find_kv(g, key) != NULL; }

int qr_gguf_key_at(const qr_gguf *g, uint64_t i, qr_gguf_str *key, qr_gguf_type *type)
{
    if (i >= g->n_kv)
        return qr_fail(QR_EINVAL, "%s: metadata entry %llu out of range", g->path, (unsigned long long)i);
    *key = g->kv[i].key;
    *type = (qr_gguf_type)g->kv[i].type;
    return QR_OK;
}

/* Numeric value of a fixed-size scalar at p: integers into i (and is_int),
 * floats into f. Returns false for non-numeric types. */
static bool read_num(uint32_t type, const uint8_t *p, int64_t *i, uint64_t *u, bool *is_signed,
                     double *f, bool *is_float)
{
    *is_float = false;
    *is_signed = false;
    switch (type) {
    case QR_GGUF_U8: *u = p[0]; break;
    case QR_GGUF_I8: { int8_t v; memcpy(&v, p, 1); *i = v; *is_signed = true; break; }
    case QR_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
    case QR_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *i = v; *is_signed = true; break; }
    case QR_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
    case QR_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *i = v; *is_signed = true; break; }
    case QR_GGUF_U64: memcpy(u, p, 8); break;
    case QR_GGUF_I64: memcpy(i, p, 8); *is_signed = true; break;
    case QR_GGUF_F32: { float v; memcpy(&v, p, 4); *f = v; *is_float = true; break; }
    case QR_GGUF_F64: memcpy(f, p, 8); *is_float = true; break;
    default: return false;
    }
    if (!*is_float && *is_signed && *i >= 0)
        *u = (uint64_t)*i;
    return true;
}

typedef enum { WANT_U64, WANT_I64, WANT_F64 } want_t;

/* Converts the scalar of type `type` at p to the wanted kind. `what` names it. */
static int conv_num(const qr_gguf *g, const char *what, uint32_t type, const uint8_t *p, want_t want,
                    void *out)
{
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    bool sgn, flt;
    if (!read_num(type, p, &i, &u, &sgn, &f, &flt))
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not a number (type %u)", g->path, what, type);
    if (want == WANT_F64) {
        *(double *)out = flt ? f : sgn ? (double)i : (double)u;
        return QR_OK;
    }
    if (flt)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': float where an integer is expected",
                       g->path, what);
    if (want == WANT_U64) {
        if (sgn && i < 0)
            return qr_fail(QR_EFORMAT, "%s: metadata key '%s': negative value %lld", g->path, what,
                           (long long)i);
        *(uint64_t *)out = u;
    } else {
        if (!sgn && u > (uint64_t)INT64_MAX)
            return qr_fail(QR_EFORMAT, "%s: metadata key '%s': value too large", g->path, what);
        *(int64_t *)out = sgn ? i : (int64_t)u;
    }
    return QR_OK;
}

static int get_kv(const qr_gguf *g, const char *key, const gguf_kv **kv)
{
    *kv = find_kv(g, key);
    if (!*kv)
        return qr_fail(QR_ENOTFOUND, "%s: metadata key '%s' not found", g->path, key);
    return QR_OK;
}

static int get_num(const qr_gguf *g, const char *key, want_t want, void *out)
{
    const gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    return rc ? rc : conv_num(g, key, kv->type, g->base + kv->val, want, out);
}

int qr_gguf_get_u64(const qr_gguf *g, const char *key, uint64_t *out) { return get_num(g, key, WANT_U64, out); }
int qr_gguf_get_i64(const qr_gguf *g, const char *key, int64_t *out) { return get_num(g, key, WANT_I64, out); }
int qr_gguf_get_f64(const qr_gguf *g, const char *key, double *out) { return get_num(g, key, WANT_F64, out); }

int qr_gguf_get_bool(const qr_gguf *g, const char *key, bool *out)
{
    const gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc)
        return rc;
    if (kv->type != QR_GGUF_BOOL)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not a bool (type %u)", g->path, key, kv->type);
    *out = g->base[kv->val] != 0;
    return QR_OK;
}

static void str_at(const qr_gguf *g, size_t off, qr_gguf_str *out)
{
    memcpy(&out->len, g->base + off, 8);
    out->ptr = (const char *)g->base + off + 8;
}

int qr_gguf_get_str(const qr_gguf *g, const char *key, qr_gguf_str *out)
{
    const gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc)
        return rc;
    if (kv->type != QR_GGUF_STRING)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not a string (type %u)", g->path, key, kv->type);
    str_at(g, kv->val, out);
    return QR_OK;
}

int qr_gguf_get_arr(const qr_gguf *g, const char *key, qr_gguf_type *elem_type, uint64_t *n)
{
    const gguf_kv *kv;
    int rc = get_kv(g, key, &kv);
    if (rc)
        return rc;
    if (kv->type != QR_GGUF_ARRAY)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not an array (type %u)", g->path, key, kv->type);
    *elem_type = (qr_gguf_type)kv->elem;
    *n = kv->n;
    return QR_OK;
}

/* The array `key`, checking element i is in range. */
static int get_elem(const qr_gguf *g, const char *key, uint64_t i, const gguf_kv **kv)
{
    int rc = get_kv(g, key, kv);
    if (rc)
        return rc;
    if ((*kv)->type != QR_GGUF_ARRAY)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not an array", g->path, key);
    if (i >= (*kv)->n)
        return qr_fail(QR_EINVAL, "%s: metadata key '%s': index %llu out of range (%llu elements)",
                       g->path, key, (unsigned long long)i, (unsigned long long)(*kv)->n);
    return QR_OK;
}

int qr_gguf_arr_str(const qr_gguf *g, const char *key, uint64_t i, qr_gguf_str *out)
{
    const gguf_kv *kv;
    int rc = get_elem(g, key, i, &kv);
    if (rc)
        return rc;
    if (kv->elem != QR_GGUF_STRING)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not an array of strings", g->path, key);
    str_at(g, kv->str_off[i], out);
    return QR_OK;
}

static int arr_num(const qr_gguf *g, const char *key, uint64_t i, want_t want, void *out)
{
    const gguf_kv *kv;
    int rc = get_elem(g, key, i, &kv);
    if (rc)
        return rc;
    int esz = type_size(kv->elem);
    if (esz <= 0)
        return qr_fail(QR_EFORMAT, "%s: metadata key '%s': not an array of numbers", g->path, key);
    return conv_num(g, key, kv->elem, g->base + kv->val + (size_t)i * (size_t)esz, want, out);
}

int qr_gguf_arr_f64(const qr_gguf *g, const char *key, uint64_t i, double *out)
{
    return arr_num(g, key, i, WANT_F64, out);
}

int qr_gguf_arr_i64(const qr_gguf *g, const char *key, uint64_t i, int64_t *out)
{
    return arr_num(g, key, i, WANT_I64, out);
}
