/* Retrieval: dense + BM25 candidates, weighted RRF, optional cross-encoder
 * rerank, MMR / duplicate suppression, filters. See retrieve.h for the
 * formulas. */
#include "retrieve/retrieve.h"

#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "index/analyzer.h"
#include "index/bm25.h"
#include "index/vecindex.h"

struct qr_retriever {
    qr_store *s;
    qr_model *emb, *rr; /* borrowed; NULL when absent */
    qr_retrieve_opts o;
    qr_analyzer *an;    /* MMR Jaccard term sets */
};

void qr_retrieve_opts_default(qr_retrieve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->rrf_k = 60.0f;
    o->w_dense = 1.0f;
    o->w_bm25 = 1.0f;
    o->depth_min = 50;
    o->rerank_depth = 50;
    o->mmr_lambda = 0.7f;
    o->dup_threshold = 0.95f;
    o->bm25_k1 = 0.9f;
    o->bm25_b = 0.4f;
    o->max_per_doc = 1;
}

static int check_opts(const qr_retrieve_opts *o)
{
    if (!(o->rrf_k >= 0.0f && o->rrf_k <= 1e6f))
        return qr_fail(QR_EINVAL, "retrieve: rrf_k %g outside [0, 1e6]", (double)o->rrf_k);
    if (!(o->w_dense >= 0.0f && o->w_bm25 >= 0.0f && o->w_dense <= 1e6f && o->w_bm25 <= 1e6f))
        return qr_fail(QR_EINVAL, "retrieve: retriever weights must be in [0, 1e6]");
    if (o->depth_min < 1 || o->depth_min > QR_RETRIEVE_MAX_DEPTH)
        return qr_fail(QR_EINVAL, "retrieve: depth_min %d outside [1, %d]", o->depth_min, QR_RETRIEVE_MAX_DEPTH);
    if (o->rerank_depth < 0 || o->rerank_depth > QR_RETRIEVE_MAX_DEPTH)
        return qr_fail(QR_EINVAL, "retrieve: rerank_depth %d outside [0, %d]", o->rerank_depth,
                       QR_RETRIEVE_MAX_DEPTH);
    if (!(o->mmr_lambda >= 0.0f && o->mmr_lambda <= 1.0f))
        return qr_fail(QR_EINVAL, "retrieve: mmr_lambda %g outside [0, 1]", (double)o->mmr_lambda);
    if (!(o->dup_threshold >= 0.0f))
        return qr_fail(QR_EINVAL, "retrieve: dup_threshold %g is negative", (double)o->dup_threshold);
    if (!(o->bm25_k1 >= 0.0f && o->bm25_b >= 0.0f && o->bm25_b <= 1.0f))
        return qr_fail(QR_EINVAL, "retrieve: bm25 k1 %g / b %g invalid", (double)o->bm25_k1, (double)o->bm25_b);
    if (o->max_per_doc < 0 || o->max_per_doc > QR_RETRIEVE_MAX_K)
        return qr_fail(QR_EINVAL, "retrieve: max_per_doc %d outside [0, %d]", o->max_per_doc, QR_RETRIEVE_MAX_K);
    return 0;
}

static const char *pool_name(qr_pool_mode p)
{
    return p == QR_POOL_CLS ? "cls" : p == QR_POOL_LAST ? "last" : "mean";
}

