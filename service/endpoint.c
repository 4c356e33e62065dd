/* Endpoint file, token files, listen-address parsing and a tiny HTTP/1.1
 * client (service/endpoint.h). */
#include "service/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes data to path through path.tmpPID + fsync + rename. */
static int write_atomic(const char *path, const char *data, size_t n, mode_t mode)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= sizeof tmp)
        return qr_fail(QR_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return qr_fail(QR_EIO, "%s: %s", tmp, strerror(errno));
    fchmod(fd, mode);
    int bad = write_all(fd, data, n) || fsync(fd) != 0;
    int err = errno;
    if (close(fd) != 0)
        bad = 1;
    if (bad || rename(tmp, path) != 0) {
        err = bad ? err : errno;
        unlink(tmp);
        return qr_fail(QR_EIO, "%s: %s", path, strerror(err));
    }
    return 0;
}

int qr_endpoint_write(const char *path, const char *host, int port, const char *token_file)
{
    bool v6 = strchr(host, ':') != NULL;
    /* a wildcard address is not where clients connect: name this host's loopback */
    char url[600];
    snprintf(url, sizeof url, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    char abs_tok[PATH_MAX] = "";
    if (token_file && *token_file && !realpath(token_file, abs_tok))
        snprintf(abs_tok, sizeof abs_tok, "%s", token_file);
    json_t *j = json_pack("{s:s, s:i, s:s, s:o, s:I}", "host", host, "port", port, "url", url, "token_file",
                          abs_tok[0] ? json_string(abs_tok) : json_null(), "pid", (json_int_t)getpid());
    char *t = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!t)
        return qr_fail(QR_ENOMEM, "%s: endpoint JSON", path);
    size_t n = strlen(t);
    char *t2 = realloc(t, n + 2);
    if (!t2) {
        free(t);
        return qr_fail(QR_ENOMEM, "%s: endpoint JSON", path);
    }
    t2[n] = '\n';
    t2[n + 1] = '\0';
    int rc = write_atomic(path, t2, n + 1, 0644);
    free(t2);
    return rc;
}

int qr_endpoint_read(const char *path, qr_endpoint *out)
{
    json_error_t je;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? qr_fail(QR_ENOTFOUND, "%s: no such file", path)
                               : qr_fail(QR_EIO, "%s: %s", path, strerror(errno));
    json_t *j = json_loadf(f, 0, &je);
    fclose(f);
    if (!j)
        return qr_fail(QR_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    qr_endpoint e;
    memset(&e, 0, sizeof e);
    const json_t *h = json_object_get(j, "host"), *p = json_object_get(j, "port"), *u = json_object_get(j, "url"),
                 *t = json_object_get(j, "token_file"), *pid = json_object_get(j, "pid");
    int rc = 0;
    if (!json_is_string(h) || !json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535 ||
        (t && !json_is_null(t) && !json_is_string(t)))
        rc = qr_fail(QR_EFORMAT, "%s: expected {\"host\": str, \"port\": 1..65535, \"token_file\": str|null, ...}",
                     path);
    if (!rc) {
        snprintf(e.host, sizeof e.host, "%s", json_string_value(h));
        e.port = (int)json_integer_value(p);
        if (json_is_string(u))
            snprintf(e.url, sizeof e.url, "%s", json_string_value(u));
        if (json_is_string(t))
            snprintf(e.token_file, sizeof e.token_file, "%s", json_string_value(t));
        e.pid = json_is_integer(pid) ? (long)json_integer_value(pid) : 0;
        *out = e;
    }
    json_decref(j);
    return rc;
}

int qr_token_read(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? qr_fail(QR_ENOTFOUND, "token file %s: no such file", path)
                               : qr_fail(QR_EIO, "token file %s: %s", path, strerror(errno));
    char buf[4100];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t'))
        s[--l] = '\0';
    if (!l)
        return qr_fail(QR_EFORMAT, "token file %s: empty first line", path);
    if (l > 4096)
        return qr_fail(QR_EFORMAT, "token file %s: token longer than 4096 bytes", path);
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return qr_fail(QR_EFORMAT, "token file %s: the token must be printable ASCII without spaces", path);
    if (!(*out = strdup(s)))
        return qr_fail(QR_ENOMEM, "token");
    memset(buf, 0, sizeof buf);
    return 0;
}

int qr_token_create(const char *path, char **out)
{
    unsigned char rnd[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qr_fail(QR_EIO, "/dev/urandom: %s", strerror(errno));
    ssize_t n = read(fd, rnd, sizeof rnd);
    close(fd);
    if (n != (ssize_t)sizeof rnd)
        return qr_fail(QR_EIO, "/dev/urandom: short read");
    char hex[66];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    hex[64] = '\n';
    hex[65] = '\0';
    int rc = write_atomic(path, hex, 65, 0600);
    if (rc)
        return rc;
    hex[64] = '\0';
    if (!(*out = strdup(hex)))
        return qr_fail(QR_ENOMEM, "token");
    return 0;
}

bool qr_host_is_loopback(const char *host)
{
    if (!strcmp(host, "localhost") || !strcmp(host, "::1") || !strcmp(host, "ip6-localhost"))
        return true;
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}

int qr_listen_parse(const char *s, char *host, size_t cap, int *port)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return qr_fail(QR_EINVAL, "listen \"%s\": expected [IPv6]:PORT", s);
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return qr_fail(QR_EINVAL, "listen \"%s\": expected HOST:PORT (port 0 = any free port)", s);
        if (strchr(s, ':') != colon)
            return qr_fail(QR_EINVAL, "listen \"%s\": write an IPv6 address in brackets, [::1]:PORT", s);
        hl = (size_t)(colon - s);
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || p < 0 || p > 65535)
        return qr_fail(QR_EINVAL, "listen \"%s\": port must be 0..65535", s);
    if (hl == 0) {
        snprintf(host, cap, "127.0.0.1");
    } else {
        if (hl >= cap)
            return qr_fail(QR_EINVAL, "listen \"%s\": host too long", s);
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    *port = (int)p;
    return 0;
}

/* ---------------------------------------------------------------- HTTP client */

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int wait_fd(int fd, short ev, double deadline)
{
    for (;;) {
        double left = deadline - mono_ms();
        if (left <= 0)
            return QR_ECANCELED;
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int)left + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return QR_EIO;
        if (r > 0)
            return 0;
    }
}

