/* Joining shard stores into one store: the second half of a Slurm array
 * ingest (each array task ingests its share of the files into a shard store,
 * ingest/pipeline.h "Sharding"; a dependent job runs `quire merge`).
 *
 * What is merged. Every document of every shard, with its chunks (text,
 * spans, pages, headings, ordinals), its metadata and its vectors, is added to
 * the output store, which gives it new doc and chunk ids (the output's own
 * counters: ids are never reused). Documents go in path order over all
 * shards, so the result does not depend on how the files were split. BM25
 * postings are rebuilt in the output from the chunk texts with the same
 * analyser, which yields exactly the postings and collection statistics
 * (chunks, docCount, sumTotalTermFreq) of a single ingest of the same files:
 * scores agree to the last bit. Vectors are copied from the shards' meta.lmdb
 * (the source of truth; vectors.faiss is not read) and added to the output's
 * FAISS index. The ingest pipeline's file records ("ingest_files") are copied
 * too, so a later `quire ingest` of the same files into the merged store sees
 * them unchanged.
 *
 * What must agree. All shards (and an existing output) must have the same
 * embedder (or none), vector dtype, metric and chunking (tokens, overlap,
 * tokenizer); otherwise nothing is written and QR_EMISMATCH names the two
 * stores and the field. An empty shard (no documents: a task that got no
 * files) is accepted whatever it says. The output takes the FAISS factory of
 * the first non-empty shard when it is created; an existing output keeps its own.
 *
 * Crash safety and reruns. The output is written in LMDB transactions of
 * about commit_chunks chunks (the commit is the commit point, as for ingest);
 * vectors.faiss is saved at the end (temporary file, fsync, rename). A
 * document already in the output with the same path and content hash (and
 * chunk count) is skipped, so a merge killed at any point and run again ends
 * with exactly the store of an uninterrupted run, and merging into a store
 * that already holds other documents adds to it. A document whose path is
 * in the output with other content, or in two shards, is replaced by the
 * later one in path/shard order (the second is logged as a warning).
 * Documents of the output that no shard has stay. */
#ifndef QR_INDEX_MERGE_H
#define QR_INDEX_MERGE_H

#include <stddef.h>
#include <stdint.h>

/* Called after each commit with the documents handled so far (of total);
 * return non-zero to stop, as a kill would: what is committed stays
 * (qr_merge_run then fails with QR_ECANCELED). */
typedef int (*qr_merge_progress_fn)(size_t docs_done, size_t docs_total, void *user);

typedef struct qr_merge_opts {
    size_t map_size;      /* LMDB map of a new output (tests); 0: store default */
    size_t commit_chunks; /* chunks per transaction; 0: 4096 */
    qr_merge_progress_fn progress; /* may be NULL */
    void *progress_user;
} qr_merge_opts;

typedef struct qr_merge_report {
    size_t shards;         /* shard stores read */
    size_t docs, chunks;   /* documents and chunks written by this run */
    size_t vectors;        /* vectors written */
    size_t unchanged;      /* documents already in the output with the same content */
    size_t replaced;       /* documents that replaced one of the same path */
    size_t commits;
    uint64_t out_docs, out_chunks, out_vectors; /* the output's totals at the end */
    double total_s;
} qr_merge_report;

/* Merges shard stores into out_dir (created when missing; NULL opts =
 * defaults). A shard equal to the output is refused (QR_EINVAL). *report is
 * written only on success; on failure what was committed stays (rerun). */
int qr_merge_run(const char *out_dir, const char *const *shards, size_t n_shards, const qr_merge_opts *opts,
                 qr_merge_report *report);

#endif
