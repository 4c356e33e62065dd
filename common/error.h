/* Error codes shared by every quire module.
 *
 * Library functions return int: 0 on success, a negative QR_E* code otherwise.
 * qr_strerror() explains a code; qr_last_error() holds the detail of the most
 * recent failure on this thread (file, field, tensor, foreign library message),
 * set by the function that detected it through qr_fail(). */
#ifndef QR_COMMON_ERROR_H
#define QR_COMMON_ERROR_H

enum {
    QR_OK = 0,
    QR_ENOMEM = -1,       /* allocation failed */
    QR_EIO = -2,          /* read/write/open/mmap failed */
    QR_EFORMAT = -3,      /* a file or message is malformed or corrupt */
    QR_EUNSUPPORTED = -4, /* valid input, but a feature quire does not implement */
    QR_EINVAL = -5,       /* bad argument or option value */
    QR_ELIMIT = -6,       /* a user-controlled size exceeds its limit */
    QR_ENOTFOUND = -7,    /* file, model, tensor or key missing */
    QR_EBACKEND = -8,     /* compute backend failure (CUDA, BLAS) */
    QR_EMISMATCH = -9,    /* two things that must agree do not (embedder, shapes) */
    QR_EINTERNAL = -10,   /* a bug: an invariant was broken */
    QR_ECANCELED = -11,   /* the operation was cancelled */
    QR_EBUSY = -12,       /* a bounded queue is full: try again later (HTTP 503) */
};

/* Static text for a code; never NULL. */
const char *qr_strerror(int code);

/* Records a detail message for this thread and returns code, so callers can
 * write `return qr_fail(QR_EFORMAT, "%s: tensor %s: ...", path, name);`.
 * An argument may be qr_last_error() itself, to prefix the cause a callee
 * recorded: `return qr_fail(rc, "%s: loading: %s", path, qr_last_error());`.
 * Messages are cut at 1023 bytes. */
int qr_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Detail of the last qr_fail() on this thread ("" if none). Borrowed: valid
 * until the next qr_fail() on this thread. */
const char *qr_last_error(void);

/* Clears the detail message. */
void qr_clear_error(void);

#endif
