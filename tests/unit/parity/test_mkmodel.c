/* tools/mkmodel writes loadable random-weight models with exactly the tensors
 * Hugging Face saves.
 *
 *   test_mkmodel MKMODEL_EXE
 *
 * For each parity fixture config (BERT, Llama-3 untied, Qwen2 tied with q/k/v
 * bias, Mistral) mkmodel writes a model into a temporary directory; its tensor
 * names and shapes must equal those of the fixture's model.safetensors (written
 * independently by tools/reference/ref_models.py), matrices must have mean ~0
 * and std ~0.02, norm weights 1 and norm biases 0; the BF16 variant must hold
 * the same values rounded to bf16; and qr_model_load must load it and run it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"
#include "tests/unit/test.h"

static int run(const char *exe, const char *args, const char *cfg, const char *out)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' '%s'", exe, args, cfg, out);
    return system(cmd);
}

static const char *suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf) ? s + n - k : NULL;
}

static void check_model(const char *exe, const char *fixture, const char *tmp)
{
    char rel[256], cfg[4096], out32[4200], out16[4200];
    snprintf(rel, sizeof rel, "models/%s", fixture);
    snprintf(cfg, sizeof cfg, "%s/config.json", FIXTURE(rel));
    snprintf(out32, sizeof out32, "%s/%s-f32", tmp, fixture);
    snprintf(out16, sizeof out16, "%s/%s-bf16", tmp, fixture);
    CHECK_INT(run(exe, "--seed 7 --no-aux", cfg, out32), 0);
    CHECK_INT(run(exe, "--seed 7 --dtype bf16", cfg, out16), 0); /* with the fixture's aux files */

    qr_wsrc *ref = NULL, *a = NULL, *b = NULL;
    CHECK_OK(qr_wsrc_open(FIXTURE(rel), &ref));
    CHECK_OK(qr_wsrc_open(out32, &a));
    CHECK_OK(qr_wsrc_open(out16, &b));
    if (!ref || !a || !b)
        goto done;
    CHECK_INT(qr_wsrc_count(a), qr_wsrc_count(ref));
    CHECK_INT(qr_wsrc_count(b), qr_wsrc_count(ref));
    size_t n_mat = 0, n_norm = 0;
    for (size_t i = 0; i < qr_wsrc_count(ref); i++) {
        const qr_wtensor *r = qr_wsrc_at(ref, i);
        const qr_wtensor *x = qr_wsrc_find(a, r->name), *y = qr_wsrc_find(b, r->name);
        CHECK_MSG(x && y, "%s: tensor %s missing", fixture, r->name);
        if (!x || !y)
            continue;
        CHECK_INT(x->n_dims, r->n_dims);
        for (int k = 0; k < r->n_dims; k++)
            CHECK_INT(x->shape[k], r->shape[k]);
        CHECK_INT(x->dtype, QR_F32);
        CHECK_INT(y->dtype, QR_BF16);
        int64_t n = 1;
        for (int k = 0; k < x->n_dims; k++)
            n *= x->shape[k];
        const float *v = x->data;
        const uint16_t *h = y->data;
        size_t bad16 = 0;
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < n; j++) {
            s += v[j];
            s2 += (double)v[j] * v[j];
            bad16 += h[j] != qr_f32_to_bf16(v[j]);
        }
        CHECK_MSG(bad16 == 0, "%s: %s: %zu bf16 values differ from the rounded f32 ones", fixture, r->name, bad16);
        bool is_norm = strstr(r->name, "norm") || strstr(r->name, "LayerNorm");
        if (is_norm) {
            double want = suffix(r->name, ".bias") ? 0.0 : 1.0;
            CHECK_MSG(s == want * (double)n && s2 == want * (double)n, "%s: %s: not all %g", fixture, r->name, want);
            n_norm++;
        } else if (x->n_dims == 2 && n >= 4096) {
            double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
            CHECK_MSG(fabs(mean) < 0.003 && fabs(sd - 0.02) < 0.002, "%s: %s: mean %g std %g", fixture, r->name,
                      mean, sd);
            n_mat++;
        }
    }
    CHECK(n_mat > 4 && n_norm > 2);

    /* it loads and runs */
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(1, &be));
    qr_model_opts o = {.dtype = QR_F32};
    qr_model *m = NULL;
    CHECK_OK(qr_model_load(out16, &o, be, &m));
    if (m) {
        const qr_model_config *c = qr_model_cfg(m);
        int32_t ids[5] = {2, 10, 11, 12, 3};
        if (c->arch == QR_ARCH_BERT) {
            const int32_t *seqs[1] = {ids};
            int32_t lens[1] = {5};
            float *e = calloc((size_t)c->d_model, sizeof *e);
            CHECK_OK(qr_embed_ids(m, seqs, lens, 1, e));
            double nn = 0;
            for (int j = 0; j < c->d_model; j++)
                nn += (double)e[j] * e[j];
            CHECK_NEAR(nn, 1.0, 1e-4);
            free(e);
        } else {
            qr_sample_params p;
            qr_sample_params_default(&p);
            p.temperature = 0;
            p.max_tokens = 3;
            qr_gen_result g;
            int rc = qr_generate(m, ids, 5, &p, NULL, NULL, &g);
            CHECK_OK(rc);
            if (rc == 0) {
                CHECK(g.n_ids >= 1);
                qr_gen_result_free(&g);
            }
        }
        qr_model_free(m);
    }
    qr_backend_destroy(be);
done:
    qr_wsrc_close(ref);
    qr_wsrc_close(a);
    qr_wsrc_close(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_mkmodel MKMODEL_EXE\n");
        return 2;
    }
    char tmp[] = "/tmp/quire-test-mkmodel-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    const char *fx[] = {"bert_minilm", "llama3", "qwen2", "mistral"};
    for (size_t i = 0; i < sizeof fx / sizeof *fx; i++)
        check_model(argv[1], fx[i], tmp);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return qr_test_done();
}
