/* BM25 index tests: Lucene SmallFloat values and BM25 scores computed by hand
 * from the published formulas; add/remove/merge consistency. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "index/bm25.h"
#include "tests/unit/test.h"

static MDB_env *env;
static char dir[256];

static void open_env(void)
{
    snprintf(dir, sizeof dir, "%s/qr-bm25-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    CHECK(mdb_env_create(&env) == 0);
    CHECK(mdb_env_set_maxdbs(env, 32) == 0);
    CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30) == 0);
    CHECK(mdb_env_open(env, dir, MDB_NOSYNC, 0600) == 0);
}

static void close_env(void)
{
    char p[300];
    mdb_env_close(env);
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static size_t search(qr_bm25 *ix, const char *q, size_t k, qr_bm25_hit *hits)
{
    MDB_txn *txn;
    size_t n = 0;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK_OK(qr_bm25_search(ix, txn, q, strlen(q), k, hits, &n));
    mdb_txn_abort(txn);
    return n;
}

static void small_float(void)
{
    /* SmallFloat.intToByte4: values below 24 are exact */
    for (uint32_t i = 0; i < 24; i++) {
        CHECK_INT(qr_bm25_int_to_byte4(i), i);
        CHECK_INT(qr_bm25_byte4_to_int((uint8_t)i), i);
    }
    /* 32: 32-24 = 8 = 0b1000 -> 4 bits, shift 0, mantissa 0, exponent 1 -> 8; byte 24+8 */
    CHECK_INT(qr_bm25_int_to_byte4(32), 32);
    /* 40: 16 = 0b10000 -> shift 1 -> (0 | 2<<3) = 16 -> byte 40, decodes to 24 + (8<<1) = 40 */
    CHECK_INT(qr_bm25_int_to_byte4(40), 40);
    CHECK_INT(qr_bm25_int_to_byte4(41), 40); /* 17 loses its low bit */
    CHECK_INT(qr_bm25_byte4_to_int(40), 40);
    /* 100: 76 = 0b1001100 -> shift 3, 76>>3 = 9 -> (1 | 4<<3) = 33 -> byte 57 -> 24 + (9<<3) = 96 */
    CHECK_INT(qr_bm25_int_to_byte4(100), 57);
    CHECK_INT(qr_bm25_byte4_to_int(57), 96);
    /* monotone, and decode(encode(x)) <= x */
    for (uint32_t x = 0; x < 100000; x += 7) {
        CHECK(qr_bm25_byte4_to_int(qr_bm25_int_to_byte4(x)) <= x);
        CHECK(qr_bm25_int_to_byte4(x) <= qr_bm25_int_to_byte4(x + 7));
    }
    CHECK_INT(qr_bm25_int_to_byte4(0x7FFFFFFF), 255);
}

