/* Format detection, the document builder, and the text-like readers (plain
 * text, Markdown, JSONL, source code). HTML and PDF live in reader_html.c and
 * reader_pdf.c. Policy and limits: reader.h. */
#include "ingest/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "ingest/reader_internal.h"

void qr_reader_opts_default(qr_reader_opts *o)
{
    o->max_file_bytes = (size_t)256 << 20;
    o->max_blocks = 1000000;
    o->max_line_bytes = (size_t)1 << 20;
    o->max_record_bytes = (size_t)64 << 20;
    o->jsonl_text_field = "text";
    o->jsonl_title_field = "title";
}

const char *qr_format_name(qr_doc_format f)
{
    switch (f) {
    case QR_FMT_TEXT: return "text";
    case QR_FMT_MARKDOWN: return "markdown";
    case QR_FMT_HTML: return "html";
    case QR_FMT_PDF: return "pdf";
    case QR_FMT_JSONL: return "jsonl";
    case QR_FMT_CODE: return "code";
    case QR_FMT_DOCX: return "docx";
    case QR_FMT_IPYNB: return "ipynb";
    default: return "unknown";
    }
}

const char *qr_block_kind_name(qr_block_kind k)
{
    switch (k) {
    case QR_BLOCK_HEADING: return "heading";
    case QR_BLOCK_LIST_ITEM: return "list-item";
    case QR_BLOCK_TABLE_ROW: return "table-row";
    case QR_BLOCK_CODE: return "code";
    default: return "paragraph";
    }
}

const char *qr_skip_name(qr_skip_kind k)
{
    switch (k) {
    case QR_SKIP_NONE: return "none";
    case QR_SKIP_UNREADABLE: return "unreadable";
    case QR_SKIP_TOO_LARGE: return "too-large";
    case QR_SKIP_BINARY: return "binary";
    case QR_SKIP_ENCRYPTED: return "encrypted";
    case QR_SKIP_CORRUPT: return "corrupt";
    case QR_SKIP_EMPTY: return "empty";
    }
    return "?";
}

const char *qr_page_label(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    // a JSONL-style "#L<n>" suffix never follows a notebook: the extension ends the path
    return n >= 6 && !strcasecmp(path + n - 6, ".ipynb") ? "cell" : "page";
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid sequence at s (1..4), or 0 with *bad = number of bytes
 * forming the maximal invalid subpart (>= 1) to replace by one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) break;
        unsigned char x = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (x < l || x > h) break;
    }
    if (i == need + 1) return need + 1;
    *bad = i; // the lead plus the valid continuation prefix
    return 0;
}

int qr_utf8_lossy(const char *s, size_t len, char **out, size_t *out_len)
{
    // Worst case: every byte becomes U+FFFD (3 bytes).
    if (len > (SIZE_MAX - 1) / 3) return qr_fail(QR_ELIMIT, "utf8: input of %zu bytes too large", len);
    char *d = malloc(len * 3 + 1);
    if (!d) return qr_fail(QR_ENOMEM, "utf8: %zu bytes", len);
    size_t j = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t bad = 0, k = utf8_seq(u + i, len - i, &bad);
        if (k) {
            memcpy(d + j, u + i, k);
            j += k;
            i += k;
        } else {
            memcpy(d + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i += bad;
        }
    }
    d[j] = 0;
    char *shrunk = realloc(d, j + 1);
    *out = shrunk ? shrunk : d;
    if (out_len) *out_len = j;
    return 0;
}

/* Sanitised text for the line-based readers: valid UTF-8, \r\n and \r -> \n,
 * other C0 controls (but \t) and DEL -> space, a leading BOM dropped, lines
 * longer than max_line broken (at a character boundary). *n_broken counts the
 * breaks. */
int qr_normalize_text(const char *data, size_t len, size_t max_line, char **out, size_t *out_len,
                          size_t *n_broken)
{
    char *u;
    size_t n;
    int rc = qr_utf8_lossy(data, len, &u, &n);
    if (rc) return rc;
    size_t extra = max_line ? n / max_line + 1 : 0;
    char *d = malloc(n + extra + 1);
    if (!d) {
        free(u);
        return qr_fail(QR_ENOMEM, "reader: %zu bytes", n);
    }
    size_t i = 0, j = 0, col = 0, broken = 0;
    if (n >= 3 && memcmp(u, "\xEF\xBB\xBF", 3) == 0) i = 3;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == '\r') {
            if (i + 1 < n && u[i + 1] == '\n') continue;
            c = '\n';
        } else if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) {
            c = ' ';
        }
        if (c == '\n') {
            col = 0;
        } else if (max_line && col >= max_line && (c & 0xC0) != 0x80 && j + 1 < n + extra) {
            d[j++] = '\n';
            col = 0;
            broken++;
        }
        d[j++] = (char)c;
        if (c != '\n') col++;
    }
    d[j] = 0;
    free(u);
    *out = d;
    *out_len = j;
    *n_broken = broken;
    return 0;
}

size_t qr_collapse_ws(char *s, size_t n)
{
    size_t j = 0;
    bool space = true; // drops leading whitespace
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
        if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) { // U+00A0
            ws = true;
            i++;
        }
        if (ws) {
            if (!space) s[j++] = ' ';
            space = true;
        } else {
            s[j++] = (char)c;
            space = false;
        }
    }
    if (j && s[j - 1] == ' ') j--;
    s[j] = 0;
    return j;
}

/* ---------------------------------------------------------------- builder */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return QR_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static size_t pool_add(qr_docb *b, const char *s, size_t n)
{
    if (b->err) return 0;
    if (grow((void **)&b->pool, &b->pool_cap, b->pool_len + n + 1, 1)) {
        b->err = QR_ENOMEM;
        return 0;
    }
    size_t off = b->pool_len;
    memcpy(b->pool + off, s, n);
    b->pool[off + n] = 0;
    b->pool_len += n + 1;
    return off;
}

void qr_docb_init(qr_docb *b, size_t max_blocks)
{
    memset(b, 0, sizeof *b);
    b->max_blocks = max_blocks ? max_blocks : SIZE_MAX;
    pool_add(b, "", 0);
}

