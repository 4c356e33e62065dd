#include <stdio.h>

#include "cli/cli.h"

int cli_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("quire %s\n", QUIRE_VERSION);
    return CLI_EXIT_OK;
}
