/* Every (template, conversation, add_generation_prompt) case of
 * tests/fixtures/chat/oracle.json, made by tools/jinja_oracle/gen_fixtures.py
 * with jinja2 set up as transformers' apply_chat_template (and checked equal
 * to apply_chat_template itself), must render byte-identically, or fail where
 * the oracle failed (with the same message for raise_exception). The fixture's
 * template_vars are what transformers hands the template (None-valued message
 * keys dropped, tools and documents always present); special tokens that are
 * None are left undefined, as in transformers' special_tokens_map. Templates
 * come from tests/fixtures/models/chat-templates; the GGUF-embedded one
 * ("gguf:..." cases) is checked by test_chat_gguf.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "generate/chat.h"
#include "generate/jinja.h"
#include "tests/unit/test.h"

/* First differing byte, for a readable failure. */
static void show_diff(const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  first difference at byte %zu\n  want: %.80s\n  got:  %.80s\n", i, want + from, got + from);
}

/* The same case through the chat API with the raw conversation (null
 * contents, reasoning fields, documents as an extra variable): what
 * qr_chat_render_json prepares must be what transformers hands the template. */
static void chat_path(json_t *c, const char *src, size_t len, const char *bos, const char *eos, json_t *conv,
                      const qr_jinja_date *date, size_t *nok)
{
    qr_chat_template *ct = NULL;
    if (qr_chat_template_from_string(src, len, bos, eos, &ct))
        return; /* the parse failure is reported by the caller */
    json_t *extra = json_object();
    if (json_object_get(conv, "vars"))
        json_object_update(extra, json_object_get(conv, "vars"));
    if (json_object_get(conv, "documents"))
        json_object_set(extra, "documents", json_object_get(conv, "documents"));
    qr_chat_opts o = {.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
                      .date = date, .tools = json_object_get(conv, "tools"), .extra = extra};
    char *out = NULL;
    int rc = qr_chat_render_json(ct, json_object_get(conv, "messages"), &o, &out, NULL);
    json_t *want = json_object_get(c, "output");
    int same = want ? rc == 0 && !strcmp(out, json_string_value(want)) : rc == QR_EINVAL;
    CHECK_MSG(same, "chat API: %s / %s / agp=%d: rc=%d %s", json_string_value(json_object_get(c, "template")),
              json_string_value(json_object_get(c, "conversation")), o.add_generation_prompt, rc,
              rc ? qr_last_error() : "output differs");
    *nok += same;
    free(out);
    json_decref(extra);
    qr_chat_template_free(ct);
}

int main(void)
{
    json_error_t jerr;
    json_t *fx = json_load_file(FIXTURE("chat/oracle.json"), 0, &jerr);
    CHECK_MSG(fx != NULL, "oracle.json: %s", jerr.text);
    if (!fx)
        return qr_test_done();
    json_t *d = json_object_get(fx, "date");
    qr_jinja_date date = {(int)json_integer_value(json_object_get(d, "year")),
                          (int)json_integer_value(json_object_get(d, "month")),
                          (int)json_integer_value(json_object_get(d, "day")),
                          (int)json_integer_value(json_object_get(d, "hour")),
                          (int)json_integer_value(json_object_get(d, "minute"))};
    json_t *convs = json_object_get(fx, "template_vars"), *toks = json_object_get(fx, "tokens");
    json_t *raw = json_object_get(fx, "conversations");
    size_t nchat = 0;
    json_t *cases = json_object_get(fx, "cases");
    size_t ok = 0, n = json_array_size(cases), nerr = 0, nskip = 0;
    CHECK(n >= 370);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *tname = json_string_value(json_object_get(c, "template"));
        const char *cname = json_string_value(json_object_get(c, "conversation"));
        if (!strncmp(tname, "gguf:", 5)) {
            nskip++;
            continue;
        }
        char rel[512];
        snprintf(rel, sizeof rel, "models/chat-templates/%s", tname);
        size_t len;
        char *src = qr_test_slurp(FIXTURE(rel), &len);
        CHECK_MSG(src != NULL, "cannot read %s", rel);
        if (!src)
            continue;
        qr_jinja *t = NULL;
        int rc = qr_jinja_parse(src, len, NULL, &t);
        CHECK_MSG(rc == 0, "%s: parse: %s", tname, qr_last_error());
        json_t *tk = json_object_get(toks, tname);
        chat_path(c, src, len, json_string_value(json_object_get(tk, "bos_token")),
                  json_string_value(json_object_get(tk, "eos_token")), json_object_get(raw, cname), &date, &nchat);
        free(src);
        if (rc)
            continue;
        json_t *vars = json_deep_copy(json_object_get(convs, cname));
        CHECK_MSG(json_is_object(vars), "%s: no template_vars", cname);
        if (!vars)
            continue;
        json_object_set(vars, "add_generation_prompt", json_object_get(c, "add_generation_prompt"));
        const char *k;
        json_t *tv;
        json_object_foreach(json_object_get(toks, tname), k, tv)
            if (!json_is_null(tv))
                json_object_set(vars, k, tv);
        char *out = NULL;
        rc = qr_jinja_render(t, vars, &date, &out, NULL);
        json_t *want = json_object_get(c, "output");
        if (want) {
            int same = rc == 0 && strcmp(out, json_string_value(want)) == 0;
            CHECK_MSG(same, "%s / %s / agp=%d: %s", tname, cname, json_is_true(json_object_get(c, "add_generation_prompt")),
                      rc ? qr_last_error() : "output differs");
            if (!same && rc == 0)
                show_diff(json_string_value(want), out);
            ok += same;
        } else {
            const char *msg = json_string_value(json_object_get(c, "error"));
            const char *got = rc ? qr_last_error() : "";
            size_t pl = strlen(QR_JINJA_RAISE_PREFIX);
            int same;
            if (json_is_true(json_object_get(c, "raised"))) /* raise_exception: same message */
                same = rc == QR_EINVAL && strncmp(got, QR_JINJA_RAISE_PREFIX, pl) == 0 && strcmp(got + pl, msg) == 0;
            else /* an error inside the template (jinja2's UndefinedError, TypeError): ours names the
                    same kind of error, prefixed with line:col */
                same = rc == QR_EINVAL && strncmp(got, QR_JINJA_RAISE_PREFIX, pl) != 0 &&
                       strstr(got, strncmp(msg, "UndefinedError", 14) ? "TypeError" : "UndefinedError") != NULL;
            CHECK_MSG(same, "%s / %s: expected error '%s', got rc=%d '%s'", tname, cname, msg, rc, got);
            ok += same;
            nerr++;
        }
        free(out);
        json_decref(vars);
        qr_jinja_free(t);
    }
    printf("%zu of %zu template x conversation cases identical to jinja2 / apply_chat_template (%zu expected errors); "
           "%zu identical through the chat API from the raw conversations\n", ok, n - nskip, nerr, nchat);
    json_decref(fx);
    return qr_test_done();
}
