/* The Slurm-side plumbing of `quire serve` and `quire wait`:
 *  - the endpoint file: {"host", "port", "url", "token_file", "pid"}, written
 *    atomically (temporary file in the same directory, fsync, rename) once the
 *    server is ready, so a reader never sees half a file;
 *  - token files: the first line is the bearer token; created with mode 0600
 *    from 32 random bytes (/dev/urandom) as 64 hex digits;
 *  - a tiny HTTP/1.1 client over a socket (GET with an optional bearer
 *    token), enough for `quire wait` and the tests; no curl. */
#ifndef QR_SERVICE_ENDPOINT_H
#define QR_SERVICE_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct qr_endpoint {
    char host[256];
    int port;
    char url[300];
    char token_file[4096]; /* "" when none */
    long pid;
} qr_endpoint;

/* Writes path atomically. token_file may be NULL. */
int qr_endpoint_write(const char *path, const char *host, int port, const char *token_file);
/* Reads and checks an endpoint file: QR_ENOTFOUND when absent, QR_EFORMAT
 * when it is not a complete endpoint object. */
int qr_endpoint_read(const char *path, qr_endpoint *out);

/* Reads the token (first line, surrounding whitespace dropped) into a
 * malloc'd string. QR_EFORMAT when empty or longer than 4096 bytes. */
int qr_token_read(const char *path, char **out);
/* Creates path (mode 0600, replacing an existing file) holding a new random
 * token and returns it (malloc'd). */
int qr_token_create(const char *path, char **out);

/* True for addresses that only this host can reach (127.0.0.0/8, ::1, localhost). */
bool qr_host_is_loopback(const char *host);

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1) into host (cap
 * bytes) and *port (0..65535). QR_EINVAL naming the problem. */
int qr_listen_parse(const char *s, char *host, size_t cap, int *port);

/* GET (or another method with a body) on host:port; waits at most timeout_ms
 * in total. *status gets the HTTP status, *body (may be NULL) the body
 * (malloc'd, NUL-terminated; chunked transfer decoded). QR_EIO when the
 * connection fails, QR_ECANCELED on timeout, QR_EFORMAT for a response that
 * is not HTTP. token NULL: no Authorization header. */
int qr_http_request(const char *host, int port, const char *method, const char *path, const char *token,
                    const char *content_type, const char *body, size_t body_len, int timeout_ms, int *status,
                    char **resp_body, size_t *resp_len);

#endif
