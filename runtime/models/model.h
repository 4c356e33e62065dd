/* A loaded model: config + tokenizer + weights on a backend. Read-only after
 * load and shareable between threads; per-request state (activations, KV
 * cache) lives in qr_encoder_state / qr_decoder_state.
 *
 * Precision is always explicit: opts->dtype (f32, bf16, f16, int8 =
 * per-output-channel symmetric weight-only, quantized at load) is applied to
 * the matmul weights; norms, biases and embeddings stay f32. Nothing picks a
 * dtype silently. */
#ifndef QR_RUNTIME_MODEL_H
#define QR_RUNTIME_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/models/config.h"
#include "runtime/tokenizer/tokenizer.h"

typedef struct qr_model qr_model;

typedef struct qr_model_opts {
    qr_dtype dtype;      /* weight compute type: QR_F32, QR_BF16, QR_F16 or QR_I8 */
} qr_model_opts;

/* path: already resolved (qr_model_resolve): HF directory or .gguf file.
 * be is borrowed and must outlive the model. */
int qr_model_load(const char *path, const qr_model_opts *opts, qr_backend *be, qr_model **out);
void qr_model_free(qr_model *m);
const qr_model_config *qr_model_cfg(const qr_model *m);
const qr_tokenizer *qr_model_tokenizer(const qr_model *m);
/* Bytes of weights held by the backend after conversion. */
uint64_t qr_model_weight_bytes(const qr_model *m);

/* ---- encoder (BERT family) ---- */
/* Embeds n texts: tokenizes (with special tokens, truncated to max_seq_length),
 * runs the batch, pools, optionally L2-normalises. out: (n, d_model) floats. */
int qr_embed_texts(qr_model *m, const char *const *texts, const size_t *lens, int n, float *out);
/* Same from token ids (seqs[i] of lens[i] ids, special tokens already added). */
int qr_embed_ids(qr_model *m, const int32_t *const *seqs, const int32_t *lens, int n, float *out);

/* ---- decoder (Llama family) ---- */
typedef struct qr_sample_params {
    float temperature;    /* 0 = greedy */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off (HF semantics: divide positive logits, multiply negative) */
    int repeat_last_n;    /* window for the penalty; 0 = whole context */
    uint64_t seed;
    int max_tokens;
    const char *const *stop; /* stop strings (not included in the output), n_stop of them */
    int n_stop;
} qr_sample_params;

void qr_sample_params_default(qr_sample_params *p);

/* Called for each generated token with its decoded text piece (may be "" while a
 * multi-byte character is incomplete). Return non-zero to stop. */
typedef int (*qr_token_cb)(int32_t id, const char *piece, void *user);

typedef struct qr_gen_result {
    int32_t *ids;       /* generated ids (malloc'd; caller frees), stop string / eos excluded */
    size_t n_ids;
    char *text;         /* decoded completion (malloc'd) */
    int n_prompt;
    const char *finish; /* "stop" (eos or stop string), "length", "callback" */
    double prefill_s, decode_s;
} qr_gen_result;

/* Prefills the prompt ids (BOS included by the caller if wanted) and decodes up
 * to p->max_tokens tokens. Stops at any eos id of the config, a stop string, or
 * when cb returns non-zero. */
int qr_generate(qr_model *m, const int32_t *prompt, size_t n_prompt, const qr_sample_params *p,
                qr_token_cb cb, void *user, qr_gen_result *out);
void qr_gen_result_free(qr_gen_result *r);

#endif
