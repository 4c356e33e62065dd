/* Cross-encoder scoring (runtime/models/rerank.c) against a naive
 * double-precision BertForSequenceClassification written here from the HF
 * definition: embeddings (word + position + token type) -> LayerNorm ->
 * N x [MHA -> add & LN -> erf-GELU FFN -> add & LN] -> pooler tanh(W h_CLS + b)
 * -> classifier. The model is a tiny random one written as safetensors in a
 * temp dir. Checks: several pairs of unequal length in one batch, token types
 * 0/1 matter (swapping query and passage changes the logit as the reference
 * says), "longest first" truncation, and errors (no classifier head,
 * ids outside the vocabulary). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "index/bm25.h"
#include "index/store.h"
#include "retrieve/retrieve.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "tests/unit/test.h"

#define V 1000 /* the bert_minilm fixture's tokenizer.json vocabulary */
#define D 16
#define L 2
#define H 2
#define HD (D / H)
#define FF 32
#define P 24 /* max positions: the truncation limit */
#define EPS 1e-12

typedef struct {
    char name[96];
    int rows, cols; /* cols 0: 1-D */
    float *w;
} tensor;

static tensor T[64];
static int nt;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double urand(void) /* [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static float *add(const char *name, int rows, int cols, double scale, double offset)
{
    tensor *t = &T[nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    t->w = malloc(n * sizeof *t->w);
    for (size_t i = 0; i < n; i++)
        t->w[i] = (float)(offset + scale * urand());
    return t->w;
}

typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln1w, *ln1b, *wi, *bi, *wd, *bd, *ln2w, *ln2b;
} layer;
static float *we, *pe, *te, *elnw, *elnb, *wp, *bp, *wc, *bc;
static layer ly[L];

static void make_model(bool with_head)
{
    nt = 0;
    we = add("bert.embeddings.word_embeddings.weight", V, D, 0.5, 0);
    pe = add("bert.embeddings.position_embeddings.weight", P, D, 0.5, 0);
    te = add("bert.embeddings.token_type_embeddings.weight", 2, D, 0.5, 0);
    elnw = add("bert.embeddings.LayerNorm.weight", D, 0, 0.2, 1);
    elnb = add("bert.embeddings.LayerNorm.bias", D, 0, 0.2, 0);
    for (int l = 0; l < L; l++) {
        char n[96];
#define A(field, suffix, r, c, s, o)                                        \
    snprintf(n, sizeof n, "bert.encoder.layer.%d.%s", l, suffix);           \
    ly[l].field = add(n, r, c, s, o)
        A(wq, "attention.self.query.weight", D, D, 0.4, 0);
        A(bq, "attention.self.query.bias", D, 0, 0.1, 0);
        A(wk, "attention.self.key.weight", D, D, 0.4, 0);
        A(bk, "attention.self.key.bias", D, 0, 0.1, 0);
        A(wv, "attention.self.value.weight", D, D, 0.4, 0);
        A(bv, "attention.self.value.bias", D, 0, 0.1, 0);
        A(wo, "attention.output.dense.weight", D, D, 0.4, 0);
        A(bo, "attention.output.dense.bias", D, 0, 0.1, 0);
        A(ln1w, "attention.output.LayerNorm.weight", D, 0, 0.2, 1);
        A(ln1b, "attention.output.LayerNorm.bias", D, 0, 0.2, 0);
        A(wi, "intermediate.dense.weight", FF, D, 0.4, 0);
        A(bi, "intermediate.dense.bias", FF, 0, 0.1, 0);
        A(wd, "output.dense.weight", D, FF, 0.3, 0);
        A(bd, "output.dense.bias", D, 0, 0.1, 0);
        A(ln2w, "output.LayerNorm.weight", D, 0, 0.2, 1);
        A(ln2b, "output.LayerNorm.bias", D, 0, 0.2, 0);
#undef A
    }
    if (with_head) {
        wp = add("bert.pooler.dense.weight", D, D, 0.4, 0);
        bp = add("bert.pooler.dense.bias", D, 0, 0.1, 0);
        wc = add("classifier.weight", 1, D, 0.8, 0);
        bc = add("classifier.bias", 1, 0, 0.3, 0);
    }
}

static int write_model(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"architectures\":[\"BertForSequenceClassification\"],\"model_type\":\"bert\",\"hidden_act\":"
               "\"gelu\",\"hidden_size\":%d,\"intermediate_size\":%d,\"layer_norm_eps\":1e-12,"
               "\"max_position_embeddings\":%d,\"num_attention_heads\":%d,\"num_hidden_layers\":%d,"
               "\"type_vocab_size\":2,\"vocab_size\":%d,\"id2label\":{\"0\":\"LABEL_0\"}}\n",
            D, FF, P, H, L, V);
    fclose(f);
    /* safetensors: u64 header length, JSON header, f32 data */
    char *hdr = malloc(65536);
    size_t hl = 0, off = 0;
    hl += (size_t)snprintf(hdr + hl, 65536 - hl, "{");
    for (int i = 0; i < nt; i++) {
        size_t n = (size_t)T[i].rows * (size_t)(T[i].cols ? T[i].cols : 1) * 4;
        if (T[i].cols)
            hl += (size_t)snprintf(hdr + hl, 65536 - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                                   "\"data_offsets\":[%zu,%zu]}", i ? "," : "", T[i].name, T[i].rows, T[i].cols,
                                   off, off + n);
        else
            hl += (size_t)snprintf(hdr + hl, 65536 - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],"
                                   "\"data_offsets\":[%zu,%zu]}", i ? "," : "", T[i].name, T[i].rows, off, off + n);
        off += n;
    }
    hl += (size_t)snprintf(hdr + hl, 65536 - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    f = fopen(p, "wb");
    if (!f) {
        free(hdr);
        return -1;
    }
    uint64_t h64 = hl;
    fwrite(&h64, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    for (int i = 0; i < nt; i++)
        fwrite(T[i].w, 4, (size_t)T[i].rows * (size_t)(T[i].cols ? T[i].cols : 1), f);
    fclose(f);
    free(hdr);
    return 0;
}

/* ---- naive double reference ---- */

static void layernorm(double *x, const float *w, const float *b)
{
    double m = 0, v = 0;
    for (int i = 0; i < D; i++)
        m += x[i];
    m /= D;
    for (int i = 0; i < D; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= D;
    for (int i = 0; i < D; i++)
        x[i] = (x[i] - m) / sqrt(v + EPS) * w[i] + b[i];
}

static void linear(const double *x, const float *w, const float *b, int out, int in, double *y)
{
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++)
            s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static double ref_score(const int *ids, const int *types, int n)
{
    static double x[P][D], q[P][D], k[P][D], v[P][D], ctx[P][D], t[P][D], ff[FF];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < D; j++)
            x[i][j] = (double)we[ids[i] * D + j] + pe[i * D + j] + te[types[i] * D + j];
        layernorm(x[i], elnw, elnb);
    }
    for (int l = 0; l < L; l++) {
        layer *y = &ly[l];
        for (int i = 0; i < n; i++) {
            linear(x[i], y->wq, y->bq, D, D, q[i]);
            linear(x[i], y->wk, y->bk, D, D, k[i]);
            linear(x[i], y->wv, y->bv, D, D, v[i]);
        }
        for (int h = 0; h < H; h++)
            for (int i = 0; i < n; i++) {
                double s[P], mx = -1e300, z = 0;
                for (int j = 0; j < n; j++) {
                    s[j] = 0;
                    for (int e = 0; e < HD; e++)
                        s[j] += q[i][h * HD + e] * k[j][h * HD + e];
                    s[j] /= sqrt((double)HD);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < n; j++)
                    z += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < HD; e++) {
                    double a = 0;
                    for (int j = 0; j < n; j++)
                        a += s[j] / z * v[j][h * HD + e];
                    ctx[i][h * HD + e] = a;
                }
            }
        for (int i = 0; i < n; i++) {
            linear(ctx[i], y->wo, y->bo, D, D, t[i]);
            for (int j = 0; j < D; j++)
                x[i][j] += t[i][j];
            layernorm(x[i], y->ln1w, y->ln1b);
            linear(x[i], y->wi, y->bi, FF, D, ff);
            for (int j = 0; j < FF; j++)
                ff[j] = 0.5 * ff[j] * (1.0 + erf(ff[j] / sqrt(2.0)));
            linear(ff, y->wd, y->bd, D, FF, t[i]);
            for (int j = 0; j < D; j++)
                x[i][j] += t[i][j];
            layernorm(x[i], y->ln2w, y->ln2b);
        }
    }
    double pool[D], logit;
    linear(x[0], wp, bp, D, D, pool);
    for (int j = 0; j < D; j++)
        pool[j] = tanh(pool[j]);
    linear(pool, wc, bc, 1, D, &logit);
    return logit;
}

