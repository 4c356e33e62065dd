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

struct qr_model {
    qr_model_config cfg;
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
