/* generate/answer in steps (qr_answer_prepare / _job_push / _job_finish) with
 * the generation run by generate/scheduler: the service's /v1/ask path.
 *  - stories260K (tests/fixtures/models), greedy: three questions answered at once
 *    through one scheduler give the same answer JSON as qr_answer_run one by
 *    one (timings removed), including a context that drops sources for
 *    length; the cleaned pieces streamed plus the tail add up to the answer.
 *  - the cleaner on made-up completion pieces: the concatenated cleaned
 *    pieces equal qr_cite_clean() of the whole text (generate/cite.h), and
 *    the report lists the cited and removed numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/answer.h"
#include "generate/scheduler.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

static qr_source src(const char *path, int page, const char *heading, size_t off, const char *text)
{
    qr_source s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.page = page;
    s.heading = heading;
    s.off = off;
    s.text = text;
    s.text_len = strlen(text);
    s.len = s.text_len;
    s.chunk_id = off + 1;
    s.score = 1.0 / (double)(off + 1);
    return s;
}

/* The answer JSON without the timings (they differ between runs). */
static char *answer_json(const qr_answer *a, const char *q, const qr_source *S)
{
    json_t *j = NULL;
    if (qr_answer_to_json(a, q, S, &j))
        return NULL;
    json_t *g = json_object_get(j, "generation");
    json_object_del(g, "prefill_s");
    json_object_del(g, "decode_s");
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

typedef struct {
    const char *q;
    int n_ctx;
    int max_tokens;
    qr_answer_job *job;
    qr_sched_req *req;
    char streamed[8192];
    size_t n;
} ask;

static void append(ask *k, const char *p, size_t n)
{
    if (k->n + n < sizeof k->streamed) {
        memcpy(k->streamed + k->n, p, n);
        k->n += n;
        k->streamed[k->n] = 0;
    }
}

static void test_llm(void)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    CHECK_OK(qr_backend_cpu_create(2, &be));
    qr_model_opts mo = {.dtype = QR_F32};
    if (be)
        CHECK_OK(qr_model_load(FIXTURE("models/stories260K/stories260K.gguf"), &mo, be, &m));
    if (!m) {
        qr_backend_destroy(be);
        return;
    }
    qr_source S[3] = {
        src("a.txt", 0, "", 0, "Lily had a red ball. She played with it in the park."),
        src("b.txt", 2, "Story", 10, "Tom saw a big dog. The dog was happy."),
        src("c.txt", 0, "", 20, "They all went home to eat cake."),
    };
    ask K[3] = {{.q = "What did Lily have?", .n_ctx = 512, .max_tokens = 24},
                {.q = "Who saw a dog?", .n_ctx = 512, .max_tokens = 40},
                {.q = "Where did they go?", .n_ctx = 0, .max_tokens = 16}};
    /* the third question's context fits one source only */
    {
        qr_prompt p1;
        memset(&p1, 0, sizeof p1);
        qr_prompt_opts po = {.tok = qr_model_tokenizer(m), .n_ctx = 512, .max_tokens = 16};
        CHECK_OK(qr_prompt_build(K[2].q, S, 1, &po, &p1));
        K[2].n_ctx = (int)p1.n_ids + 16;
        qr_prompt_free(&p1);
    }
    qr_sched_opts so;
    qr_sched_opts_default(&so);
    so.n_slots = 2;
    so.n_ctx = 512;
    so.prefill_chunk = 64;
    qr_sched *s = NULL;
    CHECK_OK(qr_sched_create(m, &so, &s));
    if (!s)
        goto done;
    qr_answer_opts o[3];
    for (int i = 0; i < 3; i++) {
        qr_answer_opts_default(&o[i]);
        o[i].model = m;
        o[i].n_ctx = K[i].n_ctx;
        o[i].sample.max_tokens = K[i].max_tokens;
        CHECK_OK(qr_answer_prepare(K[i].q, S, 3, &o[i], &K[i].job));
        if (!K[i].job)
            continue;
        size_t np;
        const int32_t *ids = qr_answer_job_prompt(K[i].job, &np);
        CHECK_OK(qr_sched_submit(s, ids, np, &o[i].sample, &K[i].req));
    }
    /* consume the three in turn (events queue up meanwhile) */
    for (int i = 0; i < 3; i++) {
        if (!K[i].req)
            continue;
        qr_answer a;
        memset(&a, 0, sizeof a);
        for (;;) {
            qr_sched_event ev;
            CHECK_OK(qr_sched_next(K[i].req, -1, &ev));
            if (ev.kind == QR_SCHED_TEXT) {
                const char *c;
                size_t cn;
                CHECK_OK(qr_answer_job_push(K[i].job, ev.piece, ev.len, &c, &cn));
                append(&K[i], c, cn);
            } else if (ev.kind == QR_SCHED_DONE) {
                CHECK_INT(ev.rc, 0);
                const char *tail;
                size_t tn;
                CHECK_OK(qr_answer_job_finish(K[i].job, ev.result, &tail, &tn, &a));
                append(&K[i], tail, tn);
                break;
            }
        }
        qr_answer ref;
        memset(&ref, 0, sizeof ref);
        CHECK_OK(qr_answer_run(K[i].q, S, 3, &o[i], &ref));
        char *js = answer_json(&a, K[i].q, S), *jr = answer_json(&ref, K[i].q, S);
        CHECK_MSG(js && jr && !strcmp(js, jr), "scheduler %s\nvs run   %s", js ? js : "(null)", jr ? jr : "(null)");
        CHECK_MSG(a.text && !strcmp(K[i].streamed, a.text), "streamed \"%s\" vs \"%s\"", K[i].streamed,
                  a.text ? a.text : "");
        CHECK_INT(a.n_used, i == 2 ? 1 : 3);
        printf("%s -> %zu sources used, %d generated, \"%s\"\n", K[i].q, a.n_used, a.n_generated, a.text);
        free(js);
        free(jr);
        qr_answer_free(&a);
        qr_answer_free(&ref);
        qr_sched_release(K[i].req);
    }
    /* misuse: finish twice, push after finish */
    if (K[0].job) {
        qr_gen_result none;
        memset(&none, 0, sizeof none);
        const char *t;
        size_t tn;
        qr_answer a;
        CHECK_INT(qr_answer_job_finish(K[0].job, &none, &t, &tn, &a), QR_EINVAL);
        CHECK_INT(qr_answer_job_push(K[0].job, "x", 1, &t, &tn), QR_EINVAL);
    }
    for (int i = 0; i < 3; i++)
        qr_answer_job_free(K[i].job);
    qr_answer_job_free(NULL);
    /* no model: prepare refuses (the extractive path has no generation step) */
    qr_answer_opts ox;
    qr_answer_opts_default(&ox);
    qr_answer_job *j = NULL;
    CHECK_INT(qr_answer_prepare("q", S, 3, &ox, &j), QR_EINVAL);
    CHECK(j == NULL);
    qr_sched_destroy(s);
done:
    qr_model_free(m);
    qr_backend_destroy(be);
}

