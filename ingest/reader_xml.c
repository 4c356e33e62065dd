/* libxml2 set-up shared by the HTML and docx readers (reader_internal.h). */
#include <libxml/parser.h>
#include <pthread.h>

#include "ingest/reader_internal.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;
static void xml_init(void)
{
    xmlInitParser();
}

void qr_xml_init(void)
{
    pthread_once(&xml_once, xml_init);
}

static void silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

void qr_xml_silence(void)
{
    xmlSetGenericErrorFunc(NULL, silent);
}
