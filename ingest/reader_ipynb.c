/* Jupyter notebook (.ipynb) reader over jansson: the markdown, code and raw
 * cells in notebook order; outputs, attachments and metadata are left out.
 *
 * Cell numbers. Cell N (1-based, the cell's position in the notebook,
 * counting every cell, empty or not) is the page of every block it gives, so
 * chunks never span two cells (a page change is a hard chunk boundary,
 * ingest/chunker.h) and `quire search` / citations name the cell ("cell 3":
 * qr_page_label). Markdown cells are read as Markdown (their headings build
 * the heading path, which carries on into the cells below), code cells as
 * source code, raw cells as plain text.
 *
 * nbformat 4 ("cells": [...]) and nbformat 3 ("worksheets": [{"cells":
 * [...]}], code in "input", heading cells with a "level") are read. A cell's
 * source is a string or a list of strings (joined as they are: each line
 * keeps its "\n"). Failures: text that is not JSON, or JSON without a cell
 * list, is skipped as corrupt with the reason (jansson's line and column); a
 * cell whose type or source is not as above is a warning naming the cell,
 * and the other cells are read. The language is the kernel's
 * (metadata.language_info.name, else metadata.kernelspec.language). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/reader_internal.h"

/* The source of a cell as one malloc'd string (NULL with *bad when it is
 * neither a string nor a list of strings). */
static char *cell_source(const json_t *src, bool *bad, size_t *len)
{
    *bad = false;
    *len = 0;
    if (json_is_string(src)) {
        *len = json_string_length(src);
        char *s = malloc(*len + 1);
        if (s) memcpy(s, json_string_value(src), *len + 1);
        return s;
    }
    if (!json_is_array(src)) {
        *bad = true;
        return NULL;
    }
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(src, i, v) {
        if (!json_is_string(v)) {
            *bad = true;
            return NULL;
        }
        n += json_string_length(v);
    }
    char *s = malloc(n + 1);
    if (!s) return NULL;
    size_t k = 0;
    json_array_foreach(src, i, v) {
        memcpy(s + k, json_string_value(v), json_string_length(v));
        k += json_string_length(v);
    }
    s[k] = 0;
    *len = k;
    return s;
}

static const char *kernel_language(const json_t *root)
{
    const json_t *md = json_object_get(root, "metadata");
    const char *l = json_string_value(json_object_get(json_object_get(md, "language_info"), "name"));
    if (!l || !*l) l = json_string_value(json_object_get(json_object_get(md, "kernelspec"), "language"));
    if (!l || !*l) l = json_string_value(json_object_get(md, "language")); // nbformat 3
    return l && *l ? l : NULL;
}

int qr_read_ipynb(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    if (!root)
        return qr_result_skip(r, QR_SKIP_CORRUPT, "notebook is not valid JSON (line %d, column %d: %s)", je.line,
                              je.column, je.text);
    int rc = 0;
    json_t *cells = json_object_get(root, "cells");
    json_t *v3 = NULL;
    if (!cells && json_is_array(json_object_get(root, "worksheets"))) { // nbformat 3: the worksheets' cells
        v3 = json_array();
        size_t i;
        json_t *ws;
        json_array_foreach(json_object_get(root, "worksheets"), i, ws) {
            json_t *wc = json_object_get(ws, "cells");
            if (json_is_array(wc) && json_array_extend(v3, wc)) rc = QR_ENOMEM;
        }
        if (!v3 || rc) {
            json_decref(v3);
            json_decref(root);
            return qr_fail(QR_ENOMEM, "%s: out of memory", name);
        }
        cells = v3;
    }
    if (!json_is_array(cells)) {
        bool obj = json_is_object(root);
        json_decref(root);
        return qr_result_skip(r, QR_SKIP_CORRUPT, "not a Jupyter notebook: no \"cells\" array%s",
                              obj ? "" : " (the JSON is not an object)");
    }
    qr_docb b;
    qr_docb_init(&b, o->max_blocks);
    qr_doc d = {0};
    d.format = QR_FMT_IPYNB;
    size_t broken = 0, i, n_bad = 0;
    json_t *cell;
    json_array_foreach(cells, i, cell) {
        if (b.err || rc) break;
        b.page = (int)(i + 1 < 0x7fffffff ? i + 1 : 0x7fffffff);
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        if (!type) {
            n_bad++;
            if ((rc = qr_result_warn(r, "cell %zu: no \"cell_type\" string; skipped", i + 1))) break;
            continue;
        }
        bool code = !strcmp(type, "code"), md = !strcmp(type, "markdown"), raw = !strcmp(type, "raw"),
             heading = !strcmp(type, "heading"); // nbformat 3
        if (!code && !md && !raw && !heading) {
            n_bad++;
            if ((rc = qr_result_warn(r, "cell %zu: unknown cell_type \"%s\"; skipped", i + 1, type))) break;
            continue;
        }
        const json_t *src = json_object_get(cell, "source");
        if (!src && code) src = json_object_get(cell, "input"); // nbformat 3
        bool bad;
        size_t sl;
        char *s = cell_source(src, &bad, &sl);
        if (bad) {
            n_bad++;
            if ((rc = qr_result_warn(r, "cell %zu: \"source\" is not a string or a list of strings; skipped",
                                     i + 1)))
                break;
            continue;
        }
        if (!s) {
            rc = qr_fail(QR_ENOMEM, "%s: out of memory", name);
            break;
        }
        char *t;
        size_t tn, nb;
        rc = qr_normalize_text(s, sl, o->max_line_bytes, &t, &tn, &nb);
        free(s);
        if (rc) break;
        broken += nb;
        if (heading) {
            json_int_t lvl = json_integer_value(json_object_get(cell, "level"));
            qr_docb_heading(&b, lvl >= 1 && lvl <= 6 ? (int)lvl : 1, t, tn);
            if (!d.title && lvl <= 1 && tn) d.title = strndup(t, tn);
        } else if (md) {
            qr_md_blocks(&b, t, tn, &d.title);
        } else if (code) {
            qr_code_blocks(&b, t, tn);
        } else {
            qr_text_blocks(&b, t, tn, 0);
        }
        free(t);
    }
    const char *lang = kernel_language(root);
    if (lang && !(d.language = strdup(lang))) rc = qr_fail(QR_ENOMEM, "%s: out of memory", name);
    size_t n_cells = json_array_size(cells);
    json_decref(v3);
    json_decref(root);
    bool trunc = b.truncated;
    if (rc) {
        qr_docb_release(&b);
        qr_doc_release(&d);
        return rc;
    }
    if ((rc = qr_docb_finish(&b, &d))) {
        qr_doc_release(&d);
        return rc;
    }
    if ((rc = qr_doc_default_title(&d, name))) return rc;
    qr_result_warn_limits(r, o, broken, trunc);
    if (!d.n_blocks) {
        qr_doc_release(&d);
        return qr_result_skip(r, QR_SKIP_EMPTY, "no text in %zu cells%s", n_cells,
                              n_bad ? " (malformed cells: see the warnings)" : "");
    }
    return qr_result_add_doc(r, &d, name);
}
