/* BM25 inverted index in LMDB, scored exactly as Lucene 9's BM25Similarity
 * (Anserini's BEIR "flat" runs), over terms from index/analyzer.h.
 *
 * The caller owns the MDB_env (opened with mdb_env_set_maxdbs >= 32) and the
 * transactions; this module only opens its named sub-databases in them.
 *
 * On-disk format (version 1), three named sub-databases:
 *   "bm25_meta"  "version" -> u32 LE (1)
 *                "stats"   -> u64 LE x3: ndocs (chunks indexed), doc_count (chunks
 *                             with >= 1 term: Lucene's docCount), sum_ttf (sum of
 *                             document lengths: Lucene's sumTotalTermFreq)
 *   "bm25_post"  term bytes + 0x00 + u64 BE first id -> posting block:
 *                varint n, then n x (varint id delta from the previous id (the
 *                first from the key's id, so 0), varint tf, u8 norm)
 *                Blocks of one term sort together by first id and never overlap;
 *                a block holds at most QR_BM25_BLOCK postings.
 *   "bm25_docs"  u64 BE id -> varint dl, u8 norm, varint nterms, then nterms x
 *                (varint len, term bytes, varint tf): the forward index used to
 *                remove a chunk.
 * norm = Lucene SmallFloat.intToByte4(dl), dl = number of analyzed terms.
 *
 * Scoring (Lucene 9 BM25Similarity, all float like Lucene):
 *   idf    = (float) ln(1 + (docCount - df + 0.5) / (df + 0.5))
 *   avgdl  = (float) (sum_ttf / docCount)
 *   cache[n] = 1 / (k1 * ((1 - b) + b * byte4ToInt(n) / avgdl))
 *   score  = w - w / (1 + tf * cache[norm]),  w = boost * idf
 * A query term repeated q times gets boost q (Anserini's bag-of-words query);
 * a document's score is the double sum of its term scores, cast to float.
 *
 * Writes: qr_bm25_add() analyses the text and keeps the postings in memory;
 * qr_bm25_flush() merges them into LMDB, term by term, and MUST be called
 * before the caller commits the write transaction (qr_bm25_remove flushes
 * first itself). Searches never write: they see what txn holds, not pending adds. qr_bm25_discard() drops pending
 * postings after an aborted transaction. A handle is used by one thread at a
 * time; searches in other threads open their own handle (cheap). */
#ifndef QR_INDEX_BM25_H
#define QR_INDEX_BM25_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#define QR_BM25_VERSION 1
#define QR_BM25_BLOCK 128                       /* postings per block */
#define QR_BM25_MAX_TERM 255                    /* bytes; longer terms count in dl but are not indexed */
#define QR_BM25_MAX_TEXT ((size_t)64 << 20)     /* bytes of one chunk's text */
#define QR_BM25_MAX_QUERY ((size_t)1 << 20)     /* bytes of one query */
#define QR_BM25_MAX_QUERY_TERMS 8192            /* distinct terms in one query */
#define QR_BM25_MAX_K 1000000                   /* hits of one search */

typedef struct qr_bm25 qr_bm25;

typedef struct {
    float k1; /* default 0.9 */
    float b;  /* default 0.4 */
} qr_bm25_params;

typedef struct {
    uint64_t id;
    float score;
} qr_bm25_hit;

typedef struct {
    uint64_t ndocs;     /* chunks indexed */
    uint64_t doc_count; /* chunks with at least one term (Lucene docCount) */
    uint64_t sum_ttf;   /* total terms (Lucene sumTotalTermFreq) */
} qr_bm25_stats;

/* Defaults k1 = 0.9, b = 0.4. */
qr_bm25_params qr_bm25_default_params(void);

/* Opens (creating them in a write transaction) the sub-databases in txn's
 * environment and checks the format version. The DBI handles stay valid once
 * txn commits (LMDB rule); params NULL = defaults. *out freed with qr_bm25_close. */
int qr_bm25_open(MDB_txn *txn, const qr_bm25_params *params, qr_bm25 **out);
void qr_bm25_close(qr_bm25 *ix);

int qr_bm25_set_params(qr_bm25 *ix, const qr_bm25_params *params);

/* Indexes a chunk (pending until qr_bm25_flush). An id already indexed is
 * replaced. QR_ELIMIT when len > QR_BM25_MAX_TEXT. */
int qr_bm25_add(qr_bm25 *ix, MDB_txn *txn, uint64_t id, const char *text, size_t len);

/* Indexes a store chunk with its context: the document's title and the
 * chunk's heading path, then its text (analysed as title + "\n" + heading +
 * "\n" + text; NULL title/heading = ""). Words that say what a passage is
 * about (a man page's name, the section it sits in) then match even where
 * the passage does not repeat them, as Anserini's BEIR runs index title +
 * text. A title the reader made up is left out: one equal to the file name
 * (the last component of path, without a JSONL record's "#L<n>") or, for a
 * record path "FILE#L<n>", equal to "line <n>" (ingest/reader.h fallbacks).
 * The pipeline (ingest) and shard merge both index chunks this way, from
 * the document's store path and title. The total length counts against
 * QR_BM25_MAX_TEXT. */
int qr_bm25_add_chunk(qr_bm25 *ix, MDB_txn *txn, uint64_t id, const char *path, const char *title,
                      const char *heading, const char *text, size_t len);

/* Removes a chunk; QR_ENOTFOUND when id is not indexed. */
int qr_bm25_remove(qr_bm25 *ix, MDB_txn *txn, uint64_t id);

/* Merges pending postings and statistics into txn (a write transaction). */
int qr_bm25_flush(qr_bm25 *ix, MDB_txn *txn);

/* Drops pending postings (after the caller aborted the transaction). */
void qr_bm25_discard(qr_bm25 *ix);

/* Top k chunks for query (analysed like documents), sorted by score
 * descending, then id ascending; txn may be read-only. When the ids in the
 * index span at most max(8 * chunks, 2^20) values (capped at 2^26) scores
 * accumulate in an array (8 bytes per id in the span, kept by the handle),
 * else in a hash table. hits has room for k; *n = hits written
 * (chunks with no query term are not returned). */
int qr_bm25_search(qr_bm25 *ix, MDB_txn *txn, const char *query, size_t len, size_t k, qr_bm25_hit *hits,
                   size_t *n);

/* Collection statistics as committed in txn plus pending adds. */
int qr_bm25_get_stats(qr_bm25 *ix, MDB_txn *txn, qr_bm25_stats *out);

/* Lucene SmallFloat.intToByte4 / byte4ToInt (exposed for tests). */
uint8_t qr_bm25_int_to_byte4(uint32_t i);
uint32_t qr_bm25_byte4_to_int(uint8_t b);

#endif
