/* Metric tests against rankings computed by hand with trec_eval's rules
 * (score descending, docno descending on ties; -c averaging). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "index/eval.h"
#include "tests/unit/test.h"

int main(void)
{
    qr_qrels *q = NULL;
    CHECK_OK(qr_qrels_create(&q));
    CHECK_OK(qr_qrels_add(q, "q1", "d1", 2));
    CHECK_OK(qr_qrels_add(q, "q1", "d2", 1));
    CHECK_OK(qr_qrels_add(q, "q1", "d5", 1)); /* never retrieved: still counts as relevant */
    CHECK_OK(qr_qrels_add(q, "q1", "d6", 0)); /* judged non-relevant */
    CHECK_OK(qr_qrels_add(q, "q2", "d9", 1)); /* q2 gets no run: 0 under -c */
    CHECK_INT(qr_qrels_nqueries(q), 2);
    CHECK(qr_qrels_has(q, "q1") && !qr_qrels_has(q, "q3"));

    /* d1 and d2 tie at 2.0: trec_eval puts "d2" first (docno descending).
     * Ranking: d3, d2 (rel 1), d1 (rel 2), d4, d6.
     * DCG@10 = 1/log2(3) + 2/log2(4); ideal [2, 1, 1]: 2 + 1/log2(3) + 1/log2(4) */
    qr_eval_hit h[5] = {{"d4", 1.0}, {"d1", 2.0}, {"d3", 3.0}, {"d2", 2.0}, {"d6", 0.5}};
    qr_eval_metrics m;
    CHECK_OK(qr_eval_query(q, "q1", h, 5, &m));
    CHECK(strcmp(h[0].docid, "d3") == 0 && strcmp(h[1].docid, "d2") == 0 && strcmp(h[2].docid, "d1") == 0);
    const double dcg = 1.0 / log2(3.0) + 2.0 / 2.0, idcg = 2.0 + 1.0 / log2(3.0) + 1.0 / 2.0;
    CHECK_NEAR(m.ndcg10, dcg / idcg, 1e-12);
    CHECK_NEAR(m.recall100, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.recall1000, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.mrr10, 0.5, 1e-12);

    /* the same scores with the tie resolved the other way round: if the ids
     * were swapped ("d1" rel 1, "d2" rel 2) d2 (rel 2) comes first */
    qr_qrels *q2 = NULL;
    CHECK_OK(qr_qrels_create(&q2));
    CHECK_OK(qr_qrels_add(q2, "x", "d1", 1));
    CHECK_OK(qr_qrels_add(q2, "x", "d2", 2));
    qr_eval_hit h2[2] = {{"d1", 5.0}, {"d2", 5.0}};
    CHECK_OK(qr_eval_query(q2, "x", h2, 2, &m));
    CHECK_NEAR(m.ndcg10, 1.0, 1e-12);
    CHECK_NEAR(m.mrr10, 1.0, 1e-12);
    /* a relevant document at rank 11 is outside nDCG@10 and MRR@10 */
    char ids[200][8];
    qr_eval_hit h3[200];
    for (int i = 0; i < 200; i++) {
        snprintf(ids[i], sizeof ids[i], "n%d", i);
        h3[i].docid = ids[i];
        h3[i].score = 1000.0 - i;
    }
    h3[10].docid = "d1"; /* rank 11, rel 1 */
    h3[150].docid = "d2"; /* rank 151, rel 2 */
    CHECK_OK(qr_eval_query(q2, "x", h3, 200, &m));
    CHECK_NEAR(m.ndcg10, 0.0, 1e-12);
    CHECK_NEAR(m.mrr10, 0.0, 1e-12);
    CHECK_NEAR(m.recall100, 0.5, 1e-12);
    CHECK_NEAR(m.recall1000, 1.0, 1e-12);
    qr_qrels_destroy(q2);

    /* -c averaging: q1 as above, q2 missing, q3 not judged (ignored) */
    qr_eval *e = NULL;
    CHECK_OK(qr_eval_create(q, &e));
    qr_eval_hit h4[5] = {{"d4", 1.0}, {"d1", 2.0}, {"d3", 3.0}, {"d2", 2.0}, {"d6", 0.5}};
    CHECK_OK(qr_eval_add(e, "q1", h4, 5));
    qr_eval_hit h5[1] = {{"d9", 1.0}};
    CHECK_OK(qr_eval_add(e, "q3", h5, 1));
    size_t nq = 0;
    CHECK_OK(qr_eval_result(e, &m, &nq));
    CHECK_INT(nq, 2);
    CHECK_NEAR(m.ndcg10, dcg / idcg / 2.0, 1e-12);
    CHECK_NEAR(m.recall100, 1.0 / 3.0, 1e-12);
    CHECK_NEAR(m.mrr10, 0.25, 1e-12);
    qr_eval_destroy(e);
    qr_qrels_destroy(q);

    /* qrels TSV with CRLF and header */
    const char *tsv = "/tmp/qr-test-qrels.tsv";
    FILE *f = fopen(tsv, "w");
    CHECK(f != NULL);
    fputs("query-id\tcorpus-id\tscore\r\nqa\tda\t1\r\nqa\tdb\t2\r\n\r\nqb\tdc\t0\r\n", f);
    fclose(f);
    CHECK_OK(qr_qrels_create(&q));
    CHECK_OK(qr_qrels_load(q, tsv));
    CHECK_INT(qr_qrels_nqueries(q), 2);
    CHECK(strcmp(qr_qrels_qid(q, 0), "qa") == 0 && strcmp(qr_qrels_qid(q, 1), "qb") == 0);
    qr_eval_hit h6[1] = {{"db", 1.0}};
    CHECK_OK(qr_eval_query(q, "qa", h6, 1, &m));
    CHECK_NEAR(m.ndcg10, 2.0 / (2.0 + 1.0 / log2(3.0)), 1e-12);
    qr_qrels_destroy(q);
    remove(tsv);
    f = fopen(tsv, "w");
    fputs("h\nqa\tda\n", f);
    fclose(f);
    CHECK_OK(qr_qrels_create(&q));
    CHECK_INT(qr_qrels_load(q, tsv), QR_EFORMAT);
    qr_qrels_destroy(q);
    remove(tsv);
    return qr_test_done();
}
