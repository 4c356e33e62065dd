/* HTML reader over libxml2's HTML parser (tolerant, no network, no entity
 * loading). Block structure: see reader.h. */
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "ingest/reader_internal.h"

typedef struct {
    qr_docb *b;
    qr_tbuf buf; /* inline text of the current block */
    qr_block_kind kind;
    char *title;
    char *first_h1;
    struct nstat *st;   /* per element, by (uintptr_t)node->_private - 1 (stat_pass) */
    size_t n_st, cap_st;
    bool st_err;
    bool keep_links;    /* link-dense blocks kept (a page that is nothing but links) */
    size_t nav_dropped; /* link-dense blocks skipped */
    size_t text_blocks; /* non-heading blocks emitted */
} hctx;

static bool is_tag(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->name && !strcasecmp((const char *)n->name, name);
}

/* Inside an <article>, <section> or <main>? (Their <header> holds the title.) */
static bool in_content(const xmlNode *n)
{
    for (const xmlNode *p = n->parent; p && p->type == XML_ELEMENT_NODE; p = p->parent)
        if (is_tag(p, "article") || is_tag(p, "section") || is_tag(p, "main")) return true;
    return false;
}

/* Elements whose content is not document text: scripts, styles, site
 * navigation and chrome (also by ARIA role), forms, embedded media. A <header>
 * or <footer> inside article/section/main is content and kept. */
static bool dropped(const xmlNode *n)
{
    static const char *drop[] = {"script", "style", "noscript", "nav", "aside", "form", "svg", "template",
                                 "iframe", "object", "embed", "canvas", "button", "select", "head", "math", NULL};
    if (n->type != XML_ELEMENT_NODE) return false;
    for (int i = 0; drop[i]; i++)
        if (is_tag(n, drop[i])) return true;
    if ((is_tag(n, "header") || is_tag(n, "footer")) && !in_content(n)) return true;
    bool drop_role = false;
    xmlChar *role = xmlGetProp((xmlNode *)n, (const xmlChar *)"role");
    if (role) {
        const char *r = (const char *)role;
        drop_role = !strcasecmp(r, "navigation") || !strcasecmp(r, "banner") || !strcasecmp(r, "contentinfo") ||
                    !strcasecmp(r, "search") || !strcasecmp(r, "complementary");
        xmlFree(role);
    }
    if (!drop_role && xmlHasProp((xmlNode *)n, (const xmlChar *)"hidden")) drop_role = true;
    return drop_role;
}

static bool block_level(const xmlNode *n)
{
    static const char *blk[] = {"p", "li", "dd", "dt", "blockquote", "div", "section", "article", "main",
                                "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "caption", "body",
                                "html", "center", "figure", "figcaption", "address", "details", "summary",
                                "fieldset", "hr", "menu", "hgroup", "legend", NULL};
    for (int i = 0; blk[i]; i++)
        if (is_tag(n, blk[i])) return true;
    return false;
}

/* Appends the text under n (dropped elements skipped, <br> as a space). */
static void gather(qr_tbuf *o, const xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) qr_tbuf_add(o, (const char *)n->content, strlen((const char *)n->content));
        } else if (n->type == XML_ELEMENT_NODE && !dropped(n)) {
            if (is_tag(n, "br")) qr_tbuf_add(o, "\n", 1);
            else if (block_level(n) || is_tag(n, "td") || is_tag(n, "th")) {
                qr_tbuf_add(o, " ", 1);
                gather(o, n->children);
                qr_tbuf_add(o, " ", 1);
            } else {
                gather(o, n->children);
            }
        }
    }
}

/* Link density of a block, as readability-style extractors measure it: the
 * share of its text (non-space bytes, dropped elements excluded) that lies
 * inside <a href>. Named anchors (<a id>, <a name>: FAQ question titles, man
 * page option targets) are not links. */
typedef struct nstat {
    size_t all, link; /* non-space text bytes under the element; those inside <a href> */
    bool heading;     /* an h1..h6 under it */
} nstat;

static bool is_link(const xmlNode *n)
{
    return is_tag(n, "a") && xmlHasProp((xmlNode *)n, (const xmlChar *)"href");
}

static bool is_heading(const xmlNode *n)
{
    const char *s = (const char *)n->name;
    return n->type == XML_ELEMENT_NODE && (s[0] == 'h' || s[0] == 'H') && s[1] >= '1' && s[1] <= '6' && !s[2];
}

/* One bottom-up pass over the tree (so the checks below cost O(1) per block,
 * not a walk of the subtree at every level): fills c->st and numbers the
 * elements through node->_private, which libxml2 leaves to the application. */
