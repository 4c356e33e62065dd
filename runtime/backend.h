/* The compute backend interface: a small function table that model code is
 * written against once (runtime/models), implemented by runtime/cpu (the
 * reference, always built) and runtime/cuda (device buffers + one stream).
 *
 * Model of execution
 * - A qr_backend is one device plus one in-order queue (a CUDA stream). Ops
 *   are enqueued in call order and may run asynchronously; qr_be_sync() waits
 *   for all of them. Data crosses host<->device only through upload/download
 *   (which are ordered with the queue) and through the small host arrays some
 *   ops take (token ids, positions, sequence descriptors), which the backend
 *   copies before the call returns, so the caller may reuse them at once.
 * - Tensors are 2-D and row-major: rows x cols, row i at data + i*row_bytes.
 *   3-D quantities use column groups: Q (n_tok, n_head*head_dim) is row = token,
 *   head h at columns [h*head_dim, (h+1)*head_dim).
 * - Activations are QR_F32 on the CPU backend; a backend may choose another
 *   activation type (be->act_dtype) and model code only allocates activations
 *   through qr_be_tensor_alloc(be, act_dtype, ...), never touching their bytes.
 * - Weights (qr_be_weight) are read-only after load and may be shared by many
 *   request states; each request owns its activation and KV-cache tensors.
 * - Every op returns 0 or a negative QR_E* code (with qr_fail detail); shapes
 *   are checked by the backend and a mismatch is QR_EINVAL, never a crash.
 */
#ifndef QR_RUNTIME_BACKEND_H
#define QR_RUNTIME_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"

typedef struct qr_backend qr_backend;

/* Quantization layout of a weight tensor: how a row's bytes map to values.
 * QR_QL_NONE: scalar elements (f32/f16/bf16/i32), or QR_I8 with one f32 scale
 * per row in `scale`. QR_QL_GGUF: the row is cols/block GGUF blocks of the
 * tensor's dtype (Q8_0 ... Q6_K), each block_bytes long, exactly the bytes of
 * the file (scales and mins inside the blocks; runtime/weights/convert*.c
 * documents each layout); `scale` is unused. Both backends keep GGUF weights
 * this way. QR_QL_SPLIT: int8 values in `data` (rows, cols), one f32 scale
 * per block of `block` values in `scale` (rows, cols/block) dense (the CUDA
 * backend's former Q8_0 layout; no backend makes it now). */
typedef enum { QR_QL_NONE = 0, QR_QL_GGUF, QR_QL_SPLIT } qr_qlayout_kind;

typedef struct qr_qlayout {
    qr_qlayout_kind kind;
    int32_t block;       /* values per block along a row (QR_QL_GGUF/SPLIT); 0 otherwise */
    int32_t block_bytes; /* bytes per block (QR_QL_GGUF); 0 otherwise */
} qr_qlayout;

typedef struct qr_tensor {
    void *data;        /* backend memory: host pointer (cpu) or device pointer (cuda) */
    float *scale;      /* QR_I8: per-row f32 scales; QR_QL_SPLIT: per-block scales; in backend memory */
    qr_dtype dtype;    /* QR_F32/F16/BF16/I8/I32, or a GGUF block type (weights only, see ql) */
    int64_t rows, cols;
    size_t row_bytes;  /* stride between rows; >= cols * element size (block types: qr_dtype_row_bytes) */
    bool owned;        /* data (and scale) were allocated by the backend and are freed by qr_be_tensor_free */
    qr_qlayout ql;     /* block layout of a quantized weight; all zero for scalar types and QR_I8 */
} qr_tensor;

/* The ops a backend may or may not compute for a given weight type (ggml's
 * supports_op): asked by the loader before it picks a type, so no caller
 * hard-codes which layouts a backend has. */
typedef enum {
    QR_BE_OP_MATMUL = 0, /* matmul with w of that type */
    QR_BE_OP_EMBED,      /* embed (row lookup) from a table of that type */
} qr_be_op;

