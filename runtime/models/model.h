/* A loaded model: config + tokenizer + weights on a backend. Read-only after
 * load and shareable between threads; per-request state (activations, KV
 * cache) lives in qr_encoder_state / qr_decoder_state.
 *
 * Precision is always explicit: opts->dtype (f32, bf16, f16, int8 =
 * per-output-channel symmetric weight-only, quantized at load; q8_0 / q4_k =
 * GGUF blocks quantized at load; as-stored = each tensor's file type, GGUF
 * blocks kept as stored where the backend computes with them, see model.c
 * pick_type) is applied to the matmul weights and the token embedding table
 * (also the tied LM head); norms, biases and position/type embeddings stay
 * f32. Nothing picks a dtype silently: every departure from the asked type
 * (a backend lacking a layout, rows not whole blocks, Q2_K/Q3_K -> Q4_K) is
 * named on the load line with the bytes held per type. */
#ifndef QR_RUNTIME_MODEL_H
#define QR_RUNTIME_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/dist/comm.h"
#include "runtime/models/config.h"
#include "runtime/tokenizer/tokenizer.h"

typedef struct qr_model qr_model;

typedef struct qr_model_opts {
    qr_dtype dtype;      /* weight compute type: QR_F32, QR_BF16, QR_F16, QR_I8, QR_Q8_0, QR_Q4_K or
                          * QR_AS_STORED (each tensor in its file type; see the load line) */
} qr_model_opts;

/* path: already resolved (qr_model_resolve): HF directory or .gguf file.
 * be is borrowed and must outlive the model. */
int qr_model_load(const char *path, const qr_model_opts *opts, qr_backend *be, qr_model **out);
void qr_model_free(qr_model *m);
const qr_model_config *qr_model_cfg(const qr_model *m);
const qr_tokenizer *qr_model_tokenizer(const qr_model *m);
/* Bytes of weights held by the backend after conversion (all ranks). */
uint64_t qr_model_weight_bytes(const qr_model *m);

/* ---- tensor parallelism ----
 * Loads a decoder split over n ranks, rank r on backend bes[r] (borrowed;
 * they must outlive the model), Megatron-style (runtime/models/arch.c): each
 * rank reads from the file only its slice of the split tensors (heads, FFN
 * columns, vocabulary rows) and its decoder state caches only its KV heads.
 * The ranks communicate through the communicator qr_comm_choose picks from
 * the backends (runtime/dist: NCCL on device buffers when each rank is its
 * own GPU, else the in-process host one), so any backend works; each rank has
 * a parked thread from load on. A rank or communicator that fails fails the
 * whole load, naming it, with nothing left loaded. n = 1 is qr_model_load. Counts that
 * cannot be split n ways: QR_EUNSUPPORTED naming them (the rule of `quire
 * estimate`). The result is used like any model (qr_generate, decoder
 * states); a step drives every rank, one thread each. */
#define QR_TP_MAX 64
int qr_model_load_tp(const char *path, const qr_model_opts *opts, qr_backend *const *bes, int n, qr_model **out);
/* qr_model_free of a group also destroys its ranks' backends (for callers
 * that made them for this model only). No effect on a single-rank model. */
void qr_model_own_backends(qr_model *m);
/* QR_OK when config c splits n ways (the rule above), else QR_EUNSUPPORTED
 * with the numbers. */
int qr_model_tp_check(const qr_model_config *c, int n);
/* Ranks of the model (1 unless loaded by qr_model_load_tp with n > 1). */
int qr_model_tp(const qr_model *m);
/* Weight bytes held by one rank. */
uint64_t qr_model_rank_weight_bytes(const qr_model *m, int rank);
/* The group communicator's counters (all-reduces, their bytes, seconds rank 0
 * spent in collectives); zeros for a single-rank model. reset: zero them
 * afterwards. */
void qr_model_comm_stats(qr_model *m, qr_comm_stats *out, bool reset);

/* ---- encoder (BERT family) ---- */
/* Embeds n texts: tokenizes (with special tokens, truncated to max_seq_length),
 * runs the batch, pools, optionally L2-normalises. out: (n, d_model) floats. */
