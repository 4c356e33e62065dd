/* Internal building blocks of the tokenizer (runtime/tokenizer only).
 *
 * A qr_tokenizer is a pipeline, the same as Hugging Face `tokenizers`:
 *
 *   text ─► (invalid UTF-8 → U+FFFD) ─► added tokens split out (non-normalized ones on the raw
 *   text, then normalized ones on each normalized segment) ─► normalizers ─► pre-tokenizers
 *   ─► model (WordPiece / BPE / WordLevel / custom) per pre-token, through a word cache
 *   ─► post-processor (only with add_special)
 *
 * and decoding is ids ─► pieces ─► decoders ─► concatenation.
 *
 * Sequences of normalizers, pre-tokenizers, post-processors and decoders are flattened into
 * arrays (a Sequence inside a Sequence is the same as one flat Sequence).
 *
 * How to build one without JSON (as gguf_vocab.c does):
 *
 *   qr_tokenizer *t; qr_tok_create(&t);
 *   qr_tok_vocab_set(t, piece, len, id)       for every vocabulary entry
 *   qr_tok_added_add(t, &(qr_tok_added){...}) for control / user-defined tokens
 *   t->model.type = QR_TOK_MODEL_BPE; qr_tok_merge_add(t, a, alen, b, blen) in rank order ...
 *   push normalizers / pre-tokenizers / decoders / post steps with qr_tok_push_*()
 *   t->bos_id = ...; qr_tok_finalize(t, "file.gguf")   (builds lookup tables; required, and
 *   last: normalized added tokens are matched by their content run through the normalizers)
 *
 * Every string stored in the structures below is owned by the tokenizer (copied on insert)
 * and freed by qr_tokenizer_free(). After qr_tok_finalize() the tokenizer is read-only;
 * all encode/decode functions take it const and are thread-safe. */
#ifndef QR_RUNTIME_TOK_INTERNAL_H
#define QR_RUNTIME_TOK_INTERNAL_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tokenizer/tokenizer.h"

/* Hard limits. */
#define QR_TOK_MAX_INPUT ((size_t)64 << 20) /* bytes of text per qr_tokenize call → QR_ELIMIT */
#define QR_TOK_MAX_VOCAB (1 << 24)          /* ids must be in [0, QR_TOK_MAX_VOCAB) */
/* One BPE / custom-model pre-token (after any U+2581 cuts) may span at most this many bytes:
 * merging keeps ~80 bytes of state per character, so an unbroken 64 MiB word would need
 * gigabytes. Longer → QR_ELIMIT. */
#define QR_TOK_MAX_WORD ((size_t)4 << 20)

/* ---- growable buffers ------------------------------------------------------------------ */

typedef struct { char *p; size_t n, cap; } qr_tok_buf;       /* bytes; p NUL-terminated if n>0 */
typedef struct { int32_t *v; size_t n, cap; } qr_tok_ids;

int qr_tok_buf_reserve(qr_tok_buf *b, size_t extra);
int qr_tok_buf_put(qr_tok_buf *b, const char *s, size_t len);
int qr_tok_buf_putc(qr_tok_buf *b, char c);
int qr_tok_buf_put_cp(qr_tok_buf *b, uint32_t cp); /* UTF-8 encode one code point */
void qr_tok_buf_free(qr_tok_buf *b);
int qr_tok_ids_push(qr_tok_ids *a, int32_t id);
void qr_tok_ids_free(qr_tok_ids *a);

/* ---- UTF-8 and Unicode classes --------------------------------------------------------- */

/* Decodes the code point at s[0..len) (len >= 1, input assumed valid UTF-8: the tokenizer
 * sanitizes its input first). Returns the byte length of the character. */
int qr_tok_utf8_next(const char *s, size_t len, uint32_t *cp);
/* Copies src into dst, replacing each maximal invalid UTF-8 subsequence by U+FFFD
 * (the WHATWG / Rust String::from_utf8_lossy policy). */
