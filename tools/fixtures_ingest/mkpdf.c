/* Writes tests/fixtures/ingest/three_pages.pdf: a 3-page PDF with known text
 * per page (cairo's PDF surface, the toy font API). Built and run by
 * make_fixtures.sh; not part of the meson build. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <stdio.h>

static const char *pages[3][3] = {
    {"Quire test document", "The first page talks about apples.", "Apples grow on trees."},
    {"Second page", "Bananas are yellow. They are rich in potassium.", NULL},
    {"Third page", "Cherries are small and red.", "The end."},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkpdf OUT.pdf\n");
        return 2;
    }
    cairo_surface_t *s = cairo_pdf_surface_create(argv[1], 595, 842); // A4 in points
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, "Quire three pages");
    cairo_t *cr = cairo_create(s);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 14);
    for (int p = 0; p < 3; p++) {
        for (int l = 0; l < 3 && pages[p][l]; l++) {
            cairo_move_to(cr, 72, 100 + 30 * l);
            cairo_show_text(cr, pages[p][l]);
        }
        cairo_show_page(cr);
    }
    cairo_destroy(cr);
    cairo_surface_finish(s);
    int bad = cairo_surface_status(s) != CAIRO_STATUS_SUCCESS;
    cairo_surface_destroy(s);
    return bad;
}
