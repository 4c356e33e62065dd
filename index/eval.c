/* trec_eval -c style retrieval metrics, BEIR readers and the BM25 driver
 * (semantics in eval.h). */
#include "index/eval.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

/* ---- string -> index map ---- */

typedef struct {
    uint32_t *slots; /* index + 1 */
    size_t nslots;
} strmap;

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    return h;
}

/* keys[i] are the strings; returns the index or -1 */
static long sm_find(const strmap *m, char *const *keys, const char *s)
{
    if (!m->nslots)
        return -1;
    size_t k = str_hash(s) & (m->nslots - 1);
    while (m->slots[k]) {
        if (strcmp(keys[m->slots[k] - 1], s) == 0)
            return (long)m->slots[k] - 1;
        k = (k + 1) & (m->nslots - 1);
    }
    return -1;
}

/* inserts index idx (keys[idx] set, not present yet); n = entries after */
static int sm_insert(strmap *m, char *const *keys, size_t idx, size_t n)
{
    if (n * 2 > m->nslots) {
        size_t ns = m->nslots ? m->nslots * 2 : 256;
        while (n * 2 > ns)
            ns *= 2;
        uint32_t *s = calloc(ns, sizeof *s);
        if (!s)
            return qr_fail(QR_ENOMEM, "eval: map of %zu", ns);
        for (size_t i = 0; i < m->nslots; i++) {
            if (!m->slots[i])
                continue;
            size_t k = str_hash(keys[m->slots[i] - 1]) & (ns - 1);
            while (s[k])
                k = (k + 1) & (ns - 1);
            s[k] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->nslots = ns;
    }
    size_t k = str_hash(keys[idx]) & (m->nslots - 1);
    while (m->slots[k])
        k = (k + 1) & (m->nslots - 1);
    m->slots[k] = (uint32_t)(idx + 1);
    return 0;
}

/* ---- qrels ---- */

typedef struct {
    char *docid;
    int rel;
} judgment;

typedef struct {
    judgment *j; /* sorted by docid */
    size_t n, cap;
} jlist;

struct qr_qrels {
    char **qids;
    jlist *lists;
    size_t n, cap;
    strmap map;
};

int qr_qrels_create(qr_qrels **out)
{
    qr_qrels *q = calloc(1, sizeof *q);
    if (!q)
        return qr_fail(QR_ENOMEM, "eval: qrels");
    *out = q;
    return 0;
}

void qr_qrels_destroy(qr_qrels *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->qids[i]);
        for (size_t k = 0; k < q->lists[i].n; k++)
            free(q->lists[i].j[k].docid);
        free(q->lists[i].j);
    }
    free(q->qids);
    free(q->lists);
    free(q->map.slots);
    free(q);
}

size_t qr_qrels_nqueries(const qr_qrels *q) { return q->n; }
const char *qr_qrels_qid(const qr_qrels *q, size_t i) { return i < q->n ? q->qids[i] : NULL; }
bool qr_qrels_has(const qr_qrels *q, const char *qid) { return sm_find(&q->map, q->qids, qid) >= 0; }

/* position of docid in a sorted list, or where it would go */
static size_t jl_lower(const jlist *l, const char *docid, bool *found)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->j[mid].docid, docid);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < l->n && strcmp(l->j[lo].docid, docid) == 0;
    return lo;
}

