/* Citations in generated answers: "[n]", "[n, m]" (also "[n,m]", "[n; m]")
 * and runs like "[n][m]", where n are source numbers 1..n_sources.
 *
 * Cleaning: in each bracket group the numbers that name no source are
 * removed; a group left empty is removed with the space before it (so
 * "text [9]." becomes "text." and "a [9] b" becomes "a b"), a group that lost
 * some numbers is rewritten as "[1, 3]", a valid group is kept verbatim.
 * Brackets that are not citations ("[see above]", "[1a]", "[]") are text.
 *
 * Streaming: qr_cite_stream cleans text as it arrives in pieces. It holds
 * back only an open "[..." that may still become a citation (at most
 * QR_CITE_MAX_GROUP bytes) and whitespace that may precede one, so what it
 * releases can be printed at once; the concatenation of all released pieces
 * equals qr_cite_clean() of the whole text. */
#ifndef QR_GENERATE_CITE_H
#define QR_GENERATE_CITE_H

#include <stddef.h>

#define QR_CITE_MAX_GROUP 64 /* longest bracket group recognised (bytes) */

typedef struct {
    size_t n_cited;    /* distinct valid source numbers, in order of first citation */
    int *cited;        /* malloc'd */
    size_t n_removed;  /* invalid numbers removed (counting repeats) */
    int *removed;      /* malloc'd, in text order */
} qr_cite_report;

void qr_cite_report_free(qr_cite_report *r);

typedef struct qr_cite_stream qr_cite_stream;

int qr_cite_stream_create(size_t n_sources, qr_cite_stream **out);
void qr_cite_stream_free(qr_cite_stream *s);
/* Feeds len bytes; *piece (borrowed until the next call) is the text now final. */
int qr_cite_stream_push(qr_cite_stream *s, const char *text, size_t len, const char **piece, size_t *piece_len);
/* End of text: releases what was held back. */
int qr_cite_stream_finish(qr_cite_stream *s, const char **piece, size_t *piece_len);
/* Cited / removed numbers so far (the report's arrays are copied; free it). */
int qr_cite_stream_report(const qr_cite_stream *s, qr_cite_report *out);

/* Whole-text cleaning: *out malloc'd, NUL-terminated; report may be NULL. */
int qr_cite_clean(const char *text, size_t len, size_t n_sources, char **out, qr_cite_report *report);

#endif
