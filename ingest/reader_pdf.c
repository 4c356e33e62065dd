/* PDF reader over poppler-glib: the text of each page, page numbers 1-based.
 * poppler opens no network resources; a password-protected PDF fails with
 * POPPLER_ERROR_ENCRYPTED and is skipped as encrypted, anything else poppler
 * cannot open is skipped as corrupt with poppler's message. (poppler itself
 * may print "Syntax Error" lines to stderr for damaged files.) */
#include <poppler.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ingest/reader_internal.h"

int qr_read_pdf(const char *name, const char *data, size_t len, const qr_reader_opts *o, qr_read_result *r)
{
    GError *err = NULL;
    GBytes *bytes = g_bytes_new_static(data, len);
    PopplerDocument *pdf = poppler_document_new_from_bytes(bytes, NULL, &err);
    int rc = 0;
    if (!pdf) {
        g_bytes_unref(bytes);
        if (err && err->domain == POPPLER_ERROR && err->code == POPPLER_ERROR_ENCRYPTED)
            rc = qr_result_skip(r, QR_SKIP_ENCRYPTED, "encrypted PDF (%s)", err->message);
        else
            rc = qr_result_skip(r, QR_SKIP_CORRUPT, "PDF cannot be opened (%s)", err ? err->message : "unknown error");
        if (err) g_error_free(err);
        return rc;
    }
    int n_pages = poppler_document_get_n_pages(pdf);
    qr_docb b;
    qr_docb_init(&b, o->max_blocks);
    size_t broken = 0;
    for (int i = 0; i < n_pages && !b.err; i++) {
        PopplerPage *page = poppler_document_get_page(pdf, i);
        if (!page) continue;
        char *t = poppler_page_get_text(page);
        g_object_unref(page);
        if (!t) continue;
        char *norm;
        size_t nn, nb;
        rc = qr_normalize_text(t, strlen(t), o->max_line_bytes, &norm, &nn, &nb);
        g_free(t);
        if (rc) break;
        broken += nb;
        qr_text_blocks(&b, norm, nn, i + 1);
        free(norm);
    }
    char *title = poppler_document_get_title(pdf);
    g_object_unref(pdf);
    g_bytes_unref(bytes);
    if (rc) {
        g_free(title);
        qr_docb_release(&b);
        return rc;
    }
    bool trunc = b.truncated;
    qr_doc d = {0};
    d.format = QR_FMT_PDF;
    d.n_pages = n_pages;
    if ((rc = qr_docb_finish(&b, &d))) {
        g_free(title);
        return rc;
    }
    if (title) {
        size_t tl;
        if (qr_utf8_lossy(title, strlen(title), &d.title, &tl) == 0) {
            tl = qr_collapse_ws(d.title, tl);
            if (!tl) {
                free(d.title);
                d.title = NULL;
            }
        }
        g_free(title);
    }
    if ((rc = qr_doc_default_title(&d, name))) return rc;
    qr_result_warn_limits(r, o, broken, trunc);
    if (!d.n_blocks) {
        qr_doc_release(&d);
        return qr_result_skip(r, QR_SKIP_EMPTY, "no text (%d pages; scanned images?)", n_pages);
    }
    return qr_result_add_doc(r, &d, name);
}
