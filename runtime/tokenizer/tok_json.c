/* tokenizer.json loader (jansson). The file format is Hugging Face `tokenizers`'
 * serialization: { "added_tokens": [...], "normalizer", "pre_tokenizer", "model",
 * "post_processor", "decoder" }, each component an object tagged by "type" (Sequence
 * nests a list). Supported components are listed in tok_internal.h; any other type is
 * QR_EUNSUPPORTED naming the component and the file. "truncation" and "padding" are
 * ignored (see tokenizer.c). Special ids (bos/eos/pad) come from a sibling
 * tokenizer_config.json when present, else from well-known token names. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/tokenizer/tok_internal.h"

typedef struct {
    qr_tokenizer *t;
    const char *path;
} ctx;

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static size_t jstrlen(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_length(v) : 0;
}

static bool jbool(const json_t *o, const char *key, bool dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* {"String": "..."} or {"Regex": "..."}: literal (str) or compiled regex (re). */
static int parse_pattern(ctx *c, const json_t *pat, const char *where, char **str, size_t *str_len,
                         pcre2_code **re)
{
    const json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) {
        *str_len = json_string_length(s);
        if (!(*str = dupn(json_string_value(s), *str_len)))
            return qr_fail(QR_ENOMEM, "%s: %s", c->path, where);
        return 0;
    }
    if (json_is_string(r)) {
        char w[256];
        snprintf(w, sizeof w, "%s: %s", c->path, where);
        return qr_tok_regex_compile(json_string_value(r), json_string_length(r), w, re);
    }
    return qr_fail(QR_EFORMAT, "%s: %s: pattern must be {\"String\": ...} or {\"Regex\": ...}", c->path, where);
}

static int unsupported(ctx *c, const char *what, const char *type)
{
    return qr_fail(QR_EUNSUPPORTED, "%s: %s type \"%s\" is not supported", c->path, what, type ? type : "(none)");
}

/* ---- normalizers ----------------------------------------------------------------------- */

static int parse_normalizer(ctx *c, const json_t *j)
{
    int rc;
    if (json_is_null(j) || !j)
        return 0;
    const char *type = jstr(j, "type");
    if (!type)
        return qr_fail(QR_EFORMAT, "%s: normalizer: missing \"type\"", c->path);
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "normalizers");
        size_t i;
        const json_t *e;
        if (!json_is_array(arr))
            return qr_fail(QR_EFORMAT, "%s: normalizer Sequence: missing \"normalizers\"", c->path);
        json_array_foreach(arr, i, e)
            if ((rc = parse_normalizer(c, e)))
                return rc;
        return 0;
    }
    qr_tok_norm n = {0};
    if (!strcmp(type, "BertNormalizer")) {
        n.type = QR_NORM_BERT;
        n.clean_text = jbool(j, "clean_text", true);
        n.handle_chinese_chars = jbool(j, "handle_chinese_chars", true);
        n.lowercase = jbool(j, "lowercase", true);
        const json_t *sa = json_object_get(j, "strip_accents");
        n.strip_accents = json_is_boolean(sa) ? json_is_true(sa) : n.lowercase; /* null follows lowercase */
    } else if (!strcmp(type, "NFC")) {
        n.type = QR_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        n.type = QR_NORM_NFD;
    } else if (!strcmp(type, "NFKC")) {
        n.type = QR_NORM_NFKC;
    } else if (!strcmp(type, "NFKD")) {
        n.type = QR_NORM_NFKD;
    } else if (!strcmp(type, "Lowercase")) {
        n.type = QR_NORM_LOWERCASE;
    } else if (!strcmp(type, "StripAccents")) {
        n.type = QR_NORM_STRIP_ACCENTS;
    } else if (!strcmp(type, "Strip")) {
        n.type = QR_NORM_STRIP;
        n.strip_left = jbool(j, "strip_left", true);
        n.strip_right = jbool(j, "strip_right", true);
    } else if (!strcmp(type, "Prepend")) {
        n.type = QR_NORM_PREPEND;
        const char *p = jstr(j, "prepend");
        if (!p)
            return qr_fail(QR_EFORMAT, "%s: normalizer Prepend: missing \"prepend\"", c->path);
        n.str_len = jstrlen(j, "prepend");
        if (!(n.str = dupn(p, n.str_len)))
            return qr_fail(QR_ENOMEM, "%s: normalizer", c->path);
    } else if (!strcmp(type, "Replace")) {
        n.type = QR_NORM_REPLACE;
        const char *content = jstr(j, "content");
        if (!content)
            return qr_fail(QR_EFORMAT, "%s: normalizer Replace: missing \"content\"", c->path);
        n.content_len = jstrlen(j, "content");
        if (!(n.content = dupn(content, n.content_len)))
            return qr_fail(QR_ENOMEM, "%s: normalizer", c->path);
        if ((rc = parse_pattern(c, json_object_get(j, "pattern"), "normalizer Replace", &n.str, &n.str_len, &n.re))) {
            free(n.content);
            return rc;
        }
    } else {
        return unsupported(c, "normalizer", type);
    }
    return qr_tok_push_norm(c->t, &n);
}

