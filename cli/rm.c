/* quire rm PATH... --store DIR [--json]
 *
 * Deletes the documents of each PATH from the store: a file, a JSONL file's
 * records, or every file under a directory (paths are made absolute and
 * canonical as far as they still exist, so a deleted file can be named).
 * A PATH that matches nothing is reported as skipped ("not in store"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "ingest/pipeline.h"

int cli_rm(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_STORE, QR_OPT_JSON, QR_OPT_LOG_LEVEL, -1};
    char **oargv = calloc((size_t)argc + 1, sizeof *oargv), **paths = calloc((size_t)argc + 1, sizeof *paths);
    qr_options *o = NULL;
    qr_ingest_report rep;
    memset(&rep, 0, sizeof rep);
    int code, oargc = 0, np = 0;
    if (!oargv || !paths) {
        free(oargv);
        free(paths);
        fprintf(stderr, "quire rm: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    cli_split_paths(argc, argv, oargv, &oargc, paths, &np);
    code = cli_load_options("rm", "PATH... --store DIR [--json]",
                            "Deletes the documents of files (or of every file under a directory) from the store.",
                            oargc, oargv, allowed, &o);
    if (code >= 0)
        goto fail;
    const char *store = qr_opt_str(o, QR_OPT_STORE);
    if (!*store || np == 0) {
        fprintf(stderr, "quire rm: usage: quire rm PATH... --store DIR\n");
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    int rc = qr_ingest_remove(store, (const char *const *)paths, (size_t)np, &rep);
    if (rc) {
        code = cli_fail("rm", rc, NULL);
        goto fail;
    }
    code = cli_print_ingest_report(&rep, qr_opt_bool(o, QR_OPT_JSON), "rm");
fail:
    qr_ingest_report_free(&rep);
    qr_options_free(o);
    free(oargv);
    free(paths);
    return code;
}
