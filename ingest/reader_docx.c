/* Word (.docx) reader: libzip opens the archive (from memory), libxml2 parses
 * word/document.xml (and word/styles.xml, when present, to know which styles
 * are headings and lists). Only the main document part is read: headers,
 * footers, footnotes, comments and embedded objects are not.
 *
 * What becomes what (reader.h, "docx"):
 *   paragraph (w:p)      a paragraph block; runs' w:t text, w:tab -> tab,
 *                        w:br / w:cr -> newline, w:noBreakHyphen -> '-';
 *                        deleted text (w:del, w:moveFrom, w:delText), field
 *                        codes (w:instrText) and mc:Fallback copies are left out;
 *   heading              style "heading N" (N 1..9, by the style's name in
 *                        styles.xml, else a style id HeadingN) or an outline
 *                        level (w:outlineLvl N-1, on the paragraph or its
 *                        style) -> heading level N (7..9 read as 6, as
 *                        qr_docb_heading clamps); style "Title" -> level 1.
 *                        The first level-1 heading is the document title;
 *   list item            a paragraph with numbering (w:numPr with a numId
 *                        other than 0, on the paragraph or its style chain)
 *                        -> a list-item block of its text (no marker, as the
 *                        Markdown reader gives list items);
 *   table row (w:tr)     the texts of its cells (w:tc, their paragraphs joined
 *                        by spaces, nested tables flattened) joined by " | ",
 *                        empty cells dropped, as the HTML reader does.
 * Limits and failures (all per-file skips; the run goes on): a buffer that is
 * not a zip archive, or a damaged one (bad CRC, bad deflate data) -> corrupt;
 * no word/document.xml -> corrupt; an encrypted entry -> encrypted; an XML
 * part whose uncompressed size is over max_file_bytes -> too-large naming the
 * part and the limit (checked against the archive's declared size and again
 * while inflating, so a zip bomb that lies about its size stops at the
 * limit); XML that is not well formed -> corrupt with libxml2's line and
 * message; a part with a DOCTYPE -> corrupt (OOXML has none, and its
 * entities could expand exponentially). No entity is substituted and no
 * network or DTD is loaded. A damaged styles.xml is a warning: the style ids
 * alone then decide headings and lists. */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>

#include "common/error.h"
#include "ingest/reader_internal.h"

#define W_NS "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
#define W_NS_STRICT "http://purl.oclc.org/ooxml/wordprocessingml/main"
#define MC_NS "http://schemas.openxmlformats.org/markup-compatibility/2006"

/* ---------------------------------------------------------------- zip */

/* zip_entry outcomes (a QR_E* below 0 is an allocation failure). */
enum { ENTRY_ABSENT = 0, ENTRY_READ = 1, ENTRY_SKIPPED = 2 };

/* Reads entry path of z into *out (NUL-terminated): ENTRY_READ; ENTRY_ABSENT
 * when there is no such entry (nothing recorded); ENTRY_SKIPPED when the file
 * was skipped (the reason recorded on r). */
