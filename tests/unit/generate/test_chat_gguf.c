/* The chat template embedded in SmolLM2-135M-Instruct-Q4_1.gguf (key
 * tokenizer.chat_template, BOS/EOS strings from tokenizer.ggml.*_token_id,
 * read as qr_chat_template_for_model reads them for quire ask and serve) rendered through the chat API over
 * every conversation of tests/fixtures/chat/oracle.json must equal
 * transformers' apply_chat_template on the tokenizer transformers builds from
 * the same GGUF (the "gguf:" cases, tools/jinja_oracle/gen_fixtures.py).
 * Conversations go in raw (null contents, reasoning fields), so this also
 * checks the variables qr_chat_render_json prepares as transformers does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "generate/chat.h"
#include "runtime/weights/gguf.h"
#include "tests/unit/test.h"

#define GGUF_NAME "SmolLM2-135M-Instruct-Q4_1.gguf"

int main(void)
{
    const char *path = MODEL(GGUF_NAME);
    json_error_t jerr;
    json_t *fx = json_load_file(FIXTURE("chat/oracle.json"), 0, &jerr);
    CHECK_MSG(fx != NULL, "oracle.json: %s", jerr.text);
    if (!fx)
        return qr_test_done();
    const char *want_tmpl = json_string_value(json_object_get(json_object_get(fx, "gguf"), "chat_template"));
    CHECK_MSG(want_tmpl != NULL, "oracle.json has no gguf template: regenerate it with tools/models.sh run first");

    qr_gguf *g = NULL;
    CHECK_OK(qr_gguf_open(path, &g));
    qr_gguf_str t = {0}, s;
    CHECK_OK(qr_gguf_get_str(g, "tokenizer.chat_template", &t));
    char *tok[2] = {NULL, NULL};
    const char *keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    for (int i = 0; i < 2; i++) {
        uint64_t id;
        if (qr_gguf_has(g, keys[i]) && !qr_gguf_get_u64(g, keys[i], &id) &&
            !qr_gguf_arr_str(g, "tokenizer.ggml.tokens", id, &s))
            tok[i] = strndup(s.ptr, (size_t)s.len);
    }
    /* the fixture was made from this very template */
    CHECK(want_tmpl && t.ptr && strlen(want_tmpl) == t.len && !memcmp(want_tmpl, t.ptr, t.len));
    qr_chat_template *ct = NULL;
    CHECK_OK(qr_chat_template_from_string(t.ptr, (size_t)t.len, tok[0], tok[1], &ct));
    qr_gguf_close(g);
    json_t *gtok = json_object_get(json_object_get(fx, "tokens"), "gguf:" GGUF_NAME);
    CHECK(tok[0] && tok[1] && !strcmp(tok[0], json_string_value(json_object_get(gtok, "bos_token"))) &&
          !strcmp(tok[1], json_string_value(json_object_get(gtok, "eos_token"))));

    json_t *d = json_object_get(fx, "date");
    qr_jinja_date date = {(int)json_integer_value(json_object_get(d, "year")),
                          (int)json_integer_value(json_object_get(d, "month")),
                          (int)json_integer_value(json_object_get(d, "day")),
                          (int)json_integer_value(json_object_get(d, "hour")),
                          (int)json_integer_value(json_object_get(d, "minute"))};
    json_t *convs = json_object_get(fx, "conversations"), *cases = json_object_get(fx, "cases");
    size_t n = 0, ok = 0;
    for (size_t i = 0; ct && i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "template")), "gguf:" GGUF_NAME))
            continue;
        n++;
        const char *cname = json_string_value(json_object_get(c, "conversation"));
        json_t *conv = json_object_get(convs, cname);
        json_t *extra = json_object();
        if (json_object_get(conv, "vars"))
            json_object_update(extra, json_object_get(conv, "vars"));
        if (json_object_get(conv, "documents"))
            json_object_set(extra, "documents", json_object_get(conv, "documents"));
        qr_chat_opts o = {.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
                          .date = &date, .tools = json_object_get(conv, "tools"), .extra = extra};
        char *out = NULL;
        int rc = qr_chat_render_json(ct, json_object_get(conv, "messages"), &o, &out, NULL);
        json_t *want = json_object_get(c, "output");
        int same = want ? rc == 0 && !strcmp(out, json_string_value(want)) : rc == QR_EINVAL;
        CHECK_MSG(same, "%s / agp=%d: rc=%d %s\n  want: %s\n  got:  %s", cname, o.add_generation_prompt, rc,
                  rc ? qr_last_error() : "", want ? json_string_value(want) : json_string_value(json_object_get(c, "error")),
                  out ? out : "");
        ok += same;
        free(out);
        json_decref(extra);
    }
    CHECK(n == 2 * json_object_size(convs));
    printf("%zu of %zu conversations rendered from %s identical to transformers' apply_chat_template\n", ok, n,
           GGUF_NAME);
    qr_chat_template_free(ct);
    free(tok[0]);
    free(tok[1]);
    json_decref(fx);
    return qr_test_done();
}