int qr_tok_utf8_sanitize(const char *src, size_t len, qr_tok_buf *dst);
/* Rust char::is_whitespace (Unicode White_Space). */
bool qr_tok_is_whitespace(uint32_t cp);
/* HF `is_punctuation`: ASCII punctuation or general category P* (of HF's Unicode tables). */
bool qr_tok_is_punctuation(uint32_t cp);
/* Rust char::is_alphanumeric (Alphabetic or Numeric, approximated with categories L*, N*). */
bool qr_tok_is_alnum(uint32_t cp);

/* Unicode data as Hugging Face `tokenizers` has it (tok_unicode.c, tables generated from the
 * Python package by tools/tokenizer/gen_unicode_tables.py; HF's crates lag utf8proc by
 * several Unicode versions, so marks, punctuation, decompositions and case pairs of recent
 * versions differ). Flags QR_U_* of tok_unicode_tables.h. */
unsigned qr_tok_uflags(uint32_t cp);
#define QR_U_CTRL 0x001u   /* BertNormalizer clean_text removes it (Cc, Cf, Co, U+0000, U+FFFD) */
#define QR_U_WS 0x002u     /* White_Space (Rust char::is_whitespace) */
#define QR_U_CJK 0x004u    /* BertNormalizer handle_chinese_chars pads it with spaces */
#define QR_U_MN 0x008u     /* BertNormalizer strip_accents drops it after NFD (Mn) */
#define QR_U_MARK 0x010u   /* StripAccents drops it (Mn, Mc, Me) */
#define QR_U_PUNCT 0x020u  /* BertPreTokenizer / Punctuation split on it */
#define QR_U_DECOMP 0x040u /* NFD changes it */
#define QR_U_LOWER 0x080u  /* Lowercase changes it */
#define QR_U_CCC 0x100u    /* nonzero canonical combining class */
#define QR_U_NUMERIC 0x200u /* Digits splits on it (Rust char::is_numeric) */
#define QR_U_COMPAT 0x400u  /* NFKD differs from NFD on it */
#define QR_U_COMP2 0x800u   /* second code point of a canonical composition */
#define QR_U_WORD 0x1000u   /* a word character for added tokens' single_word (Rust regex \w) */
/* HF Lowercase of one code point (Rust char::to_lowercase), U+0130 excepted (two code points). */
uint32_t qr_tok_ulower(uint32_t cp);
/* HF NFD / NFKD / NFC / NFKC (unicode-normalization-alignments): canonical or compatibility
 * decomposition, canonical reordering, and for NFC/NFKC canonical composition. */
int qr_tok_nfd(const char *s, size_t len, qr_tok_buf *out);
int qr_tok_unorm(const char *s, size_t len, bool compat, bool compose, qr_tok_buf *out);

/* ---- string → id hash map (open addressing, FNV-1a) ------------------------------------ */

typedef struct {
    uint32_t *slots; /* index+1 into keys/vals, 0 = empty */
    size_t cap;      /* power of two */
    size_t n;
    char **keys;     /* owned copies, NUL-terminated */
    uint32_t *klens;
    int32_t *vals;
    size_t kcap;
} qr_tok_strmap;

int qr_tok_strmap_put(qr_tok_strmap *m, const char *s, size_t len, int32_t val); /* overwrites */
/* -1 if absent. */
int32_t qr_tok_strmap_get(const qr_tok_strmap *m, const char *s, size_t len);
void qr_tok_strmap_free(qr_tok_strmap *m);

/* ---- vocabulary -------------------------------------------------------------------------- */

typedef struct {
    qr_tok_strmap map;   /* piece → id (model vocabulary only) */
    char **pieces;       /* (n) id → piece (borrowed from map.keys or from added tokens); NULL gaps */
    uint32_t *piece_len; /* (n) */
    int32_t n;           /* max id + 1 over the model vocabulary and the added tokens */
    int32_t cap;
    int32_t cp_id[512];  /* id of the single-code-point piece for code points < 512, -1 if none
                            (fast path for byte-level alphabets); built by qr_tok_finalize */
    uint32_t max_piece_len;
} qr_tok_vocab;

/* Adds (or re-maps) a model vocabulary entry. */
int qr_tok_vocab_set(qr_tokenizer *t, const char *piece, size_t len, int32_t id);
/* Model vocabulary lookup (added tokens excluded), -1 if absent. */
int32_t qr_tok_vocab_get(const qr_tokenizer *t, const char *piece, size_t len);