static int zip_entry(zip_t *z, const char *path, size_t limit, qr_read_result *r, char **out, size_t *out_len)
{
    *out = NULL;
    if (limit > SIZE_MAX / 2) limit = SIZE_MAX / 2; // limit + 1 below must not wrap
    zip_int64_t idx = zip_name_locate(z, path, 0);
    if (idx < 0) return ENTRY_ABSENT;
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z, (zip_uint64_t)idx, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) && st.size > limit) {
        int rc = qr_result_skip(r, QR_SKIP_TOO_LARGE,
                                "%s: uncompressed size %llu bytes over the limit %zu (max-file-bytes)", path,
                                (unsigned long long)st.size, limit);
        return rc ? rc : ENTRY_SKIPPED;
    }
    zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    if (!f) {
        zip_error_t *e = zip_get_error(z);
        int ze = zip_error_code_zip(e), rc;
        if (ze == ZIP_ER_NOPASSWD || ze == ZIP_ER_WRONGPASSWD || ze == ZIP_ER_ENCRNOTSUPP)
            rc = qr_result_skip(r, QR_SKIP_ENCRYPTED, "%s: encrypted (%s)", path, zip_error_strerror(e));
        else
            rc = qr_result_skip(r, QR_SKIP_CORRUPT, "%s: cannot be opened (%s)", path, zip_error_strerror(e));
        return rc ? rc : ENTRY_SKIPPED;
    }
    // Read at most limit + 1 bytes: the declared size may lie (a zip bomb).
    size_t cap = st.valid & ZIP_STAT_SIZE ? (size_t)st.size + 1 : 65536, n = 0;
    if (cap > limit + 1) cap = limit + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        zip_fclose(f);
        return qr_fail(QR_ENOMEM, "%s: %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) {
            if (cap > limit) break;
            size_t c = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *p = realloc(buf, c + 1);
            if (!p) {
                free(buf);
                zip_fclose(f);
                return qr_fail(QR_ENOMEM, "%s: %zu bytes", path, c);
            }
            buf = p;
            cap = c;
        }
        zip_int64_t k = zip_fread(f, buf + n, cap - n);
        if (k < 0) {
            int rc = qr_result_skip(r, QR_SKIP_CORRUPT, "%s: damaged archive entry (%s)", path,
                                    zip_error_strerror(zip_file_get_error(f)));
            free(buf);
            zip_fclose(f);
            return rc ? rc : ENTRY_SKIPPED;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    zip_fclose(f);
    if (n > limit) {
        free(buf);
        int rc = qr_result_skip(r, QR_SKIP_TOO_LARGE,
                                "%s: uncompressed size over the limit %zu bytes (max-file-bytes; the archive "
                                "declares %llu)",
                                path, limit, (unsigned long long)st.size);
        return rc ? rc : ENTRY_SKIPPED;
    }
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return ENTRY_READ;
}

/* ---------------------------------------------------------------- XML */

/* Parses an XML part. NULL when it is not well formed: with fatal a corrupt
 * skip is recorded, else a warning; *rc is 0 or an allocation failure. */
static xmlDocPtr parse_part(const char *part, const char *data, size_t len, bool fatal, qr_read_result *r, int *rc)
{
    *rc = 0;
    if (len > INT_MAX) { // max_file_bytes above 2 GiB
        *rc = qr_result_skip(r, QR_SKIP_TOO_LARGE, "%s: %zu bytes over the XML parser limit", part, len);
        return NULL;
    }
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        *rc = qr_fail(QR_ENOMEM, "%s: out of memory", part);
        return NULL;
    }
    qr_xml_silence();
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, data, (int)len, part, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc || !ctxt->wellFormed) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[160] = "not well-formed";
        if (e && e->message) {
            snprintf(msg, sizeof msg, "%s", e->message);
            size_t m = strlen(msg);
            while (m && (msg[m - 1] == '\n' || msg[m - 1] == ' ')) msg[--m] = 0;
        }
        if (fatal)
            *rc = qr_result_skip(r, QR_SKIP_CORRUPT, "%s: not well-formed XML (line %d: %s)", part,
                                 e ? e->line : 0, msg);
        else
            *rc = qr_result_warn(r, "%s: not well-formed XML (line %d: %s); styles read from their ids", part,
                                 e ? e->line : 0, msg);
        if (doc) xmlFreeDoc(doc);
        doc = NULL;
    } else if (doc->intSubset || doc->extSubset) {
        // OOXML parts never declare a DTD; one that does could define entities
        // that expand exponentially when the text is read (billion laughs).
        if (fatal) *rc = qr_result_skip(r, QR_SKIP_CORRUPT, "%s: has a DOCTYPE (not allowed in OOXML)", part);
        else *rc = qr_result_warn(r, "%s: has a DOCTYPE (not allowed in OOXML); styles read from their ids", part);
        xmlFreeDoc(doc);
        doc = NULL;
    }
    xmlFreeParserCtxt(ctxt);
    return doc;
}

static bool is_w(const xmlNode *n, const char *local)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           (!strcmp((const char *)n->ns->href, W_NS) || !strcmp((const char *)n->ns->href, W_NS_STRICT)) &&
           !strcmp((const char *)n->name, local);
}

static const xmlNode *w_child(const xmlNode *n, const char *local)
{
    for (const xmlNode *k = n ? n->children : NULL; k; k = k->next)
        if (is_w(k, local)) return k;
    return NULL;
}

