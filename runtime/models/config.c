/* Model configuration from Hugging Face files or GGUF metadata.
 *
 * HF directory: config.json (model_type bert | llama | mistral | qwen2), plus
 * the sentence-transformers files (modules.json -> the Pooling module's
 * config.json and a Normalize module; sentence_bert_config.json for
 * max_seq_length) and generation_config.json (bos/eos, which override the
 * ones of config.json as transformers' generate() does).
 * Keys absent from config.json take the defaults of the transformers config
 * classes (e.g. LlamaConfig rms_norm_eps 1e-6, rope_theta 10000); the shape
 * keys (hidden_size, num_hidden_layers, num_attention_heads,
 * intermediate_size, vocab_size) are required.
 *
 * GGUF: general.architecture (llama | qwen2 | bert) and <arch>.* keys as
 * written by llama.cpp's converter. */
#include "runtime/models/config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/log.h"

static void config_defaults(qr_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->bos_id = -1;
    c->rope_theta = 10000.0f;
    c->rope_scaling = QR_ROPE_NONE;
    c->rope_factor = 1.0f;
    c->type_vocab_size = 2;
    c->pooling = QR_POOL_MEAN;
}

/* ---------------------------------------------------------------- JSON ---- */

static int load_json(const char *path, json_t **out)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) {
        struct stat st;
        if (stat(path, &st) != 0)
            return qr_fail(QR_ENOTFOUND, "%s: %s", path, strerror(errno));
        return qr_fail(QR_EFORMAT, "%s: line %d: %s", path, err.line, err.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return qr_fail(QR_EFORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    return QR_OK;
}

/* Integer key: required ones fail when missing; a null value counts as missing. */
static int j_int(const json_t *o, const char *key, bool required, int32_t dflt, const char *file, int32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            return qr_fail(QR_EFORMAT, "%s: missing required key '%s'", file, key);
        *out = dflt;
        return QR_OK;
    }
    if (!json_is_integer(v))
        return qr_fail(QR_EFORMAT, "%s: key '%s' must be an integer", file, key);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > INT32_MAX)
        return qr_fail(QR_EFORMAT, "%s: key '%s' = %lld is out of range", file, key, (long long)x);
    *out = (int32_t)x;
    return QR_OK;
}

static int j_num(const json_t *o, const char *key, double dflt, const char *file, float *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = (float)dflt;
        return QR_OK;
    }
    if (!json_is_number(v))
        return qr_fail(QR_EFORMAT, "%s: key '%s' must be a number", file, key);
    *out = (float)json_number_value(v);
    return QR_OK;
}

static int j_bool(const json_t *o, const char *key, bool dflt, const char *file, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return QR_OK;
    }
    if (!json_is_boolean(v))
        return qr_fail(QR_EFORMAT, "%s: key '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return QR_OK;
}

/* eos_token_id: an integer or a list of integers. Replaces c's list when present. */
static int j_eos(const json_t *o, const char *file, qr_model_config *c)
{
    json_t *v = json_object_get(o, "eos_token_id");
    if (!v || json_is_null(v))
        return QR_OK;
    int32_t ids[QR_MAX_EOS];
    int n = 0;
    if (json_is_integer(v)) {
        ids[n++] = (int32_t)json_integer_value(v);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e))
                return qr_fail(QR_EFORMAT, "%s: eos_token_id[%zu] must be an integer", file, i);
            if (n == QR_MAX_EOS)
                return qr_fail(QR_ELIMIT, "%s: eos_token_id: more than %d ids", file, QR_MAX_EOS);
            ids[n++] = (int32_t)json_integer_value(e);
        }
    } else {
        return qr_fail(QR_EFORMAT, "%s: eos_token_id must be an integer or a list", file);
    }
    memcpy(c->eos_ids, ids, sizeof ids);
    c->n_eos = n;
    return QR_OK;
}

static int j_bos(const json_t *o, const char *file, qr_model_config *c)
{
    json_t *v = json_object_get(o, "bos_token_id");
    if (!v || json_is_null(v))
        return QR_OK;
    if (!json_is_integer(v))
        return qr_fail(QR_EFORMAT, "%s: bos_token_id must be an integer", file);
    c->bos_id = (int32_t)json_integer_value(v);
    return QR_OK;
}