/* ---- pre-tokenizers -------------------------------------------------------------------- */

static int parse_behavior(ctx *c, const json_t *j, qr_tok_split_behavior dflt, qr_tok_split_behavior *out)
{
    const char *b = jstr(j, "behavior");
    if (!b) {
        *out = dflt;
        return 0;
    }
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                        "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(b, names[i])) {
            *out = (qr_tok_split_behavior)i;
            return 0;
        }
    return qr_fail(QR_EUNSUPPORTED, "%s: pre_tokenizer: split behavior \"%s\" is not supported", c->path, b);
}

static int parse_prepend_scheme(ctx *c, const json_t *j, qr_tok_prepend_scheme *out)
{
    const char *s = jstr(j, "prepend_scheme");
    if (s) {
        if (!strcmp(s, "always"))
            *out = QR_PREPEND_ALWAYS;
        else if (!strcmp(s, "first"))
            *out = QR_PREPEND_FIRST;
        else if (!strcmp(s, "never"))
            *out = QR_PREPEND_NEVER;
        else
            return qr_fail(QR_EUNSUPPORTED, "%s: Metaspace: prepend_scheme \"%s\" is not supported", c->path, s);
        return 0;
    }
    /* Older files: add_prefix_space true → always. */
    *out = jbool(j, "add_prefix_space", true) ? QR_PREPEND_ALWAYS : QR_PREPEND_NEVER;
    return 0;
}

static int dup_replacement(ctx *c, const json_t *j, char **str, size_t *len)
{
    const char *r = jstr(j, "replacement");
    if (!r) {
        r = "\xE2\x96\x81"; /* U+2581 */
        *len = 3;
    } else {
        *len = jstrlen(j, "replacement");
    }
    if (!(*str = dupn(r, *len)))
        return qr_fail(QR_ENOMEM, "%s: Metaspace", c->path);
    return 0;
}

static int parse_pretok(ctx *c, const json_t *j)
{
    int rc;
    if (json_is_null(j) || !j)
        return 0;
    const char *type = jstr(j, "type");
    if (!type)
        return qr_fail(QR_EFORMAT, "%s: pre_tokenizer: missing \"type\"", c->path);
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "pretokenizers");
        size_t i;
        const json_t *e;
        if (!json_is_array(arr))
            return qr_fail(QR_EFORMAT, "%s: pre_tokenizer Sequence: missing \"pretokenizers\"", c->path);
        json_array_foreach(arr, i, e)
            if ((rc = parse_pretok(c, e)))
                return rc;
        return 0;
    }
    qr_tok_pretok p = {0};
    if (!strcmp(type, "BertPreTokenizer")) {
        p.type = QR_PT_BERT;
    } else if (!strcmp(type, "Whitespace")) {
        p.type = QR_PT_WHITESPACE;
        char w[256];
        snprintf(w, sizeof w, "%s: pre_tokenizer Whitespace", c->path);
        if ((rc = qr_tok_regex_compile_whitespace(w, &p.re)))
            return rc;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p.type = QR_PT_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        p.type = QR_PT_PUNCTUATION;
        if ((rc = parse_behavior(c, j, QR_SPLIT_ISOLATED, &p.behavior)))
            return rc;
    } else if (!strcmp(type, "Digits")) {
        p.type = QR_PT_DIGITS;
        p.individual_digits = jbool(j, "individual_digits", false);
    } else if (!strcmp(type, "Split")) {
        p.type = QR_PT_SPLIT;
        p.invert = jbool(j, "invert", false);
        if ((rc = parse_behavior(c, j, QR_SPLIT_ISOLATED, &p.behavior)) ||
            (rc = parse_pattern(c, json_object_get(j, "pattern"), "pre_tokenizer Split", &p.str, &p.str_len, &p.re)))
            return rc;
    } else if (!strcmp(type, "ByteLevel")) {
        p.type = QR_PT_BYTE_LEVEL;
        p.add_prefix_space = jbool(j, "add_prefix_space", true);
        p.use_regex = jbool(j, "use_regex", true);
        if (p.use_regex) {
            char w[256];
            snprintf(w, sizeof w, "%s: pre_tokenizer ByteLevel", c->path);
            if ((rc = qr_tok_regex_compile(qr_tok_gpt2_pattern, strlen(qr_tok_gpt2_pattern), w, &p.re)))
                return rc;
        }
    } else if (!strcmp(type, "Metaspace")) {
        p.type = QR_PT_METASPACE;
        p.split = jbool(j, "split", true);
        if ((rc = parse_prepend_scheme(c, j, &p.prepend_scheme)) || (rc = dup_replacement(c, j, &p.str, &p.str_len)))
            return rc;
    } else {
        return unsupported(c, "pre_tokenizer", type);
    }
    return qr_tok_push_pretok(c->t, &p);
}

