/* Tokenizers, exact to the Hugging Face `tokenizers` library:
 * WordPiece (BERT), byte-level BPE (GPT-2, Llama-3, Qwen2), SentencePiece-style
 * BPE with byte fallback (Llama-2, Mistral, TinyLlama), loaded from
 * tokenizer.json or from a GGUF vocabulary (tokenizer.ggml.model = bert,
 * gpt2, llama). A loaded tokenizer is read-only and safe to share between
 * threads (its internal word cache is locked without ever blocking).
 *
 * tokenizer.json components supported: normalizers BertNormalizer, NFC, NFD, NFKC,
 * NFKD, Lowercase, StripAccents, Strip, Prepend, Replace, Sequence; pre-tokenizers
 * BertPreTokenizer, Whitespace, WhitespaceSplit, Punctuation, Digits, Split,
 * ByteLevel, Metaspace, Sequence; models WordPiece, BPE, WordLevel; post-processors
 * TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence;
 * decoders ByteLevel, WordPiece, Metaspace, ByteFallback, Fuse, Strip, Replace,
 * BPEDecoder, CTC, Sequence. (Not supported: Unigram models, Precompiled normalizers.) Anything else fails to load with QR_EUNSUPPORTED naming the component
 * and the file. "truncation" and "padding" are ignored (callers truncate).
 *
 * Invalid UTF-8 input: each maximal invalid subsequence is replaced by one U+FFFD
 * (the WHATWG / Rust from_utf8_lossy rule) before tokenization, so "a\xC3(" is
 * tokenized as "a\uFFFD(". Input longer than 64 MiB per call, or (BPE) a single
 * pre-token longer than 4 MiB: QR_ELIMIT. */
#ifndef QR_RUNTIME_TOKENIZER_H
#define QR_RUNTIME_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/weights/gguf.h"

typedef struct qr_tokenizer qr_tokenizer;

/* Loads tokenizer.json (path to the file). bos/eos/pad come from a sibling
 * tokenizer_config.json ("bos_token" etc.) when present, else from well-known
 * token names (<s>, <|begin_of_text|>, [CLS] / </s>, <|end_of_text|>,
 * <|endoftext|>, [SEP] / [PAD], <pad>) and padding.pad_id. */
int qr_tokenizer_load_json(const char *path, qr_tokenizer **out);
/* Loads the vocabulary embedded in a GGUF file. */
int qr_tokenizer_load_gguf(const qr_gguf *g, qr_tokenizer **out);
/* Model directory (tokenizer.json inside, or else a BERT-style vocab.txt with an
 * optional tokenizer_config.json, converted as transformers does) or .gguf file. */
int qr_tokenizer_load(const char *model_path, qr_tokenizer **out);
void qr_tokenizer_free(qr_tokenizer *t);

/* Encodes len bytes of text. add_special applies the post-processor
 * (BERT [CLS] .. [SEP], Llama BOS, ...). *ids is malloc'd (caller frees),
 * *n_ids its length. Invalid UTF-8 is handled as documented in tokenizer.c. */
int qr_tokenize(const qr_tokenizer *t, const char *text, size_t len, bool add_special,
                int32_t **ids, size_t *n_ids);
/* qr_tokenize with flags. QR_TOK_ADD_SPECIAL: as add_special above.
 * QR_TOK_SPECIAL_AS_TEXT: special added tokens written in the text are NOT
 * recognised and are tokenized as ordinary text (HF's encode_special_tokens =
 * true): use it for untrusted text such as retrieved documents, so that
 * "<|im_end|>" inside a document cannot act as a control token. Non-special
 * added tokens are still matched. */
enum { QR_TOK_ADD_SPECIAL = 1u, QR_TOK_SPECIAL_AS_TEXT = 2u };
int qr_tokenize_ex(const qr_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                   size_t *n_ids);
/* Decodes ids to UTF-8 text (*out malloc'd, NUL-terminated) through the decoders
 * of the tokenizer; skip_special drops special added tokens (HF skip_special_tokens).
 * Ids outside the vocabulary are skipped. */
int qr_detokenize(const qr_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out);

int32_t qr_tokenizer_n_vocab(const qr_tokenizer *t);
/* Special ids, -1 when the tokenizer has none. */
int32_t qr_tokenizer_bos(const qr_tokenizer *t);
int32_t qr_tokenizer_eos(const qr_tokenizer *t);
int32_t qr_tokenizer_pad(const qr_tokenizer *t);
/* Id of an exact token string (added/special tokens included), -1 if absent. */
int32_t qr_tokenizer_find(const qr_tokenizer *t, const char *token);
/* The raw vocabulary string of id (borrowed), NULL if out of range. */
const char *qr_tokenizer_piece(const qr_tokenizer *t, int32_t id);
bool qr_tokenizer_is_special(const qr_tokenizer *t, int32_t id);

#endif