/* w:val (namespaced, or plain in files that omit the prefix); caller frees. */
static char *w_val(const xmlNode *n)
{
    if (!n) return NULL;
    xmlChar *v = xmlGetNsProp(n, (const xmlChar *)"val", (const xmlChar *)W_NS);
    if (!v) v = xmlGetNsProp(n, (const xmlChar *)"val", (const xmlChar *)W_NS_STRICT);
    if (!v) v = xmlGetProp(n, (const xmlChar *)"val");
    if (!v) return NULL;
    char *s = strdup((const char *)v);
    xmlFree(v);
    return s;
}

/* ---------------------------------------------------------------- styles */

typedef struct {
    char *id, *based_on;
    int heading; /* 1..9, 0: not a heading, -1: Title */
    int list;    /* 1: numbered, 0: not, -1: numbering removed (numId 0) */
} style;

typedef struct {
    style *v;
    size_t n;
} styles;

/* Heading level from a style name ("heading 2", "Title") or id ("Heading2"). */
static int heading_of_name(const char *s)
{
    if (!s) return 0;
    if (!strcasecmp(s, "title")) return -1;
    size_t l = strlen(s);
    if (l >= 8 && !strncasecmp(s, "heading", 7)) {
        const char *d = s + 7;
        if (*d == ' ') d++;
        if (d[0] >= '1' && d[0] <= '9' && d[1] == 0) return d[0] - '0';
    }
    return 0;
}

/* outlineLvl 0..8 -> 1..9; 9 is "body text". */
static int outline_of(const xmlNode *ppr)
{
    char *v = w_val(w_child(ppr, "outlineLvl"));
    int lvl = 0;
    if (v && v[0] >= '0' && v[0] <= '8' && v[1] == 0) lvl = v[0] - '0' + 1;
    free(v);
    return lvl;
}

/* 1: numbering applies, -1: numId 0 (numbering explicitly off), 0: none. */
static int numbering_of(const xmlNode *ppr)
{
    const xmlNode *np = w_child(ppr, "numPr");
    if (!np) return 0;
    char *v = w_val(w_child(np, "numId"));
    int on = v ? (strcmp(v, "0") ? 1 : -1) : 1; // numPr with only ilvl inherits numId: still a list
    free(v);
    return on;
}

static int load_styles(xmlDocPtr doc, styles *st)
{
    const xmlNode *root = xmlDocGetRootElement(doc);
    size_t cap = 0;
    for (const xmlNode *s = root ? root->children : NULL; s; s = s->next) {
        if (!is_w(s, "style")) continue;
        xmlChar *id = xmlGetNsProp(s, (const xmlChar *)"styleId", s->ns->href);
        if (!id) continue;
        if (st->n == cap) {
            cap = cap ? cap * 2 : 64;
            style *p = realloc(st->v, cap * sizeof *p);
            if (!p) {
                xmlFree(id);
                return QR_ENOMEM;
            }
            st->v = p;
        }
        style *y = &st->v[st->n++];
        memset(y, 0, sizeof *y);
        y->id = strdup((const char *)id);
        xmlFree(id);
        char *name = w_val(w_child(s, "name"));
        y->based_on = w_val(w_child(s, "basedOn"));
        y->heading = heading_of_name(name);
        free(name);
        const xmlNode *ppr = w_child(s, "pPr");
        if (!y->heading) y->heading = outline_of(ppr);
        y->list = numbering_of(ppr);
        if (!y->id) return QR_ENOMEM;
    }
    return 0;
}

static void free_styles(styles *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->v[i].id);
        free(st->v[i].based_on);
    }
    free(st->v);
}

static const style *find_style(const styles *st, const char *id)
{
    for (size_t i = 0; id && i < st->n; i++)
        if (!strcmp(st->v[i].id, id)) return &st->v[i];
    return NULL;
}

/* A paragraph style's heading level and numbering, following basedOn (at
 * most 16 steps: a cycle in a damaged file ends there). Without styles.xml
 * the style id alone decides (Heading1..9, Title, List*). */
