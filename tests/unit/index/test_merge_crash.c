/* Crash safety of quire merge: a merge killed with SIGKILL right after its
 * k-th commit (for every k), then run again, ends with exactly the store of a
 * clean merge: same documents, chunks, spans, texts, BM25 statistics, one
 * vector per chunk in LMDB and in FAISS (the store reconciles vectors.faiss,
 * which a killed run never saved). Shards are made by `quire ingest --shard`
 * in subprocesses and every merge runs in a child process, so this process
 * never forks with compute threads running. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "index/merge.h"
#include "index/store.h"
#include "tests/unit/ingest/test_ingest_util.h"
#include "tests/unit/test.h"

static char base[256], sh[3][300];

static int die_after(size_t done, size_t total, void *user)
{
    size_t *left = user;
    (void)done;
    (void)total;
    if (--*left == 0)
        raise(SIGKILL); /* no cleanup, no FAISS save: a crash */
    return 0;
}

/* Merges the shards into out in a child; kill_after > 0: SIGKILL after that
 * many commits. Returns 1 killed, 0 finished, -1 failed. */
static int merge_child(const char *out, size_t kill_after)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const char *shards[] = {sh[0], sh[1], sh[2]};
        size_t left = kill_after;
        qr_merge_opts o = {.map_size = (size_t)64 << 20, .commit_chunks = 24,
                           .progress = kill_after ? die_after : NULL, .progress_user = &left};
        qr_merge_report r;
        if (qr_merge_run(out, shards, 3, &o, &r) != 0) {
            fprintf(stderr, "child merge: %s\n", qr_last_error());
            _exit(12);
        }
        _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(void)
{
    char tmpl[] = "/tmp/quire_merge_crash_XXXXXX";
    if (!mkdtemp(tmpl)) {
        CHECK(0);
        return qr_test_done();
    }
    snprintf(base, sizeof base, "%s", tmpl);
    char tree[300], cmd[4096];
    snprintf(tree, sizeof tree, "%s/corpus", base);
    CHECK(mkdir(tree, 0755) == 0);
    for (int d = 0; d < 40; d++) {
        char text[8192], name[64];
        ti_prose(text, sizeof text, d, 6 + d % 10);
        snprintf(name, sizeof name, "doc%02d.txt", d);
        CHECK(ti_write(tree, name, text) == 0);
    }
    const char *bin = getenv("QUIRE_BIN");
    const char *fx = getenv("QUIRE_FIXTURES");
    for (int i = 0; i < 3; i++) {
        snprintf(sh[i], sizeof sh[i], "%s/shard-%d", base, i);
        snprintf(cmd, sizeof cmd,
                 "'%s' ingest '%s' --store '%s' --shard %d/3 --embedder '%s/models/bert_minilm' --chunk-tokens 48 "
                 "--chunk-overlap 8 >/dev/null 2>&1",
                 bin ? bin : "quire", tree, sh[i], i, fx ? fx : "tests/fixtures");
        CHECK_INT(system(cmd), 0);
    }
    char clean[400];
    snprintf(clean, sizeof clean, "%s/clean", base);
    CHECK_INT(merge_child(clean, 0), 0);
    qr_store_counts cc = {0};
    char *want = ti_snapshot(clean, &cc);
    CHECK(want != NULL && cc.chunks > 40);
    CHECK_INT(cc.vectors, cc.chunks);
    CHECK_INT(cc.faiss_vectors, (long long)cc.chunks);

    /* kill after commit k = 1, 2, ... until a run finishes before its k-th commit */
    int killed = 0;
    for (size_t k = 1; k < 100; k++) {
        char out[400];
        snprintf(out, sizeof out, "%s/k%zu", base, k);
        int r = merge_child(out, k);
        CHECK(r >= 0);
        if (r != 1)
            break; /* fewer commits than k: nothing left to kill */
        killed++;
        CHECK_INT(merge_child(out, 0), 0); /* run again to the end */
        qr_store_counts c = {0};
        char *got = ti_snapshot(out, &c);
        CHECK_MSG(got && want && strcmp(got, want) == 0, "killed after commit %zu: store differs", k);
        CHECK_INT(c.vectors, cc.chunks);
        CHECK_INT(c.faiss_vectors, (long long)cc.chunks);
        free(got);
    }
    CHECK_MSG(killed >= 3, "only %d kill points", killed);
    printf("%d merges killed and resumed\n", killed);
    free(want);
    if (!getenv("QUIRE_KEEP_TMP"))
        ti_rmrf(base);
    return qr_test_done();
}