int qr_retriever_open(qr_store *store, qr_model *embedder, const char *embedder_path, qr_model *reranker,
                      const qr_retrieve_opts *opts, qr_retriever **out)
{
    if (!store || !out)
        return qr_fail(QR_EINVAL, "qr_retriever_open: store and out are required");
    qr_retrieve_opts o;
    if (opts)
        o = *opts;
    else
        qr_retrieve_opts_default(&o);
    int rc = check_opts(&o);
    if (rc)
        return rc;
    const qr_manifest *man = qr_store_manifest(store);
    if (embedder) {
        const qr_model_config *c = qr_model_cfg(embedder);
        if (!man->has_embedder)
            return qr_fail(QR_EMISMATCH, "%s: the store has no embedder (BM25 only); search it without one",
                           qr_store_dir(store));
        qr_embedder_id id;
        memset(&id, 0, sizeof id);
        snprintf(id.model, sizeof id.model, "%s", embedder_path ? embedder_path : "(given model)");
        id.dim = c->d_model;
        snprintf(id.pooling, sizeof id.pooling, "%s", pool_name(c->pooling));
        id.normalize = c->normalize;
        if (embedder_path) {
            if ((rc = qr_embedder_hash(embedder_path, id.hash, sizeof id.hash)))
                return rc;
        } else {
            snprintf(id.hash, sizeof id.hash, "%s", man->embedder.hash); /* dimension/pooling check only */
        }
        if (!qr_embedder_same(&id, &man->embedder)) {
            char a[1400], b[1400];
            qr_embedder_describe(&id, a, sizeof a);
            qr_embedder_describe(&man->embedder, b, sizeof b);
            return qr_fail(QR_EMISMATCH, "%s: embedder %s differs from the store's %s", qr_store_dir(store), a, b);
        }
    }
    if (reranker && qr_model_cfg(reranker)->arch != QR_ARCH_BERT)
        return qr_fail(QR_EUNSUPPORTED, "retrieve: the reranker must be a BERT cross-encoder");
    qr_retriever *r = calloc(1, sizeof *r);
    if (!r)
        return qr_fail(QR_ENOMEM, "qr_retriever_open");
    if ((rc = qr_analyzer_create(&r->an))) {
        free(r);
        return rc;
    }
    r->s = store;
    r->emb = embedder;
    r->rr = reranker;
    r->o = o;
    *out = r;
    return 0;
}

void qr_retriever_close(qr_retriever *r)
{
    if (!r)
        return;
    qr_analyzer_destroy(r->an);
    free(r);
}

void qr_results_free(qr_results *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->n; i++) {
        free(res->items[i].path);
        free(res->items[i].title);
        free(res->items[i].heading);
        free(res->items[i].text);
    }
    free(res->items);
    memset(res, 0, sizeof *res);
}

int qr_retrieve_parse_filter(char *s, qr_retrieve_filter *f)
{
    char *eq = s ? strchr(s, '=') : NULL;
    if (!eq || eq == s)
        return qr_fail(QR_EINVAL, "filter '%s': expected key=value (path=GLOB or a metadata key)", s ? s : "");
    *eq = '\0';
    f->key = s;
    f->value = eq + 1;
    return 0;
}

/* ---- RRF ---- */

typedef struct {
    uint64_t id;
    double fused;
    float dense, bm25;
    int dense_rank, bm25_rank;
} cand;

typedef struct {
    uint64_t id;
    int list, rank;
    float score;
} entry;

static int cmp_entry_id(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->fused != y->fused)
        return x->fused > y->fused ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/* Fuses entries (list 0 = dense, 1 = bm25 for the score fields) into *out
 * (malloc'd, sorted), *n_out. */
static int fuse(entry *e, size_t ne, const float *weights, float rrf_k, cand **out, size_t *n_out)
{
    qsort(e, ne, sizeof *e, cmp_entry_id);
    cand *c = malloc((ne ? ne : 1) * sizeof *c);
    if (!c)
        return qr_fail(QR_ENOMEM, "retrieve: fusing %zu entries", ne);
    size_t n = 0;
    for (size_t i = 0; i < ne;) {
        cand x = {.id = e[i].id};
        size_t j = i;
        for (; j < ne && e[j].id == e[i].id; j++) {
            x.fused += (double)weights[e[j].list] / ((double)rrf_k + (double)e[j].rank);
            if (e[j].list == 0 && !x.dense_rank) {
                x.dense_rank = e[j].rank;
                x.dense = e[j].score;
            } else if (e[j].list == 1 && !x.bm25_rank) {
                x.bm25_rank = e[j].rank;
                x.bm25 = e[j].score;
            }
        }
        c[n++] = x;
        i = j;
    }
    qsort(c, n, sizeof *c, cmp_cand);
    *out = c;
    *n_out = n;
    return 0;
}

