/* Host-side decisions of the CUDA backend, kept free of CUDA headers so the
 * CPU-only test suite can check them (tests/unit/cuda/test_cuda_host.c):
 *
 *   qr_stage_plan     where the staging ring (cuda_backend.cu) puts the next
 *                     small host array without overwriting one an op staged
 *                     earlier and has yet to launch the kernel that reads it
 *   qr_f16_row_scale  the power-of-two scale that brings an activation row
 *                     into f16 range before a cuBLASLt GEMM with f16 weights
 *                     (cuda_matmul.cu), so no element overflows 65504
 *
 * Included by .cu files (nvcc marks qr_f16_row_scale host + device) and by C. */
#ifndef QR_RUNTIME_CUDA_HOST_H
#define QR_RUNTIME_CUDA_HOST_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __CUDACC__
#define QR_HOST_DEVICE __host__ __device__
#else
#define QR_HOST_DEVICE
#endif

/* ------------------------------------------------------------ staging ring
 *
 * The ring is one pinned host buffer and one device buffer of cap bytes.
 * Arrays are copied host -> device on the backend's one stream ahead of the
 * kernel that reads them, so an array's device bytes may be reused by a later
 * copy on the same stream once that kernel has been enqueued (stream order),
 * and its pinned host bytes once its copy has run (a stream sync).
 *
 * One op (one entry of the ops table) may stage several arrays before it
 * launches the kernel that reads them all (rope: positions, then inv_freq;
 * copy_rows: source, then destination indices; attention: descriptors, then
 * tiles). Those arrays, [op0, off) in the current buffer, stay live until the
 * op returns: a wrap must not write over them and a buffer holding them must
 * not be freed before the next sync (qr_stage_plan says "retire").
 *
 * State: cap (buffer size), off (next free byte), end (where this op must stop:
 * cap, or op0 after a wrap that left the op's arrays above), op0 (the first
 * byte the current op staged in this buffer). qr_stage_op_begin at the start of
 * each op. */
typedef struct {
    size_t cap, off, end, op0;
} qr_stage_ring;

typedef enum {
    QR_STAGE_PLACE = 0, /* fits: copy at off (no sync) */
    QR_STAGE_WRAP,      /* sync the stream, then copy at 0 (same buffer) */
    QR_STAGE_GROW,      /* sync, allocate a buffer of *new_cap, retire the old one until the next sync, copy at 0 */
} qr_stage_action;

static inline void qr_stage_op_begin(qr_stage_ring *r)
{
    r->op0 = r->off;
    r->end = r->cap;
}

/* After every earlier user of the ring has run (a stream sync with no op in
 * flight: the backend's sync, a download): the whole ring is free. */
static inline void qr_stage_synced(qr_stage_ring *r)
{
    r->off = r->op0 = 0;
    r->end = r->cap;
}

/* Plans `need` bytes (already rounded to the ring's alignment, > 0). On
 * return r->off is where the array goes (after the action) and the state is
 * advanced past it; for QR_STAGE_GROW *new_cap is the new buffer's size and
 * r->cap already holds it. */
static inline qr_stage_action qr_stage_plan(qr_stage_ring *r, size_t need, size_t *new_cap, size_t *at)
{
    qr_stage_action a;
    if (r->off + need <= r->end) {
        a = QR_STAGE_PLACE;
    } else {
        bool live = r->off > r->op0; /* this op staged arrays it has not yet launched on */
        if (!live && need <= r->cap) {
            a = QR_STAGE_WRAP; /* nothing of this op in the buffer: all of it is free after the sync */
            r->off = r->op0 = 0;
            r->end = r->cap;
        } else if (live && need <= r->op0) {
            a = QR_STAGE_WRAP; /* below this op's arrays [op0, off): stop there until the op ends */
            r->end = r->op0;
            r->off = r->op0 = 0;
        } else {
            size_t nc = r->cap * 2 > need ? r->cap * 2 : need;
            a = QR_STAGE_GROW; /* the old buffer keeps this op's arrays until the next sync */
            *new_cap = nc;
            r->cap = r->end = nc;
            r->off = r->op0 = 0;
        }
    }
    *at = r->off;
    r->off += need;
    return a;
}

/* ------------------------------------------------------------ f16 activations
 *
 * With f16 weights cuBLASLt multiplies f16 by f16, so activations (f32 or
 * bf16) are narrowed to f16 first. f16 stops at 65504 (real down-projection
 * inputs exceed it), so each row i is first multiplied by s_i = 2^k chosen so
 * that its largest magnitude lands in [2^14, 2^15), and the product row is
 * multiplied by 1/s_i afterwards. Powers of two scale exactly: the only error
 * left is f16's rounding, |x~ - x| <= 2^-11 |x| + 2^-39 amax (the second
 * term: f16 subnormals, for |x| below amax 2^-28), never an overflow. Rows whose amax
 * is 0, inf or NaN keep s = 1 (inf/NaN propagate as on the CPU). k is kept
 * within [-126, 126] so s and 1/s are normal floats. */
static inline QR_HOST_DEVICE float qr_f16_row_scale(float amax)
{
    if (!(amax > 0.0f) || isinf(amax))
        return 1.0f;
    int e;
    (void)frexpf(amax, &e); /* amax = m 2^e, m in [0.5, 1) */
    int k = 15 - e;         /* amax 2^k = m 2^15 in [2^14, 2^15) */
    if (k > 126)
        k = 126;
    if (k < -126)
        k = -126;
    return ldexpf(1.0f, k);
}

#endif
