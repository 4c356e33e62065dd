/* quire ingest PATH... --store DIR [--embedder M] [--dtype D] [--prune [--force]] [--jobs N] [--shard I/N] [--json]
 *
 * Walks the paths into the store (ingest/pipeline.h). Progress on stderr: on a
 * terminal a bar (files, chunks/s, ETA; at most 10 redraws a second),
 * otherwise (a batch job's log, or --json) a line at info level every
 * --progress-interval seconds (default 5). At the end one summary line on
 * stdout (this run's writes and the store's totals, then the files decoded by
 * the Windows-1252 fallback), or with --json a JSON report (counts, per-file
 * status with skip reasons and encodings, chunks, timings). Skipped files are
 * one info line with counts by kind (binary, too-large, ...), listed at debug
 * level; unreadable ones are a warning each. A PATH with no file in it, or a
 * run where every file was skipped, is a warning.
 * Exit code 0 even when some files were skipped (their reasons are in the
 * report); a refused store (other embedder or chunking) exits 1. SIGINT or
 * SIGTERM stops the run at its next commit point, prints the report of what
 * was committed and how to resume, and exits 130 / 143 (128 + the signal).
 *
 * --shard I/N keeps shard I of N of the files (ingest/pipeline.h, Sharding);
 * the default, auto, takes it from a Slurm array task's SLURM_ARRAY_TASK_*
 * variables and QUIRE_SHARDS (common/slurm.h, qr_slurm_array_shard: refused
 * where they do not tell the shard) and says so on stderr. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "common/slurm.h"
#include "index/manifest.h"
#include "ingest/filter.h"
#include "ingest/pipeline.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

/* Splits argv into option arguments (kept in argv order, command name first)
 * and positional paths: a value-taking --name consumes the next argument. */
int cli_split_paths(int argc, char **argv, char **opt_argv, int *opt_argc, char **paths, int *n_paths)
{
    int no = 0, np = 0;
    opt_argv[no++] = argv[0];
    bool rest = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (rest || a[0] != '-' || a[1] == '\0') {
            paths[np++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            rest = true;
            continue;
        }
        opt_argv[no++] = argv[i];
        if (a[1] == '-' && !strchr(a, '=')) {
            int id = qr_option_find(a + 2);
            const qr_option_def *d = id >= 0 ? qr_option_def_at(id) : NULL;
            if (d && d->type != QR_OPT_BOOL && i + 1 < argc)
                opt_argv[no++] = argv[++i];
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            opt_argv[no++] = argv[++i];
        }
    }
    *opt_argc = no;
    *n_paths = np;
    return 0;
}

static volatile sig_atomic_t stop_signal;   /* the SIGINT or SIGTERM received, else 0 */
static volatile sig_atomic_t bar_on_screen; /* the signal handler's message starts a new line */

/* ---------------------------------------------------------------- progress */

/* On a terminal: a bar redrawn in place (at most 10 times a second). Off a
 * terminal (a batch job's log): a line at info level every `interval` seconds
 * (--progress-interval, default 5; 0: after every batch), so a job log shows
 * the run moving long before its end. */
typedef struct {
    bool bar;        /* stderr is a terminal */
    double interval; /* lines: seconds between them */
    double last;
    bool drawn;      /* the bar is on screen (a newline is owed before other output) */
} progress_state;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

