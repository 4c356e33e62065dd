/* service/endpoint.h: listen-address parsing, loopback detection, the
 * endpoint file (atomic write, read back, refusal of incomplete files),
 * token files (mode 0600, 64 hex digits, first line trimmed), the tiny
 * HTTP client against a socket that never answers (timeout), and
 * `quire wait` (timeout exit 1 with a message; exit 0 once a server answers). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "service/endpoint.h"
#include "service/server.h"
#include "ingest/pipeline.h"
#include "tests/unit/test.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_listen(void)
{
    char h[256];
    int p = -1;
    CHECK_OK(qr_listen_parse("127.0.0.1:8080", h, sizeof h, &p));
    CHECK_STR(h, "127.0.0.1");
    CHECK_INT(p, 8080);
    CHECK_OK(qr_listen_parse("[::1]:0", h, sizeof h, &p));
    CHECK_STR(h, "::1");
    CHECK_INT(p, 0);
    CHECK_OK(qr_listen_parse(":9000", h, sizeof h, &p));
    CHECK_STR(h, "127.0.0.1");
    CHECK_INT(p, 9000);
    CHECK_OK(qr_listen_parse("node17.cluster:65535", h, sizeof h, &p));
    CHECK_STR(h, "node17.cluster");
    CHECK_INT(qr_listen_parse("127.0.0.1", h, sizeof h, &p), QR_EINVAL);
    CHECK_INT(qr_listen_parse("127.0.0.1:65536", h, sizeof h, &p), QR_EINVAL);
    CHECK_INT(qr_listen_parse("127.0.0.1:-1", h, sizeof h, &p), QR_EINVAL);
    CHECK_INT(qr_listen_parse("127.0.0.1:", h, sizeof h, &p), QR_EINVAL);
    CHECK_INT(qr_listen_parse("::1:80", h, sizeof h, &p), QR_EINVAL);
    CHECK_INT(qr_listen_parse("[::1]80", h, sizeof h, &p), QR_EINVAL);

    CHECK(qr_host_is_loopback("127.0.0.1"));
    CHECK(qr_host_is_loopback("127.3.2.1"));
    CHECK(qr_host_is_loopback("::1"));
    CHECK(qr_host_is_loopback("localhost"));
    CHECK(!qr_host_is_loopback("0.0.0.0"));
    CHECK(!qr_host_is_loopback("10.1.2.3"));
    CHECK(!qr_host_is_loopback("::"));
    CHECK(!qr_host_is_loopback("node17"));
}

static void test_files(const char *dir)
{
    char ep[512], tok[512];
    snprintf(ep, sizeof ep, "%s/ep.json", dir);
    snprintf(tok, sizeof tok, "%s/token", dir);
    qr_endpoint e;
    CHECK_INT(qr_endpoint_read(ep, &e), QR_ENOTFOUND);
    char *t = NULL;
    CHECK_OK(qr_token_create(tok, &t));
    CHECK(t && strlen(t) == 64 && strspn(t, "0123456789abcdef") == 64);
    struct stat st;
    CHECK(stat(tok, &st) == 0 && (st.st_mode & 0777) == 0600);
    char *t2 = NULL;
    CHECK_OK(qr_token_read(tok, &t2));
    CHECK_STR(t2, t);
    free(t2);
    t2 = NULL;
    FILE *f = fopen(tok, "w");
    fputs("  abc-DEF_123  \nsecond line\n", f);
    fclose(f);
    CHECK_OK(qr_token_read(tok, &t2));
    CHECK_STR(t2, "abc-DEF_123");
    free(t2);
    f = fopen(tok, "w");
    fputs("\n", f);
    fclose(f);
    t2 = NULL;
    CHECK_INT(qr_token_read(tok, &t2), QR_EFORMAT);
    f = fopen(tok, "w");
    fputs("has space\n", f);
    fclose(f);
    CHECK_INT(qr_token_read(tok, &t2), QR_EFORMAT);
    free(t);

    CHECK_OK(qr_endpoint_write(ep, "127.0.0.1", 4242, tok));
    CHECK_OK(qr_endpoint_read(ep, &e));
    CHECK_STR(e.host, "127.0.0.1");
    CHECK_INT(e.port, 4242);
    CHECK_STR(e.url, "http://127.0.0.1:4242");
    CHECK_STR(e.token_file, tok);
    CHECK_INT(e.pid, getpid());
    CHECK_OK(qr_endpoint_write(ep, "::1", 80, NULL));
    CHECK_OK(qr_endpoint_read(ep, &e));
    CHECK_STR(e.url, "http://[::1]:80");
    CHECK_STR(e.token_file, "");
    /* no temporary file left behind */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", ep, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    /* half a file is refused, not misread */
    f = fopen(ep, "w");
    fputs("{\"host\": \"127.0.0.1\", \"po", f);
    fclose(f);
    CHECK_INT(qr_endpoint_read(ep, &e), QR_EFORMAT);
    f = fopen(ep, "w");
    fputs("{\"host\": \"127.0.0.1\", \"port\": 0}", f);
    fclose(f);
    CHECK_INT(qr_endpoint_read(ep, &e), QR_EFORMAT);
}

