/* BM25 over real BEIR data must reproduce Anserini's published "flat" figures
 * (../shared/data/README.md) within 0.005. argv[1] = dataset dir under ../shared/data
 * (SKIP when it is not there),
 * then expected nDCG@10 and Recall@100, optionally the number of documents and
 * of indexed terms of Anserini's index (exact: checks the analyzer). */
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "index/eval.h"
#include "tests/unit/test.h"

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: test_eval_beir DATASET NDCG10 R100 [DOCS TERMS]\n");
        return 2;
    }
    const char *dir = DATA(argv[1]); /* SKIP without ../shared/data */
    qr_beir_opts o = {"test", qr_bm25_default_params(), 1000, NULL};
    qr_beir_result r;
    CHECK_OK(qr_beir_eval_bm25(dir, &o, &r));
    printf("%s: %zu docs, %llu terms, %zu queries: nDCG@10 %.4f R@100 %.4f R@1000 %.4f MRR@10 %.4f "
           "(index %.2f s, search %.2f s)\n",
           argv[1], r.ndocs, r.nterms, r.nqueries_qrels, r.mean.ndcg10, r.mean.recall100, r.mean.recall1000,
           r.mean.mrr10, r.index_s, r.search_s);
    CHECK_NEAR(r.mean.ndcg10, atof(argv[2]), 0.005);
    CHECK_NEAR(r.mean.recall100, atof(argv[3]), 0.005);
    if (argc == 6) {
        CHECK_INT(r.ndocs, atoll(argv[4]));
        CHECK_INT(r.nterms, atoll(argv[5]));
    }
    return qr_test_done();
}
