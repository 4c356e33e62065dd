/* quire eval perplexity FILE --model M [--ctx N] [--chunks N] [--compare-dtype D] [--json]:
 * perplexity of a text as llama.cpp's perplexity tool (tools/perplexity/
 * perplexity.cpp, perplexity()) computes it, so the two figures compare:
 *
 *   - the whole file is tokenized once with the tokenizer's special tokens
 *     (a BOS in front when the model's tokenizer adds one: llama.cpp's
 *     common_tokenize(.., add_special = true));
 *   - it is cut into n_chunk = n_tokens / n_ctx chunks of n_ctx tokens (the
 *     tail is dropped; at least 2 * n_ctx tokens are needed, as there);
 *   - each chunk is evaluated on its own, from an empty cache, with its first
 *     token replaced by BOS when the tokenizer adds a BOS;
 *   - only the second half is scored: with first = n_ctx / 2, the logits of
 *     positions first .. n_ctx-2 predict tokens first+1 .. n_ctx-1
 *     (n_ctx - 1 - first tokens per chunk);
 *   - ppl = exp(mean NLL) over all scored tokens, printed after each chunk as
 *     "[i]running-ppl,", and the final "+/-" is ppl * sqrt(var(NLL) / (n - 1)).
 *
 * Also reported: top-1 accuracy (the fraction of scored positions whose
 * arg-max logit is the next token). With --compare-dtype D the model is
 * loaded a second time at D and evaluated on the same chunks: its perplexity,
 * the top-1 agreement between the two runs (same arg-max) and the mean
 * KL(P_dtype || P_D) per position, the --dtype run being the reference (as
 * llama.cpp's --kl-divergence takes the base logits as P).
 *
 * The public model API gives the logits of the last new token of each
 * sequence in a decoder step, so the logits of every scored position come
 * from a batched state of SLOTS sequences per chunk: slot s first prefills
 * tokens [0, first + s*L) (cache only), then all slots feed one token per step
 * for L steps, slot s producing the logits of positions first + s*L + t. The
 * results equal one-position-at-a-time evaluation up to float rounding; the
 * batching trades some repeated prefill for fewer single-row steps. */
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"

#define PPL_SLOTS 4
#define PPL_MIN_CTX 8

static double ppl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Logits of positions first .. n_ctx-2 of one chunk (tok: n_ctx ids) into out
 * ((n_ctx-1-first, V) floats). st: PPL_SLOTS slots of n_ctx positions; lg:
 * (PPL_SLOTS, V) scratch. */
static int chunk_logits(qr_decoder_state *st, const int32_t *tok, int n_ctx, int first, size_t v, float *lg,
                        float *out)
{
    int m = n_ctx - 1 - first, L = (m + PPL_SLOTS - 1) / PPL_SLOTS, k = 0, rc;
    qr_dec_seq ds[PPL_SLOTS];
    int row[PPL_SLOTS];
    for (int s = 0; s < PPL_SLOTS; s++)
        if ((rc = qr_decoder_slot_truncate(st, s, 0)))
            return rc;
    for (int s = 0; s < PPL_SLOTS; s++) /* prefills of [0, first + s*L): cache only */
        if (s * L < m)
            ds[k++] = (qr_dec_seq){.slot = s, .ids = tok, .n = first + s * L};
    if ((rc = qr_decoder_step(st, ds, k, NULL)))
        return rc;
    for (int t = 0; t < L; t++) {
        k = 0;
        for (int s = 0; s < PPL_SLOTS; s++) {
            int r = s * L + t;
            if (r < m) {
                row[k] = r;
                ds[k++] = (qr_dec_seq){.slot = s, .ids = tok + first + r, .n = 1};
            }
        }
        if ((rc = qr_decoder_step(st, ds, k, lg)))
            return rc;
        for (int i = 0; i < k; i++)
            memcpy(out + (size_t)row[i] * v, lg + (size_t)i * v, sizeof(float) * v);
    }
    return 0;
}

/* log-sum-exp of a logits row (double accumulation) and its arg-max (lowest id on ties). */
static double row_lse(const float *x, size_t v, int32_t *amax)
{
    float mx = x[0];
    size_t a = 0;
    for (size_t j = 1; j < v; j++)
        if (x[j] > mx) {
            mx = x[j];
            a = j;
        }
    double s = 0;
    for (size_t j = 0; j < v; j++)
        s += exp((double)x[j] - mx);
    *amax = (int32_t)a;
    return (double)mx + log(s);
}

