/* quire wait ENDPOINT_FILE [--timeout S]
 *
 * For batch scripts, instead of `sleep 10`: polls until the endpoint file
 * written by `quire serve` exists and GET /ready on the server it names
 * answers 200 (sending the bearer token from its token_file when it has
 * one), then prints the server's URL and exits 0. After --timeout seconds
 * (default 60) it exits 1 saying what it was still waiting for. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/error.h"
#include "service/endpoint.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_wait(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_TIMEOUT, QR_OPT_JSON, QR_OPT_LOG_LEVEL, -1};
    qr_options *o = NULL;
    char **oargv = calloc((size_t)argc + 1, sizeof *oargv), **files = calloc((size_t)argc + 1, sizeof *files);
    int oargc = 0, nfiles = 0;
    if (!oargv || !files) {
        free(oargv);
        free(files);
        fprintf(stderr, "quire wait: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    cli_split_paths(argc, argv, oargv, &oargc, files, &nfiles);
    int code = cli_load_options("wait", "ENDPOINT_FILE [--timeout S] [--json]",
                                "Blocks until the endpoint file written by `quire serve` exists and the server it names\n"
                                "answers GET /ready with 200 (using the token file it names, if any); prints the URL\n"
                                "(--json: the endpoint object) and exits 0. Exits 1 after --timeout seconds.",
                                oargc, oargv, allowed, &o);
    if (code >= 0) {
        free(oargv);
        free(files);
        return code;
    }
    code = CLI_EXIT_OK;
    if (nfiles != 1) {
        fprintf(stderr, "quire wait: expected one ENDPOINT_FILE argument (got %d)\n", nfiles);
        qr_options_free(o);
        free(oargv);
        free(files);
        return CLI_EXIT_USAGE;
    }
    const char *path = files[0];
    double timeout = qr_opt_float(o, QR_OPT_TIMEOUT);
    double t0 = mono(), deadline = t0 + timeout;
    char last[700] = "the endpoint file to appear";
    qr_endpoint ep;
    char *token = NULL, *body = NULL;
    int delay_ms = 50;
    for (;;) {
        int rc = qr_endpoint_read(path, &ep);
        if (rc == 0) {
            free(token);
            token = NULL;
            if (ep.token_file[0] && (rc = qr_token_read(ep.token_file, &token)))
                snprintf(last, sizeof last, "the token file (%s)", qr_last_error());
            if (!rc) {
                double left_ms = (deadline - mono()) * 1000;
                int status = 0;
                int to = left_ms < 2000 ? (int)(left_ms > 50 ? left_ms : 50) : 2000;
                free(body);
                body = NULL;
                rc = qr_http_request(ep.host, ep.port, "GET", "/ready", token, NULL, NULL, 0, to, &status, &body,
                                     NULL);
                if (rc == 0 && status == 200)
                    break;
                if (rc == 0)
                    snprintf(last, sizeof last, "%s:%d/ready to answer 200 (got %d: %.200s)", ep.host, ep.port, status,
                             body ? body : "");
                else
                    snprintf(last, sizeof last, "%s:%d/ready (%s)", ep.host, ep.port, qr_last_error());
            }
        } else if (rc != QR_ENOTFOUND) {
            snprintf(last, sizeof last, "a complete endpoint file (%s)", qr_last_error());
        }
        double now = mono();
        if (now >= deadline) {
            fprintf(stderr, "quire wait: timed out after %.0f s waiting for %s (endpoint file %s)\n", timeout, last,
                    path);
            code = CLI_EXIT_ERROR;
            goto out;
        }
        double sl = (double)delay_ms / 1000.0;
        if (now + sl > deadline)
            sl = deadline - now;
        struct timespec ts = {(time_t)sl, (long)((sl - (double)(time_t)sl) * 1e9)};
        nanosleep(&ts, NULL);
        if (delay_ms < 500)
            delay_ms *= 2;
    }
    if (qr_opt_bool(o, QR_OPT_JSON)) {
        json_t *j = json_pack("{s:s, s:s, s:i, s:f}", "url", ep.url, "host", ep.host, "port", ep.port, "waited_s",
                              mono() - t0);
        char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        printf("%s\n", t ? t : "{}");
        free(t);
    } else
        printf("%s\n", ep.url[0] ? ep.url : ep.host);
out:
    free(body);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    qr_options_free(o);
    free(oargv);
    free(files);
    return code;
}
