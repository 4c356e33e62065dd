/* Subcommands. Each takes (argc, argv) with argv[0] = the command name and
 * returns the process exit code. */
#ifndef QR_CLI_H
#define QR_CLI_H

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,  /* the command failed (see the message) */
    CLI_EXIT_USAGE = 2,  /* bad command line or option value */
};

int cli_version(int argc, char **argv);

#endif
