/* generate/answer: both paths end to end on hand-made passages.
 *  - extractive: the answer, its citation report and the JSON metadata
 *    (citations point at used sources with path/page/span, sentence spans
 *    lie inside the passage and hold the chosen sentence);
 *  - language model (stories260K from tests/fixtures/models, no chat template: the plain
 *    prompt format): the streamed pieces add up to the answer, the answer is
 *    qr_cite_clean() of an independent greedy generation from the same
 *    prompt ids, prompt tokens are counted, and a context too small for all
 *    sources drops the lowest-ranked ones with reason "length".
 * Model quality is not asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/answer.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

typedef struct {
    char buf[8192];
    size_t n;
    int calls;
} sink;

static int on_text(const char *p, size_t n, void *user)
{
    sink *s = user;
    if (s->n + n < sizeof s->buf) {
        memcpy(s->buf + s->n, p, n);
        s->n += n;
        s->buf[s->n] = 0;
    }
    s->calls++;
    return 0;
}

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

static const char *Q = "How do I request two GPUs for a batch job?";

static void test_extractive(void)
{
    qr_source S[3] = {
        src("docs/gres.html", 0, "GRES > Running Jobs", 100,
            "Generic resources are requested per job. Use --gres=gpu:2 in a batch job to request two GPUs."),
        src("docs/sbatch.pdf", 4, "", 2000, "The --gpus option sets the total number of GPUs for the job."),
        src("docs/misc.txt", 0, "", 0, "Lunch is at noon."),
    };
    qr_answer_opts o;
    qr_answer_opts_default(&o);
    sink sk = {.n = 0};
    o.on_text = on_text;
    o.user = &sk;
    qr_answer a;
    memset(&a, 0, sizeof a);
    CHECK_OK(qr_answer_run(Q, S, 3, &o, &a));
    CHECK(a.extractive);
    CHECK(a.text && strstr(a.text, "Use --gres=gpu:2 in a batch job to request two GPUs. [1]"));
    CHECK(!strcmp(sk.buf, a.text));
    CHECK_INT(sk.calls, 1);
    CHECK_INT(a.n_used, 3);
    CHECK(a.cites.n_cited >= 1 && a.cites.cited[0] == 1);
    CHECK_INT(a.cites.n_removed, 0);
    json_t *j = NULL;
    CHECK_OK(qr_answer_to_json(&a, Q, S, &j));
    CHECK(!strcmp(json_string_value(json_object_get(j, "mode")), "extractive"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "answer")), a.text));
    json_t *cit = json_object_get(j, "citations"), *used = json_object_get(j, "sources");
    CHECK_INT(json_array_size(cit), a.cites.n_cited);
    CHECK_INT(json_array_size(used), 3);
    CHECK_INT(json_array_size(json_object_get(j, "dropped")), 0);
    size_t i;
    json_t *c;
    json_array_foreach(cit, i, c) {
        int n = (int)json_integer_value(json_object_get(c, "n"));
        CHECK(n >= 1 && n <= 3);
        if (n < 1 || n > 3) continue;
        CHECK(!strcmp(json_string_value(json_object_get(c, "path")), S[n - 1].path));
        CHECK_INT(json_integer_value(json_object_get(c, "page")), S[n - 1].page);
        CHECK_INT(json_integer_value(json_object_get(c, "byte_start")), S[n - 1].off);
        CHECK_INT(json_integer_value(json_object_get(c, "byte_end")), S[n - 1].off + S[n - 1].len);
        json_t *ss = json_object_get(c, "sentences"), *pr;
        size_t k;
        CHECK(json_array_size(ss) >= 1);
        json_array_foreach(ss, k, pr) {
            json_int_t b = json_integer_value(json_array_get(pr, 0)), e = json_integer_value(json_array_get(pr, 1));
            CHECK(b >= 0 && b < e && (size_t)e <= S[n - 1].text_len);
            /* the sentence text appears in the answer */
            char sent[512];
            snprintf(sent, sizeof sent, "%.*s", (int)(e - b), S[n - 1].text + b);
            CHECK(strstr(a.text, sent) != NULL);
        }
    }
    json_t *u;
    json_array_foreach(used, i, u) CHECK_INT(json_integer_value(json_object_get(u, "n")), i + 1);
    CHECK(json_is_true(json_object_get(json_array_get(used, 0), "cited")));
    CHECK(json_is_false(json_object_get(json_array_get(used, 2), "cited")));
    json_decref(j);
    qr_answer_free(&a);

    /* extract.max_sources below n: the rest are "not considered" */
    o.extract.max_sources = 2;
    CHECK_OK(qr_answer_run(Q, S, 3, &o, &a));
    CHECK_INT(a.n_used, 2);
    CHECK_INT(a.status[2], QR_SRC_NOT_CONSIDERED);
    CHECK_OK(qr_answer_to_json(&a, Q, S, &j));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "dropped"), 0), "reason")),
                  "not considered"));
    json_decref(j);
    qr_answer_free(&a);
}