typedef struct {
    double nll, nll2; /* sums of NLL and NLL^2 */
    size_t n, top1;   /* scored tokens; arg-max == next token */
} ppl_acc;

static double acc_ppl(const ppl_acc *a) { return exp(a->nll / (double)a->n); }

/* llama.cpp's "+/-": ppl * sqrt(var / (n - 1)) with var = E[NLL^2] - E[NLL]^2. */
static double acc_err(const ppl_acc *a)
{
    double mean = a->nll / (double)a->n, var = a->nll2 / (double)a->n - mean * mean;
    return var > 0 && a->n > 1 ? acc_ppl(a) * sqrt(var / (double)(a->n - 1)) : 0.0;
}

typedef struct {
    const char *file;
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} ppl_input;

static int read_text(const char *cmd, const char *path, int64_t cap, ppl_input *in)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "quire %s: %s: cannot read the text file\n", cmd, path);
        return CLI_EXIT_NOTFOUND;
    }
    if (!S_ISREG(sb.st_mode)) {
        fprintf(stderr, "quire %s: %s: not a regular file\n", cmd, path);
        return CLI_EXIT_USAGE;
    }
    if ((int64_t)sb.st_size > cap) {
        fprintf(stderr, "quire %s: %s: %lld bytes, over the limit --max-file-bytes %lld\n", cmd, path,
                (long long)sb.st_size, (long long)cap);
        return CLI_EXIT_INPUT;
    }
    FILE *f = fopen(path, "rb");
    in->text = malloc((size_t)sb.st_size + 1);
    if (!f || !in->text) {
        if (f)
            fclose(f);
        fprintf(stderr, "quire %s: %s: cannot read the text file\n", cmd, path);
        return f ? CLI_EXIT_ERROR : CLI_EXIT_NOTFOUND;
    }
    in->len = fread(in->text, 1, (size_t)sb.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "quire %s: %s: read error\n", cmd, path);
        return CLI_EXIT_ERROR;
    }
    in->text[in->len] = '\0';
    return -1;
}

static void pp_usage(FILE *f)
{
    fprintf(f, "usage: quire eval perplexity FILE --model M [--ctx 512] [--chunks N] [--dtype D] [--compare-dtype D2] "
               "[--json]\n\n"
               "Perplexity of the text in FILE as llama.cpp's perplexity tool computes it: the whole text tokenized\n"
               "(BOS in front when the tokenizer adds one), cut into chunks of --ctx tokens (default 512; at least\n"
               "2 chunks), each evaluated on its own with BOS as its first token when the tokenizer adds one, the\n"
               "second half of each chunk scored; ppl = exp(mean NLL) +/- ppl * sqrt(var(NLL) / (n - 1)).\n"
               "Prints the running perplexity after each chunk ([i]ppl) and the final estimate. --chunks N scores\n"
               "the first N chunks only. Also: top-1 accuracy (arg-max == next token). --compare-dtype D2 loads\n"
               "the model a second time at D2 and reports its perplexity on the same chunks, the top-1 agreement\n"
               "of the two runs and the mean KL(P_dtype || P_D2) per scored position.\n"
               "FILE is limited to --max-file-bytes; --ctx to the model's context length.\n");
}

/* Removes "--name VALUE" / "--name=VALUE" from argv (in place), *val borrowed
 * from argv; 1 when found, 0 when absent, -1 when the value is missing. */
static int take_flag(int *argc, char **argv, const char *name, const char **val)
{
    size_t nl = strlen(name);
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strncmp(argv[i], name, nl) != 0 || (argv[i][nl] != '\0' && argv[i][nl] != '='))
            continue;
        int drop = 1;
        if (argv[i][nl] == '=') {
            *val = argv[i] + nl + 1;
        } else {
            if (i + 1 >= *argc)
                return -1;
            *val = argv[i + 1];
            drop = 2;
        }
        for (int j = i; j + drop < *argc; j++)
            argv[j] = argv[j + drop];
        *argc -= drop;
        return 1;
    }
    return 0;
}