/* A listening socket that accepts but never answers: the client gives up on time. */
static void test_client_timeout(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    int status = 0;
    char *body = NULL;
    double t0 = mono();
    int rc = qr_http_request("127.0.0.1", ntohs(a.sin_port), "GET", "/ready", NULL, NULL, NULL, 0, 300, &status,
                             &body, NULL);
    double dt = mono() - t0;
    CHECK_INT(rc, QR_ECANCELED);
    CHECK_MSG(dt >= 0.25 && dt < 10.0, "timed out after %.3f s", dt); /* upper bound: no hang (loaded CI) */
    close(fd);
    /* nothing listening: refused at once */
    CHECK_INT(qr_http_request("127.0.0.1", ntohs(a.sin_port), "GET", "/", NULL, NULL, NULL, 0, 1000, &status, &body,
                              NULL),
              QR_EIO);
}

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_wait_cli(const char *dir)
{
    const char *bin = getenv("QUIRE_BIN");
    if (!bin) {
        fprintf(stderr, "QUIRE_BIN not set: quire wait not tested\n");
        return;
    }
    char cmd[1200], out[4096], ep[512];
    snprintf(ep, sizeof ep, "%s/wait-ep.json", dir);
    snprintf(cmd, sizeof cmd, "%s wait %s --timeout 0.3 2>&1", bin, ep);
    double t0 = mono();
    CHECK_INT(run(cmd, out, sizeof out), 1);
    CHECK(mono() - t0 < 15.0); /* no hang; process start-up can be slow on a loaded machine */
    CHECK_MSG(strstr(out, "timed out") && strstr(out, "endpoint file"), "%s", out);

    /* a real server on a BM25 store: wait exits 0 and prints the URL; with a token file it sends the token */
    char store[512], tok[512];
    snprintf(store, sizeof store, "%s/store", dir);
    snprintf(tok, sizeof tok, "%s/wait-token", dir);
    const char *paths[] = {FIXTURE("ingest/guide.md")};
    qr_ingest_opts io;
    qr_ingest_opts_default(&io);
    io.map_size = 16u << 20;
    qr_ingest_report rep;
    CHECK_OK(qr_ingest_run(store, paths, 1, &io, &rep));
    qr_ingest_report_free(&rep);
    char *token = NULL;
    CHECK_OK(qr_token_create(tok, &token));
    qr_server_opts o;
    qr_server_opts_default(&o);
    o.store_dir = store;
    o.token = token;
    qr_server *s = NULL;
    CHECK_OK(qr_server_start(&o, &s));
    if (!s) {
        free(token);
        return;
    }
    CHECK_OK(qr_endpoint_write(ep, "127.0.0.1", qr_server_port(s), tok));
    snprintf(cmd, sizeof cmd, "%s wait %s --timeout 10 --json 2>&1", bin, ep);
    CHECK_INT(run(cmd, out, sizeof out), 0);
    char url[64];
    snprintf(url, sizeof url, "\"url\":\"http://127.0.0.1:%d\"", qr_server_port(s));
    CHECK_MSG(strstr(out, url) != NULL, "%s", out);
    /* the wrong token: /ready answers 401, so wait times out saying so */
    FILE *f = fopen(tok, "w");
    fputs("not-the-token\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s wait %s --timeout 3 2>&1", bin, ep); /* long enough for one 401 when loaded */
    CHECK_INT(run(cmd, out, sizeof out), 1);
    CHECK_MSG(strstr(out, "401") != NULL, "%s", out);
    qr_server_stop(s);
    free(token);
}

int main(void)
{
    qr_log_set_level(QR_LOG_WARN);
    char dir[] = "/tmp/quire-test-endpoint-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    test_listen();
    test_files(dir);
    test_client_timeout();
    test_wait_cli(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return qr_test_done();
}
