/* Private to runtime/cuda; included by .cu files only (DESIGN.md: only .cu
 * files include CUDA headers). The backend is split by kind of work:
 *
 *   cuda_backend.cu    create/destroy, device list, memory, upload/download,
 *                      sync, the ops table, small host-array staging
 *   cuda_kernels.cu    embed, add, layernorm, rmsnorm, rope, gelu, silu_mul,
 *                      copy_rows, pool, l2norm
 *   cuda_matmul.cu     weight_load (conversion on the device) and matmul:
 *                      cuBLAS(Lt) bf16/f16 with f32 accumulation, int8
 *                      weight-only GEMV/GEMM with per-row scales
 *   cuda_attention.cu  prefill (flash style, varlen, causal or not) and
 *                      decode over the KV cache (split along the sequence)
 *
 * Activations on this backend are QR_F32 or QR_BF16 (hdr.act_dtype). */
#ifndef QR_RUNTIME_CUDA_INTERNAL_H
#define QR_RUNTIME_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "common/error.h"
#include "runtime/backend.h"

typedef struct qr_cuda_backend {
    qr_backend hdr;              /* first: the ops table and act_dtype */
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *workspace;             /* cuBLASLt workspace (device) */
    size_t workspace_bytes;
    /* Staging for the small host arrays ops take (ids, positions, sequence
     * descriptors, inv_freq): pinned host + device ring, copied on the stream. */
    void *stage_host, *stage_dev;
    size_t stage_bytes, stage_off;
} qr_cuda_backend;

static inline qr_cuda_backend *qr_cuda_of(qr_backend *be) { return (qr_cuda_backend *)be; }

/* Translates a CUDA / cuBLAS status into QR_EBACKEND with "what: message (code)". */
int qr_cuda_check(cudaError_t e, const char *what);
int qr_cublas_check(cublasStatus_t s, const char *what);

/* Copies bytes of host data to device memory valid for ops enqueued on the
 * stream until the next qr_cuda_stage_reset (called by sync). *dev receives
 * the device pointer. */
int qr_cuda_stage(qr_cuda_backend *cb, const void *host, size_t bytes, void **dev);

/* Element size of an activation/weight dtype on this backend (F32 4, F16/BF16 2, I8 1, I32 4). */
size_t qr_cuda_elem_size(qr_dtype dt);

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

/* cuda_matmul.cu */
int qr_cuda_weight_load(qr_backend *be, const void *src, qr_dtype src_dt, int64_t rows, int64_t cols,
                        qr_dtype want, bool may_alias, qr_tensor *out);
int qr_cuda_matmul(qr_backend *be, const qr_tensor *x, const qr_tensor *w, const qr_tensor *bias, qr_tensor *y);

/* cuda_attention.cu */
int qr_cuda_attention(qr_backend *be, const qr_tensor *q, const qr_tensor *k, const qr_tensor *v,
                      const qr_attn_seq *seqs, int n_seq, int n_head, int n_kv_head, int head_dim, float scale,
                      bool causal, qr_tensor *out);

#endif
