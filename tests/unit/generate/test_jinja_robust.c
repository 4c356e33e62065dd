/* Robustness of generate/jinja on damaged templates: every prefix of every
 * chat template under tests/fixtures/models/chat-templates, and seeded random byte
 * mutations of each, must parse-and-render to success or a clean error code
 * with a message (run it under ASan/UBSan for memory safety). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "generate/jinja.h"
#include "tests/unit/test.h"

static const char *FILES[] = {
    "Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "google-gemma-2-2b-it.jinja", "ibm-granite-granite-3.3-2B-Instruct.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja", "microsoft-Phi-3.5-mini-instruct.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static long ok_runs, err_runs, bad;

static void run(const char *src, size_t len, const json_t *vars)
{
    qr_jinja *t = NULL;
    char *out = NULL;
    qr_clear_error();
    int rc = qr_jinja_parse(src, len, NULL, &t);
    if (rc == 0) {
        qr_jinja_date d = {2024, 7, 26, 13, 5};
        rc = qr_jinja_render(t, vars, &d, &out, NULL);
    }
    if (rc == 0) {
        ok_runs++;
        if (!out)
            bad++;
    } else {
        err_runs++;
        /* a clean failure: a known code with a message, no output */
        if (rc < QR_ECANCELED || rc > 0 || qr_last_error()[0] == 0 || out)
            bad++;
    }
    free(out);
    qr_jinja_free(t);
}

int main(void)
{
    json_t *vars = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u {{x}}\"},"
                              " {\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"u2\"}],"
                              " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}",
                              0, NULL);
    CHECK(vars != NULL);
    static const char alphabet[] = "{}%#-+~|()[]'\".:,= \n\tabcdefnotisinforifsetendx01";
    for (size_t f = 0; f < sizeof FILES / sizeof FILES[0]; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/chat-templates/%s", FILES[f]);
        FILE *fp = fopen(FIXTURE(rel), "rb");
        CHECK_MSG(fp != NULL, "cannot open %s", rel);
        if (!fp)
            continue;
        char *src = malloc(1 << 16);
        size_t n = fread(src, 1, (1 << 16) - 1, fp);
        fclose(fp);
        for (size_t cut = 0; cut <= n; cut += 1)
            run(src, cut, vars);
        char *mut = malloc(n + 1);
        for (int k = 0; k < 1500; k++) {
            memcpy(mut, src, n);
            int edits = 1 + (int)(next() % 4);
            for (int e = 0; e < edits; e++)
                mut[next() % n] = alphabet[next() % (sizeof alphabet - 1)];
            run(mut, n, vars);
        }
        free(mut);
        free(src);
    }
    printf("%ld renders succeeded, %ld failed cleanly, %ld misbehaved\n", ok_runs, err_runs, bad);
    CHECK(bad == 0);
    CHECK(ok_runs > 100 && err_runs > 1000);
    json_decref(vars);
    return qr_test_done();
}