/* ---- model ----------------------------------------------------------------------------- */

static int parse_model(ctx *c, const json_t *m)
{
    int rc;
    qr_tokenizer *t = c->t;
    if (!json_is_object(m))
        return qr_fail(QR_EFORMAT, "%s: missing \"model\"", c->path);
    const char *type = jstr(m, "type");
    const json_t *merges = json_object_get(m, "merges");
    if (!type)
        type = merges ? "BPE" : json_object_get(m, "max_input_chars_per_word") ? "WordPiece" : "(none)";
    const json_t *vocab = json_object_get(m, "vocab");
    bool bpe = !strcmp(type, "BPE"), wp = !strcmp(type, "WordPiece"), wl = !strcmp(type, "WordLevel");
    if (!bpe && !wp && !wl)
        return unsupported(c, "model", type);
    if (!json_is_object(vocab))
        return qr_fail(QR_EFORMAT, "%s: model.vocab must be an object", c->path);
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val))
            return qr_fail(QR_EFORMAT, "%s: model.vocab[\"%s\"]: id must be an integer", c->path, key);
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= QR_TOK_MAX_VOCAB)
            return qr_fail(QR_EFORMAT, "%s: model.vocab[\"%s\"]: id %lld out of range", c->path, key, (long long)id);
        if ((rc = qr_tok_vocab_set(t, key, strlen(key), (int32_t)id)))
            return rc;
    }
    const char *unk = jstr(m, "unk_token");
    const char *pre = jstr(m, "continuing_subword_prefix");
    if (wl) {
        t->model.type = QR_TOK_MODEL_WORDLEVEL;
        if (!unk)
            unk = "<unk>";
        t->model.unk_id = qr_tok_vocab_get(t, unk, strlen(unk));
        if (t->model.unk_id < 0)
            return qr_fail(QR_EFORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary", c->path, unk);
        return 0;
    }
    if (wp) {
        t->model.type = QR_TOK_MODEL_WORDPIECE;
        if (!unk)
            unk = "[UNK]";
        if (!pre)
            pre = "##";
        const json_t *mx = json_object_get(m, "max_input_chars_per_word");
        if (json_is_integer(mx))
            t->model.max_input_chars_per_word = (int)json_integer_value(mx);
        t->model.unk_id = qr_tok_vocab_get(t, unk, strlen(unk));
        if (t->model.unk_id < 0)
            return qr_fail(QR_EFORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary", c->path, unk);
    } else {
        t->model.type = QR_TOK_MODEL_BPE;
        const json_t *dropout = json_object_get(m, "dropout");
        if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
            return qr_fail(QR_EUNSUPPORTED, "%s: model BPE: dropout is not supported (not deterministic)", c->path);
        t->model.fuse_unk = jbool(m, "fuse_unk", false);
        t->model.byte_fallback = jbool(m, "byte_fallback", false);
        t->model.ignore_merges = jbool(m, "ignore_merges", false);
        if (unk) {
            t->model.unk_id = qr_tok_vocab_get(t, unk, strlen(unk));
            if (t->model.unk_id < 0)
                QR_WARN("%s: model.unk_token \"%s\" is not in the vocabulary; unknown characters are dropped",
                        c->path, unk);
        }
        const char *suf = jstr(m, "end_of_word_suffix");
        if (suf && *suf) {
            t->model.eow_suffix_len = strlen(suf);
            if (!(t->model.eow_suffix = dupn(suf, t->model.eow_suffix_len)))
                return qr_fail(QR_ENOMEM, "%s: model", c->path);
        }
        if (pre && *pre) { /* needed by qr_tok_merge_add */
            t->model.cont_prefix_len = strlen(pre);
            if (!(t->model.cont_prefix = dupn(pre, t->model.cont_prefix_len)))
                return qr_fail(QR_ENOMEM, "%s: model", c->path);
        }
        if (!json_is_array(merges))
            return qr_fail(QR_EFORMAT, "%s: model.merges must be an array", c->path);
        size_t i;
        const json_t *e;
        char where[128];
        snprintf(where, sizeof where, "%s: model.merges", c->path);
        json_array_foreach(merges, i, e) {
            if (json_is_string(e)) {
                const char *s = json_string_value(e);
                size_t n = json_string_length(e);
                const char *sp = memchr(s, ' ', n);
                if (!sp)
                    return qr_fail(QR_EFORMAT, "%s: model.merges[%zu]: \"%s\" is not \"a b\"", c->path, i, s);
                rc = qr_tok_merge_add(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp - s) - 1, where);
            } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                       json_is_string(json_array_get(e, 1))) {
                const json_t *a = json_array_get(e, 0), *b = json_array_get(e, 1);
                rc = qr_tok_merge_add(t, json_string_value(a), json_string_length(a), json_string_value(b),
                                      json_string_length(b), where);
            } else {
                rc = qr_fail(QR_EFORMAT, "%s: model.merges[%zu]: expected \"a b\" or [a, b]", c->path, i);
            }
            if (rc)
                return rc;
        }
    }
    if (pre && *pre && !t->model.cont_prefix) {
        t->model.cont_prefix_len = strlen(pre);
        if (!(t->model.cont_prefix = dupn(pre, t->model.cont_prefix_len)))
            return qr_fail(QR_ENOMEM, "%s: model", c->path);
    }
    return 0;
}

