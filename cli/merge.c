/* quire merge --store OUT SHARD... [--json]
 *
 * Joins shard stores (made by `quire ingest --shard I/N`, one per Slurm array
 * task) into the store OUT (index/merge.h): documents, chunks, vectors, BM25
 * postings and statistics, renumbered. Shards must share embedder and
 * chunking; otherwise nothing is written and the exit code is 1 with both
 * stores named. A killed merge can simply be run again. Prints one summary
 * line, or with --json the counts and timings. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "index/merge.h"

int cli_merge(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_STORE, QR_OPT_JSON, QR_OPT_LOG_LEVEL, -1};
    char **oargv = calloc((size_t)argc + 1, sizeof *oargv), **shards = calloc((size_t)argc + 1, sizeof *shards);
    qr_options *o = NULL;
    int code, oargc = 0, ns = 0;
    if (!oargv || !shards) {
        free(oargv);
        free(shards);
        fprintf(stderr, "quire merge: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    cli_split_paths(argc, argv, oargv, &oargc, shards, &ns);
    code = cli_load_options(
        "merge", "--store OUT SHARD... [--json]",
        "Joins shard stores (quire ingest --shard I/N, one per Slurm array task) into the store OUT, created\n"
        "when missing: documents in path order with new ids, chunks, vectors (added to OUT's FAISS index) and\n"
        "BM25 postings and statistics, so OUT answers exactly like one ingest of all the files. Shards must\n"
        "have the same embedder and chunking (refused otherwise, nothing written). Documents already in OUT\n"
        "with the same content are kept, so a killed merge is simply run again.",
        oargc, oargv, allowed, &o);
    if (code >= 0)
        goto fail;
    const char *store = qr_opt_str(o, QR_OPT_STORE);
    if (!*store || ns == 0) {
        fprintf(stderr, "quire merge: usage: quire merge --store OUT SHARD... (at least one shard store)\n");
        code = CLI_EXIT_USAGE;
        goto fail;
    }
    qr_merge_report rep;
    int rc = qr_merge_run(store, (const char *const *)shards, (size_t)ns, NULL, &rep);
    if (rc) {
        code = cli_fail("merge", rc, NULL);
        goto fail;
    }
    if (!qr_opt_bool(o, QR_OPT_JSON)) {
        printf("merge: %zu shards: %zu documents, %zu chunks, %zu vectors written (%zu unchanged, %zu replaced) "
               "in %.2fs; %s now holds %llu documents, %llu chunks\n",
               rep.shards, rep.docs, rep.chunks, rep.vectors, rep.unchanged, rep.replaced, rep.total_s, store,
               (unsigned long long)rep.out_docs, (unsigned long long)rep.out_chunks);
        code = CLI_EXIT_OK;
        goto fail;
    }
    json_t *root = json_pack("{s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:{s:I, s:I, s:I}, s:f}", "store", store,
                             "shards", (json_int_t)rep.shards, "written", "docs", (json_int_t)rep.docs, "chunks",
                             (json_int_t)rep.chunks, "vectors", (json_int_t)rep.vectors, "unchanged",
                             (json_int_t)rep.unchanged, "replaced", (json_int_t)rep.replaced, "commits",
                             (json_int_t)rep.commits, "totals", "docs", (json_int_t)rep.out_docs, "chunks",
                             (json_int_t)rep.out_chunks, "vectors", (json_int_t)rep.out_vectors, "total_s",
                             rep.total_s);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!s) {
        fprintf(stderr, "quire merge: out of memory for the JSON report\n");
        code = CLI_EXIT_ERROR;
        goto fail;
    }
    puts(s);
    free(s);
    code = CLI_EXIT_OK;
fail:
    qr_options_free(o);
    free(oargv);
    free(shards);
    return code;
}