void qr_docb_release(qr_docb *b)
{
    free(b->text);
    free(b->blocks);
    free(b->path_off);
    free(b->pool);
    for (int i = 0; i < b->hs_n; i++) free(b->hs_text[i]);
    memset(b, 0, sizeof *b);
}

static void docb_add(qr_docb *b, qr_block_kind kind, int page, int level, const char *s, size_t n)
{
    if (b->err) return;
    if (b->n >= b->max_blocks) {
        b->truncated = true;
        return;
    }
    size_t sep = b->n ? 2 : 0;
    if (grow((void **)&b->text, &b->cap, b->len + sep + n + 1, 1) ||
        grow((void **)&b->blocks, &b->bcap, b->n + 1, sizeof *b->blocks)) {
        b->err = QR_ENOMEM;
        return;
    }
    // path_off grows with blocks (same capacity)
    size_t *po = realloc(b->path_off, b->bcap * sizeof *po);
    if (!po) {
        b->err = QR_ENOMEM;
        return;
    }
    b->path_off = po;
    memcpy(b->text + b->len, "\n\n", sep);
    b->len += sep;
    qr_block *blk = &b->blocks[b->n];
    blk->off = b->len;
    blk->len = n;
    blk->page = page ? page : b->page;
    blk->level = level;
    blk->kind = kind;
    blk->heading = NULL;
    b->path_off[b->n] = b->cur_path;
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = 0;
    b->n++;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void qr_docb_block(qr_docb *b, qr_block_kind kind, int page, const char *s, size_t n)
{
    if (kind == QR_BLOCK_CODE) {
        // keep indentation of the first line; drop leading blank lines
        size_t st = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') st = i + 1;
            else if (!is_ws((unsigned char)s[i])) break;
            if (i + 1 == n) st = n;
        }
        s += st;
        n -= st;
    } else {
        while (n && is_ws((unsigned char)*s)) s++, n--;
    }
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    if (!n) return;
    docb_add(b, kind, page, 0, s, n);
}

void qr_docb_heading(qr_docb *b, int level, const char *s, size_t n)
{
    while (n && is_ws((unsigned char)*s)) s++, n--;
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    if (!n || b->err) return;
    if (level < 1) level = 1;
    if (level > 6) level = 6;
    while (b->hs_n && b->hs_level[b->hs_n - 1] >= level) free(b->hs_text[--b->hs_n]);
    char *t = malloc(n + 1);
    if (!t) {
        b->err = QR_ENOMEM;
        return;
    }
    memcpy(t, s, n);
    t[n] = 0;
    b->hs_text[b->hs_n] = t;
    b->hs_level[b->hs_n++] = level;
    // the path string: "A > B > C"
    size_t total = 0;
    for (int i = 0; i < b->hs_n; i++) total += strlen(b->hs_text[i]) + 3;
    char *p = malloc(total + 1);
    if (!p) {
        b->err = QR_ENOMEM;
        return;
    }
    size_t k = 0;
    for (int i = 0; i < b->hs_n; i++) {
        if (i) memcpy(p + k, " > ", 3), k += 3;
        size_t l = strlen(b->hs_text[i]);
        memcpy(p + k, b->hs_text[i], l);
        k += l;
    }
    b->cur_path = pool_add(b, p, k);
    free(p);
    docb_add(b, QR_BLOCK_HEADING, 0, level, s, n);
}

int qr_docb_finish(qr_docb *b, qr_doc *doc)
{
    if (b->err) {
        qr_docb_release(b);
        return qr_fail(QR_ENOMEM, "reader: out of memory building a document");
    }
    if (!b->text) {
        b->text = calloc(1, 1);
        if (!b->text) return qr_fail(QR_ENOMEM, "reader: out of memory");
    }
    for (size_t i = 0; i < b->n; i++) b->blocks[i].heading = b->pool + b->path_off[i];
    doc->text = b->text;
    doc->text_len = b->len;
    doc->blocks = b->blocks;
    doc->n_blocks = b->n;
    doc->heading_pool = b->pool;
    b->text = NULL;
    b->blocks = NULL;
    b->pool = NULL;
    qr_docb_release(b);
    return 0;
}

/* ---------------------------------------------------------------- results */

static int vappend(char ***arr, size_t *n, const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    char *s = strdup(buf);
    char **a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!s || !a) {
        free(s);
        if (a) *arr = a;
        return QR_ENOMEM;
    }
    *arr = a;
    a[(*n)++] = s;
    return 0;
}

int qr_result_warn(qr_read_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vappend(&r->warnings, &r->n_warnings, fmt, ap);
    va_end(ap);
    return rc;
}

int qr_result_skip(qr_read_result *r, qr_skip_kind k, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(r->skip_reason);
    r->skip = k;
    r->skip_reason = strdup(buf);
    return r->skip_reason ? 0 : QR_ENOMEM;
}

int qr_result_add_doc(qr_read_result *r, qr_doc *doc, const char *name)
{
    qr_doc *d = realloc(r->docs, (r->n_docs + 1) * sizeof *d);
    if (!d) {
        qr_doc_release(doc);
        return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    }
    r->docs = d;
    d[r->n_docs++] = *doc;
    memset(doc, 0, sizeof *doc);
    return 0;
}

void qr_doc_release(qr_doc *d)
{
    if (!d) return;
    free(d->title);
    free(d->language);
    free(d->meta_json);
    free(d->text);
    free(d->blocks);
    free(d->heading_pool);
    memset(d, 0, sizeof *d);
}

void qr_read_result_free(qr_read_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_docs; i++) qr_doc_release(&r->docs[i]);
    free(r->docs);
    for (size_t i = 0; i < r->n_warnings; i++) free(r->warnings[i]);
    free(r->warnings);
    free(r->skip_reason);
    free(r);
}

void qr_tbuf_add(qr_tbuf *b, const char *s, size_t n)
{
    if (b->err || !n) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->s, c);
        if (!p) {
            b->err = true;
            return;
        }
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

char *qr_base_title(const char *name)
{
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    char *t;
    if (qr_utf8_lossy(b, strlen(b), &t, NULL)) return NULL;
    return t;
}