static int draw_bar(const qr_ingest_progress *p, progress_state *b, double t)
{
    bool final = p->current == NULL;
    if (!final && t - b->last < 0.1)
        return 0;
    b->last = t;
    double frac = p->files_total ? (double)p->files_done / (double)p->files_total : 1.0;
    int width = 30, fill = (int)(frac * width + 0.5);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[width] = '\0';
    double cps = p->elapsed_s > 0 ? (double)p->chunks_done / p->elapsed_s : 0;
    double eta = frac > 0 && frac < 1 ? p->elapsed_s * (1 - frac) / frac : 0;
    fprintf(stderr, "\r[%s] %zu/%zu files  %zu chunks  %.0f chunks/s  ETA %.0fs   ", bar, p->files_done,
            p->files_total, p->chunks_done, cps, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    b->drawn = !final;
    bar_on_screen = b->drawn;
    return 0;
}

static int on_progress(const qr_ingest_progress *p, void *user)
{
    progress_state *b = user;
    double t = mono();
    if (b->bar)
        return draw_bar(p, b, t);
    if (!p->current || t - b->last < b->interval) /* the summary line follows the final call */
        return 0;
    b->last = t;
    double frac = p->files_total ? (double)p->files_done / (double)p->files_total : 0;
    char eta[32] = "?";
    if (frac > 0 && p->elapsed_s > 0)
        fmt_eta(p->elapsed_s * (1 - frac) / frac, eta, sizeof eta);
    double el = p->elapsed_s > 0 ? p->elapsed_s : 1e-9;
    QR_INFO("ingest: %zu/%zu files (%.1f%%), %zu chunks, %.1f files/s, %.0f chunks/s, ETA %s", p->files_done,
            p->files_total, 100.0 * frac, p->chunks_done, (double)p->files_done / el, (double)p->chunks_done / el,
            eta);
    return 0;
}

/* ---------------------------------------------------------------- SIGINT / SIGTERM */

/* The first SIGINT or SIGTERM (Slurm sends SIGTERM, then SIGKILL after
 * KillWait, 30 s by default) asks the pipeline to stop at its next safe point:
 * the batch in flight is dropped, everything committed stays and the store is
 * saved (ingest/pipeline.h, Stopping). The handler is reset by the first
 * signal, so a second one ends the process at once, which is also safe (a
 * commit is the checkpoint; the store reconciles on the next open). */
static void on_stop_signal(int sig)
{
    stop_signal = sig;
    static const char nl[] = "\n";
    static const char msg_int[] = "quire ingest: SIGINT: stopping at the next commit point (committed files are "
                                  "kept; interrupt again to stop at once)\n";
    static const char msg_term[] = "quire ingest: SIGTERM: stopping at the next commit point (committed files are "
                                   "kept)\n";
    ssize_t r = 0;
    if (bar_on_screen)
        r = write(STDERR_FILENO, nl, sizeof nl - 1);
    if (sig == SIGINT)
        r = write(STDERR_FILENO, msg_int, sizeof msg_int - 1);
    else
        r = write(STDERR_FILENO, msg_term, sizeof msg_term - 1);
    (void)r;
}

static void stop_signals_install(struct sigaction saved[2])
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND; /* restart: reads and LMDB writes in flight go on */
    sigaction(SIGINT, &sa, &saved[0]);
    sigaction(SIGTERM, &sa, &saved[1]);
}

static void stop_signals_restore(const struct sigaction saved[2])
{
    sigaction(SIGINT, &saved[0], NULL);
    sigaction(SIGTERM, &saved[1], NULL);
}

/* After a run stopped by a signal: what is in the store, how to resume. The
 * exit code is 128 + the signal (130 SIGINT, 143 SIGTERM), as a shell reports
 * a command killed by it, so scripts and Slurm see the run did not finish. */
static int report_stopped(const qr_ingest_report *r, int sig)
{
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (r->stopped)
        fprintf(stderr,
                "quire ingest: interrupted by %s: stopped at a commit point after %zu of %zu files, %zu not reached%s; "
                "this run committed %zu documents, %zu chunks and the store holds %zu documents, %zu chunks; run "
                "the same command again to resume (committed files are skipped as unchanged)\n",
                name, r->files_seen - r->files_left, r->files_seen, r->files_left,
                r->files_left ? "" : " (--prune not done)", r->docs, r->chunks, r->store_docs, r->store_chunks);
    else
        fprintf(stderr, "quire ingest: %s came after the last commit: the run is complete (the store holds %zu "
                        "documents, %zu chunks)\n",
                name, r->store_docs, r->store_chunks);
    return 128 + sig;
}

/* ---------------------------------------------------------------- report */

/* Skipped files repeat on every run: binary, too-large, empty... are one info
 * line with their counts by kind, listed at debug level (and in --json);
 * unreadable files and read errors are a warning each (the user meant them
 * to be read). */
