/* Vector index: FAISS IndexIDMap2 over the index a factory string builds
 * ("Flat" default, "HNSW32", "IVF64,PQ8", ...), ids are the store's chunk ids.
 *
 * File format: vectors.faiss is FAISS's own write_index() serialisation of an
 * IndexIDMap2 (FAISS checks its fourcc headers on read). It is never the
 * source of truth: meta.lmdb keeps every vector, so a missing, stale or
 * corrupt vectors.faiss is rebuilt from LMDB (index/store.c reconciles on
 * open). Saving writes PATH.tmp, fsyncs it, renames it over PATH and fsyncs
 * the directory, so PATH is always a complete file.
 *
 * Threads: searches may run concurrently with each other; add/remove/train
 * need exclusive access (the store serialises them). */
#ifndef QR_INDEX_VECINDEX_H
#define QR_INDEX_VECINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QR_VECINDEX_MAX_K 10000 /* limit on k for one search */
#define QR_VECINDEX_MAX_DIM 65536

typedef struct qr_vecindex qr_vecindex;

/* New empty index. metric_ip: inner product (normalized embeddings), else L2.
 * QR_EINVAL with FAISS's message for a bad factory string. */
int qr_vecindex_create(const char *factory, int dim, bool metric_ip, qr_vecindex **out);
/* Reads a vectors.faiss file: QR_ENOTFOUND if absent, QR_EFORMAT if corrupt. */
int qr_vecindex_load(const char *path, qr_vecindex **out);
/* Crash-safe write (tmp, fsync, rename, fsync dir). */
int qr_vecindex_save(const qr_vecindex *v, const char *path);
void qr_vecindex_free(qr_vecindex *v);

int qr_vecindex_dim(const qr_vecindex *v);
bool qr_vecindex_metric_ip(const qr_vecindex *v);
int64_t qr_vecindex_count(const qr_vecindex *v); /* live vectors */
int64_t qr_vecindex_dead(const qr_vecindex *v);  /* HNSW tombstones */
/* False for an IVF index before training (adds are refused until then). */
bool qr_vecindex_is_trained(const qr_vecindex *v);
/* Ids held, malloc'd (caller frees), *n = count. */
int qr_vecindex_ids(const qr_vecindex *v, int64_t **ids, size_t *n);
/* "IDMap2,HNSW" style text for reports. */
void qr_vecindex_describe(const qr_vecindex *v, char *buf, size_t len);

int qr_vecindex_train(qr_vecindex *v, size_t n, const float *x); // x: (n, dim)
int qr_vecindex_add(qr_vecindex *v, size_t n, const float *x, const int64_t *ids); // x: (n, dim)
/* Removes ids (absent ones are ignored); *removed = how many were there.
 * HNSW keeps removed vectors as tombstones that searches skip (they stay in
 * the graph and in a saved file: rebuild when qr_vecindex_dead() grows).
 * QR_EUNSUPPORTED for index types that cannot remove at all: rebuild instead. */
int qr_vecindex_remove(qr_vecindex *v, size_t n, const int64_t *ids, size_t *removed);
/* k nearest to q (dim floats), best first: ids[i], scores[i] (inner product,
 * or squared L2 distance) for i < *found (<= k). QR_ELIMIT when k > QR_VECINDEX_MAX_K. */
int qr_vecindex_search(const qr_vecindex *v, const float *q, int k, int64_t *ids, float *scores, int *found);

#endif