/* The streaming cleaner on made-up pieces that split citations. Needs a
 * prepared job, so a model for the tokenizer: stories260K again. */
static void test_cleaner_pieces(void)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    CHECK_OK(qr_backend_cpu_create(1, &be));
    qr_model_opts mo = {.dtype = QR_F32};
    if (be)
        CHECK_OK(qr_model_load(FIXTURE("models/stories260K/stories260K.gguf"), &mo, be, &m));
    if (!m) {
        qr_backend_destroy(be);
        return;
    }
    qr_source S[2] = {src("a.txt", 0, "", 0, "Lily had a red ball."), src("b.txt", 0, "", 30, "Tom had a dog.")};
    qr_answer_opts o;
    qr_answer_opts_default(&o);
    o.model = m;
    o.n_ctx = 512;
    o.sample.max_tokens = 32;
    qr_answer_job *j = NULL;
    CHECK_OK(qr_answer_prepare("Who had what?", S, 2, &o, &j));
    if (!j)
        goto done;
    const char *pieces[] = {"Lily had a ball [", "1]", " and Tom [9", "] had a dog [2,", " 7][3]", ". End [", "2"};
    char whole[256] = "", streamed[256] = "";
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        strcat(whole, pieces[i]);
        const char *c;
        size_t cn;
        CHECK_OK(qr_answer_job_push(j, pieces[i], strlen(pieces[i]), &c, &cn));
        strncat(streamed, c, cn);
    }
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    res.n_ids = 17;
    res.finish = "length";
    qr_answer a;
    memset(&a, 0, sizeof a);
    const char *tail;
    size_t tn;
    CHECK_OK(qr_answer_job_finish(j, &res, &tail, &tn, &a));
    strncat(streamed, tail, tn);
    char *clean = NULL;
    qr_cite_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK_OK(qr_cite_clean(whole, strlen(whole), 2, &clean, &rep));
    CHECK_MSG(clean && !strcmp(streamed, clean), "streamed \"%s\" vs clean \"%s\"", streamed, clean ? clean : "");
    CHECK(a.text && clean && !strcmp(a.text, clean));
    /* by hand: [1] kept, [9] removed, [2, 7] -> [2], [3] removed, "[2" at the end is text */
    CHECK_MSG(a.text && !strcmp(a.text, "Lily had a ball [1] and Tom had a dog [2]. End [2"), "text \"%s\"",
              a.text ? a.text : "");
    CHECK_INT(a.cites.n_cited, rep.n_cited);
    CHECK_INT(a.cites.n_cited, 2);
    CHECK_INT(a.cites.n_removed, 3);
    if (a.cites.n_removed == 3) {
        CHECK_INT(a.cites.removed[0], 9);
        CHECK_INT(a.cites.removed[1], 7);
        CHECK_INT(a.cites.removed[2], 3);
    }
    CHECK_INT(a.n_generated, 17);
    CHECK(a.finish && !strcmp(a.finish, "length"));
    CHECK_INT(a.n_used, 2);
    free(clean);
    qr_cite_report_free(&rep);
    qr_answer_free(&a);
    qr_answer_job_free(j);
done:
    qr_model_free(m);
    qr_backend_destroy(be);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    test_llm();
    test_cleaner_pieces();
    return qr_test_done();
}