static void style_info(const styles *st, const char *id, int *heading, int *list)
{
    *heading = 0;
    *list = 0;
    const style *y = find_style(st, id);
    if (!y) {
        *heading = heading_of_name(id);
        if (id && !strncasecmp(id, "List", 4) && strncasecmp(id, "ListParagraph", 13)) *list = 1;
        return;
    }
    for (int d = 0; y && d < 16; d++, y = find_style(st, y->based_on)) {
        if (!*heading) *heading = y->heading;
        if (!*list) *list = y->list;
    }
}

/* ---------------------------------------------------------------- document */

typedef struct {
    qr_docb *b;
    const styles *st;
    char *title;
    bool oom;
} dctx;

/* Text of the runs below n (recursively, through hyperlinks, smart tags,
 * fields, insertions, content controls and text boxes). */
static void gather(qr_tbuf *t, const xmlNode *n)
{
    for (const xmlNode *k = n; k; k = k->next) {
        if (k->type != XML_ELEMENT_NODE) continue;
        if (k->ns && k->ns->href && !strcmp((const char *)k->ns->href, MC_NS) &&
            !strcmp((const char *)k->name, "Fallback"))
            continue; // the same content as mc:Choice, for older readers
        if (is_w(k, "t")) {
            xmlChar *c = xmlNodeGetContent(k);
            if (c) qr_tbuf_add(t, (const char *)c, strlen((const char *)c));
            else t->err = true;
            xmlFree(c);
            continue;
        }
        if (is_w(k, "tab") || is_w(k, "ptab")) qr_tbuf_add(t, "\t", 1);
        else if (is_w(k, "br") || is_w(k, "cr")) qr_tbuf_add(t, "\n", 1);
        else if (is_w(k, "noBreakHyphen")) qr_tbuf_add(t, "-", 1);
        if (is_w(k, "del") || is_w(k, "moveFrom") || is_w(k, "delText") || is_w(k, "instrText") ||
            is_w(k, "pPr") || is_w(k, "rPr"))
            continue;
        if (is_w(k, "p") && t->n && t->s[t->n - 1] != '\n') qr_tbuf_add(t, "\n", 1); // a text box's paragraph
        gather(t, k->children);
        if (is_w(k, "tbl") && t->n && t->s[t->n - 1] != '\n') qr_tbuf_add(t, "\n", 1);
    }
}

static void paragraph(dctx *c, const xmlNode *p)
{
    const xmlNode *ppr = w_child(p, "pPr");
    char *sid = w_val(w_child(ppr, "pStyle"));
    int heading, list;
    style_info(c->st, sid, &heading, &list);
    free(sid);
    int ol = outline_of(ppr);
    if (ol) heading = ol;
    int num = numbering_of(ppr);
    if (num) list = num;
    qr_tbuf t = {0};
    gather(&t, p->children);
    if (t.err) c->oom = true;
    if (t.s) {
        if (heading) {
            // a heading is one line: breaks inside it become spaces
            size_t n = qr_collapse_ws(t.s, t.n);
            int lvl = heading < 0 ? 1 : heading;
            if (lvl == 1 && !c->title && n) c->title = strndup(t.s, n);
            qr_docb_heading(c->b, lvl, t.s, n);
        } else {
            qr_docb_block(c->b, list > 0 ? QR_BLOCK_LIST_ITEM : QR_BLOCK_PARAGRAPH, 0, t.s, t.n);
        }
    }
    free(t.s);
}

/* Rows of a table, also inside content controls and custom XML. */
static void rows(dctx *c, const xmlNode *n)
{
    for (const xmlNode *k = n->children; k; k = k->next) {
        if (is_w(k, "tr")) {
            qr_tbuf row = {0};
            int cells = 0;
            for (const xmlNode *tc = k->children; tc; tc = tc->next) {
                const xmlNode *cell = tc;
                if (is_w(tc, "sdt")) cell = w_child(w_child(tc, "sdtContent"), "tc");
                if (!cell || !is_w(cell, "tc")) continue;
                qr_tbuf t = {0};
                gather(&t, cell->children);
                if (t.s) {
                    size_t len = qr_collapse_ws(t.s, t.n);
                    if (len) {
                        if (cells++) qr_tbuf_add(&row, " | ", 3);
                        qr_tbuf_add(&row, t.s, len);
                    }
                }
                if (t.err) c->oom = true;
                free(t.s);
            }
            if (row.err) c->oom = true;
            if (row.s) qr_docb_block(c->b, QR_BLOCK_TABLE_ROW, 0, row.s, row.n);
            free(row.s);
        } else if (is_w(k, "sdt") || is_w(k, "customXml")) {
            const xmlNode *content = is_w(k, "sdt") ? w_child(k, "sdtContent") : k;
            if (content) rows(c, content);
        }
    }
}

