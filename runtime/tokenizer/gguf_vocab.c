/* Tokenizer from the vocabulary embedded in a GGUF file (llama.cpp's tokenizer.ggml.* keys).
 *
 * Keys read:
 *   tokenizer.ggml.model        "llama" (score-based SentencePiece, spm.c), "gpt2" (byte-level
 *                               BPE), "bert" (WordPiece)
 *   tokenizer.ggml.tokens       string[n]: the pieces, id = index
 *   tokenizer.ggml.scores       f32[n] (llama: merge priority; required there)
 *   tokenizer.ggml.token_type   i32[n]: 1 normal, 2 unknown, 3 control, 4 user-defined,
 *                               5 unused, 6 byte (missing: all normal)
 *   tokenizer.ggml.merges       string[m] "left right", rank order (gpt2; required there)
 *   tokenizer.ggml.pre          gpt2 pre-tokenizer: "default"/"gpt-2" (GPT-2 regex),
 *                               "llama-bpe"/"llama3"/"llama-v3" (Llama-3 split, ignore_merges),
 *                               "qwen2" (NFC + Qwen2 split), "smollm" (every digit its own
 *                               pre-token, then the GPT-2 regex: llama.cpp's starcoder group,
 *                               HF's Sequence[Digits(individual_digits), ByteLevel]);
 *                               others are QR_EUNSUPPORTED
 *   tokenizer.ggml.{bos,eos,unknown,padding,seperator,cls}_token_id  (out-of-range = none)
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix  (bools)
 *
 * The result is the same pipeline a Hugging Face tokenizer.json of that family builds, so
 * one encoder (tokenizer.c) serves both:
 *   llama  added tokens (unknown/control special, user-defined plain); normalizers
 *          Prepend("▁") (add_space_prefix, default true) + Replace(" " → "▁"); SPM model;
 *          post: [bos] (add_bos, default true) A [eos] (add_eos, default false);
 *          decoders Replace("▁" → " "), ByteFallback, Fuse, Strip(" ", 1, 0).
 *   gpt2   ByteLevel pre-tokenizer (after the family's Split regex), BPE, ByteLevel decoder;
 *          post: bos/eos only when add_bos/add_eos say so (default: bos for Llama-3 only).
 *   bert   BertNormalizer (lowercase, strip accents, clean text, CJK spacing), BertPreTokenizer,
 *          WordPiece (##), post: [CLS] A [SEP], WordPiece decoder.
 *          GGUF BERT vocabularies (llama.cpp's converter) store word-initial pieces with a
 *          "▁" prefix and continuation pieces bare ("##ing" → "ing", "the" → "▁the",
 *          "[CLS]" kept); they are mapped back to WordPiece form here. A vocabulary already
 *          in "##" form (no "▁" pieces) is taken as is.
 *
 * Control and unknown tokens are special added tokens, user-defined ones plain added
 * tokens; both are matched in the text as a Hugging Face tokenizer matches its added
 * tokens (so "<s>" in the text is the BOS id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/tokenizer/spm.h"
#include "runtime/tokenizer/tok_internal.h"
#include "runtime/weights/gguf.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"
#define KEY_PRE "tokenizer.ggml.pre"

static const char llama3_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char SPM_SPACE[] = "\xe2\x96\x81"; /* U+2581 */