int qr_embed_texts(qr_model *m, const char *const *texts, const size_t *lens, int n, float *out);
/* Same from token ids (seqs[i] of lens[i] ids, special tokens already added).
 * A sequence longer than qr_embed_seq_limit() keeps its first limit-1 ids and
 * its last id (the [SEP]). */
int qr_embed_ids(qr_model *m, const int32_t *const *seqs, const int32_t *lens, int n, float *out);
/* Tokens per sequence the encoder accepts: max_seq_length if set, else
 * max_position_embeddings (the smaller of the two). */
int qr_embed_seq_limit(const qr_model *m);

/* ---- cross-encoder reranking (BERT sequence classification) ---- */
/* Scores n (query, passage) pairs with a BertForSequenceClassification model
 * with one label (ms-marco MiniLM cross-encoders): ids = [CLS] query [SEP]
 * passage [SEP], token_type_ids 0 for [CLS] query [SEP] and 1 for the rest;
 * out[i] = classifier(tanh(pooler(h_CLS))) (the raw logit). Pairs longer than
 * the model's limit are cut "longest first" as HF tokenizers do (one token at
 * a time from the longer part, the passage on ties), keeping both [SEP]. Needs the model's tokenizer and the pooler.dense and
 * classifier weights (QR_EFORMAT naming the tensor when absent). */
int qr_rerank_scores(qr_model *m, const char *query, size_t qlen, const char *const *passages,
                     const size_t *plens, int n, float *out);
/* Same from token ids: q (nq ids, no special tokens), passages p[i] (plen[i]
 * ids, no special tokens); cls/sep are the special ids to use. */
int qr_rerank_ids(qr_model *m, const int32_t *q, int32_t nq, const int32_t *const *p, const int32_t *plen, int n,
                  int32_t cls, int32_t sep, float *out);

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

/* ---- lower level: one generation's per-sequence part ----
 * Sampling, stop rules and text of one generation, without the forward pass:
 * shared by qr_generate (one slot) and generate/scheduler.c (many sequences
 * batched in one qr_decoder_step), so both give the same ids and text.
 * Create validates the prompt and parameters for a slot of n_ctx positions
 * (QR_EINVAL: empty prompt, id outside the vocabulary, max_tokens <= 0, stop
 * strings without a tokenizer; QR_ELIMIT: n_prompt >= n_ctx; QR_EUNSUPPORTED:
 * an encoder model) and caps max_tokens to n_ctx - n_prompt. Then, for each
 * logits row of the sequence's last fed position, qr_genseq_next samples the
 * next id (history = prompt + generated ids), ends at an eos id of the config,
 * a stop string or max_tokens, and streams the text through a qr_textstream. */
typedef struct qr_genseq qr_genseq;

typedef struct qr_genseq_tok {
    int32_t id;        /* sampled id; feed it in the next step unless done */
    const char *piece; /* newly final text (may be ""); borrowed until the next call on g */
    bool eos;          /* id is an eos id: not part of the completion; piece is the released tail */
    bool done;         /* the generation ended (qr_genseq_finish says why) */
} qr_genseq_tok;

/* prompt and p (stop strings included) are copied. */
int qr_genseq_create(qr_model *m, const int32_t *prompt, size_t n_prompt, const qr_sample_params *p, int n_ctx,
                     qr_genseq **out);
void qr_genseq_free(qr_genseq *g);
/* max_tokens after the cap: the slot needs n_prompt + this many positions at most. */
size_t qr_genseq_max_new(const qr_genseq *g);
/* logits: (vocab_size) floats of the last fed position. QR_EINVAL after done. */
int qr_genseq_next(qr_genseq *g, const float *logits, qr_genseq_tok *out);
/* True when the sampling is plain greedy (temperature 0, no repetition
 * penalty): the next id is the logits' arg-max (lowest id on ties), which a
 * backend can select on the device (qr_decoder_step_topk with k = 1). */
