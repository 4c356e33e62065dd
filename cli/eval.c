/* quire eval retrieval --beir DIR: BM25 retrieval quality on a BEIR dataset
 * (nDCG@10, Recall@100, Recall@1000, MRR@10 with trec_eval -c semantics). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/error.h"
#include "index/eval.h"

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: quire eval retrieval --beir DIR [--split test] [--k1 0.9] [--b 0.4] [--hits 1000] [--json]\n\n"
               "Indexes DIR/corpus.jsonl (title + \"\\n\" + text) with BM25 in a temporary index, runs the judged\n"
               "queries of DIR/queries.jsonl (dropping each query's own id from its hits), and scores the run\n"
               "against DIR/qrels/SPLIT.tsv like trec_eval -c: nDCG@10, Recall@100, Recall@1000, MRR@10.\n");
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int cli_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        eval_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "retrieval") != 0) {
        fprintf(stderr, "quire eval: unknown evaluation '%s' (known: retrieval)\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    const char *dir = NULL;
    bool json = false;
    qr_beir_opts o = {"test", qr_bm25_default_params(), 1000, NULL};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            eval_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--beir") == 0 && v) {
            dir = v;
            i++;
        } else if (strcmp(a, "--split") == 0 && v) {
            o.split = v;
            i++;
        } else if (strcmp(a, "--k1") == 0 && v) {
            if (parse_double(v, 0.0, 1000.0, &d)) {
                fprintf(stderr, "quire eval: --k1 '%s': expected a number in [0, 1000]\n", v);
                return CLI_EXIT_USAGE;
            }
            o.params.k1 = (float)d;
            i++;
        } else if (strcmp(a, "--b") == 0 && v) {
            if (parse_double(v, 0.0, 1.0, &d)) {
                fprintf(stderr, "quire eval: --b '%s': expected a number in [0, 1]\n", v);
                return CLI_EXIT_USAGE;
            }
            o.params.b = (float)d;
            i++;
        } else if (strcmp(a, "--hits") == 0 && v) {
            if (parse_double(v, 1.0, (double)QR_BM25_MAX_K, &d) || d != (double)(size_t)d) {
                fprintf(stderr, "quire eval: --hits '%s': expected an integer in [1, %d]\n", v, QR_BM25_MAX_K);
                return CLI_EXIT_USAGE;
            }
            o.hits = (size_t)d;
            i++;
        } else {
            fprintf(stderr, "quire eval: unknown or incomplete option '%s'\n", a);
            eval_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf(stderr, "quire eval: --beir DIR is required\n");
        return CLI_EXIT_USAGE;
    }
    qr_beir_result r;
    int rc = qr_beir_eval_bm25(dir, &o, &r);
    if (rc)
        return cli_fail(cmd, rc, dir);
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:{s:f, s:f}, s:I, s:{s:f, s:f, s:f, s:f}, s:I, s:I, s:I, s:I, s:f, s:f}",
                              "dataset", dir, "split", o.split, "retriever", "bm25", "params", "k1",
                              (double)o.params.k1, "b", (double)o.params.b, "hits", (json_int_t)o.hits, "metrics",
                              "ndcg@10", r.mean.ndcg10, "recall@100", r.mean.recall100, "recall@1000",
                              r.mean.recall1000, "mrr@10", r.mean.mrr10, "docs", (json_int_t)r.ndocs, "terms",
                              (json_int_t)r.nterms, "queries", (json_int_t)r.nqueries_qrels, "queries_run",
                              (json_int_t)r.nqueries_run, "index_s", r.index_s, "search_s", r.search_s);
        if (!j)
            return cli_fail(cmd, QR_ENOMEM, "json");
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(j);
        if (!s)
            return cli_fail(cmd, QR_ENOMEM, "json");
        printf("%s\n", s);
        free(s);
    } else {
        printf("BM25 (k1=%.2f b=%.2f) on %s, split %s: %zu docs, %llu terms, %zu queries (%zu run)\n",
               (double)o.params.k1, (double)o.params.b, dir, o.split, r.ndocs, r.nterms, r.nqueries_qrels,
               r.nqueries_run);
        printf("  nDCG@10     %.4f\n  Recall@100  %.4f\n  Recall@1000 %.4f\n  MRR@10      %.4f\n", r.mean.ndcg10,
               r.mean.recall100, r.mean.recall1000, r.mean.mrr10);
        printf("  index %.2f s (%.0f docs/s, %.1f MB/s), search %.2f s (%.2f ms/query)\n", r.index_s,
               r.index_s > 0 ? (double)r.ndocs / r.index_s : 0.0,
               r.index_s > 0 ? (double)r.corpus_bytes / r.index_s / 1e6 : 0.0, r.search_s,
               r.nqueries_run ? r.search_s * 1e3 / (double)r.nqueries_run : 0.0);
    }
    return CLI_EXIT_OK;
}
