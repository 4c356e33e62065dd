/* Chunker: a document's blocks (ingest/reader.h) into token-bounded chunks
 * that cite back exactly: chunk text == doc->text[off, off + len).
 *
 * Token counts. With a tokenizer, a chunk's n_tokens is the exact length of
 * qr_tokenize_ex(chunk text, QR_TOK_ADD_SPECIAL | QR_TOK_SPECIAL_AS_TEXT),
 * i.e. it includes the special tokens the embedder's post-processor adds
 * ([CLS] and [SEP] for BERT), so n_tokens <= max_tokens means the encoder sees
 * the whole chunk. Without a tokenizer (BM25-only stores) tokens are
 * approximated from words: each maximal run of letters/digits/underscore and
 * non-ASCII characters counts 1 per started 8 characters, every other
 * non-space character counts 1 (close to a WordPiece count on English prose).
 *
 * Cutting rules, in order:
 *  1. Hard boundaries: a chunk never spans two PDF pages and never crosses a
 *     top-level heading change, i.e. a heading block that is the root of its
 *     heading path (an h1 when a document has h1s; the shallowest heading
 *     otherwise); overlap never crosses a hard boundary either.
 *  2. Units: a heading or table row is one unit; a paragraph or list item is
 *     split into sentences; a code block into lines. Sentences end at [.!?]
 *     (plus closing quotes/brackets) followed by whitespace and an upper-case
 *     letter, digit or opening quote/bracket (PCRE2, Unicode properties), except
 *     after common abbreviations (e.g., i.e., Dr., Mr., Mrs., Ms., Prof., St.,
 *     vs., cf., Fig., No., al., approx., ...) and single capital initials;
 *     decimals ("3.14") never end a sentence since no space follows the point.
 *  3. Units are packed greedily. At a block (paragraph) boundary, when the next
 *     block does not fit whole and the chunk already holds at least half of
 *     max_tokens, the chunk ends there (paragraph before sentence); a heading
 *     likewise starts a new chunk once the current one is half full.
 *  4. Overlap: the next chunk starts with the previous chunk's trailing whole
 *     units whose tokens sum to at most overlap_tokens (none when its last unit
 *     alone is longer).
 *  5. Only a unit longer than a whole chunk is cut mid-sentence: at the last
 *     word boundary (else character boundary) that keeps the piece within
 *     max_tokens; consecutive pieces overlap by at most overlap_tokens.
 * Output is deterministic (no dependence on threads, time or addresses). */
#ifndef QR_INGEST_CHUNKER_H
#define QR_INGEST_CHUNKER_H

#include <stddef.h>

#include "ingest/reader.h"
#include "runtime/tokenizer/tokenizer.h"

typedef struct {
    int max_tokens;     /* default 256 (special tokens included); >= specials + 8 */
    int overlap_tokens; /* default 32; 0 <= overlap <= max_tokens / 2 */
} qr_chunk_opts;

void qr_chunk_opts_default(qr_chunk_opts *o);

typedef struct {
    size_t off, len;     /* byte span in doc->text */
    int page;            /* PDF page (1-based), 0 when not paged */
    const char *heading; /* heading path of the block the chunk starts in;
                            borrowed from the doc (lives as long as it) */
    size_t block;        /* index of that block */
    int n_tokens;        /* see above; <= max_tokens */
} qr_chunk;

typedef struct qr_chunker qr_chunker;

/* tok may be NULL (word approximation); it is borrowed and must outlive the
 * chunker. opts may be NULL (defaults). A chunker is read-only after creation
 * and may be shared between threads. */
int qr_chunker_create(const qr_tokenizer *tok, const qr_chunk_opts *opts, qr_chunker **out);
void qr_chunker_destroy(qr_chunker *c);

/* Chunks one document. *out is malloc'd (free() it; NULL when *n_out is 0). */
int qr_chunk_doc(const qr_chunker *c, const qr_doc *doc, qr_chunk **out, size_t *n_out);

/* Token count of text as chunks count it (special tokens included). */
int qr_chunker_count(const qr_chunker *c, const char *text, size_t len, int *n);

/* Sentence spans of text (byte offsets, trailing whitespace excluded), as the
 * chunker splits paragraphs: *spans is malloc'd pairs (start, end). */
int qr_chunker_sentences(const qr_chunker *c, const char *text, size_t len, size_t **spans, size_t *n_spans);

#endif
