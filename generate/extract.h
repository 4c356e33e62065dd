/* Extractive answers (no language model): the sentences of the top passages
 * that best match the question, each cited with its source number.
 *
 * 1. Sentences: each of the first max_sources passages is split into lines,
 *    each line into sentences by the chunker's splitter
 *    (qr_chunker_sentences, PCRE2). A label line (one word marked as an
 *    identifier by '-', '_', '=', ':' or inner capitals: a definition-list
 *    term such as "--gpus") joins the first sentence of the next line. Sentences shorter than 3 analyzed terms,
 *    longer than max_chars bytes, or ending in '?' (questions restate, they
 *    do not answer) are not candidates.
 * 2. Scoring: question and sentences go through the BM25 analyzer
 *    (index/analyzer.h: Lucene English); question words that carry no topic
 *    (how, what, do, can, I, ...) are dropped from the question as well, and
 *    a spelled-out number (zero .. twelve) also counts as its digits ("two
 *    GPUs" matches "--gres=gpu:2"). BM25 over the candidate sentences as the
 *    collection (k1 = 1.2, b = 0.3, idf = ln(1 + (N - df + 0.5) / (df +
 *    0.5))), times a coverage factor 0.5 + 0.5 * (question terms matched /
 *    question terms), times 1.5 when the sentence shows a command-line option
 *    ("-G", "--gres=gpu:2": a token starting with '-' or "--" and a letter)
 *    whose own terms include a question term (in technical documentation the
 *    sentence that shows the option says how), and a passage-rank prior
 *    1 / (1 + 0.05 * rank).
 * 3. Selection: best first, skipping sentences with no question term, those
 *    scoring under half of the best sentence (padding, not answer) and exact
 *    repeats (overlapping chunks share sentences), up to max_sentences
 *    and max_chars bytes; then put in document order (source number, offset)
 *    and written as "Sentence. [n] Next sentence. [m]".
 * Deterministic; ties keep the earlier sentence. */
#ifndef QR_GENERATE_EXTRACT_H
#define QR_GENERATE_EXTRACT_H

#include <stddef.h>

#include "generate/prompt.h"

typedef struct {
    size_t max_sources;   /* passages considered (default 5) */
    size_t max_sentences; /* default 4 */
    size_t max_chars;     /* answer length budget without citations (default 800) */
} qr_extract_opts;

void qr_extract_opts_default(qr_extract_opts *o);

typedef struct {
    size_t source;  /* 0-based index into the sources (cited as source + 1) */
    size_t off, len; /* byte span in that source's text */
    double score;
} qr_extract_sentence;

typedef struct {
    char *text;                  /* the answer with citations (malloc'd) */
    qr_extract_sentence *sents;  /* chosen sentences in answer order (malloc'd) */
    size_t n_sents;
    size_t n_used;               /* sources considered: numbers 1..n_used */
} qr_extract_result;

/* o may be NULL (defaults). With no matching sentence the text is "" and
 * n_sents 0 (the caller says nothing was found). */
int qr_extract_answer(const char *question, const qr_source *sources, size_t n, const qr_extract_opts *o,
                      qr_extract_result *out);
void qr_extract_result_free(qr_extract_result *r);

/* The question without its question words (how, what, do, does, can, I,
 * ...: the same list the sentence scorer ignores), the remaining words
 * (StandardTokenizer tokens) joined by spaces, a spelled-out number followed
 * by its digits ("two" -> "two 2"): a keyword query for BM25, where "How do
 * I" would otherwise match every FAQ entry. The question itself when nothing
 * would remain. *out malloc'd. */
int qr_question_keywords(const char *question, char **out);

#endif
