/* One view over the tensors of a model, whatever the files: a Hugging Face
 * directory (model.safetensors, or shards listed by model.safetensors.index.json)
 * or a GGUF file. All data is memory-mapped and read-only; the source must
 * outlive every pointer taken from it. */
#ifndef QR_RUNTIME_WEIGHTS_H
#define QR_RUNTIME_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"
#include "runtime/weights/gguf.h"

typedef struct qr_wsrc qr_wsrc;

typedef struct {
    const char *name;  /* as stored in the file (HF names or GGUF names) */
    const char *file;  /* the file holding it, for error messages */
    qr_dtype dtype;
    int n_dims;
    int64_t shape[4];  /* outermost first (torch order) */
    const void *data;  /* into the mapping */
    size_t nbytes;
} qr_wtensor;

/* path: a model directory (with *.safetensors), a single .safetensors file, or
 * a .gguf file. Use qr_model_resolve() first for HF ids and ollama: names.
 * A directory is read from model.safetensors.index.json (shards), else
 * model.safetensors, else its only *.safetensors or *.gguf file. A file is
 * GGUF if it starts with the GGUF magic (Ollama blobs have no extension),
 * else safetensors. Safetensors integer tensors (I64 ... BOOL: buffers such as
 * old BERT position_ids) are validated and left out; other dtypes than
 * F32/F16/BF16 give QR_EUNSUPPORTED naming the tensor. A tensor name present
 * in two shards is QR_EFORMAT.
 * Alignment of data: GGUF tensors are aligned to general.alignment (>= 32);
 * safetensors data to 8 bytes when the header is padded (HF writers do),
 * otherwise possibly unaligned: read through memcpy or qr_convert_*. */
int qr_wsrc_open(const char *path, qr_wsrc **out);
void qr_wsrc_close(qr_wsrc *s);
/* NULL unless the source is a GGUF file. Borrowed from s. */
const qr_gguf *qr_wsrc_gguf(const qr_wsrc *s);
size_t qr_wsrc_count(const qr_wsrc *s);
const qr_wtensor *qr_wsrc_at(const qr_wsrc *s, size_t i);
/* NULL if absent. Borrowed from s. */
const qr_wtensor *qr_wsrc_find(const qr_wsrc *s, const char *name);
/* Total bytes of tensor data. */
uint64_t qr_wsrc_bytes(const qr_wsrc *s);
/* Drops t's pages from the process's resident memory (madvise
 * MADV_DONTNEED on the whole pages inside its data; the few bytes it shares
 * with a neighbour's page stay). For a tensor the backend converted or
 * copied: a model loaded as another type than the file's then holds its
 * weights once, not the converted copy plus the file's pages that were read
 * to make it. The mapping is read-only and private, so t->data stays valid:
 * a later read faults the pages in again from the file (page cache). */
void qr_wsrc_release(const qr_wsrc *s, const qr_wtensor *t);

/* Dequantizes/converts n elements of storage type t at src into f32 dst
 * (n a multiple of the block size). */
int qr_convert_to_f32(qr_dtype t, const void *src, int64_t n, float *dst);
/* Rows [row0, row0 + nrows) of a (rows, cols) matrix stored as t (cols a
 * multiple of the block size; each row is qr_dtype_row_bytes(t, cols) bytes)
 * into dst (nrows, cols). src is the start of the whole matrix. Results are
 * bit-exact with ggml's reference dequantization. QR_EINVAL for a bad cols,
 * QR_EUNSUPPORTED for a type that is not a weight storage type. */
int qr_convert_rows_to_f32(qr_dtype t, const void *src, int64_t cols, int64_t row0, int64_t nrows,
                           float *dst);

/* Quantizes n f32 values (a multiple of the block size) into GGUF blocks of
 * type t at dst (qr_dtype_row_bytes(t, n) bytes): QR_Q8_0 bit-exact with
 * ggml's reference quantizer, QR_Q4_K round-to-nearest with a direct choice
 * of scales and mins (quantize.c documents it and its error bound). Other
 * types: QR_EUNSUPPORTED; a non-finite value: QR_EINVAL. */
int qr_quantize_row(qr_dtype t, const float *x, int64_t n, void *dst);

/* Resolves a user's model argument to a local path, never touching the
 * network: an existing directory or file; a Hugging Face id ORG/NAME[@rev]
 * looked up in $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
 * (models--ORG--NAME/snapshots/<rev from refs/main>); or ollama:NAME[:TAG]
 * through the Ollama store's manifest to its GGUF blob ($OLLAMA_MODELS or
 * ~/.ollama/models). On failure QR_ENOTFOUND with a detail that says what is
 * missing and how to fetch it on a login node. *out is malloc'd; caller frees. */
int qr_model_resolve(const char *arg, char **out);

#endif
