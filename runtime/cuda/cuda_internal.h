/* Private to runtime/cuda; included by .cu files only (DESIGN.md: only .cu
 * files include CUDA headers). The backend is split by kind of work:
 *
 *   cuda_backend.cu    create/destroy, device list, memory, upload/download,
 *                      sync, the ops table, small host-array staging
 *   cuda_kernels.cu    embed, add, layernorm, rmsnorm, add_rmsnorm/add_layernorm (fused),
 *                      rope, gelu, silu_mul, copy_rows, pool, l2norm, and the
 *                      f32 conversions behind upload/download
 *   cuda_matmul.cu     weight_load (conversion on the device) and matmul:
 *                      cuBLAS(Lt) bf16/f16 with f32 accumulation, int8
 *                      weight-only GEMV/GEMM with per-row scales, GGUF
 *                      block weights kept as stored (decoded by
 *                      cuda_quant.h in registers / into bf16 tiles)
 *   cuda_attention.cu  prefill (flash style, varlen, causal or not) and
 *                      decode over the KV cache (split along the sequence)
 *   cuda_sample.cu     optional op topk (device-side greedy / top-k selection)
 *   cuda_graph.cu      optional ops graph_begin/end/launch/free (CUDA graphs
 *                      of the decode step)
 *
 * Every op must be capturable into a CUDA graph (cuda_graph.cu): no
 * synchronisation, no cudaMalloc/cudaFree (cudaMallocAsync/cudaFreeAsync on
 * the stream are fine), host arrays only through qr_cuda_stage, and while
 * cb->capture is set no decision (branch, launch size, pointer) taken from
 * the VALUES of staged host arrays, only from counts and tensor shapes,
 * because the graph is replayed later with new values in those arrays.
 *
 * tensor_free releases data and scale (cudaFree) of owned tensors of any
 * dtype: weight_load also makes GGUF block tensors (Q8_0 ... Q6_K, the
 * file's bytes, ql = QR_QL_GGUF, no scale array; see cuda_matmul.cu).
 *
 * Activations on this backend are QR_F32 or QR_BF16 (hdr.act_dtype). */
#ifndef QR_RUNTIME_CUDA_INTERNAL_H
#define QR_RUNTIME_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <pthread.h>

#include "runtime/cuda/cuda_host.h" /* C++-safe on its own: before the extern "C" block */