static void hand_example(void)
{
    MDB_txn *txn;
    qr_bm25 *ix = NULL;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_open(txn, NULL, &ix));
    /* analysed: d1 = [appl, banana] (dl 2), d2 = [appl, appl, cherri] (dl 3),
     * d3 = [banana, cherri, date, durian] (dl 4); "the" is a stop word */
    CHECK_OK(qr_bm25_add(ix, txn, 1, "the apple banana", 16));
    CHECK_OK(qr_bm25_add(ix, txn, 2, "Apples apple cherry", 19));
    CHECK_OK(qr_bm25_add(ix, txn, 3, "banana cherries date durian", 27));
    CHECK_OK(qr_bm25_add(ix, txn, 4, "the and of", 10)); /* no terms: not in docCount */
    CHECK_OK(qr_bm25_flush(ix, txn));
    CHECK(mdb_txn_commit(txn) == 0);

    qr_bm25_stats st;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK_OK(qr_bm25_get_stats(ix, txn, &st));
    mdb_txn_abort(txn);
    CHECK_INT(st.ndocs, 4);
    CHECK_INT(st.doc_count, 3);
    CHECK_INT(st.sum_ttf, 9);

    /* query "apple": N = 3, df = 2, idf = ln(1 + 1.5/2.5) = ln 1.6; avgdl = 3;
     * d1: tf 1, dl 2: 1/(1 + 0.9*(0.6 + 0.4*2/3)) = 1/1.78
     * d2: tf 2, dl 3: 2/(2 + 0.9*(0.6 + 0.4)) = 2/2.9 */
    qr_bm25_hit h[8];
    size_t n = search(ix, "apple", 8, h);
    CHECK_INT(n, 2);
    CHECK_INT(h[0].id, 2);
    CHECK_NEAR(h[0].score, 0.4700036292457356 * 2.0 / 2.9, 2e-6);
    CHECK_INT(h[1].id, 1);
    CHECK_NEAR(h[1].score, 0.4700036292457356 / 1.78, 2e-6);
    /* a repeated query term counts twice (Anserini's boost) */
    n = search(ix, "apple APPLES", 8, h);
    CHECK_INT(n, 2);
    CHECK_NEAR(h[0].score, 2 * 0.4700036292457356 * 2.0 / 2.9, 4e-6);
    /* two terms: d3 = banana (df 2, tf 1, dl 4) + durian (df 1): 
     * banana: ln1.6 * 1/(1 + 0.9*(0.6+0.4*4/3)) = ln1.6/2.02; durian: ln(1 + 2.5/1.5) * 1/2.02 */
    n = search(ix, "durian banana", 8, h);
    CHECK_INT(n, 2);
    CHECK_INT(h[0].id, 3);
    CHECK_NEAR(h[0].score, (0.4700036292457356 + 0.9808292530117262) / 2.02, 4e-6);
    CHECK_INT(h[1].id, 1);
    CHECK_NEAR(h[1].score, 0.4700036292457356 / 1.78, 2e-6);
    /* k limits */
    n = search(ix, "apple banana cherry", 1, h);
    CHECK_INT(n, 1);
    CHECK_INT(search(ix, "zebra", 8, h), 0);
    CHECK_INT(search(ix, "the", 8, h), 0);

    /* remove d2: N = 2, sum 6, avgdl 3; "apple": df 1, idf ln 2, d1: 1/1.78 */
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_remove(ix, txn, 2));
    CHECK_INT(qr_bm25_remove(ix, txn, 2), QR_ENOTFOUND);
    CHECK(mdb_txn_commit(txn) == 0);
    n = search(ix, "apple", 8, h);
    CHECK_INT(n, 1);
    CHECK_INT(h[0].id, 1);
    CHECK_NEAR(h[0].score, 0.6931471805599453 / 1.78, 2e-6);

    /* k1, b configurable: b = 0 removes length normalisation: tf/(tf + k1) */
    qr_bm25_params p = {1.2f, 0.0f};
    CHECK_OK(qr_bm25_set_params(ix, &p));
    n = search(ix, "apple", 8, h);
    CHECK_NEAR(h[0].score, 0.6931471805599453 / 2.2, 2e-6);
    qr_bm25_params bad = {1.2f, 2.0f};
    CHECK_INT(qr_bm25_set_params(ix, &bad), QR_EINVAL);

    /* identical documents tie: id ascending */
    p = qr_bm25_default_params();
    CHECK_OK(qr_bm25_set_params(ix, &p));
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_add(ix, txn, 77, "kiwi fruit", 10));
    CHECK_OK(qr_bm25_add(ix, txn, 55, "kiwi fruit", 10));
    CHECK_OK(qr_bm25_add(ix, txn, 66, "kiwi fruit", 10));
    CHECK_OK(qr_bm25_flush(ix, txn));
    CHECK(mdb_txn_commit(txn) == 0);
    n = search(ix, "kiwi", 8, h);
    CHECK_INT(n, 3);
    CHECK_INT(h[0].id, 55);
    CHECK_INT(h[1].id, 66);
    CHECK_INT(h[2].id, 77);
    CHECK(h[0].score == h[2].score);
    float dense_score = h[0].score;
    float dense_apple[2];
    n = search(ix, "apple banana", 8, h);
    CHECK_INT(n, 2);
    dense_apple[0] = h[0].score;
    dense_apple[1] = h[1].score;

    /* far-apart ids switch the accumulator from an array to a hash table:
     * the same scores must come out (a document with no terms changes no statistic) */
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_add(ix, txn, (uint64_t)1 << 40, "the of", 6));
    CHECK_OK(qr_bm25_flush(ix, txn));
    CHECK(mdb_txn_commit(txn) == 0);
    n = search(ix, "kiwi", 8, h);
    CHECK_INT(n, 3);
    CHECK_INT(h[0].id, 55);
    CHECK(h[0].score == dense_score);
    n = search(ix, "apple banana", 8, h);
    CHECK_INT(n, 2);
    CHECK(h[0].score == dense_apple[0] && h[1].score == dense_apple[1]);
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_add(ix, txn, ((uint64_t)1 << 40) + 1, "kiwi fruit", 10));
    CHECK_OK(qr_bm25_flush(ix, txn));
    CHECK(mdb_txn_commit(txn) == 0);
    n = search(ix, "kiwi", 8, h);
    CHECK_INT(n, 4);
    CHECK_INT(h[3].id, ((uint64_t)1 << 40) + 1);

    /* limits */
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK_INT(qr_bm25_search(ix, txn, "kiwi", 4, (size_t)QR_BM25_MAX_K + 1, h, &n), QR_ELIMIT);
    mdb_txn_abort(txn);
    qr_bm25_close(ix);
    qr_bm25_close(NULL);
}

