#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static qr_log_level current_level = QR_LOG_WARN;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void qr_log_set_level(qr_log_level level) { current_level = level; }
qr_log_level qr_log_get_level(void) { return current_level; }

void qr_log(qr_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level > current_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock); /* whole lines from concurrent threads */
    fprintf(stderr, "quire: %s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}