static void log_skipped(const qr_ingest_report *r, const char *cmd)
{
    char kinds[8][48];
    size_t counts[8] = {0}, nk = 0, n = 0, other = 0;
    for (size_t i = 0; i < r->n_files; i++) {
        const qr_ingest_file *f = &r->files[i];
        if (f->status != QR_INGEST_SKIPPED)
            continue;
        const char *why = f->reason ? f->reason : "";
        size_t kl = strcspn(why, ":");
        if ((kl == 10 && !strncmp(why, "unreadable", 10)) || (kl == 5 && !strncmp(why, "error", 5))) {
            QR_WARN("%s: skipped %s: %s", cmd, f->path, why);
            continue;
        }
        QR_DEBUG("%s: skipped %s: %s", cmd, f->path, why);
        n++;
        size_t k = 0;
        while (k < nk && (strlen(kinds[k]) != kl || strncmp(kinds[k], why, kl)))
            k++;
        if (k == nk && nk < 8 && kl < sizeof kinds[0]) {
            memcpy(kinds[nk], why, kl);
            kinds[nk++][kl] = '\0';
        }
        if (k < nk)
            counts[k]++;
        else
            other++;
    }
    if (!n)
        return;
    char by[512] = "";
    size_t len = 0;
    for (size_t k = 0; k < nk && len < sizeof by; k++)
        len += (size_t)snprintf(by + len, sizeof by - len, "%s%zu %s", k ? ", " : "", counts[k], kinds[k]);
    if (other && len < sizeof by)
        snprintf(by + len, sizeof by - len, ", %zu other", other);
    QR_INFO("%s: skipped %zu file%s (%s); --log-level debug lists them, --json reports them", cmd, n,
            n == 1 ? "" : "s", by);
}

/* The files read through the Windows-1252 fallback, on stdout after the
 * summary line (their per-file warnings went to stderr as they were read). */
#define FALLBACK_LISTED 50
static void print_fallbacks(const qr_ingest_report *r, const char *cmd)
{
    size_t shown = 0;
    for (size_t i = 0; i < r->n_files && shown < FALLBACK_LISTED; i++)
        if (r->files[i].encoding_fallback) {
            printf("%s: decoded as %s (not valid UTF-8): %s\n", cmd, r->files[i].encoding, r->files[i].path);
            shown++;
        }
    if (r->fallback_decoded > shown)
        printf("%s: %zu more files decoded by a fallback encoding (--json lists them)\n", cmd,
               r->fallback_decoded - shown);
}

int cli_print_ingest_report(const qr_ingest_report *r, bool json, const char *cmd)
{
    bool rm = !strcmp(cmd, "rm");
    if (!rm)
        log_skipped(r, cmd);
    if (!json) {
        /* this run's writes, then the store's totals (a re-ingest writes nothing:
         * "0 documents" alone read as an empty store) */
        printf("%s: %zu added, %zu updated, %zu unchanged, %zu removed, %zu skipped; %zu documents, %zu chunks "
               "written in %.2fs; the store holds %zu documents, %zu chunks\n",
               cmd, r->added, r->updated, r->unchanged, r->removed, r->skipped, r->docs, r->chunks, r->total_s,
               r->store_docs, r->store_chunks);
        if (r->other_shards)
            printf("%s: %zu files left to other shards\n", cmd, r->other_shards);
        print_fallbacks(r, cmd);
        if (r->excluded_files || r->excluded_dirs) /* the list: --log-level debug */
            printf("%s: %zu files and %zu directories excluded (--include/--exclude and the default excludes; "
                   "--no-default-excludes reads those)\n",
                   cmd, r->excluded_files, r->excluded_dirs);
        for (size_t i = 0; rm && i < r->n_files; i++) /* rm: paths the user named that are not in the store */
            if (r->files[i].status == QR_INGEST_SKIPPED)
                fprintf(stderr, "quire %s: skipped %s: %s\n", cmd, r->files[i].path,
                        r->files[i].reason ? r->files[i].reason : "");
        fflush(stdout);
        return CLI_EXIT_OK;
    }
    json_t *root = NULL;
    qr_ingest_report_to_json(r, &root);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!s) {
        fprintf(stderr, "quire %s: out of memory for the JSON report\n", cmd);
        return CLI_EXIT_ERROR;
    }
    puts(s);
    free(s);
    return CLI_EXIT_OK;
}

