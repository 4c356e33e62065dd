/* generate/jinja on small templates: tests/fixtures/chat/jinja_unit.json holds
 * hand-written expectations (Jinja semantics as jinja2 implements them, set up
 * as transformers' apply_chat_template; tools/jinja_oracle/check_unit.py
 * confirms each with jinja2).
 * Plus what only the C side has: line:col in syntax errors, unsupported
 * constructs, limits, the date parameter, output ownership. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "generate/jinja.h"
#include "tests/unit/test.h"

static const qr_jinja_date DATE = {2024, 7, 26, 13, 5};

/* Renders src with vars (JSON text or NULL); returns rc, *out on success. */
static int render(const char *src, const char *vars_json, const qr_jinja_limits *lim, char **out)
{
    qr_jinja *t = NULL;
    *out = NULL;
    int rc = qr_jinja_parse(src, strlen(src), lim, &t);
    if (rc)
        return rc;
    json_t *vars = vars_json ? json_loads(vars_json, 0, NULL) : NULL;
    rc = qr_jinja_render(t, vars, &DATE, out, NULL);
    json_decref(vars);
    qr_jinja_free(t);
    return rc;
}

static void fixture_cases(void)
{
    json_error_t je;
    json_t *fx = json_load_file(FIXTURE("chat/jinja_unit.json"), 0, &je);
    CHECK_MSG(fx != NULL, "jinja_unit.json: %s", je.text);
    if (!fx)
        return;
    json_t *cases = json_object_get(fx, "cases");
    size_t ok = 0, n = json_array_size(cases);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *src = json_string_value(json_object_get(c, "template"));
        qr_jinja *t = NULL;
        char *out = NULL;
        int rc = qr_jinja_parse(src, strlen(src), NULL, &t);
        if (rc == 0)
            rc = qr_jinja_render(t, json_object_get(c, "vars"), &DATE, &out, NULL);
        json_t *want = json_object_get(c, "expected");
        int good;
        if (want) {
            good = rc == 0 && strcmp(out, json_string_value(want)) == 0;
            CHECK_MSG(good, "%s: want [%s] got [%s] (%s)", name, json_string_value(want), rc ? "" : out,
                      rc ? qr_last_error() : "");
        } else {
            const char *sub = json_string_value(json_object_get(c, "error"));
            good = rc != 0 && strstr(qr_last_error(), sub) != NULL;
            CHECK_MSG(good, "%s: want error containing '%s', got rc=%d '%s'", name, sub, rc, rc ? qr_last_error() : out);
        }
        ok += good;
        free(out);
        qr_jinja_free(t);
    }
    printf("%zu of %zu unit templates as expected\n", ok, n);
    CHECK(n >= 60);
    json_decref(fx);
}

static void syntax_errors(void)
{
    char *out;
    /* line:col of the offending token, counted in the original source */
    CHECK(render("line one\n  {{ 1 + }}", NULL, NULL, &out) == QR_EFORMAT);
    CHECK_MSG(strstr(qr_last_error(), "2:10") != NULL, "%s", qr_last_error());
    /* \r\n line ends (normalized to \n before rendering) still count as one line each */
    CHECK(render("one\r\ntwo\r\n  {{ 1 + }}", NULL, NULL, &out) == QR_EFORMAT);
    CHECK_MSG(strstr(qr_last_error(), "3:10") != NULL, "%s", qr_last_error());
    CHECK(render("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", NULL, NULL, &out) == 0);
    CHECK_MSG(out && !strcmp(out, "a\nb\n"), "[%s]", out ? out : "");
    free(out);
    CHECK(render("{% if x %}never closed", NULL, NULL, &out) == QR_EFORMAT);
    CHECK_MSG(strstr(qr_last_error(), "1:1") && strstr(qr_last_error(), "endif"), "%s", qr_last_error());
    CHECK(render("ok\n{% frobnicate %}", NULL, NULL, &out) == QR_EFORMAT);
    CHECK_MSG(strstr(qr_last_error(), "2:4") && strstr(qr_last_error(), "frobnicate"), "%s", qr_last_error());
    CHECK(render("{{ 'unterminated }}", NULL, NULL, &out) == QR_EFORMAT);
    CHECK(render("{{ 'bad \\q escape' }}", NULL, NULL, &out) == QR_EFORMAT);
    CHECK(render("{# never closed", NULL, NULL, &out) == QR_EFORMAT);
    CHECK(render("{{ a b }}", NULL, NULL, &out) == QR_EFORMAT);
    /* unsupported constructs say so, with position */
    CHECK(render("\n\n   {% macro m(x) %}{{ x }}{% endmacro %}", NULL, NULL, &out) == QR_EUNSUPPORTED);
    CHECK_MSG(strstr(qr_last_error(), "3:") && strstr(qr_last_error(), "macro"), "%s", qr_last_error());
    CHECK(render("{% filter upper %}x{% endfilter %}", NULL, NULL, &out) == QR_EUNSUPPORTED);
    CHECK(render("{{ f(*args) }}", NULL, NULL, &out) == QR_EUNSUPPORTED);
    /* run-time errors carry position too */
    CHECK(render("ab\n {{ 1 + none }}", NULL, NULL, &out) == QR_EINVAL);
    CHECK_MSG(strstr(qr_last_error(), "2:7"), "%s", qr_last_error());
}