/* [CLS] q [SEP] p [SEP] with HF longest-first truncation to P tokens. */
static double ref_pair(const int32_t *q, int nq, const int32_t *p, int np, int cls, int sep)
{
    int ids[P], ty[P], n = 0;
    while (nq + np > P - 3) {
        if (nq > np)
            nq--;
        else
            np--;
    }
    ids[n] = cls;
    ty[n++] = 0;
    for (int i = 0; i < nq; i++) {
        ids[n] = q[i];
        ty[n++] = 0;
    }
    ids[n] = sep;
    ty[n++] = 0;
    for (int i = 0; i < np; i++) {
        ids[n] = p[i];
        ty[n++] = 1;
    }
    ids[n] = sep;
    ty[n++] = 1;
    return ref_score(ids, ty, n);
}

static const char *PASS[] = {
    "request two gpus for a batch job", "memory per node", "the time limit of a job", "job arrays submit batch jobs",
    "a batch job runs a script", "gpus and the job queue",
};
#define NPASS 6

/* Text API = ids API on the tokenizer's ids; the retriever reorders by logit. */
static void test_text_and_retriever(qr_model *m, const char *dir)
{
    const qr_tokenizer *tok = qr_model_tokenizer(m);
    CHECK(tok != NULL);
    if (!tok)
        return;
    int32_t cls = qr_tokenizer_find(tok, "[CLS]"), sep = qr_tokenizer_find(tok, "[SEP]");
    const char *q = "batch job gpus";
    int32_t *qi = NULL;
    size_t nq = 0;
    CHECK_OK(qr_tokenize(tok, q, strlen(q), false, &qi, &nq));
    size_t pl[NPASS];
    float got[NPASS];
    for (int i = 0; i < NPASS; i++)
        pl[i] = strlen(PASS[i]);
    CHECK_OK(qr_rerank_scores(m, q, strlen(q), PASS, pl, NPASS, got));
    for (int i = 0; i < NPASS; i++) {
        int32_t *pi = NULL;
        size_t np = 0;
        CHECK_OK(qr_tokenize(tok, PASS[i], pl[i], false, &pi, &np));
        if (pi && qi)
            CHECK_NEAR(got[i], ref_pair(qi, (int)nq, pi, (int)np, cls, sep), 1e-4 * (1 + fabs(got[i])));
        free(pi);
    }
    free(qi);

    /* store + retriever with the reranker */
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    qr_store *s = NULL;
    qr_store_open_opts oo = {.create = true, .map_size = (size_t)64 << 20};
    CHECK_OK(qr_store_open(sdir, &oo, &s));
    if (!s)
        return;
    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    uint64_t ids[NPASS];
    CHECK_OK(qr_store_txn_begin(s, true, &t));
    CHECK_OK(qr_bm25_open(qr_store_txn_mdb(t), NULL, &bm));
    for (int i = 0; i < NPASS; i++) {
        char path[32];
        snprintf(path, sizeof path, "d%d.txt", i);
        qr_store_chunk c = {.text = PASS[i], .text_len = pl[i]};
        qr_store_doc d = {.path = path, .hash = "h", .format = "txt"};
        CHECK_OK(qr_store_put_doc(t, &d, &c, 1, NULL, NULL, &ids[i]));
        CHECK_OK(qr_bm25_add(bm, qr_store_txn_mdb(t), ids[i], c.text, c.text_len));
    }
    CHECK_OK(qr_bm25_flush(bm, qr_store_txn_mdb(t)));
    CHECK_OK(qr_store_txn_commit(t));
    qr_bm25_close(bm);
    qr_retrieve_opts o;
    qr_retrieve_opts_default(&o);
    o.mmr_lambda = 1;
    o.dup_threshold = 2;
    qr_retriever *r = NULL;
    CHECK_OK(qr_retriever_open(s, NULL, NULL, m, &o, &r));
    qr_results res = {0};
    CHECK_OK(qr_retrieve_query(r, q, strlen(q), NPASS, NULL, 0, NULL, &res));
    CHECK(res.n >= 4); /* every passage with a query term */
    for (size_t i = 0; i < res.n; i++) {
        CHECK(res.items[i].reranked);
        CHECK(res.items[i].score == res.items[i].rerank);
        int at = -1;
        for (int j = 0; j < NPASS; j++)
            if (ids[j] == res.items[i].chunk_id)
                at = j;
        CHECK(at >= 0);
        if (at >= 0)
            CHECK_NEAR(res.items[i].rerank, got[at], 1e-5 * (1 + fabs(got[at])));
        if (i > 0)
            CHECK(res.items[i - 1].rerank >= res.items[i].rerank);
    }
    qr_results_free(&res);
    qr_retriever_close(r);
    qr_store_close(s);
}

