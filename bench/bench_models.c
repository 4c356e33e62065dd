/* bench_models: model speed on the CPU, with the machine's memory bandwidth
 * measured in the same run so decode speed can be stated as a fraction of the
 * bandwidth bound. Models are random-weight directories of real shapes written
 * by tools/mkmodel (see bench/run_models.sh).
 *
 *   bench_models [--threads N] [--encoder DIR] [--decoder NAME=DIR]... [--dtypes f32,bf16,int8]
 *                [--prompt P] [--decode D] [--reps R] [--bw-mib M]
 *
 * Method
 * - bandwidth: N threads each stream-read (sum 64-bit words of) their share of
 *   one M MiB buffer (default 2048, written beforehand; 256-bit loads when the CPU
 *   has AVX2); best of 12 passes.
 * - encoder: qr_embed_ids on 32 sequences x 128 tokens (f32 weights); best of R.
 * - prefill: one prompt of P tokens (default 256), max_tokens 1: P / prefill_s.
 * - decode: a 16-token prompt, then D greedy tokens (default 64):
 *   (generated - 1) / decode_s (the first token comes from the prefill logits).
 *   Bound: bytes read per token = weight bytes held by the backend, less the
 *   embedding table when the lm_head is separate (only one row of it is read),
 *   plus the KV cache read at the mean context (f32 K and V). Fraction =
 *   (bytes/token x tokens/s) / bandwidth. The bandwidth of a 128 MiB buffer is
 *   printed too: where the last-level cache is that large, models that fit in it
 *   can beat the DRAM bound.
 * Figures go to bench/RESULTS.md. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "membw.h"
#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- bandwidth */

/* Returns the best read bandwidth in bytes/s over `passes` passes (0 when out of memory). */
static double measure_bandwidth(size_t bytes, int threads, int passes)
{
    double bw[64], best = 0;
    if (passes > 64 || qb_membw_passes(bytes, threads, passes, bw))
        return 0;
    for (int p = 0; p < passes; p++)
        best = bw[p] > best ? bw[p] : best;
    return best;
}

/* ---------------------------------------------------------------- models */

static uint64_t rng_state = 0x1234567;
static int32_t rnd(int32_t lo, int32_t hi)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (int32_t)((rng_state >> 33) % (uint64_t)(hi - lo));
}

static int load(const char *dir, qr_dtype dt, qr_backend *be, qr_model **m)
{
    qr_model_opts o = {.dtype = dt};
    double t0 = now();
    int rc = qr_model_load(dir, &o, be, m);
    if (rc) {
        fprintf(stderr, "bench_models: %s (%s): %s: %s\n", dir, qr_dtype_name(dt), qr_strerror(rc), qr_last_error());
        return rc;
    }
    fprintf(stderr, "  loaded %s as %s in %.1f s (%.0f MB of weights)\n", dir, qr_dtype_name(dt), now() - t0,
            (double)qr_model_weight_bytes(*m) / 1e6);
    return 0;
}

static void bench_encoder(const char *dir, qr_backend *be, int reps)
{
    enum { B = 32, T = 128 };
    qr_model *m = NULL;
    if (load(dir, QR_F32, be, &m))
        return;
    const qr_model_config *c = qr_model_cfg(m);
    int32_t *ids = malloc(sizeof(int32_t) * B * T);
    const int32_t *seqs[B];
    int32_t lens[B];
    float *out = malloc(sizeof(float) * B * (size_t)c->d_model);
    for (int b = 0; b < B; b++) {
        int32_t *s = ids + b * T;
        s[0] = 101; /* [CLS] [SEP] of BERT vocabularies; any id < vocab works */
        for (int t = 1; t < T - 1; t++)
            s[t] = rnd(1000, c->vocab_size);
        s[T - 1] = 102;
        seqs[b] = s;
        lens[b] = T;
    }
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* first run warms up */
        double t0 = now();
        int rc = qr_embed_ids(m, seqs, lens, B, out);
        double dt = now() - t0;
        if (rc) {
            fprintf(stderr, "bench_models: embed: %s: %s\n", qr_strerror(rc), qr_last_error());
            break;
        }
        if (r > 0 && dt < best)
            best = dt;
    }
    if (best < 1e30)
        printf("encoder (MiniLM-L6 shape, f32, batch %d x %d tokens): %.0f tokens/s (%.3f s per batch)\n", B, T,
               B * T / best, best);
    free(ids);
    free(out);
    qr_model_free(m);
}