static nstat stat_pass(hctx *c, xmlNode *n)
{
    nstat sum = {0};
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            for (const unsigned char *p = n->content; p && *p; p++)
                sum.all += !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v');
        } else if (n->type == XML_ELEMENT_NODE && !dropped(n)) {
            nstat e = stat_pass(c, n->children);
            if (is_link(n)) e.link = e.all;
            e.heading = e.heading || is_heading(n);
            if (c->n_st == c->cap_st) {
                size_t cap = c->cap_st ? 2 * c->cap_st : 256;
                nstat *v = realloc(c->st, cap * sizeof *v);
                if (!v) {
                    c->st_err = true;
                    return sum;
                }
                c->st = v;
                c->cap_st = cap;
            }
            c->st[c->n_st++] = e;
            n->_private = (void *)(uintptr_t)c->n_st;
            sum.all += e.all;
            sum.link += e.link;
            sum.heading = sum.heading || e.heading;
        }
    }
    return sum;
}

/* A navigation block: a table of contents, menu or index of links, whose text
 * is mostly link text. Measured on the Slurm HTML docs (bench/slurm_qa): their
 * in-page TOCs and man-page indexes are lists at density 1.0, while content
 * lists, paragraphs and table rows that mention other pages stay below 0.5
 * (tests/unit/ingest test_reader: html_link_density; hit@5 on bench/slurm_qa's
 * tune questions is the same from 0.33 to 0.9). The whole element is skipped,
 * children included. A container with a heading inside is a section, not a
 * navigation block: the check is made again on its children instead. */
#define QR_HTML_MAX_LINK_DENSITY 0.5

static bool link_dense(const hctx *c, const xmlNode *n)
{
    uintptr_t i = (uintptr_t)n->_private;
    if (!i || i > c->n_st || is_tag(n, "body") || is_tag(n, "html")) return false;
    const nstat *e = &c->st[i - 1];
    return !e->heading && e->all > 0 && (double)e->link > QR_HTML_MAX_LINK_DENSITY * (double)e->all;
}

static void flush(hctx *c)
{
    if (c->buf.n) {
        size_t n = qr_collapse_ws(c->buf.s, c->buf.n);
        qr_docb_block(c->b, c->kind, 0, c->buf.s, n);
        c->text_blocks += n > 0;
    }
    c->buf.n = 0;
}

static void walk(hctx *c, const xmlNode *n);

static void element(hctx *c, const xmlNode *n)
{
    if (dropped(n)) {
        // <title> lives in <head>, which is dropped as content
        if (is_tag(n, "head"))
            for (const xmlNode *k = n->children; k; k = k->next)
                if (is_tag(k, "title") && !c->title) {
                    qr_tbuf t = {0};
                    gather(&t, k->children);
                    if (t.s) {
                        qr_collapse_ws(t.s, t.n);
                        c->title = t.s;
                    }
                }
        return;
    }
    const char *name = (const char *)n->name;
    if (is_tag(n, "title")) {
        if (!c->title) {
            qr_tbuf t = {0};
            gather(&t, n->children);
            if (t.s) {
                qr_collapse_ws(t.s, t.n);
                c->title = t.s;
            }
        }
        return;
    }
    if (is_heading(n)) {
        flush(c);
        qr_tbuf t = {0};
        gather(&t, n->children);
        if (t.s) {
            size_t len = qr_collapse_ws(t.s, t.n);
            qr_docb_heading(c->b, name[1] - '0', t.s, len);
            if (name[1] == '1' && !c->first_h1 && len) c->first_h1 = strdup(t.s);
        }
        free(t.s);
        return;
    }
    if (!c->keep_links && (block_level(n) || is_tag(n, "tr")) && link_dense(c, n)) {
        flush(c);
        c->nav_dropped++;
        return;
    }
    if (is_tag(n, "tr")) {
        flush(c);
        qr_tbuf row = {0};
        int cells = 0;
        for (const xmlNode *k = n->children; k; k = k->next) {
            if (!is_tag(k, "td") && !is_tag(k, "th")) continue;
            qr_tbuf t = {0};
            gather(&t, k->children);
            if (t.s) {
                size_t len = qr_collapse_ws(t.s, t.n);
                if (len) {
                    if (cells++) qr_tbuf_add(&row, " | ", 3);
                    qr_tbuf_add(&row, t.s, len);
                }
            }
            free(t.s);
        }
        if (row.s) qr_docb_block(c->b, QR_BLOCK_TABLE_ROW, 0, row.s, row.n);
        c->text_blocks += row.n > 0;
        free(row.s);
        return;
    }
    if (is_tag(n, "pre")) {
        flush(c);
        qr_tbuf t = {0};
        gather(&t, n->children);
        if (t.s) qr_docb_block(c->b, QR_BLOCK_CODE, 0, t.s, t.n);
        c->text_blocks += t.n > 0;
        free(t.s);
        return;
    }
    if (is_tag(n, "br")) {
        qr_tbuf_add(&c->buf, " ", 1);
        return;
    }
    if (block_level(n)) {
        flush(c);
        qr_block_kind saved = c->kind;
        if (is_tag(n, "li")) c->kind = QR_BLOCK_LIST_ITEM;
        else if (is_tag(n, "p") || is_tag(n, "dd") || is_tag(n, "dt") || is_tag(n, "blockquote"))
            c->kind = QR_BLOCK_PARAGRAPH;
        walk(c, n->children);
        flush(c);
        c->kind = saved;
        return;
    }
    walk(c, n->children); // inline element
}

