/* The on-disk store: one directory holding
 *
 *   manifest.json    what the store is (index/manifest.h, format version 1)
 *   meta.lmdb        LMDB environment (one file, MDB_NOSUBDIR; lock file meta.lmdb-lock)
 *   vectors.faiss    FAISS IndexIDMap2 (index/vecindex.h), rebuilt from LMDB whenever needed
 *   write.lock       flock()ed by the one process allowed to write (LOCK_EX), and
 *                    shared (LOCK_SH) by readers without LMDB's lock table (below)
 *
 * meta.lmdb layout, version 1 (QR_STORE_LMDB_VERSION, kept in meta/"version"
 * and checked on open). Integer keys are native-endian uint64 (MDB_INTEGERKEY).
 * Strings in records are stored with their NUL, so readers get C strings
 * pointing into the map.
 *
 *   meta        "version" u32 | "generation" u64 (bumped by every write commit)
 *               | "next_doc" u64 | "next_chunk" u64 (ids are never reused, so an
 *               id names one vector forever) | "faiss_generation" u64 (generation
 *               the last saved vectors.faiss reflects)
 *   docs        doc id -> record: u64 size, i64 mtime_ns, u32 n_chunks, then
 *               strings: path, hash, title, format, metadata JSON ("" = none)
 *   paths       path bytes (<= 511) -> u64 doc id
 *   chunks      chunk id -> record: u64 doc id, u64 byte_start, u64 byte_end,
 *               i32 page (0 = none), u32 ordinal, then strings: heading path, text
 *   doc_chunks  doc id -> chunk ids (MDB_DUPSORT|MDB_DUPFIXED|MDB_INTEGERDUP, u64)
 *   vectors     chunk id -> dim f32 or f16 values (manifest vectors.dtype)
 *   checkpoints free-form keys (<= 511 bytes) for the ingest pipeline
 * Other modules (BM25) keep their own named databases in the same env (maxdbs 32)
 * and write them in the same transactions through qr_store_txn_mdb().
 *
 * Crash safety: an LMDB commit is the commit point. FAISS changes are applied
 * in memory after a commit and written by qr_store_sync()/qr_store_close()
 * (temporary file, fsync, rename). Opening a store for writing reconciles
 * vectors.faiss with LMDB: ids with an LMDB vector but missing from FAISS are
 * added back, ids in FAISS but not in LMDB are removed, and the result is
 * saved with its generation; this is logged at info level.
 *
 * Adding an embedder later (a BM25-only store, or a new model): open the store
 * without one, qr_store_set_embedder() (drops every existing vector), then
 * qr_store_put_vector() for each chunk (qr_store_iter_chunks) — a re-embed.
 * Opening with an embedder that differs from the store's is refused
 * (QR_EMISMATCH, naming both).
 *
 * LMDB map: starts at 64 GiB of address space (sparse). When a write hits
 * MDB_MAP_FULL the call returns QR_ELIMIT; abort the transaction, and the
 * store doubles the map so the caller can retry the transaction. The map
 * can only change while this process has no transaction open on the store.
 *
 * Readers and writers (README "Sharing a store"): a read-only open writes
 * nothing but meta.lmdb-lock (LMDB creates it when missing and the directory
 * lets it). Readers register in meta.lmdb-lock (LMDB's reader table) when they
 * can open it for writing; then a writer in another process may commit while
 * they read, and each read transaction sees one committed generation (LMDB
 * MVCC; a long-lived reader's vector index catches up once the writer is done,
 * see qr_store_search). A reader that cannot write meta.lmdb-lock (another user's
 * store, a read-only file system, a snapshot) opens LMDB with MDB_NOLOCK: a
 * writer cannot see its transactions and could recycle the pages under them,
 * so that reader holds write.lock shared while the store is open. Writers are
 * refused while such readers run, and such readers are refused while a writer
 * runs (QR_EIO, saying which). A writer opening a store this process cannot
 * write is refused before anything is touched (qr_store_writable).
 *
 * Threads: one write transaction at a time per store; read transactions and
 * searches may run in other threads (MDB_NOTLS). */
#ifndef QR_INDEX_STORE_H
#define QR_INDEX_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/manifest.h"