/* One sequence inside a batched attention call. Query rows q_start..q_start+n_q-1
 * of Q belong to it; it attends to key/value rows kv_start..kv_start+n_kv-1 of K
 * and V. With causal attention, query row i (0-based inside the sequence) sits
 * at absolute position q_pos0 + i and sees keys j (0-based) with j <= q_pos0 + i.
 * For the encoder: n_kv = n_q = the sequence's real length (padding excluded),
 * q_pos0 = 0, not causal. For decode over a KV cache: K/V are the cache, the
 * sequence's slot starts at kv_start, n_kv = cached length after this step. */
typedef struct qr_attn_seq {
    int32_t q_start, n_q, q_pos0;
    int32_t kv_start, n_kv;
} qr_attn_seq;

typedef enum { QR_POOL_MEAN = 0, QR_POOL_CLS, QR_POOL_LAST } qr_pool_mode;

/* A recorded op sequence (the optional graph ops below; opaque, backend-defined). */
typedef struct qr_be_graph qr_be_graph;

typedef struct qr_backend_ops {
    const char *name; /* "cpu", "cuda" */

    /* --- memory --- */
    int (*tensor_alloc)(qr_backend *be, qr_dtype dt, int64_t rows, int64_t cols, qr_tensor *out);
    void (*tensor_free)(qr_backend *be, qr_tensor *t);
    /* Copies host f32 (rows x cols, dense) into t at row offset row0 (t must be QR_F32
     * or the backend's act type, converting as needed). */
    int (*upload)(qr_backend *be, qr_tensor *t, int64_t row0, const float *src, int64_t rows);
    /* Copies rows row0..row0+rows-1 of t into host f32 dst (dense), converting as needed. */
    int (*download)(qr_backend *be, const qr_tensor *t, int64_t row0, float *dst, int64_t rows);
    int (*sync)(qr_backend *be);

    /* Makes a weight tensor of type `want` (F32/F16/BF16/I8) from host data of
     * type `src_dt` (rows x cols, dense; any storage type incl. GGUF blocks).
     * The CPU backend may alias `src` without copying when want == src_dt and
     * src outlives the tensor (mmap'd weights); flag `may_alias` says so. It
     * does for tensors under 2 MiB, or without transparent huge pages
     * (qr_cpu_copies_weights in runtime/cpu/cpu.h). */
    int (*weight_load)(qr_backend *be, const void *src, qr_dtype src_dt, int64_t rows, int64_t cols,
                       qr_dtype want, bool may_alias, qr_tensor *out);
    /* Whether op computes with weights of type wt (in the layout this
     * backend's weight_load makes of it). NULL: F32, F16, BF16 and I8 only.
     * Callers ask through qr_be_supports(). */
    bool (*supports)(qr_backend *be, qr_be_op op, qr_dtype wt);

    /* --- ops (y/out tensors are preallocated by the caller) --- */
    /* out(n, d) = table[ids[i]] rows (ids on host, n entries, each < table.rows). */
    int (*embed)(qr_backend *be, const qr_tensor *table, const int32_t *ids, int64_t n, qr_tensor *out);
    /* y(n, out) = x(n, in) . W(out, in)^T + bias(out) (bias may be NULL; 1 x out, f32).
     * W may be F32/F16/BF16/I8; accumulation is f32. Precision of x: a backend
     * may round x for tensor-core products (CUDA does past its GEMV rows: 4
     * for 16-bit W, 8 for int8 and GGUF blocks): bf16, int8, GGUF W (whose
     * dequantized values are rounded to bf16 too): x to bf16, |dx| <=
     * 2^-9 |x|; f16 W: x to f16 after a per-row power of two that rules out
     * overflow, |dx| <= 2^-11 |x| + 2^-39 max|x_row| (runtime/cuda/cuda_matmul.cu);
     * f32 W keeps x as given. */
    int (*matmul)(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias, qr_tensor *y);
    /* y += x, same shape. */
    int (*add)(qr_backend *be, qr_tensor *y, const qr_tensor *x);
    /* out = LayerNorm(x) * gamma + beta over each row (gamma/beta: 1 x cols f32). out may be x. */
    int (*layernorm)(qr_backend *be, const qr_tensor *x, const qr_tensor *gamma, const qr_tensor *beta,
                     float eps, qr_tensor *out);
    /* out = x / sqrt(mean(x^2) + eps) * w over each row. out may be x. */
    int (*rmsnorm)(qr_backend *be, const qr_tensor *x, const qr_tensor *w, float eps, qr_tensor *out);
    /* In-place rotary embedding on x (n, n_head*head_dim), HF "half rotation"
     * (rotate_half: pairs (i, i + head_dim/2)). pos: n host positions; inv_freq:
     * head_dim/2 host floats (already including any rope scaling). */
    int (*rope)(qr_backend *be, qr_tensor *x, int n_head, int head_dim, const int32_t *pos,
                const float *inv_freq);
    /* In-place exact GELU (erf form) on x. */
    int (*gelu)(qr_backend *be, qr_tensor *x);
    /* gate(n, f) = silu(gate) * up, in place. */
    int (*silu_mul)(qr_backend *be, qr_tensor *gate, const qr_tensor *up);
    /* Scaled dot-product attention, batched over sequences (descriptors on host).
     * q (n_q_total, n_head*hd), k/v (n_kv_rows, n_kv_head*hd), out like q.
     * Grouped-query: head h uses kv head h / (n_head / n_kv_head). */
    int (*attention)(qr_backend *be, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                     const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head, int head_dim,
                     float scale, bool causal, qr_tensor *out);
    /* dst[dst_idx[i]] = src[src_idx[i]] for i < n (row copies; NULL index = identity).
     * Used to write K/V into a cache and to gather last-token rows. */
    int (*copy_rows)(qr_backend *be, const qr_tensor *src, const int32_t *src_idx, qr_tensor *dst,
                     const int32_t *dst_idx, int64_t n);
    /* out(n_seq, d): pooling over each sequence's rows of x (seqs use q_start/n_q). */
    int (*pool)(qr_backend *be, const qr_tensor *x, const qr_attn_seq *seqs, int n_seq, qr_pool_mode mode,
                qr_tensor *out);
    /* Each row scaled to unit L2 norm (rows of norm 0 left as zeros). */
    int (*l2norm)(qr_backend *be, qr_tensor *x);

    void (*destroy)(qr_backend *be);

    /* --- optional ops: NULL where a backend lacks them (the CPU backend);
     * model code uses them only when present and is correct without them --- */
    /* Device-side selection for sampling: for each of the first n rows of
     * logits (rows x vocab), the k largest values in descending order, the
     * lowest column first among equal values (k = 1 is the greedy arg-max).
     * ids (n*k) and vals (n*k, may be NULL) are host arrays, filled when the
     * call returns (it waits for the queue). 1 <= k <= QR_BE_TOPK_MAX. */
    int (*topk)(qr_backend *be, const qr_tensor *logits, int64_t n, int k, int32_t *ids, float *vals);
    /* Capture of a fixed sequence of ops (a decode step) as one replayable
     * graph, which removes the per-op launch cost of small models.
     * graph_begin: ops called after it are recorded, not run, until graph_end
     * returns the graph (on failure nothing recorded runs and the caller runs
     * the ops normally). Between the two only the ops embed..l2norm and
     * matmul/attention may be called (no upload, download, sync, topk,
     * weight_load, tensor_alloc/free), and other threads sharing the backend
     * wait until graph_end. graph_launch enqueues one replay. The
     * host arrays the recorded ops took (ids, positions, row indices, sequence
     * descriptors, inv_freq) are read again from the same addresses at every
     * graph_launch: the caller keeps them alive and writes the new step's
     * values there before launching. Fixed at capture: tensors (device
     * pointers and shapes), counts (n, n_seq) and each sequence's q_start and
     * n_q; free to change between launches: token ids, positions, row indices
     * and each sequence's q_pos0, kv_start and n_kv. graph_free accepts NULL. */
    int (*graph_begin)(qr_backend *be);
    int (*graph_end)(qr_backend *be, qr_be_graph **out);
    int (*graph_launch)(qr_backend *be, qr_be_graph *g);
    void (*graph_free)(qr_backend *be, qr_be_graph *g);
    /* Fused residual add + RMSNorm: x += y, then out = RMSNorm(x) * w, with
     * the result of add followed by rmsnorm (one pass over x instead of
     * three). out must not overlap x or y. Capturable like the ops above. */
    int (*add_rmsnorm)(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *w, float eps,
                       qr_tensor *out);
    /* Fused residual add + LayerNorm (BERT's post-norm): x += y, then out =
     * LayerNorm(x) * gamma + beta (beta may be NULL), with the result of add
     * followed by layernorm. out may be x or y itself (same tensor), not a
     * partial overlap. */
    int (*add_layernorm)(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *gamma,
                         const qr_tensor *beta, float eps, qr_tensor *out);
    /* Weights that share their input (a layer's q, k and v; gate and up):
     * y[i] = x . W[i]^T + bias[i] for i < n (1 <= n <= QR_BE_MATMUL_N_MAX;
     * bias[i] may be NULL), each the bits matmul gives, in one call so that
     * the backend prepares x once and splits all rows in one dispatch. */
    int (*matmul_n)(qr_backend *be, const qr_tensor *x, int n, const qr_tensor *const *w,
                    const qr_tensor *const *bias, qr_tensor *const *y);
} qr_backend_ops;

