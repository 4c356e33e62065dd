#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_detail[1024];

const char *qr_strerror(int code)
{
    switch (code) {
    case QR_OK: return "success";
    case QR_ENOMEM: return "out of memory";
    case QR_EIO: return "input/output error";
    case QR_EFORMAT: return "malformed or corrupt data";
    case QR_EUNSUPPORTED: return "not supported";
    case QR_EINVAL: return "invalid argument";
    case QR_ELIMIT: return "limit exceeded";
    case QR_ENOTFOUND: return "not found";
    case QR_EBACKEND: return "compute backend error";
    case QR_EMISMATCH: return "mismatch";
    case QR_EINTERNAL: return "internal error";
    case QR_ECANCELED: return "canceled";
    case QR_EBUSY: return "busy, try again later";
    default: return "unknown error";
    }
}

int qr_fail(int code, const char *fmt, ...)
{
    /* Callers chain causes with qr_fail(rc, "...: %s", qr_last_error()), so an
     * argument may point into last_detail: format into a scratch buffer first
     * (vsnprintf with overlapping source and destination is undefined and in
     * practice overwrote the cause with the new prefix), then copy. */
    char scratch[sizeof last_detail];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(scratch, sizeof scratch, fmt, ap);
    va_end(ap);
    if (n < 0) /* an encoding error: keep the format itself rather than garbage */
        snprintf(scratch, sizeof scratch, "%s", fmt);
    memcpy(last_detail, scratch, sizeof last_detail);
    return code;
}

const char *qr_last_error(void) { return last_detail; }

void qr_clear_error(void) { last_detail[0] = '\0'; }
