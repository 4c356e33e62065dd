/* Helpers shared by the subcommands: options + --help, error reporting and
 * exit codes, model resolution, device check, bounded stdin reading. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"

int cli_exit_code(int rc)
{
    switch (rc) {
    case QR_OK: return CLI_EXIT_OK;
    case QR_EINVAL: return CLI_EXIT_USAGE;
    case QR_ELIMIT: return CLI_EXIT_INPUT;
    case QR_ENOTFOUND: return CLI_EXIT_NOTFOUND;
    case QR_EUNSUPPORTED: return CLI_EXIT_UNSUPPORTED;
    default: return CLI_EXIT_ERROR;
    }
}

int cli_fail(const char *cmd, int rc, const char *what)
{
    const char *detail = qr_last_error();
    if (what && *what)
        fprintf(stderr, "quire %s: %s: %s\n", cmd, what, *detail ? detail : qr_strerror(rc));
    else
        fprintf(stderr, "quire %s: %s\n", cmd, *detail ? detail : qr_strerror(rc));
    return cli_exit_code(rc);
}

int cli_load_options(const char *cmd, const char *synopsis, const char *about, int argc, char **argv,
                     const int *allowed, qr_options **out)
{
    qr_options *o = NULL;
    int rc = qr_options_create(&o);
    if (rc)
        return cli_fail(cmd, rc, "options");
    rc = qr_options_load(o, argc - 1, argv + 1, allowed);
    if (rc) {
        int code = cli_fail(cmd, rc, NULL);
        if (rc == QR_EINVAL)
            fprintf(stderr, "(quire %s --help lists its options)\n", cmd);
        qr_options_free(o);
        return code;
    }
    if (qr_opt_bool(o, QR_OPT_HELP)) {
        char *help = NULL;
        printf("usage: quire %s %s\n\n%s\n\noptions:\n", cmd, synopsis, about);
        int all[QR_OPT_COUNT + 1], n = 0;
        for (int i = 0; i < QR_OPT_COUNT; i++)
            if (!(qr_option_def_at(i)->flags & QR_OPTF_CLI) || i == QR_OPT_HELP || i == QR_OPT_DUMP_DEFAULT)
                all[n++] = i;
        all[n] = -1;
        if (qr_options_render_help(allowed ? allowed : all, &help) == 0)
            fputs(help, stdout);
        free(help);
        printf("  %-22s %s\n", "--config FILE", "read options from FILE (else $QUIRE_CONFIG; see configs/quire.conf)");
        printf("\nEvery option except the command switches can also be set as QUIRE_NAME in the environment\n"
               "or `name = value` in the config file; flags win over the environment, which wins over the file.\n");
        qr_options_free(o);
        return CLI_EXIT_OK;
    }
    if (qr_options_n_positional(o) > 0) {
        fprintf(stderr, "quire %s: unexpected argument \"%s\" (options are --name VALUE; see --help)\n", cmd,
                qr_options_positional(o, 0));
        qr_options_free(o);
        return CLI_EXIT_USAGE;
    }
    static const struct { const char *name; qr_log_level level; } levels[] = {
        {"error", QR_LOG_ERROR}, {"warn", QR_LOG_WARN}, {"info", QR_LOG_INFO}, {"debug", QR_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (!strcmp(qr_opt_str(o, QR_OPT_LOG_LEVEL), levels[i].name))
            qr_log_set_level(levels[i].level);
    *out = o;
    return -1;
}

int cli_read_lines(const char *cmd, const qr_options *o, cli_line_fn fn, void *user)
{
    size_t max_bytes = (size_t)qr_opt_int(o, QR_OPT_MAX_LINE_BYTES);
    size_t max_lines = (size_t)qr_opt_int(o, QR_OPT_MAX_LINES);
    size_t cap = 4096, len = 0, lineno = 0;
    char *buf = malloc(cap);
    int code = CLI_EXIT_OK, c;
    if (!buf) {
        fprintf(stderr, "quire %s: out of memory\n", cmd);
        return CLI_EXIT_ERROR;
    }
    for (;;) {
        c = getchar();
        if (c != EOF && c != '\n') {
            if (len >= max_bytes) {
                fprintf(stderr, "quire %s: stdin line %zu: longer than max-line-bytes = %zu (%s)\n", cmd,
                        lineno + 1, max_bytes, qr_opt_origin(o, QR_OPT_MAX_LINE_BYTES));
                code = CLI_EXIT_INPUT;
                break;
            }
            if (len + 1 >= cap) {
                char *g = realloc(buf, cap * 2);
                if (!g) {
                    fprintf(stderr, "quire %s: out of memory\n", cmd);
                    code = CLI_EXIT_ERROR;
                    break;
                }
                buf = g;
                cap *= 2;
            }
            buf[len++] = (char)c;
            continue;
        }
        if (c == EOF && len == 0)
            break;
        lineno++;
        if (lineno > max_lines) {
            fprintf(stderr, "quire %s: stdin: more than max-lines = %zu lines (%s)\n", cmd, max_lines,
                    qr_opt_origin(o, QR_OPT_MAX_LINES));
            code = CLI_EXIT_INPUT;
            break;
        }
        if (len && buf[len - 1] == '\r')
            len--;
        buf[len] = '\0';
        if ((code = fn(buf, len, lineno, user)) != 0)
            break;
        len = 0;
        if (c == EOF)
            break;
    }
    if (!code && ferror(stdin)) {
        fprintf(stderr, "quire %s: stdin: read error\n", cmd);
        code = CLI_EXIT_ERROR;
    }
    free(buf);
    return code;
}

int cli_read_all(const char *cmd, const qr_options *o, char **out, size_t *len_out)
{
    size_t max_bytes = (size_t)qr_opt_int(o, QR_OPT_MAX_LINE_BYTES);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fprintf(stderr, "quire %s: out of memory\n", cmd);
        return CLI_EXIT_ERROR;
    }
    for (;;) {
        if (len == cap) {
            char *g = realloc(buf, cap * 2 + 1);
            if (!g) {
                free(buf);
                fprintf(stderr, "quire %s: out of memory\n", cmd);
                return CLI_EXIT_ERROR;
            }
            buf = g;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (len > max_bytes) {
            free(buf);
            fprintf(stderr, "quire %s: stdin: longer than max-line-bytes = %zu (%s)\n", cmd, max_bytes,
                    qr_opt_origin(o, QR_OPT_MAX_LINE_BYTES));
            return CLI_EXIT_INPUT;
        }
        if (n == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        fprintf(stderr, "quire %s: stdin: read error\n", cmd);
        return CLI_EXIT_ERROR;
    }
    buf[len] = '\0';
    *out = buf;
    *len_out = len;
    return CLI_EXIT_OK;
}

const char *cli_bytes(double bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 4) {
        bytes /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", bytes);
    else
        snprintf(buf, len, "%.*f %s", bytes < 10 ? 2 : bytes < 100 ? 1 : 0, bytes, units[u]);
    return buf;
}