int qr_qrels_add(qr_qrels *q, const char *qid, const char *docid, int rel)
{
    if (strlen(qid) > QR_EVAL_MAX_ID || strlen(docid) > QR_EVAL_MAX_ID)
        return qr_fail(QR_ELIMIT, "eval: qrels id longer than %d bytes", QR_EVAL_MAX_ID);
    long qi = sm_find(&q->map, q->qids, qid);
    if (qi < 0) {
        if (q->n == q->cap) {
            size_t nc = q->cap ? q->cap * 2 : 64;
            char **a = realloc(q->qids, nc * sizeof *a);
            if (!a)
                return qr_fail(QR_ENOMEM, "eval: qrels");
            q->qids = a;
            jlist *b = realloc(q->lists, nc * sizeof *b);
            if (!b)
                return qr_fail(QR_ENOMEM, "eval: qrels");
            q->lists = b;
            q->cap = nc;
        }
        q->qids[q->n] = strdup(qid);
        if (!q->qids[q->n])
            return qr_fail(QR_ENOMEM, "eval: qrels");
        memset(&q->lists[q->n], 0, sizeof q->lists[q->n]);
        int rc = sm_insert(&q->map, q->qids, q->n, q->n + 1);
        if (rc) {
            free(q->qids[q->n]);
            return rc;
        }
        qi = (long)q->n++;
    }
    jlist *l = &q->lists[qi];
    bool found;
    size_t pos = jl_lower(l, docid, &found);
    if (found) {
        l->j[pos].rel = rel;
        return 0;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        judgment *a = realloc(l->j, nc * sizeof *a);
        if (!a)
            return qr_fail(QR_ENOMEM, "eval: qrels");
        l->j = a;
        l->cap = nc;
    }
    char *d = strdup(docid);
    if (!d)
        return qr_fail(QR_ENOMEM, "eval: qrels");
    memmove(l->j + pos + 1, l->j + pos, (l->n - pos) * sizeof *l->j);
    l->j[pos].docid = d;
    l->j[pos].rel = rel;
    l->n++;
    return 0;
}

