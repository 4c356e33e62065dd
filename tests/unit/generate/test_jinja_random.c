/* generate/jinja against jinja2 on seeded random templates over the supported
 * subset (tests/fixtures/chat/jinja_random.json, made by
 * tools/jinja_oracle/gen_random.py with jinja2 set up as transformers'
 * apply_chat_template): every output must be identical, and where jinja2
 * raises (UndefinedError, TypeError...) quire must fail too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "generate/jinja.h"
#include "tests/unit/test.h"

static const qr_jinja_date DATE = {2024, 7, 26, 13, 5};

int main(void)
{
    json_error_t je;
    json_t *fx = json_load_file(FIXTURE("chat/jinja_random.json"), 0, &je);
    CHECK_MSG(fx != NULL, "jinja_random.json: %s", je.text);
    if (!fx)
        return qr_test_done();
    json_t *vars = json_object_get(fx, "vars"), *cases = json_object_get(fx, "cases");
    size_t n = json_array_size(cases), ok = 0, nerr = 0;
    CHECK(n >= 1500);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        const char *src = json_string_value(json_object_get(c, "template"));
        json_t *want = json_object_get(c, "expected");
        qr_jinja *t = NULL;
        char *out = NULL;
        int rc = qr_jinja_parse(src, strlen(src), NULL, &t);
        if (rc == 0)
            rc = qr_jinja_render(t, vars, &DATE, &out, NULL);
        int good = want ? rc == 0 && !strcmp(out, json_string_value(want)) : rc != 0;
        if (!good) { /* JSON-escaped, so whitespace differences show */
            json_t *js = json_string(src), *jw = json_string(want ? json_string_value(want) : json_string_value(json_object_get(c, "error")));
            json_t *jq = json_string(rc ? qr_last_error() : out);
            char *a = json_dumps(js, JSON_ENCODE_ANY), *b = json_dumps(jw, JSON_ENCODE_ANY), *q = json_dumps(jq, JSON_ENCODE_ANY);
            CHECK_MSG(0, "case %zu: %s\n  jinja2: %s%s\n  quire:  %s%s", i, a, want ? "" : "error ", b, rc ? "error " : "", q);
            free(a);
            free(b);
            free(q);
            json_decref(js);
            json_decref(jw);
            json_decref(jq);
        }
        ok += good;
        nerr += !want;
        free(out);
        qr_jinja_free(t);
    }
    printf("%zu of %zu random templates as jinja2 renders them (%zu raise in both)\n", ok, n, nerr);
    json_decref(fx);
    return qr_test_done();
}