int cli_eval_perplexity(int argc, char **argv)
{
    const char *cmd = "eval perplexity";
    static const int allowed[] = {QR_OPT_MODEL,  QR_OPT_CTX,    QR_OPT_DTYPE,     QR_OPT_ACT_DTYPE,
                                  QR_OPT_THREADS, QR_OPT_DEVICE, QR_OPT_LOG_LEVEL, QR_OPT_JSON,
                                  QR_OPT_MAX_FILE_BYTES, -1};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            pp_usage(stdout);
            return CLI_EXIT_OK;
        }
    /* argv is the process's: work on a copy for the flags only this subcommand knows */
    char **av = malloc(sizeof(char *) * ((size_t)argc + 1)), **oargv = malloc(sizeof(char *) * ((size_t)argc + 1));
    char **paths = malloc(sizeof(char *) * ((size_t)argc + 1));
    if (!av || !oargv || !paths) {
        free(av);
        free(oargv);
        free(paths);
        return cli_fail(cmd, QR_ENOMEM, "arguments");
    }
    memcpy(av, argv, sizeof(char *) * (size_t)argc);
    int ac = argc, oargc = 0, np = 0, code = CLI_EXIT_OK, rc;
    const char *cmp_s = NULL, *chunks_s = NULL;
    char *mpath = NULL;
    qr_options *o = NULL;
    qr_backend *be = NULL;
    qr_model *m = NULL, *m2 = NULL;
    qr_decoder_state *st = NULL, *st2 = NULL;
    ppl_input in = {0};
    float *lg = NULL, *out = NULL, *out2 = NULL;
    double *run_ppl = NULL;
    if (take_flag(&ac, av, "--compare-dtype", &cmp_s) < 0 || take_flag(&ac, av, "--chunks", &chunks_s) < 0) {
        fprintf(stderr, "quire %s: --compare-dtype and --chunks take a value\n", cmd);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    cli_split_paths(ac, av, oargv, &oargc, paths, &np);
    code = cli_load_options(cmd, "FILE --model M [--ctx 512] [--chunks N] [--dtype D] [--compare-dtype D2] [--json]",
                            "Perplexity of a text as llama.cpp's perplexity tool computes it (see quire eval "
                            "perplexity -h).",
                            oargc, oargv, allowed, &o);
    if (code >= 0)
        goto out;
    code = CLI_EXIT_OK;
    if (np != 1) {
        fprintf(stderr, "quire %s: exactly one text FILE is needed (%d given)\n", cmd, np);
        pp_usage(stderr);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    in.file = paths[0];
    long max_chunks = 0;
    if (chunks_s) {
        char *end;
        max_chunks = strtol(chunks_s, &end, 10);
        if (*end || max_chunks < 1 || max_chunks > 1000000) {
            fprintf(stderr, "quire %s: --chunks %s: expected an integer in 1..1000000\n", cmd, chunks_s);
            code = CLI_EXIT_USAGE;
            goto out;
        }
    }
    qr_dtype dt2 = QR_F32;
    if (cmp_s && (rc = qr_dtype_parse(cmp_s, &dt2))) {
        fprintf(stderr, "quire %s: --compare-dtype %s: unknown dtype (f32|bf16|f16|int8)\n", cmd, cmp_s);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    bool json = qr_opt_bool(o, QR_OPT_JSON);
    /* llama.cpp's perplexity figures are quoted at -c 512; --ctx's default (4096) is generate's */
    int64_t n_ctx = qr_opt_source_of(o, QR_OPT_CTX) == QR_SRC_DEFAULT ? 512 : qr_opt_int(o, QR_OPT_CTX);
    if ((code = read_text(cmd, in.file, qr_opt_int(o, QR_OPT_MAX_FILE_BYTES), &in)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    if ((code = cli_resolve_model(cmd, o, QR_OPT_MODEL, &mpath)) >= 0 ||
        (code = cli_load_model(cmd, o, mpath, &be, &m)) >= 0)
        goto out;
    code = CLI_EXIT_OK;
    const qr_model_config *c = qr_model_cfg(m);
    const qr_tokenizer *tk = qr_model_tokenizer(m);
    if (c->arch == QR_ARCH_BERT) {
        fprintf(stderr, "quire %s: %s is an encoder: perplexity needs a decoder (Llama family)\n", cmd,
                qr_opt_str(o, QR_OPT_MODEL));
        code = CLI_EXIT_UNSUPPORTED;
        goto out;
    }
    if (!tk) {
        fprintf(stderr, "quire %s: %s has no tokenizer\n", cmd, qr_opt_str(o, QR_OPT_MODEL));
        code = CLI_EXIT_UNSUPPORTED;
        goto out;
    }
    if (n_ctx < PPL_MIN_CTX || n_ctx > c->max_pos) {
        fprintf(stderr, "quire %s: --ctx %lld: outside %d..%lld (the model's context length)\n", cmd,
                (long long)n_ctx, PPL_MIN_CTX, (long long)c->max_pos);
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = qr_tokenize(tk, in.text, in.len, true, &in.ids, &in.n_ids))) {
        code = cli_fail(cmd, rc, in.file);
        goto out;
    }
    /* does the tokenizer put a BOS in front (llama_vocab_get_add_bos)? */
    int32_t bos = qr_tokenizer_bos(tk);
    bool add_bos = false;
    if (bos >= 0) {
        int32_t *p = NULL;
        size_t n = 0;
        if ((rc = qr_tokenize(tk, "a", 1, true, &p, &n))) {
            code = cli_fail(cmd, rc, "tokenizer");
            goto out;
        }
        add_bos = n > 0 && p[0] == bos;
        free(p);
    }
    if (in.n_ids < (size_t)(2 * n_ctx)) {
        fprintf(stderr, "quire %s: %s: %zu tokens; a context of %lld needs at least %lld (2 chunks)\n", cmd, in.file,
                in.n_ids, (long long)n_ctx, (long long)(2 * n_ctx));
        code = CLI_EXIT_INPUT;
        goto out;
    }
    size_t n_chunk = in.n_ids / (size_t)n_ctx;
    if (max_chunks > 0 && (size_t)max_chunks < n_chunk)
        n_chunk = (size_t)max_chunks;
    if (cmp_s) {
        qr_model_opts mo = {.dtype = dt2};
        if ((rc = qr_model_load(mpath, &mo, be, &m2))) {
            code = cli_fail(cmd, rc, "loading the --compare-dtype model");
            goto out;
        }
    }
    int first = (int)n_ctx / 2, mrows = (int)n_ctx - 1 - first;
    size_t v = (size_t)c->vocab_size;
    lg = malloc(sizeof(float) * PPL_SLOTS * v);
    out = malloc(sizeof(float) * (size_t)mrows * v);
    out2 = m2 ? malloc(sizeof(float) * (size_t)mrows * v) : NULL;
    run_ppl = malloc(sizeof(double) * n_chunk);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (!lg || !out || (m2 && !out2) || !run_ppl || !tok) {
        free(tok);
        code = cli_fail(cmd, QR_ENOMEM, "logits");
        goto out;
    }
    if ((rc = qr_decoder_state_create(m, PPL_SLOTS, (int)n_ctx, &st)) ||
        (m2 && (rc = qr_decoder_state_create(m2, PPL_SLOTS, (int)n_ctx, &st2)))) {
        free(tok);
        code = cli_fail(cmd, rc, "decoder state");
        goto out;
    }
    if (!json) {
        fprintf(stderr, "quire %s: %s: %zu tokens, %zu chunks of %lld (BOS per chunk: %s), %d scored per chunk\n", cmd,
                in.file, in.n_ids, n_chunk, (long long)n_ctx, add_bos ? "yes" : "no", mrows);
    }
    ppl_acc a = {0}, b = {0};
    double kl_sum = 0, kl_max = 0, t0 = ppl_now();
    size_t agree = 0;
    for (size_t ci = 0; ci < n_chunk; ci++) {
        memcpy(tok, in.ids + ci * (size_t)n_ctx, sizeof(int32_t) * (size_t)n_ctx);
        if (add_bos)
            tok[0] = bos;
        if ((rc = chunk_logits(st, tok, (int)n_ctx, first, v, lg, out)) ||
            (m2 && (rc = chunk_logits(st2, tok, (int)n_ctx, first, v, lg, out2)))) {
            free(tok);
            char what[64];
            snprintf(what, sizeof what, "chunk %zu", ci + 1);
            code = cli_fail(cmd, rc, what);
            goto out;
        }
        for (int r = 0; r < mrows; r++) {
            int32_t next = tok[first + r + 1], am, am2;
            const float *x = out + (size_t)r * v;
            double lse = row_lse(x, v, &am), nll = lse - (double)x[next];
            a.nll += nll;
            a.nll2 += nll * nll;
            a.n++;
            a.top1 += am == next;
            if (m2) {
                const float *y = out2 + (size_t)r * v;
                double lse2 = row_lse(y, v, &am2), nll2 = lse2 - (double)y[next], kl = 0;
                b.nll += nll2;
                b.nll2 += nll2 * nll2;
                b.n++;
                b.top1 += am2 == next;
                agree += am == am2;
                for (size_t j = 0; j < v; j++) {
                    double lp = (double)x[j] - lse, lq = (double)y[j] - lse2;
                    kl += exp(lp) * (lp - lq);
                }
                kl_sum += kl;
                kl_max = kl > kl_max ? kl : kl_max;
            }
        }
        run_ppl[ci] = acc_ppl(&a);
        if (!json) {
            if (m2)
                printf("[%zu]%.4f/%.4f,", ci + 1, run_ppl[ci], acc_ppl(&b));
            else
                printf("[%zu]%.4f,", ci + 1, run_ppl[ci]);
            fflush(stdout);
        }
    }
    free(tok);
    double secs = ppl_now() - t0;
    const char *dname = qr_opt_str(o, QR_OPT_DTYPE);
    if (json) {
        json_t *runs = json_array();
        for (size_t ci = 0; ci < n_chunk; ci++)
            json_array_append_new(runs, json_real(run_ppl[ci]));
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:f, s:f, s:f, s:f, s:o, s:f}", "file", in.file,
                              "model", qr_opt_str(o, QR_OPT_MODEL), "dtype", dname, "ctx", (json_int_t)n_ctx, "tokens",
                              (json_int_t)in.n_ids, "chunks", (json_int_t)n_chunk, "scored", (json_int_t)a.n, "bos",
                              add_bos, "ppl", acc_ppl(&a), "ppl_err", acc_err(&a), "nll", a.nll / (double)a.n, "top1",
                              (double)a.top1 / (double)a.n, "running_ppl", runs, "seconds", secs);
        if (j && m2) {
            json_t *cj = json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "dtype", cmp_s, "ppl", acc_ppl(&b),
                                   "ppl_err", acc_err(&b), "nll", b.nll / (double)b.n, "top1",
                                   (double)b.top1 / (double)b.n, "top1_agreement", (double)agree / (double)a.n,
                                   "kl_mean", kl_sum / (double)a.n, "kl_max", kl_max, "delta_ppl_rel",
                                   acc_ppl(&b) / acc_ppl(&a) - 1.0);
            json_object_set_new(j, "compare", cj);
        }
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(j);
        if (!s) {
            code = cli_fail(cmd, QR_ENOMEM, "json");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("\nFinal estimate: PPL = %.4f +/- %.5f (dtype %s; %zu tokens scored in %zu chunks of %lld; top-1 %.4f; "
               "%.1f s)\n",
               acc_ppl(&a), acc_err(&a), dname, a.n, n_chunk, (long long)n_ctx, (double)a.top1 / (double)a.n, secs);
        if (m2)
            printf("Compared:       PPL = %.4f +/- %.5f (dtype %s; top-1 %.4f); ppl %+.4f%%, top-1 agreement %.4f, "
                   "mean KL(%s || %s) %.6f (max %.4f)\n",
                   acc_ppl(&b), acc_err(&b), cmp_s, (double)b.top1 / (double)b.n,
                   100.0 * (acc_ppl(&b) / acc_ppl(&a) - 1.0), (double)agree / (double)a.n, dname, cmp_s,
                   kl_sum / (double)a.n, kl_max);
    }
out:
    qr_decoder_state_free(st2);
    qr_decoder_state_free(st);
    qr_model_free(m2);
    qr_model_free(m);
    qr_backend_destroy(be);
    free(run_ppl);
    free(out2);
    free(out);
    free(lg);
    free(in.ids);
    free(in.text);
    qr_options_free(o);
    free(mpath);
    free(paths);
    free(oargv);
    free(av);
    return code;
}