static int connect_to(const char *host, int port, double deadline, int *fd_out)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g)
        return qr_fail(QR_EIO, "%s: %s", host, gai_strerror(g));
    int rc = QR_EIO, err = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(fd);
            continue;
        }
        int w = wait_fd(fd, POLLOUT, deadline);
        socklen_t sl = sizeof err;
        if (w == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err == 0) {
            *fd_out = fd;
            rc = 0;
            break;
        }
        if (w == QR_ECANCELED) {
            close(fd);
            rc = QR_ECANCELED;
            err = ETIMEDOUT;
            break;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    if (rc)
        return qr_fail(rc, "connect %s:%d: %s", host, port, strerror(err ? err : ECONNREFUSED));
    return 0;
}

/* Decodes a chunked body in place; returns the decoded length or -1. */
static long dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= n)
            return -1;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = strstr(b + in, "\r\n");
        if (!crlf || end == b + in)
            return -1;
        in = (size_t)(crlf - b) + 2;
        if (sz == 0)
            return (long)out;
        if (in + sz + 2 > n)
            return -1;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
}

int qr_http_request(const char *host, int port, const char *method, const char *path, const char *token,
                    const char *content_type, const char *body, size_t body_len, int timeout_ms, int *status,
                    char **resp_body, size_t *resp_len)
{
    double deadline = mono_ms() + timeout_ms;
    int fd = -1, rc;
    if ((rc = connect_to(host, port, deadline, &fd)))
        return rc;
    bool v6 = strchr(host, ':') != NULL;
    char *req = NULL;
    size_t rl = 0;
    FILE *f = open_memstream(&req, &rl);
    if (!f) {
        close(fd);
        return qr_fail(QR_ENOMEM, "http request");
    }
    fprintf(f, "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nConnection: close\r\nUser-Agent: quire\r\n", method, path,
            v6 ? "[" : "", host, v6 ? "]" : "", port);
    if (token && *token)
        fprintf(f, "Authorization: Bearer %s\r\n", token);
    if (body) {
        fprintf(f, "Content-Type: %s\r\nContent-Length: %zu\r\n", content_type ? content_type : "application/json",
                body_len);
    }
    fputs("\r\n", f);
    if (body)
        fwrite(body, 1, body_len, f);
    fclose(f);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    size_t off = 0;
    while (off < rl) {
        if ((rc = wait_fd(fd, POLLOUT, deadline)))
            goto done;
        ssize_t w = send(fd, req + off, rl - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0) {
            rc = qr_fail(QR_EIO, "send to %s:%d: %s", host, port, strerror(errno));
            goto done;
        }
        off += (size_t)w;
    }
    for (;;) {
        if ((rc = wait_fd(fd, POLLIN, deadline))) {
            rc = qr_fail(rc, "%s:%d: no complete response within %d ms", host, port, timeout_ms);
            goto done;
        }
        if (len + 4096 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, nc);
            if (!nb) {
                rc = qr_fail(QR_ENOMEM, "http response");
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0) {
            rc = qr_fail(QR_EIO, "recv from %s:%d: %s", host, port, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (!buf) {
        rc = qr_fail(QR_EFORMAT, "%s:%d: empty response", host, port);
        goto done;
    }
    buf[len] = '\0';
    int st = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1) {
        rc = qr_fail(QR_EFORMAT, "%s:%d: not an HTTP response", host, port);
        goto done;
    }
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend) {
        rc = qr_fail(QR_EFORMAT, "%s:%d: response headers incomplete", host, port);
        goto done;
    }
    *hend = '\0';
    bool chunked = false;
    for (char *h = strstr(buf, "\r\n"); h && *h; h = strstr(h + 2, "\r\n")) {
        if (!strncasecmp(h + 2, "transfer-encoding:", 18) && strcasestr(h + 2, "chunked"))
            chunked = true;
    }
    char *b = hend + 4;
    size_t bl = len - (size_t)(b - buf);
    if (chunked) {
        long d = dechunk(b, bl);
        if (d < 0) {
            rc = qr_fail(QR_EFORMAT, "%s:%d: bad chunked body", host, port);
            goto done;
        }
        bl = (size_t)d;
    }
    *status = st;
    if (resp_body) {
        char *o = malloc(bl + 1);
        if (!o) {
            rc = qr_fail(QR_ENOMEM, "http response");
            goto done;
        }
        memcpy(o, b, bl);
        o[bl] = '\0';
        *resp_body = o;
        if (resp_len)
            *resp_len = bl;
    }
    rc = 0;
done:
    free(req);
    free(buf);
    close(fd);
    return rc;
}
