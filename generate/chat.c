/* Chat templates from model directories; rendering through generate/jinja. */
#include "generate/chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "runtime/weights/gguf.h"

#define MAX_CONFIG_BYTES (16u << 20)
#define MAX_NAMED 16

static const char *TOKEN_KEYS[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
#define NTOK 4

struct qr_chat_template {
    size_t n;
    char *name[MAX_NAMED]; /* NULL for a single unnamed template */
    qr_jinja *tmpl[MAX_NAMED];
    char *tok[NTOK];
    int has_tok[NTOK]; /* key present (even as null) */
};

void qr_chat_template_free(qr_chat_template *ct)
{
    if (!ct)
        return;
    for (size_t i = 0; i < ct->n; i++) {
        free(ct->name[i]);
        qr_jinja_free(ct->tmpl[i]);
    }
    for (int i = 0; i < NTOK; i++)
        free(ct->tok[i]);
    free(ct);
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? QR_ENOTFOUND : qr_fail(QR_EIO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return qr_fail(QR_EIO, "%s: cannot stat", path);
    }
    if ((unsigned long long)st.st_size > MAX_CONFIG_BYTES) {
        fclose(f);
        return qr_fail(QR_ELIMIT, "%s: %lld bytes, limit %u", path, (long long)st.st_size, MAX_CONFIG_BYTES);
    }
    char *p = malloc((size_t)st.st_size + 1);
    if (!p) {
        fclose(f);
        return qr_fail(QR_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(p, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(p);
        return qr_fail(QR_EIO, "%s: short read", path);
    }
    p[n] = 0;
    *out = p;
    *len = n;
    return 0;
}

static int add_template(qr_chat_template *ct, const char *name, const char *src, size_t len, const char *origin)
{
    if (ct->n >= MAX_NAMED)
        return qr_fail(QR_ELIMIT, "%s: chat_template: more than %d named templates", origin, MAX_NAMED);
    qr_jinja *t = NULL;
    int rc = qr_jinja_parse(src, len, NULL, &t);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", qr_last_error());
        return qr_fail(rc, "%s: chat_template%s%s: %s", origin, name ? " " : "", name ? name : "", msg);
    }
    char *nm = name ? strdup(name) : NULL;
    if (name && !nm) {
        qr_jinja_free(t);
        return qr_fail(QR_ENOMEM, "%s: out of memory", origin);
    }
    ct->name[ct->n] = nm;
    ct->tmpl[ct->n++] = t;
    return 0;
}

/* chat_template value: a string or a list of {name, template}. */
static int add_templates(qr_chat_template *ct, const json_t *v, const char *origin)
{
    if (json_is_string(v))
        return add_template(ct, NULL, json_string_value(v), json_string_length(v), origin);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return qr_fail(QR_EFORMAT, "%s: chat_template: expected a string or a list of {name, template}", origin);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
        if (!json_is_string(nm) || !json_is_string(tp))
            return qr_fail(QR_EFORMAT, "%s: chat_template[%zu]: expected {\"name\": string, \"template\": string}", origin, i);
        int rc = add_template(ct, json_string_value(nm), json_string_value(tp), json_string_length(tp), origin);
        if (rc)
            return rc;
    }
    return 0;
}

static int read_tokens(qr_chat_template *ct, const json_t *cfg, const char *origin)
{
    for (int i = 0; i < NTOK; i++) {
        json_t *v = json_object_get(cfg, TOKEN_KEYS[i]);
        if (!v)
            continue;
        ct->has_tok[i] = 1;
        if (json_is_object(v))
            v = json_object_get(v, "content");
        if (json_is_null(v))
            continue;
        if (!json_is_string(v))
            return qr_fail(QR_EFORMAT, "%s: %s: expected a string, null or {\"content\": string}", origin, TOKEN_KEYS[i]);
        ct->tok[i] = strdup(json_string_value(v));
        if (!ct->tok[i])
            return qr_fail(QR_ENOMEM, "%s: out of memory", origin);
    }
    return 0;
}

int qr_chat_template_from_config(const char *config_json, size_t len, const char *origin, qr_chat_template **out)
{
    if (!config_json || !out)
        return qr_fail(QR_EINVAL, "chat: from_config: NULL argument");
    if (!origin)
        origin = "tokenizer_config.json";
    json_error_t je;
    json_t *cfg = json_loadb(config_json, len, 0, &je);
    if (!cfg)
        return qr_fail(QR_EFORMAT, "%s: line %d: %s", origin, je.line, je.text);
    int rc = 0;
    qr_chat_template *ct = calloc(1, sizeof *ct);
    if (!ct) {
        rc = qr_fail(QR_ENOMEM, "%s: out of memory", origin);
        goto fail;
    }
    if (!json_is_object(cfg)) {
        rc = qr_fail(QR_EFORMAT, "%s: expected a JSON object", origin);
        goto fail;
    }
    json_t *tv = json_object_get(cfg, "chat_template");
    if (!tv) {
        rc = qr_fail(QR_ENOTFOUND, "%s: no chat_template", origin);
        goto fail;
    }
    if ((rc = add_templates(ct, tv, origin)) || (rc = read_tokens(ct, cfg, origin)))
        goto fail;
    json_decref(cfg);
    *out = ct;
    return 0;
fail:
    json_decref(cfg);
    qr_chat_template_free(ct);
    return rc;
}

int qr_chat_template_from_string(const char *tmpl, size_t len, const char *bos_token, const char *eos_token,
                                 qr_chat_template **out)
{
    if (!tmpl || !out)
        return qr_fail(QR_EINVAL, "chat: from_string: NULL argument");
    qr_chat_template *ct = calloc(1, sizeof *ct);
    if (!ct)
        return qr_fail(QR_ENOMEM, "chat: out of memory");
    int rc = add_template(ct, NULL, tmpl, len, "chat template");
    const char *toks[2] = {bos_token, eos_token};
    for (int i = 0; !rc && i < 2; i++) {
        ct->has_tok[i] = 1;
        if (toks[i] && !(ct->tok[i] = strdup(toks[i])))
            rc = qr_fail(QR_ENOMEM, "chat: out of memory");
    }
    if (rc) {
        qr_chat_template_free(ct);
        return rc;
    }
    *out = ct;
    return 0;
}

int qr_chat_template_load(const char *model_dir, qr_chat_template **out)
{
    if (!model_dir || !out)
        return qr_fail(QR_EINVAL, "chat: load: NULL argument");
    char path[4096], *text = NULL, *cfgtext = NULL;
    size_t len = 0, cfglen = 0;
    int rc;
    qr_chat_template *ct = NULL;
    json_t *cfg = NULL, *side = NULL;

    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    rc = read_file(path, &cfgtext, &cfglen);
    if (rc && rc != QR_ENOTFOUND)
        return rc;
    if (cfgtext) {
        json_error_t je;
        cfg = json_loadb(cfgtext, cfglen, 0, &je);
        free(cfgtext);
        if (!cfg || !json_is_object(cfg)) {
            json_decref(cfg);
            return qr_fail(QR_EFORMAT, "%s: line %d: %s", path, je.line, cfg ? "expected a JSON object" : je.text);
        }
    }
    ct = calloc(1, sizeof *ct);
    if (!ct) {
        rc = qr_fail(QR_ENOMEM, "chat: out of memory");
        goto fail;
    }
    if (cfg && (rc = read_tokens(ct, cfg, path)))
        goto fail;

    snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
    rc = read_file(path, &text, &len);
    if (rc == 0) {
        rc = add_template(ct, NULL, text, len, path);
        free(text);
        if (rc)
            goto fail;
        goto done;
    }
    if (rc != QR_ENOTFOUND)
        goto fail;
    snprintf(path, sizeof path, "%s/chat_template.json", model_dir);
    rc = read_file(path, &text, &len);
    if (rc == 0) {
        json_error_t je;
        side = json_loadb(text, len, 0, &je);
        free(text);
        if (!side) {
            rc = qr_fail(QR_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
            goto fail;
        }
        json_t *tv = json_object_get(side, "chat_template");
        if (!tv) {
            rc = qr_fail(QR_EFORMAT, "%s: no chat_template", path);
            goto fail;
        }
        if ((rc = add_templates(ct, tv, path)))
            goto fail;
        goto done;
    }
    if (rc != QR_ENOTFOUND)
        goto fail;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    json_t *tv = cfg ? json_object_get(cfg, "chat_template") : NULL;
    if (!tv) {
        rc = qr_fail(QR_ENOTFOUND, "%s: no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)", model_dir);
        goto fail;
    }
    if ((rc = add_templates(ct, tv, path)))
        goto fail;
done:
    json_decref(cfg);
    json_decref(side);
    *out = ct;
    return 0;
fail:
    json_decref(cfg);
    json_decref(side);
    qr_chat_template_free(ct);
    return rc;
}

const char *qr_chat_bos_token(const qr_chat_template *ct) { return ct ? ct->tok[0] : NULL; }
const char *qr_chat_eos_token(const qr_chat_template *ct) { return ct ? ct->tok[1] : NULL; }

static const qr_jinja *pick(const qr_chat_template *ct, const qr_chat_opts *o)
{
    if (ct->n == 1 && !ct->name[0])
        return ct->tmpl[0];
    const char *want = o && o->name ? o->name : NULL;
    if (!want && o && o->tools) {
        for (size_t i = 0; i < ct->n; i++)
            if (ct->name[i] && !strcmp(ct->name[i], "tool_use"))
                return ct->tmpl[i];
    }
    if (!want)
        want = "default";
    for (size_t i = 0; i < ct->n; i++)
        if (ct->name[i] && !strcmp(ct->name[i], want))
            return ct->tmpl[i];
    return NULL;
}

/* messages with a leading system message merged into the first user
 * message ("SYSTEM\n\nUSER"); NULL when that does not apply. */
static json_t *fold_system(const json_t *messages)
{
    json_t *m0 = json_array_get(messages, 0), *r0 = json_object_get(m0, "role");
    if (!json_is_string(r0) || strcmp(json_string_value(r0), "system") != 0)
        return NULL;
    json_t *sys = json_object_get(m0, "content");
    if (!json_is_string(sys))
        return NULL;
    json_t *out = json_array();
    int merged = 0;
    for (size_t i = 1; out && i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i), *r = json_object_get(m, "role"), *c = json_object_get(m, "content");
        if (!merged && json_is_string(r) && !strcmp(json_string_value(r), "user") && json_is_string(c)) {
            size_t a = json_string_length(sys), b = json_string_length(c);
            char *text = malloc(a + b + 2);
            json_t *copy = json_copy(m);
            json_t *s = NULL;
            if (text) {
                memcpy(text, json_string_value(sys), a);
                memcpy(text + a, "\n\n", 2);
                memcpy(text + a + 2, json_string_value(c), b);
                s = json_stringn(text, a + b + 2);
            }
            free(text);
            if (!copy || !s || json_object_set_new(copy, "content", s) || json_array_append_new(out, copy)) {
                json_decref(out);
                return NULL;
            }
            merged = 1;
        } else if (json_array_append(out, m)) {
            json_decref(out);
            return NULL;
        }
    }
    if (!merged) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The messages as transformers' apply_chat_template hands them to the
 * template: keys whose value is null dropped (_normalize_chat_messages),
 * and a message's reasoning (reasoning_content, thinking or reasoning, the
 * first non-null) copied under both "thinking" and "reasoning_content"
 * (_alias_reasoning_fields). NULL when out of memory. */
static json_t *normalize_messages(const json_t *messages)
{
    static const char *REASONING[] = {"reasoning_content", "thinking", "reasoning"};
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (!out)
            return NULL;
        json_t *c;
        if (!json_is_object(m)) {
            c = json_incref(m); /* the template decides what a non-object message means */
        } else {
            c = json_object();
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)m, k, v)
                if (c && !json_is_null(v) && json_object_set(c, k, v)) {
                    json_decref(c);
                    c = NULL;
                }
            json_t *r = NULL;
            for (size_t j = 0; c && !r && j < sizeof REASONING / sizeof REASONING[0]; j++)
                r = json_object_get(c, REASONING[j]);
            if (r && (json_object_set(c, "thinking", r) || json_object_set(c, "reasoning_content", r))) {
                json_decref(c);
                c = NULL;
            }
        }
        if (!c || json_array_append_new(out, c)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int qr_chat_render_json(const qr_chat_template *ct, const json_t *messages, const qr_chat_opts *opts, char **out,
                        size_t *out_len)
{
    if (!ct || !messages || !out)
        return qr_fail(QR_EINVAL, "chat: render: NULL argument");
    if (!json_is_array(messages))
        return qr_fail(QR_EINVAL, "chat: render: messages must be a JSON array");
    const qr_jinja *t = pick(ct, opts);
    if (!t)
        return qr_fail(QR_ENOTFOUND, "chat: no chat template named '%s'", opts && opts->name ? opts->name : "default");
    json_t *vars = json_object();
    if (!vars)
        return qr_fail(QR_ENOMEM, "chat: out of memory");
    /* as transformers: special tokens that are None are left out (special_tokens_map),
       tools and documents are always passed (None when not given) */
    int bad = json_object_set_new(vars, "messages", normalize_messages(messages));
    bad |= json_object_set_new(vars, "add_generation_prompt", json_boolean(opts && opts->add_generation_prompt));
    for (int i = 0; i < NTOK; i++)
        if (ct->has_tok[i] && ct->tok[i])
            bad |= json_object_set_new(vars, TOKEN_KEYS[i], json_string(ct->tok[i]));
    bad |= json_object_set(vars, "tools", opts && opts->tools ? (json_t *)opts->tools : json_null());
    bad |= json_object_set_new(vars, "documents", json_null());
    if (opts && opts->extra) {
        if (!json_is_object(opts->extra)) {
            json_decref(vars);
            return qr_fail(QR_EINVAL, "chat: render: extra variables must be a JSON object");
        }
        bad |= json_object_update(vars, (json_t *)opts->extra);
    }
    if (bad) {
        json_decref(vars);
        return qr_fail(QR_ENOMEM, "chat: out of memory");
    }
    int rc = qr_jinja_render(t, vars, opts ? opts->date : NULL, out, out_len);
    json_decref(vars);
    if (rc == QR_EINVAL && opts && opts->system_fallback &&
        strncmp(qr_last_error(), QR_JINJA_RAISE_PREFIX, strlen(QR_JINJA_RAISE_PREFIX)) == 0) {
        json_t *folded = fold_system(messages);
        if (folded) {
            qr_chat_opts o2 = *opts;
            o2.system_fallback = 0;
            rc = qr_chat_render_json(ct, folded, &o2, out, out_len);
            json_decref(folded);
        }
    }
    return rc;
}

int qr_chat_render(const qr_chat_template *ct, const qr_chat_message *msgs, size_t n, const qr_chat_opts *opts,
                   char **out, size_t *out_len)
{
    if (!ct || (!msgs && n) || !out)
        return qr_fail(QR_EINVAL, "chat: render: NULL argument");
    json_t *arr = json_array();
    if (!arr)
        return qr_fail(QR_ENOMEM, "chat: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role) {
            json_decref(arr);
            return qr_fail(QR_EINVAL, "chat: render: message %zu has no role", i);
        }
        json_t *m = json_object();
        json_t *role = json_string(msgs[i].role);
        json_t *content = msgs[i].content ? json_string(msgs[i].content) : json_null();
        if (!m || !role || !content || json_object_set_new(m, "role", role) ||
            json_object_set_new(m, "content", content) || json_array_append_new(arr, m)) {
            json_decref(arr);
            return qr_fail(QR_EINVAL, "chat: render: message %zu: invalid UTF-8 or out of memory", i);
        }
    }
    int rc = qr_chat_render_json(ct, arr, opts, out, out_len);
    json_decref(arr);
    return rc;
}