int qr_rrf_fuse(const uint64_t *const *lists, const size_t *lens, const float *weights, int n_lists, float rrf_k,
                uint64_t *ids, float *scores, size_t cap, size_t *n_out)
{
    if (n_lists < 0 || (n_lists > 0 && (!lists || !lens || !weights)) || !n_out || (cap && (!ids || !scores)))
        return qr_fail(QR_EINVAL, "qr_rrf_fuse: bad arguments");
    size_t ne = 0;
    for (int l = 0; l < n_lists; l++)
        ne += lens[l];
    entry *e = malloc((ne ? ne : 1) * sizeof *e);
    if (!e)
        return qr_fail(QR_ENOMEM, "qr_rrf_fuse");
    size_t k = 0;
    for (int l = 0; l < n_lists; l++)
        for (size_t i = 0; i < lens[l]; i++) /* a repeated id in one list counts at its first rank only */
            e[k++] = (entry){.id = lists[l][i], .list = l, .rank = (int)i + 1};
    /* drop repeats within a list: keep the first (best) rank */
    qsort(e, ne, sizeof *e, cmp_entry_id);
    size_t m = 0;
    for (size_t i = 0; i < ne; i++) {
        bool dup = false;
        for (size_t j = m; j-- > 0 && e[j].id == e[i].id;)
            if (e[j].list == e[i].list) {
                if (e[i].rank < e[j].rank)
                    e[j].rank = e[i].rank;
                dup = true;
                break;
            }
        if (!dup)
            e[m++] = e[i];
    }
    cand *c = NULL;
    size_t nc = 0;
    int rc = fuse(e, m, weights, rrf_k, &c, &nc);
    free(e);
    if (rc)
        return rc;
    size_t w = nc < cap ? nc : cap;
    for (size_t i = 0; i < w; i++) {
        ids[i] = c[i].id;
        scores[i] = (float)c[i].fused;
    }
    *n_out = w;
    free(c);
    return 0;
}

/* ---- filters ---- */

typedef struct {
    uint64_t doc;
    bool pass;
} doc_verdict;

typedef struct {
    doc_verdict *v;
    size_t n, cap;
} verdict_cache;

static bool meta_match(const char *meta_json, const char *key, const char *want)
{
    if (!meta_json || !*meta_json)
        return false;
    json_error_t err;
    json_t *root = json_loads(meta_json, JSON_DECODE_ANY, &err);
    if (!root)
        return false;
    bool ok = false;
    json_t *v = json_is_object(root) ? json_object_get(root, key) : NULL;
    if (json_is_string(v)) {
        ok = strcmp(json_string_value(v), want) == 0;
    } else if (v) {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        ok = t && strcmp(t, want) == 0;
        free(t);
    }
    json_decref(root);
    return ok;
}

static int doc_passes(qr_store_txn *t, verdict_cache *vc, uint64_t doc_id, const qr_retrieve_filter *f, int nf,
                      bool *pass)
{
    for (size_t i = 0; i < vc->n; i++)
        if (vc->v[i].doc == doc_id) {
            *pass = vc->v[i].pass;
            return 0;
        }
    qr_store_doc d;
    int rc = qr_store_get_doc(t, doc_id, &d);
    if (rc)
        return rc;
    bool ok = true;
    for (int i = 0; i < nf && ok; i++) {
        if (strcmp(f[i].key, "path") == 0)
            ok = fnmatch(f[i].value, d.path, 0) == 0;
        else
            ok = meta_match(d.meta_json, f[i].key, f[i].value);
    }
    if (vc->n == vc->cap) {
        size_t nc = vc->cap ? vc->cap * 2 : 64;
        doc_verdict *nv = realloc(vc->v, nc * sizeof *nv);
        if (!nv)
            return qr_fail(QR_ENOMEM, "retrieve: filter cache");
        vc->v = nv;
        vc->cap = nc;
    }
    vc->v[vc->n++] = (doc_verdict){doc_id, ok};
    *pass = ok;
    return 0;
}

/* Keeps the ids (and scores) that pass the filters, at most depth of them. */
static int filter_list(qr_store_txn *t, verdict_cache *vc, const qr_retrieve_filter *f, int nf, uint64_t *ids,
                       float *scores, size_t *n, size_t depth)
{
    size_t w = 0;
    for (size_t i = 0; i < *n && w < depth; i++) {
        bool pass = true;
        if (nf > 0) {
            qr_store_chunk c;
            int rc = qr_store_get_chunk(t, ids[i], &c);
            if (rc == QR_ENOTFOUND)
                continue; /* deleted since indexing */
            if (rc || (rc = doc_passes(t, vc, c.doc_id, f, nf, &pass)))
                return rc;
        }
        if (pass) {
            ids[w] = ids[i];
            scores[w] = scores[i];
            w++;
        }
    }
    *n = w;
    return 0;
}

