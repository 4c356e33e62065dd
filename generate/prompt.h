/* Prompts for cited answers: numbered sources [1]..[n] plus the question,
 * rendered through the model's chat template (generate/chat.h) or, for a
 * model without one, through a plain fallback format, and fitted to the
 * context window.
 *
 * Sources come ranked, best first. Source number i (1-based) is the i-th
 * source kept. Fitting: the prompt must leave max_tokens of the context free
 * for the answer, so while the tokenized prompt is longer than
 * n_ctx - max_tokens the lowest-ranked source is dropped whole (never cut);
 * dropped sources are reported (reason "length"). The token count is the
 * exact length of the ids the model will be fed: the rendered text is split
 * around the user message; template text is tokenized with special tokens
 * recognised, the user message (question and retrieved documents, untrusted)
 * with QR_TOK_SPECIAL_AS_TEXT so that "<|im_end|>" inside a document cannot
 * act as a control token.
 *
 * Chat template form: a system message (the instruction to answer from the
 * sources and cite them as [n]) and one user message:
 *
 *     Sources:
 *
 *     [1] PATH, page P, section HEADING > PATH
 *     TEXT
 *
 *     [2] ...
 *
 *     Question: QUESTION
 *
 * Plain fallback (model without a chat template, e.g. a GGUF base model such
 * as stories260K): BOS (when the tokenizer has one), then
 *
 *     INSTRUCTION\n\nSources:\n\n[1] ...\n\nQuestion: QUESTION\nAnswer:
 *
 * and the model continues after "Answer:". */
#ifndef QR_GENERATE_PROMPT_H
#define QR_GENERATE_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "generate/chat.h"
#include "runtime/tokenizer/tokenizer.h"

/* One retrieved passage (all strings borrowed). */
typedef struct {
    uint64_t chunk_id;
    const char *path;    /* document path as stored */
    const char *title;   /* document title, NULL/"" when none */
    int page;            /* 1-based PDF page or notebook cell (qr_page_label), 0 when not paged */
    const char *heading; /* heading path "A > B", NULL/"" when none */
    size_t off, len;     /* byte span of the passage in the document's text */
    const char *text;    /* the passage text (text_len bytes) */
    size_t text_len;
    double score;        /* retrieval score (fused), informative only */
} qr_source;

/* The default system instruction. */
extern const char *const QR_PROMPT_INSTRUCTION;

typedef struct {
    const qr_chat_template *tmpl; /* NULL: plain fallback format */
    const qr_tokenizer *tok;      /* required: counts tokens */
    int n_ctx;                    /* context window (tokens) */
    int max_tokens;               /* tokens kept free for the answer */
    const char *instruction;      /* NULL: QR_PROMPT_INSTRUCTION */
    const qr_jinja_date *date;    /* for templates calling strftime_now; NULL: now */
} qr_prompt_opts;

typedef struct {
    char *text;       /* the rendered prompt (malloc'd) */
    int32_t *ids;     /* its token ids, what the model is fed (malloc'd) */
    size_t n_ids;
    size_t n_used;    /* sources kept: numbers 1..n_used are sources[0..n_used-1] */
    size_t n_dropped; /* sources[n_used..n-1] dropped for length */
    int budget;       /* n_ctx - max_tokens */
} qr_prompt;

/* Builds and fits the prompt. QR_ELIMIT (message says how many tokens) when
 * even the prompt without any source does not fit; QR_EINVAL on bad
 * arguments; template errors as qr_chat_render. */
int qr_prompt_build(const char *question, const qr_source *sources, size_t n, const qr_prompt_opts *o,
                    qr_prompt *out);
void qr_prompt_free(qr_prompt *p);

/* The user-message text for the first k sources (malloc'd): exposed so that
 * tests can render the same conversation independently. */
int qr_prompt_user_text(const char *question, const qr_source *sources, size_t k, char **out);

/* "PATH, page P, section H" label of a source (malloc'd). */
int qr_source_label(const qr_source *s, char **out);

#endif