static void raise_and_date(void)
{
    char *out;
    CHECK(render("{{ raise_exception('Roles must alternate') }}", NULL, NULL, &out) == QR_EINVAL);
    CHECK(strcmp(qr_last_error(), QR_JINJA_RAISE_PREFIX "Roles must alternate") == 0);
    /* the date comes from the parameter */
    qr_jinja *t = NULL;
    const char *src = "{{ strftime_now('%Y-%m-%d %H:%M %b %B') }}";
    CHECK_OK(qr_jinja_parse(src, strlen(src), NULL, &t));
    qr_jinja_date d = {1999, 12, 3, 7, 9};
    size_t len = 0;
    CHECK_OK(qr_jinja_render(t, NULL, &d, &out, &len));
    CHECK(out && strcmp(out, "1999-12-03 07:09 Dec December") == 0 && len == strlen(out));
    free(out);
    /* NULL date: today's local date, in the same format */
    CHECK_OK(qr_jinja_render(t, NULL, NULL, &out, NULL));
    CHECK(out && strlen(out) >= 16 && out[4] == '-');
    free(out);
    qr_jinja_free(t);
}

static void limits(void)
{
    char *out;
    qr_jinja_limits lim = {.max_output_bytes = 1000};
    CHECK(render("{% for i in range(100) %}0123456789abcdef{% endfor %}", NULL, &lim, &out) == QR_ELIMIT);
    CHECK(render("{% for i in range(10) %}0123456789{% endfor %}", NULL, &lim, &out) == 0);
    free(out);
    qr_jinja_limits it = {.max_loop_iterations = 50};
    CHECK(render("{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}", NULL, &it, &out) == QR_ELIMIT);
    CHECK(strstr(qr_last_error(), "loop iterations") != NULL);
    qr_jinja_limits tb = {.max_template_bytes = 10};
    CHECK(render("{{ 'more than ten bytes' }}", NULL, &tb, &out) == QR_ELIMIT);
    /* deep nesting is refused, not a stack overflow */
    char deep[8192];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 2000; i++)
        deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 2000; i++)
        deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    CHECK(render(deep, NULL, NULL, &out) == QR_ELIMIT);
    char nested[16384] = "";
    for (int i = 0; i < 400; i++)
        strcat(nested, "{% if true %}");
    strcat(nested, "x");
    for (int i = 0; i < 400; i++)
        strcat(nested, "{% endif %}");
    CHECK(render(nested, NULL, NULL, &out) == QR_ELIMIT);
    /* variables as deep as the limit are refused too */
    CHECK(render("{{ 1 }}", "{\"v\": [[[[[[[[[[1]]]]]]]]]]}", &(qr_jinja_limits){.max_depth = 5}, &out) == QR_ELIMIT);
}

static void api(void)
{
    char *out = NULL;
    qr_jinja *t = NULL;
    CHECK(qr_jinja_parse(NULL, 0, NULL, &t) == QR_EINVAL);
    CHECK_OK(qr_jinja_parse("x", 1, NULL, &t));
    json_t *notobj = json_array();
    CHECK(qr_jinja_render(t, notobj, &DATE, &out, NULL) == QR_EINVAL && out == NULL);
    json_decref(notobj);
    /* one template renders many times and from the same parse */
    for (int i = 0; i < 3; i++) {
        CHECK_OK(qr_jinja_render(t, NULL, &DATE, &out, NULL));
        CHECK(out && strcmp(out, "x") == 0);
        free(out);
    }
    qr_jinja_free(t);
    qr_jinja_free(NULL);
    /* strings with NUL bytes survive */
    CHECK_OK(render("[{{ s }}]", "{\"s\": \"a\\u0000b\"}", NULL, &out));
    free(out);
}

int main(void)
{
    fixture_cases();
    syntax_errors();
    raise_and_date();
    limits();
    api();
    return qr_test_done();
}