/* deterministic pseudo-random words */
static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void make_doc(char *buf, uint64_t id)
{
    static const char *words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                  "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"};
    uint32_t seed = (uint32_t)(id * 2654435761u);
    int n = 3 + (int)(seed % 20);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        o += (size_t)sprintf(buf + o, "%s ", words[(seed >> 16) % 16]);
    }
    o += (size_t)sprintf(buf + o, "common u%llu", (unsigned long long)id);
    buf[o] = 0;
}

/* Builds the same collection two ways: in one transaction with increasing ids,
 * and across transactions in shuffled order with removals and re-adds. Every
 * search must agree exactly. */
static void merge_consistency(void)
{
    enum { N = 700 };
    MDB_txn *txn;
    qr_bm25 *a = NULL, *b = NULL;
    char doc[512];
    /* index A: straightforward */
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_open(txn, NULL, &a));
    for (uint64_t id = 1000; id < 1000 + N; id++) {
        make_doc(doc, id);
        CHECK_OK(qr_bm25_add(a, txn, id, doc, strlen(doc)));
    }
    CHECK_OK(qr_bm25_flush(a, txn));
    CHECK(mdb_txn_commit(txn) == 0);

    /* index B in a second env */
    char dir2[256];
    MDB_env *env2;
    snprintf(dir2, sizeof dir2, "%s/qr-bm25b-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir2) != NULL);
    CHECK(mdb_env_create(&env2) == 0);
    CHECK(mdb_env_set_maxdbs(env2, 32) == 0);
    CHECK(mdb_env_set_mapsize(env2, (size_t)1 << 30) == 0);
    CHECK(mdb_env_open(env2, dir2, MDB_NOSYNC, 0600) == 0);
    uint64_t order[N];
    for (int i = 0; i < N; i++)
        order[i] = 1000 + (uint64_t)i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    CHECK(mdb_txn_begin(env2, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_open(txn, NULL, &b));
    CHECK(mdb_txn_commit(txn) == 0);
    for (int s = 0; s < N; s += 97) {
        CHECK(mdb_txn_begin(env2, NULL, 0, &txn) == 0);
        for (int i = s; i < s + 97 && i < N; i++) {
            /* first a wrong text, then the right one (replace), for some */
            if (i % 5 == 0)
                CHECK_OK(qr_bm25_add(b, txn, order[i], "zulu zulu wrong", 15));
            make_doc(doc, order[i]);
            CHECK_OK(qr_bm25_add(b, txn, order[i], doc, strlen(doc)));
        }
        CHECK_OK(qr_bm25_flush(b, txn));
        CHECK(mdb_txn_commit(txn) == 0);
    }
    /* an aborted transaction leaves nothing behind */
    CHECK(mdb_txn_begin(env2, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_add(b, txn, 5, "zulu alpha", 10));
    mdb_txn_abort(txn);
    qr_bm25_discard(b);
    /* remove then re-add a few */
    CHECK(mdb_txn_begin(env2, NULL, 0, &txn) == 0);
    for (uint64_t id = 1000; id < 1000 + N; id += 13)
        CHECK_OK(qr_bm25_remove(b, txn, id));
    CHECK(mdb_txn_commit(txn) == 0);
    CHECK(mdb_txn_begin(env2, NULL, 0, &txn) == 0);
    for (uint64_t id = 1000; id < 1000 + N; id += 13) {
        make_doc(doc, id);
        CHECK_OK(qr_bm25_add(b, txn, id, doc, strlen(doc)));
    }
    CHECK(qr_bm25_flush(b, txn) == 0);
    CHECK(mdb_txn_commit(txn) == 0);

    qr_bm25_stats sa, sb;
    MDB_txn *ta, *tb;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &ta) == 0);
    CHECK(mdb_txn_begin(env2, NULL, MDB_RDONLY, &tb) == 0);
    CHECK_OK(qr_bm25_get_stats(a, ta, &sa));
    CHECK_OK(qr_bm25_get_stats(b, tb, &sb));
    CHECK_INT(sa.ndocs, N);
    CHECK_INT(sb.ndocs, sa.ndocs);
    CHECK_INT(sb.doc_count, sa.doc_count);
    CHECK_INT(sb.sum_ttf, sa.sum_ttf);
    static qr_bm25_hit ha[N], hb[N];
    const char *queries[] = {"alpha", "common", "bravo delta echo", "zulu", "u1005 alpha", "papa papa oscar",
                             "u1013 u1690 common"};
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        size_t na = 0, nb = 0;
        CHECK_OK(qr_bm25_search(a, ta, queries[q], strlen(queries[q]), N, ha, &na));
        CHECK_OK(qr_bm25_search(b, tb, queries[q], strlen(queries[q]), N, hb, &nb));
        CHECK_MSG(na == nb, "%s: %zu vs %zu hits", queries[q], na, nb);
        int same = na == nb;
        for (size_t i = 0; same && i < na; i++)
            same = ha[i].id == hb[i].id && ha[i].score == hb[i].score;
        CHECK_MSG(same, "query %s: rankings differ", queries[q]);
    }
    /* "common" is in every document */
    size_t nc = 0;
    CHECK_OK(qr_bm25_search(a, ta, "common", 6, N, ha, &nc));
    CHECK_INT(nc, N);
    mdb_txn_abort(ta);
    mdb_txn_abort(tb);
    qr_bm25_close(a);
    qr_bm25_close(b);
    char p[300];
    mdb_env_close(env2);
    snprintf(p, sizeof p, "%s/data.mdb", dir2);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir2);
    unlink(p);
    rmdir(dir2);
}