static bool str_is(qr_gguf_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Optional id key: -1 when missing or outside [0, n). */
static int32_t get_id(const qr_gguf *g, const char *key, int32_t n)
{
    int64_t v;
    if (qr_gguf_get_i64(g, key, &v) != 0) {
        uint64_t u;
        if (qr_gguf_get_u64(g, key, &u) != 0)
            return -1;
        return u < (uint64_t)n ? (int32_t)u : -1;
    }
    return v >= 0 && v < n ? (int32_t)v : -1;
}

static bool get_flag(const qr_gguf *g, const char *key, bool dflt)
{
    bool b;
    return qr_gguf_get_bool(g, key, &b) == 0 ? b : dflt;
}

static int push_replace_norm(qr_tokenizer *t, const char *pat, const char *content)
{
    qr_tok_norm n = {.type = QR_NORM_REPLACE};
    n.str = dup_n(pat, strlen(pat));
    n.str_len = strlen(pat);
    n.content = dup_n(content, strlen(content));
    n.content_len = strlen(content);
    if (!n.str || !n.content) {
        free(n.str);
        free(n.content);
        return qr_fail(QR_ENOMEM, "tokenizer: normalizer");
    }
    return qr_tok_push_norm(t, &n);
}

static int push_simple_dec(qr_tokenizer *t, qr_tok_dec_type type)
{
    qr_tok_dec d = {.type = type};
    return qr_tok_push_dec(t, &d);
}

/* The post-processor [first] A [last]; nothing at all if neither applies. */
static int push_post(qr_tokenizer *t, int32_t first, int32_t last)
{
    int rc;
    if (first < 0 && last < 0)
        return 0;
    if (first >= 0 && (rc = qr_tok_push_post(t, false, &first, 1)))
        return rc;
    if ((rc = qr_tok_push_post(t, true, NULL, 0)))
        return rc;
    if (last >= 0 && (rc = qr_tok_push_post(t, false, &last, 1)))
        return rc;
    return 0;
}

/* llama: score-based SentencePiece. */
static int build_spm(qr_tokenizer *t, const qr_gguf *g, const char *path, int32_t n)
{
    int rc;
    qr_gguf_type et;
    uint64_t ns;
    if ((rc = qr_gguf_get_arr(g, KEY_SCORES, &et, &ns)))
        return qr_fail(rc, "%s: %s: missing or not an array (needed by the llama tokenizer)", path, KEY_SCORES);
    if (ns != (uint64_t)n)
        return qr_fail(QR_EFORMAT, "%s: %s: %llu scores for %d tokens", path, KEY_SCORES, (unsigned long long)ns, n);
    float *scores = malloc((size_t)n * sizeof *scores);
    if (!scores)
        return qr_fail(QR_ENOMEM, "%s: scores", path);
    for (int32_t i = 0; i < n; i++) {
        double s;
        if ((rc = qr_gguf_arr_f64(g, KEY_SCORES, (uint64_t)i, &s))) {
            free(scores);
            return qr_fail(rc, "%s: %s[%d]: not a number", path, KEY_SCORES, i);
        }
        scores[i] = (float)s;
    }
    rc = qr_tok_spm_init(t, scores, (size_t)n);
    free(scores);
    if (rc)
        return rc;

    if (get_flag(g, "tokenizer.ggml.add_space_prefix", true)) {
        qr_tok_norm pre = {.type = QR_NORM_PREPEND};
        pre.str = dup_n(SPM_SPACE, 3);
        pre.str_len = 3;
        if (!pre.str)
            return qr_fail(QR_ENOMEM, "%s: normalizer", path);
        if ((rc = qr_tok_push_norm(t, &pre)))
            return rc;
    }
    if ((rc = push_replace_norm(t, " ", SPM_SPACE)))
        return rc;

    qr_tok_dec rep = {.type = QR_DEC_REPLACE};
    rep.str = dup_n(SPM_SPACE, 3);
    rep.str_len = 3;
    rep.content = dup_n(" ", 1);
    rep.content_len = 1;
    if (!rep.str || !rep.content) {
        free(rep.str);
        free(rep.content);
        return qr_fail(QR_ENOMEM, "%s: decoder", path);
    }
    if ((rc = qr_tok_push_dec(t, &rep)) || (rc = push_simple_dec(t, QR_DEC_BYTE_FALLBACK)) ||
        (rc = push_simple_dec(t, QR_DEC_FUSE)))
        return rc;
    if (get_flag(g, "tokenizer.ggml.add_space_prefix", true)) {
        qr_tok_dec strip = {.type = QR_DEC_STRIP, .strip_start = 1, .strip_stop = 0};
        strip.str = dup_n(" ", 1);
        strip.str_len = 1;
        if (!strip.str)
            return qr_fail(QR_ENOMEM, "%s: decoder", path);
        if ((rc = qr_tok_push_dec(t, &strip)))
            return rc;
    }
    t->model.byte_fallback = true;
    int32_t bos = get_flag(g, "tokenizer.ggml.add_bos_token", true) ? t->bos_id : -1;
    int32_t eos = get_flag(g, "tokenizer.ggml.add_eos_token", false) ? t->eos_id : -1;
    return push_post(t, bos, eos);
}

/* gpt2: byte-level BPE with merges. */
static int build_bpe(qr_tokenizer *t, const qr_gguf *g, const char *path)
{
    int rc;
    qr_gguf_type et;
    uint64_t nm;
    if ((rc = qr_gguf_get_arr(g, KEY_MERGES, &et, &nm)) || et != QR_GGUF_STRING)
        return qr_fail(rc ? rc : QR_EFORMAT, "%s: %s: missing or not a string array (needed by the gpt2 tokenizer)",
                       path, KEY_MERGES);
    t->model.type = QR_TOK_MODEL_BPE;
    /* No unknown token in the BPE model: tokenizer.ggml.unknown_token_id of these files is
     * the tokenizer_config's unk_token (SmolLM2: <|endoftext|>), not the BPE model's, which
     * is null in their tokenizer.json. A byte-level piece missing from the vocabulary (SmolLM2
     * has no piece for 0xF1..0xF3, the lead bytes of planes 4-15) is dropped, as HF's BPE
     * without unk_token and llama.cpp's BPE tokenizer drop it. */
    t->model.unk_id = -1;
    for (uint64_t i = 0; i < nm; i++) {
        qr_gguf_str m;
        if ((rc = qr_gguf_arr_str(g, KEY_MERGES, i, &m)))
            return rc;
        /* "left right": the separator is the first space after the first byte (byte-level
         * pieces never contain a raw space). */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp)
            return qr_fail(QR_EFORMAT, "%s: %s[%llu]: no space separator", path, KEY_MERGES, (unsigned long long)i);
        size_t alen = (size_t)(sp - m.ptr);
        char where[64];
        snprintf(where, sizeof where, "%s[%llu]", KEY_MERGES, (unsigned long long)i);
        if ((rc = qr_tok_merge_add(t, m.ptr, alen, sp + 1, m.len - alen - 1, where)))
            return rc;
    }

    qr_gguf_str pre = {"default", 7};
    if (qr_gguf_has(g, KEY_PRE) && (rc = qr_gguf_get_str(g, KEY_PRE, &pre)))
        return qr_fail(rc, "%s: %s: not a string", path, KEY_PRE);
    const char *split = NULL;
    bool llama3 = false, digits = false;
    if (str_is(pre, "default") || str_is(pre, "gpt-2") || str_is(pre, "gpt2")) {
        split = NULL;
    } else if (str_is(pre, "llama-bpe") || str_is(pre, "llama3") || str_is(pre, "llama-v3")) {
        split = llama3_pattern;
        llama3 = true;
        t->model.ignore_merges = true;
    } else if (str_is(pre, "smollm")) {
        /* SmolLM2's tokenizer.json: Sequence[Digits(individual_digits=true),
         * ByteLevel(add_prefix_space=false, use_regex=true)]. "a 12" → "a", " ", "1", "2":
         * the digit split comes first, so " 1" is never a pre-token. */
        digits = true;
    } else if (str_is(pre, "qwen2")) {
        split = qwen2_pattern;
        qr_tok_norm nfc = {.type = QR_NORM_NFC};
        if ((rc = qr_tok_push_norm(t, &nfc)))
            return rc;
    } else {
        return qr_fail(QR_EUNSUPPORTED, "%s: %s: pre-tokenizer \"%.*s\" not supported (known: default, gpt-2, "
                       "llama-bpe, llama3, qwen2, smollm)", path, KEY_PRE, (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
    }
    if (digits) {
        qr_tok_pretok d = {.type = QR_PT_DIGITS, .individual_digits = true};
        if ((rc = qr_tok_push_pretok(t, &d)))
            return rc;
    }
    if (split) {
        qr_tok_pretok p = {.type = QR_PT_SPLIT, .behavior = QR_SPLIT_ISOLATED};
        if ((rc = qr_tok_regex_compile(split, strlen(split), path, &p.re)))
            return rc;
        if ((rc = qr_tok_push_pretok(t, &p)))
            return rc;
    }
    qr_tok_pretok bl = {.type = QR_PT_BYTE_LEVEL, .use_regex = split == NULL};
    if (bl.use_regex &&
        (rc = qr_tok_regex_compile(qr_tok_gpt2_pattern, strlen(qr_tok_gpt2_pattern), path, &bl.re)))
        return rc;
    if ((rc = qr_tok_push_pretok(t, &bl)))
        return rc;
    if ((rc = push_simple_dec(t, QR_DEC_BYTE_LEVEL)))
        return rc;
    int32_t bos = get_flag(g, "tokenizer.ggml.add_bos_token", llama3) ? t->bos_id : -1;
    int32_t eos = get_flag(g, "tokenizer.ggml.add_eos_token", false) ? t->eos_id : -1;
    return push_post(t, bos, eos);
}

/* bert: WordPiece. */
static int build_wordpiece(qr_tokenizer *t, const qr_gguf *g, const char *path, int32_t n)
{
    int rc;
    t->model.type = QR_TOK_MODEL_WORDPIECE;
    t->model.cont_prefix = dup_n("##", 2);
    if (!t->model.cont_prefix)
        return qr_fail(QR_ENOMEM, "%s: wordpiece", path);
    t->model.cont_prefix_len = 2;
    t->model.max_input_chars_per_word = 100;
    if (t->model.unk_id < 0)
        t->model.unk_id = qr_tok_vocab_get(t, "[UNK]", 5);
    qr_tok_norm bn = {.type = QR_NORM_BERT, .clean_text = true, .handle_chinese_chars = true,
                      .strip_accents = true, .lowercase = true};
    qr_tok_pretok bp = {.type = QR_PT_BERT};
    qr_tok_dec wd = {.type = QR_DEC_WORDPIECE, .cleanup = true};
    wd.str = dup_n("##", 2);
    wd.str_len = 2;
    if (!wd.str)
        return qr_fail(QR_ENOMEM, "%s: decoder", path);
    if ((rc = qr_tok_push_norm(t, &bn)) || (rc = qr_tok_push_pretok(t, &bp)) || (rc = qr_tok_push_dec(t, &wd)))
        return rc;
    int32_t cls = get_id(g, "tokenizer.ggml.cls_token_id", n);
    int32_t sep = get_id(g, "tokenizer.ggml.seperator_token_id", n);
    if (cls < 0)
        cls = qr_tok_vocab_get(t, "[CLS]", 5);
    if (sep < 0)
        sep = qr_tok_vocab_get(t, "[SEP]", 5);
    return push_post(t, cls, sep);
}

/* Maps a GGUF BERT piece back to WordPiece form into buf: "▁x" → "x", "[X]" → "[X]",
 * "x" → "##x". */
static int wordpiece_piece(qr_gguf_str s, bool phantom, qr_tok_buf *buf)
{
    buf->n = 0;
    if (!phantom || (s.len >= 2 && s.ptr[0] == '[' && s.ptr[s.len - 1] == ']'))
        return qr_tok_buf_put(buf, s.ptr, s.len);
    if (s.len >= 3 && memcmp(s.ptr, SPM_SPACE, 3) == 0)
        return qr_tok_buf_put(buf, s.ptr + 3, s.len - 3);
    int rc = qr_tok_buf_put(buf, "##", 2);
    return rc ? rc : qr_tok_buf_put(buf, s.ptr, s.len);
}

int qr_tokenizer_load_gguf(const qr_gguf *g, qr_tokenizer **out)
{
    int rc;
    const char *path = qr_gguf_path(g);
    qr_tokenizer *t = NULL;
    qr_tok_buf piece = {0};
    qr_gguf_str model;
    if ((rc = qr_gguf_get_str(g, KEY_MODEL, &model)))
        return qr_fail(rc, "%s: %s: missing or not a string (no vocabulary in this file)", path, KEY_MODEL);
    enum { SPM, BPE, WPM } kind;
    if (str_is(model, "llama"))
        kind = SPM;
    else if (str_is(model, "gpt2"))
        kind = BPE;
    else if (str_is(model, "bert"))
        kind = WPM;
    else
        return qr_fail(QR_EUNSUPPORTED, "%s: %s: tokenizer \"%.*s\" not supported (known: llama, gpt2, bert)", path,
                       KEY_MODEL, (int)(model.len > 64 ? 64 : model.len), model.ptr);

    qr_gguf_type et;
    uint64_t n64;
    if ((rc = qr_gguf_get_arr(g, KEY_TOKENS, &et, &n64)) || et != QR_GGUF_STRING)
        return qr_fail(rc ? rc : QR_EFORMAT, "%s: %s: missing or not a string array", path, KEY_TOKENS);
    if (n64 == 0 || n64 > QR_TOK_MAX_VOCAB)
        return qr_fail(QR_ELIMIT, "%s: %s: %llu tokens (limit %d)", path, KEY_TOKENS, (unsigned long long)n64,
                       QR_TOK_MAX_VOCAB);
    int32_t n = (int32_t)n64;
    bool have_types = false;
    uint64_t nt;
    if (qr_gguf_has(g, KEY_TYPES)) {
        if ((rc = qr_gguf_get_arr(g, KEY_TYPES, &et, &nt)) || nt != n64)
            return qr_fail(rc ? rc : QR_EFORMAT, "%s: %s: %llu types for %d tokens", path, KEY_TYPES,
                           (unsigned long long)nt, n);
        have_types = true;
    }

    if ((rc = qr_tok_create(&t)))
        return rc;
    if (!(t->source = dup_n(path, strlen(path)))) {
        rc = qr_fail(QR_ENOMEM, "%s: tokenizer", path);
        goto fail;
    }

    /* BERT vocabularies from llama.cpp's converter use the "▁" (phantom space) layout. */
    bool phantom = false;
    for (int32_t i = 0; kind == WPM && i < n && !phantom; i++) {
        qr_gguf_str s;
        if ((rc = qr_gguf_arr_str(g, KEY_TOKENS, (uint64_t)i, &s)))
            goto fail;
        phantom = s.len >= 3 && memcmp(s.ptr, SPM_SPACE, 3) == 0;
    }

    t->bos_id = get_id(g, "tokenizer.ggml.bos_token_id", n);
    t->eos_id = get_id(g, "tokenizer.ggml.eos_token_id", n);
    t->pad_id = get_id(g, "tokenizer.ggml.padding_token_id", n);
    t->model.unk_id = get_id(g, "tokenizer.ggml.unknown_token_id", n);

    for (int32_t i = 0; i < n; i++) {
        qr_gguf_str s;
        int64_t type = TT_NORMAL;
        if ((rc = qr_gguf_arr_str(g, KEY_TOKENS, (uint64_t)i, &s)))
            goto fail;
        if (have_types && (rc = qr_gguf_arr_i64(g, KEY_TYPES, (uint64_t)i, &type)))
            goto fail;
        if (kind == WPM) {
            if ((rc = wordpiece_piece(s, phantom, &piece)))
                goto fail;
        } else {
            piece.n = 0;
            if ((rc = qr_tok_buf_put(&piece, s.ptr, s.len)))
                goto fail;
        }
        /* An empty piece can never be produced by encoding; llama.cpp accepts such ids, so
         * they stay as ids without a piece. */
        if (piece.n == 0)
            continue;
        if ((rc = qr_tok_vocab_set(t, piece.p, piece.n, i)))
            goto fail;
        if (type == TT_CONTROL || type == TT_UNKNOWN || type == TT_USER_DEFINED) {
            qr_tok_added a = {.content = piece.p, .len = piece.n, .id = i, .special = type != TT_USER_DEFINED};
            if ((rc = qr_tok_added_add(t, &a)))
                goto fail;
        }
    }

    if (kind == SPM)
        rc = build_spm(t, g, path, n);
    else if (kind == BPE)
        rc = build_bpe(t, g, path);
    else
        rc = build_wordpiece(t, g, path, n);
    if (rc || (rc = qr_tok_finalize(t, path)))
        goto fail;
    qr_tok_buf_free(&piece);
    *out = t;
    return 0;
fail:
    qr_tok_buf_free(&piece);
    qr_tokenizer_free(t);
    return rc;
}
