/* Extractive answers: see extract.h. */
#include "generate/extract.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "index/analyzer.h"
#include "ingest/chunker.h"

#define MAX_QTERMS 64
#define QTERM_LEN 64
#define MIN_TERMS 3 /* analyzed terms a candidate sentence needs */
#define OPTION_BOOST 1.5    /* score factor of a sentence showing an option named by the question */
#define RELATIVE_FLOOR 0.5  /* sentences scoring under this fraction of the best are not taken */

void qr_extract_opts_default(qr_extract_opts *o)
{
    o->max_sources = 5;
    o->max_sentences = 4;
    o->max_chars = 800;
}

/* Question words (after stemming) that say what kind of answer is wanted but
 * not what it is about. */
static int question_word(const char *t)
{
    static const char *const w[] = {"how", "what", "which", "who", "whom", "whose", "why", "when", "where", "do",
                                    "doe", "did", "can", "could", "should", "would", "i", "my", "me", "we", "our",
                                    "you", "your", "mai", "must", "ha", "have", "get", "want", "does",
                                    "may", "has", "is", "are", "am", "there", "a", "an", "the", NULL};
    for (size_t i = 0; w[i]; i++)
        if (!strcmp(t, w[i])) return 1;
    return 0;
}

/* The digits of a spelled-out cardinal ("two" -> "2"), NULL otherwise.
 * Questions spell small numbers out ("two GPUs") where documentation writes
 * digits ("--gres=gpu:2", "2 nodes"); the query gets both forms. Raw
 * (lower-cased) tokens and the analyzer's Porter stems are both listed
 * ("one" is stemmed "on", "twelve" "twelv"; raw "on" is a stop word, so an
 * analysed "on" comes from "one"). */
static const char *number_digits(const char *w)
{
    static const struct {
        const char *word, *digits;
    } n[] = {{"zero", "0"},  {"one", "1"},  {"on", "1"},     {"two", "2"},     {"three", "3"},
             {"four", "4"},  {"five", "5"}, {"six", "6"},    {"seven", "7"},   {"eight", "8"},
             {"nine", "9"},  {"ten", "10"}, {"eleven", "11"}, {"twelve", "12"}, {"twelv", "12"}};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        if (!strcmp(w, n[i].word)) return n[i].digits;
    return NULL;
}

typedef struct {
    char t[MAX_QTERMS][QTERM_LEN];
    int n;
} qterms;

static void push_qterm(qterms *q, const char *term, size_t len)
{
    if (len >= QTERM_LEN || q->n == MAX_QTERMS) return;
    for (int i = 0; i < q->n; i++)
        if (!strcmp(q->t[i], term)) return;
    memcpy(q->t[q->n++], term, len + 1);
}

static int add_qterm(const char *term, size_t len, void *user)
{
    qterms *q = user;
    if (question_word(term)) return 0;
    push_qterm(q, term, len);
    const char *d = number_digits(term);
    if (d) push_qterm(q, d, strlen(d));
    return 0;
}

typedef struct {
    size_t source, off, len;
    int dl;
    int tf[MAX_QTERMS];
    int option; /* holds a command-line option naming a question term */
    double score;
} cand;

typedef struct {
    const qterms *q;
    cand *c;
} count_ctx;

static int count_term(const char *term, size_t len, void *user)
{
    count_ctx *x = user;
    (void)len;
    x->c->dl++;
    for (int i = 0; i < x->q->n; i++)
        if (!strcmp(x->q->t[i], term)) x->c->tf[i]++;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

typedef struct {
    const qterms *q;
    int hit;
} opt_ctx;

static int opt_term(const char *term, size_t len, void *user)
{
    opt_ctx *x = user;
    (void)len;
    for (int i = 0; i < x->q->n && !x->hit; i++)
        x->hit = !strcmp(x->q->t[i], term);
    return x->hit; /* non-zero stops the analyzer: one match is enough */
}

/* Whether t holds a command-line option ("-G", "--gres=gpu:2") whose own
 * terms include a question term: in technical documentation the sentence
 * that shows the option is the one that says how to do it ("request two
 * GPUs" -> "--gres=gpu:2", "--gpus"). Options are tokens (split at spaces,
 * quotes, brackets and commas) starting with '-' or "--" then a letter. */
#define OPT_DELIMS "\"'`()[]{},;"

static int has_option(qr_analyzer *an, const qterms *q, const char *t, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_space(t[i]) || (t[i] && strchr(OPT_DELIMS, t[i])))) i++;
        size_t a = i;
        while (i < n && !is_space(t[i]) && !(t[i] && strchr(OPT_DELIMS, t[i]))) i++;
        size_t d = a;
        while (d < i && d < a + 2 && t[d] == '-') d++;
        if (d > a && d < i && ((t[d] >= 'a' && t[d] <= 'z') || (t[d] >= 'A' && t[d] <= 'Z'))) {
            opt_ctx x = {q, 0};
            qr_analyzer_run(an, t + a, i - a, opt_term, &x); /* stopped early on a match */
            if (x.hit) return 1;
        }
    }
    return 0;
}