/* The project's headers are C: C linkage for them and for everything below. */
#ifdef __cplusplus
extern "C" {
#endif

#include "common/error.h"
#include "runtime/backend.h"

struct qr_cuda_capture; /* cuda_graph.cu: a graph being recorded */

#define QR_CUDA_MAX_RETIRED 48 /* the ring at least doubles each time: 2^48 bytes */

typedef struct qr_cuda_backend {
    qr_backend hdr;              /* first: the ops table and act_dtype */
    int device;
    bool counted;                /* counted among the device's users (cuda_backend.cu, dev_users) */
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;             /* cuBLASLt workspace (device) */
    size_t workspace_bytes;
    /* Staging for the small host arrays ops take (ids, positions, sequence
     * descriptors, inv_freq): pinned host + device ring, copied on the stream. */
    void *stage_host, *stage_dev;
    qr_stage_ring ring;          /* placement in stage_host/stage_dev (cuda_host.h) */
    /* Buffers the ring outgrew while an op still had arrays in them: freed at
     * the next sync (qr_cuda_stage_synced), never before. */
    void *retired_host[QR_CUDA_MAX_RETIRED], *retired_dev[QR_CUDA_MAX_RETIRED];
    int n_retired;
    int op_depth;                /* table entries in progress on this thread (ops nest: weight_load -> tensor_alloc) */
    pthread_mutex_t stage_mu;    /* recursive; held by every op (table entry) while it stages and enqueues */
    /* Per backend, not per process: a device listing releases the primary
     * context of a device no backend uses (cuda_backend.cu), which drops
     * kernel attributes, pinned memory and pool settings made in it; a backend
     * keeps its context alive, so what it set up itself stays valid. */
    bool attr_prefill_tc[2];     /* cudaFuncSetAttribute done for attn_prefill_tc<64>, <128> */
    bool attr_decode[4];         /* attn_decode<HDP> by HDP index (cuda_attention.cu) */
    bool attr_topk;              /* topk kernels (cuda_sample.cu) */
    bool pool_set;               /* the default pool's release threshold raised (qr_cuda_scratch) */
    void *pin[2];                /* weight_load's pinned staging, QR_CUDA_LOAD_CHUNK each, made on first use */
    /* Non-NULL between graph_begin and graph_end (cuda_graph.cu). */
    struct qr_cuda_capture *capture;
} qr_cuda_backend;

static inline qr_cuda_backend *qr_cuda_of(qr_backend *be) { return (qr_cuda_backend *)be; }

/* Translates a CUDA / cuBLASLt status into QR_EBACKEND with "cuda: what: message (code)". */
int qr_cuda_check(cudaError_t e, const char *what);
int qr_cublas_check(cublasStatus_t s, const char *what);
/* Like qr_cuda_check, but an allocation failure (cudaErrorMemoryAllocation)
 * becomes QR_ENOMEM "cuda: out of GPU memory: WHAT: BYTES bytes on device D
 * (F of T MiB free)", which the service and the load line report as such. */
int qr_cuda_check_alloc(qr_cuda_backend *cb, cudaError_t e, const char *what, size_t bytes);
/* The same for pinned host memory (cudaMallocHost): "cuda: out of pinned host memory: WHAT: BYTES bytes". */
int qr_cuda_check_host_alloc(cudaError_t e, const char *what, size_t bytes);
/* After a stream sync with no op's staged arrays pending (sync, download):
 * frees the retired staging buffers and restarts the ring. stage_mu held. */
void qr_cuda_stage_synced(qr_cuda_backend *cb);

/* Copies bytes of host data to device memory valid for ops enqueued on the
 * stream until the next sync (the host may reuse `host` at once). *dev
 * receives the device pointer (256-byte aligned). The ring restarts at every
 * sync; when it is full it waits for the stream first, and never overwrites
 * or frees an array the current op staged before (qr_stage_plan,
 * cuda_host.h): it wraps below them or grows, keeping the old buffer until
 * the next sync. Every entry of the ops table holds cb->stage_mu
 * while it stages and enqueues (cuda_backend.cu), so callers on several
 * threads are serialised per backend and a sync from one of them cannot
 * recycle the ring between another's stage and the launch that reads it.
 * While cb->capture is set it returns qr_cuda_graph_stage(cb, host, bytes,
 * dev) instead (graph-owned staging that graph_launch refreshes from the same
 * host address). */
int qr_cuda_stage(qr_cuda_backend *cb, const void *host, size_t bytes, void **dev);

/* Element size of a tensor dtype on this backend (F32 4, F16/BF16 2, I8 1, I32 4;
 * 0 otherwise, GGUF block types included: their rows are qr_dtype_row_bytes). */
size_t qr_cuda_elem_size(qr_dtype dt);

/* Argument checks shared by the ops (messages "cuda: OP: NAME: ...", QR_EINVAL):
 * check_tensor: a tensor dtype, sane shape and stride, data present, I8
 *   with scales; or a GGUF block type kept as stored (cuda_quant.h) with its
 *   QR_QL_GGUF layout, whole blocks per row;
 * check_act: check_tensor + dtype is an activation type (F32 or BF16);
 * check_shape: exactly (rows, cols). */
int qr_cuda_check_tensor(const qr_tensor *t, const char *op, const char *name);
int qr_cuda_check_act(const qr_tensor *t, const char *op, const char *name);
int qr_cuda_check_shape(const qr_tensor *t, int64_t rows, int64_t cols, const char *op, const char *name);
/* True if the byte ranges spanned by a and b overlap. */
bool qr_cuda_overlaps(const qr_tensor *a, const qr_tensor *b);
/* Makes the backend's device current on the calling thread (ops may be called
 * from any thread; the current device is per thread). First thing every op does. */
int qr_cuda_use(qr_cuda_backend *cb);
/* After kernel launches: cudaGetLastError as QR_EBACKEND ("cuda: WHAT: message (code)"). */
int qr_cuda_launched(const char *what);
/* Converts rows row0.. of a strided tensor of any tensor dtype (F32, F16, BF16,
 * I8 with its scales, I32, GGUF blocks: the CPU's dequantization bit for bit)
 * into dense f32 at dst (device), on the stream. */
int qr_cuda_to_f32(qr_cuda_backend *cb, const qr_tensor *t, int64_t row0, int64_t rows, float *dst);
/* Converts dense f32 (rows, cols) at src (device) into rows row0.. of t
 * (F32, F16 or BF16), on the stream. */
int qr_cuda_from_f32(qr_cuda_backend *cb, const float *src, qr_tensor *t, int64_t row0, int64_t rows);

/* ops implemented in cuda_kernels.cu (same contracts as backend.h) */
int qr_cuda_embed(qr_backend *be, const qr_tensor *table, const int32_t *ids, int64_t n, qr_tensor *out);
int qr_cuda_add(qr_backend *be, qr_tensor *y, const qr_tensor *x);
int qr_cuda_layernorm(qr_backend *be, const qr_tensor *x, const qr_tensor *gamma, const qr_tensor *beta,
                      float eps, qr_tensor *out);
int qr_cuda_rmsnorm(qr_backend *be, const qr_tensor *x, const qr_tensor *w, float eps, qr_tensor *out);
int qr_cuda_rope(qr_backend *be, qr_tensor *x, int n_head, int head_dim, const int32_t *pos, const float *inv_freq);
int qr_cuda_gelu(qr_backend *be, qr_tensor *x);
int qr_cuda_silu_mul(qr_backend *be, qr_tensor *gate, const qr_tensor *up);
int qr_cuda_copy_rows(qr_backend *be, const qr_tensor *src, const int32_t *src_idx, qr_tensor *dst,
                      const int32_t *dst_idx, int64_t n);
int qr_cuda_pool(qr_backend *be, const qr_tensor *x, const qr_attn_seq *seqs, int n_seq, qr_pool_mode mode,
                 qr_tensor *out);
int qr_cuda_l2norm(qr_backend *be, qr_tensor *x);
int qr_cuda_add_rmsnorm(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *w, float eps,
                        qr_tensor *out);
int qr_cuda_add_layernorm(qr_backend *be, qr_tensor *x, const qr_tensor *y, const qr_tensor *gamma,
                          const qr_tensor *beta, float eps, qr_tensor *out);

/* cuda_matmul.cu */
int qr_cuda_weight_load(qr_backend *be, const void *src, qr_dtype src_dt, int64_t rows, int64_t cols,
                        qr_dtype want, bool may_alias, qr_tensor *out);
int qr_cuda_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias, qr_tensor *y);