/* ---- BPE merges: (left id, right id) → rank, merged id ---------------------------------- */

typedef struct {
    uint64_t key;     /* ((uint64_t)left << 32 | right) + 1, 0 = empty */
    int32_t rank, merged;
} qr_tok_merge_slot; /* one cache line holds 4: a lookup touches one line */

typedef struct {
    qr_tok_merge_slot *slots; /* open addressing, power-of-two cap */
    size_t cap, n;
} qr_tok_merges;

/* Appends a merge with the next rank (call in rank order). Both parts and their
 * concatenation must be in the vocabulary (QR_EFORMAT otherwise, naming `where`). With a
 * BPE continuing_subword_prefix (set model.cont_prefix first), the merged piece is a + b
 * without its first cont_prefix_len bytes, as HF builds it. */
int qr_tok_merge_add(qr_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                     const char *where);
/* Returns true and sets rank / merged id if the pair merges. */
bool qr_tok_merge_get(const qr_tok_merges *m, int32_t left, int32_t right, int32_t *rank,
                      int32_t *merged);

/* ---- added tokens ------------------------------------------------------------------------ */

typedef struct {
    char *content; /* owned */
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} qr_tok_added;

/* Copies a->content. If the content is already an added token, its entry is replaced. */
int qr_tok_added_add(qr_tokenizer *t, const qr_tok_added *a);

/* ---- normalizers ------------------------------------------------------------------------- */

typedef enum {
    QR_NORM_BERT,          /* clean_text, handle_chinese_chars, strip_accents, lowercase */
    QR_NORM_NFC, QR_NORM_NFD, QR_NORM_NFKC, QR_NORM_NFKD,
    QR_NORM_LOWERCASE,
    QR_NORM_STRIP_ACCENTS, /* removes combining marks (M*) */
    QR_NORM_STRIP,         /* strip_left / strip_right whitespace */
    QR_NORM_PREPEND,       /* str prepended to non-empty text */
    QR_NORM_REPLACE,       /* pattern (literal str or regex re) → content */
} qr_tok_norm_type;

typedef struct {
    qr_tok_norm_type type;
    bool clean_text, handle_chinese_chars, strip_accents, lowercase; /* BERT */
    bool strip_left, strip_right;                                   /* STRIP */
    char *str; size_t str_len;         /* PREPEND text, REPLACE literal pattern (owned) */
    pcre2_code *re;                    /* REPLACE regex pattern (owned), or NULL */
    char *content; size_t content_len; /* REPLACE replacement (owned) */
} qr_tok_norm;

/* ---- pre-tokenizers ---------------------------------------------------------------------- */

typedef enum {
    QR_SPLIT_REMOVED, QR_SPLIT_ISOLATED, QR_SPLIT_MERGED_WITH_PREVIOUS,
    QR_SPLIT_MERGED_WITH_NEXT, QR_SPLIT_CONTIGUOUS
} qr_tok_split_behavior;

typedef enum {
    QR_PT_BERT,             /* whitespace removed, punctuation isolated */
    QR_PT_WHITESPACE,       /* \w+|[^\w\s]+ */
    QR_PT_WHITESPACE_SPLIT, /* split on whitespace, removed */
    QR_PT_PUNCTUATION,      /* behavior */
    QR_PT_DIGITS,           /* individual_digits */
    QR_PT_SPLIT,            /* literal str or regex re; behavior; invert */
    QR_PT_BYTE_LEVEL,       /* add_prefix_space, use_regex (GPT-2 pattern), then byte → unicode */
    QR_PT_METASPACE,        /* replacement, prepend_scheme, split */
} qr_tok_pretok_type;

typedef enum { QR_PREPEND_ALWAYS, QR_PREPEND_FIRST, QR_PREPEND_NEVER } qr_tok_prepend_scheme;

typedef struct {
    qr_tok_pretok_type type;
    qr_tok_split_behavior behavior;
    bool invert, individual_digits, add_prefix_space, use_regex, split;
    char *str; size_t str_len;          /* SPLIT literal pattern, METASPACE replacement (owned) */
    pcre2_code *re;                     /* SPLIT regex, BYTE_LEVEL GPT-2 regex (owned) */
    qr_tok_prepend_scheme prepend_scheme;
} qr_tok_pretok;