static void test_llm(void)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    CHECK_OK(qr_backend_cpu_create(1, &be));
    qr_model_opts mo = {.dtype = QR_F32};
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
    qr_answer_opts o;
    qr_answer_opts_default(&o);
    o.model = m;
    o.n_ctx = 512;
    o.sample.max_tokens = 24;
    sink sk = {.n = 0};
    o.on_text = on_text;
    o.user = &sk;
    qr_answer a;
    memset(&a, 0, sizeof a);
    CHECK_OK(qr_answer_run("What did Lily have?", S, 3, &o, &a));
    CHECK(!a.extractive);
    CHECK(a.text != NULL);
    if (!a.text) goto done;
    CHECK(!strcmp(sk.buf, a.text));
    CHECK_INT(a.n_used, 3);
    CHECK(a.n_generated > 0 && a.n_generated <= 24);
    CHECK(a.finish != NULL);

    /* independent run from the same prompt: cleaning the raw completion gives the answer */
    qr_prompt p;
    memset(&p, 0, sizeof p);
    qr_prompt_opts po = {.tok = qr_model_tokenizer(m), .n_ctx = 512, .max_tokens = 24};
    CHECK_OK(qr_prompt_build("What did Lily have?", S, 3, &po, &p));
    CHECK_INT(a.n_prompt, p.n_ids);
    qr_gen_result res;
    memset(&res, 0, sizeof res);
    CHECK_OK(qr_generate(m, p.ids, p.n_ids, &o.sample, NULL, NULL, &res));
    char *clean = NULL;
    CHECK_OK(qr_cite_clean(res.text, strlen(res.text), 3, &clean, NULL));
    CHECK_MSG(clean && !strcmp(clean, a.text), "answer \"%s\" vs cleaned \"%s\"", a.text, clean ? clean : "");
    free(clean);
    qr_gen_result_free(&res);

    json_t *j = NULL;
    CHECK_OK(qr_answer_to_json(&a, "What did Lily have?", S, &j));
    CHECK(!strcmp(json_string_value(json_object_get(j, "mode")), "llm"));
    CHECK_INT(json_array_size(json_object_get(j, "sources")), 3);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "generation"), "prompt_tokens")), p.n_ids);
    json_decref(j);
    qr_answer_free(&a);

    /* context for the prompt with 1 source only: the other two dropped for length */
    qr_prompt p1;
    memset(&p1, 0, sizeof p1);
    CHECK_OK(qr_prompt_build("What did Lily have?", S, 1, &po, &p1));
    o.n_ctx = (int)p1.n_ids + 24;
    sk.n = 0;
    sk.buf[0] = 0;
    CHECK_OK(qr_answer_run("What did Lily have?", S, 3, &o, &a));
    CHECK_INT(a.n_used, 1);
    CHECK_INT(a.n_prompt, p1.n_ids);
    if (a.status) {
        CHECK_INT(a.status[0], QR_SRC_USED);
        CHECK_INT(a.status[1], QR_SRC_DROPPED_LENGTH);
        CHECK_INT(a.status[2], QR_SRC_DROPPED_LENGTH);
    }
    CHECK_OK(qr_answer_to_json(&a, "What did Lily have?", S, &j));
    json_t *d = json_object_get(j, "dropped");
    CHECK_INT(json_array_size(d), 2);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(d, 0), "reason")), "length"));
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(d, 1), "path")), "c.txt"));
    json_decref(j);
    qr_answer_free(&a);
    qr_prompt_free(&p1);
    qr_prompt_free(&p);
done:
    qr_answer_free(&a);
    qr_model_free(m);
    qr_backend_destroy(be);
}

int main(void)
{
    test_extractive();
    test_llm();
    qr_answer_free(NULL);
    return qr_test_done();
}