int main(void)
{
    char dir[] = "/tmp/qr_rerank_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    make_model(true);
    CHECK_INT(write_model(dir), 0);
    char cp[1200];
    snprintf(cp, sizeof cp, "cp '%s' '%s/tokenizer.json'", FIXTURE("models/bert_minilm/tokenizer.json"), dir);
    CHECK_INT(system(cp), 0);
    qr_backend *be = NULL;
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    CHECK_OK(qr_backend_cpu_create(2, &be));
    CHECK_OK(qr_model_load(dir, &mo, be, &m));
    if (m) {
        const int cls = 1, sep = 2;
        int32_t q[] = {5, 17, 33};
        int32_t p0[] = {7, 8, 9, 10, 11};
        int32_t p1[] = {40};
        int32_t p2[40]; /* longer than the limit: truncated */
        for (int i = 0; i < 40; i++)
            p2[i] = 3 + (i * 7) % (V - 3);
        int32_t p3[] = {5, 17, 33}; /* same tokens as the query */
        const int32_t *ps[] = {p0, p1, p2, p3};
        int32_t pl[] = {5, 1, 40, 3};
        float out[4];
        CHECK_OK(qr_rerank_ids(m, q, 3, ps, pl, 4, cls, sep, out));
        double worst = 0;
        for (int i = 0; i < 4; i++) {
            double want = ref_pair(q, 3, ps[i], pl[i], cls, sep);
            CHECK_NEAR(out[i], want, 1e-4 * (1 + fabs(want)));
            worst = fmax(worst, fabs(out[i] - want));
        }
        printf("max |logit - double reference| = %.3g\n", worst);
        /* a long query against a short passage: the query is the one cut */
        int32_t lq[30];
        for (int i = 0; i < 30; i++)
            lq[i] = 3 + (i * 11) % (V - 3);
        const int32_t *ps1[] = {p0};
        int32_t pl1[] = {5};
        CHECK_OK(qr_rerank_ids(m, lq, 30, ps1, pl1, 1, cls, sep, out));
        CHECK_NEAR(out[0], ref_pair(lq, 30, p0, 5, cls, sep), 1e-4 * (1 + fabs(out[0])));
        /* token types matter: query and passage swapped score as the reference says */
        const int32_t *ps2[] = {q};
        int32_t pl2[] = {3};
        float sw;
        CHECK_OK(qr_rerank_ids(m, p0, 5, ps2, pl2, 1, cls, sep, &sw));
        double want_sw = ref_pair(p0, 5, q, 3, cls, sep);
        CHECK_NEAR(sw, want_sw, 1e-4 * (1 + fabs(want_sw)));
        CHECK(fabs(want_sw - ref_pair(q, 3, p0, 5, cls, sep)) > 1e-3);
        /* errors */
        int32_t badp[] = {V + 3};
        const int32_t *ps3[] = {badp};
        int32_t pl3[] = {1};
        CHECK_INT(qr_rerank_ids(m, q, 3, ps3, pl3, 1, cls, sep, out), QR_EINVAL);
        test_text_and_retriever(m, dir);
        qr_model_free(m);
    }
    /* a plain BertModel (no pooler/classifier): refused naming the tensor */
    qr_model *e = NULL;
    CHECK_OK(qr_model_load(FIXTURE("models/bert_minilm"), &mo, be, &e));
    if (e) {
        int32_t q1[] = {5};
        const int32_t *ps[] = {q1};
        int32_t pl[] = {1};
        float o1;
        int rc = qr_rerank_ids(e, q1, 1, ps, pl, 1, 101, 102, &o1);
        CHECK(rc == QR_EFORMAT || rc == QR_EINVAL);
        qr_model_free(e);
    }
    qr_backend_destroy(be);
    for (int i = 0; i < nt; i++)
        free(T[i].w);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return qr_test_done();
}