/* qr_bm25_add_chunk: title and heading path indexed with the text, a
 * made-up title (file name, a JSONL record's "line N") not; the document
 * length counts every indexed term. */
static void chunk_context(void)
{
    MDB_txn *txn;
    qr_bm25 *ix = NULL;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK_OK(qr_bm25_open(txn, NULL, &ix));
    CHECK_OK(qr_bm25_add_chunk(ix, txn, 1, "/d/guide.html", "Walrus guide", "Install > Build", "alpha beta", 10));
    CHECK_OK(qr_bm25_add_chunk(ix, txn, 2, "/d/zebra.txt", "zebra.txt", NULL, "alpha gamma", 11));
    CHECK_OK(qr_bm25_add_chunk(ix, txn, 3, "/d/recs.jsonl#L7", "line 7", "", "alpha delta", 11));
    CHECK_OK(qr_bm25_add_chunk(ix, txn, 4, "/d/recs.jsonl#L8", "Okapi", "", "alpha", 5));
    CHECK_OK(qr_bm25_flush(ix, txn));
    CHECK(mdb_txn_commit(txn) == 0);
    qr_bm25_hit h[8];
    CHECK_INT(search(ix, "walrus", 8, h), 1);
    CHECK_INT(h[0].id, 1);
    CHECK_INT(search(ix, "build", 8, h), 1);
    CHECK_INT(search(ix, "okapi", 8, h), 1);
    CHECK_INT(h[0].id, 4);
    CHECK_INT(search(ix, "zebra.txt", 8, h), 0);
    CHECK_INT(search(ix, "line", 8, h), 0);
    CHECK_INT(search(ix, "7", 8, h), 0);
    qr_bm25_stats st;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK_OK(qr_bm25_get_stats(ix, txn, &st));
    mdb_txn_abort(txn);
    /* walrus guid instal build alpha beta | alpha gamma | alpha delta | okapi alpha */
    CHECK_INT(st.sum_ttf, 6 + 2 + 2 + 2);
    qr_bm25_close(ix);
}

int main(void)
{
    small_float();
    open_env();
    chunk_context();
    close_env();
    open_env();
    hand_example();
    close_env();
    open_env(); /* a fresh env for index A */
    merge_consistency();
    close_env();
    return qr_test_done();
}
