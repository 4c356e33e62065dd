/* safetensors reader (internal to runtime/weights; users go through weights.h).
 *
 * Format: u64 little-endian N, then N bytes of UTF-8 JSON, then the data
 * section. The JSON maps each tensor name to
 *   {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with offsets relative to the data section (byte 8 + N); "__metadata__"
 * (string to string) is ignored. On open every entry is validated: dtype
 * F32/F16/BF16 (integer dtypes I64...BOOL are buffers such as BERT's old
 * position_ids: checked, then left out of the table; any other dtype is
 * QR_EUNSUPPORTED naming the tensor),
 * at most 4 dimensions, shape x element size == end - begin, the range
 * inside the file, no two tensors overlapping. Other damage: QR_EFORMAT naming
 * the file and the tensor. Tensor data points into a read-only mmap; it is
 * aligned to the element size only if the writer padded the header (HF does). */
#ifndef QR_RUNTIME_SAFETENSORS_H
#define QR_RUNTIME_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/weights/weights.h"

typedef struct qr_st_file qr_st_file;

/* Largest JSON header accepted (the format's own reference uses 100 MB). */
#define QR_ST_MAX_HEADER (100u << 20)

int qr_st_open(const char *path, qr_st_file **out);
void qr_st_close(qr_st_file *f);
/* Tensors in header order; names and file borrowed from f. */
size_t qr_st_count(const qr_st_file *f);
const qr_wtensor *qr_st_at(const qr_st_file *f, size_t i);
const char *qr_st_path(const qr_st_file *f);
/* True if name is an integer buffer of f that was validated and left out. */
bool qr_st_skipped(const qr_st_file *f, const char *name);

#endif
