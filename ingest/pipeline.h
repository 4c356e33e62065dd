/* Ingest pipeline: files and directories in, a store (index/store.h) out.
 *
 * Walk. Each PATH is a file or a directory walked recursively. Each PATH is
 * made absolute and canonical (realpath); entries below a directory keep
 * their names under it (a symbolic link to a file is a document of its own,
 * named by the link), sorted by name. Hidden entries (a name starting
 * with '.') inside a walked directory are skipped unless include_hidden; a
 * hidden file named explicitly is always read. Symbolic links are followed;
 * a directory already visited (same device and inode) is not walked again,
 * so link loops end. Only regular files are read; files over max_file_bytes
 * are skipped with the reason "too-large".
 *
 * Documents. A file gives one store document whose path is the file path;
 * a JSONL file gives one document per record, named "PATH#L<line>".
 *
 * Filters. Entries below a walked directory pass the include / exclude globs
 * and the default excludes (.git, node_modules, *.min.js, *.css, lock files,
 * ...) of ingest/filter.h, which has the exact rule; an excluded directory is
 * not walked. The report counts what was left out (excluded_files,
 * excluded_dirs: a directory counts once, whatever it holds). Excluding a
 * file that is already in the store does not remove it (quire rm does).
 *
 * Change detection and checkpoints. Besides the store's own databases the
 * pipeline keeps one named LMDB database, "ingest_files": canonical file path
 * -> record (u64 size, i64 mtime_ns, u32 n_docs, fnv1a64 content hash text).
 * It is written in the SAME transaction as the file's documents, chunks,
 * BM25 postings and vectors, so a commit is the checkpoint: a file is either
 * fully in the store with its record, or not at all. A file whose size and
 * mtime match its record is unchanged without being read; when they differ
 * but the content hash matches, only the record is refreshed (unchanged).
 * A changed file has all its documents (and their BM25 postings) replaced.
 * A file is never split across transactions; several files share one
 * transaction up to about commit_chunks chunks. A run killed at any moment
 * and started again therefore ends with exactly the chunks of a clean run.
 *
 * Threads. `jobs` reader threads read and chunk files (in walk order
 * handed out dynamically); the calling thread embeds (batches of `batch`
 * chunks sorted by length, so padding is small) and commits, in walk order.
 *
 * Sharding (a Slurm job array: one shard store per task, joined by quire
 * merge, index/merge.h). With shard_count > 1 a run keeps only the walked
 * files whose shard is shard_index, where
 *     shard = splitmix64(fnv1a64(relative path)) mod shard_count
 * and the relative path is the file's path below the PATH argument it was
 * found under (a PATH naming a file: its base name). The assignment depends on
 * nothing but that name, so it is the same on every node and every rerun
 * (wherever the corpus is mounted), and a file added later never moves the
 * others: re-ingesting a grown corpus into the same shard stores keeps each
 * file in one shard. The balance is statistical (files, not bytes): with F
 * files a shard gets F/N +- about sqrt(F/N). --prune in a shard removes only
 * documents whose files are gone; files of other shards are never touched.
 *
 * Pruning (opts.prune) removes the documents of recorded files that no longer
 * exist below the paths of this run (a file system not mounted here leaves
 * the files outside those paths alone); with no path it checks the whole
 * store. A prune that would remove more than half of the store's documents
 * (by then including this run's additions) is refused with QR_ELIMIT unless
 * opts.force; the run's additions and updates stay committed.
 *
 * Stopping (opts.cancel, set by the CLI's SIGINT/SIGTERM handler, or the
 * progress callback returning non-zero) is checked while walking, before each
 * batch is embedded, between embedding batches and after each commit. The
 * batch being built is dropped (nothing of it is written), the store is
 * synced (vectors.faiss saved) and the run returns QR_ECANCELED with the
 * report of what was committed; prune is not done. Since a commit is the
 * checkpoint, running the same ingest again resumes: committed files are
 * unchanged and only the rest is read.
 *
 * A PATH under which the walk finds no file at all (an empty directory, or
 * only hidden entries) is a warning naming it: quire: warning: ingest: PATH:
 * no files to ingest (...).
 *
 * Chunking parameters and embedder identity are written to the manifest when
 * the store is created; a later run with different ones is refused with
 * QR_EMISMATCH naming both. */
#ifndef QR_INGEST_PIPELINE_H
#define QR_INGEST_PIPELINE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/chunker.h"
#include "ingest/reader.h"

struct qr_model;

typedef enum {
    QR_INGEST_ADDED = 0,
    QR_INGEST_UPDATED,
    QR_INGEST_UNCHANGED,
    QR_INGEST_REMOVED,
    QR_INGEST_SKIPPED,
} qr_ingest_status;

const char *qr_ingest_status_name(qr_ingest_status s); /* "added", ... */

typedef struct {
    char *path;            /* canonical path */
    qr_ingest_status status;
    char *reason;          /* skipped: why ("binary: ...") else NULL */
    const char *format;    /* static format name, or NULL */
    size_t docs, chunks;   /* documents and chunks written (added/updated) */
    uint64_t *doc_ids;     /* added/updated: the store id of each of those docs, else NULL */
    size_t n_warnings;     /* reader warnings (bad JSONL lines, truncations) */
    const char *encoding;  /* static: what the file was decoded from when not UTF-8 ("Windows-1252",
                              "UTF-16LE", ...; qr_read_result.encoding), else NULL */
    bool encoding_fallback; /* encoding was guessed (Windows-1252 fallback), not declared by a BOM */
} qr_ingest_file;