bool qr_genseq_greedy(const qr_genseq *g);
/* Same as qr_genseq_next for an id already chosen (the arg-max when greedy). */
int qr_genseq_next_id(qr_genseq *g, int32_t id, qr_genseq_tok *out);
/* Ends the generation early with reason finish (a static string such as
 * "callback" or "cancelled"), unless eos or a stop string already ended it. */
void qr_genseq_end(qr_genseq *g, const char *finish);
/* "stop", "length" or the reason given to qr_genseq_end; NULL while running. */
const char *qr_genseq_finish(const qr_genseq *g);
/* Tokens generated so far (an eos or the token completing a stop string included). */
size_t qr_genseq_n_generated(const qr_genseq *g);
/* The completion so far as a result (ids kept, text, n_prompt, finish: the
 * current one, "length" while running); timings are left 0 for the caller.
 * Free with qr_gen_result_free. */
int qr_genseq_result(const qr_genseq *g, qr_gen_result *out);

/* Prompt tokens a decoder step takes at most: qr_generate prefills in chunks
 * of this many, the scheduler's default prefill_chunk; the activation
 * buffers (and `quire estimate`'s workspace) are sized by it. */
#define QR_PREFILL_CHUNK 512

/* ---- memory estimate (reads only the config; used by load logging and `quire estimate`) ---- */
typedef struct qr_mem_estimate {
    uint64_t weights;    /* all weights at dtype (int8: + one f32 scale per row); norms/biases/positions f32 */
    uint64_t kv_cache;   /* f32 K and V for n_seq sequences x n_ctx positions (0 for encoders) */
    uint64_t workspace;  /* activations of one forward pass of n_tok tokens (+ logits of n_seq rows) */
} qr_mem_estimate;
/* n_ctx: context per sequence; n_seq: sequences decoded together; n_tok: tokens
 * in one forward pass (prefill chunk or encoder batch). Activations counted at
 * 4 bytes (the CPU backend's f32). */
int qr_model_estimate(const qr_model_config *c, qr_dtype dtype, int64_t n_ctx, int64_t n_seq, int64_t n_tok,
                      qr_mem_estimate *out);

/* "q4_k 80.00 MiB, q6_k 20.00 MiB, f32 7.00 MiB": bytes[QR_DTYPE_COUNT]
 * per type, largest first, zero entries left out (the load line's and
 * `quire estimate`'s per-type split). */
void qr_model_type_bytes_str(const uint64_t *bytes, char *buf, size_t len);

/* ---- lower level: RoPE frequencies ---- */
/* inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, with the config's
 * scaling applied (linear: / factor; llama3: transformers'
 * _compute_llama3_parameters). out: head_dim/2 floats. */
int qr_rope_inv_freq(const qr_model_config *c, float *out);

/* ---- lower level: batched multi-sequence decoding ----
 * A decoder state owns a KV cache of n_slots sequences x n_ctx positions per
 * layer (cache tensors (n_slots*n_ctx, n_kv_head*head_dim) in the backend's
 * activation type; slot s occupies rows s*n_ctx .. s*n_ctx+n_ctx-1) and the
 * activation buffers (grown on demand). One state is used by one thread at a
 * time; many states may share one model. */
typedef struct qr_decoder_state qr_decoder_state;

int qr_decoder_state_create(qr_model *m, int n_slots, int n_ctx, qr_decoder_state **out);
void qr_decoder_state_free(qr_decoder_state *st);
/* Tokens cached in a slot so far. */
int qr_decoder_slot_len(const qr_decoder_state *st, int slot);
/* Forgets a slot's tokens from position n on (0 = empty the slot). */
int qr_decoder_slot_truncate(qr_decoder_state *st, int slot, int n);

/* New tokens for one slot in a step: a prefill chunk or one decode token. */
typedef struct qr_dec_seq {
    int slot;
    const int32_t *ids;
    int32_t n;        /* >= 1 */
} qr_dec_seq;

/* Runs all sequences' new tokens in one batch (each slot at most once per
 * step), appends them to their slots' caches and writes, for each sequence,
 * the logits of its last new token: logits (n_seq, vocab_size) host floats
 * (may be NULL to only fill the cache). QR_ELIMIT if a slot would exceed n_ctx.
 * On failure the slots' lengths are unchanged. */