static int parse_rope_scaling(const json_t *cfg, const char *file, qr_model_config *c)
{
    json_t *rs = json_object_get(cfg, "rope_scaling");
    if (!rs || json_is_null(rs))
        return QR_OK;
    if (!json_is_object(rs))
        return qr_fail(QR_EFORMAT, "%s: rope_scaling must be an object or null", file);
    json_t *t = json_object_get(rs, "rope_type");
    if (!t)
        t = json_object_get(rs, "type"); /* older configs */
    if (!json_is_string(t))
        return qr_fail(QR_EFORMAT, "%s: rope_scaling: missing required key 'rope_type'", file);
    const char *type = json_string_value(t);
    int rc;
    if (strcmp(type, "default") == 0)
        return QR_OK;
    if (strcmp(type, "linear") == 0) {
        c->rope_scaling = QR_ROPE_LINEAR;
        if ((rc = j_num(rs, "factor", 1.0, file, &c->rope_factor)))
            return rc;
    } else if (strcmp(type, "llama3") == 0) {
        c->rope_scaling = QR_ROPE_LLAMA3;
        if ((rc = j_num(rs, "factor", 8.0, file, &c->rope_factor)) ||
            (rc = j_num(rs, "low_freq_factor", 1.0, file, &c->rope_low_freq_factor)) ||
            (rc = j_num(rs, "high_freq_factor", 4.0, file, &c->rope_high_freq_factor)) ||
            (rc = j_int(rs, "original_max_position_embeddings", true, 0, file, &c->rope_orig_max_pos)))
            return rc;
        if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
            return qr_fail(QR_EFORMAT, "%s: rope_scaling: high_freq_factor must exceed low_freq_factor", file);
    } else {
        return qr_fail(QR_EUNSUPPORTED, "%s: rope_scaling type '%s' is not supported (default, linear, llama3)",
                       file, type);
    }
    if (!(c->rope_factor > 0))
        return qr_fail(QR_EFORMAT, "%s: rope_scaling: factor must be positive", file);
    return QR_OK;
}

static int check_shapes(const qr_model_config *c, const char *file)
{
    if (c->d_model <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_kv_head <= 0 || c->d_ff <= 0 ||
        c->vocab_size <= 0 || c->head_dim <= 0 || c->max_pos <= 0)
        return qr_fail(QR_EFORMAT, "%s: sizes must be positive (hidden %d, layers %d, heads %d/%d, ff %d, "
                       "vocab %d, head_dim %d, max positions %d)", file, c->d_model, c->n_layer, c->n_head,
                       c->n_kv_head, c->d_ff, c->vocab_size, c->head_dim, c->max_pos);
    if (c->n_head % c->n_kv_head)
        return qr_fail(QR_EFORMAT, "%s: %d attention heads is not a multiple of %d key/value heads", file,
                       c->n_head, c->n_kv_head);
    if (c->arch != QR_ARCH_BERT && c->head_dim % 2)
        return qr_fail(QR_EFORMAT, "%s: head_dim %d must be even for RoPE", file, c->head_dim);
    if (c->arch == QR_ARCH_BERT && c->head_dim * c->n_head != c->d_model)
        return qr_fail(QR_EFORMAT, "%s: hidden_size %d is not a multiple of %d heads", file, c->d_model,
                       c->n_head);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size)
            return qr_fail(QR_EFORMAT, "%s: eos id %d outside the vocabulary (%d)", file, c->eos_ids[i],
                           c->vocab_size);
    if (c->bos_id >= c->vocab_size)
        return qr_fail(QR_EFORMAT, "%s: bos id %d outside the vocabulary (%d)", file, c->bos_id, c->vocab_size);
    return QR_OK;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* sentence-transformers: modules.json lists the pipeline; the Pooling module's
 * directory holds its config.json, and a Normalize module L2-normalises. */
