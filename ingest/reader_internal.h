/* Shared between the reader files (not a public header). */
#ifndef QR_INGEST_READER_INTERNAL_H
#define QR_INGEST_READER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "ingest/reader.h"

/* Builds one qr_doc: text, blocks and the heading stack. Errors are sticky
 * (err != 0 after an allocation failure); callers check once at finish. */
typedef struct {
    char *text;
    size_t len, cap;
    qr_block *blocks;
    size_t *path_off; /* per block: offset of its heading path in pool */
    size_t n, bcap;
    char *pool; /* heading paths, NUL-separated; offset 0 is "" */
    size_t pool_len, pool_cap;
    size_t cur_path;
    char *hs_text[6];
    int hs_level[6];
    int hs_n;
    size_t max_blocks;
    int page; /* the page of blocks added with page 0 (a notebook's cell); 0 by default */
    bool truncated;
    int err;
} qr_docb;

void qr_docb_init(qr_docb *b, size_t max_blocks);
void qr_docb_release(qr_docb *b);
/* Adds a block (text must be valid UTF-8). Leading/trailing whitespace is
 * trimmed (only trailing newlines and blank lines for code); empty blocks are
 * dropped. */
void qr_docb_block(qr_docb *b, qr_block_kind kind, int page, const char *s, size_t n);
/* Adds a heading block of level 1..6 and makes it the tail of the heading path. */
void qr_docb_heading(qr_docb *b, int level, const char *s, size_t n);
/* Moves the result into doc (text, blocks, pool); returns 0 or QR_ENOMEM. */
int qr_docb_finish(qr_docb *b, qr_doc *doc);

/* Result helpers. */
int qr_result_warn(qr_read_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int qr_result_skip(qr_read_result *r, qr_skip_kind k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends doc (moved) to r->docs. Out of memory: releases doc and fails with
 * QR_ENOMEM naming the file. */
int qr_result_add_doc(qr_read_result *r, qr_doc *doc, const char *name);
void qr_doc_release(qr_doc *d);

/* Collapses runs of whitespace (ASCII and U+00A0) to one space in place and
 * trims; returns the new length. */
size_t qr_collapse_ws(char *s, size_t n);

/* Format readers. data is the raw file content. */
int qr_read_html(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r);
int qr_read_pdf(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r);
int qr_read_docx(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r);
/* data: valid UTF-8 (decoded by the caller) */
int qr_read_ipynb(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r);

/* Valid UTF-8 copy of data for the line-based readers: \r\n and \r -> \n,
 * other C0 controls (but \t) and DEL -> space, a leading BOM dropped, lines
 * longer than max_line bytes broken; *n_broken counts the breaks. */
int qr_normalize_text(const char *data, size_t len, size_t max_line, char **out, size_t *out_len, size_t *n_broken);
/* Blank-line-separated paragraphs of t as paragraph blocks on page. */
void qr_text_blocks(qr_docb *b, const char *t, size_t len, int page);
/* Markdown blocks of normalised text t (headings extend b's heading path);
 * *title_out (when NULL) gets the front matter title or the first level-1
 * heading. */
void qr_md_blocks(qr_docb *b, const char *t, size_t len, char **title_out);
/* Source code blocks of normalised text t (a block starts at a non-indented
 * line after a blank line). */
void qr_code_blocks(qr_docb *b, const char *t, size_t len);

/* A growing NUL-terminated text buffer (the markup readers gather inline
 * text into it). Errors are sticky: err after an allocation failure, and
 * adds are then ignored. Zero-initialise; the owner frees s. */
typedef struct {
    char *s;
    size_t n, cap;
    bool err;
} qr_tbuf;

/* Appends n bytes of s (nothing when n is 0). */
void qr_tbuf_add(qr_tbuf *b, const char *s, size_t n);

/* libxml2 (reader_xml.c): qr_xml_init initialises its global state, once per
 * process, before threads parse; qr_xml_silence sends the calling thread's
 * generic errors nowhere (the readers report parse errors themselves). */
void qr_xml_init(void);
void qr_xml_silence(void);

/* Title fallback: base name of path (malloc'd). */
char *qr_base_title(const char *name);
/* d->title, when NULL, becomes qr_base_title(name). Returns 0, or QR_ENOMEM
 * naming name with d released. */
int qr_doc_default_title(qr_doc *d, const char *name);
/* The warnings a text-normalising reader ends with: n_broken lines broken at
 * o->max_line_bytes, blocks truncated at o->max_blocks. */
void qr_result_warn_limits(qr_read_result *r, const qr_reader_opts *o, size_t n_broken, bool truncated);

#endif
