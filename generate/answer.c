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

typedef struct {
    qr_cite_stream *cs;
    const qr_answer_opts *o;
    char *text;
    size_t n, cap;
    int err;
} stream_ctx;

static int keep(stream_ctx *c, const char *p, size_t n)
{
    if (!n) return 0;
    if (c->n + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        while (cap < c->n + n + 1) cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) return qr_fail(QR_ENOMEM, "answer: out of memory");
        c->text = t;
        c->cap = cap;
    }
    memcpy(c->text + c->n, p, n);
    c->n += n;
    c->text[c->n] = 0;
    if (c->o->on_text && c->o->on_text(p, n, c->o->user)) return QR_ECANCELED;
    return 0;
}

static int on_token(int32_t id, const char *piece, void *user)
{
    (void)id;
    stream_ctx *c = user;
    const char *p;
    size_t pn;
    int rc = qr_cite_stream_push(c->cs, piece, strlen(piece), &p, &pn);
    if (!rc) rc = keep(c, p, pn);
    if (rc) {
        c->err = rc;
        return 1;
    }
    return 0;
}

static int run_llm(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                   qr_answer *a)
{
    const qr_tokenizer *tok = qr_model_tokenizer(o->model);
    if (!tok) return qr_fail(QR_EUNSUPPORTED, "answer: the model has no tokenizer; cannot build a prompt");
    qr_prompt p;
    memset(&p, 0, sizeof p);
    qr_prompt_opts po = {.tmpl = o->tmpl,
                         .tok = tok,
                         .n_ctx = o->n_ctx,
                         .max_tokens = o->sample.max_tokens,
                         .instruction = o->instruction,
                         .date = o->date};
    int rc = qr_prompt_build(question, sources, n, &po, &p);
    if (rc) return rc;
    if (p.n_dropped)
        QR_INFO("answer: %zu of %zu sources dropped to fit ctx %d minus max-tokens %d", p.n_dropped, n, o->n_ctx,
                o->sample.max_tokens);
    stream_ctx c = {.o = o};
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    if ((rc = qr_cite_stream_create(p.n_used, &c.cs))) goto fail;
    rc = qr_generate(o->model, p.ids, p.n_ids, &o->sample, on_token, &c, &res);
    if (!rc && c.err) rc = c.err;
    if (rc) goto fail;
    const char *tail;
    size_t tn;
    if ((rc = qr_cite_stream_finish(c.cs, &tail, &tn)) || (rc = keep(&c, tail, tn)) ||
        (rc = qr_cite_stream_report(c.cs, &a->cites)))
        goto fail;
    if (!c.text && !(c.text = calloc(1, 1))) {
        rc = qr_fail(QR_ENOMEM, "answer: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) a->status[i] = i < p.n_used ? QR_SRC_USED : QR_SRC_DROPPED_LENGTH;
    a->text = c.text;
    c.text = NULL;
    a->n_used = p.n_used;
    a->n_prompt = (int)p.n_ids;
    a->n_generated = (int)res.n_ids;
    a->finish = res.finish;
    a->prefill_s = res.prefill_s;
    a->decode_s = res.decode_s;
fail:
    free(c.text);
    qr_cite_stream_free(c.cs);
    qr_gen_result_free(&res);
    qr_prompt_free(&p);
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
    a.n_sources = n;
    if (n && !(a.status = calloc(n, sizeof *a.status))) return qr_fail(QR_ENOMEM, "answer: out of memory");
    int rc = o->model ? run_llm(question, sources, n, o, &a) : run_extractive(question, sources, n, o, &a);
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
