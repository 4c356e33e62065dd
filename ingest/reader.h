/* Readers: a file (or a buffer) in, documents out.
 *
 * One call turns a path into zero or more documents (JSONL gives one per line,
 * every other format one per file). A document is its extracted text plus a
 * list of blocks; each block is a byte span of that text with its kind, page
 * and heading path, so a chunk cut from the text can always be cited back.
 *
 * Extracted text: the blocks' texts joined by "\n\n", in document order; a
 * block's span never includes the separators. Text is always valid UTF-8.
 * Encodings (not PDF): a byte order mark is honoured (UTF-8, UTF-16LE/BE,
 * UTF-32LE/BE; UTF-16/32 decoded, and for HTML the BOM wins over a <meta>
 * charset); input that is not valid UTF-8 is read as Windows-1252 when that is
 * plausible (every invalid sequence a single byte Windows-1252 defines, not in
 * the lead/continuation shape of broken UTF-8, and more of them than valid
 * multi-byte sequences), with the warning "not valid UTF-8: decoded as
 * Windows-1252 (fallback)" (qr_read_result.encoding names what a file was
 * decoded from, BOM or fallback, for the ingest report); otherwise (and HTML declaring a charset goes to
 * libxml2) each maximal invalid subsequence is replaced by one U+FFFD (the
 * WHATWG / Rust from_utf8_lossy rule, the same policy as the tokenizer) with a
 * warning counting them, so bad bytes never abort a read and no letter is
 * lost silently. Other C0 control characters (except \t and \n) and
 * DEL become spaces; \r\n and \r become \n.
 *
 * Formats (detected by extension, then by content sniffing; magic bytes win):
 *   text      paragraphs separated by blank lines;
 *   markdown  ATX (#) and setext (=== / ---) headings build the heading path;
 *             fenced code blocks (``` / ~~~) are code blocks; list items;
 *             pipe tables as rows (cells joined by " | ", separator rows dropped);
 *             "> " quote markers stripped; YAML front matter skipped (its
 *             "title:" used as the title). Inline markup is kept verbatim.
 *             Indented code blocks are not recognised (they read as paragraphs).
 *   html      libxml2's HTML parser (recover, no network, no entities loaded);
 *             script/style/noscript/nav/aside/form/svg/template/iframe/object/
 *             embed/canvas/button/select/math are dropped, so are header and
 *             footer outside article/section/main, elements with ARIA role
 *             navigation/banner/contentinfo/search/complementary and elements
 *             with the hidden attribute; <title> is the title; h1-h6 headings;
 *             p/li/pre/blockquote/dd/dt and other block elements become blocks;
 *             table rows become "cell | cell" rows; whitespace is collapsed
 *             (except in <pre>). A charset declared in a <meta> is honoured,
 *             otherwise UTF-8 is assumed.
 *   pdf       poppler-glib: one block per blank-line-separated paragraph of each
 *             page's text, page numbers 1-based; encrypted or damaged PDFs are
 *             skipped with the reason.
 *   jsonl     one document per non-empty line: a string text field (default
 *             "text"), an optional string title field (default "title"); the
 *             other scalar fields become the metadata JSON object (sorted keys);
 *             bad lines are reported as warnings with their line number.
 *   code      by extension (language recorded): one block per top-level
 *             block, i.e. a new block starts at a non-indented line that
 *             follows a blank line.
 *   docx      (.docx, .docm, .dotx) libzip + libxml2 over word/document.xml:
 *             paragraphs, headings (styles "heading 1".."heading 9" and
 *             outline levels; "Title" is level 1), numbered and bulleted
 *             paragraphs as list items, table rows as "cell | cell" rows
 *             (reader_docx.c has the details). A damaged archive, a missing
 *             word/document.xml or malformed XML is skipped as corrupt; an
 *             XML part whose uncompressed size is over max_file_bytes as
 *             too-large (a zip bomb stops at the limit).
 *   ipynb     Jupyter notebooks (nbformat 4 and 3): markdown cells as
 *             Markdown, code cells as code, raw cells as text, in order;
 *             outputs skipped. A block's page is its cell's number (1-based
 *             position in the notebook), so chunks never span cells and
 *             citations name the cell (qr_page_label). Not JSON / no cell list:
 *             skipped as corrupt; a malformed cell: a warning naming it.
 * Skipped files (skip != QR_SKIP_NONE, no documents): binary content (a NUL
 * byte or more than 10% control characters in the first 64 KiB, or a known
 * binary magic such as PNG, JPEG, GIF, ZIP, gzip, ELF), size over the limit,
 * unreadable (missing, permission, not a regular file), encrypted or corrupt
 * PDF, a document with no text.
 * Limits: file size (max_file_bytes), blocks per document (max_blocks: the rest
 * is dropped with a warning), line length (max_line_bytes: longer lines are
 * broken into pieces of at most that many bytes, with a warning), JSONL
 * record length (max_record_bytes: longer lines are reported and skipped). */