int qr_doc_default_title(qr_doc *d, const char *name)
{
    if (!d->title) d->title = qr_base_title(name);
    if (!d->title) {
        qr_doc_release(d);
        return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    }
    return 0;
}

void qr_result_warn_limits(qr_read_result *r, const qr_reader_opts *o, size_t n_broken, bool truncated)
{
    if (n_broken) qr_result_warn(r, "%zu lines longer than %zu bytes broken", n_broken, o->max_line_bytes);
    if (truncated) qr_result_warn(r, "truncated at %zu blocks", o->max_blocks);
}

/* ---------------------------------------------------------------- detection */

static const struct {
    const char *ext, *lang;
} code_exts[] = {
    {"c", "c"},           {"h", "c"},           {"cc", "cpp"},        {"cpp", "cpp"},      {"cxx", "cpp"},
    {"hpp", "cpp"},       {"hh", "cpp"},        {"hxx", "cpp"},       {"cu", "cuda"},      {"cuh", "cuda"},
    {"py", "python"},     {"pyi", "python"},    {"rs", "rust"},       {"go", "go"},        {"js", "javascript"},
    {"mjs", "javascript"}, {"cjs", "javascript"}, {"jsx", "javascript"}, {"ts", "typescript"},
    {"tsx", "typescript"}, {"java", "java"},    {"kt", "kotlin"},     {"scala", "scala"},  {"sh", "shell"},
    {"bash", "shell"},    {"zsh", "shell"},     {"rb", "ruby"},       {"pl", "perl"},      {"pm", "perl"},
    {"php", "php"},       {"cs", "csharp"},     {"swift", "swift"},   {"m", "objc"},       {"lua", "lua"},
    {"r", "r"},           {"jl", "julia"},      {"f90", "fortran"},   {"f", "fortran"},    {"f95", "fortran"},
    {"sql", "sql"},       {"hs", "haskell"},    {"ml", "ocaml"},      {"ex", "elixir"},    {"erl", "erlang"},
    {"clj", "clojure"},   {"zig", "zig"},       {"nim", "nim"},       {"dart", "dart"},    {"cmake", "cmake"},
    {"mk", "make"},       {"build", "meson"},   {"toml", "toml"},     {"yaml", "yaml"},    {"yml", "yaml"},
    {"ini", "ini"},       {"conf", "config"},   {"cfg", "config"},    {"json", "json"},    {"xml", "xml"},
    {"css", "css"},       {"scss", "css"},      {"tex", "latex"},     {"vim", "vim"},      {"el", "elisp"},
};

static bool ascii_prefix_ci(const char *s, size_t n, const char *p)
{
    size_t l = strlen(p);
    return n >= l && strncasecmp(s, p, l) == 0;
}

/* Known binary magic numbers (documents we cannot read). */
static bool binary_magic(const unsigned char *s, size_t n)
{
    static const struct {
        const char *m;
        size_t n;
    } magic[] = {
        {"\x89PNG", 4}, {"\xFF\xD8\xFF", 3}, {"GIF87a", 6}, {"GIF89a", 6}, {"PK\x03\x04", 4},
        {"\x1F\x8B", 2}, {"BZh", 3}, {"\xFD" "7zXZ", 5}, {"\x28\xB5\x2F\xFD", 4}, {"\x7F" "ELF", 4},
        {"\xCA\xFE\xBA\xBE", 4}, {"\xCF\xFA\xED\xFE", 4}, {"7z\xBC\xAF", 4}, {"Rar!", 4},
        {"\xD0\xCF\x11\xE0", 4}, {"OggS", 4}, {"fLaC", 4}, {"ID3", 3}, {"wOFF", 4}, {"wOF2", 4},
        {"GGUF", 4}, {"\x00\x00\x01\x00", 4}, {"II*\x00", 4}, {"MM\x00*", 4}, {"SQLite format 3", 15},
    };
    for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
        if (n >= magic[i].n && memcmp(s, magic[i].m, magic[i].n) == 0) return true;
    if (n >= 12 && memcmp(s, "RIFF", 4) == 0) return true; // WAV, AVI, WEBP
    return false;
}

/* NUL byte or > 10% control characters in the first 64 KiB. */
static bool looks_binary(const unsigned char *s, size_t n, const char **why)
{
    if (binary_magic(s, n)) {
        *why = "binary magic number";
        return true;
    }
    size_t m = n < 65536 ? n : 65536, ctl = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = s[i];
        if (c == 0) {
            *why = "NUL byte";
            return true;
        }
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1B) || c == 0x7F) ctl++;
    }
    if (m && ctl * 10 > m) {
        *why = "control characters";
        return true;
    }
    return false;
}

static const char *extension(const char *name)
{
    const char *b = strrchr(name, '/');
    b = b ? b + 1 : name;
    const char *d = strrchr(b, '.');
    return d && d != b ? d + 1 : "";
}