/* ---- post-processor -------------------------------------------------------------------- */

typedef struct { qr_tok_post_item *v; size_t n; } items;

static void items_free(items *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].ids);
    free(it->v);
    it->v = NULL;
    it->n = 0;
}

static int items_add(items *it, bool is_seq, const int32_t *ids, size_t n)
{
    qr_tok_post_item *v = realloc(it->v, (it->n + 1) * sizeof *v);
    if (!v)
        return qr_fail(QR_ENOMEM, "tokenizer: post-processor");
    it->v = v;
    qr_tok_post_item x = {is_seq, NULL, n};
    if (n) {
        if (!(x.ids = malloc(n * sizeof *ids)))
            return qr_fail(QR_ENOMEM, "tokenizer: post-processor");
        memcpy(x.ids, ids, n * sizeof *ids);
    }
    it->v[it->n++] = x;
    return 0;
}

/* [token, id] pair of Bert/RobertaProcessing. */
static int pair_id(ctx *c, const json_t *j, const char *key, int32_t *id)
{
    const json_t *p = json_object_get(j, key);
    if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_integer(json_array_get(p, 1)))
        return qr_fail(QR_EFORMAT, "%s: post_processor.%s must be [token, id]", c->path, key);
    *id = (int32_t)json_integer_value(json_array_get(p, 1));
    return 0;
}

/* One processor's single-sequence template into *out (empty = leaves ids unchanged). */
static int parse_post_one(ctx *c, const json_t *j, items *out)
{
    int rc;
    const char *type = jstr(j, "type");
    if (!type)
        return qr_fail(QR_EFORMAT, "%s: post_processor: missing \"type\"", c->path);
    if (!strcmp(type, "ByteLevel"))
        return 0;
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        if ((rc = pair_id(c, j, "cls", &cls)) || (rc = pair_id(c, j, "sep", &sep)) ||
            (rc = items_add(out, false, &cls, 1)) || (rc = items_add(out, true, NULL, 0)) ||
            (rc = items_add(out, false, &sep, 1)))
            return rc;
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(j, "single"), *sp = json_object_get(j, "special_tokens");
        size_t i;
        const json_t *e;
        if (!json_is_array(single))
            return qr_fail(QR_EFORMAT, "%s: post_processor TemplateProcessing: missing \"single\"", c->path);
        json_array_foreach(single, i, e) {
            const json_t *st = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
            if (sq) {
                if ((rc = items_add(out, true, NULL, 0)))
                    return rc;
            } else if (st) {
                const char *name = jstr(st, "id");
                const json_t *spec = name ? json_object_get(sp, name) : NULL;
                const json_t *ids = json_object_get(spec, "ids");
                if (!json_is_array(ids))
                    return qr_fail(QR_EFORMAT, "%s: post_processor: special token \"%s\" has no ids", c->path,
                                   name ? name : "?");
                size_t n = json_array_size(ids), k;
                int32_t *v = malloc((n ? n : 1) * sizeof *v);
                if (!v)
                    return qr_fail(QR_ENOMEM, "%s: post_processor", c->path);
                const json_t *x;
                json_array_foreach(ids, k, x) v[k] = (int32_t)json_integer_value(x);
                rc = items_add(out, false, v, n);
                free(v);
                if (rc)
                    return rc;
            } else {
                return qr_fail(QR_EFORMAT, "%s: post_processor TemplateProcessing: bad item %zu", c->path, i);
            }
        }
        return 0;
    }
    return unsupported(c, "post_processor", type);
}

