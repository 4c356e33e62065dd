/* Chat templates: a model's Jinja chat template plus its special tokens,
 * rendered over a conversation as transformers' apply_chat_template does.
 *
 * Where the template comes from (first found wins, as in transformers):
 *   MODEL_DIR/chat_template.jinja           the template text
 *   MODEL_DIR/chat_template.json            {"chat_template": "..."}
 *   MODEL_DIR/tokenizer_config.json         "chat_template": "..." or a list of
 *                                           {"name": ..., "template": ...}
 * Special tokens (bos_token, eos_token, unk_token, pad_token) always come
 * from tokenizer_config.json when it exists: a string, null, or an AddedToken
 * object {"content": "..."}.
 *
 * Variables a template sees, as transformers' apply_chat_template passes them:
 * messages (list of {role, content, ...}; keys whose value is null dropped,
 * reasoning_content / thinking / reasoning aliased to each other),
 * add_generation_prompt, the special tokens that are not None, tools and
 * documents (None unless given), and any extra variables the caller passes
 * (e.g. enable_thinking, documents), which override these. */
#ifndef QR_GENERATE_CHAT_H
#define QR_GENERATE_CHAT_H

#include <stddef.h>

#include <jansson.h>

#include "generate/jinja.h"

typedef struct qr_chat_template qr_chat_template;

typedef struct {
    const char *role;    /* "system", "user", "assistant", "tool", ... */
    const char *content; /* UTF-8; NULL: the message has no content key (transformers drops
                            None-valued keys before rendering) */
} qr_chat_message;

typedef struct {
    int add_generation_prompt;
    const qr_jinja_date *date; /* for strftime_now(); NULL: current local time */
    const json_t *tools;       /* JSON array of tool definitions, or NULL */
    const json_t *extra;       /* JSON object of further variables, or NULL */
    const char *name;          /* named template to use (list form); NULL: "tool_use" when
                                  tools are given and it exists, else "default" */
    int system_fallback;       /* nonzero: when messages start with a system message and the
                                  template refuses it through raise_exception (Gemma: "System
                                  role not supported"), render again with the system content
                                  prepended to the first user message, "SYSTEM\n\nUSER" */
} qr_chat_opts;

/* Loads the chat template of a model directory (see above). QR_ENOTFOUND
 * when the directory has no chat template; QR_EFORMAT / QR_EUNSUPPORTED when
 * the template does not parse (message names the file and line:col). */
int qr_chat_template_load(const char *model_dir, qr_chat_template **out);

/* The chat template of a resolved model path: a directory's files (as
 * qr_chat_template_load), or a GGUF file's tokenizer.chat_template with the
 * BOS / EOS token strings of tokenizer.ggml.{bos,eos}_token_id. *out is NULL
 * (and 0 returned) when the model has none (plain prompt format) or the path
 * is neither a directory nor a GGUF (a safetensors file). */
int qr_chat_template_for_model(const char *path, qr_chat_template **out);

/* From the text of a tokenizer_config.json (len bytes); origin names it in
 * error messages. */
int qr_chat_template_from_config(const char *config_json, size_t len, const char *origin,
                                 qr_chat_template **out);

/* From a template string and special tokens (either may be NULL = None). */
int qr_chat_template_from_string(const char *tmpl, size_t len, const char *bos_token,
                                 const char *eos_token, qr_chat_template **out);

void qr_chat_template_free(qr_chat_template *ct);

/* Renders n messages. *out is malloc'd (caller frees), NUL-terminated,
 * *out_len its length (out_len may be NULL). Errors as qr_jinja_render:
 * a template's raise_exception(msg) gives QR_EINVAL with qr_last_error()
 * = QR_JINJA_RAISE_PREFIX msg. */
int qr_chat_render(const qr_chat_template *ct, const qr_chat_message *msgs, size_t n,
                   const qr_chat_opts *opts, char **out, size_t *out_len);

/* Same with messages given as a JSON array of message objects (to carry
 * tool_calls, reasoning_content and other fields). */
int qr_chat_render_json(const qr_chat_template *ct, const json_t *messages, const qr_chat_opts *opts,
                        char **out, size_t *out_len);

/* Special token strings (NULL when the config has none); borrowed, valid
 * while ct lives. */
const char *qr_chat_bos_token(const qr_chat_template *ct);
const char *qr_chat_eos_token(const qr_chat_template *ct);

#endif