/* Reads one line (without \n, \r stripped) into *buf; 0 ok, 1 at EOF. */
static int read_line(FILE *f, const char *path, char **buf, size_t *cap, size_t *len)
{
    ssize_t r = getline(buf, cap, f);
    if (r < 0) {
        if (ferror(f))
            return qr_fail(QR_EIO, "%s: read: %s", path, strerror(errno));
        return 1;
    }
    size_t n = (size_t)r;
    if (n > QR_EVAL_MAX_LINE)
        return qr_fail(QR_ELIMIT, "%s: line of %zu bytes exceeds %zu", path, n, QR_EVAL_MAX_LINE);
    while (n && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r'))
        (*buf)[--n] = 0;
    *len = n;
    return 0;
}

/* Calls fn on each non-empty line of path (newline and \r stripped, 1-based
 * line numbers), within QR_EVAL_MAX_LINE bytes a line and QR_EVAL_MAX_ROWS
 * lines; stops at the first non-zero return of fn and returns it. */
typedef int (*line_fn)(char *line, size_t len, size_t lineno, void *user);

static int for_each_line(const char *path, line_fn fn, void *user)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return qr_fail(errno == ENOENT ? QR_ENOTFOUND : QR_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, len = 0, lineno = 0;
    int rc = 0;
    for (;;) {
        rc = read_line(f, path, &line, &cap, &len);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        if (++lineno > QR_EVAL_MAX_ROWS) {
            rc = qr_fail(QR_ELIMIT, "%s: more than %zu lines", path, QR_EVAL_MAX_ROWS);
            break;
        }
        if (len && (rc = fn(line, len, lineno, user)))
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

typedef struct {
    qr_qrels *q;
    const char *path;
} qrels_ctx;

/* One qrels row: query-id TAB corpus-id TAB score (line 1 is the header). */
static int qrels_line(char *line, size_t len, size_t lineno, void *user)
{
    qrels_ctx *c = user;
    (void)len;
    if (lineno == 1)
        return 0;
    char *t1 = strchr(line, '\t');
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (!t2)
        return qr_fail(QR_EFORMAT, "%s:%zu: expected query-id TAB corpus-id TAB score", c->path, lineno);
    *t1 = 0;
    *t2 = 0;
    char *end;
    errno = 0;
    long rel = strtol(t2 + 1, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == t2 + 1 || *end || errno || rel < -1000000 || rel > 1000000)
        return qr_fail(QR_EFORMAT, "%s:%zu: score '%s' is not an integer", c->path, lineno, t2 + 1);
    return qr_qrels_add(c->q, line, t1 + 1, (int)rel);
}

int qr_qrels_load(qr_qrels *q, const char *path)
{
    qrels_ctx c = {q, path};
    return for_each_line(path, qrels_line, &c);
}

/* ---- metrics ---- */

static int cmp_trec(const void *a, const void *b)
{
    const qr_eval_hit *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    return strcmp(y->docid, x->docid); /* docno descending */
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int qr_eval_query(const qr_qrels *q, const char *qid, qr_eval_hit *hits, size_t n, qr_eval_metrics *out)
{
    qr_eval_metrics m = {0, 0, 0, 0};
    long qi = sm_find(&q->map, q->qids, qid);
    if (qi < 0) {
        *out = m;
        return 0;
    }
    const jlist *l = &q->lists[qi];
    qsort(hits, n, sizeof *hits, cmp_trec);
    size_t num_rel = 0;
    for (size_t i = 0; i < l->n; i++)
        num_rel += l->j[i].rel >= 1;
    double dcg = 0.0;
    size_t rel100 = 0, rel1000 = 0;
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t pos = jl_lower(l, hits[i].docid, &found);
        int rel = found ? l->j[pos].rel : 0;
        if (rel <= 0)
            continue;
        if (i < 10) {
            dcg += (double)rel / log2((double)(i + 2));
            if (m.mrr10 == 0.0)
                m.mrr10 = 1.0 / (double)(i + 1);
        }
        if (i < 100)
            rel100++;
        if (i < 1000)
            rel1000++;
    }
    /* ideal DCG from the judged levels */
    int top[10];
    size_t nt = 0;
    {
        int *lv = malloc((l->n ? l->n : 1) * sizeof *lv);
        if (!lv)
            return qr_fail(QR_ENOMEM, "eval: ideal ranking");
        for (size_t i = 0; i < l->n; i++)
            lv[i] = l->j[i].rel;
        qsort(lv, l->n, sizeof *lv, cmp_int_desc);
        for (size_t i = 0; i < l->n && i < 10 && lv[i] > 0; i++)
            top[nt++] = lv[i];
        free(lv);
    }
    double idcg = 0.0;
    for (size_t i = 0; i < nt; i++)
        idcg += (double)top[i] / log2((double)(i + 2));
    m.ndcg10 = idcg > 0.0 ? dcg / idcg : 0.0;
    if (num_rel) {
        m.recall100 = (double)rel100 / (double)num_rel;
        m.recall1000 = (double)rel1000 / (double)num_rel;
    }
    *out = m;
    return 0;
}

struct qr_eval {
    const qr_qrels *q;
    qr_eval_metrics *per; /* (nqueries) */
};

int qr_eval_create(const qr_qrels *q, qr_eval **out)
{
    qr_eval *e = calloc(1, sizeof *e);
    if (!e)
        return qr_fail(QR_ENOMEM, "eval: create");
    e->q = q;
    e->per = calloc(q->n ? q->n : 1, sizeof *e->per);
    if (!e->per) {
        free(e);
        return qr_fail(QR_ENOMEM, "eval: create");
    }
    *out = e;
    return 0;
}

void qr_eval_destroy(qr_eval *e)
{
    if (!e)
        return;
    free(e->per);
    free(e);
}

int qr_eval_add(qr_eval *e, const char *qid, qr_eval_hit *hits, size_t n)
{
    long qi = sm_find(&e->q->map, e->q->qids, qid);
    if (qi < 0)
        return 0;
    return qr_eval_query(e->q, qid, hits, n, &e->per[qi]);
}

int qr_eval_result(const qr_eval *e, qr_eval_metrics *mean, size_t *nqueries)
{
    qr_eval_metrics s = {0, 0, 0, 0};
    size_t n = e->q->n;
    for (size_t i = 0; i < n; i++) {
        s.ndcg10 += e->per[i].ndcg10;
        s.recall100 += e->per[i].recall100;
        s.recall1000 += e->per[i].recall1000;
        s.mrr10 += e->per[i].mrr10;
    }
    if (n) {
        s.ndcg10 /= (double)n;
        s.recall100 /= (double)n;
        s.recall1000 /= (double)n;
        s.mrr10 /= (double)n;
    }
    *mean = s;
    if (nqueries)
        *nqueries = n;
    return 0;
}

/* ---- BEIR JSONL ---- */

typedef struct {
    const char *path;
    bool corpus;
    qr_beir_doc_fn fn;
    void *user;
} jsonl_ctx;

/* One BEIR record: {"_id", "text"} and, for the corpus, "title". */
static int jsonl_line(char *line, size_t len, size_t lineno, void *user)
{
    jsonl_ctx *c = user;
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    int rc;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return qr_fail(QR_EFORMAT, "%s:%zu: %s", c->path, lineno, o ? "not a JSON object" : jerr.text);
    }
    json_t *id = json_object_get(o, "_id"), *text = json_object_get(o, "text");
    json_t *title = c->corpus ? json_object_get(o, "title") : NULL;
    if (!json_is_string(id) || !json_is_string(text) || (title && !json_is_string(title)))
        rc = qr_fail(QR_EFORMAT, "%s:%zu: \"_id\" and \"text\" must be strings", c->path, lineno);
    else if (strlen(json_string_value(id)) > QR_EVAL_MAX_ID)
        rc = qr_fail(QR_ELIMIT, "%s:%zu: _id longer than %d bytes", c->path, lineno, QR_EVAL_MAX_ID);
    else
        rc = c->fn(json_string_value(id), title ? json_string_value(title) : "", json_string_value(text), c->user);
    json_decref(o);
    return rc;
}

static int read_jsonl(const char *path, bool corpus, qr_beir_doc_fn fn, void *user)
{
    jsonl_ctx c = {path, corpus, fn, user};
    return for_each_line(path, jsonl_line, &c);
}

int qr_beir_read_corpus(const char *path, qr_beir_doc_fn fn, void *user) { return read_jsonl(path, true, fn, user); }
int qr_beir_read_queries(const char *path, qr_beir_doc_fn fn, void *user) { return read_jsonl(path, false, fn, user); }

/* ---- BM25 over BEIR ---- */

typedef struct {
    qr_bm25 *ix;
    MDB_txn *txn;
    char **ids;
    size_t n, cap;
    char *buf;
    size_t bufcap;
    size_t bytes;
    /* search side */
    const qr_qrels *qrels;
    qr_eval *ev;
    qr_bm25_hit *hits;
    qr_eval_hit *eh;
    size_t k;
    size_t nrun;
} beir_ctx;

static int corpus_doc(const char *id, const char *title, const char *text, void *user)
{
    beir_ctx *c = user;
    size_t tl = strlen(title), xl = strlen(text);
    if (c->bufcap < tl + xl + 2) {
        size_t nc = (tl + xl + 2) * 2;
        char *b = realloc(c->buf, nc);
        if (!b)
            return qr_fail(QR_ENOMEM, "eval: document buffer");
        c->buf = b;
        c->bufcap = nc;
    }
    /* Anserini "flat": title + "\n" + text */
    memcpy(c->buf, title, tl);
    c->buf[tl] = '\n';
    memcpy(c->buf + tl + 1, text, xl);
    c->buf[tl + 1 + xl] = 0;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1024;
        char **a = realloc(c->ids, nc * sizeof *a);
        if (!a)
            return qr_fail(QR_ENOMEM, "eval: ids");
        c->ids = a;
        c->cap = nc;
    }
    c->ids[c->n] = strdup(id);
    if (!c->ids[c->n])
        return qr_fail(QR_ENOMEM, "eval: ids");
    c->n++;
    c->bytes += tl + xl + 1;
    return qr_bm25_add(c->ix, c->txn, c->n - 1, c->buf, tl + 1 + xl);
}

static int query_run(const char *id, const char *title, const char *text, void *user)
{
    (void)title;
    beir_ctx *c = user;
    if (!qr_qrels_has(c->qrels, id))
        return 0;
    size_t nh = 0;
    int rc = qr_bm25_search(c->ix, c->txn, text, strlen(text), c->k, c->hits, &nh);
    if (rc)
        return rc;
    size_t m = 0;
    for (size_t i = 0; i < nh; i++) {
        const char *docid = c->ids[c->hits[i].id];
        if (strcmp(docid, id) == 0)
            continue; /* Anserini removeQuery */
        c->eh[m].docid = docid;
        c->eh[m].score = c->hits[i].score;
        m++;
    }
    c->nrun++;
    return qr_eval_add(c->ev, id, c->eh, m);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int qr_beir_eval_bm25(const char *dir, const qr_beir_opts *opts, qr_beir_result *out)
{
    const char *split = opts && opts->split ? opts->split : "test";
    size_t k = opts && opts->hits ? opts->hits : 1000;
    qr_bm25_params prm = opts ? opts->params : qr_bm25_default_params();
    if (k > QR_BM25_MAX_K)
        return qr_fail(QR_ELIMIT, "eval: hits %zu exceeds %d", k, QR_BM25_MAX_K);
    if (strchr(split, '/') || strlen(split) > 64)
        return qr_fail(QR_EINVAL, "eval: split '%s' must be a plain name", split);
    const char *tmp = opts && opts->tmpdir ? opts->tmpdir : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char path[4096], tdir[4096], qpath[4096], cpath[4096];
    snprintf(path, sizeof path, "%s/qrels/%s.tsv", dir, split);
    snprintf(qpath, sizeof qpath, "%s/queries.jsonl", dir);
    snprintf(cpath, sizeof cpath, "%s/corpus.jsonl", dir);
    snprintf(tdir, sizeof tdir, "%s/quire-eval-XXXXXX", tmp);
    beir_ctx c;
    memset(&c, 0, sizeof c);
    qr_qrels *qrels = NULL;
    MDB_env *env = NULL;
    bool made_dir = false;
    int rc, r;
    struct stat sb;
    if (stat(cpath, &sb) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: %s", cpath, strerror(errno));
    if ((rc = qr_qrels_create(&qrels)) || (rc = qr_qrels_load(qrels, path)))
        goto fail;
    if (!mkdtemp(tdir)) {
        rc = qr_fail(QR_EIO, "%s: mkdtemp: %s", tdir, strerror(errno));
        goto fail;
    }
    made_dir = true;
    /* the index takes a few times the text; leave generous room (sparse file) */
    size_t mapsize = (size_t)sb.st_size * 8 + ((size_t)256 << 20);
    if ((r = mdb_env_create(&env)) || (r = mdb_env_set_maxdbs(env, 32)) || (r = mdb_env_set_mapsize(env, mapsize)) ||
        (r = mdb_env_open(env, tdir, MDB_NOSYNC | MDB_NOMETASYNC, 0600))) {
        rc = qr_fail(QR_EIO, "%s: lmdb: %s", tdir, mdb_strerror(r));
        goto fail;
    }
    double t0 = now_s();
    if ((r = mdb_txn_begin(env, NULL, 0, &c.txn))) {
        rc = qr_fail(QR_EIO, "%s: lmdb: %s", tdir, mdb_strerror(r));
        goto fail;
    }
    if ((rc = qr_bm25_open(c.txn, &prm, &c.ix)))
        goto fail;
    if ((rc = qr_beir_read_corpus(cpath, corpus_doc, &c)) || (rc = qr_bm25_flush(c.ix, c.txn)))
        goto fail;
    r = mdb_txn_commit(c.txn);
    c.txn = NULL;
    if (r) {
        rc = qr_fail(QR_EIO, "%s: lmdb commit: %s", tdir, mdb_strerror(r));
        goto fail;
    }
    double t1 = now_s();
    qr_bm25_stats st;
    if ((r = mdb_txn_begin(env, NULL, MDB_RDONLY, &c.txn))) {
        rc = qr_fail(QR_EIO, "%s: lmdb: %s", tdir, mdb_strerror(r));
        goto fail;
    }
    if ((rc = qr_bm25_get_stats(c.ix, c.txn, &st)))
        goto fail;
    c.qrels = qrels;
    c.k = k;
    c.hits = malloc(k * sizeof *c.hits);
    c.eh = malloc(k * sizeof *c.eh);
    if (!c.hits || !c.eh) {
        rc = qr_fail(QR_ENOMEM, "eval: %zu hits", k);
        goto fail;
    }
    if ((rc = qr_eval_create(qrels, &c.ev)) || (rc = qr_beir_read_queries(qpath, query_run, &c)))
        goto fail;
    double t2 = now_s();
    qr_beir_result res;
    memset(&res, 0, sizeof res);
    qr_eval_result(c.ev, &res.mean, &res.nqueries_qrels);
    res.ndocs = c.n;
    res.nqueries_run = c.nrun;
    res.nterms = (unsigned long long)st.sum_ttf;
    res.index_s = t1 - t0;
    res.search_s = t2 - t1;
    res.corpus_bytes = c.bytes;
    *out = res;
    rc = 0;
fail:
    if (c.txn)
        mdb_txn_abort(c.txn);
    qr_bm25_close(c.ix);
    if (env)
        mdb_env_close(env);
    if (made_dir) {
        char p[4200];
        snprintf(p, sizeof p, "%s/data.mdb", tdir);
        unlink(p);
        snprintf(p, sizeof p, "%s/lock.mdb", tdir);
        unlink(p);
        rmdir(tdir);
    }
    qr_eval_destroy(c.ev);
    qr_qrels_destroy(qrels);
    for (size_t i = 0; i < c.n; i++)
        free(c.ids[i]);
    free(c.ids);
    free(c.buf);
    free(c.hits);
    free(c.eh);
    return rc;
}

/* ---- dense retrieval over BEIR (MTEB's protocol) ---- */

typedef struct {
    char **ids;    /* (n) */
    char **texts;  /* (n) */
    size_t *lens;  /* (n) */
    size_t n, cap;
    size_t bytes;
    const qr_qrels *only; /* queries: keep the judged ones only */
} text_list;

static void tl_free(text_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->ids[i]);
        free(l->texts[i]);
    }
    free(l->ids);
    free(l->texts);
    free(l->lens);
}

static bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

/* (title + " " + text).strip(), or the text alone for an empty title */
static int tl_doc(const char *id, const char *title, const char *text, void *user)
{
    text_list *l = user;
    if (l->only && !qr_qrels_has(l->only, id))
        return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        char **a = realloc(l->ids, nc * sizeof *a);
        if (!a)
            return qr_fail(QR_ENOMEM, "eval: %zu texts", nc);
        l->ids = a;
        char **b = realloc(l->texts, nc * sizeof *b);
        if (!b)
            return qr_fail(QR_ENOMEM, "eval: %zu texts", nc);
        l->texts = b;
        size_t *c = realloc(l->lens, nc * sizeof *c);
        if (!c)
            return qr_fail(QR_ENOMEM, "eval: %zu texts", nc);
        l->lens = c;
        l->cap = nc;
    }
    size_t tl = strlen(title), xl = strlen(text);
    char *s = malloc(tl + xl + 2);
    char *d = strdup(id);
    if (!s || !d) {
        free(s);
        free(d);
        return qr_fail(QR_ENOMEM, "eval: text of %zu bytes", tl + xl);
    }
    size_t n = 0;
    if (tl) {
        memcpy(s, title, tl);
        s[tl] = ' ';
        n = tl + 1;
    }
    memcpy(s + n, text, xl);
    n += xl;
    s[n] = 0;
    size_t a = 0;
    while (a < n && is_space(s[a]))
        a++;
    while (n > a && is_space(s[n - 1]))
        n--;
    memmove(s, s + a, n - a);
    n -= a;
    s[n] = 0;
    l->ids[l->n] = d;
    l->texts[l->n] = s;
    l->lens[l->n] = n;
    l->n++;
    l->bytes += n;
    return 0;
}

