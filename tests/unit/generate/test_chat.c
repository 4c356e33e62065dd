/* generate/chat: template sources (tokenizer_config.json string and named
 * list, chat_template.jinja / chat_template.json precedence), special tokens
 * as strings / AddedToken objects / null, and rendering of a real model
 * directory (tests/fixtures/models/qwen2.5-tokenizer) against the
 * jinja2 / apply_chat_template oracle fixture for the same template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "generate/chat.h"
#include "tests/unit/test.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void rm_file(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

static const qr_chat_message MSGS[] = {{"system", "S"}, {"user", "Hi"}};
static const char *TPL = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}";

static void test_from_config(void)
{
    qr_chat_template *ct = NULL;
    /* AddedToken objects and a null eos, as tokenizer_config.json writes them */
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": null, \"chat_template\": \"%s\"}",
             "{{ bos_token }}[{{ eos_token }}]{% for m in messages %}{{ m.content }}{% endfor %}");
    CHECK_OK(qr_chat_template_from_config(cfg, strlen(cfg), "cfg", &ct));
    char *out = NULL;
    qr_chat_opts o = {0};
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
    /* None prints nothing in {{ }}; the list is joined as the template says */
    CHECK(out && strcmp(out, "<s>[]SHi") == 0);
    CHECK(strcmp(qr_chat_bos_token(ct), "<s>") == 0 && qr_chat_eos_token(ct) == NULL);
    free(out);
    qr_chat_template_free(ct);

    /* named list: default unless tools are given and tool_use exists */
    const char *named = "{\"eos_token\": \"</s>\", \"chat_template\": [{\"name\": \"default\", \"template\": \"D{{ eos_token }}\"},"
                        " {\"name\": \"tool_use\", \"template\": \"T{{ tools | length }}\"}]}";
    CHECK_OK(qr_chat_template_from_config(named, strlen(named), "named", &ct));
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
    CHECK(out && strcmp(out, "D</s>") == 0);
    free(out);
    json_t *tools = json_pack("[{s:s}]", "type", "function");
    qr_chat_opts ot = {.tools = tools};
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &ot, &out, NULL));
    CHECK(out && strcmp(out, "T1") == 0);
    free(out);
    qr_chat_opts on = {.name = "nope"};
    CHECK(qr_chat_render(ct, MSGS, 2, &on, &out, NULL) == QR_ENOTFOUND);
    json_decref(tools);
    qr_chat_template_free(ct);

    /* errors name the file */
    const char *bad = "{\"chat_template\": \"{% for x in y %}\"}";
    CHECK(qr_chat_template_from_config(bad, strlen(bad), "bad.json", &ct) == QR_EFORMAT);
    CHECK(strstr(qr_last_error(), "bad.json") && strstr(qr_last_error(), "1:1"));
    const char *none = "{\"bos_token\": \"<s>\"}";
    CHECK(qr_chat_template_from_config(none, strlen(none), "none.json", &ct) == QR_ENOTFOUND);
    CHECK(qr_chat_template_from_config("{", 1, "broken.json", &ct) == QR_EFORMAT);
}

static void test_load_dir(void)
{
    char dir[] = "/tmp/quire_chat_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    qr_chat_template *ct = NULL;
    CHECK(qr_chat_template_load(dir, &ct) == QR_ENOTFOUND);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"bos_token\": \"<B>\", \"eos_token\": {\"content\": \"<E>\"}, \"chat_template\": \"cfg:%s\"}", TPL);
    write_file(dir, "tokenizer_config.json", cfg);
    char *out = NULL;
    qr_chat_opts o = {.add_generation_prompt = 1};
    CHECK_OK(qr_chat_template_load(dir, &ct));
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
    CHECK(out && strcmp(out, "cfg:<B><system>S<user>Hi<assistant><E>") == 0);
    free(out);
    qr_chat_template_free(ct);
    /* chat_template.json overrides the config; tokens still from the config */
    write_file(dir, "chat_template.json", "{\"chat_template\": \"json:{{ bos_token }}{{ messages | length }}\"}");
    CHECK_OK(qr_chat_template_load(dir, &ct));
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
    CHECK(out && strcmp(out, "json:<B>2") == 0);
    free(out);
    qr_chat_template_free(ct);
    /* chat_template.jinja overrides both; its trailing newline is dropped */
    write_file(dir, "chat_template.jinja", "jinja:{{ eos_token }}\n");
    CHECK_OK(qr_chat_template_load(dir, &ct));
    CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
    CHECK(out && strcmp(out, "jinja:<E>") == 0);
    free(out);
    qr_chat_template_free(ct);
    rm_file(dir, "chat_template.jinja");
    rm_file(dir, "chat_template.json");
    rm_file(dir, "tokenizer_config.json");
    rmdir(dir);
}