/* Most weights in one matmul_n call. */
#define QR_BE_MATMUL_N_MAX 4

/* Largest k the optional topk op accepts. */
#define QR_BE_TOPK_MAX 64

/* Every backend struct begins with this header. */
struct qr_backend {
    const qr_backend_ops *ops;
    qr_dtype act_dtype; /* activation type this backend computes in */
};

/* Creates the CPU backend with n_threads workers (0 = all online cores). */
int qr_backend_cpu_create(int n_threads, qr_backend **out);
/* ---- CUDA backend (runtime/cuda) ----
 * Built with the meson feature `cuda`; without it qr_cuda_built() is false and
 * the functions below return QR_EUNSUPPORTED ("built without CUDA"). */
typedef struct qr_gpu_info {
    int index;              /* CUDA device ordinal (after CUDA_VISIBLE_DEVICES) */
    char name[128];
    int cc_major, cc_minor; /* compute capability */
    uint64_t total_bytes, free_bytes;
    char uuid[48];          /* "GPU-xxxxxxxx-..." as nvidia-smi prints it */
} qr_gpu_info;

bool qr_cuda_built(void);
/* Lists up to max devices into out and sets *n. Any CUDA error (no driver,
 * stub library, no device) is "no GPU": returns 0 with *n = 0 and the reason
 * kept for qr_cuda_why_none(). Reading free memory needs a context on each
 * device; the ones no backend of this process uses are released again, so a
 * listing leaves nothing behind on GPUs the process does not compute on. */
