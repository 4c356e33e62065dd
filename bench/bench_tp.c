/* bench_tp: tensor parallelism on the CPU (in-process ranks): decode speed at
 * TP = 1 and the given degrees, and what the ranks communicate per token.
 *
 *   bench_tp MODEL [TP ...] [--decode D] [--threads T]
 *
 * Per degree: one sequence, a 16-token prompt, then D greedy tokens (default
 * 128) through qr_generate; reported: decode tokens/s, all-reduces per
 * decoded token and their bytes (expected 2 x layers + 1 of d_model floats
 * at batch 1: after o_proj, after down_proj, after the embedding), and the
 * wall time rank 0 spent inside collectives per token (download, sum, upload
 * of the host communicator; includes waiting for the slowest rank). Each rank
 * gets T / TP CPU threads (T = 0: all online cores). Scaling efficiency =
 * (tok/s at TP) / (TP x tok/s at TP=1). Figures go to bench/RESULTS.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/models/model.h"

static int run(const char *path, int tp, int threads, int decode, double *tok_s)
{
    qr_backend *bes[QR_TP_MAX] = {0};
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = QR_F32};
    int rc = 0, per = threads / tp > 1 ? threads / tp : 1;
    for (int r = 0; r < tp && !rc; r++)
        rc = qr_backend_cpu_create(per, &bes[r]);
    if (!rc)
        rc = qr_model_load_tp(path, &mo, bes, tp, &m);
    if (rc) {
        fprintf(stderr, "bench_tp: TP=%d: %s\n", tp, qr_last_error());
        goto out;
    }
    int32_t prompt[16];
    for (int i = 0; i < 16; i++)
        prompt[i] = 1 + i * 7;
    qr_sample_params p;
    qr_sample_params_default(&p);
    p.max_tokens = decode;
    qr_gen_result warm = {0}, res = {0};
    p.max_tokens = 4;
    if ((rc = qr_generate(m, prompt, 16, &p, NULL, NULL, &warm)))
        goto out;
    qr_gen_result_free(&warm);
    p.max_tokens = decode;
    qr_comm_stats s0, s;
    qr_model_comm_stats(m, &s0, true); /* forget the warm-up */
    if ((rc = qr_generate(m, prompt, 16, &p, NULL, NULL, &res)))
        goto out;
    qr_model_comm_stats(m, &s0, true); /* the prefill and decode of that run */
    /* again, counting the decode steps alone: a run of 1 token is the prefill only */
    qr_gen_result pre = {0};
    p.max_tokens = 1;
    if ((rc = qr_generate(m, prompt, 16, &p, NULL, NULL, &pre)))
        goto out;
    qr_model_comm_stats(m, &s, true);
    qr_gen_result_free(&pre);
    double n_dec = (double)res.n_ids - 1; /* the first token comes from the prefill */
    *tok_s = n_dec / res.decode_s;
    const qr_model_config *c = qr_model_cfg(m);
    double ar = ((double)s0.n_allreduce - (double)s.n_allreduce) / n_dec,
           by = ((double)s0.allreduce_bytes - (double)s.allreduce_bytes) / n_dec;
    printf("TP=%d  %s %d layers d %d: decode %.1f tok/s (%zu tokens)", tp, c->arch_name, c->n_layer, c->d_model,
           *tok_s, res.n_ids);
    if (tp > 1)
        printf("; per token %.2f all-reduces, %.0f bytes, %.1f us in collectives (rank 0, of %.1f us per token)",
               ar, by, 1e6 * (s0.seconds - s.seconds) / n_dec, 1e6 / *tok_s);
    printf("\n");
    qr_gen_result_free(&res);
out:
    qr_model_free(m);
    for (int r = 0; r < tp; r++)
        qr_backend_destroy(bes[r]);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int tps[16], n_tp = 0, decode = 128, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!path)
            path = argv[i];
        else if (n_tp < 16)
            tps[n_tp++] = atoi(argv[i]);
    }
    if (!path || decode < 2) {
        fprintf(stderr, "usage: bench_tp MODEL [TP ...] [--decode D] [--threads T]\n");
        return 2;
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_tp == 0)
        tps[n_tp++] = 2;
    qr_log_set_level(QR_LOG_WARN);
    double base = 0, t;
    if (run(path, 1, threads, decode, &base))
        return 1;
    for (int i = 0; i < n_tp; i++) {
        if (tps[i] <= 1 || run(path, tps[i], threads, decode, &t))
            continue;
        printf("TP=%d scaling efficiency vs TP=1: %.0f%%\n", tps[i], 100.0 * t / (tps[i] * base));
    }
    return 0;
}