/* ---- MMR similarity ---- */

typedef struct {
    uint64_t *h;
    size_t n, cap;
    bool built;
} termset;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int add_term(const char *term, size_t len, void *user)
{
    termset *ts = user;
    if (ts->n == ts->cap) {
        size_t nc = ts->cap ? ts->cap * 2 : 64;
        uint64_t *nh = realloc(ts->h, nc * sizeof *nh);
        if (!nh)
            return QR_ENOMEM;
        ts->h = nh;
        ts->cap = nc;
    }
    ts->h[ts->n++] = fnv1a(term, len);
    return 0;
}

/* Shell sort (Ciura's gaps) of a term set's hashes: a few hundred of them,
 * where qsort's merge sort with a compare call per step cost more than the
 * analysis of the text. */
static void sort_u64(uint64_t *h, size_t n)
{
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            uint64_t x = h[i];
            size_t j = i;
            for (; j >= gap && h[j - gap] > x; j -= gap)
                h[j] = h[j - gap];
            h[j] = x;
        }
    }
}

/* The sorted set of analyzed-term hashes of a text (MMR's Jaccard similarity). */
static int build_termset(qr_analyzer *an, const char *text, size_t len, termset *ts)
{
    int rc = qr_analyzer_run(an, text, len, add_term, ts);
    if (rc)
        return rc == QR_ENOMEM ? qr_fail(QR_ENOMEM, "search: term sets") : rc;
    sort_u64(ts->h, ts->n);
    size_t u = 0;
    for (size_t j = 0; j < ts->n; j++)
        if (u == 0 || ts->h[u - 1] != ts->h[j])
            ts->h[u++] = ts->h[j];
    ts->n = u;
    ts->built = true;
    return 0;
}

static double jaccard(const termset *a, const termset *b)
{
    if (a->n == 0 && b->n == 0)
        return 1.0;
    size_t i = 0, j = 0, inter = 0;
    while (i < a->n && j < b->n) {
        if (a->h[i] == b->h[j]) {
            inter++;
            i++;
            j++;
        } else if (a->h[i] < b->h[j]) {
            i++;
        } else {
            j++;
        }
    }
    return (double)inter / (double)(a->n + b->n - inter);
}

/* ---- query ---- */

typedef struct {
    cand c;
    float rerank;
    bool reranked;
    float score; /* stage score used for MMR relevance and output */
    uint64_t doc_id;
    char *text;
    size_t text_len;
} pool_item;

static int cmp_pool_rerank(const void *a, const void *b)
{
    const pool_item *x = a, *y = b;
    if (x->rerank != y->rerank)
        return x->rerank > y->rerank ? -1 : 1;
    return cmp_cand(&x->c, &y->c);
}