/* See chat.h. GGUF: llama.cpp's convert script stores the template of
 * tokenizer_config.json under tokenizer.chat_template. */
int qr_chat_template_for_model(const char *path, qr_chat_template **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        int rc = qr_chat_template_load(path, out);
        return rc == QR_ENOTFOUND ? 0 : rc;
    }
    qr_gguf *g = NULL;
    if (qr_gguf_open(path, &g)) return 0; /* not a GGUF (a safetensors file): no template */
    int rc = 0;
    qr_gguf_str t;
    if (qr_gguf_has(g, "tokenizer.chat_template") && !qr_gguf_get_str(g, "tokenizer.chat_template", &t)) {
        char *tok[2] = {NULL, NULL};
        const char *keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
        for (int i = 0; i < 2; i++) {
            uint64_t id;
            qr_gguf_str s;
            if (qr_gguf_has(g, keys[i]) && !qr_gguf_get_u64(g, keys[i], &id) &&
                !qr_gguf_arr_str(g, "tokenizer.ggml.tokens", id, &s))
                tok[i] = strndup(s.ptr, (size_t)s.len);
        }
        rc = qr_chat_template_from_string(t.ptr, (size_t)t.len, tok[0], tok[1], out);
        free(tok[0]);
        free(tok[1]);
    }
    qr_gguf_close(g);
    return rc;
}