static void walk(hctx *c, const xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) qr_tbuf_add(&c->buf, (const char *)n->content, strlen((const char *)n->content));
        } else if (n->type == XML_ELEMENT_NODE) {
            element(c, n);
        }
    }
}

/* A charset declared in the first 4 KiB other than UTF-8? Then libxml2 reads
 * the <meta> itself; otherwise we hand it valid UTF-8 and say so. */
static bool declares_other_charset(const char *d, size_t len)
{
    if (len >= 3 && !memcmp(d, "\xEF\xBB\xBF", 3)) return false; // a UTF-8 BOM wins (HTML5)
    size_t m = len < 4096 ? len : 4096;
    for (size_t i = 0; i + 8 <= m; i++) {
        if (strncasecmp(d + i, "charset=", 8) != 0) continue;
        size_t k = i + 8;
        while (k < m && (d[k] == '"' || d[k] == '\'' || d[k] == ' ')) k++;
        if (m - k >= 5 && !strncasecmp(d + k, "utf-8", 5)) return false;
        if (m - k >= 4 && !strncasecmp(d + k, "utf8", 4)) return false;
        return true;
    }
    return false;
}

int qr_read_html(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    qr_xml_init();
    if (len > 0x7fffffff)
        return qr_result_skip(r, QR_SKIP_TOO_LARGE, "HTML of %zu bytes over the parser limit", len);
    char *clean = NULL;
    size_t clen = len;
    const char *enc = NULL;
    int rc;
    if (!declares_other_charset(data, len)) {
        if ((rc = qr_utf8_lossy(data, len, &clean, &clen))) return rc;
        enc = "UTF-8";
    }
    qr_xml_silence();
    htmlDocPtr doc = htmlReadMemory(clean ? clean : data, (int)clen, NULL, enc,
                                    HTML_PARSE_RECOVER | HTML_PARSE_NONET | HTML_PARSE_NOERROR |
                                        HTML_PARSE_NOWARNING | HTML_PARSE_COMPACT);
    free(clean);
    if (!doc) return qr_result_skip(r, QR_SKIP_CORRUPT, "HTML parser returned no document");
    qr_docb b;
    qr_docb_init(&b, o->max_blocks);
    hctx c = {.b = &b, .kind = QR_BLOCK_PARAGRAPH};
    stat_pass(&c, xmlDocGetRootElement(doc));
    bool st_err = c.st_err;
    walk(&c, xmlDocGetRootElement(doc));
    flush(&c);
    if (!c.text_blocks && c.nav_dropped) {
        /* nothing but link lists (a site map, an index page): they are the
         * content, so read the page again keeping them */
        qr_docb_release(&b);
        qr_docb_init(&b, o->max_blocks);
        free(c.title);
        free(c.first_h1);
        c = (hctx){.b = &b, .kind = QR_BLOCK_PARAGRAPH, .keep_links = true, .buf = c.buf, .st = c.st};
        c.buf.n = 0;
        walk(&c, xmlDocGetRootElement(doc));
        flush(&c);
    }
    xmlFreeDoc(doc);
    free(c.st);
    bool trunc = b.truncated;
    if (c.buf.err || st_err) b.err = QR_ENOMEM;
    free(c.buf.s);
    qr_doc d = {0};
    d.format = QR_FMT_HTML;
    if ((rc = qr_docb_finish(&b, &d))) {
        free(c.title);
        free(c.first_h1);
        return rc;
    }
    if (c.title && *c.title) {
        d.title = c.title;
        free(c.first_h1);
    } else {
        free(c.title);
        d.title = c.first_h1 ? c.first_h1 : qr_base_title(name);
    }
    if (!d.title) {
        qr_doc_release(&d);
        return qr_fail(QR_ENOMEM, "%s: out of memory", name);
    }
    if (trunc) qr_result_warn(r, "truncated at %zu blocks", o->max_blocks);
    if (!d.n_blocks) {
        qr_doc_release(&d);
        return qr_result_skip(r, QR_SKIP_EMPTY, "no text");
    }
    return qr_result_add_doc(r, &d, name);
}
