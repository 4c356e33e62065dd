/* Private to runtime/models: the body of qr_model shared by model.c (load),
 * encoder.c and decoder.c. Weight tensors live on the backend; shapes are in
 * torch order (out, in) so matmul computes x . W^T. */
#ifndef QR_RUNTIME_MODEL_INTERNAL_H
#define QR_RUNTIME_MODEL_INTERNAL_H

#include "runtime/models/model.h"
#include "runtime/weights/weights.h"

typedef struct qr_layer {
    /* attention */
    qr_tensor wq, wk, wv, wo;         // (n_head*hd, d), (n_kv*hd, d), (n_kv*hd, d), (d, n_head*hd)
    qr_tensor bq, bk, bv, bo;         // (1, n_head*hd), (1, n_kv*hd), (1, n_kv*hd), (1, d); data NULL if absent
    /* FFN: BERT uses up (intermediate) and down (output); Llama adds gate */
    qr_tensor w_gate, w_up, w_down;   // (d_ff, d), (d_ff, d), (d, d_ff)
    qr_tensor b_gate, b_up, b_down;   // (1, d_ff), (1, d_ff), (1, d)
    /* norms: BERT post-attention / post-FFN LayerNorms; Llama pre-attention / pre-FFN RMSNorms */
    qr_tensor attn_norm_w, attn_norm_b; // (1, d)
    qr_tensor ffn_norm_w, ffn_norm_b;   // (1, d)
} qr_layer;

/* The part of the model one tensor-parallel rank holds (Megatron split, see
 * runtime/models/arch.c): query heads [head0, head0 + n_head), KV heads
 * [kv_head0, kv_head0 + n_kv_head) (one replicated head when the ranks
 * outnumber the KV heads), FFN columns [ff0, ff0 + d_ff), vocabulary rows
 * [vocab0, vocab0 + vocab). n = 0 (a zeroed struct) or 1: unsharded, the
 * whole model (qr_model_shard() fills the full sizes then). */
typedef struct qr_shard {
    int rank, n;
    int32_t head0, n_head, kv_head0, n_kv_head;
    int32_t ff0, d_ff;
    int32_t vocab0, vocab;
} qr_shard;

struct qr_model {
    qr_model_config cfg;
    qr_shard sh;                /* this rank's part; zeroed = unsharded */
    /* tensor-parallel group (qr_model_load_tp): tp > 1 and ranks[tp] hold the
     * shards, each on its own backend; this struct then holds no weights
     * (layers NULL) and be = ranks[0]->be. NULL/0 otherwise. */
    int tp;
    qr_model **ranks;
    struct qr_comm *comm;       /* the group's communicator (owned) */
    struct qr_rank_pool *pool;  /* the ranks' parked threads (owned; runtime/dist/rank_pool.h) */
    bool owns_backends;         /* free destroys ranks[r]->be (qr_model_own_backends) */
    qr_backend *be;             /* borrowed */
    qr_wsrc *src;               /* kept open: the CPU backend may alias mmap'd weights */
    qr_tokenizer *tok;          /* NULL when the model ships no tokenizer */
    qr_dtype dtype;             /* matmul weight type */
    char path[4096];

    qr_tensor tok_embd;         // (vocab, d) at dtype
    qr_tensor pos_embd;         // (max_pos, d) f32, BERT
    qr_tensor type_embd;        // (type_vocab, d) f32, BERT
    qr_tensor embd_norm_w, embd_norm_b; // (1, d) BERT embeddings LayerNorm
    qr_tensor out_norm;         // (1, d) Llama final RMSNorm
    qr_tensor lm_head;          // (vocab, d) at dtype; aliases tok_embd when tied (lm_head_tied)
    bool lm_head_tied;
    qr_layer *layers;           // n_layer
    float *inv_freq;            // (head_dim/2) host, rope scaling applied
    uint64_t weight_bytes;
};

static inline bool qr_tensor_present(const qr_tensor *t) { return t->data != NULL; }

/* m->sh, with the whole model's sizes when m is unsharded. */
qr_shard qr_model_shard(const qr_model *m);

/* Computes rank `rank` of n's part of config c by the rule `quire estimate`
 * states (heads % n == 0, d_ff % n == 0, n_kv % n == 0 or n % n_kv == 0;
 * vocabulary rows ceil(V / n) per rank, the last rank fewer). QR_EUNSUPPORTED
 * with the numbers when c cannot be split n ways. */
int qr_shard_plan(const qr_model_config *c, int rank, int n, qr_shard *out);