int qr_cuda_devices(qr_gpu_info *out, int max, int *n);
/* Why the last qr_cuda_devices found none ("built without CUDA",
 * "cudaGetDeviceCount: CUDA driver version is insufficient ... (35)"); "" otherwise. */
const char *qr_cuda_why_none(void);
/* Creates the CUDA backend on device ordinal `device` (one stream, cuBLAS handles),
 * computing activations in f32. */
int qr_backend_cuda_create(int device, qr_backend **out);
/* Same with the activation type chosen: QR_F32 (exact, the default) or QR_BF16
 * (half the activation and KV-cache memory traffic; ~3 significant digits). */
int qr_backend_cuda_create_ex(int device, qr_dtype act_dtype, qr_backend **out);

/* Checks attention descriptors against q (query rows) and k (key/value
 * rows) for backend `name`: QR_EINVAL naming the first bad sequence. Shared
 * by the backends' attention ops so every backend refuses the same input. */
int qr_attn_check_seqs(const char *name, const qr_tensor *q, const qr_tensor *k, const qr_attn_seq *seqs, int n_seq);

/* Destroys any backend; NULL is fine. */
void qr_backend_destroy(qr_backend *be);

/* Convenience wrappers so model code reads as calls, not table lookups. */
static inline int qr_be_tensor_alloc(qr_backend *be, qr_dtype dt, int64_t r, int64_t c, qr_tensor *o)
{ return be->ops->tensor_alloc(be, dt, r, c, o); }
static inline void qr_be_tensor_free(qr_backend *be, qr_tensor *t) { if (t) be->ops->tensor_free(be, t); }
static inline int qr_be_sync(qr_backend *be) { return be->ops->sync(be); }
static inline bool qr_be_supports(qr_backend *be, qr_be_op op, qr_dtype wt)
{
    if (be->ops->supports)
        return be->ops->supports(be, op, wt);
    return wt == QR_F32 || wt == QR_F16 || wt == QR_BF16 || wt == QR_I8;
}

#endif