typedef struct qr_ingest_report {
    size_t added, updated, unchanged, removed, skipped;
    size_t files_seen;     /* files walked (not counting removals), this shard's only */
    size_t excluded_files, excluded_dirs; /* left out by the filters (ingest/filter.h) */
    size_t other_shards;   /* files walked but left to other shards */
    size_t docs, chunks;   /* documents and chunks written by this run */
    size_t store_docs, store_chunks; /* the store's totals after the run */
    size_t commits;
    uint64_t bytes_read;
    double walk_s, total_s, embed_s, commit_s;
    qr_ingest_file *files; /* one per file walked or removed, walk order */
    size_t n_files;
    size_t fallback_decoded; /* files read through the Windows-1252 fallback (encoding_fallback) */
    bool stopped;          /* the run was stopped (opts.cancel or the progress callback) before its end:
                              the report holds what was committed; the files not reached are not in it */
    size_t files_left;     /* stopped: files walked but not reached */
} qr_ingest_report;

void qr_ingest_report_free(qr_ingest_report *r); /* frees contents, accepts NULL */

typedef struct {
    size_t files_done;   /* files committed (or found unchanged / skipped) */
    size_t files_total;  /* files walked (this shard's) */
    size_t chunks_done;  /* chunks committed, plus those embedded for the batch being built */
    double elapsed_s;
    const char *current; /* path being committed or embedded; NULL on the final call */
} qr_ingest_progress;

/* Called after each commit, after each embedding batch (so a long embedding
 * still reports) and once at the end (current NULL). Return non-zero to stop
 * the run at the next safe point (as opts.cancel does). */
typedef int (*qr_ingest_progress_fn)(const qr_ingest_progress *p, void *user);

typedef struct {
    struct qr_model *embedder; /* NULL: BM25-only (word-approximated chunk tokens) */
    const char *embedder_path; /* the model path recorded in the manifest */
    qr_chunk_opts chunk;       /* tokens / overlap */
    qr_reader_opts reader;     /* max_file_bytes etc. */
    bool include_hidden;
    const char *const *include; /* globs (ingest/filter.h); n_include 0: every file */
    size_t n_include;
    const char *const *exclude;
    size_t n_exclude;
    bool default_excludes;      /* skip .git, node_modules, *.min.js, lock files, ... (default true) */
    bool prune;                /* remove documents whose files are gone, under the paths given (none: anywhere) */
    bool force;                /* prune even when that removes more than half of the store's documents
                                  (otherwise QR_ELIMIT, nothing pruned) */
    int jobs;                  /* reader threads; <= 0: 4 */
    int batch;                 /* chunks per embedding batch; <= 0: 32 */
    size_t commit_chunks;      /* chunks per transaction (files are never split); 0: 4096 */
    size_t map_size;           /* LMDB map for a new store (tests); 0: store default */
    const char *factory;       /* FAISS factory: a new store's; an existing store with another one is
                                  rebuilt with it (qr_store_set_factory). NULL: Flat / keep the store's */
    int shard_index, shard_count; /* shard_count > 1: only this shard's files (see Sharding) */
    qr_ingest_progress_fn progress; /* see qr_ingest_progress_fn; may be NULL */
    void *progress_user;
    const volatile sig_atomic_t *cancel; /* non-zero (a signal handler sets it): stop at the next safe
                                            point; may be NULL. See Stopping. */
} qr_ingest_opts;

void qr_ingest_opts_default(qr_ingest_opts *o);

/* Ingests paths into the store in dir (created when missing). On success
 * *report is filled (free with qr_ingest_report_free); on failure nothing is
 * written to *report, and what was committed before the failure stays.
 * Stopped (*opts->cancel set or the progress callback asked): QR_ECANCELED
 * and *report IS filled (report->stopped, what was committed; free it). */
int qr_ingest_run(const char *dir, const char *const *paths, size_t n_paths, const qr_ingest_opts *opts,
                  qr_ingest_report *report);

/* Removes the documents of each path (a file, a JSONL file's records, or
 * every file under a directory), given as on the command line (made absolute
 * and canonical as far as it still exists). A path that names nothing in the
 * store is reported as skipped with reason "not in store". */
int qr_ingest_remove(const char *dir, const char *const *paths, size_t n_paths, qr_ingest_report *report);

/* The shard (0..count-1) of a file by its relative path (see Sharding). */
int qr_ingest_shard_of(const char *rel_path, int count);
/* Deletes one document (its chunks, vectors and BM25 postings) by id from the
 * store in dir. When the document is a whole file (not a "PATH#L<n>" JSONL
 * record) the file's change record goes too, so a later ingest adds it again.
 * QR_ENOTFOUND for an unknown id. *n_chunks (may be NULL) gets its chunk
 * count. Used by the service's DELETE /v1/documents/{id}. */
int qr_ingest_delete_doc(const char *dir, uint64_t doc_id, size_t *n_chunks);

/* The report as the JSON object `quire ingest --json` prints (counts,
 * files_seen, docs, chunks, store_docs, store_chunks, commits, timings_s,
 * skipped_by_reason, fallback_decoded, files[], files_omitted; stopped and
 * files_left when stopped); new reference. files[] holds at most
 * QR_INGEST_JSON_MAX_FILES entries, in walk order: the files that are not
 * unchanged come first (added, updated, removed, skipped, each with its
 * reason, format, encoding), unchanged ones fill what room is left, and
 * files_omitted counts the rest (the counts are always complete). */
#define QR_INGEST_JSON_MAX_FILES 10000
int qr_ingest_report_to_json(const qr_ingest_report *r, json_t **out);
/* Same with another limit on files[] (tests). */
int qr_ingest_report_to_json_max(const qr_ingest_report *r, size_t max_files, json_t **out);

/* fnv1a64 of bytes as "fnv1a64:<16 hex>" into buf (>= 25 bytes). */
void qr_ingest_hash(const void *data, size_t len, char *buf, size_t buflen);

#endif
