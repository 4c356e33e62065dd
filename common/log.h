/* The one levelled logger. Library code may log through it; it writes to
 * stderr (never stdout, which carries command output). */
#ifndef QR_COMMON_LOG_H
#define QR_COMMON_LOG_H

typedef enum { QR_LOG_ERROR = 0, QR_LOG_WARN, QR_LOG_INFO, QR_LOG_DEBUG } qr_log_level;

void qr_log_set_level(qr_log_level level);
qr_log_level qr_log_get_level(void);
void qr_log(qr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define QR_ERROR(...) qr_log(QR_LOG_ERROR, __VA_ARGS__)
#define QR_WARN(...) qr_log(QR_LOG_WARN, __VA_ARGS__)
#define QR_INFO(...) qr_log(QR_LOG_INFO, __VA_ARGS__)
#define QR_DEBUG(...) qr_log(QR_LOG_DEBUG, __VA_ARGS__)

#endif