#define QR_STORE_LMDB_VERSION 1
#define QR_STORE_MAX_PATH 511 /* LMDB key limit */
#define QR_STORE_MAX_CHUNKS_PER_DOC 1000000

typedef struct qr_store qr_store;
typedef struct qr_store_txn qr_store_txn;

typedef struct qr_store_open_opts {
    bool create;                    /* create the directory/store if missing */
    bool readonly;                  /* no writes (info, search); FAISS reconciled in memory only */
    size_t map_size;                /* LMDB map to start with; 0: 64 GiB (tests use small ones) */
    bool skip_vectors;              /* readonly only: do not load vectors.faiss (info; search refused) */
    const qr_embedder_id *embedder; /* NULL: accept whatever the store has */
    /* Used only when creating (an existing store keeps its own; see qr_store_set_factory): */
    const char *factory;            /* NULL: "Flat" */
    const char *vec_dtype;          /* NULL: "f32"; or "f16" */
    int chunk_tokens;               /* 0: 256 */
    int chunk_overlap;              /* 0: 32; QR_STORE_NO_OVERLAP: none (0 is taken by "default") */
    const char *chunk_tokenizer;    /* NULL: "" */
} qr_store_open_opts;

#define QR_STORE_NO_OVERLAP (-1)
/* An overlap in tokens as qr_store_open_opts.chunk_overlap spells it. */
static inline int qr_store_overlap_opt(int tokens) { return tokens == 0 ? QR_STORE_NO_OVERLAP : tokens; }

/* Opens (or creates) the store in dir. Errors: QR_ENOTFOUND (no store and not
 * create), QR_EFORMAT (corrupt manifest, nothing is modified),
 * QR_EUNSUPPORTED (other format version), QR_EMISMATCH (different embedder),
 * QR_EIO (another writer holds the store; a writer on a store this user cannot
 * write; a reader without the lock table while a writer runs, see above). */
int qr_store_open(const char *dir, const qr_store_open_opts *opts, qr_store **out);
/* 0 when this process can write the existing store in dir; QR_EIO naming the
 * store and what is not writable (directory, read-only file system, a file);
 * QR_ENOTFOUND when dir does not exist. Writers' qr_store_open checks it. */
int qr_store_writable(const char *dir);
/* Saves FAISS and the manifest if they changed, then frees. Accepts NULL. */
void qr_store_close(qr_store *s);
/* Writes vectors.faiss (if changed) and manifest.json counts. */
int qr_store_sync(qr_store *s);

/* Borrowed, valid while the store is open. */
const qr_manifest *qr_store_manifest(const qr_store *s);
const char *qr_store_dir(const qr_store *s);
MDB_env *qr_store_env(qr_store *s);

/* Replaces the store's embedder (NULL: none). Drops every vector (LMDB and
 * FAISS) when it changes; chunks and docs stay. Needs no open transaction. */
int qr_store_set_embedder(qr_store *s, const qr_embedder_id *e);

/* Changes the FAISS factory string (index type) and rebuilds vectors.faiss
 * from the LMDB vectors. QR_EINVAL for a string FAISS rejects (nothing changed). */
int qr_store_set_factory(qr_store *s, const char *factory);

/* ---- transactions ---- */
int qr_store_txn_begin(qr_store *s, bool write, qr_store_txn **out);
/* Commits (write: bumps the generation, applies vector changes to FAISS in memory). Frees txn. */
int qr_store_txn_commit(qr_store_txn *t);
void qr_store_txn_abort(qr_store_txn *t); /* accepts NULL */
/* The LMDB transaction, for modules sharing it (BM25). Do not commit or abort it directly. */
MDB_txn *qr_store_txn_mdb(qr_store_txn *t);

/* ---- records ----
 * Strings returned by getters and iterators point into the LMDB map: valid
 * until the transaction ends or its next write. */
typedef struct qr_store_doc {
    uint64_t id;           /* out (ignored on put) */
    const char *path;
    const char *hash;      /* content hash, text */
    int64_t mtime_ns;
    uint64_t size;
    const char *title;     /* NULL -> "" */
    const char *format;    /* "txt", "md", "html", "pdf", "jsonl", "code", ... */
    const char *meta_json; /* JSON object text or NULL/"" */
    uint32_t n_chunks;     /* out */
} qr_store_doc;