/* Composes processors in order: each one's sequence slot receives the previous output. */
static int parse_post(ctx *c, const json_t *j, items *cur)
{
    int rc;
    if (!j || json_is_null(j))
        return 0;
    const char *type = jstr(j, "type");
    if (type && !strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "processors");
        size_t i;
        const json_t *e;
        if (!json_is_array(arr))
            return qr_fail(QR_EFORMAT, "%s: post_processor Sequence: missing \"processors\"", c->path);
        json_array_foreach(arr, i, e)
            if ((rc = parse_post(c, e, cur)))
                return rc;
        return 0;
    }
    items p = {0}, next = {0};
    if ((rc = parse_post_one(c, j, &p)))
        goto fail;
    if (p.n == 0)
        goto fail; /* identity */
    for (size_t i = 0; i < p.n && !rc; i++) {
        if (p.v[i].is_seq) {
            for (size_t k = 0; k < cur->n && !rc; k++)
                rc = items_add(&next, cur->v[k].is_seq, cur->v[k].ids, cur->v[k].n_ids);
        } else {
            rc = items_add(&next, false, p.v[i].ids, p.v[i].n_ids);
        }
    }
    if (!rc) {
        items_free(cur);
        *cur = next;
        next = (items){0};
    }
fail:
    items_free(&p);
    items_free(&next);
    return rc;
}

/* ---- decoders -------------------------------------------------------------------------- */

