/* generate/extract: extractive answers over hand-made passages. Expected
 * selections follow from the rules in extract.h, not from running the code:
 * sentences sharing no (non question-word) term with the question are never
 * chosen, nor those scoring under half of the best, a sentence showing an
 * option named by the question ranks higher, the sentence repeated by an overlapping chunk is chosen once, the
 * chosen sentences come in document order with their source numbers, and the
 * length budget keeps the best sentence when both do not fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/extract.h"
#include "tests/unit/test.h"

static qr_source src(const char *path, const char *text)
{
    qr_source s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.text = text;
    s.text_len = strlen(text);
    s.len = s.text_len;
    return s;
}

int main(void)
{
    const char *q = "How do I request two GPUs for a batch job?";
    const char *s2 = "GPUs are requested per job with --gres=gpu:<count> or --gpus=<count>.";
    const char *s3 = "To request two GPUs for a batch job, put #SBATCH --gpus=2 in the batch script.";
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "The cluster runs Slurm.  %s %s", s2, s3);
    snprintf(p2, sizeof p2, "Memory is set with --mem.\n%s", s3);
    qr_source S[3] = {src("a.html", p1), src("b.html", p2), src("c.txt", "Coffee is served at noon in the lobby.")};

    qr_extract_result r;
    memset(&r, 0, sizeof r);
    /* s3 holds every question term (two also as "2" in --gpus=2), s2 only request, GPU and job: s2
     * scores under half of s3 (BM25 over the 6 candidate sentences, coverage 0.5 against 1) and is
     * not taken; s3's repeat in b.html is a duplicate */
    CHECK_OK(qr_extract_answer(q, S, 3, NULL, &r));
    char want[1024];
    snprintf(want, sizeof want, "%s [1]", s3);
    CHECK_MSG(r.text && !strcmp(r.text, want), "got \"%s\"", r.text ? r.text : "(null)");
    CHECK_INT(r.n_sents, 1);
    CHECK_INT(r.n_used, 3);
    qr_extract_result_free(&r);

    /* every question term in both s2 and s3: both taken, in document order; the shorter s2 scores
     * higher (BM25 length normalisation) */
    CHECK_OK(qr_extract_answer("How do I request GPUs for a job?", S, 3, NULL, &r));
    snprintf(want, sizeof want, "%s [1] %s [1]", s2, s3);
    CHECK_MSG(r.text && !strcmp(r.text, want), "got \"%s\"", r.text ? r.text : "(null)");
    CHECK_INT(r.n_sents, 2);
    if (r.n_sents == 2) {
        CHECK_INT(r.sents[0].source, 0);
        CHECK_INT(r.sents[0].off, strstr(p1, s2) - p1);
        CHECK_INT(r.sents[0].len, strlen(s2));
        CHECK_INT(r.sents[1].off, strstr(p1, s3) - p1);
        CHECK(r.sents[0].score > r.sents[1].score);
    }
    qr_extract_result_free(&r);

    /* a sentence showing an option that names a question term beats the same sentence without it
     * (same terms, same length; without the boost the tie keeps the earlier one) */
    {
        const char *plain = "Use memory to raise it.", *opt = "Use --memory to raise it.";
        char pt[128];
        snprintf(pt, sizeof pt, "%s %s", plain, opt);
        qr_source O[1] = {src("o.txt", pt)};
        qr_extract_opts one;
        qr_extract_opts_default(&one);
        one.max_sentences = 1;
        CHECK_OK(qr_extract_answer("How do I raise memory?", O, 1, &one, &r));
        snprintf(want, sizeof want, "%s [1]", opt);
        CHECK_MSG(r.text && !strcmp(r.text, want), "got \"%s\"", r.text ? r.text : "(null)");
        qr_extract_result_free(&r);
    }

    /* budget: only the best sentence fits */
    qr_extract_opts o;
    qr_extract_opts_default(&o);
    o.max_chars = strlen(s3) + 10;
    CHECK_OK(qr_extract_answer(q, S, 3, &o, &r));
    snprintf(want, sizeof want, "%s [1]", s3);
    CHECK_MSG(r.text && !strcmp(r.text, want), "got \"%s\"", r.text ? r.text : "(null)");
    qr_extract_result_free(&r);

    /* the best passage ranked second: its sentence cites [2] */
    qr_source T[2] = {src("c.txt", "Coffee is served at noon in the lobby."), src("b.html", p2)};
    CHECK_OK(qr_extract_answer(q, T, 2, NULL, &r));
    snprintf(want, sizeof want, "%s [2]", s3);
    CHECK_MSG(r.text && !strcmp(r.text, want), "got \"%s\"", r.text ? r.text : "(null)");
    qr_extract_result_free(&r);

    /* nothing relevant: empty answer */
    CHECK_OK(qr_extract_answer(q, T, 1, NULL, &r));
    CHECK(r.text && !*r.text);
    CHECK_INT(r.n_sents, 0);
    qr_extract_result_free(&r);

    /* max_sources limits the passages considered */
    o.max_chars = 800;
    o.max_sources = 1;
    CHECK_OK(qr_extract_answer(q, T, 2, &o, &r));
    CHECK_INT(r.n_sents, 0);
    CHECK_INT(r.n_used, 1);
    qr_extract_result_free(&r);

    CHECK_OK(qr_extract_answer(q, NULL, 0, NULL, &r));
    CHECK_INT(r.n_sents, 0);
    qr_extract_result_free(&r);
    qr_extract_result_free(NULL);

    /* keyword queries: question words dropped, other tokens kept in order */
    char *kw = NULL;
    CHECK_OK(qr_question_keywords("How do I request two GPUs for a batch job?", &kw));
    CHECK_MSG(kw && !strcmp(kw, "request two 2 GPUs for batch job"), "got \"%s\"", kw ? kw : ""); /* two -> also 2 */
    free(kw);
    CHECK_OK(qr_question_keywords("What does --gres=gpu:2 mean?", &kw));
    CHECK_MSG(kw && !strcmp(kw, "gres gpu 2 mean"), "got \"%s\"", kw ? kw : "");
    free(kw);
    CHECK_OK(qr_question_keywords("How?", &kw));
    CHECK(kw && !strcmp(kw, "How?"));
    free(kw);

    /* questions are not answers */
    qr_source F[1] = {src("faq.html", "How do I request two GPUs for a batch job? Use --gpus=2 when the batch job "
                                      "is submitted.")};
    CHECK_OK(qr_extract_answer(q, F, 1, NULL, &r));
    CHECK_MSG(r.text && !strcmp(r.text, "Use --gpus=2 when the batch job is submitted. [1]"), "got \"%s\"",
              r.text ? r.text : "");
    qr_extract_result_free(&r);

    /* a definition-list term joins its definition, written on one line */
    qr_source D[1] = {src("gres.html", "Options:\n--gpus\n\nGPUs required per batch job\n\n--mem\nMemory per node")};
    CHECK_OK(qr_extract_answer(q, D, 1, NULL, &r));
    CHECK_MSG(r.text && !strcmp(r.text, "--gpus GPUs required per batch job [1]"), "got \"%s\"", r.text ? r.text : "");
    qr_extract_result_free(&r);
    return qr_test_done();
}