qr_doc_format qr_detect_format(const char *name, const void *data, size_t len, const char **language)
{
    const unsigned char *s = data;
    const char *why;
    if (language) *language = NULL;
    if (len >= 5 && memcmp(s, "%PDF-", 5) == 0) return QR_FMT_PDF;
    const char *e = extension(name ? name : "");
    // a zip archive by name (not "PK\3\4": libzip reports it corrupt)
    if (!strcasecmp(e, "docx") || !strcasecmp(e, "docm") || !strcasecmp(e, "dotx")) return QR_FMT_DOCX;
    if (looks_binary(s, len, &why)) return QR_FMT_UNKNOWN;
    if (!strcasecmp(e, "md") || !strcasecmp(e, "markdown") || !strcasecmp(e, "mdown") || !strcasecmp(e, "mkd"))
        return QR_FMT_MARKDOWN;
    if (!strcasecmp(e, "html") || !strcasecmp(e, "htm") || !strcasecmp(e, "xhtml") || !strcasecmp(e, "shtml"))
        return QR_FMT_HTML;
    if (!strcasecmp(e, "jsonl") || !strcasecmp(e, "ndjson")) return QR_FMT_JSONL;
    if (!strcasecmp(e, "ipynb")) return QR_FMT_IPYNB;
    if (!strcasecmp(e, "pdf")) return QR_FMT_PDF; // not %PDF-: poppler reports it corrupt
    if (!strcasecmp(e, "txt") || !strcasecmp(e, "text") || !strcasecmp(e, "rst") || !strcasecmp(e, "log"))
        return QR_FMT_TEXT;
    for (size_t i = 0; i < sizeof code_exts / sizeof code_exts[0]; i++)
        if (!strcasecmp(e, code_exts[i].ext)) {
            if (language) *language = code_exts[i].lang;
            return QR_FMT_CODE;
        }
    // Sniff: skip a BOM and leading whitespace, then look for HTML.
    size_t i = 0;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len && is_ws(s[i])) i++;
    const char *p = (const char *)s + i;
    size_t n = len - i;
    if (ascii_prefix_ci(p, n, "<!doctype html") || ascii_prefix_ci(p, n, "<html") ||
        ascii_prefix_ci(p, n, "<head") || ascii_prefix_ci(p, n, "<body"))
        return QR_FMT_HTML;
    if (n >= 2 && p[0] == '#' && p[1] == '!') {
        if (language) *language = "shell";
        return QR_FMT_CODE;
    }
    return QR_FMT_TEXT;
}

/* ---------------------------------------------------------------- lines */

typedef struct {
    const char *s; /* start of line */
    size_t n;      /* length without '\n' */
} line_t;

static bool next_line(const char *t, size_t len, size_t *pos, line_t *l)
{
    if (*pos >= len) return false;
    const char *s = t + *pos;
    const char *e = memchr(s, '\n', len - *pos);
    size_t n = e ? (size_t)(e - s) : len - *pos;
    l->s = s;
    l->n = n;
    *pos += n + (e ? 1 : 0);
    return true;
}

static bool blank(line_t l)
{
    for (size_t i = 0; i < l.n; i++)
        if (!is_ws((unsigned char)l.s[i])) return false;
    return true;
}

/* Growable scratch string. */
typedef struct {
    char *s;
    size_t n, cap;
    int err;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (grow((void **)&b->s, &b->cap, b->n + n + 1, 1)) {
        b->err = QR_ENOMEM;
        return;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* ---------------------------------------------------------------- plain text */

void qr_text_blocks(qr_docb *b, const char *t, size_t len, int page)
{
    size_t pos = 0, start = 0;
    bool in = false;
    line_t l;
    size_t end = 0;
    while (next_line(t, len, &pos, &l)) {
        if (blank(l)) {
            if (in) qr_docb_block(b, QR_BLOCK_PARAGRAPH, page, t + start, end - start);
            in = false;
        } else {
            if (!in) start = (size_t)(l.s - t);
            in = true;
            end = (size_t)(l.s - t) + l.n;
        }
    }
    if (in) qr_docb_block(b, QR_BLOCK_PARAGRAPH, page, t + start, end - start);
}

/* ---------------------------------------------------------------- code */

void qr_code_blocks(qr_docb *b, const char *t, size_t len)
{
    size_t pos = 0, start = 0, end = 0;
    bool in = false, after_blank = false;
    line_t l;
    while (next_line(t, len, &pos, &l)) {
        if (blank(l)) {
            after_blank = true;
            continue;
        }
        bool top = !is_ws((unsigned char)l.s[0]);
        if (in && after_blank && top) {
            qr_docb_block(b, QR_BLOCK_CODE, 0, t + start, end - start);
            in = false;
        }
        if (!in) start = (size_t)(l.s - t);
        in = true;
        after_blank = false;
        end = (size_t)(l.s - t) + l.n;
    }
    if (in) qr_docb_block(b, QR_BLOCK_CODE, 0, t + start, end - start);
}

/* ---------------------------------------------------------------- markdown */

static size_t indent_of(line_t l)
{
    size_t i = 0;
    while (i < l.n && l.s[i] == ' ') i++;
    return i;
}

/* ``` or ~~~ fence: returns its length (>= 3) and char, else 0. */
static size_t fence(line_t l, char *ch)
{
    size_t i = indent_of(l);
    if (i > 3 || i >= l.n) return 0;
    char c = l.s[i];
    if (c != '`' && c != '~') return 0;
    size_t k = i;
    while (k < l.n && l.s[k] == c) k++;
    if (k - i < 3) return 0;
    if (c == '`' && memchr(l.s + k, '`', l.n - k)) return 0; // info string may not hold a backtick
    *ch = c;
    return k - i;
}

static int atx(line_t l, const char **txt, size_t *tn)
{
    size_t i = indent_of(l);
    if (i > 3) return 0;
    size_t h = 0;
    while (i + h < l.n && l.s[i + h] == '#') h++;
    if (h < 1 || h > 6) return 0;
    size_t k = i + h;
    if (k < l.n && l.s[k] != ' ' && l.s[k] != '\t') return 0;
    const char *s = l.s + k;
    size_t n = l.n - k;
    while (n && is_ws((unsigned char)*s)) s++, n--;
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    // optional closing sequence of #s preceded by a space
    size_t m = n;
    while (m && s[m - 1] == '#') m--;
    if (m < n && (m == 0 || s[m - 1] == ' ' || s[m - 1] == '\t')) {
        n = m;
        while (n && is_ws((unsigned char)s[n - 1])) n--;
    }
    *txt = s;
    *tn = n;
    return (int)h;
}

/* "===" -> 1, "---" -> 2 (setext underline), else 0. */
static int setext(line_t l)
{
    size_t i = indent_of(l);
    if (i > 3 || i >= l.n) return 0;
    char c = l.s[i];
    if (c != '=' && c != '-') return 0;
    size_t k = i;
    while (k < l.n && l.s[k] == c) k++;
    while (k < l.n && is_ws((unsigned char)l.s[k])) k++;
    if (k != l.n) return 0;
    return c == '=' ? 1 : 2;
}

static bool thematic(line_t l)
{
    size_t i = indent_of(l);
    if (i > 3 || i >= l.n) return false;
    char c = l.s[i];
    if (c != '-' && c != '*' && c != '_') return false;
    size_t cnt = 0;
    for (size_t k = i; k < l.n; k++) {
        if (l.s[k] == c) cnt++;
        else if (!is_ws((unsigned char)l.s[k])) return false;
    }
    return cnt >= 3;
}

/* List item marker: returns offset of the item text, or 0. */
static size_t list_marker(line_t l)
{
    size_t i = indent_of(l);
    if (i >= l.n) return 0;
    size_t k = i;
    if (l.s[k] == '-' || l.s[k] == '*' || l.s[k] == '+') {
        k++;
    } else {
        size_t d = 0;
        while (k < l.n && l.s[k] >= '0' && l.s[k] <= '9' && d < 9) k++, d++;
        if (!d || k >= l.n || (l.s[k] != '.' && l.s[k] != ')')) return 0;
        k++;
    }
    if (k < l.n && l.s[k] != ' ' && l.s[k] != '\t') return 0;
    while (k < l.n && is_ws((unsigned char)l.s[k])) k++;
    return k;
}

static bool table_line(line_t l)
{
    size_t i = indent_of(l);
    return i < l.n && l.s[i] == '|';
}

/* Appends a pipe-table row as "a | b | c"; separator rows give nothing. */
static void table_row(qr_docb *b, line_t l)
{
    const char *s = l.s;
    size_t n = l.n;
    while (n && is_ws((unsigned char)*s)) s++, n--;
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    if (n && *s == '|') s++, n--;
    if (n && s[n - 1] == '|' && !(n >= 2 && s[n - 2] == '\\')) n--;
    bool sep = true;
    for (size_t i = 0; i < n; i++)
        if (!strchr("|-: \t", s[i])) sep = false;
    if (sep) return;
    sbuf row = {0};
    size_t st = 0;
    int cells = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || (s[i] == '|' && !(i && s[i - 1] == '\\'))) {
            const char *c = s + st;
            size_t cn = i - st;
            while (cn && is_ws((unsigned char)*c)) c++, cn--;
            while (cn && is_ws((unsigned char)c[cn - 1])) cn--;
            if (cells++) sb_add(&row, " | ", 3);
            sb_add(&row, c, cn);
            st = i + 1;
        }
    }
    if (row.err) b->err = row.err;
    else if (row.n) qr_docb_block(b, QR_BLOCK_TABLE_ROW, 0, row.s, row.n);
    free(row.s);
}