static int parse_decoder(ctx *c, const json_t *j)
{
    int rc;
    if (!j || json_is_null(j))
        return 0;
    const char *type = jstr(j, "type");
    if (!type)
        return qr_fail(QR_EFORMAT, "%s: decoder: missing \"type\"", c->path);
    if (!strcmp(type, "Sequence")) {
        const json_t *arr = json_object_get(j, "decoders");
        size_t i;
        const json_t *e;
        if (!json_is_array(arr))
            return qr_fail(QR_EFORMAT, "%s: decoder Sequence: missing \"decoders\"", c->path);
        c->t->has_decoder = true;
        json_array_foreach(arr, i, e)
            if ((rc = parse_decoder(c, e)))
                return rc;
        return 0;
    }
    qr_tok_dec d = {0};
    if (!strcmp(type, "ByteLevel")) {
        d.type = QR_DEC_BYTE_LEVEL;
    } else if (!strcmp(type, "WordPiece")) {
        d.type = QR_DEC_WORDPIECE;
        const char *p = jstr(j, "prefix");
        if (!p)
            p = "##";
        d.str_len = strlen(p);
        d.cleanup = jbool(j, "cleanup", true);
        if (!(d.str = dupn(p, d.str_len)))
            return qr_fail(QR_ENOMEM, "%s: decoder", c->path);
    } else if (!strcmp(type, "Metaspace")) {
        d.type = QR_DEC_METASPACE;
        if ((rc = parse_prepend_scheme(c, j, &d.prepend_scheme)) || (rc = dup_replacement(c, j, &d.str, &d.str_len)))
            return rc;
    } else if (!strcmp(type, "BPEDecoder")) {
        d.type = QR_DEC_BPE;
        const char *suf = jstr(j, "suffix");
        if (!suf)
            suf = "</w>";
        d.str_len = strlen(suf);
        if (!(d.str = dupn(suf, d.str_len)))
            return qr_fail(QR_ENOMEM, "%s: decoder", c->path);
    } else if (!strcmp(type, "CTC")) {
        d.type = QR_DEC_CTC;
        const char *pad = jstr(j, "pad_token"), *wd = jstr(j, "word_delimiter_token");
        pad = pad ? pad : "<pad>";
        wd = wd ? wd : "|";
        d.str_len = strlen(pad);
        d.content_len = strlen(wd);
        d.cleanup = jbool(j, "cleanup", true);
        if (!(d.str = dupn(pad, d.str_len)) || !(d.content = dupn(wd, d.content_len))) {
            free(d.str);
            return qr_fail(QR_ENOMEM, "%s: decoder", c->path);
        }
    } else if (!strcmp(type, "ByteFallback")) {
        d.type = QR_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d.type = QR_DEC_FUSE;
    } else if (!strcmp(type, "Strip")) {
        d.type = QR_DEC_STRIP;
        const char *s = jstr(j, "content");
        if (!s)
            return qr_fail(QR_EFORMAT, "%s: decoder Strip: missing \"content\"", c->path);
        d.str_len = jstrlen(j, "content");
        d.strip_start = (int)json_integer_value(json_object_get(j, "start"));
        d.strip_stop = (int)json_integer_value(json_object_get(j, "stop"));
        if (!(d.str = dupn(s, d.str_len)))
            return qr_fail(QR_ENOMEM, "%s: decoder", c->path);
    } else if (!strcmp(type, "Replace")) {
        d.type = QR_DEC_REPLACE;
        const char *content = jstr(j, "content");
        if (!content)
            return qr_fail(QR_EFORMAT, "%s: decoder Replace: missing \"content\"", c->path);
        d.content_len = jstrlen(j, "content");
        if (!(d.content = dupn(content, d.content_len)))
            return qr_fail(QR_ENOMEM, "%s: decoder", c->path);
        if ((rc = parse_pattern(c, json_object_get(j, "pattern"), "decoder Replace", &d.str, &d.str_len, &d.re))) {
            free(d.content);
            return rc;
        }
    } else {
        return unsupported(c, "decoder", type);
    }
    return qr_tok_push_dec(c->t, &d);
}

/* ---- special ids ----------------------------------------------------------------------- */

static int32_t find_name(const qr_tokenizer *t, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = qr_tokenizer_find(t, *names);
        if (id >= 0)
            return id;
    }
    return -1;
}

/* tokenizer_config.json's "bos_token" etc.: a string or {"content": ...}; null = none. */
static void config_token(const qr_tokenizer *t, const json_t *cfg, const char *key, int32_t *id)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v)
        return;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    *id = json_is_string(v) ? qr_tokenizer_find(t, json_string_value(v)) : -1;
}

static void special_ids(qr_tokenizer *t, const char *path, const json_t *root)
{
    static const char *const bos[] = {"<s>", "<|begin_of_text|>", "[CLS]", "<bos>", "<|startoftext|>", NULL};
    static const char *const eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "[SEP]", "<eos>", NULL};
    static const char *const pad[] = {"[PAD]", "<pad>", "<|pad|>", NULL};
    t->bos_id = find_name(t, bos);
    t->eos_id = find_name(t, eos);
    t->pad_id = find_name(t, pad);
    const json_t *padding = json_object_get(root, "padding");
    if (json_is_integer(json_object_get(padding, "pad_id")))
        t->pad_id = (int32_t)json_integer_value(json_object_get(padding, "pad_id"));

    /* A sibling tokenizer_config.json, as transformers reads it, overrides the guesses. */
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    char *cp = malloc(dir + sizeof "tokenizer_config.json");
    if (!cp)
        return;
    memcpy(cp, path, dir);
    memcpy(cp + dir, "tokenizer_config.json", sizeof "tokenizer_config.json");
    json_error_t err;
    json_t *cfg = json_load_file(cp, 0, &err);
    free(cp);
    if (!cfg)
        return;
    config_token(t, cfg, "bos_token", &t->bos_id);
    config_token(t, cfg, "eos_token", &t->eos_id);
    config_token(t, cfg, "pad_token", &t->pad_id);
    json_decref(cfg);
}

/* ---- entry ----------------------------------------------------------------------------- */