static int by_score(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->source != y->source) return x->source < y->source ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int by_position(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->source != y->source) return x->source < y->source ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}


/* A label line: a term of a definition list written alone on its line, as
 * option and variable references do ("--gpus", "SLURM_GPUS_ON_NODE",
 * "MaxTRESPerJob"): one word holding a '-', '_', '=' or ':' or an upper-case
 * letter after its first character. It joins the first sentence of the next
 * line so the definition keeps its term. (Headings such as "Install" are
 * not labels.) */
static int is_label(const char *t, size_t n)
{
    while (n && is_space(t[n - 1])) n--;
    while (n && is_space(*t)) t++, n--;
    if (!n || n > 60) return 0;
    int marked = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_space(t[i])) return 0;
        if (strchr("-_=:", t[i]) || (i > 0 && t[i] >= 'A' && t[i] <= 'Z')) marked = 1;
    }
    return marked && !strchr(".!?,;", t[n - 1]);
}

int qr_extract_answer(const char *question, const qr_source *sources, size_t n, const qr_extract_opts *opts,
                      qr_extract_result *out)
{
    if (!question || (!sources && n) || !out) return qr_fail(QR_EINVAL, "qr_extract_answer: NULL argument");
    qr_extract_opts o;
    if (opts)
        o = *opts;
    else
        qr_extract_opts_default(&o);
    size_t nsrc = n < o.max_sources ? n : o.max_sources;
    qr_analyzer *an = NULL;
    qr_chunker *ch = NULL;
    cand *cs = NULL;
    cand **order = NULL;
    size_t nc = 0, capc = 0;
    char *text = NULL;
    qr_extract_sentence *sents = NULL;
    qterms q;
    memset(&q, 0, sizeof q);
    int rc;
    if ((rc = qr_analyzer_create(&an)) || (rc = qr_chunker_create(NULL, NULL, &ch))) goto fail;
    if ((rc = qr_analyzer_run(an, question, strlen(question), add_qterm, &q))) goto fail;
    for (size_t s = 0; s < nsrc; s++) {
        const char *t = sources[s].text;
        size_t tl = t ? sources[s].text_len : 0;
        size_t i = 0;
        size_t label = SIZE_MAX; /* start of a pending label line */
        while (i < tl) {
            size_t e = i;
            while (e < tl && t[e] != '\n') e++;
            if (is_label(t + i, e - i)) {
                size_t a = i;
                while (a < e && is_space(t[a])) a++;
                label = a;
                i = e + 1;
                continue;
            }
            size_t *sp = NULL, nsp = 0;
            if (e > i && (rc = qr_chunker_sentences(ch, t + i, e - i, &sp, &nsp))) goto fail;
            for (size_t k = 0; k < nsp; k++) {
                size_t a = i + sp[2 * k], b = i + sp[2 * k + 1];
                while (a < b && is_space(t[a])) a++;
                while (b > a && is_space(t[b - 1])) b--;
                if (k == 0 && label != SIZE_MAX && b > a) a = label;
                label = SIZE_MAX;
                /* questions (FAQ entries, headings) restate, they do not answer */
                if (b - a < 2 || b - a > o.max_chars || t[b - 1] == '?') continue;
                if (nc == capc) {
                    size_t cap = capc ? capc * 2 : 64;
                    cand *p = realloc(cs, cap * sizeof *p);
                    if (!p) {
                        free(sp);
                        rc = qr_fail(QR_ENOMEM, "extract: out of memory");
                        goto fail;
                    }
                    cs = p;
                    capc = cap;
                }
                cand *c = &cs[nc];
                memset(c, 0, sizeof *c);
                c->source = s;
                c->off = a;
                c->len = b - a;
                count_ctx x = {&q, c};
                if ((rc = qr_analyzer_run(an, t + a, b - a, count_term, &x))) {
                    free(sp);
                    goto fail;
                }
                c->option = has_option(an, &q, t + a, b - a);
                if (c->dl >= MIN_TERMS) nc++;
            }
            free(sp);
            i = e + 1;
        }
    }
    /* BM25 over the candidate sentences. */
    double avgdl = 0;
    int df[MAX_QTERMS] = {0};
    for (size_t i = 0; i < nc; i++) {
        avgdl += cs[i].dl;
        for (int j = 0; j < q.n; j++) df[j] += cs[i].tf[j] > 0;
    }
    if (nc) avgdl /= (double)nc;
    const double k1 = 1.2, b = 0.3;
    for (size_t i = 0; i < nc; i++) {
        double sc = 0;
        int matched = 0;
        for (int j = 0; j < q.n; j++) {
            if (!cs[i].tf[j]) continue;
            matched++;
            double idf = log(1.0 + ((double)nc - df[j] + 0.5) / (df[j] + 0.5));
            double tf = cs[i].tf[j];
            sc += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * cs[i].dl / avgdl));
        }
        double coverage = q.n ? (double)matched / q.n : 0;
        cs[i].score = sc * (0.5 + 0.5 * coverage) * (cs[i].option ? OPTION_BOOST : 1.0) / (1.0 + 0.05 * (double)cs[i].source);
    }
    if (nc && !(order = malloc(nc * sizeof *order))) {
        rc = qr_fail(QR_ENOMEM, "extract: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nc; i++) order[i] = &cs[i];
    if (nc) qsort(order, nc, sizeof *order, by_score);
    size_t chosen = 0, chars = 0;
    /* sentences far below the best one are padding, not answer */
    double floor_score = nc ? RELATIVE_FLOOR * order[0]->score : 0;
    for (size_t i = 0; i < nc && chosen < o.max_sentences; i++) {
        cand *c = order[i];
        if (c->score <= 0 || c->score < floor_score) break;
        if (chars + c->len > o.max_chars) continue;
        const char *ct = sources[c->source].text + c->off;
        int dup = 0;
        for (size_t j = 0; j < chosen && !dup; j++)
            dup = order[j]->len == c->len && !memcmp(sources[order[j]->source].text + order[j]->off, ct, c->len);
        if (dup) continue;
        order[i] = order[chosen];
        order[chosen++] = c;
        chars += c->len;
    }
    if (chosen) qsort(order, chosen, sizeof *order, by_position);
    size_t cap = chars + chosen * 16 + 1;
    if (!(text = malloc(cap)) || (chosen && !(sents = malloc(chosen * sizeof *sents)))) {
        rc = qr_fail(QR_ENOMEM, "extract: out of memory");
        goto fail;
    }
    size_t tn = 0;
    for (size_t i = 0; i < chosen; i++) {
        cand *c = order[i];
        if (i) text[tn++] = ' ';
        /* whitespace runs (line breaks inside a joined label) as one space */
        const char *st = sources[c->source].text + c->off;
        for (size_t k = 0; k < c->len; k++) {
            if (is_space(st[k])) {
                if (tn && text[tn - 1] != ' ') text[tn++] = ' ';
            } else {
                text[tn++] = st[k];
            }
        }
        tn += (size_t)snprintf(text + tn, cap - tn, " [%zu]", c->source + 1);
        sents[i] = (qr_extract_sentence){c->source, c->off, c->len, c->score};
    }
    text[tn] = 0;
    out->text = text;
    out->sents = sents;
    out->n_sents = chosen;
    out->n_used = nsrc;
    text = NULL;
    sents = NULL;
    rc = 0;
fail:
    free(text);
    free(sents);
    free(order);
    free(cs);
    qr_chunker_destroy(ch);
    qr_analyzer_destroy(an);
    return rc;
}

void qr_extract_result_free(qr_extract_result *r)
{
    if (!r) return;
    free(r->text);
    free(r->sents);
    memset(r, 0, sizeof *r);
}

typedef struct {
    char *p;
    size_t n, cap;
    int err;
} kw_buf;

static int append_keyword(kw_buf *b, const char *term, size_t len);

static int add_keyword(const char *term, size_t len, void *user)
{
    kw_buf *b = user;
    char low[QTERM_LEN];
    const char *digits = NULL;
    if (len < QTERM_LEN) {
        for (size_t i = 0; i <= len; i++) low[i] = (char)((term[i] >= 'A' && term[i] <= 'Z') ? term[i] + 32 : term[i]);
        if (question_word(low)) return 0;
        digits = number_digits(low);
    }
    int rc = append_keyword(b, term, len);
    return rc || !digits ? rc : append_keyword(b, digits, strlen(digits));
}

static int append_keyword(kw_buf *b, const char *term, size_t len)
{
    if (b->n + len + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->n + len + 2) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = 1;
            return 1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (b->n) b->p[b->n++] = ' ';
    memcpy(b->p + b->n, term, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

int qr_question_keywords(const char *question, char **out)
{
    if (!question || !out) return qr_fail(QR_EINVAL, "qr_question_keywords: NULL argument");
    qr_analyzer *an = NULL;
    kw_buf b = {0};
    int rc = qr_analyzer_create(&an);
    if (!rc) rc = qr_analyzer_tokenize(an, question, strlen(question), add_keyword, &b);
    qr_analyzer_destroy(an);
    if (b.err) rc = qr_fail(QR_ENOMEM, "extract: out of memory");
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.n) {
        free(b.p);
        if (!(b.p = strdup(question))) return qr_fail(QR_ENOMEM, "extract: out of memory");
    }
    *out = b.p;
    return 0;
}
