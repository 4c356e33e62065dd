/* Private to decoder.c and decoder_tp.c: the decoder state and the steps
 * of qr_decoder_step, which a tensor-parallel group runs on every rank. */
#ifndef QR_RUNTIME_DECODER_INTERNAL_H
#define QR_RUNTIME_DECODER_INTERNAL_H

#include "runtime/models/model_internal.h"

typedef struct qr_dec_tp qr_dec_tp;

/* Decode-step graphs kept per state (distinct batch sizes; oldest replaced). */
#define QR_DEC_GRAPHS 8

struct qr_decoder_state {
    qr_model *m;
    int n_slots, n_ctx;
    int32_t *len;          // (n_slots) tokens cached per slot
    /* activations (views of T rows made per step) and the KV cache
     * (a.kc, a.vc: n_layer each, (n_slots*n_ctx, n_kv*hd) of this rank's heads),
     * sized for cap_tok tokens and cap_seq sequences */
    qr_dec_acts a;
    int64_t cap_tok;
    int cap_seq;
    /* host scratch the descriptors of a.* point at */
    int32_t *ids, *pos, *dst_rows, *last_rows;
    qr_attn_seq *as;
    /* captured decode steps, by batch size (optional backend graph ops) */
    qr_be_graph *graph[QR_DEC_GRAPHS];
    int graph_nseq[QR_DEC_GRAPHS];
    int graph_next;
    bool graphs_off;
    qr_dec_tp *tp;         // tensor-parallel group state (NULL on one rank)
};

/* Checks a step's sequences, grows the buffers and fills the host
 * descriptors (ids, positions, cache rows) of st; *T = tokens in the step. */
int qr_dec_prepare(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, int64_t *T);
/* Enqueues the forward pass (through a graph when possible). */
int qr_dec_run(qr_decoder_state *st, int64_t T, int n_seq, bool head);
/* The logits (n_seq, this rank's vocabulary) of the last run. */
qr_tensor qr_dec_logits(qr_decoder_state *st, int n_seq);
/* The step's tokens are cached: slot lengths grow. */
void qr_dec_commit(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq);

/* ---- tensor-parallel group (decoder_tp.c) ---- */
/* Creates one state per rank of st->m (a group model) for st->n_slots x
 * st->n_ctx into st->tp. */
int qr_dec_tp_create(qr_decoder_state *st);
void qr_dec_tp_free(qr_dec_tp *tp);
qr_decoder_state *qr_dec_tp_rank(qr_dec_tp *tp, int r);
/* qr_decoder_step(_topk) of a group: every rank at once, one thread each. */
int qr_dec_tp_step(qr_decoder_state *st, const qr_dec_seq *seqs, int n_seq, float *logits, int k, int32_t *ids,
                   float *vals);

#endif