/* ---- the decoder's per-architecture block (arch.c) ----
 * The views and host arrays of one decoder step, owned by the decoder state
 * (decoder.c), handed to the architecture's forward pass. Sizes are the
 * rank's (qr_model_shard): dq = n_head*hd, dkv = n_kv_head*hd, ff = d_ff. */
typedef struct qr_dec_acts {
    qr_tensor x, h, q, k, v, att, o, gate, up; // (T, d) (T, d) (T, dq) (T, dkv) (T, dkv) (T, dq) (T, d) (T, ff) (T, ff)
    qr_tensor last, logits;                    // (S, d) (S, vocab)
    qr_tensor *kc, *vc;                        // n_layer each: (n_slots*n_ctx, dkv)
    const int32_t *ids;                        // (T) rows of this rank's embedding table
    const int32_t *pos, *dst_rows, *last_rows; // (T) (T) (S)
    const qr_attn_seq *as;                     // (S)
    /* Sums a (rows, d) activation over the tensor-parallel ranks in place
     * (NULL when unsharded: the partial sums are already whole). */
    int (*allreduce)(void *ctx, qr_tensor *t);
    void *ar_ctx;
} qr_dec_acts;

/* Enqueues the forward pass of T packed tokens of n_seq sequences up to the
 * LM head's logits of each sequence's last row (when head). Enqueues only,
 * so a graph can capture it (unless allreduce is set). */
int qr_decoder_forward(qr_model *m, qr_dec_acts *a, int64_t T, int n_seq, bool head);

/* Loads the weights of a Llama-family decoder (llama, mistral, qwen2) from
 * the tensor table of arch.c, only the slice of m->sh. */
typedef struct qr_loader qr_loader;
int qr_load_decoder(qr_loader *L);

/* ---- weight loading (model.c) ---- */
enum {
    QR_W_OPTIONAL = 1, /* absent is fine: the tensor is left empty */
    QR_W_VEC = 2,      /* 1-D in the file: (n) loaded as (1, n) */
    QR_W_PERM_Q = 4,   /* undo GGUF's RoPE row permutation (heads of hd rows) */
    QR_W_PERM_K = 8,   /* ... same for K (kept apart for the messages) */
    QR_W_ZERO_ROW = 16,/* append one row of zeros (a sharded embedding's "not mine" row) */
    QR_W_EMBED = 32,   /* the token embedding table: embed op (and matmul when tied) */
};

/* The part of a file tensor to load: along rows (axis 0; a vector's
 * elements) or columns (axis 1: each row's [off, off + n), read with the
 * row stride of the file). n = 0: the whole tensor. */
typedef struct qr_wslice {
    int axis;
    int64_t off, n;
} qr_wslice;

struct qr_loader {
    qr_model *m;
    bool gguf;
    size_t staging_peak;  /* largest host buffer needed while loading */
    uint64_t type_bytes[QR_DTYPE_COUNT];        /* backend bytes per loaded type (int8: with scales) */
    int conv[QR_DTYPE_COUNT][QR_DTYPE_COUNT];   /* tensors converted [from][to] by the type choice */
    uint64_t file_bytes;                        /* file bytes of the tensors loaded */
};

/* Loads one tensor found under the first present candidate name (%d = layer;
 * HF names also tried with the "bert." / "model." prefixes): checks its
 * shape is (rows, cols) ((cols) for QR_W_VEC), takes slice sl (NULL: all),
 * undoes the GGUF RoPE permutation if asked, converts to `want` on the
 * backend and counts its bytes in m->weight_bytes. */
int qr_load_w(qr_loader *L, const char *const *cands, int layer, int64_t rows, int64_t cols, const qr_wslice *sl,
              qr_dtype want, int flags, qr_tensor *out);

/* Upper bound on tokens run in one BERT forward pass (bounds activation memory). */
#define QR_BERT_MAX_BATCH_TOKENS 8192

/* The BERT forward pass shared by embeddings (encoder.c) and cross-encoder
 * reranking (rerank.c): one packed batch of T tokens (ids, positions, token
 * types on the host) with seqs describing each sequence's rows, then pooling
 * (mean / CLS / last over real tokens) and optional L2 normalisation.
 * Writes (n_seq, d_model) floats to out. */
int qr_bert_forward(qr_model *m, const int32_t *ids, const int32_t *pos, const int32_t *types, int64_t T,
                    const qr_attn_seq *seqs, int n_seq, qr_pool_mode pooling, bool normalize, float *out);

#endif
