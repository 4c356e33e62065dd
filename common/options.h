/* The one option table. Every setting a user can change is declared once in
 * common/options.c (name, type, bounds, default, help, section) and reaches
 * quire through three sources, highest precedence first:
 *
 *   1. command-line flags   --name VALUE, --name=VALUE, --name for bools
 *                           (--no-name sets a bool false)
 *   2. environment          QUIRE_<NAME>: upper case, '-' becomes '_'
 *                           (QUIRE_MAX_TOKENS=64)
 *   3. config file          `name = value` lines, '#' starts a comment line;
 *                           the file is --config FILE, else $QUIRE_CONFIG;
 *                           with neither, no file is read
 *   4. the default in the table
 *
 * A repeatable option (stop) collects every value given by its highest
 * source: three --stop flags give three stop strings and replace any from
 * the environment or file. In the environment a repeatable option takes one
 * value. In the config file a value may be written in double quotes with
 * JSON escapes (\n, \t, \", \\, \uXXXX) to keep spaces or write newlines.
 *
 * Errors name the source (file:line, environment variable, flag), the option
 * and the violated bound; an unknown key or flag is an error with the
 * nearest known name as a suggestion. This module is the only place that
 * reads QUIRE_* environment variables for options.
 *
 * Options marked QR_OPTF_CLI are per-invocation switches (--prompt, --jsonl):
 * they are flags only, never read from the file or environment, and do not
 * appear in configs/quire.conf. */
#ifndef QR_COMMON_OPTIONS_H
#define QR_COMMON_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { QR_OPT_INT = 0, QR_OPT_FLOAT, QR_OPT_STRING, QR_OPT_BOOL, QR_OPT_ENUM } qr_opt_type;

/* Where an option's value came from. */
typedef enum { QR_SRC_DEFAULT = 0, QR_SRC_FILE, QR_SRC_ENV, QR_SRC_FLAG } qr_opt_source;

enum {
    QR_OPTF_REPEAT = 1 << 0, /* string option that may be given many times (a list) */
    QR_OPTF_CLI = 1 << 1,    /* command-line only: not from file/env, not in quire.conf */
};

/* Ids index the table; keep in the order of the table in options.c. */
typedef enum {
    /* [model] */
    QR_OPT_MODEL = 0,
    QR_OPT_EMBEDDER,
    QR_OPT_DTYPE,
    QR_OPT_KV_DTYPE,
    /* [runtime] */
    QR_OPT_DEVICE,
    QR_OPT_THREADS,
    QR_OPT_TP,
    QR_OPT_CTX,
    QR_OPT_BATCH,
    QR_OPT_LOG_LEVEL,
    /* [generate] */
    QR_OPT_MAX_TOKENS,
    QR_OPT_TEMPERATURE,
    QR_OPT_TOP_K,
    QR_OPT_TOP_P,
    QR_OPT_MIN_P,
    QR_OPT_REPEAT_PENALTY,
    QR_OPT_REPEAT_LAST_N,
    QR_OPT_SEED,
    QR_OPT_STOP,
    /* [limits] */
    QR_OPT_MAX_LINE_BYTES,
    QR_OPT_MAX_LINES,
    /* [estimate] */
    QR_OPT_HEADROOM,
    /* command-line switches (QR_OPTF_CLI) */
    QR_OPT_PROMPT,
    QR_OPT_JSONL,
    QR_OPT_ADD_SPECIAL,
    QR_OPT_IDS,
    QR_OPT_JSON,
    QR_OPT_HELP,
    QR_OPT_DUMP_DEFAULT,
    /* search helper: [search] retrieval options, then its CLI switch */
    QR_OPT_K,
    QR_OPT_RERANKER,
    QR_OPT_RRF_K,
    QR_OPT_WEIGHT_DENSE,
    QR_OPT_WEIGHT_BM25,
    QR_OPT_MMR_LAMBDA,
    QR_OPT_DUP_THRESHOLD,
    QR_OPT_MAX_PER_DOC,
    QR_OPT_RERANK_DEPTH,
    QR_OPT_FILTER,
    /* ingest helper: [store] [ingest] */
    QR_OPT_STORE,
    QR_OPT_CHUNK_TOKENS,
    QR_OPT_CHUNK_OVERLAP,
    QR_OPT_FAISS_INDEX,
    QR_OPT_JOBS,
    QR_OPT_MAX_FILE_BYTES,
    QR_OPT_HIDDEN,
    QR_OPT_PRUNE,
    QR_OPT_FORCE,
    /* slurm helper: command-line switch */
    QR_OPT_SHARD,
    /* pipe3 helper: quire eval retrieval switches; BM25 parameters [search] */
    QR_OPT_BEIR,
    QR_OPT_SPLIT,
    QR_OPT_BM25_K1,
    QR_OPT_BM25_B,
    QR_OPT_HITS,
    /* embed helper: quire eval retrieval --protocol */
    QR_OPT_PROTOCOL,
    /* serve helper: [serve] */
    QR_OPT_LISTEN,
    QR_OPT_TOKEN_FILE,
    QR_OPT_ENDPOINT_FILE,
    QR_OPT_SLOTS,
    QR_OPT_QUEUE,
    QR_OPT_MAX_INFLIGHT,
    QR_OPT_GRACE,
    QR_OPT_MAX_BODY_BYTES,
    QR_OPT_MAX_JSON_DEPTH,
    QR_OPT_MAX_STRING_BYTES,
    QR_OPT_MAX_K,
    QR_OPT_MAX_GEN_TOKENS,
    QR_OPT_MAX_INPUTS,
    QR_OPT_MAX_MESSAGES,
    QR_OPT_TIMEOUT,
    QR_OPT_IDLE_TIMEOUT,
    /* cudaa helper: CUDA backend */
    QR_OPT_ACT_DTYPE,
    /* ingestmsg helper: [ingest] */
    QR_OPT_PROGRESS_INTERVAL,
    /* formats helper: quire ingest switches (ingest/filter.h) */
    QR_OPT_INCLUDE,
    QR_OPT_EXCLUDE,
    QR_OPT_DEFAULT_EXCLUDES,
    QR_OPT_COUNT
} qr_opt_id;

