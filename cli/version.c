/* quire version [--json] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_version(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_JSON, -1};
    qr_options *o = NULL;
    int code = cli_load_options("version", "[--json]", "Prints quire's version.", argc, argv, allowed, &o);
    if (code >= 0)
        return code;
    if (qr_opt_bool(o, QR_OPT_JSON)) {
        json_t *j = json_pack("{s:s, s:s}", "name", "quire", "version", QUIRE_VERSION);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            puts(s);
        free(s);
        json_decref(j);
        code = s ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    } else {
        printf("quire %s\n", QUIRE_VERSION);
        code = CLI_EXIT_OK;
    }
    qr_options_free(o);
    return code;
}