#ifndef QR_INGEST_READER_H
#define QR_INGEST_READER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    QR_FMT_UNKNOWN = 0,
    QR_FMT_TEXT,
    QR_FMT_MARKDOWN,
    QR_FMT_HTML,
    QR_FMT_PDF,
    QR_FMT_JSONL,
    QR_FMT_CODE,
    QR_FMT_DOCX,
    QR_FMT_IPYNB,
} qr_doc_format;

typedef enum {
    QR_BLOCK_PARAGRAPH = 0,
    QR_BLOCK_HEADING,
    QR_BLOCK_LIST_ITEM,
    QR_BLOCK_TABLE_ROW,
    QR_BLOCK_CODE,
} qr_block_kind;

typedef enum {
    QR_SKIP_NONE = 0,
    QR_SKIP_UNREADABLE, /* missing, permission denied, not a regular file, I/O error */
    QR_SKIP_TOO_LARGE,  /* size over max_file_bytes */
    QR_SKIP_BINARY,     /* NUL bytes, control characters, or a binary magic number */
    QR_SKIP_ENCRYPTED,  /* encrypted PDF */
    QR_SKIP_CORRUPT,    /* a PDF poppler cannot open, a JSONL file with no valid line, a damaged
                           .docx or .ipynb */
    QR_SKIP_EMPTY,      /* no text at all */
} qr_skip_kind;

typedef struct {
    size_t off, len;     /* byte span in qr_doc.text */
    int page;            /* 1-based PDF page or notebook cell; 0 when not paged */
    int level;           /* heading level 1..6 for headings, 0 otherwise */
    qr_block_kind kind;
    const char *heading; /* heading path "A > B" ("" when none); for a heading
                            block it ends with the heading itself. Owned by the doc. */
} qr_block;

typedef struct {
    qr_doc_format format;
    char *title;         /* never NULL: declared title, first heading, or file name */
    char *language;      /* source language ("c", "python", ...) for code, else NULL */
    char *meta_json;     /* JSONL: other scalar fields as a JSON object, else NULL */
    size_t line_no;      /* JSONL: 1-based line of the record, else 0 */
    int n_pages;         /* PDF page count, else 0 (notebooks: 0; blocks carry cell numbers) */
    char *text;          /* extracted UTF-8 text, NUL-terminated */
    size_t text_len;
    qr_block *blocks;
    size_t n_blocks;
    char *heading_pool;  /* storage behind blocks[].heading (internal) */
} qr_doc;

typedef struct {
    qr_doc_format format;  /* detected format (also set for most skipped files) */
    qr_skip_kind skip;     /* QR_SKIP_NONE when the file was read */
    char *skip_reason;     /* human reason when skipped, else NULL */
    qr_doc *docs;
    size_t n_docs;
    char **warnings;       /* e.g. "line 3: invalid JSON: ..." */
    size_t n_warnings;
    const char *encoding;  /* static name of what the input was decoded from: "UTF-16LE", "UTF-16BE",
                              "UTF-32LE", "UTF-32BE" (byte order mark) or "Windows-1252" (fallback);
                              NULL for UTF-8 (and HTML decoded by libxml2 from its declared charset) */
    bool encoding_fallback; /* the encoding was guessed (Windows-1252), not declared by a BOM */
} qr_read_result;

typedef struct {
    size_t max_file_bytes;   /* default 256 MiB */
    size_t max_blocks;       /* per document, default 1,000,000 */
    size_t max_line_bytes;   /* default 1 MiB */
    size_t max_record_bytes; /* JSONL line, default 64 MiB */
    const char *jsonl_text_field;  /* default "text" */
    const char *jsonl_title_field; /* default "title" */
} qr_reader_opts;

void qr_reader_opts_default(qr_reader_opts *o);

/* Reads a file. Returns 0 with *out set (caller frees with qr_read_result_free)
 * whether the file was read or skipped; a skip is an outcome, not an error.
 * Negative QR_E* only for bad arguments or allocation failure. opts may be NULL
 * (defaults). */
int qr_read_file(const char *path, const qr_reader_opts *opts, qr_read_result **out);

/* Same for a buffer already in memory; name supplies the extension and the
 * fallback title. data is borrowed for the call only. */
int qr_read_memory(const char *name, const void *data, size_t len, const qr_reader_opts *opts,
                   qr_read_result **out);

void qr_read_result_free(qr_read_result *r);

/* Format from name and content (the first bytes are enough); QR_FMT_UNKNOWN
 * for binary content. *language (may be NULL) gets a static language name for
 * source code. */
qr_doc_format qr_detect_format(const char *name, const void *data, size_t len, const char **language);

const char *qr_format_name(qr_doc_format f);     /* "text", "markdown", ... */
const char *qr_block_kind_name(qr_block_kind k); /* "paragraph", "heading", ... */
const char *qr_skip_name(qr_skip_kind k);        /* "binary", "too-large", ... */

/* What a chunk's page number counts in the document at path, for messages
 * and citations: "cell" for a notebook (.ipynb), else "page". */
const char *qr_page_label(const char *path);

/* Copies len bytes into a malloc'd NUL-terminated string, replacing each maximal
 * invalid UTF-8 subsequence with U+FFFD. *out_len (may be NULL) gets its length. */
int qr_utf8_lossy(const char *s, size_t len, char **out, size_t *out_len);

#endif
