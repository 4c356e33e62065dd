/* Communicators for tensor parallelism: the collectives the ranks of one
 * model use (all-reduce sum, all-gather, broadcast, barrier), behind a small
 * function table like the backends'.
 *
 * - host (comm_host.c, always built): N ranks in one process, one thread per
 *   rank, buffers in host memory. Usable with any backend: the model copies
 *   device -> host -> device around each collective (the CPU backend's
 *   download/upload are plain copies). Deterministic: an all-reduce sums the
 *   ranks in rank order 0..N-1, so every rank gets bit-identical results.
 * - nccl (comm_nccl.c, meson feature `nccl`): one rank per GPU of this node,
 *   buffers in device memory, ordered on each rank's stream (given by
 *   qr_comm_nccl_create). Multi-node is designed in DESIGN.md, not built.
 *
 * Every rank of a communicator calls each collective once, in the same
 * order, with the same n (rank = the caller's index, 0..n_ranks-1). A rank
 * that fails elsewhere calls qr_comm_abort so the others do not wait for it
 * forever: their collectives then return QR_ECANCELED until qr_comm_reset (called
 * when no rank is inside a collective). */
#ifndef QR_RUNTIME_DIST_COMM_H
#define QR_RUNTIME_DIST_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/dtype.h"

typedef struct qr_comm qr_comm;

/* Counters of the collectives (rank 0's calls; time in its collective calls). */
typedef struct qr_comm_stats {
    uint64_t n_allreduce, allreduce_bytes;
    uint64_t n_other;        /* all-gather, broadcast, barrier */
    double seconds;          /* wall time rank 0 spent inside collectives */
} qr_comm_stats;

typedef struct qr_comm_ops {
    const char *name; /* "host", "nccl" */
    /* buf (n elements of dt: QR_F32 or QR_BF16) = the sum over ranks, in place. */
    int (*allreduce)(qr_comm *c, int rank, void *buf, int64_t n, qr_dtype dt);
    /* recv (n_ranks * nbytes) = every rank's send (nbytes), in rank order. */
    int (*allgather)(qr_comm *c, int rank, const void *send, int64_t nbytes, void *recv);
    /* buf (nbytes) of every rank = root's. */
    int (*broadcast)(qr_comm *c, int rank, void *buf, int64_t nbytes, int root);
    int (*barrier)(qr_comm *c, int rank);
    void (*abort)(qr_comm *c);
    void (*reset)(qr_comm *c);
    void (*destroy)(qr_comm *c);
} qr_comm_ops;

/* Every communicator struct begins with this header. */
struct qr_comm {
    const qr_comm_ops *ops;
    int n_ranks;
    /* Collectives take the ranks' backend tensor memory as is (NCCL: device
     * memory, ordered on each rank's stream; the host communicator over CPU
     * ranks: host memory). False: the caller stages device -> host -> device
     * around each collective (host communicator over CUDA backends). */
    bool in_place;
    qr_comm_stats stats;
};

/* In-process communicator of n_ranks (1..256) host-memory ranks. */
int qr_comm_host_create(int n_ranks, qr_comm **out);

/* NCCL communicator over CUDA devices devs[0..n-1] of this process (one rank
 * each; streams[i] is rank i's cudaStream_t). QR_EUNSUPPORTED ("built without
 * NCCL") unless built with the `nccl` feature. */
bool qr_nccl_built(void);
int qr_comm_nccl_create(const int *devs, void *const *streams, int n, qr_comm **out);

/* ---- which communicator a tensor-parallel group uses (the one place) ----
 * devs[r]: rank r's CUDA device ordinal, or -1 for a host-memory (CPU)
 * backend. NCCL when the build has it and every rank is a CUDA backend on its
 * own GPU; else the host communicator: in place over CPU ranks, staged
 * through host memory over CUDA backends that share a GPU (the single-GPU
 * test configuration), a mix of CPU and CUDA ranks, or a build without NCCL.
 * *why (may be NULL): a phrase for the load line. */
typedef enum { QR_COMM_HOST_INPLACE = 0, QR_COMM_HOST_STAGED, QR_COMM_NCCL } qr_comm_kind;
qr_comm_kind qr_comm_choose(const int *devs, int n, bool nccl_built, const char **why);
const char *qr_comm_kind_name(qr_comm_kind k);
/* The CUDA device ordinal of be and its stream (*stream may be NULL); -1 for
 * a backend that is not CUDA (cuda_backend.cu; cuda_none.c answers -1). */
int qr_backend_cuda_device(const qr_backend *be, void **stream);
/* The communicator for ranks on bes[0..n-1] (qr_comm_choose), *kind set.
 * Errors name the ranks and devices (an NCCL init failure: every GPU). */
int qr_comm_create_for(qr_backend *const *bes, int n, qr_comm **out, qr_comm_kind *kind);
/* Fault injection for tests: while set, qr_comm_create_for fails as an
 * NCCL initialisation error would (QR_EBACKEND naming the devices). */
void qr_comm_test_fail_init(bool on);

static inline int qr_comm_allreduce(qr_comm *c, int rank, void *buf, int64_t n, qr_dtype dt)
{ return c->ops->allreduce(c, rank, buf, n, dt); }
static inline int qr_comm_allgather(qr_comm *c, int rank, const void *send, int64_t nbytes, void *recv)
{ return c->ops->allgather(c, rank, send, nbytes, recv); }
static inline int qr_comm_broadcast(qr_comm *c, int rank, void *buf, int64_t nbytes, int root)
{ return c->ops->broadcast(c, rank, buf, nbytes, root); }
static inline int qr_comm_barrier(qr_comm *c, int rank) { return c->ops->barrier(c, rank); }
static inline void qr_comm_abort(qr_comm *c) { c->ops->abort(c); }
static inline void qr_comm_reset(qr_comm *c) { c->ops->reset(c); }
static inline void qr_comm_destroy(qr_comm *c) { if (c) c->ops->destroy(c); }

#endif
