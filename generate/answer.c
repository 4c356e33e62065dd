/* Cited answers: see answer.h. */
#include "generate/answer.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

void qr_answer_opts_default(qr_answer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_ctx = 4096;
    qr_sample_params_default(&o->sample);
    qr_extract_opts_default(&o->extract);
}

struct qr_answer_job {
    qr_prompt p;
    size_t n_sources;
    qr_cite_stream *cs;
    char *text;         /* cleaned text so far */
    size_t n, cap;
    bool finished;
};

int qr_answer_prepare(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                      qr_answer_job **out)
{
    if (!question || (!sources && n) || !o || !out) return qr_fail(QR_EINVAL, "qr_answer_prepare: NULL argument");
    if (!o->model) return qr_fail(QR_EINVAL, "answer: a prepared answer needs a language model");
    const qr_tokenizer *tok = qr_model_tokenizer(o->model);
    if (!tok) return qr_fail(QR_EUNSUPPORTED, "answer: the model has no tokenizer; cannot build a prompt");
    qr_answer_job *j = calloc(1, sizeof *j);
    if (!j) return qr_fail(QR_ENOMEM, "answer: out of memory");
    qr_prompt_opts po = {.tmpl = o->tmpl,
                         .tok = tok,
                         .n_ctx = o->n_ctx,
                         .max_tokens = o->sample.max_tokens,
                         .instruction = o->instruction,
                         .date = o->date};
    int rc = qr_prompt_build(question, sources, n, &po, &j->p);
    if (rc) {
        free(j);
        return rc;
    }
    if (j->p.n_dropped)
        QR_INFO("answer: %zu of %zu sources dropped to fit ctx %d minus max-tokens %d", j->p.n_dropped, n, o->n_ctx,
                o->sample.max_tokens);
    j->n_sources = n;
    if ((rc = qr_cite_stream_create(j->p.n_used, &j->cs))) {
        qr_answer_job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

const int32_t *qr_answer_job_prompt(const qr_answer_job *j, size_t *n_ids)
{
    *n_ids = j->p.n_ids;
    return j->p.ids;
}

void qr_answer_job_free(qr_answer_job *j)
{
    if (!j) return;
    qr_prompt_free(&j->p);
    qr_cite_stream_free(j->cs);
    free(j->text);
    free(j);
}

static int keep(qr_answer_job *j, const char *p, size_t n)
{
    if (!n) return 0;
    if (j->n + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 1024;
        while (cap < j->n + n + 1) cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t) return qr_fail(QR_ENOMEM, "answer: out of memory");
        j->text = t;
        j->cap = cap;
    }
    memcpy(j->text + j->n, p, n);
    j->n += n;
    j->text[j->n] = 0;
    return 0;
}

int qr_answer_job_push(qr_answer_job *j, const char *piece, size_t len, const char **clean, size_t *clean_len)
{
    if (!j || (!piece && len) || !clean || !clean_len) return qr_fail(QR_EINVAL, "qr_answer_job_push: NULL argument");
    if (j->finished) return qr_fail(QR_EINVAL, "answer: text pushed after finish");
    const char *p;
    size_t pn;
    int rc = qr_cite_stream_push(j->cs, len ? piece : "", len, &p, &pn);
    if (!rc) rc = keep(j, p, pn);
    if (rc) return rc;
    *clean = p;
    *clean_len = pn;
    return 0;
}

int qr_answer_job_finish(qr_answer_job *j, const qr_gen_result *res, const char **tail, size_t *tail_len,
                         qr_answer *out)
{
    if (!j || !res || !tail || !tail_len || !out) return qr_fail(QR_EINVAL, "qr_answer_job_finish: NULL argument");
    if (j->finished) return qr_fail(QR_EINVAL, "answer: finished twice");
    qr_answer a;
    memset(&a, 0, sizeof a);
    const char *t;
    size_t tn;
    int rc;
    if ((rc = qr_cite_stream_finish(j->cs, &t, &tn)) || (rc = keep(j, t, tn)) ||
        (rc = qr_cite_stream_report(j->cs, &a.cites)))
        goto fail;
    j->finished = true;
    a.n_sources = j->n_sources;
    if ((j->n_sources && !(a.status = calloc(j->n_sources, sizeof *a.status))) ||
        !(a.text = j->text ? strdup(j->text) : calloc(1, 1))) {
        rc = qr_fail(QR_ENOMEM, "answer: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < j->n_sources; i++) a.status[i] = i < j->p.n_used ? QR_SRC_USED : QR_SRC_DROPPED_LENGTH;
    a.n_used = j->p.n_used;
    a.n_prompt = (int)j->p.n_ids;
    a.n_generated = (int)res->n_ids;
    a.finish = res->finish;
    a.prefill_s = res->prefill_s;
    a.decode_s = res->decode_s;
    *tail = t;
    *tail_len = tn;
    *out = a;
    return 0;
fail:
    qr_answer_free(&a);
    return rc;
}

/* qr_answer_run's LLM path: the steps above around qr_generate; on_text gets
 * the cleaned pieces. */
typedef struct {
    qr_answer_job *j;
    const qr_answer_opts *o;
    int err;
} stream_ctx;

static int on_token(int32_t id, const char *piece, void *user)
{
    (void)id;
    stream_ctx *c = user;
    const char *p;
    size_t pn;
    int rc = qr_answer_job_push(c->j, piece, strlen(piece), &p, &pn);
    if (!rc && pn && c->o->on_text && c->o->on_text(p, pn, c->o->user)) rc = QR_ECANCELED;
    if (rc) {
        c->err = rc;
        return 1;
    }
    return 0;
}

static int run_llm(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                   qr_answer *a)
{
    qr_answer_job *j = NULL;
    int rc = qr_answer_prepare(question, sources, n, o, &j);
    if (rc) return rc;
    stream_ctx c = {.j = j, .o = o};
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    size_t np;
    const int32_t *ids = qr_answer_job_prompt(j, &np);
    rc = qr_generate(o->model, ids, np, &o->sample, on_token, &c, &res);
    if (!rc && c.err) rc = c.err;
    const char *tail;
    size_t tn;
    if (!rc && !(rc = qr_answer_job_finish(j, &res, &tail, &tn, a)) && tn && o->on_text &&
        o->on_text(tail, tn, o->user)) {
        qr_answer_free(a);
        rc = QR_ECANCELED;
    }
    qr_gen_result_free(&res);
    qr_answer_job_free(j);
    return rc;
}

static int run_extractive(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                          qr_answer *a)
{
    qr_extract_result r;
    memset(&r, 0, sizeof r);
    int rc = qr_extract_answer(question, sources, n, &o->extract, &r);
    if (rc) return rc;
    /* The same cleaning as the LLM path: builds the citation report (the
     * extractive text only cites existing sources). */
    char *clean = NULL;
    if ((rc = qr_cite_clean(r.text, strlen(r.text), r.n_used, &clean, &a->cites))) goto fail;
    if (o->on_text && *clean && o->on_text(clean, strlen(clean), o->user)) {
        rc = QR_ECANCELED;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) a->status[i] = i < r.n_used ? QR_SRC_USED : QR_SRC_NOT_CONSIDERED;
    a->text = clean;
    clean = NULL;
    a->extractive = true;
    a->n_used = r.n_used;
    a->sents = r.sents;
    a->n_sents = r.n_sents;
    r.sents = NULL;
fail:
    free(clean);
    qr_extract_result_free(&r);
    return rc;
}

int qr_answer_run(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                  qr_answer *out)
{
    if (!question || (!sources && n) || !o || !out) return qr_fail(QR_EINVAL, "qr_answer_run: NULL argument");
    qr_answer a;
    memset(&a, 0, sizeof a);
    if (o->model) {
        int rc = run_llm(question, sources, n, o, &a);
        if (!rc) *out = a;
        return rc;
    }
    a.n_sources = n;
    if (n && !(a.status = calloc(n, sizeof *a.status))) return qr_fail(QR_ENOMEM, "answer: out of memory");
    int rc = run_extractive(question, sources, n, o, &a);
    if (rc) {
        qr_answer_free(&a);
        return rc;
    }
    *out = a;
    return 0;
}

void qr_answer_free(qr_answer *a)
{
    if (!a) return;
    free(a->text);
    free(a->status);
    free(a->sents);
    qr_cite_report_free(&a->cites);
    memset(a, 0, sizeof *a);
}

static json_t *source_json(const qr_source *s, size_t number)
{
    json_t *j = json_object();
    if (!j) return NULL;
    int bad = 0;
    if (number) bad |= json_object_set_new(j, "n", json_integer((json_int_t)number));
    bad |= json_object_set_new(j, "path", json_string(s->path ? s->path : ""));
    bad |= json_object_set_new(j, "title", json_string(s->title ? s->title : ""));
    bad |= json_object_set_new(j, "page", s->page > 0 ? json_integer(s->page) : json_null()); // null: not paged (as quire search)
    bad |= json_object_set_new(j, "heading", json_string(s->heading ? s->heading : ""));
    bad |= json_object_set_new(j, "chunk_id", json_integer((json_int_t)s->chunk_id));
    bad |= json_object_set_new(j, "byte_start", json_integer((json_int_t)s->off));
    bad |= json_object_set_new(j, "byte_end", json_integer((json_int_t)(s->off + s->len)));
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int qr_answer_to_json(const qr_answer *a, const char *question, const qr_source *sources, json_t **out)
{
    if (!a || !question || (!sources && a->n_sources) || !out)
        return qr_fail(QR_EINVAL, "qr_answer_to_json: NULL argument");
    json_t *j = json_object(), *cit = json_array(), *used = json_array(), *drop = json_array(),
           *rem = json_array();
    int bad = !j || !cit || !used || !drop || !rem;
    for (size_t k = 0; !bad && k < a->cites.n_cited; k++) {
        size_t num = (size_t)a->cites.cited[k];
        json_t *c = source_json(&sources[num - 1], num);
        if (!c) {
            bad = 1;
            break;
        }
        if (a->extractive) {
            json_t *ss = json_array();
            for (size_t i = 0; ss && i < a->n_sents; i++) {
                if (a->sents[i].source + 1 != num) continue;
                json_t *pair = json_pack("[II]", (json_int_t)a->sents[i].off,
                                         (json_int_t)(a->sents[i].off + a->sents[i].len));
                if (!pair || json_array_append_new(ss, pair)) bad = 1;
            }
            bad |= !ss || json_object_set_new(c, "sentences", ss);
        }
        bad |= json_array_append_new(cit, c);
    }
    for (size_t i = 0; !bad && i < a->n_sources; i++) {
        if (a->status[i] == QR_SRC_USED) {
            json_t *s = source_json(&sources[i], i + 1);
            int cited = 0;
            for (size_t k = 0; k < a->cites.n_cited; k++) cited |= (size_t)a->cites.cited[k] == i + 1;
            bad |= !s || json_object_set_new(s, "score", json_real(sources[i].score)) ||
                   json_object_set_new(s, "cited", json_boolean(cited)) || json_array_append_new(used, s);
        } else {
            json_t *s = source_json(&sources[i], 0);
            bad |= !s ||
                   json_object_set_new(s, "reason",
                                       json_string(a->status[i] == QR_SRC_DROPPED_LENGTH ? "length"
                                                                                         : "not considered")) ||
                   json_array_append_new(drop, s);
        }
    }
    for (size_t k = 0; !bad && k < a->cites.n_removed; k++)
        bad |= json_array_append_new(rem, json_integer(a->cites.removed[k]));
    if (!bad) {
        bad |= json_object_set_new(j, "question", json_string(question));
        bad |= json_object_set_new(j, "mode", json_string(a->extractive ? "extractive" : "llm"));
        bad |= json_object_set_new(j, "answer", json_string(a->text ? a->text : ""));
        bad |= json_object_set(j, "citations", cit) || json_object_set(j, "sources", used) ||
               json_object_set(j, "dropped", drop) || json_object_set(j, "removed_citations", rem);
        if (!a->extractive) {
            json_t *g = json_pack("{s:i, s:i, s:s, s:f, s:f}", "prompt_tokens", a->n_prompt, "generated_tokens",
                                  a->n_generated, "finish", a->finish ? a->finish : "", "prefill_s", a->prefill_s,
                                  "decode_s", a->decode_s);
            bad |= !g || json_object_set_new(j, "generation", g);
        }
    }
    json_decref(cit);
    json_decref(used);
    json_decref(drop);
    json_decref(rem);
    if (bad) {
        json_decref(j);
        return qr_fail(QR_ENOMEM, "answer: building JSON failed (out of memory or invalid UTF-8 in a field)");
    }
    *out = j;
    return 0;
}

void qr_sources_from_results(const qr_results *res, qr_source *src)
{
    for (size_t i = 0; i < res->n; i++) {
        const qr_passage *p = &res->items[i];
        src[i] = (qr_source){.chunk_id = p->chunk_id,
                             .path = p->path,
                             .title = p->title,
                             .page = p->page,
                             .heading = p->heading,
                             .off = (size_t)p->byte_start,
                             .len = (size_t)(p->byte_end - p->byte_start),
                             .text = p->text,
                             .text_len = strlen(p->text),
                             .score = p->score};
    }
}
