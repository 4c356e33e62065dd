/* GGUF reader (v2 and v3), memory-mapped.
 *
 * Format: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv; then n_kv
 * key/value pairs (gguf string key, u32 type, value), then n_tensors infos
 * (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset),
 * then padding to `general.alignment` (default 32), then the tensor data
 * section; each tensor's offset is relative to that section and aligned.
 * Every count, length and offset is validated against the file size on open;
 * a corrupt file gives QR_EFORMAT naming the file and the key or tensor. */
#ifndef QR_RUNTIME_GGUF_H
#define QR_RUNTIME_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"

typedef struct qr_gguf qr_gguf;

typedef enum {
    QR_GGUF_U8 = 0, QR_GGUF_I8 = 1, QR_GGUF_U16 = 2, QR_GGUF_I16 = 3, QR_GGUF_U32 = 4,
    QR_GGUF_I32 = 5, QR_GGUF_F32 = 6, QR_GGUF_BOOL = 7, QR_GGUF_STRING = 8, QR_GGUF_ARRAY = 9,
    QR_GGUF_U64 = 10, QR_GGUF_I64 = 11, QR_GGUF_F64 = 12
} qr_gguf_type;

/* A string inside the mapped file: not NUL-terminated. */
typedef struct { const char *ptr; uint64_t len; } qr_gguf_str;

int qr_gguf_open(const char *path, qr_gguf **out);
/* Parses a GGUF image already in memory (tests, embedded files). data is
 * borrowed and must outlive g; name is used in error messages. */
int qr_gguf_open_mem(const void *data, size_t size, const char *name, qr_gguf **out);
void qr_gguf_close(qr_gguf *g);
const char *qr_gguf_path(const qr_gguf *g);
uint32_t qr_gguf_version(const qr_gguf *g);

/* Metadata lookups. Scalar getters convert between integer widths when the
 * value fits; they return QR_ENOTFOUND if the key is missing and QR_EFORMAT if
 * it has an incompatible type. */
bool qr_gguf_has(const qr_gguf *g, const char *key);
/* Enumeration of metadata in file order: key i (not NUL-terminated) and its type. */
uint64_t qr_gguf_n_kv(const qr_gguf *g);
int qr_gguf_key_at(const qr_gguf *g, uint64_t i, qr_gguf_str *key, qr_gguf_type *type);
int qr_gguf_get_u64(const qr_gguf *g, const char *key, uint64_t *out);
int qr_gguf_get_i64(const qr_gguf *g, const char *key, int64_t *out);
int qr_gguf_get_f64(const qr_gguf *g, const char *key, double *out);
int qr_gguf_get_bool(const qr_gguf *g, const char *key, bool *out);
int qr_gguf_get_str(const qr_gguf *g, const char *key, qr_gguf_str *out);
/* Arrays: element type and count; element i read with the typed getters below
 * (arr_str for string arrays; arr_f64/arr_i64 for numeric arrays, converting
 * widths as the scalar getters do). Nested arrays are validated on open and
 * reported by get_arr with elem_type QR_GGUF_ARRAY, but their elements are not
 * readable. An index out of range gives QR_EINVAL. */
int qr_gguf_get_arr(const qr_gguf *g, const char *key, qr_gguf_type *elem_type, uint64_t *n);
int qr_gguf_arr_str(const qr_gguf *g, const char *key, uint64_t i, qr_gguf_str *out);
int qr_gguf_arr_f64(const qr_gguf *g, const char *key, uint64_t i, double *out);
int qr_gguf_arr_i64(const qr_gguf *g, const char *key, uint64_t i, int64_t *out);

/* Tensors. Shapes are given outermost first (HF/torch order: rows, cols),
 * i.e. reversed from GGUF's ne[]. data points into the mapping. */
typedef struct {
    const char *name;     /* NUL-terminated copy, owned by g */
    qr_dtype dtype;       /* F32/F16/BF16 or a GGUF block type (Q4_0..Q6_K); others rejected on open */
    int n_dims;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} qr_gguf_tensor;

uint64_t qr_gguf_n_tensors(const qr_gguf *g);
const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *g, uint64_t i);
const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *g, const char *name);

#endif
