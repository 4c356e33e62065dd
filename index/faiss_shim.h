/* Private: the small extern "C" surface of faiss_shim.cpp over the FAISS C++
 * API (Debian's libfaiss.a has no C API implementation). Only vecindex.c uses
 * it. Every function returns 0 on success, or a QR_E* code with the FAISS
 * message copied into err (C++ exceptions never cross this boundary). Handles
 * are always an IndexIDMap2 wrapping the index the factory string builds. */
#ifndef QR_INDEX_FAISS_SHIM_H
#define QR_INDEX_FAISS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qr_faiss qr_faiss;

/* factory: FAISS index_factory string without the IDMap part ("Flat",
 * "HNSW32", "IVF16,PQ8"); metric_ip: 1 inner product, 0 L2. */
int qr_faiss_new(const char *factory, int dim, int metric_ip, qr_faiss **out, char *err, size_t errlen);
int qr_faiss_read(const char *path, qr_faiss **out, char *err, size_t errlen);
int qr_faiss_write(const qr_faiss *f, const char *path, char *err, size_t errlen);
void qr_faiss_free(qr_faiss *f);

int qr_faiss_dim(const qr_faiss *f);
int qr_faiss_metric_ip(const qr_faiss *f);
int64_t qr_faiss_ntotal(const qr_faiss *f); /* live vectors */
int64_t qr_faiss_dead(const qr_faiss *f);   /* HNSW tombstones */
int qr_faiss_is_trained(const qr_faiss *f);
/* Copies the ids held (ntotal of them, in insertion order) into ids. */
void qr_faiss_ids(const qr_faiss *f, int64_t *ids);

int qr_faiss_train(qr_faiss *f, int64_t n, const float *x, char *err, size_t errlen); // x: (n, dim)
int qr_faiss_add(qr_faiss *f, int64_t n, const float *x, const int64_t *ids, char *err, size_t errlen);
/* HNSW: marks tombstones (skipped by searches, still in the graph and the
 * saved file). QR_EUNSUPPORTED for index types that cannot remove at all. */
int qr_faiss_remove(qr_faiss *f, int64_t n, const int64_t *ids, int64_t *removed, char *err, size_t errlen);
/* One query x (dim); labels -1 past the end of results. nprobe/ef_search
 * apply to IVF/HNSW indexes (ignored otherwise, 0 = leave as is). */
int qr_faiss_search(const qr_faiss *f, const float *x, int64_t k, int nprobe, int ef_search, float *dist,
                    int64_t *labels, char *err, size_t errlen);
/* "IDMap2,Flat"-style description of the index structure, for info. */
void qr_faiss_describe(const qr_faiss *f, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