/* cuda_attention.cu */
int qr_cuda_attention(qr_backend *be, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                      const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head, int head_dim, float scale,
                      bool causal, qr_tensor *out);

/* cuda_sample.cu: the optional op topk (backend.h) */
int qr_cuda_topk(qr_backend *be, const qr_tensor *logits, int64_t n, int k, int32_t *ids, float *vals);

/* cuda_graph.cu: the optional graph ops (backend.h) and the staging used
 * while capturing (called by qr_cuda_stage when cb->capture is set). */
int qr_cuda_graph_begin(qr_backend *be);
int qr_cuda_graph_end(qr_backend *be, qr_be_graph **out);
int qr_cuda_graph_launch(qr_backend *be, qr_be_graph *g);
void qr_cuda_graph_free(qr_backend *be, qr_be_graph *g);
int qr_cuda_graph_stage(qr_cuda_backend *cb, const void *host, size_t bytes, void **dev);

/* cuda_matmul.cu: scratch device memory ordered on the stream
 * (cudaMallocAsync from the device's default pool, whose release threshold
 * is raised once so freed blocks are reused rather than unmapped at each
 * sync); capturable. qr_cuda_scratch_free accepts NULL. */
int qr_cuda_scratch(qr_cuda_backend *cb, size_t bytes, void **dev);
void qr_cuda_scratch_free(qr_cuda_backend *cb, void *dev);

#ifdef __cplusplus
}
#endif

#endif
