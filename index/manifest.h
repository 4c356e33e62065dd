/* manifest.json: what a store is (format version 1).
 *
 *   {
 *     "format": "quire-store",
 *     "version": 1,                      checked on open: another version is refused
 *     "created": "2026-11-21T05:00:00Z", "updated": "...",
 *     "embedder": null | {               null: BM25-only store (no vectors)
 *       "model": "/path/to/model",       as given; informational (a moved model still matches)
 *       "hash": "fnv1a64:...",           content hash: config.json + tokenizer files + weights header
 *       "dim": 384, "pooling": "mean", "normalize": true
 *     },
 *     "vectors": { "dtype": "f32" | "f16", "metric": "ip" | "l2" },
 *     "index": { "factory": "Flat" },    FAISS factory string (IDMap2 is added around it)
 *     "chunking": { "tokens": 256, "overlap": 32, "tokenizer": "..." },
 *     "counts": { "docs": 0, "chunks": 0, "vectors": 0 },
 *     "generation": 0                    LMDB generation when the counts were written
 *   }
 *
 * Two embedders are the same when hash, dim, pooling and normalize agree.
 * Written atomically (manifest.json.tmp, fsync, rename). */
#ifndef QR_INDEX_MANIFEST_H
#define QR_INDEX_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QR_MANIFEST_VERSION 1
#define QR_MANIFEST_MAX_BYTES (1 << 20)

typedef struct qr_embedder_id {
    char model[1024];  /* model path or name as given */
    char hash[96];     /* content hash ("fnv1a64:<16 hex>"); "" = unknown */
    int dim;
    char pooling[16];  /* "mean", "cls", "last" */
    bool normalize;
} qr_embedder_id;

typedef struct qr_manifest {
    int version;
    char created[32], updated[32]; /* ISO 8601 UTC */
    bool has_embedder;
    qr_embedder_id embedder;
    char vec_dtype[8];   /* "f32" or "f16": how vectors are kept in meta.lmdb */
    char metric[4];      /* "ip" (normalized embeddings) or "l2" */
    char factory[128];   /* FAISS factory string */
    int chunk_tokens, chunk_overlap;
    char chunk_tokenizer[1024];
    uint64_t n_docs, n_chunks, n_vectors, generation;
} qr_manifest;

/* Defaults: version 1, no embedder, f32, Flat, 256/32 chunks, now as created. */
void qr_manifest_init(qr_manifest *m);
/* Reads dir/manifest.json. QR_ENOTFOUND if absent; QR_EFORMAT (malformed,
 * missing field, wrong type) or QR_EUNSUPPORTED (other format version) with a
 * message naming the file and field. *m written only on success. */
int qr_manifest_read(const char *dir, qr_manifest *m);
/* Writes dir/manifest.json atomically (sets "updated" to now). */
int qr_manifest_write(const char *dir, qr_manifest *m);

/* True when a and b are the same embedder (hash, dim, pooling, normalize). */
bool qr_embedder_same(const qr_embedder_id *a, const qr_embedder_id *b);
/* "model (hash, dim 384, mean, normalized)" for messages. */
void qr_embedder_describe(const qr_embedder_id *e, char *buf, size_t len);
/* Content hash of a model (a directory: config.json, tokenizer.json,
 * tokenizer_config.json, vocab.txt and the first 1 MiB of each weights file
 * whose name ends in .safetensors; a file, e.g. GGUF: its first 1 MiB and
 * size) into e->hash. */
int qr_embedder_hash(const char *model_path, char *hash, size_t len);

#endif
