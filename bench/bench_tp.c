/* bench_tp: tensor parallelism: decode speed at TP = 1 and the given
 * degrees, the scaling efficiency, and what the ranks communicate per token.
 *
 *   bench_tp MODEL [TP ...] [--decode D] [--threads T] [--device cpu|cuda] [--dtype D] [--same-gpu]
 *
 * --device cpu (default): in-process CPU ranks. --device cuda: rank r is a
 * CUDA backend on visible GPU r (a degree needing more GPUs than visible is
 * skipped, saying so); one rank per GPU uses NCCL when built with it
 * (runtime/dist/comm_select.c), and the line names the communicator.
 * --same-gpu: every rank on GPU 0 (the host communicator; the single-GPU
 * check). --dtype: weight dtype (default f32 on the CPU, bf16 on CUDA).
 * The site check on one node with 8 GPUs (README "Tensor parallelism"):
 *   bench_tp MODEL 2 4 8 --device cuda --dtype bf16 --decode 256
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
#include "runtime/dist/comm.h"
#include "common/log.h"
#include "runtime/models/model.h"

static bool cuda, same_gpu;
static qr_dtype wdt = QR_F32;

static int run(const char *path, int tp, int threads, int decode, double *tok_s)
{
    qr_backend *bes[QR_TP_MAX] = {0};
    qr_model *m = NULL;
    qr_model_opts mo = {.dtype = wdt};
    int rc = 0, per = threads / tp > 1 ? threads / tp : 1;
    if (cuda) {
        qr_gpu_info g[QR_TP_MAX];
        int ng = 0;
        if (qr_cuda_devices(g, QR_TP_MAX, &ng) || ng < 1 || (!same_gpu && ng < tp)) {
            printf("TP=%d: skipped: %d GPUs visible (%s)\n", tp, ng, ng ? "one per rank" : qr_cuda_why_none());
            return 1;
        }
        for (int r = 0; r < tp && !rc; r++)
            rc = qr_backend_cuda_create_ex(g[same_gpu ? 0 : r].index, QR_BF16, &bes[r]);
    } else {
        for (int r = 0; r < tp && !rc; r++)
            rc = qr_backend_cpu_create(per, &bes[r]);
    }
    if (!rc)
        rc = qr_model_load_tp(path, &mo, bes, tp, &m);
    if (rc) {
        fprintf(stderr, "bench_tp: TP=%d: %s\n", tp, qr_last_error());
        goto out;
    }
    int devs[QR_TP_MAX];
    for (int r = 0; r < tp; r++)
        devs[r] = qr_backend_cuda_device(bes[r], NULL);
    const char *why;
    qr_comm_kind kind = qr_comm_choose(devs, tp, qr_nccl_built(), &why);
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
    printf("TP=%d  %s %d layers d %d, %s weights on %s: decode %.1f tok/s (%zu tokens)", tp, c->arch_name,
           c->n_layer, c->d_model, qr_dtype_name(wdt), cuda ? (same_gpu ? "GPU 0 (every rank)" : "one GPU per rank")
           : "CPU ranks", *tok_s, res.n_ids);
    if (tp > 1)
        printf("; communicator %s (%s); per token %.2f all-reduces, %.0f bytes, %.1f us in collectives (rank 0%s, "
               "of %.1f us per token)", qr_comm_kind_name(kind), why, ar, by, 1e6 * (s0.seconds - s.seconds) / n_dec,
               kind == QR_COMM_NCCL ? ": enqueue time only" : "", 1e6 / *tok_s);
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
    bool dtype_set = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            cuda = !strcmp(argv[++i], "cuda");
        else if (!strcmp(argv[i], "--same-gpu"))
            same_gpu = cuda = true;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            if (qr_dtype_parse(argv[++i], &wdt)) {
                fprintf(stderr, "bench_tp: %s\n", qr_last_error());
                return 2;
            }
            dtype_set = true;
        }
        else if (!path)
            path = argv[i];
        else if (n_tp < 16)
            tps[n_tp++] = atoi(argv[i]);
    }
    if (!path || decode < 2) {
        fprintf(stderr, "usage: bench_tp MODEL [TP ...] [--decode D] [--threads T] [--device cpu|cuda] [--dtype D] "
                        "[--same-gpu]\n");
        return 2;
    }
    if (cuda && !dtype_set)
        wdt = QR_BF16;
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