/* Compiles a pattern with PCRE2_UTF | PCRE2_UCP. Errors are QR_EFORMAT naming `where`. */
int qr_tok_regex_compile(const char *pattern, size_t len, const char *where, pcre2_code **out);
/* The Whitespace pre-tokenizer's regex, \w+|[^\w\s]+ with the Rust regex crate's classes. */
int qr_tok_regex_compile_whitespace(const char *where, pcre2_code **out);
/* The GPT-2 ByteLevel pre-tokenizer pattern. */
extern const char qr_tok_gpt2_pattern[];

/* ---- models ------------------------------------------------------------------------------ */

typedef enum { QR_TOK_MODEL_NONE, QR_TOK_MODEL_WORDPIECE, QR_TOK_MODEL_BPE, QR_TOK_MODEL_CUSTOM,
               QR_TOK_MODEL_WORDLEVEL /* whole pre-token → id, else unk */ }
    qr_tok_model_type;

typedef struct qr_tok_model {
    qr_tok_model_type type;
    int32_t unk_id;                 /* -1 if none */
    char *cont_prefix; size_t cont_prefix_len; /* WordPiece "##"; BPE continuing_subword_prefix */
    char *eow_suffix; size_t eow_suffix_len;   /* BPE end_of_word_suffix */
    int max_input_chars_per_word;   /* WordPiece (100) */
    qr_tok_merges merges;           /* BPE */
    bool ignore_merges, byte_fallback, fuse_unk; /* BPE */
    int32_t byte_fallback_id[256];  /* BPE: id of "<0xXX>", -1 if absent (built by finalize) */
    /* BPE (finalize): no vocabulary piece has U+2581 after another character, so a long
     * pre-token may be cut before each U+2581 run and its parts encoded (and cached)
     * separately with identical results: no merge can cross such a cut. */
    bool split_metaspace;
    /* CUSTOM (e.g. score-based SentencePiece from GGUF, spm.c): encodes one pre-token
     * (valid UTF-8) appending ids to out; returns 0 or a negative QR_E* code. */
    int (*custom_encode)(const qr_tokenizer *t, const char *word, size_t len, qr_tok_ids *out);
    void *custom_data;
    void (*custom_free)(void *custom_data);
} qr_tok_model;

/* Model encode of one pre-token (appends to out). */
int qr_tok_wordpiece_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out);
int qr_tok_bpe_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out);

/* ---- post-processor ---------------------------------------------------------------------- */

/* A single-sequence template: items in order; an item is either the sequence (is_seq) or
 * a run of special ids. TemplateProcessing, BertProcessing and RobertaProcessing all map
 * to this; ByteLevel post-processing does not change ids and maps to nothing. */
typedef struct {
    bool is_seq;
    int32_t *ids; size_t n_ids; /* owned */
} qr_tok_post_item;

/* ---- decoders ---------------------------------------------------------------------------- */

typedef enum {
    QR_DEC_BYTE_LEVEL, QR_DEC_WORDPIECE, QR_DEC_METASPACE, QR_DEC_BYTE_FALLBACK, QR_DEC_FUSE,
    QR_DEC_STRIP, QR_DEC_REPLACE,
    QR_DEC_BPE, /* str = suffix: replaced by " " (by "" in the last token) */
    QR_DEC_CTC, /* dedup; str = pad token removed; content = word delimiter → " " (cleanup) */
} qr_tok_dec_type;

typedef struct {
    qr_tok_dec_type type;
    char *str; size_t str_len;         /* WORDPIECE prefix, METASPACE replacement,
                                          STRIP content, REPLACE literal pattern (owned) */
    pcre2_code *re;                    /* REPLACE regex (owned) */
    char *content; size_t content_len; /* REPLACE replacement (owned) */
    bool cleanup;                      /* WORDPIECE, CTC */
    qr_tok_prepend_scheme prepend_scheme; /* METASPACE */
    int strip_start, strip_stop;       /* STRIP */
} qr_tok_dec;

/* ---- the tokenizer ----------------------------------------------------------------------- */

struct qr_tokenizer {
    char *source;              /* file it came from (for messages), owned */
    qr_tok_vocab vocab;
    qr_tok_model model;

