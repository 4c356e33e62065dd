/* Cited answers from ranked passages (generate/prompt.h's qr_source):
 *
 *  - with a language model: the prompt of generate/prompt.h (sources fitted
 *    to n_ctx - max_tokens, lowest-ranked dropped whole), generation with
 *    qr_generate, and the completion cleaned of citations that point at no
 *    source (generate/cite.h). Streaming: on_text receives the cleaned text
 *    as it becomes final, so a terminal shows the answer while it is
 *    generated; only an open "[..." that may still be a citation and spaces
 *    before it are held back (a few bytes). The metadata (which sources were
 *    cited, removed citation numbers) is known at the end.
 *  - without one (model NULL): an extractive answer (generate/extract.h)
 *    with the same citation format and metadata; on_text gets the whole text
 *    once.
 *
 * Source numbers: source i (0-based input rank) is [i + 1] when used. */
#ifndef QR_GENERATE_ANSWER_H
#define QR_GENERATE_ANSWER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "generate/cite.h"
#include "generate/extract.h"
#include "generate/prompt.h"
#include "retrieve/retrieve.h"
#include "runtime/models/model.h"

typedef int (*qr_answer_text_fn)(const char *piece, size_t len, void *user);

typedef struct {
    qr_model *model;              /* NULL: extractive */
    const qr_chat_template *tmpl; /* the model's chat template; NULL: plain prompt format */
    int n_ctx;                    /* context window for the prompt + answer */
    qr_sample_params sample;      /* sampling; sample.max_tokens = answer budget */
    const char *instruction;      /* NULL: QR_PROMPT_INSTRUCTION */
    const qr_jinja_date *date;    /* for templates using strftime_now */
    qr_extract_opts extract;      /* extractive mode */
    qr_answer_text_fn on_text;    /* may be NULL */
    void *user;
} qr_answer_opts;

/* Defaults: extractive (model NULL), n_ctx 4096, qr_sample_params_default
 * (greedy), extract defaults. */
void qr_answer_opts_default(qr_answer_opts *o);

typedef enum { QR_SRC_USED = 0, QR_SRC_DROPPED_LENGTH, QR_SRC_NOT_CONSIDERED } qr_source_status;

typedef struct {
    char *text;         /* the cleaned answer (malloc'd) */
    bool extractive;
    size_t n_sources;   /* as given */
    qr_source_status *status; /* per input source (malloc'd) */
    size_t n_used;      /* sources 0..n_used-1 are numbered 1..n_used */
    qr_cite_report cites;
    qr_extract_sentence *sents; /* extractive: chosen sentences (malloc'd) */
    size_t n_sents;
    int n_prompt, n_generated;  /* LLM: prompt tokens, generated tokens */
    const char *finish;         /* LLM: "stop", "length", "callback"; NULL when extractive */
    double prefill_s, decode_s;
} qr_answer;

/* Fills src[0..res->n-1] from retrieved passages (pointers borrow res's
 * strings, so res must outlive src). */
void qr_sources_from_results(const qr_results *res, qr_source *src);

int qr_answer_run(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                  qr_answer *out);
void qr_answer_free(qr_answer *a);

/* ---- the language-model path in steps ----
 * For callers that run the generation themselves (the service, through
 * generate/scheduler.h). qr_answer_run's LLM path is these same steps around
 * qr_generate, so both give the same answer:
 *
 *   qr_answer_prepare      builds the prompt (sources fitted to
 *                          o->n_ctx - o->sample.max_tokens; lowest-ranked
 *                          dropped whole) from o->model's tokenizer and
 *                          o->tmpl; o->model must be set (it is not run).
 *                          With the scheduler, o->n_ctx should be the
 *                          scheduler's n_ctx.
 *   qr_answer_job_prompt   the ids to generate from (with o->sample).
 *   qr_answer_job_push     each completion piece in order (e.g. every
 *                          QR_SCHED_TEXT piece); *clean (borrowed until the
 *                          next call on j) is the cleaned text now final:
 *                          what a stream shows. Invalid citations are
 *                          removed; only an open "[..." and spaces before it
 *                          are held back.
 *   qr_answer_job_finish   after the last piece: *tail is the held-back rest
 *                          of the cleaned text (borrowed until free) and *out
 *                          the whole answer (text = all cleaned pieces + the
 *                          tail; statuses, citation report, n_prompt; from
 *                          res: n_generated = res->n_ids, finish (res->finish,
 *                          a static string), prefill_s, decode_s). Free out
 *                          with qr_answer_free. One finish per job.
 *   qr_answer_job_free     NULL is fine. */
typedef struct qr_answer_job qr_answer_job;

int qr_answer_prepare(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                      qr_answer_job **out);
const int32_t *qr_answer_job_prompt(const qr_answer_job *j, size_t *n_ids);
int qr_answer_job_push(qr_answer_job *j, const char *piece, size_t len, const char **clean, size_t *clean_len);
int qr_answer_job_finish(qr_answer_job *j, const qr_gen_result *res, const char **tail, size_t *tail_len,
                         qr_answer *out);
void qr_answer_job_free(qr_answer_job *j);

/* The answer as JSON:
 *   {"question", "mode": "llm"|"extractive", "answer",   (page: null when not paged)
 *    "citations": [{"n", "path", "title", "page", "heading", "chunk_id",
 *                   "byte_start", "byte_end", ("sentences": [[start, end], ...]
 *                   offsets in the passage text, extractive)}]   cited, in citation order
 *    "sources":   [{"n", ..., "score", "cited"}]                  used, by number
 *    "dropped":   [{..., "reason": "length"|"not considered"}]
 *    "removed_citations": [numbers], ("generation": {...} LLM)} */
int qr_answer_to_json(const qr_answer *a, const char *question, const qr_source *sources, json_t **out);

#endif