int cli_ingest(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_STORE, QR_OPT_EMBEDDER, QR_OPT_DTYPE, QR_OPT_ACT_DTYPE, QR_OPT_DEVICE, QR_OPT_THREADS,
                                  QR_OPT_BATCH, QR_OPT_CHUNK_TOKENS, QR_OPT_CHUNK_OVERLAP, QR_OPT_FAISS_INDEX, QR_OPT_JOBS,
                                  QR_OPT_MAX_FILE_BYTES, QR_OPT_HIDDEN, QR_OPT_PRUNE, QR_OPT_FORCE, QR_OPT_JSON,
                                  QR_OPT_LOG_LEVEL, QR_OPT_SHARD, QR_OPT_PROGRESS_INTERVAL, QR_OPT_INCLUDE,
                                  QR_OPT_EXCLUDE, QR_OPT_DEFAULT_EXCLUDES, -1};
    char **oargv = calloc((size_t)argc + 1, sizeof *oargv), **paths = calloc((size_t)argc + 1, sizeof *paths);
    qr_options *o = NULL;
    qr_backend *be = NULL;
    qr_model *m = NULL;
    char *mpath = NULL;
    qr_ingest_report rep;
    memset(&rep, 0, sizeof rep);
    int code, oargc = 0, np = 0;
    if (!oargv || !paths) {
        free(oargv);
        free(paths);
        fprintf(stderr, "quire ingest: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    cli_split_paths(argc, argv, oargv, &oargc, paths, &np);
    code = cli_load_options(
        "ingest", "PATH... --store DIR [--embedder M] [--dtype D] [--prune [--force]] [--jobs N] [--shard I/N] [--json]",
        "Adds files and directories (walked recursively; hidden entries skipped unless --hidden; symbolic\n"
        "links followed, loops visited once) to the store, creating it on first use. Unchanged files (same\n"
        "size and mtime, or same content hash) are not re-read; changed files replace their chunks; --prune\n"
        "removes documents whose files are gone under the PATHs given (no PATH: anywhere in the store), and\n"
        "refuses to remove more than half of the store's documents unless --force (an unmounted file system\n"
        "looks like a deleted corpus). A killed run resumes where its last commit ended.\n"
        "Binary, unreadable and too-large files are skipped with the reason in the report (one info line\n"
        "counts them; --log-level debug lists them). Off a terminal a progress line comes every\n"
        "--progress-interval seconds. SIGINT/SIGTERM stop at the next commit point, keep what was\n"
        "committed (re-running resumes) and exit 130/143.\n"
        "--include GLOB / --exclude GLOB (repeatable) choose files by their path below PATH, or by name for a\n"
        "pattern without '/'; .git, node_modules, __pycache__, virtual environments, *.min.js, *.css and lock\n"
        "files are skipped unless an --include names them or --no-default-excludes (README, \"What ingest\n"
        "reads\"). Files named as a PATH are always read.\n"
        "In a Slurm job array each task takes its share of the files (by a hash of each file's path below its\n"
        "PATH) into its own store; join the shard stores with quire merge. --shard auto: shard\n"
        "SLURM_ARRAY_TASK_ID of QUIRE_SHARDS when that is set (configs/slurm/ sets it), else of\n"
        "SLURM_ARRAY_TASK_COUNT; a lone re-submitted task (sbatch --array=K: COUNT 1) is refused: pass\n"
        "--shard K/N.",
        oargc, oargv, allowed, &o);
    if (code >= 0)
        goto fail;
    const char *store = qr_opt_str(o, QR_OPT_STORE);
    if (!*store) {
        fprintf(stderr, "quire ingest: --store DIR is required\n");
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    if (np == 0 && !qr_opt_bool(o, QR_OPT_PRUNE)) {
        fprintf(stderr, "quire ingest: no PATH given (usage: quire ingest PATH... --store DIR)\n");
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    qr_ingest_opts io;
    qr_ingest_opts_default(&io);
    io.chunk.max_tokens = (int)qr_opt_int(o, QR_OPT_CHUNK_TOKENS);
    io.chunk.overlap_tokens = (int)qr_opt_int(o, QR_OPT_CHUNK_OVERLAP);
    {
        /* an existing store keeps its chunking unless the flags/config name one */
        qr_manifest man;
        if (qr_manifest_read(store, &man) == 0) {
            if (qr_opt_source_of(o, QR_OPT_CHUNK_TOKENS) == QR_SRC_DEFAULT)
                io.chunk.max_tokens = man.chunk_tokens;
            if (qr_opt_source_of(o, QR_OPT_CHUNK_OVERLAP) == QR_SRC_DEFAULT)
                io.chunk.overlap_tokens = man.chunk_overlap;
        }
        qr_clear_error();
    }
    // Only a factory the user named changes an existing store's index; the default applies to new stores.
    if (qr_opt_source_of(o, QR_OPT_FAISS_INDEX) != QR_SRC_DEFAULT)
        io.factory = qr_opt_str(o, QR_OPT_FAISS_INDEX);
    io.jobs = (int)qr_opt_int(o, QR_OPT_JOBS);
    io.reader.max_file_bytes = (size_t)qr_opt_int(o, QR_OPT_MAX_FILE_BYTES);
    io.include_hidden = qr_opt_bool(o, QR_OPT_HIDDEN);
    io.include = qr_opt_items(o, QR_OPT_INCLUDE);
    io.n_include = qr_opt_count(o, QR_OPT_INCLUDE);
    io.exclude = qr_opt_items(o, QR_OPT_EXCLUDE);
    io.n_exclude = qr_opt_count(o, QR_OPT_EXCLUDE);
    io.default_excludes = qr_opt_bool(o, QR_OPT_DEFAULT_EXCLUDES);
    if (qr_filter_check_patterns("--include", io.include, io.n_include) ||
        qr_filter_check_patterns("--exclude", io.exclude, io.n_exclude)) {
        fprintf(stderr, "quire ingest: %s\n", qr_last_error());
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    io.prune = qr_opt_bool(o, QR_OPT_PRUNE);
    io.force = qr_opt_bool(o, QR_OPT_FORCE);
    {
        const char *sh = qr_opt_str(o, QR_OPT_SHARD);
        if (!strcmp(sh, "auto")) {
            qr_slurm_env se;
            qr_slurm_env_read(&se);
            int r = qr_slurm_array_shard(&se, &io.shard_index, &io.shard_count);
            if (r < 0) {
                code = cli_fail("ingest", r, "--shard auto");
                goto fail;
            }
            if (r > 0 && se.shards_set)
                fprintf(stderr, "quire ingest: shard %d/%d from the Slurm array task (SLURM_ARRAY_TASK_ID %ld, "
                                "QUIRE_SHARDS %ld); --shard none ingests every file\n",
                        io.shard_index, io.shard_count, se.array_id, se.shards);
            else if (r > 0)
                fprintf(stderr, "quire ingest: shard %d/%d from the Slurm array task (SLURM_ARRAY_TASK_ID %ld of "
                                "SLURM_ARRAY_TASK_COUNT %ld); --shard none ingests every file\n",
                        io.shard_index, io.shard_count, se.array_id, se.array_count);
        } else if (strcmp(sh, "none") != 0) {
            int r = qr_slurm_parse_shard(sh, &io.shard_index, &io.shard_count);
            if (r < 0) {
                code = cli_fail("ingest", r, NULL);
                goto fail;
            }
        }
    }
    if (qr_opt_source_of(o, QR_OPT_BATCH) != QR_SRC_DEFAULT)
        io.batch = (int)qr_opt_int(o, QR_OPT_BATCH);
    if (*qr_opt_str(o, QR_OPT_EMBEDDER)) {
        if ((code = cli_resolve_model("ingest", o, QR_OPT_EMBEDDER, &mpath)) >= 0)
            goto fail;
        if ((code = cli_load_model("ingest", o, mpath, &be, &m)) >= 0)
            goto fail;
        io.embedder = m;
        io.embedder_path = mpath;
    } else {
        cli_log_gpus(NULL, 0); /* BM25 only: no GPU work at all */
    }
    bool json = qr_opt_bool(o, QR_OPT_JSON);
    /* a bar on a terminal (not with --json: its reader may share the screen),
     * else a line every --progress-interval seconds */
    progress_state ps = {.bar = isatty(STDERR_FILENO) && !json, .interval = qr_opt_float(o, QR_OPT_PROGRESS_INTERVAL),
                         .last = mono()};
    io.progress = on_progress;
    io.progress_user = &ps;
    io.cancel = &stop_signal;
    struct sigaction saved[2];
    stop_signals_install(saved);
    int rc = qr_ingest_run(store, (const char *const *)paths, (size_t)np, &io, &rep);
    stop_signals_restore(saved);
    if (ps.drawn)
        fputc('\n', stderr);
    if (rc && !(rc == QR_ECANCELED && rep.stopped)) {
        code = cli_fail("ingest", rc, NULL);
        goto fail;
    }
    if (!rep.stopped && rep.files_seen && rep.skipped == rep.files_seen)
        QR_WARN("ingest: nothing to ingest: all %zu files were skipped", rep.files_seen);
    code = cli_print_ingest_report(&rep, json, "ingest");
    if (code == CLI_EXIT_OK && stop_signal)
        code = report_stopped(&rep, stop_signal);
    else if (code == CLI_EXIT_OK && rep.stopped)
        code = cli_fail("ingest", rc, NULL);
fail:
    qr_ingest_report_free(&rep);
    free(mpath);
    qr_model_free(m);
    qr_backend_destroy(be);
    qr_options_free(o);
    free(oargv);
    free(paths);
    return code;
}