typedef struct qr_store_chunk {
    uint64_t id;      /* out */
    uint64_t doc_id;  /* out */
    const char *text; /* UTF-8; stored as given (text_len bytes + NUL) */
    size_t text_len;
    uint64_t byte_start, byte_end; /* span in the source file */
    int32_t page;                  /* 1-based; 0 = none */
    const char *heading;           /* heading path "A > B"; NULL -> "" */
    uint32_t ordinal;              /* position in the document */
} qr_store_chunk;

/* Adds a document with n chunks, replacing (new chunk ids) any document with
 * the same path, which keeps its doc id. vectors: (n, dim) f32, or NULL (none
 * kept: a BM25-only store must pass NULL; a store with an embedder may add
 * them later with qr_store_put_vector). Writes the assigned doc id and the
 * first chunk id (chunks get first..first+n-1 in order) when not NULL. */
int qr_store_put_doc(qr_store_txn *t, const qr_store_doc *doc, const qr_store_chunk *chunks, size_t n,
                     const float *vectors, uint64_t *doc_id, uint64_t *first_chunk_id);
/* Deletes a document, its chunks and vectors. QR_ENOTFOUND if absent. */
int qr_store_delete_doc(qr_store_txn *t, uint64_t doc_id);
int qr_store_delete_path(qr_store_txn *t, const char *path);
int qr_store_get_doc(qr_store_txn *t, uint64_t doc_id, qr_store_doc *out);
int qr_store_doc_by_path(qr_store_txn *t, const char *path, qr_store_doc *out); /* QR_ENOTFOUND if absent */
/* Iterators: fn returns 0 to go on, non-zero to stop (that value is returned). */
typedef int (*qr_store_doc_fn)(const qr_store_doc *d, void *user);
typedef int (*qr_store_chunk_fn)(const qr_store_chunk *c, void *user);
int qr_store_iter_docs(qr_store_txn *t, qr_store_doc_fn fn, void *user);
/* Documents with id >= first_id, by id (paging: first_id = last id seen + 1). */
int qr_store_iter_docs_from(qr_store_txn *t, uint64_t first_id, qr_store_doc_fn fn, void *user);
int qr_store_get_chunk(qr_store_txn *t, uint64_t chunk_id, qr_store_chunk *out);
int qr_store_iter_chunks(qr_store_txn *t, qr_store_chunk_fn fn, void *user); /* by chunk id */
int qr_store_doc_chunks(qr_store_txn *t, uint64_t doc_id, qr_store_chunk_fn fn, void *user); /* by id */
/* Vectors (f32 in and out, converted to the store's dtype). */
int qr_store_put_vector(qr_store_txn *t, uint64_t chunk_id, const float *v);
int qr_store_get_vector(qr_store_txn *t, uint64_t chunk_id, float *out); /* QR_ENOTFOUND if none */

/* Ingest checkpoints: free-form keys and values. get: borrowed like above. */
int qr_store_ckpt_put(qr_store_txn *t, const char *key, const void *val, size_t len);
int qr_store_ckpt_get(qr_store_txn *t, const char *key, const void **val, size_t *len);
int qr_store_ckpt_del(qr_store_txn *t, const char *key); /* absent is fine */

typedef struct qr_store_counts {
    uint64_t docs, chunks, vectors, generation;
    int64_t faiss_vectors; /* held by the in-memory FAISS index (-1: none) */
} qr_store_counts;
int qr_store_counts_get(qr_store *s, qr_store_counts *out);

/* k-NN over the committed vectors: ids[i] chunk ids, scores[i] (inner product
 * or squared L2, as the manifest's metric), best first, *found <= k. A store
 * opened read-only (with LMDB's lock table) that another process has written
 * since brings its in-memory index up to date first, once that writer has
 * released write.lock (during a long ingest, dense hits lag its commits while
 * BM25 and records are read live).
 * QR_EINVAL when the store has no embedder, QR_ELIMIT when k > QR_VECINDEX_MAX_K. */
int qr_store_search(qr_store *s, const float *q, int k, uint64_t *ids, float *scores, int *found);

#endif