int qr_decoder_step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits);
/* True when the backend selects top-k on the device (backend op topk). */
bool qr_decoder_has_topk(const qr_decoder_state *st);
/* Like qr_decoder_step, but instead of whole logits rows returns for each
 * sequence its k largest logits, descending, the lowest id first among equal
 * values (ids/vals: n_seq*k; vals may be NULL), selected on the device; k = 1
 * is greedy. QR_EUNSUPPORTED when !qr_decoder_has_topk (nothing is run). */
int qr_decoder_step_topk(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, int k, int32_t *ids, float *vals);
/* Bytes of KV cache the state holds on tensor-parallel rank `rank` (rank 0
 * of a single-rank model: all of it); 0 for a rank out of range. */
uint64_t qr_decoder_kv_bytes(const qr_decoder_state *st, int rank);
/* Steps of single tokens are captured and replayed as graphs on backends that
 * can (CUDA graphs); on by default. Off drops the state's graphs (benchmarks
 * compare the two). */
void qr_decoder_set_graphs(qr_decoder_state *st, bool on);

/* ---- lower level: incremental detokenization with stop strings ----
 * For decode loops (qr_generate, and a service running many sequences): after
 * each token the whole completion is detokenized again (so pieces are exactly
 * the final text, whatever the tokenizer's decoder does at token boundaries),
 * and the part that can no longer change is released: held back are an
 * incomplete UTF-8 sequence or trailing U+FFFD (a byte-fallback character whose
 * other bytes have not come yet) and the longest suffix that is a prefix of a
 * stop string. Stop strings are found across token boundaries; the text is cut
 * before the earliest match and the token that completed it is dropped from
 * the kept ids. The pieces of all pushes plus the flush add up to the text. */
typedef struct qr_textstream qr_textstream;

/* tok may be NULL (ids only: text stays "", no stop strings allowed). The stop
 * strings are copied. */
int qr_textstream_create(const qr_tokenizer *tok, const char *const *stop, int n_stop, qr_textstream **out);
void qr_textstream_free(qr_textstream *s);
/* Adds a generated token. *piece (borrowed until the next call on s) is the
 * newly final text; final = true releases everything (the last token). *stopped
 * is set when a stop string completed; further pushes are refused. */
int qr_textstream_push(qr_textstream *s, int32_t id, bool final, const char **piece, bool *stopped);
/* Releases the held-back tail (e.g. when eos ends generation). */
int qr_textstream_flush(qr_textstream *s, const char **piece);
/* The text so far (cut at a stop string); borrowed. */
const char *qr_textstream_text(const qr_textstream *s);
/* The kept ids (the one completing a stop string excluded); borrowed. */
const int32_t *qr_textstream_ids(const qr_textstream *s, size_t *n);

/* ---- lower level: sampling ---- */
/* The sampling distribution HF transformers' generate() would use, in its
 * order: repetition penalty over the history window (hist: previous ids, the
 * prompt included), temperature, top-k, top-p, min-p. probs (n_vocab) gets the
 * final probabilities (0 for removed tokens). With temperature 0 (greedy) it is
 * one-hot on the arg-max (lowest id on ties) of the penalised logits. */
int qr_sample_probs(const qr_sample_params *p, const float *logits, int32_t n_vocab, const int32_t *hist,
                    size_t n_hist, float *probs);

/* Seeded sampler: xoshiro256** (Blackman & Vigna) seeded by splitmix64(seed). */
typedef struct qr_sampler qr_sampler;
int qr_sampler_create(const qr_sample_params *p, int32_t n_vocab, qr_sampler **out);
void qr_sampler_free(qr_sampler *s);
/* Draws one id from qr_sample_probs(logits, hist). */
int qr_sampler_sample(qr_sampler *s, const float *logits, const int32_t *hist, size_t n_hist, int32_t *out);
/* Next uniform double in [0, 1) (53 random bits); exposed for tests. */
double qr_sampler_uniform(qr_sampler *s);

#endif