/* The Qwen2.5 tokenizer directory's own tokenizer_config.json renders the
 * oracle's conversations exactly as jinja2 / apply_chat_template did. */
static void test_qwen_dir(void)
{
    qr_chat_template *ct = NULL;
    CHECK_OK(qr_chat_template_load(FIXTURE("models/qwen2.5-tokenizer"), &ct));
    if (!ct)
        return;
    json_error_t je;
    json_t *fx = json_load_file(FIXTURE("chat/oracle.json"), 0, &je);
    CHECK(fx != NULL);
    json_t *cases = json_object_get(fx, "cases"), *convs = json_object_get(fx, "conversations");
    json_t *d = json_object_get(fx, "date");
    qr_jinja_date date = {(int)json_integer_value(json_object_get(d, "year")), (int)json_integer_value(json_object_get(d, "month")),
                          (int)json_integer_value(json_object_get(d, "day")), (int)json_integer_value(json_object_get(d, "hour")),
                          (int)json_integer_value(json_object_get(d, "minute"))};
    int n = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "template")), "Qwen-Qwen2.5-7B-Instruct.jinja") != 0)
            continue;
        json_t *conv = json_object_get(convs, json_string_value(json_object_get(c, "conversation")));
        qr_chat_opts o = {.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
                          .date = &date, .tools = json_object_get(conv, "tools"),
                          .extra = json_object_get(conv, "vars")};
        char *out = NULL;
        int rc = qr_chat_render_json(ct, json_object_get(conv, "messages"), &o, &out, NULL);
        json_t *want = json_object_get(c, "output");
        CHECK(want ? rc == 0 && strcmp(out, json_string_value(want)) == 0 : rc != 0);
        free(out);
        n++;
    }
    CHECK(n >= 20);
    printf("qwen2.5-tokenizer: %d oracle cases through qr_chat_template_load\n", n);
    json_decref(fx);
    qr_chat_template_free(ct);
}

/* Gemma refuses a system message; system_fallback folds it into the first
 * user turn (expected text confirmed with jinja2 on the folded
 * conversation); a template that accepts system messages is unaffected. */
static void test_system_fallback(void)
{
    const char *names[2] = {"models/chat-templates/google-gemma-2-2b-it.jinja",
                            "models/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja"};
    const char *want[2] = {"<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n",
                           "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(FIXTURE(names[i]), "rb");
        CHECK(f != NULL);
        if (!f)
            return;
        char src[8192];
        size_t n = fread(src, 1, sizeof src - 1, f);
        fclose(f);
        qr_chat_template *ct = NULL;
        CHECK_OK(qr_chat_template_from_string(src, n, "<bos>", "<eos>", &ct));
        char *out = NULL;
        qr_chat_opts o = {.add_generation_prompt = 1};
        int rc = qr_chat_render(ct, MSGS, 2, &o, &out, NULL);
        if (i == 0) {
            CHECK(rc == QR_EINVAL && strcmp(qr_last_error(), QR_JINJA_RAISE_PREFIX "System role not supported") == 0);
        } else {
            CHECK(rc == 0 && strcmp(out, want[i]) == 0);
            free(out);
            out = NULL;
        }
        o.system_fallback = 1;
        CHECK_OK(qr_chat_render(ct, MSGS, 2, &o, &out, NULL));
        CHECK_MSG(out && strcmp(out, want[i]) == 0, "%s", out ? out : "(null)");
        free(out);
        qr_chat_template_free(ct);
    }
}

int main(void)
{
    test_system_fallback();
    test_from_config();
    test_load_dir();
    test_qwen_dir();
    return qr_test_done();
}
