/* quire config: shows the effective option values and where each came from,
 * or (--dump-default) the text of configs/quire.conf rendered from the table. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_config(int argc, char **argv)
{
    qr_options *o = NULL;
    int code = cli_load_options("config", "[--dump-default] [--NAME VALUE ...]",
                                "Prints every option's effective value with its origin (flag, environment, "
                                "config file or default),\nor with --dump-default the documented default "
                                "configuration (configs/quire.conf).",
                                argc, argv, NULL, &o);
    if (code >= 0)
        return code;
    char *text = NULL;
    int rc = qr_opt_bool(o, QR_OPT_DUMP_DEFAULT) ? qr_options_render_conf(&text) : qr_options_render_values(o, &text);
    if (rc) {
        qr_options_free(o);
        return cli_fail("config", rc, NULL);
    }
    if (!qr_opt_bool(o, QR_OPT_DUMP_DEFAULT) && qr_options_config_path(o))
        printf("# config file: %s\n", qr_options_config_path(o));
    fputs(text, stdout);
    free(text);
    qr_options_free(o);
    return CLI_EXIT_OK;
}