typedef struct {
    size_t len, i;
} len_idx;

static int by_len_desc(const void *a, const void *b)
{
    const len_idx *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

/* vecs (l->n, dim): every text embedded, longest first in batches, each row
 * L2-normalised (cosine similarity becomes a dot product). */
static int embed_all(const text_list *l, const qr_beir_dense_opts *o, int batch, const char *what, float *vecs)
{
    len_idx *order = malloc((l->n ? l->n : 1) * sizeof *order);
    const char **tx = malloc((size_t)batch * sizeof *tx);
    size_t *ln = malloc((size_t)batch * sizeof *ln);
    float *tmp = malloc((size_t)batch * (size_t)o->dim * sizeof *tmp); /* (batch, dim) */
    int rc = 0;
    if (!order || !tx || !ln || !tmp) {
        rc = qr_fail(QR_ENOMEM, "eval: embedding batches of %d", batch);
        goto out;
    }
    for (size_t i = 0; i < l->n; i++)
        order[i] = (len_idx){l->lens[i], i};
    qsort(order, l->n, sizeof *order, by_len_desc);
    size_t next_log = 1000;
    for (size_t i = 0; i < l->n; i += (size_t)batch) {
        int nb = (int)(l->n - i < (size_t)batch ? l->n - i : (size_t)batch);
        for (int k = 0; k < nb; k++) {
            tx[k] = l->texts[order[i + (size_t)k].i];
            ln[k] = l->lens[order[i + (size_t)k].i];
        }
        if ((rc = o->embed(tx, ln, nb, tmp, o->user)))
            goto out;
        for (int k = 0; k < nb; k++) {
            const float *v = tmp + (size_t)k * (size_t)o->dim;
            float *dst = vecs + order[i + (size_t)k].i * (size_t)o->dim;
            double ss = 0.0;
            for (int c = 0; c < o->dim; c++)
                ss += (double)v[c] * (double)v[c];
            float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (int c = 0; c < o->dim; c++)
                dst[c] = v[c] * inv;
        }
        if (i + (size_t)nb >= next_log) {
            QR_DEBUG("eval: %zu of %zu %s embedded", i + (size_t)nb, l->n, what);
            next_log += 1000;
        }
    }
out:
    free(order);
    free(tx);
    free(ln);
    free(tmp);
    return rc;
}

typedef struct {
    float score;
    uint32_t doc;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

int qr_beir_eval_dense(const char *dir, const qr_beir_dense_opts *opts, qr_beir_result *out)
{
    if (!opts || !opts->embed || opts->dim <= 0)
        return qr_fail(QR_EINVAL, "eval: dense evaluation needs an embedder and its width");
    const char *split = opts->split ? opts->split : "test";
    size_t k = opts->hits ? opts->hits : 1000;
    int batch = opts->batch > 0 ? opts->batch : 32;
    if (k > QR_BM25_MAX_K)
        return qr_fail(QR_ELIMIT, "eval: hits %zu exceeds %d", k, QR_BM25_MAX_K);
    if (strchr(split, '/') || strlen(split) > 64)
        return qr_fail(QR_EINVAL, "eval: split '%s' must be a plain name", split);
    char rpath[4096], qpath[4096], cpath[4096];
    snprintf(rpath, sizeof rpath, "%s/qrels/%s.tsv", dir, split);
    snprintf(qpath, sizeof qpath, "%s/queries.jsonl", dir);
    snprintf(cpath, sizeof cpath, "%s/corpus.jsonl", dir);
    qr_qrels *qrels = NULL;
    qr_eval *ev = NULL;
    text_list docs, queries;
    memset(&docs, 0, sizeof docs);
    memset(&queries, 0, sizeof queries);
    float *dv = NULL, *qv = NULL; /* (ndocs, dim), (nqueries, dim) */
    scored *sc = NULL;            /* (ndocs) */
    qr_eval_hit *eh = NULL;       /* (k) */
    int rc;
    if ((rc = qr_qrels_create(&qrels)) || (rc = qr_qrels_load(qrels, rpath)))
        goto fail;
    queries.only = qrels;
    if ((rc = qr_beir_read_corpus(cpath, tl_doc, &docs)) || (rc = qr_beir_read_queries(qpath, tl_doc, &queries)))
        goto fail;
    if (docs.n > UINT32_MAX) {
        rc = qr_fail(QR_ELIMIT, "%s: more than %u documents", cpath, UINT32_MAX);
        goto fail;
    }
    size_t d = (size_t)opts->dim;
    dv = malloc((docs.n ? docs.n : 1) * d * sizeof *dv);
    qv = malloc((queries.n ? queries.n : 1) * d * sizeof *qv);
    sc = malloc((docs.n ? docs.n : 1) * sizeof *sc);
    eh = malloc((k + 1) * sizeof *eh);
    if (!dv || !qv || !sc || !eh) {
        rc = qr_fail(QR_ENOMEM, "eval: vectors of %zu documents, %zu queries (dim %zu)", docs.n, queries.n, d);
        goto fail;
    }
    double t0 = now_s();
    if ((rc = embed_all(&docs, opts, batch, "documents", dv)))
        goto fail;
    double t1 = now_s();
    if ((rc = embed_all(&queries, opts, batch, "queries", qv)) || (rc = qr_eval_create(qrels, &ev)))
        goto fail;
    for (size_t q = 0; q < queries.n; q++) {
        const float *x = qv + q * d;
        for (size_t j = 0; j < docs.n; j++) {
            const float *y = dv + j * d;
            float s = 0.0f;
            for (size_t c = 0; c < d; c++)
                s += x[c] * y[c];
            sc[j].score = s;
            sc[j].doc = (uint32_t)j;
        }
        qsort(sc, docs.n, sizeof *sc, by_score_desc);
        /* the top k + 1, less the query's own id (BEIR ignore_identical_ids), at most k */
        size_t m = 0;
        for (size_t j = 0; j < docs.n && j < k + 1 && m < k; j++) {
            const char *docid = docs.ids[sc[j].doc];
            if (strcmp(docid, queries.ids[q]) == 0)
                continue;
            eh[m].docid = docid;
            eh[m].score = (double)sc[j].score;
            m++;
        }
        if ((rc = qr_eval_add(ev, queries.ids[q], eh, m)))
            goto fail;
    }
    double t2 = now_s();
    qr_beir_result res;
    memset(&res, 0, sizeof res);
    qr_eval_result(ev, &res.mean, &res.nqueries_qrels);
    res.ndocs = docs.n;
    res.nqueries_run = queries.n;
    res.index_s = t1 - t0;
    res.search_s = t2 - t1;
    res.corpus_bytes = docs.bytes;
    *out = res;
    rc = 0;
fail:
    qr_eval_destroy(ev);
    qr_qrels_destroy(qrels);
    tl_free(&docs);
    tl_free(&queries);
    free(dv);
    free(qv);
    free(sc);
    free(eh);
    return rc;
}