/* Builds a tokenizer from a parsed tokenizer.json object (root is consumed). */
static int load_root(json_t *root, const char *path, qr_tokenizer **out)
{
    int rc;
    qr_tokenizer *t = NULL;
    items post = {0};
    if (!json_is_object(root)) {
        rc = qr_fail(QR_EFORMAT, "%s: top level is not an object", path);
        goto fail;
    }
    if ((rc = qr_tok_create(&t)))
        goto fail;
    if (!(t->source = dupn(path, strlen(path)))) {
        rc = qr_fail(QR_ENOMEM, "%s: tokenizer", path);
        goto fail;
    }
    ctx c = {t, path};
    if ((rc = parse_model(&c, json_object_get(root, "model"))))
        goto fail;
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added)) {
        rc = qr_fail(QR_EFORMAT, "%s: added_tokens must be an array", path);
        goto fail;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(added, i, e) {
        const char *content = jstr(e, "content");
        const json_t *id = json_object_get(e, "id");
        if (!content || !json_is_integer(id)) {
            rc = qr_fail(QR_EFORMAT, "%s: added_tokens[%zu]: needs \"id\" and \"content\"", path, i);
            goto fail;
        }
        bool special = jbool(e, "special", false);
        qr_tok_added a = {(char *)content, jstrlen(e, "content"), (int32_t)json_integer_value(id), special,
                          jbool(e, "lstrip", false), jbool(e, "rstrip", false), jbool(e, "single_word", false),
                          jbool(e, "normalized", !special)};
        /* HF gives an added token that is already in the model vocabulary the model's id,
         * whatever id the file states. */
        int32_t vid = qr_tok_vocab_get(t, a.content, a.len);
        if (vid >= 0)
            a.id = vid;
        if ((rc = qr_tok_added_add(t, &a)))
            goto fail;
    }
    if ((rc = parse_normalizer(&c, json_object_get(root, "normalizer"))) ||
        (rc = parse_pretok(&c, json_object_get(root, "pre_tokenizer"))) ||
        (rc = parse_decoder(&c, json_object_get(root, "decoder"))))
        goto fail;
    if ((rc = items_add(&post, true, NULL, 0)) || (rc = parse_post(&c, json_object_get(root, "post_processor"), &post)))
        goto fail;
    for (size_t k = 0; k < post.n; k++)
        if ((rc = qr_tok_push_post(t, post.v[k].is_seq, post.v[k].ids, post.v[k].n_ids)))
            goto fail;
    if ((rc = qr_tok_finalize(t, path)))
        goto fail;
    special_ids(t, path, root);
    json_decref(root);
    items_free(&post);
    *out = t;
    return 0;
fail:
    json_decref(root);
    items_free(&post);
    qr_tokenizer_free(t);
    return rc;
}

