/* bench_ingest: ingest throughput (files/s, documents/s, chunks/s) of the
 * pipeline into a fresh store, BM25-only and with an encoder on the CPU.
 *
 *   bench_ingest [--encoder DIR] [--threads N] [--jobs N] [--batch B] [--tokens T] PATH...
 *
 * Each PATH (a directory such as /usr/share/doc/slurm-wlm/html, or a file
 * such as SciFact's corpus.jsonl) is ingested on its own into a new temporary
 * store, first BM25-only and then, with --encoder (e.g. a random-weight
 * MiniLM shape from tools/mkmodel), with vectors. One line per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "ingest/pipeline.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

static int run(const char *path, qr_model *m, const char *mpath, int jobs, int batch, int tokens)
{
    char tmpl[] = "/tmp/quire_bench_ingest_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir)
        return 1;
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.embedder = m;
    o.embedder_path = mpath;
    o.jobs = jobs;
    o.batch = batch;
    if (tokens > 0)
        o.chunk.max_tokens = tokens;
    qr_ingest_report r;
    const char *paths[] = {path};
    int rc = qr_ingest_run(dir, paths, 1, &o, &r);
    if (rc) {
        fprintf(stderr, "bench_ingest: %s: %s\n", path, qr_last_error());
    } else {
        size_t files = r.added + r.updated;
        printf("%-44s %-8s files %5zu (+%zu skipped)  docs %6zu  chunks %6zu  %7.2fs  %8.1f files/s  %8.1f "
               "docs/s  %8.1f chunks/s  (embed %.2fs, commit %.2fs)\n",
               path, m ? "encoder" : "bm25", files, r.skipped, r.docs, r.chunks, r.total_s,
               (double)files / r.total_s, (double)r.docs / r.total_s, (double)r.chunks / r.total_s, r.embed_s,
               r.commit_s);
        fflush(stdout);
        qr_ingest_report_free(&r);
    }
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_ingest: could not remove %s\n", dir);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *enc = NULL;
    int threads = 0, jobs = 4, batch = 32, tokens = 0, n = 0;
    const char *paths[64];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--encoder") && i + 1 < argc)
            enc = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (n < 64)
            paths[n++] = argv[i];
    }
    if (!n) {
        fprintf(stderr, "usage: bench_ingest [--encoder DIR] [--threads N] [--jobs N] [--batch B] PATH...\n");
        return 2;
    }
    qr_log_set_level(QR_LOG_ERROR);
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= run(paths[i], NULL, NULL, jobs, batch, tokens);
    if (enc) {
        qr_backend *be = NULL;
        qr_model *m = NULL;
        qr_model_opts mo = {.dtype = QR_F32};
        if (qr_backend_cpu_create(threads, &be) || qr_model_load(enc, &mo, be, &m)) {
            fprintf(stderr, "bench_ingest: %s: %s\n", enc, qr_last_error());
            qr_backend_destroy(be);
            return 1;
        }
        for (int i = 0; i < n; i++)
            bad |= run(paths[i], m, enc, jobs, batch, tokens);
        qr_model_free(m);
        qr_backend_destroy(be);
    }
    return bad;
}