static void bench_decoder(const char *name, const char *dir, qr_dtype dt, qr_backend *be, int n_prompt,
                          int n_decode, int reps, double bw)
{
    qr_model *m = NULL;
    if (load(dir, dt, be, &m))
        return;
    const qr_model_config *c = qr_model_cfg(m);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = rnd(1000, c->vocab_size - 1000); /* away from special ids at both ends */
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.temperature = 0;

    /* prefill */
    double best_pf = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        qr_gen_result g;
        p.max_tokens = 1;
        int rc = qr_generate(m, prompt, (size_t)n_prompt, &p, NULL, NULL, &g);
        if (rc) {
            fprintf(stderr, "bench_models: prefill: %s: %s\n", qr_strerror(rc), qr_last_error());
            goto out;
        }
        if (r > 0 && g.prefill_s < best_pf)
            best_pf = g.prefill_s;
        qr_gen_result_free(&g);
    }

    /* decode after a 16-token prompt */
    double best_dec = 0; /* tokens/s */
    int n_gen = 0;
    for (int r = 0; r < reps + 1; r++) {
        qr_gen_result g;
        p.max_tokens = n_decode;
        int rc = qr_generate(m, prompt, 16, &p, NULL, NULL, &g);
        if (rc) {
            fprintf(stderr, "bench_models: decode: %s: %s\n", qr_strerror(rc), qr_last_error());
            goto out;
        }
        double tps = g.n_ids > 1 && g.decode_s > 0 ? (double)(g.n_ids - 1) / g.decode_s : 0;
        if (r > 0 && tps > best_dec) {
            best_dec = tps;
            n_gen = (int)g.n_ids;
        }
        qr_gen_result_free(&g);
    }

    /* bytes read per decoded token */
    double wbytes = (double)qr_model_weight_bytes(m);
    /* the token table is loaded in the weight dtype (int8: plus one f32 scale per row);
     * untied, decode reads one row of it; tied, the whole table is the lm_head */
    double emb = c->tie_embeddings ? 0
                                   : (double)c->vocab_size *
                                         ((double)qr_dtype_row_bytes(dt, c->d_model) + (dt == QR_I8 ? 4.0 : 0.0));
    double ctx = 16 + n_gen / 2.0;
    double kv = 2.0 * c->n_layer * c->n_kv_head * c->head_dim * 4.0 * ctx;
    double per_tok = wbytes - emb + kv;
    double bound = bw / per_tok;
    printf("| %s | %s | %.0f | %.0f | %.0f | %.2f | %.1f | %.0f%% |\n", name, qr_dtype_name(dt), wbytes / 1e6,
           per_tok / 1e6, n_prompt / best_pf, best_dec, bound, 100.0 * best_dec / bound);
    fflush(stdout);
out:
    free(prompt);
    qr_model_free(m);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_models [--threads N] [--encoder DIR] [--decoder NAME=DIR]... "
                    "[--dtypes f32,bf16,int8] [--prompt P] [--decode D] [--reps R] [--bw-mib M]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int threads = 0, n_prompt = 256, n_decode = 64, reps = 2, bw_mib = 2048;
    const char *encoder = NULL, *dtypes = "f32,bf16,int8";
    const char *dec[8];
    int n_dec = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--encoder"))
            encoder = v;
        else if (!strcmp(a, "--decoder") && n_dec < 8)
            dec[n_dec++] = v;
        else if (!strcmp(a, "--dtypes"))
            dtypes = v;
        else if (!strcmp(a, "--prompt"))
            n_prompt = atoi(v);
        else if (!strcmp(a, "--decode"))
            n_decode = atoi(v);
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--bw-mib"))
            bw_mib = atoi(v);
        else
            usage();
        i++;
    }
    if (n_prompt < 16 || n_decode < 2 || reps < 1 || bw_mib < 64)
        usage();
    qr_backend *be = NULL;
    int rc = qr_backend_cpu_create(threads, &be);
    if (rc) {
        fprintf(stderr, "bench_models: cpu backend: %s: %s\n", qr_strerror(rc), qr_last_error());
        return 1;
    }
    int nthr = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthr > 64)
        nthr = 64;
    double bw = measure_bandwidth((size_t)bw_mib << 20, nthr, 12);
    printf("memory read bandwidth (DRAM): %.2f GB/s (%d threads, %d MiB buffer, best of 12)\n", bw / 1e9, nthr, bw_mib);
    printf("read bandwidth of a 128 MiB buffer (cache-resident where the LLC is larger): %.2f GB/s\n",
           measure_bandwidth((size_t)128 << 20, nthr, 12) / 1e9);
    fflush(stdout);
    if (encoder)
        bench_encoder(encoder, be, reps);
    if (n_dec)
        printf("\n| model | dtype | weight MB | MB read per token | prefill %d tokens/s | decode tokens/s (%d tokens) "
               "| DRAM bound tokens/s | of the bound |\n"
               "|---|---|---|---|---|---|---|---|\n",
               n_prompt, n_decode);
    for (int d = 0; d < n_dec; d++) {
        char name[256];
        snprintf(name, sizeof name, "%s", dec[d]);
        char *eq = strchr(name, '=');
        if (!eq)
            usage();
        *eq = 0;
        const char *dir = dec[d] + (eq - name) + 1;
        char list[64];
        snprintf(list, sizeof list, "%s", dtypes);
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            qr_dtype dt;
            if (qr_dtype_parse(tok, &dt)) {
                fprintf(stderr, "bench_models: --dtypes %s: unknown\n", tok);
                return 2;
            }
            bench_decoder(name, dir, dt, be, n_prompt, n_decode, reps, bw);
        }
    }
    qr_backend_destroy(be);
    return 0;
}
