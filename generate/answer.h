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

int qr_answer_run(const char *question, const qr_source *sources, size_t n, const qr_answer_opts *o,
                  qr_answer *out);
void qr_answer_free(qr_answer *a);

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