void qr_md_blocks(qr_docb *b, const char *t, size_t len, char **title_out)
{
    size_t pos = 0;
    line_t l;
    // Front matter: "---" on the first line up to a closing "---" or "...".
    if (len >= 4 && (memcmp(t, "---\n", 4) == 0)) {
        size_t p = 4;
        line_t fl;
        bool closed = false;
        char *title = NULL;
        while (next_line(t, len, &p, &fl)) {
            if ((fl.n >= 3 && (memcmp(fl.s, "---", 3) == 0 || memcmp(fl.s, "...", 3) == 0)) && blank((line_t){fl.s + 3, fl.n - 3})) {
                closed = true;
                break;
            }
            if (!title && fl.n > 6 && memcmp(fl.s, "title:", 6) == 0) {
                const char *v = fl.s + 6;
                size_t vn = fl.n - 6;
                while (vn && is_ws((unsigned char)*v)) v++, vn--;
                while (vn && is_ws((unsigned char)v[vn - 1])) vn--;
                if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) v++, vn -= 2;
                title = strndup(v, vn);
            }
        }
        if (closed) {
            pos = p;
            if (title && *title_out == NULL) *title_out = title;
            else free(title);
        } else {
            free(title);
        }
    }
    sbuf para = {0};
    qr_block_kind pkind = QR_BLOCK_PARAGRAPH;
    int nlines = 0;
    char fch = 0;
    size_t flen = 0;
    sbuf code = {0};
#define FLUSH()                                                                \
    do {                                                                       \
        if (para.n) qr_docb_block(b, pkind, 0, para.s, para.n);                \
        para.n = 0;                                                            \
        nlines = 0;                                                            \
        pkind = QR_BLOCK_PARAGRAPH;                                            \
    } while (0)
    while (next_line(t, len, &pos, &l)) {
        if (flen) { // inside a fence
            char c2;
            size_t f2 = fence(l, &c2);
            if (f2 >= flen && c2 == fch) {
                size_t k = indent_of(l) + f2;
                if (blank((line_t){l.s + k, l.n - k})) {
                    qr_docb_block(b, QR_BLOCK_CODE, 0, code.s ? code.s : "", code.n);
                    code.n = 0;
                    flen = 0;
                    continue;
                }
            }
            sb_add(&code, l.s, l.n);
            sb_add(&code, "\n", 1);
            continue;
        }
        if (blank(l)) {
            FLUSH();
            continue;
        }
        // strip blockquote markers
        line_t q = l;
        bool quoted = false;
        for (;;) {
            size_t i = indent_of(q);
            if (i <= 3 && i < q.n && q.s[i] == '>') {
                q.s += i + 1;
                q.n -= i + 1;
                if (q.n && q.s[0] == ' ') q.s++, q.n--;
                quoted = true;
            } else {
                break;
            }
        }
        if (quoted && blank(q)) {
            FLUSH();
            continue;
        }
        char fc;
        size_t fl = fence(q, &fc);
        if (fl) {
            FLUSH();
            flen = fl;
            fch = fc;
            code.n = 0;
            continue;
        }
        const char *ht;
        size_t hn;
        int h = atx(q, &ht, &hn);
        if (h) {
            FLUSH();
            qr_docb_heading(b, h, ht, hn);
            if (!*title_out && h == 1) *title_out = strndup(ht, hn);
            continue;
        }
        int se = setext(q);
        if (se && para.n && pkind == QR_BLOCK_PARAGRAPH && !quoted) {
            qr_docb_heading(b, se, para.s, para.n);
            if (!*title_out && se == 1) {
                size_t cn = para.n;
                while (cn && is_ws((unsigned char)para.s[cn - 1])) cn--;
                *title_out = strndup(para.s, cn);
            }
            para.n = 0;
            nlines = 0;
            continue;
        }
        if (thematic(q)) {
            FLUSH();
            continue;
        }
        if (table_line(q)) {
            FLUSH();
            table_row(b, q);
            continue;
        }
        size_t lm = list_marker(q);
        if (lm) {
            FLUSH();
            pkind = QR_BLOCK_LIST_ITEM;
            sb_add(&para, q.s + lm, q.n - lm);
            nlines = 1;
            continue;
        }
        // paragraph (or list continuation) line, leading spaces dropped
        size_t i = 0;
        while (i < q.n && is_ws((unsigned char)q.s[i])) i++;
        size_t e = q.n;
        while (e > i && is_ws((unsigned char)q.s[e - 1])) e--;
        if (nlines++) sb_add(&para, "\n", 1);
        sb_add(&para, q.s + i, e - i);
    }
    if (flen && code.n) qr_docb_block(b, QR_BLOCK_CODE, 0, code.s, code.n); // unclosed fence runs to the end
    FLUSH();