static int parse_sentence_transformers(const char *dir, qr_model_config *c)
{
    char path[4096];
    json_t *mods = NULL, *pool = NULL;
    int rc = QR_OK;
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (file_exists(path)) {
        json_error_t err;
        mods = json_load_file(path, 0, &err);
        if (!mods || !json_is_array(mods)) {
            rc = qr_fail(QR_EFORMAT, "%s: %s", path, mods ? "top level is not a list" : err.text);
            goto fail;
        }
        size_t i;
        json_t *m;
        json_array_foreach(mods, i, m) {
            const char *type = json_string_value(json_object_get(m, "type"));
            const char *mpath = json_string_value(json_object_get(m, "path"));
            if (!type)
                continue;
            const char *dot = strrchr(type, '.');
            const char *cls = dot ? dot + 1 : type;
            if (strcmp(cls, "Normalize") == 0) {
                c->normalize = true;
            } else if (strcmp(cls, "Pooling") == 0) {
                char ppath[4096];
                snprintf(ppath, sizeof ppath, "%s/%s%sconfig.json", dir, mpath ? mpath : "",
                         mpath && *mpath ? "/" : "");
                if ((rc = load_json(ppath, &pool)))
                    goto fail;
                bool cls_tok = false, mean = false, last = false, maxp = false, sqrtp = false;
                if ((rc = j_bool(pool, "pooling_mode_cls_token", false, ppath, &cls_tok)) ||
                    (rc = j_bool(pool, "pooling_mode_mean_tokens", false, ppath, &mean)) ||
                    (rc = j_bool(pool, "pooling_mode_lasttoken", false, ppath, &last)) ||
                    (rc = j_bool(pool, "pooling_mode_max_tokens", false, ppath, &maxp)) ||
                    (rc = j_bool(pool, "pooling_mode_mean_sqrt_len_tokens", false, ppath, &sqrtp)))
                    goto fail;
                int n_modes = cls_tok + mean + last + maxp + sqrtp;
                if (maxp || sqrtp || n_modes != 1) {
                    rc = qr_fail(QR_EUNSUPPORTED, "%s: pooling must be exactly one of mean, cls, lasttoken "
                                 "(max / mean_sqrt_len / combinations are not supported)", ppath);
                    goto fail;
                }
                c->pooling = cls_tok ? QR_POOL_CLS : last ? QR_POOL_LAST : QR_POOL_MEAN;
                json_decref(pool);
                pool = NULL;
            }
        }
    }
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
    if (file_exists(path)) {
        json_t *sb;
        if ((rc = load_json(path, &sb)))
            goto fail;
        rc = j_int(sb, "max_seq_length", false, 0, path, &c->max_seq_length);
        json_decref(sb);
        if (rc)
            goto fail;
    }
fail:
    json_decref(pool);
    json_decref(mods);
    return rc;
}

