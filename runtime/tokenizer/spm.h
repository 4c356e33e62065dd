/* Score-based SentencePiece encoding, as llama.cpp's "llama" (SPM) vocabulary type does
 * it for GGUF files: the pre-token is split into UTF-8 characters; adjacent symbols whose
 * concatenation is a vocabulary piece are merged, highest piece score first (ties: the
 * leftmost pair); symbols that are not pieces become their bytes' <0xXX> tokens (the
 * unknown id when a byte token is missing). Space escaping (U+2581) and the space prefix
 * are the normalizers' job (gguf_vocab.c), not this model's. */
#ifndef QR_RUNTIME_TOK_SPM_H
#define QR_RUNTIME_TOK_SPM_H

#include <stddef.h>

#include "runtime/tokenizer/tok_internal.h"

/* Makes t's model the score-based SentencePiece model (QR_TOK_MODEL_CUSTOM). scores[i] is
 * the score of id i (n entries, copied). The vocabulary itself is t's (qr_tok_vocab_set);
 * t->model.unk_id is the fallback for bytes without a <0xXX> piece. */
int qr_tok_spm_init(qr_tokenizer *t, const float *scores, size_t n);

#endif