#undef FLUSH
    if (para.err || code.err) b->err = QR_ENOMEM;
    free(para.s);
    free(code.s);
}

/* ---------------------------------------------------------------- JSONL */

static int read_jsonl(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    const char *tf = o->jsonl_text_field ? o->jsonl_text_field : "text";
    const char *tif = o->jsonl_title_field ? o->jsonl_title_field : "title";
    size_t pos = 0, lineno = 0, bad = 0;
    line_t l;
    int rc = 0;
    while (next_line(data, len, &pos, &l)) {
        lineno++;
        if (blank(l)) continue;
        if (l.n > o->max_record_bytes) {
            bad++;
            if ((rc = qr_result_warn(r, "line %zu: %zu bytes over the record limit %zu", lineno, l.n,
                                     o->max_record_bytes)))
                return qr_fail(rc, "%s: out of memory", name);
            continue;
        }
        json_error_t je;
        // JSON_ALLOW_NUL: text may hold \u0000 (it becomes a space below).
        json_t *j = json_loadb(l.s, l.n, JSON_ALLOW_NUL, &je);
        const char *why = NULL;
        char whybuf[256];
        json_t *txt = NULL;
        if (!j) {
            snprintf(whybuf, sizeof whybuf, "invalid JSON: %s (column %d)", je.text, je.column);
            why = whybuf;
        } else if (!json_is_object(j)) {
            why = "not a JSON object";
        } else if (!(txt = json_object_get(j, tf)) || !json_is_string(txt)) {
            snprintf(whybuf, sizeof whybuf, "no string field \"%s\"", tf);
            why = whybuf;
        }
        if (why) {
            bad++;
            json_decref(j);
            if ((rc = qr_result_warn(r, "line %zu: %s", lineno, why))) return qr_fail(rc, "%s: out of memory", name);
            continue;
        }
        qr_doc d = {0};
        d.format = QR_FMT_JSONL;
        d.line_no = lineno;
        char *norm = NULL;
        size_t nn = 0, nb = 0;
        rc = qr_normalize_text(json_string_value(txt), json_string_length(txt), o->max_line_bytes, &norm, &nn, &nb);
        if (rc) {
            json_decref(j);
            return rc;
        }
        qr_docb b;
        qr_docb_init(&b, o->max_blocks);
        qr_text_blocks(&b, norm, nn, 0);
        free(norm);
        bool trunc = b.truncated;
        if ((rc = qr_docb_finish(&b, &d))) {
            json_decref(j);
            return rc;
        }
        json_t *ti = json_object_get(j, tif);
        if (ti && json_is_string(ti)) qr_utf8_lossy(json_string_value(ti), json_string_length(ti), &d.title, NULL);
        if (!d.title) {
            char tb[64];
            snprintf(tb, sizeof tb, "line %zu", lineno);
            d.title = strdup(tb);
        }
        json_t *meta = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (!strcmp(k, tf) || !strcmp(k, tif)) continue;
            if (json_is_object(v) || json_is_array(v)) continue;
            json_object_set(meta, k, v);
        }
        d.meta_json = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        json_decref(meta);
        json_decref(j);
        if (!d.title || !d.meta_json) {
            qr_doc_release(&d);
            return qr_fail(QR_ENOMEM, "%s: out of memory", name);
        }
        if (nb) qr_result_warn(r, "line %zu: %zu over-long lines broken", lineno, nb);
        if (trunc) qr_result_warn(r, "line %zu: truncated at %zu blocks", lineno, o->max_blocks);
        if (!d.n_blocks) {
            qr_result_warn(r, "line %zu: empty text", lineno);
            qr_doc_release(&d);
            continue;
        }
        if ((rc = qr_result_add_doc(r, &d, name)))
            return rc;
    }
    if (!r->n_docs) {
        if (bad) return qr_result_skip(r, QR_SKIP_CORRUPT, "no valid JSONL record (%zu bad lines)", bad);
        return qr_result_skip(r, QR_SKIP_EMPTY, "no text");
    }
    return 0;
}

/* ---------------------------------------------------------------- encodings */