int qr_config_from_dir(const char *dir, qr_model_config *out)
{
    char file[4096];
    qr_model_config c;
    json_t *j = NULL, *gen = NULL;
    int rc;
    config_defaults(&c);
    snprintf(file, sizeof file, "%s/config.json", dir);
    if ((rc = load_json(file, &j)))
        return rc;

    const char *mt = json_string_value(json_object_get(j, "model_type"));
    if (!mt) {
        rc = qr_fail(QR_EFORMAT, "%s: missing required key 'model_type'", file);
        goto fail;
    }
    int32_t max_pos_default;
    if (strcmp(mt, "bert") == 0) {
        c.arch = QR_ARCH_BERT;
        max_pos_default = 512;
    } else if (strcmp(mt, "llama") == 0) {
        c.arch = QR_ARCH_LLAMA;
        max_pos_default = 2048;
    } else if (strcmp(mt, "mistral") == 0) {
        c.arch = QR_ARCH_LLAMA;
        max_pos_default = 4096 * 32;
    } else if (strcmp(mt, "qwen2") == 0) {
        c.arch = QR_ARCH_QWEN2;
        max_pos_default = 32768;
    } else {
        rc = qr_fail(QR_EUNSUPPORTED, "%s: model_type '%s' is not supported (bert, llama, mistral, qwen2)",
                     file, mt);
        goto fail;
    }
    snprintf(c.arch_name, sizeof c.arch_name, "%s", mt);

    if ((rc = j_int(j, "hidden_size", true, 0, file, &c.d_model)) ||
        (rc = j_int(j, "num_hidden_layers", true, 0, file, &c.n_layer)) ||
        (rc = j_int(j, "num_attention_heads", true, 0, file, &c.n_head)) ||
        (rc = j_int(j, "intermediate_size", true, 0, file, &c.d_ff)) ||
        (rc = j_int(j, "vocab_size", true, 0, file, &c.vocab_size)) ||
        (rc = j_int(j, "max_position_embeddings", false, max_pos_default, file, &c.max_pos)))
        goto fail;
    if (c.n_head <= 0) {
        rc = qr_fail(QR_EFORMAT, "%s: num_attention_heads must be positive", file);
        goto fail;
    }
    if ((rc = j_int(j, "num_key_value_heads", false, c.n_head, file, &c.n_kv_head)) ||
        (rc = j_int(j, "head_dim", false, c.d_model / c.n_head, file, &c.head_dim)))
        goto fail;

    const char *act = json_string_value(json_object_get(j, "hidden_act"));
    if (c.arch == QR_ARCH_BERT) {
        const char *pe = json_string_value(json_object_get(j, "position_embedding_type"));
        if (act && strcmp(act, "gelu") != 0) {
            rc = qr_fail(QR_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu)", file, act);
            goto fail;
        }
        if (pe && strcmp(pe, "absolute") != 0) {
            rc = qr_fail(QR_EUNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute)", file, pe);
            goto fail;
        }
        c.n_kv_head = c.n_head;
        if ((rc = j_num(j, "layer_norm_eps", 1e-12, file, &c.norm_eps)) ||
            (rc = j_int(j, "type_vocab_size", false, 2, file, &c.type_vocab_size)))
            goto fail;
        c.qkv_bias = true;
        c.attn_out_bias = true;
        c.mlp_bias = true;
        if ((rc = parse_sentence_transformers(dir, &c)))
            goto fail;
    } else {
        if (act && strcmp(act, "silu") != 0) {
            rc = qr_fail(QR_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", file, act);
            goto fail;
        }
        if ((rc = j_num(j, "rms_norm_eps", 1e-6, file, &c.norm_eps)) ||
            (rc = j_num(j, "rope_theta", 10000.0, file, &c.rope_theta)) ||
            (rc = j_bool(j, "tie_word_embeddings", false, file, &c.tie_embeddings)) ||
            (rc = parse_rope_scaling(j, file, &c)))
            goto fail;
        if (c.arch == QR_ARCH_QWEN2) {
            c.qkv_bias = true; /* Qwen2Attention: q/k/v always biased, o_proj never */
        } else {
            bool ab, mb;
            if ((rc = j_bool(j, "attention_bias", false, file, &ab)) ||
                (rc = j_bool(j, "mlp_bias", false, file, &mb)))
                goto fail;
            c.qkv_bias = c.attn_out_bias = ab;
            c.mlp_bias = mb;
        }
        /* Sliding-window attention (Mistral v0.1: 4096) is not implemented; up to
         * the window, full causal attention is identical, so the usable context
         * is capped there. Qwen2 ships a window but turns it off. */
        bool use_sw = true;
        int32_t sw = 0;
        if ((rc = j_bool(j, "use_sliding_window", true, file, &use_sw)) ||
            (rc = j_int(j, "sliding_window", false, 0, file, &sw)))
            goto fail;
        if (use_sw && sw > 0 && sw < c.max_pos) {
            QR_INFO("%s: sliding_window %d: context capped to %d positions (was %d)", file, sw, sw, c.max_pos);
            c.max_pos = sw;
        }
        if ((rc = j_bos(j, file, &c)) || (rc = j_eos(j, file, &c)))
            goto fail;
        char gpath[4096];
        snprintf(gpath, sizeof gpath, "%s/generation_config.json", dir);
        if (file_exists(gpath)) {
            if ((rc = load_json(gpath, &gen)) || (rc = j_bos(gen, gpath, &c)) || (rc = j_eos(gen, gpath, &c)))
                goto fail;
        }
    }
    if ((rc = check_shapes(&c, file)))
        goto fail;
    *out = c;
fail:
    json_decref(gen);
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------- GGUF ---- */

static int g_int(const qr_gguf *g, const char *arch, const char *suffix, bool required, int64_t dflt,
                 int32_t *out)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    int rc = qr_gguf_get_i64(g, key, &v);
    if (rc == QR_ENOTFOUND && !required) {
        v = dflt;
    } else if (rc == QR_ENOTFOUND) {
        return qr_fail(QR_EFORMAT, "%s: missing required key '%s'", qr_gguf_path(g), key);
    } else if (rc) {
        return qr_fail(rc, "%s: key '%s': %s", qr_gguf_path(g), key, qr_strerror(rc));
    }
    if (v < 0 || v > INT32_MAX)
        return qr_fail(QR_EFORMAT, "%s: key '%s' = %lld is out of range", qr_gguf_path(g), key, (long long)v);
    *out = (int32_t)v;
    return QR_OK;
}

static int g_f32(const qr_gguf *g, const char *key, double dflt, float *out)
{
    double v;
    int rc = qr_gguf_get_f64(g, key, &v);
    if (rc == QR_ENOTFOUND)
        v = dflt;
    else if (rc)
        return qr_fail(rc, "%s: key '%s': %s", qr_gguf_path(g), key, qr_strerror(rc));
    *out = (float)v;
    return QR_OK;
}

static int g_opt_id(const qr_gguf *g, const char *key, int32_t *out)
{
    int64_t v;
    int rc = qr_gguf_get_i64(g, key, &v);
    if (rc == QR_ENOTFOUND) {
        *out = -1;
        return QR_OK;
    }
    if (rc)
        return qr_fail(rc, "%s: key '%s': %s", qr_gguf_path(g), key, qr_strerror(rc));
    *out = (int32_t)v;
    return QR_OK;
}

int qr_config_from_gguf(const qr_gguf *g, qr_model_config *out)
{
    const char *file = qr_gguf_path(g);
    qr_model_config c;
    qr_gguf_str s;
    char arch[32], key[160];
    int rc;
    config_defaults(&c);
    if ((rc = qr_gguf_get_str(g, "general.architecture", &s)))
        return qr_fail(rc == QR_ENOTFOUND ? QR_EFORMAT : rc, "%s: missing required key 'general.architecture'",
                       file);
    if (s.len >= sizeof arch)
        return qr_fail(QR_EUNSUPPORTED, "%s: general.architecture '%.*s' is not supported", file, 40,
                       s.ptr);
    memcpy(arch, s.ptr, s.len);
    arch[s.len] = 0;
    if (strcmp(arch, "llama") == 0)
        c.arch = QR_ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0)
        c.arch = QR_ARCH_QWEN2;
    else if (strcmp(arch, "bert") == 0)
        c.arch = QR_ARCH_BERT;
    else
        return qr_fail(QR_EUNSUPPORTED, "%s: general.architecture '%s' is not supported (llama, qwen2, bert)",
                       file, arch);
    snprintf(c.arch_name, sizeof c.arch_name, "%s", arch);

    if ((rc = g_int(g, arch, "embedding_length", true, 0, &c.d_model)) ||
        (rc = g_int(g, arch, "block_count", true, 0, &c.n_layer)) ||
        (rc = g_int(g, arch, "attention.head_count", true, 0, &c.n_head)) ||
        (rc = g_int(g, arch, "feed_forward_length", true, 0, &c.d_ff)) ||
        (rc = g_int(g, arch, "context_length", true, 0, &c.max_pos)))
        return rc;
    if (c.n_head <= 0)
        return qr_fail(QR_EFORMAT, "%s: %s.attention.head_count must be positive", file, arch);
    if ((rc = g_int(g, arch, "attention.head_count_kv", false, c.n_head, &c.n_kv_head)) ||
        (rc = g_int(g, arch, "attention.key_length", false, c.d_model / c.n_head, &c.head_dim)))
        return rc;

    /* Vocabulary size: the tokenizer's token list, else <arch>.vocab_size. */
    qr_gguf_type et;
    uint64_t n_tok;
    if (qr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok) == QR_OK) {
        if (n_tok > INT32_MAX)
            return qr_fail(QR_EFORMAT, "%s: tokenizer.ggml.tokens: too many tokens", file);
        c.vocab_size = (int32_t)n_tok;
    } else if ((rc = g_int(g, arch, "vocab_size", true, 0, &c.vocab_size))) {
        return qr_fail(QR_EFORMAT, "%s: missing required key 'tokenizer.ggml.tokens' (or %s.vocab_size)", file,
                       arch);
    }

    if (c.arch == QR_ARCH_BERT) {
        c.n_kv_head = c.n_head;
        snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", arch);
        if ((rc = g_f32(g, key, 1e-12, &c.norm_eps)))
            return rc;
        int32_t pt;
        if ((rc = g_int(g, arch, "pooling_type", false, 1, &pt)))
            return rc;
        /* llama.cpp's enum: 0 none, 1 mean, 2 cls, 3 last, 4 rank */
        if (pt == 1)
            c.pooling = QR_POOL_MEAN;
        else if (pt == 2)
            c.pooling = QR_POOL_CLS;
        else if (pt == 3)
            c.pooling = QR_POOL_LAST;
        else
            return qr_fail(QR_EUNSUPPORTED, "%s: %s.pooling_type %d is not supported (1 mean, 2 cls, 3 last)",
                           file, arch, pt);
        /* GGUF carries no Normalize flag; embedding models converted to GGUF are
         * used normalised (llama.cpp's default), so that is what we do. */
        c.normalize = true;
        const qr_gguf_tensor *tt = qr_gguf_find_tensor(g, "token_types.weight");
        c.type_vocab_size = tt ? (int32_t)tt->shape[0] : 2;
        c.qkv_bias = c.attn_out_bias = c.mlp_bias = true;
    } else {
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
        if ((rc = g_f32(g, key, 1e-6, &c.norm_eps)))
            return rc;
        snprintf(key, sizeof key, "%s.rope.freq_base", arch);
        if ((rc = g_f32(g, key, 10000.0, &c.rope_theta)))
            return rc;
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        if (qr_gguf_get_str(g, key, &s) == QR_OK && !(s.len == 4 && memcmp(s.ptr, "none", 4) == 0)) {
            if (s.len == 6 && memcmp(s.ptr, "linear", 6) == 0) {
                c.rope_scaling = QR_ROPE_LINEAR;
                snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
                if ((rc = g_f32(g, key, 1.0, &c.rope_factor)))
                    return rc;
            } else {
                return qr_fail(QR_EUNSUPPORTED, "%s: %s '%.*s' is not supported (none, linear)", file, key,
                               (int)(s.len > 40 ? 40 : s.len), s.ptr);
            }
        }
        /* Llama-3 scaling is stored in GGUF as the rope_freqs.weight tensor of
         * per-frequency divisors, applied by the model loader. */
        c.tie_embeddings = qr_gguf_find_tensor(g, "output.weight") == NULL;
        c.qkv_bias = c.arch == QR_ARCH_QWEN2 || qr_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
        c.attn_out_bias = qr_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
        c.mlp_bias = qr_gguf_find_tensor(g, "blk.0.ffn_up.bias") != NULL;
        if ((rc = g_opt_id(g, "tokenizer.ggml.bos_token_id", &c.bos_id)))
            return rc;
        const char *eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                  "tokenizer.ggml.eom_token_id"};
        for (size_t i = 0; i < sizeof eos_keys / sizeof eos_keys[0]; i++) {
            int32_t id;
            if ((rc = g_opt_id(g, eos_keys[i], &id)))
                return rc;
            bool dup = id < 0;
            for (int k = 0; k < c.n_eos && !dup; k++)
                dup = c.eos_ids[k] == id;
            if (!dup && c.n_eos < QR_MAX_EOS)
                c.eos_ids[c.n_eos++] = id;
        }
    }
    if ((rc = check_shapes(&c, file)))
        return rc;
    *out = c;
    return QR_OK;
}

int qr_config_load(const char *model_path, qr_model_config *out)
{
    struct stat st;
    if (stat(model_path, &st) != 0)
        return qr_fail(QR_ENOTFOUND, "%s: %s", model_path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return qr_config_from_dir(model_path, out);
    char magic[4] = {0};
    FILE *f = fopen(model_path, "rb");
    if (!f)
        return qr_fail(QR_EIO, "%s: %s", model_path, strerror(errno));
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        qr_gguf *g;
        int rc = qr_gguf_open(model_path, &g);
        if (rc)
            return rc;
        rc = qr_config_from_gguf(g, out);
        qr_gguf_close(g);
        return rc;
    }
    /* A single .safetensors file: its config.json sits beside it. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    return qr_config_from_dir(dir, out);
}
