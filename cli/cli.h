/* Subcommands. Each takes (argc, argv) with argv[0] = the command name and
 * returns the process exit code. The CLI is the only code that prints
 * results or exits; errors go to stderr as "quire CMD: detail". */
#ifndef QR_CLI_H
#define QR_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/options.h"

/* Exit codes (documented in README.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,       /* the command failed (corrupt model file, compute error, ...) */
    CLI_EXIT_USAGE = 2,       /* bad command line, option value or config file */
    CLI_EXIT_INPUT = 3,       /* malformed or over-limit stdin (bad JSON line, line too long, too many lines) */
    CLI_EXIT_NOTFOUND = 4,    /* the model (or another named file) does not exist or is incomplete */
    CLI_EXIT_UNSUPPORTED = 5, /* valid request this build or model cannot do (cuda not built, arch, sharding) */
};

int cli_version(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_eval(int argc, char **argv);
/* quire eval perplexity (cli/perplexity.c); argv[0] = "perplexity". */
int cli_eval_perplexity(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_ask(int argc, char **argv);
int cli_ingest(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_merge(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_wait(int argc, char **argv);

/* ---- helpers shared by the subcommands (cli/util.c) ---- */

/* Loads options for command cmd (file, env, flags; allowed: -1 terminated ids)
 * and applies log-level. Returns -1 when the caller should continue, else the
 * exit code to return (usage error, or 0 after printing --help). */
int cli_load_options(const char *cmd, const char *synopsis, const char *about, int argc, char **argv,
                     const int *allowed, qr_options **out);

/* Prints "quire CMD: <what>: <qr_last_error or strerror>" and maps a QR_E* code to an exit code. */
int cli_fail(const char *cmd, int rc, const char *what);
int cli_exit_code(int rc);

/* Resolves the model argument (--model, or for embed --embedder) through
 * qr_model_resolve; *path malloc'd. Returns -1 to continue or an exit code. */
int cli_resolve_model(const char *cmd, const qr_options *o, int id, char **path);

/* Picks the device from --device: *cuda = -1 for the CPU, else the CUDA
 * ordinal. auto: the first GPU qr_cuda_devices finds (listing every GPU seen on
 * stderr), else the CPU with one line saying why. cpu: the CPU. cuda[:N] when
 * that GPU is not usable (not built, no driver, no device): prints why and
 * returns CLI_EXIT_UNSUPPORTED. *used (may be NULL) gets the chosen GPU's
 * listing. Returns -1 to continue or an exit code. */
struct qr_gpu_info;
int cli_pick_device(const char *cmd, const qr_options *o, int *cuda, struct qr_gpu_info *used);
/* cli_pick_device without the answer (checks only). */
int cli_check_device(const char *cmd, const qr_options *o);

/* Reads stdin lines with limits (max-line-bytes, max-lines). Calls fn on each
 * line (without its '\n'; a trailing '\r' is kept out as well). */
typedef int (*cli_line_fn)(const char *line, size_t len, size_t lineno, void *user);
int cli_read_lines(const char *cmd, const qr_options *o, cli_line_fn fn, void *user);
/* Reads all of stdin (limit max-line-bytes) into *out (malloc'd, NUL-terminated). */
int cli_read_all(const char *cmd, const qr_options *o, char **out, size_t *len);

/* Resolves model option id, picks the device (cli_pick_device), creates the
 * CUDA backend there or the CPU backend (threads) and loads the model at --dtype, printing the load line
 * ("weights bf16 → f32 (1.2 MB)") on stderr at log-level info. Returns -1 on
 * success (*be, *m set; free with qr_model_free then qr_backend_destroy) or
 * an exit code after printing the error. */
/* Logs, once per process, the GPUs the Slurm allocation gives against those
 * used (common/slurm.h; a loud warning when some would stay idle). */
struct qr_gpu_info;
void cli_log_gpus(const struct qr_gpu_info *used, int n_used);

struct qr_backend;
struct qr_model;
int cli_open_model(const char *cmd, const qr_options *o, int id, struct qr_backend **be, struct qr_model **m);
/* cli_open_model for a path already resolved (by cli_resolve_model or
 * qr_model_resolve), so a caller that needs the path resolves it once. */
int cli_load_model(const char *cmd, const qr_options *o, const char *path, struct qr_backend **be,
                   struct qr_model **m);
/* cli_load_model / cli_open_model for a language model: they honour --tp
 * (tensor-parallel ranks; the model then owns its backends and *be is NULL). */
int cli_load_llm(const char *cmd, const qr_options *o, const char *path, struct qr_backend **be,
                 struct qr_model **m);
int cli_open_llm(const char *cmd, const qr_options *o, int id, struct qr_backend **be, struct qr_model **m);

/* Storage dtypes of the 2-D tensors of a weight source, largest share first:
 * "bf16", "f16+f32", "q4_k+q6_k+f32". Empty when the source has no tensors. */
struct qr_wsrc;
void cli_storage_dtypes(const struct qr_wsrc *s, char *buf, size_t len);

/* ingest/rm (cli/ingest.c): splits argv into option arguments (opt_argv,
 * argv[0] first) and positional paths; arrays need argc entries. */
int cli_split_paths(int argc, char **argv, char **opt_argv, int *opt_argc, char **paths, int *n_paths);
struct qr_ingest_report;
/* Prints the one-line summary (skips on stderr) or, with json, the JSON report. */
int cli_print_ingest_report(const struct qr_ingest_report *r, bool json, const char *cmd);

/* "1.2 MB" style (decimal units) into buf. */
const char *cli_bytes(double bytes, char *buf, size_t len);

#endif