    qr_tok_added *added; size_t n_added, cap_added;
    qr_tok_strmap added_map;   /* content → index into added (built by finalize) */
    uint8_t *is_special;       /* (vocab.n) 1 for special added tokens (built by finalize) */
    /* Matching of added tokens (built by finalize): indices into added sorted by
     * (normalized, first byte of the matched text); bucket [c][b]..[c][b+1] is the range
     * for class c (0: matched on raw text, 1: on normalized text) and first byte b.
     * Normalized tokens are matched by their normalized content (added_norm). */
    uint32_t *added_order;
    size_t added_bucket[2][257];
    qr_tok_buf *added_norm; /* (n_added) */

    qr_tok_norm *norms; size_t n_norms, cap_norms;
    qr_tok_pretok *pretoks; size_t n_pretoks, cap_pretoks;
    qr_tok_post_item *post; size_t n_post, cap_post; bool has_post;
    qr_tok_dec *decs; size_t n_decs, cap_decs;
    bool has_decoder; /* false: decode joins pieces with " " as HF does without a decoder */

    int32_t bos_id, eos_id, pad_id; /* -1 if none */
    bool finalized;
    struct qr_tok_cache *cache; /* word → ids cache (finalize); thread-safe, may be NULL */
};

/* Model encode of one pre-token through the word cache (appends to out). */
int qr_tok_model_word(const qr_tokenizer *t, const char *w, size_t len, qr_tok_ids *out);
int qr_tok_cache_create(qr_tokenizer *t);
void qr_tok_cache_free(struct qr_tok_cache *c);

/* A BERT-family model directory without tokenizer.json: vocab.txt (+ optional
 * tokenizer_config.json), built the way transformers converts BertTokenizer (tok_json.c). */
int qr_tok_load_vocab_txt(const char *dir, qr_tokenizer **out);

/* Allocates an empty tokenizer (no vocabulary, no pipeline; ids -1). */
int qr_tok_create(qr_tokenizer **out);
/* Push copies of the struct (ownership of its pointers passes to the tokenizer, also on
 * failure: the pointers are freed then). */
int qr_tok_push_norm(qr_tokenizer *t, const qr_tok_norm *n);
int qr_tok_push_pretok(qr_tokenizer *t, const qr_tok_pretok *p);
int qr_tok_push_dec(qr_tokenizer *t, const qr_tok_dec *d);
/* Appends a template item (ids copied); marks has_post. */
int qr_tok_push_post(qr_tokenizer *t, bool is_seq, const int32_t *ids, size_t n_ids);
/* Builds derived tables (id → piece for added tokens, special flags, fast paths); must be
 * called once after construction, before any encode. where names the source in errors. */
int qr_tok_finalize(qr_tokenizer *t, const char *where);

/* Runs normalizers on src (valid UTF-8) into dst (dst cleared first). */
int qr_tok_normalize(const qr_tokenizer *t, const char *src, size_t len, qr_tok_buf *dst);

/* Pre-tokens: spans of text.p; first = the span starts at offset 0 of the original input
 * (what Metaspace's prepend_scheme "first" tests). Empty spans are never stored. */
typedef struct { size_t off, len; bool first; } qr_tok_span;
typedef struct { qr_tok_buf text; qr_tok_span *v; size_t n, cap; } qr_tok_pieces;
void qr_tok_pieces_free(qr_tok_pieces *p);
/* Runs the pre-tokenizers on one normalized segment s[0..len); out is cleared first. */
int qr_tok_pretokenize(const qr_tokenizer *t, const char *s, size_t len, bool first, qr_tok_pieces *out);
/* All matches of re in s as (start, end) pairs appended to *m (2 * count entries). */
int qr_tok_regex_find_all(const pcre2_code *re, const char *s, size_t len, size_t **m, size_t *n,
                          size_t *cap);

/* byte ↔ unicode tables of GPT-2's byte-level alphabet: each byte maps to one code point
 * (printable latin-1 bytes to themselves, the others to U+0100 + k). */
uint32_t qr_tok_byte_to_cp(uint8_t b);
/* -1 if cp is not in the alphabet. */
int qr_tok_cp_to_byte(uint32_t cp);

#endif