/* Has doc already cap passages among the nsel selected? (cap 0: no cap) */
static bool doc_full(const pool_item *pool, const int *sel, size_t nsel, uint64_t doc, int cap)
{
    if (cap <= 0)
        return false;
    int n = 0;
    for (size_t j = 0; j < nsel; j++)
        n += pool[sel[j]].doc_id == doc;
    return n >= cap;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *dups(const char *s)
{
    return dupn(s ? s : "", strlen(s ? s : ""));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int retrieve(qr_retriever *r, const char *query, size_t len, const char *lex, size_t lex_len,
                    const float *qvec, int k, const qr_retrieve_filter *filters, int n_filters,
                    const qr_retrieve_opts *opts, qr_results *out)
{
    if (!r || !out || (!query && len) || (!lex && lex_len))
        return qr_fail(QR_EINVAL, "qr_retrieve_query: bad arguments");
    if (!lex) {
        lex = query;
        lex_len = len;
    }
    if (lex_len > QR_RETRIEVE_MAX_QUERY)
        return qr_fail(QR_ELIMIT, "search: lexical query of %zu bytes exceeds the limit %d", lex_len,
                       QR_RETRIEVE_MAX_QUERY);
    const qr_retrieve_opts *o = opts ? opts : &r->o;
    int rc = check_opts(o);
    if (rc)
        return rc;
    if (k < 1)
        return qr_fail(QR_EINVAL, "search: k must be >= 1 (got %d)", k);
    if (k > QR_RETRIEVE_MAX_K)
        return qr_fail(QR_ELIMIT, "search: k %d exceeds the limit %d", k, QR_RETRIEVE_MAX_K);
    if (len > QR_RETRIEVE_MAX_QUERY)
        return qr_fail(QR_ELIMIT, "search: query of %zu bytes exceeds the limit %d", len, QR_RETRIEVE_MAX_QUERY);
    if (n_filters < 0 || n_filters > QR_RETRIEVE_MAX_FILTERS || (n_filters && !filters))
        return qr_fail(QR_ELIMIT, "search: %d filters (limit %d)", n_filters, QR_RETRIEVE_MAX_FILTERS);
    for (int i = 0; i < n_filters; i++)
        if (!filters[i].key || !*filters[i].key || !filters[i].value)
            return qr_fail(QR_EINVAL, "search: filter %d has no key or value", i + 1);
    size_t qn = 0;
    while (qn < len && (query[qn] == ' ' || query[qn] == '\t' || query[qn] == '\n' || query[qn] == '\r'))
        qn++;
    if (qn == len)
        return qr_fail(QR_EINVAL, "search: the query is empty");

    double t0 = now_s();
    const qr_manifest *man = qr_store_manifest(r->s);
    size_t depth = (size_t)k * 4;
    if (depth < (size_t)o->depth_min)
        depth = (size_t)o->depth_min;
    if (depth > QR_RETRIEVE_MAX_DEPTH)
        depth = QR_RETRIEVE_MAX_DEPTH;
    if (depth < (size_t)k)
        depth = (size_t)k;
    size_t fetch = n_filters ? depth * 4 : depth; /* filters drop candidates: look deeper */
    if (fetch > QR_VECINDEX_MAX_K)
        fetch = QR_VECINDEX_MAX_K;

    qr_store_txn *t = NULL;
    qr_bm25 *bm = NULL;
    uint64_t *dids = NULL, *bids = NULL;
    float *dsc = NULL, *bsc = NULL, *qv = NULL, *vecs = NULL;
    qr_bm25_hit *hits = NULL;
    entry *e = NULL;
    cand *c = NULL;
    pool_item *pool = NULL;
    termset *ts = NULL;
    size_t *seen = NULL; /* MMR: selected passages each candidate was compared with */
    int *sel = NULL;
    double *maxsim = NULL;
    bool *dropped = NULL;
    verdict_cache vc = {0};
    qr_results res;
    memset(&res, 0, sizeof res);
    size_t nd = 0, nb = 0, npool = 0;

    dids = malloc(fetch * sizeof *dids);
    bids = malloc(fetch * sizeof *bids);
    dsc = malloc(fetch * sizeof *dsc);
    bsc = malloc(fetch * sizeof *bsc);
    hits = malloc(fetch * sizeof *hits);
    if (!dids || !bids || !dsc || !bsc || !hits) {
        rc = qr_fail(QR_ENOMEM, "search: candidate buffers (%zu)", fetch);
        goto fail;
    }
    if ((rc = qr_store_txn_begin(r->s, false, &t)))
        goto fail;

    /* dense */
    bool use_dense = (r->emb || qvec) && man->has_embedder && o->w_dense > 0.0f;
    if (use_dense) {
        int found = 0;
        if (!qvec) {
            int dim = qr_model_cfg(r->emb)->d_model;
            qv = malloc((size_t)dim * sizeof *qv);
            if (!qv) {
                rc = qr_fail(QR_ENOMEM, "search: query vector");
                goto fail;
            }
            const char *texts[1] = {query};
            size_t lens[1] = {len};
            if ((rc = qr_embed_texts(r->emb, texts, lens, 1, qv)))
                goto fail;
            qvec = qv;
        }
        if ((rc = qr_store_search(r->s, qvec, (int)fetch, dids, dsc, &found)))
            goto fail;
        nd = (size_t)found;
        if (strcmp(man->metric, "l2") == 0) /* higher is better everywhere */
            for (size_t i = 0; i < nd; i++)
                dsc[i] = -dsc[i];
        if ((rc = filter_list(t, &vc, filters, n_filters, dids, dsc, &nd, depth)))
            goto fail;
    }

    /* BM25 */
    if (o->w_bm25 > 0.0f) {
        qr_bm25_params bp = {.k1 = o->bm25_k1, .b = o->bm25_b};
        rc = qr_bm25_open(qr_store_txn_mdb(t), &bp, &bm);
        if (rc == QR_ENOTFOUND) {
            rc = 0; /* no BM25 index in this store */
        } else if (rc) {
            goto fail;
        } else {
            size_t nh = 0;
            if ((rc = qr_bm25_search(bm, qr_store_txn_mdb(t), lex, lex_len, fetch, hits, &nh)))
                goto fail;
            for (size_t i = 0; i < nh; i++) {
                bids[i] = hits[i].id;
                bsc[i] = hits[i].score;
            }
            nb = nh;
            if ((rc = filter_list(t, &vc, filters, n_filters, bids, bsc, &nb, depth)))
                goto fail;
        }
    }
    res.n_dense = (int)nd;
    res.n_bm25 = (int)nb;

    /* fusion */
    e = malloc((nd + nb + 1) * sizeof *e);
    if (!e) {
        rc = qr_fail(QR_ENOMEM, "search: fusion");
        goto fail;
    }
    size_t ne = 0;
    for (size_t i = 0; i < nd; i++)
        e[ne++] = (entry){.id = dids[i], .list = 0, .rank = (int)i + 1, .score = dsc[i]};
    for (size_t i = 0; i < nb; i++)
        e[ne++] = (entry){.id = bids[i], .list = 1, .rank = (int)i + 1, .score = bsc[i]};
    float wts[2] = {o->w_dense, o->w_bm25};
    size_t nc = 0;
    if ((rc = fuse(e, ne, wts, o->rrf_k, &c, &nc)))
        goto fail;

    /* candidate pool: what rerank and MMR look at */
    npool = nc < depth ? nc : depth;
    pool = calloc(npool ? npool : 1, sizeof *pool);
    if (!pool) {
        rc = qr_fail(QR_ENOMEM, "search: pool");
        goto fail;
    }
    for (size_t i = 0; i < npool; i++) {
        pool[i].c = c[i];
        pool[i].score = (float)c[i].fused;
        qr_store_chunk ch;
        if ((rc = qr_store_get_chunk(t, c[i].id, &ch)))
            goto fail;
        pool[i].doc_id = ch.doc_id;
        pool[i].text = dupn(ch.text, ch.text_len);
        pool[i].text_len = ch.text_len;
        if (!pool[i].text) {
            rc = qr_fail(QR_ENOMEM, "search: chunk text");
            goto fail;
        }
    }

    /* rerank */
    if (r->rr && npool > 0 && o->rerank_depth > 0) {
        size_t nr = npool < (size_t)o->rerank_depth ? npool : (size_t)o->rerank_depth;
        const char **pt = malloc(nr * sizeof *pt);
        size_t *pl = malloc(nr * sizeof *pl);
        float *sc = malloc(nr * sizeof *sc);
        if (!pt || !pl || !sc) {
            free(pt);
            free(pl);
            free(sc);
            rc = qr_fail(QR_ENOMEM, "search: rerank");
            goto fail;
        }
        for (size_t i = 0; i < nr; i++) {
            pt[i] = pool[i].text;
            pl[i] = pool[i].text_len;
        }
        rc = qr_rerank_scores(r->rr, query, len, pt, pl, (int)nr, sc);
        for (size_t i = 0; i < nr && !rc; i++) {
            pool[i].rerank = sc[i];
            pool[i].reranked = true;
            pool[i].score = sc[i];
        }
        free(pt);
        free(pl);
        free(sc);
        if (rc)
            goto fail;
        qsort(pool, nr, sizeof *pool, cmp_pool_rerank);
    }

    /* MMR / duplicate suppression over the ordered pool */
    sel = malloc((npool ? npool : 1) * sizeof *sel);
    maxsim = calloc(npool ? npool : 1, sizeof *maxsim);
    dropped = calloc(npool ? npool : 1, sizeof *dropped);
    if (!sel || !maxsim || !dropped) {
        rc = qr_fail(QR_ENOMEM, "search: mmr");
        goto fail;
    }
    size_t nsel = 0;
    bool do_mmr = o->mmr_lambda < 1.0f || o->dup_threshold <= 1.0f;
    if (!do_mmr || npool == 0) {
        for (size_t i = 0; i < npool && nsel < (size_t)k; i++)
            if (!doc_full(pool, sel, nsel, pool[i].doc_id, o->max_per_doc))
                sel[nsel++] = (int)i;
    } else {
        bool use_vec = man->has_embedder && man->embedder.dim > 0;
        int dim = use_vec ? man->embedder.dim : 0;
        if (use_vec) {
            vecs = calloc(npool * (size_t)dim, sizeof *vecs);
            if (!vecs) {
                rc = qr_fail(QR_ENOMEM, "search: mmr vectors");
                goto fail;
            }
            for (size_t i = 0; i < npool && use_vec; i++) {
                float *v = vecs + i * (size_t)dim;
                rc = qr_store_get_vector(t, pool[i].c.id, v);
                if (rc == QR_ENOTFOUND) { /* not embedded yet: fall back to term sets */
                    use_vec = false;
                    rc = 0;
                } else if (rc) {
                    goto fail;
                }
                double nn = 0;
                for (int j = 0; j < dim; j++)
                    nn += (double)v[j] * v[j];
                if (nn > 0)
                    for (int j = 0; j < dim; j++)
                        v[j] = (float)(v[j] / sqrt(nn));
            }
        }
        /* term sets are built when first needed (below) */
        seen = calloc(npool, sizeof *seen);
        if (!use_vec)
            ts = calloc(npool, sizeof *ts);
        if (!seen || (!use_vec && !ts)) {
            rc = qr_fail(QR_ENOMEM, "search: mmr term sets");
            goto fail;
        }
        /* relevance: min-max of the stage score; when only the first candidates
         * were reranked, the rest (fused scores, another scale) get 0 and keep
         * their order below them */
        bool any_rr = pool[0].reranked;
        float lo = pool[0].score, hi = pool[0].score;
        for (size_t i = 1; i < npool; i++) {
            if (any_rr && !pool[i].reranked)
                continue;
            lo = pool[i].score < lo ? pool[i].score : lo;
            hi = pool[i].score > hi ? pool[i].score : hi;
        }
        /* Greedy MMR, lazily: maxsim[i] is the largest similarity of candidate
         * i to the selected passages it has been compared with (sel[0 ..
         * seen[i])). It only grows as more are compared, so lam * rel - (1 -
         * lam) * maxsim[i] bounds i's MMR value from above; a candidate whose
         * bound does not beat the best value found so far in this round
         * (strict >, the tie rule) cannot be the choice and is not compared
         * further. The others are compared with the passages selected since
         * their last comparison (and dropped as near-duplicates if one is at
         * dup_threshold or above) before their value is taken. The choices
         * are those of comparing every candidate with every selected passage
         * after each choice, with most term sets never built. */
        bool *taken = dropped; /* taken or dropped: not selectable */
        double lam = o->mmr_lambda;
        while (nsel < (size_t)k) {
            int best = -1;
            double bv = -INFINITY;
            for (size_t i = 0; i < npool; i++) {
                if (taken[i])
                    continue;
                double rel = any_rr && !pool[i].reranked ? 0.0
                             : hi > lo                      ? ((double)pool[i].score - lo) / ((double)hi - lo)
                                                            : 1.0;
                if (!(lam * rel - (1.0 - lam) * (nsel ? maxsim[i] : 0.0) > bv))
                    continue;
                for (; seen[i] < nsel && !taken[i]; seen[i]++) {
                    size_t b = (size_t)sel[seen[i]];
                    double sim;
                    if (use_vec) {
                        const float *va = vecs + i * (size_t)dim, *vb = vecs + b * (size_t)dim;
                        sim = 0;
                        for (int j = 0; j < dim; j++)
                            sim += (double)va[j] * vb[j];
                    } else {
                        if ((!ts[i].built && (rc = build_termset(r->an, pool[i].text, pool[i].text_len, &ts[i]))) ||
                            (!ts[b].built && (rc = build_termset(r->an, pool[b].text, pool[b].text_len, &ts[b]))))
                            goto fail;
                        sim = jaccard(&ts[i], &ts[b]);
                    }
                    if (sim > maxsim[i])
                        maxsim[i] = sim;
                    if (sim >= o->dup_threshold)
                        taken[i] = true; /* near-duplicate of a selected passage */
                }
                if (taken[i])
                    continue;
                double v = lam * rel - (1.0 - lam) * (nsel ? maxsim[i] : 0.0);
                if (v > bv) {
                    bv = v;
                    best = (int)i;
                }
            }
            if (best < 0)
                break;
            taken[best] = true;
            sel[nsel++] = best;
            if (doc_full(pool, sel, nsel, pool[best].doc_id, o->max_per_doc))
                for (size_t i = 0; i < npool; i++)
                    taken[i] = taken[i] || pool[i].doc_id == pool[best].doc_id;
        }
    }

    /* results */
    res.items = calloc(nsel ? nsel : 1, sizeof *res.items);
    if (!res.items) {
        rc = qr_fail(QR_ENOMEM, "search: results");
        goto fail;
    }
    for (size_t i = 0; i < nsel; i++) {
        pool_item *p = &pool[sel[i]];
        qr_store_chunk ch;
        qr_store_doc d;
        if ((rc = qr_store_get_chunk(t, p->c.id, &ch)) || (rc = qr_store_get_doc(t, ch.doc_id, &d)))
            goto fail;
        qr_passage *q = &res.items[res.n++];
        q->chunk_id = p->c.id;
        q->doc_id = ch.doc_id;
        q->page = ch.page;
        q->byte_start = ch.byte_start;
        q->byte_end = ch.byte_end;
        q->fused = (float)p->c.fused;
        q->dense = p->c.dense;
        q->dense_rank = p->c.dense_rank;
        q->bm25 = p->c.bm25;
        q->bm25_rank = p->c.bm25_rank;
        q->rerank = p->rerank;
        q->reranked = p->reranked;
        q->score = p->reranked ? p->rerank : q->fused;
        q->path = dups(d.path);
        q->title = dups(d.title);
        q->heading = dups(ch.heading);
        q->text = p->text;
        p->text = NULL;
        if (!q->path || !q->title || !q->heading) {
            rc = qr_fail(QR_ENOMEM, "search: results");
            goto fail;
        }
    }
    res.seconds = now_s() - t0;
    *out = res;
    memset(&res, 0, sizeof res);
fail:
    qr_results_free(&res);
    qr_bm25_close(bm);
    qr_store_txn_abort(t);
    if (pool)
        for (size_t i = 0; i < npool; i++)
            free(pool[i].text);
    if (ts)
        for (size_t i = 0; i < npool; i++)
            free(ts[i].h);
    free(ts);
    free(seen);
    free(pool);
    free(sel);
    free(maxsim);
    free(dropped);
    free(vecs);
    free(c);
    free(e);
    free(vc.v);
    free(qv);
    free(dids);
    free(bids);
    free(dsc);
    free(bsc);
    free(hits);
    return rc;
}

int qr_retrieve_query(qr_retriever *r, const char *query, size_t len, int k, const qr_retrieve_filter *filters,
                      int n_filters, const qr_retrieve_opts *opts, qr_results *out)
{
    return retrieve(r, query, len, NULL, 0, NULL, k, filters, n_filters, opts, out);
}

int qr_retrieve_query_lex(qr_retriever *r, const char *query, size_t len, const char *lex, size_t lex_len, int k,
                          const qr_retrieve_filter *filters, int n_filters, const qr_retrieve_opts *opts,
                          qr_results *out)
{
    return retrieve(r, query, len, lex, lex_len, NULL, k, filters, n_filters, opts, out);
}

int qr_retrieve_query_vec(qr_retriever *r, const char *query, size_t len, const float *qvec, int k,
                          const qr_retrieve_filter *filters, int n_filters, const qr_retrieve_opts *opts,
                          qr_results *out)
{
    if (!qvec)
        return qr_fail(QR_EINVAL, "qr_retrieve_query_vec: no query vector");
    return retrieve(r, query, len, NULL, 0, qvec, k, filters, n_filters, opts, out);
}
