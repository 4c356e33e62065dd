/* Crash safety of the ingest pipeline: runs killed with SIGKILL at random
 * moments (fork, random delay, kill) and started again end with exactly the
 * chunks of a clean run: same documents, chunk texts, spans, pages and
 * headings, same BM25 statistics, one vector per chunk in LMDB and FAISS.
 * Two phases: the first ingest of a tree, then an update (files changed,
 * added and deleted, --prune). Every ingest runs in a child process (with
 * the random-weight BERT fixture as embedder, loaded in the child), so the
 * parent never forks after starting OpenMP threads. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "ingest/pipeline.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"
#include "test_ingest_util.h"

static char tree[512], model_dir[1024];

static void run_ingest_child(const char *store, bool prune)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    if (qr_backend_cpu_create(1, &be) != 0)
        _exit(10);
    qr_model_opts mo = {.dtype = QR_F32};
    if (qr_model_load(model_dir, &mo, be, &m) != 0)
        _exit(11);
    const char *paths[] = {tree};
    qr_ingest_opts o;
    qr_ingest_opts_default(&o);
    o.map_size = (size_t)64 << 20;
    o.embedder = m;
    o.embedder_path = model_dir;
    o.chunk.max_tokens = 48;
    o.chunk.overlap_tokens = 8;
    o.commit_chunks = 6; /* many small transactions: many places to die */
    o.batch = 8;
    o.jobs = 2;
    o.prune = prune;
    qr_ingest_report r;
    int rc = qr_ingest_run(store, paths, 1, &o, &r);
    if (rc) {
        fprintf(stderr, "child ingest: %s\n", qr_last_error());
        _exit(12);
    }
    qr_ingest_report_free(&r);
    qr_model_free(m);
    qr_backend_destroy(be);
    _exit(0);
}

/* Runs one ingest in a child; kill_after_us < 0: to completion. Returns
 * 1 when the child was killed, 0 when it finished, -1 on a failure. */
static int ingest_once(const char *store, bool prune, long kill_after_us, double *elapsed)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        run_ingest_child(store, prune);
    int st = 0;
    if (kill_after_us >= 0) {
        usleep((useconds_t)kill_after_us);
        kill(pid, SIGKILL);
    }
    waitpid(pid, &st, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (elapsed)
        *elapsed = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    fprintf(stderr, "child status %d\n", st);
    return -1;
}

static void write_tree(int version)
{
    static char buf[20000];
    for (int d = 0; d < 24; d++) {
        char name[64];
        /* version 1 changes every third file and deletes file 5 */
        if (version == 1 && d == 5) {
            char p[1024];
            snprintf(p, sizeof p, "%s/f%02d.txt", tree, d);
            unlink(p);
            continue;
        }
        int seed = version == 1 && d % 3 == 0 ? d + 1000 : d;
        ti_prose(buf, sizeof buf, seed, 4 + (d * 7) % 30);
        snprintf(name, sizeof name, "f%02d.txt", d);
        CHECK(ti_write(tree, name, buf) == 0);
    }
    if (version == 1) {
        ti_prose(buf, sizeof buf, 77, 25);
        CHECK(ti_write(tree, "new.md", buf) == 0);
    }
    CHECK(ti_write(tree, "records.jsonl",
                   version ? "{\"text\": \"Alpha changed record.\"}\n{\"text\": \"Beta record.\"}\n"
                           : "{\"text\": \"Alpha record.\"}\n{\"text\": \"Beta record.\"}\n{\"text\": \"Gamma.\"}\n") ==
          0);
}

/* Kills `trials` runs at random moments, then lets one finish. Each delay is
 * drawn uniformly below the work still left (estimated as the clean run's
 * time minus the time already spent in killed runs, at least 5 ms), so kills
 * land during walking, reading, embedding, commits and the final sync, as
 * well as while a restarted run opens and reconciles the store. */
static int crash_phase(const char *store, bool prune, double clean_s, int trials, unsigned *seed)
{
    int killed = 0;
    double left = clean_s;
    for (int t = 0; t < trials; t++) {
        double span = left > 0.005 ? left : 0.005;
        long us = (long)((double)(rand_r(seed) % 1000) / 1000.0 * span * 1e6);
        int k = ingest_once(store, prune, us, NULL);
        CHECK(k >= 0);
        killed += k == 1;
        left -= (double)us * 1e-6 * 0.8;
    }
    CHECK_INT(ingest_once(store, prune, -1, NULL), 0);
    return killed;
}

int main(void)
{
    char tmpl[] = "/tmp/quire_crash_XXXXXX";
    char *base = mkdtemp(tmpl);
    CHECK(base != NULL);
    if (!base)
        return qr_test_done();
    char clean[600], crashed[600], clean2[600];
    snprintf(tree, sizeof tree, "%s/tree", base);
    snprintf(clean, sizeof clean, "%s/clean", base);
    snprintf(clean2, sizeof clean2, "%s/clean2", base);
    snprintf(crashed, sizeof crashed, "%s/crashed", base);
    snprintf(model_dir, sizeof model_dir, "%s", FIXTURE("models/bert_minilm"));
    CHECK(mkdir(tree, 0755) == 0);
    unsigned seed = 12345;

    /* phase 0: the first ingest */
    write_tree(0);
    double clean_s = 0;
    CHECK_INT(ingest_once(clean, false, -1, &clean_s), 0);
    int killed0 = crash_phase(crashed, false, clean_s, 14, &seed);
    char *a = ti_snapshot(clean, NULL), *b = ti_snapshot(crashed, NULL);
    CHECK(a && b);
    CHECK_MSG(a && b && strcmp(a, b) == 0, "phase 0: crashed store differs from the clean one");

    /* phase 1: update (changed, new, deleted files) with --prune */
    write_tree(1);
    CHECK_INT(ingest_once(clean2, true, -1, &clean_s), 0);
    int killed1 = crash_phase(crashed, true, clean_s, 12, &seed);
    char *c = ti_snapshot(clean2, NULL);
    qr_store_counts cnt;
    char *d = ti_snapshot(crashed, &cnt);
    CHECK(c && d);
    CHECK_MSG(c && d && strcmp(c, d) == 0, "phase 1: crashed store differs from the clean one");
    CHECK(cnt.chunks > 40);
    CHECK_INT(cnt.vectors, cnt.chunks);
    CHECK_INT(cnt.faiss_vectors, (long long)cnt.chunks);
    /* the updated store is not the old one */
    CHECK(a && c && strcmp(a, c) != 0);
    printf("clean run %.3fs; killed %d + %d of 26 runs; %llu chunks\n", clean_s, killed0, killed1,
           (unsigned long long)cnt.chunks);
    CHECK(killed0 + killed1 >= 8); /* most kills landed mid-run */
    if (a && b && strcmp(a, b) != 0)
        fprintf(stderr, "--- clean\n%s\n--- crashed\n%s\n", a, b);
    free(a);
    free(b);
    free(c);
    free(d);
    ti_rmrf(base);
    return qr_test_done();
}