static size_t put_utf8(char *d, uint32_t cp)
{
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Windows-1252 0x80..0x9F (0 where undefined: 81 8D 8F 90 9D). */
static const uint16_t cp1252_hi[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

/* UTF-16/32 code units (unit = 2 or 4 bytes, big- or little-endian) after a
 * BOM to UTF-8, prefixed with a UTF-8 BOM (see read_buffer). Unpaired
 * surrogates, values over U+10FFFF and a trailing partial unit become U+FFFD,
 * counted in *n_bad. */
static int decode_wide(const unsigned char *s, size_t len, int unit, bool be, char **out, size_t *out_len,
                       size_t *n_bad)
{
    if (len > (SIZE_MAX - 8) / 2) return qr_fail(QR_ELIMIT, "reader: input of %zu bytes too large", len);
    char *d = malloc(len * 2 + 8); // a 2-byte unit makes at most 3 bytes, a 4-byte pair at most 4
    if (!d) return qr_fail(QR_ENOMEM, "reader: %zu bytes", len);
    size_t j = put_utf8(d, 0xFEFF), bad = 0, i = 0;
#define UNIT(p) (unit == 2 ? (be ? (uint32_t)(p)[0] << 8 | (p)[1] : (uint32_t)(p)[1] << 8 | (p)[0])           \
                           : (be ? (uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (p)[3] \
                                 : (uint32_t)(p)[3] << 24 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[1] << 8 | (p)[0]))
    for (; i + (size_t)unit <= len; i += (size_t)unit) {
        uint32_t cp = UNIT(s + i);
        if (unit == 2 && cp >= 0xD800 && cp <= 0xDBFF && i + 4 <= len) {
            uint32_t lo = UNIT(s + i + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 2;
            }
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) bad++;
        j += put_utf8(d + j, cp);
    }
#undef UNIT
    if (i < len) {
        bad++;
        j += put_utf8(d + j, 0xFFFD);
    }
    d[j] = 0;
    *out = d;
    *out_len = j;
    *n_bad = bad;
    return 0;
}

/* Whether the invalid UTF-8 subpart s[i, i + n) reads plausibly as
 * Windows-1252: one byte (broken UTF-8 leaves a lead byte with the valid part
 * of its continuation, n > 1), defined in Windows-1252, and not a letter
 * (0xC0..0xFF) followed by, or a sign (0xA0..0xBF) preceded by, a byte of the
 * other range: that pair is the shape of a UTF-8 sequence gone wrong
 * ("\xED\xA0" is a surrogate's lead and continuation), while Windows-1252
 * text puts its accented letters beside ASCII ("caf\xE9", "\xE0 la"). */
static bool cp1252_plausible(const unsigned char *s, size_t len, size_t i, size_t n)
{
    if (n != 1) return false;
    unsigned char c = s[i];
    if (c >= 0x80 && c <= 0x9F) return cp1252_hi[c - 0x80] != 0;
    if (c >= 0xC0) return !(i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0xBF);
    return !(i > 0 && s[i - 1] >= 0xC0);
}

/* A "charset=" in the first 4 KiB (HTML that names its own encoding). */
static bool names_charset(const char *d, size_t len)
{
    size_t m = len < 4096 ? len : 4096;
    for (size_t i = 0; i + 8 <= m; i++)
        if (!strncasecmp(d + i, "charset=", 8)) return true;
    return false;
}

/* The input as UTF-8 (issue 13). A UTF-16/32 BOM is honoured (decoded here;
 * decoded text, *out, starts with a UTF-8 BOM). Valid UTF-8 is left as it is
 * (*out NULL). Input that is not valid UTF-8 is read as Windows-1252 when that
 * is plausible: every invalid sequence is (cp1252_plausible) and they
 * outnumber valid multi-byte sequences (text mostly in UTF-8 with a few stray
 * bytes stays UTF-8); a UTF-8 BOM rules the fallback out. Otherwise the
 * normalisers replace invalid sequences by U+FFFD. Binary content is left
 * alone (skipped later as binary).
 * Every fallback and every replaced sequence is a warning on the result, so
 * no letter is lost silently. HTML that declares a charset is left to
 * libxml2 unless it has a BOM. */
static int decode_input(const char *name, const char *data, size_t len, qr_read_result *r, char **out,
                        size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)data;
    *out = NULL;
    int unit = 0;
    bool be = false;
    const char *enc = NULL;
    size_t skip = 0;
    if (len >= 4 && !memcmp(s, "\xFF\xFE\0\0", 4)) unit = 4, be = false, enc = "UTF-32LE", skip = 4;
    else if (len >= 4 && !memcmp(s, "\0\0\xFE\xFF", 4)) unit = 4, be = true, enc = "UTF-32BE", skip = 4;
    else if (len >= 2 && !memcmp(s, "\xFF\xFE", 2)) unit = 2, be = false, enc = "UTF-16LE", skip = 2;
    else if (len >= 2 && !memcmp(s, "\xFE\xFF", 2)) unit = 2, be = true, enc = "UTF-16BE", skip = 2;
    int rc;
    if (unit) {
        size_t bad = 0;
        if ((rc = decode_wide(s + skip, len - skip, unit, be, out, out_len, &bad))) return rc;
        r->encoding = enc;
        if (bad && (rc = qr_result_warn(r, "%s (byte order mark): %zu invalid code units replaced by U+FFFD", enc,
                                        bad)))
            return qr_fail(rc, "%s: out of memory", name);
        return 0;
    }
    const char *why;
    if (looks_binary(s, len, &why)) return 0; // skipped as binary, not decoded
    size_t bad = 0, multi = 0, odd = 0;
    for (size_t i = 0; i < len;) {
        size_t b = 0, k = utf8_seq(s + i, len - i, &b);
        if (k) {
            multi += k > 1;
            i += k;
            continue;
        }
        bad++;
        if (!cp1252_plausible(s, len, i, b)) odd++;
        i += b;
    }
    if (!bad) return 0;
    bool html = qr_detect_format(name, data, len, NULL) == QR_FMT_HTML;
    if (html && names_charset(data, len)) return 0; // libxml2 decodes the declared charset
    bool bom8 = len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3); // declared UTF-8: no guessing
    if (odd || multi >= bad || bom8) {
        if ((rc = qr_result_warn(r, "not valid UTF-8: %zu invalid byte sequences replaced by U+FFFD%s", bad,
                                 bom8  ? " (UTF-8 byte order mark)"
                                 : odd ? " (not plausible as Windows-1252 either)"
                                       : " (mostly valid UTF-8)")))
            return qr_fail(rc, "%s: out of memory", name);
        return 0;
    }
    if (len > (SIZE_MAX - 4) / 3) return qr_fail(QR_ELIMIT, "reader: input of %zu bytes too large", len);
    char *d = malloc(len * 3 + 4);
    if (!d) return qr_fail(QR_ENOMEM, "reader: %zu bytes", len);
    size_t j = put_utf8(d, 0xFEFF);
    for (size_t i = 0; i < len; i++)
        j += put_utf8(d + j, s[i] < 0x80 ? s[i] : s[i] <= 0x9F ? cp1252_hi[s[i] - 0x80] : s[i]);
    d[j] = 0;
    *out = d;
    *out_len = j;
    r->encoding = "Windows-1252";
    r->encoding_fallback = true;
    if ((rc = qr_result_warn(r, "not valid UTF-8: decoded as Windows-1252 (fallback)")))
        return qr_fail(rc, "%s: out of memory", name);
    return 0;
}