/* Block-level content: body, content controls, custom XML, tracked insertions. */
static void blocks(dctx *c, const xmlNode *n)
{
    for (const xmlNode *k = n ? n->children : NULL; k; k = k->next) {
        if (is_w(k, "p")) paragraph(c, k);
        else if (is_w(k, "tbl")) rows(c, k);
        else if (is_w(k, "sdt")) blocks(c, w_child(k, "sdtContent"));
        else if (is_w(k, "customXml") || is_w(k, "ins") || is_w(k, "moveTo") || is_w(k, "smartTag"))
            blocks(c, k);
        else if (k->type == XML_ELEMENT_NODE && k->ns && k->ns->href && !strcmp((const char *)k->ns->href, MC_NS) &&
                 !strcmp((const char *)k->name, "AlternateContent"))
            blocks(c, k->children && k->children->type == XML_ELEMENT_NODE ? k->children : NULL); // mc:Choice
    }
}

int qr_read_docx(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    qr_xml_init();
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    }
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY, &ze);
    if (!z) {
        zip_source_free(src);
        int rc = qr_result_skip(r, QR_SKIP_CORRUPT, "not a readable zip archive (%s)", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    size_t limit = o->max_file_bytes;
    char *xml = NULL, *sxml = NULL;
    size_t xn = 0, sn = 0;
    xmlDocPtr doc = NULL, sdoc = NULL;
    styles st = {0};
    int rc = zip_entry(z, "word/document.xml", limit, r, &xml, &xn);
    if (rc == ENTRY_ABSENT)
        rc = qr_result_skip(r, QR_SKIP_CORRUPT, "no word/document.xml in the zip archive (not a Word document)");
    if (rc != ENTRY_READ) goto out;
    rc = zip_entry(z, "word/styles.xml", limit, r, &sxml, &sn);
    if (rc < 0 || rc == ENTRY_SKIPPED) goto out;
    rc = 0;
    if (sxml) {
        if (!(sdoc = parse_part("word/styles.xml", sxml, sn, false, r, &rc)) && rc) goto out;
        if (sdoc && load_styles(sdoc, &st)) {
            rc = qr_fail(QR_ENOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    if (!(doc = parse_part("word/document.xml", xml, xn, true, r, &rc))) goto out;
    free(xml);
    xml = NULL;
    const xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || !is_w(root, "document")) {
        rc = qr_result_skip(r, QR_SKIP_CORRUPT, "word/document.xml: root element is not w:document");
        goto out;
    }
    qr_docb b;
    qr_docb_init(&b, o->max_blocks);
    dctx c = {.b = &b, .st = &st};
    blocks(&c, w_child(root, "body"));
    bool trunc = b.truncated;
    if (c.oom) b.err = QR_ENOMEM;
    qr_doc d = {0};
    d.format = QR_FMT_DOCX;
    if ((rc = qr_docb_finish(&b, &d))) {
        free(c.title);
        goto out;
    }
    d.title = c.title ? c.title : qr_base_title(name);
    if (!d.title) {
        qr_doc_release(&d);
        rc = qr_fail(QR_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    if (trunc) qr_result_warn(r, "truncated at %zu blocks", o->max_blocks);
    if (!d.n_blocks) {
        qr_doc_release(&d);
        rc = qr_result_skip(r, QR_SKIP_EMPTY, "no text in word/document.xml");
        goto out;
    }
    rc = qr_result_add_doc(r, &d, name);
out:
    if (doc) xmlFreeDoc(doc);
    if (sdoc) xmlFreeDoc(sdoc);
    free_styles(&st);
    free(xml);
    free(sxml);
    zip_discard(z); // frees the source too
    return rc < 0 ? rc : 0;
}