int qr_tokenizer_load_json(const char *path, qr_tokenizer **out)
{
    json_error_t err;
    if (!path || !out)
        return qr_fail(QR_EINVAL, "qr_tokenizer_load_json: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return qr_fail(QR_ENOTFOUND, "%s: cannot open tokenizer file", path);
    json_t *root = json_loadf(f, 0, &err);
    fclose(f);
    if (!root)
        return qr_fail(QR_EFORMAT, "%s: line %d: %s", path, err.line, err.text);
    return load_root(root, path, out);
}

/* ---- vocab.txt (BERT-family directories without tokenizer.json) ------------------------
 * The tokenizer transformers builds from vocab.txt + tokenizer_config.json (its BERT
 * "slow → fast" conversion): BertNormalizer(clean_text, handle_chinese_chars =
 * tokenize_chinese_chars, strip_accents, lowercase = do_lower_case), BertPreTokenizer,
 * WordPiece("##", max 100 chars), template cls $A sep, WordPiece decoder, and the
 * special tokens (unk, sep, pad, cls, mask) as special added tokens. Line i of vocab.txt
 * (without its '\n') is token i; a repeated token keeps its last line. */

static const char *cfg_token(const json_t *cfg, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (json_is_string(v))
        return json_string_value(v);
    return v && json_is_null(v) ? NULL : dflt;
}

int qr_tok_load_vocab_txt(const char *dir, qr_tokenizer **out)
{
    int rc = 0;
    size_t dl = strlen(dir);
    char *vpath = malloc(dl + sizeof "/tokenizer_config.json");
    json_t *cfg = NULL, *root = json_object(), *vocab = json_object();
    char *line = NULL;
    size_t cap = 0;
    FILE *f = NULL;
    if (!vpath || !root || !vocab) {
        rc = qr_fail(QR_ENOMEM, "%s: vocab.txt", dir);
        goto fail;
    }
    memcpy(vpath, dir, dl);
    memcpy(vpath + dl, "/tokenizer_config.json", sizeof "/tokenizer_config.json");
    json_error_t err;
    cfg = json_load_file(vpath, 0, &err); /* optional */
    memcpy(vpath + dl, "/vocab.txt", sizeof "/vocab.txt");
    if (!(f = fopen(vpath, "rb"))) {
        rc = qr_fail(QR_ENOTFOUND, "%s: no tokenizer.json or vocab.txt in the model directory", dir);
        goto fail;
    }
    ssize_t n;
    json_int_t id = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            n--;
        json_t *k = json_integer(id++);
        char *piece = dupn(line, (size_t)n);
        if (!k || !piece || json_object_setn_new(vocab, piece, (size_t)n, k) != 0) {
            free(piece);
            rc = qr_fail(QR_EFORMAT, "%s: line %lld: not valid UTF-8", vpath, (long long)id);
            goto fail;
        }
        free(piece);
        if (id > QR_TOK_MAX_VOCAB) {
            rc = qr_fail(QR_ELIMIT, "%s: more than %d tokens", vpath, QR_TOK_MAX_VOCAB);
            goto fail;
        }
    }
    const char *unk = cfg_token(cfg, "unk_token", "[UNK]"), *sep = cfg_token(cfg, "sep_token", "[SEP]");
    const char *cls = cfg_token(cfg, "cls_token", "[CLS]"), *pad = cfg_token(cfg, "pad_token", "[PAD]");
    const char *mask = cfg_token(cfg, "mask_token", "[MASK]");
    const json_t *lc = json_object_get(cfg, "do_lower_case"), *sa = json_object_get(cfg, "strip_accents");
    const json_t *cjk = json_object_get(cfg, "tokenize_chinese_chars");
    json_t *norm = json_pack("{s:s, s:b, s:b, s:O, s:b}", "type", "BertNormalizer", "clean_text", 1,
                             "handle_chinese_chars", cjk ? json_is_true(cjk) : 1, "strip_accents",
                             json_is_boolean(sa) ? sa : json_null(), "lowercase", lc ? json_is_true(lc) : 1);
    json_t *model = json_pack("{s:s, s:s, s:s, s:i, s:O}", "type", "WordPiece", "unk_token", unk ? unk : "[UNK]",
                              "continuing_subword_prefix", "##", "max_input_chars_per_word", 100, "vocab", vocab);
    json_t *added = json_array();
    const char *const specials[] = {pad, unk, cls, sep, mask};
    for (size_t i = 0; i < 5 && added; i++) {
        const json_t *vid = specials[i] ? json_object_get(vocab, specials[i]) : NULL;
        if (vid)
            json_array_append_new(added, json_pack("{s:O, s:s, s:b, s:b, s:b, s:b, s:b}", "id", vid, "content",
                                                   specials[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                   "normalized", 0, "special", 1));
    }
    json_t *post = json_null();
    const json_t *cls_id = cls ? json_object_get(vocab, cls) : NULL, *sep_id = sep ? json_object_get(vocab, sep) : NULL;
    if (cls_id && sep_id)
        post = json_pack("{s:s, s:[{s:{s:s}}, {s:{s:s}}, {s:{s:s}}], s:{s:{s:[O]}, s:{s:[O]}}}", "type",
                         "TemplateProcessing", "single", "SpecialToken", "id", cls, "Sequence", "id", "A",
                         "SpecialToken", "id", sep, "special_tokens", cls, "ids", cls_id, sep, "ids", sep_id);
    json_t *dec = json_pack("{s:s, s:s, s:b}", "type", "WordPiece", "prefix", "##", "cleanup", 1);
    if (!norm || !model || !added || !post || !dec ||
        json_object_set_new(root, "normalizer", norm) || json_object_set_new(root, "model", model) ||
        json_object_set_new(root, "added_tokens", added) || json_object_set_new(root, "post_processor", post) ||
        json_object_set_new(root, "decoder", dec) ||
        json_object_set_new(root, "pre_tokenizer", json_pack("{s:s}", "type", "BertPreTokenizer"))) {
        rc = qr_fail(QR_ENOMEM, "%s: vocab.txt", dir);
        goto fail;
    }
    rc = load_root(root, vpath, out); /* consumes root; special ids from the sibling config */
    root = NULL;
fail:
    if (f)
        fclose(f);
    free(line);
    free(vpath);
    json_decref(cfg);
    json_decref(vocab);
    json_decref(root);
    return rc;
}