/* ---------------------------------------------------------------- entry points */

static int read_buffer_utf8(const char *name, const char *data, size_t len, const qr_reader_opts *o,
                            qr_read_result *r);

/* Decodes (decode_input), then reads the UTF-8. PDF is binary: poppler
 * decodes it. */
static int read_buffer(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    if (len > o->max_file_bytes || (len >= 5 && !memcmp(data, "%PDF-", 5)))
        return read_buffer_utf8(name, data, len, o, r);
    char *dec = NULL;
    size_t dlen = 0;
    int rc = decode_input(name, data, len, r, &dec, &dlen);
    if (rc) return rc;
    if (dec) {
        // The BOM tells the HTML reader the text is UTF-8 whatever its <meta>
        // says (a BOM wins over it, as in HTML5); the other readers get none.
        size_t k = qr_detect_format(name, dec, dlen, NULL) == QR_FMT_HTML ? 0 : 3;
        rc = read_buffer_utf8(name, dec + k, dlen - k, o, r);
    } else {
        rc = read_buffer_utf8(name, data, len, o, r);
    }
    free(dec);
    return rc;
}

static int read_buffer_utf8(const char *name, const char *data, size_t len, const qr_reader_opts *o,
                            qr_read_result *r)
{
    const char *lang = NULL;
    const char *why = "";
    qr_doc_format f = qr_detect_format(name, data, len, &lang);
    r->format = f;
    if (len > o->max_file_bytes)
        return qr_result_skip(r, QR_SKIP_TOO_LARGE, "size %zu bytes over the limit %zu", len, o->max_file_bytes);
    if (f == QR_FMT_UNKNOWN) {
        looks_binary((const unsigned char *)data, len, &why);
        return qr_result_skip(r, QR_SKIP_BINARY, "binary content (%s)", why);
    }
    if (f == QR_FMT_PDF) return qr_read_pdf(name, data, len, o, r);
    if (f == QR_FMT_HTML) return qr_read_html(name, data, len, o, r);
    if (f == QR_FMT_DOCX) return qr_read_docx(name, data, len, o, r);
    if (f == QR_FMT_IPYNB) return qr_read_ipynb(name, data, len, o, r);
    char *t;
    size_t n, nb;
    int rc;
    if (f == QR_FMT_JSONL) {
        rc = read_jsonl(name, data, len, o, r);
        return rc < 0 && rc != QR_ENOMEM ? rc : rc;
    }
    if ((rc = qr_normalize_text(data, len, o->max_line_bytes, &t, &n, &nb))) return rc;
    qr_doc d = {0};
    d.format = f;
    qr_docb b;
    qr_docb_init(&b, o->max_blocks);
    if (f == QR_FMT_MARKDOWN) qr_md_blocks(&b, t, n, &d.title);
    else if (f == QR_FMT_CODE) qr_code_blocks(&b, t, n);
    else qr_text_blocks(&b, t, n, 0);
    free(t);
    bool trunc = b.truncated;
    if ((rc = qr_docb_finish(&b, &d))) {
        qr_doc_release(&d);
        return rc;
    }
    if (!d.title) d.title = qr_base_title(name);
    if (lang) d.language = strdup(lang);
    if (!d.title || (lang && !d.language)) {
        qr_doc_release(&d);
        return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    }
    qr_result_warn_limits(r, o, nb, trunc);
    if (!d.n_blocks) {
        qr_doc_release(&d);
        return qr_result_skip(r, QR_SKIP_EMPTY, "no text");
    }
    return qr_result_add_doc(r, &d, name);
}

static int finish(qr_read_result *r, int rc, qr_read_result **out)
{
    if (rc < 0) {
        qr_read_result_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int qr_read_memory(const char *name, const void *data, size_t len, const qr_reader_opts *opts, qr_read_result **out)
{
    if (!name || (!data && len) || !out) return qr_fail(QR_EINVAL, "qr_read_memory: NULL argument");
    qr_reader_opts o;
    if (opts) o = *opts;
    else qr_reader_opts_default(&o);
    qr_read_result *r = calloc(1, sizeof *r);
    if (!r) return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    int rc = read_buffer(name, data ? data : "", len, &o, r);
    return finish(r, rc, out);
}

int qr_read_file(const char *path, const qr_reader_opts *opts, qr_read_result **out)
{
    if (!path || !out) return qr_fail(QR_EINVAL, "qr_read_file: NULL argument");
    qr_reader_opts o;
    if (opts) o = *opts;
    else qr_reader_opts_default(&o);
    qr_read_result *r = calloc(1, sizeof *r);
    if (!r) return qr_fail(QR_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        rc = qr_result_skip(r, QR_SKIP_UNREADABLE, "cannot open: %s", strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) != 0) {
        rc = qr_result_skip(r, QR_SKIP_UNREADABLE, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = qr_result_skip(r, QR_SKIP_UNREADABLE, "not a regular file");
        goto done;
    }
    if ((unsigned long long)st.st_size > o.max_file_bytes) {
        rc = qr_result_skip(r, QR_SKIP_TOO_LARGE, "size %lld bytes over the limit %zu", (long long)st.st_size,
                            o.max_file_bytes);
        goto done;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        rc = qr_fail(QR_ENOMEM, "%s: %zu bytes", path, size);
        goto done;
    }
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            rc = qr_result_skip(r, QR_SKIP_UNREADABLE, "read error: %s", strerror(errno));
            goto done;
        }
        if (k == 0) break; // file shrank while reading
        got += (size_t)k;
    }
    rc = read_buffer(path, buf, got, &o, r);
done:
    if (fd >= 0) close(fd);
    free(buf);
    return finish(r, rc, out);
}