typedef struct qr_option_def {
    const char *name;    /* lower case, '-' separated: "max-tokens" */
    qr_opt_type type;
    const char *section; /* heading in quire.conf and --help: "model", "generate", ... */
    const char *def;     /* default as text ("" = unset for strings) */
    double min, max;     /* inclusive bounds for INT and FLOAT */
    const char *choices; /* ENUM: "f32|bf16|f16|int8" */
    const char *help;    /* one line */
    unsigned flags;      /* QR_OPTF_* */
    /* Extra check for STRING values (NULL = none): returns 0 or writes why the
     * value is wrong into why (a phrase like "expected auto, cpu, cuda or cuda:N"). */
    int (*check)(const char *value, char *why, size_t why_len);
} qr_option_def;

/* The table: QR_OPT_COUNT entries, indexed by qr_opt_id. Static storage. */
const qr_option_def *qr_option_def_at(int id);
/* Id of a name ("max-tokens"), -1 if unknown. */
int qr_option_find(const char *name);
/* The known name closest to name (edit distance), or NULL if none is close.
 * only_config: consider only options that the file/env accept. */
const char *qr_option_suggest(const char *name, bool only_config);

typedef struct qr_options qr_options;

/* Creates a set holding every default. */
int qr_options_create(qr_options **out);
void qr_options_free(qr_options *o);

/* Loads, in precedence order, the config file (--config FILE in args, else
 * $QUIRE_CONFIG), the QUIRE_* environment and the flags in args[0..n-1]
 * (args excludes the command name). allowed: NULL-terminated list of option
 * ids (as ints, ending with -1) that may be given as flags to this command;
 * NULL allows every option. Arguments not starting with "--" (and everything
 * after a lone "--") are positional, kept in order. On error: QR_EINVAL or
 * QR_ENOTFOUND (missing explicitly named config file) or QR_EIO, with a
 * qr_fail detail naming the source. */
int qr_options_load(qr_options *o, int n, char **args, const int *allowed);

/* Individual steps (qr_options_load calls them in order; tests use them). */
int qr_options_load_file(qr_options *o, const char *path);
int qr_options_load_env(qr_options *o);
int qr_options_parse_args(qr_options *o, int n, char **args, const int *allowed);

/* Sets one option from text as if it came from src; origin names the place
 * for messages ("flag --ctx", "x.conf:3"). */
int qr_options_set(qr_options *o, int id, const char *value, qr_opt_source src, const char *origin);

/* Typed getters (the id's type must match; a mismatch returns 0/NULL/false). */
int64_t qr_opt_int(const qr_options *o, int id);
double qr_opt_float(const qr_options *o, int id);
/* STRING and ENUM values. Borrowed from o. "" when unset. */
const char *qr_opt_str(const qr_options *o, int id);
bool qr_opt_bool(const qr_options *o, int id);
/* REPEAT options: number of values and the i-th one (borrowed). */
size_t qr_opt_count(const qr_options *o, int id);
const char *qr_opt_item(const qr_options *o, int id, size_t i);
/* The values of a REPEAT option as an array (borrowed, n = qr_opt_count). */
const char *const *qr_opt_items(const qr_options *o, int id);
qr_opt_source qr_opt_source_of(const qr_options *o, int id);
/* "default", "flag --ctx", "environment QUIRE_CTX", "quire.conf:12". Borrowed. */
const char *qr_opt_origin(const qr_options *o, int id);

size_t qr_options_n_positional(const qr_options *o);
const char *qr_options_positional(const qr_options *o, size_t i);
/* The config file that was read, NULL if none. Borrowed. */
const char *qr_options_config_path(const qr_options *o);

/* The environment variable name of an option: "QUIRE_MAX_TOKENS" into buf. */
void qr_option_env_name(const qr_option_def *d, char *buf, size_t len);

/* configs/quire.conf text: every file/env option with its help, bounds and
 * default, grouped by section. *out malloc'd; caller frees. */
int qr_options_render_conf(char **out);
/* The effective values of o, one "name = value   # origin" line each, in the
 * config file syntax. *out malloc'd; caller frees. */
int qr_options_render_values(const qr_options *o, char **out);
/* Help lines for the given option ids (-1 terminated): "  --name VALUE  help
 * (default ..., range ...)". *out malloc'd; caller frees. */
int qr_options_render_help(const int *ids, char **out);

#endif
