/* Loading a model for a subcommand, with the load line that states the
 * precision: what the files store and what the runtime computes with. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "common/slurm.h"
#include "runtime/backend.h"
#include "runtime/models/model.h"
#include "runtime/weights/weights.h"

int cli_resolve_model(const char *cmd, const qr_options *o, int id, char **path)
{
    const char *arg = qr_opt_str(o, id);
    if (!*arg) {
        fprintf(stderr, "quire %s: no model given: pass --%s M (a directory, a .gguf file, a Hugging Face id "
                        "ORG/NAME or ollama:NAME[:TAG]), or set QUIRE_%s or `%s =` in the config file\n",
                cmd, qr_option_def_at(id)->name, id == QR_OPT_MODEL ? "MODEL" : "EMBEDDER",
                qr_option_def_at(id)->name);
        return CLI_EXIT_USAGE;
    }
    qr_clear_error();
    int rc = qr_model_resolve(arg, path);
    if (rc) {
        char what[300];
        snprintf(what, sizeof what, "model \"%.200s\" (%s)", arg, qr_opt_origin(o, id));
        return cli_fail(cmd, rc, what);
    }
    return -1;
}

/* Parses "cuda" / "cuda:N" into the ordinal N (0 for plain "cuda"). */
static int cuda_ordinal(const char *dev) { return dev[4] == ':' ? atoi(dev + 5) : 0; }

int cli_pick_device(const char *cmd, const qr_options *o, int *cuda, qr_gpu_info *used)
{
    /* The listing is asked once per process (it makes a context on every GPU)
     * and said once (ask opens two or three models). */
    static qr_gpu_info gpus[64];
    static int n = -1;
    static char why[512];
    static bool said;
    const char *dev = qr_opt_str(o, QR_OPT_DEVICE);
    bool want_cuda = !strncmp(dev, "cuda", 4);
    *cuda = -1;
    if (!strcmp(dev, "cpu"))
        return -1;
    if (!qr_cuda_built()) {
        if (want_cuda) {
            fprintf(stderr, "quire %s: device %s (%s): this quire was built without the CUDA backend; use "
                            "--device cpu, or rebuild with `meson setup build -Dcuda=enabled` where the CUDA toolkit "
                            "is installed\n", cmd, dev, qr_opt_origin(o, QR_OPT_DEVICE));
            return CLI_EXIT_UNSUPPORTED;
        }
        if (!said)
            QR_INFO("device cpu (device auto: this build has only the CPU backend)");
        said = true;
        return -1;
    }
    if (n < 0) {
        n = 0;
        qr_cuda_devices(gpus, 64, &n); /* errors are "no GPU": n = 0 and the reason kept */
        snprintf(why, sizeof why, "%s", qr_cuda_why_none());
    }
    if (n == 0) {
        if (want_cuda) {
            fprintf(stderr, "quire %s: device %s (%s): no usable CUDA device: %s; use --device cpu, or --device "
                            "auto to fall back to the CPU\n", cmd, dev, qr_opt_origin(o, QR_OPT_DEVICE), why);
            return CLI_EXIT_UNSUPPORTED;
        }
        /* the one line that says why auto is running on the CPU */
        if (!said)
            QR_WARN("device auto: no usable GPU (%s); running on the CPU", why);
        said = true;
        return -1;
    }
    int want = want_cuda ? cuda_ordinal(dev) : gpus[0].index, pick = -1;
    for (int i = 0; i < n; i++)
        if (gpus[i].index == want)
            pick = i;
    if (pick < 0) {
        fprintf(stderr, "quire %s: device %s (%s): no such usable CUDA device; %d visible:", cmd, dev,
                qr_opt_origin(o, QR_OPT_DEVICE), n);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " cuda:%d", gpus[i].index);
        fputc('\n', stderr);
        return CLI_EXIT_UNSUPPORTED;
    }
    /* Start-up listing: every GPU this process sees, and which one it uses. */
    if (!said && qr_log_get_level() >= QR_LOG_WARN) {
        char b1[32], b2[32];
        for (int i = 0; i < n; i++)
            fprintf(stderr, "quire %s: GPU cuda:%d %s (sm_%d%d, %s, %s free) %s%s\n", cmd, gpus[i].index,
                    gpus[i].name, gpus[i].cc_major, gpus[i].cc_minor,
                    cli_bytes((double)gpus[i].total_bytes, b1, sizeof b1),
                    cli_bytes((double)gpus[i].free_bytes, b2, sizeof b2), gpus[i].uuid,
                    i == pick ? " \xe2\x86\x90 used" : "");
    }
    said = true;
    *cuda = want;
    if (used)
        *used = gpus[pick];
    return -1;
}

int cli_check_device(const char *cmd, const qr_options *o)
{
    int cuda;
    return cli_pick_device(cmd, o, &cuda, NULL);
}

void cli_storage_dtypes(const qr_wsrc *s, char *buf, size_t len)
{
    uint64_t bytes[QR_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < qr_wsrc_count(s); i++) {
        const qr_wtensor *t = qr_wsrc_at(s, i);
        if (t->n_dims >= 2 && t->dtype < QR_DTYPE_COUNT)
            bytes[t->dtype] += t->nbytes;
    }
    buf[0] = '\0';
    size_t used = 0;
    for (;;) {
        int best = -1;
        for (int d = 0; d < QR_DTYPE_COUNT; d++)
            if (bytes[d] && (best < 0 || bytes[d] > bytes[best]))
                best = d;
        if (best < 0)
            break;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "+" : "", qr_dtype_name((qr_dtype)best));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
        bytes[best] = 0;
    }
}

void cli_log_gpus(const qr_gpu_info *used, int n_used)
{
    static bool done; /* once per process: ask opens two or three models */
    if (!done)
        qr_slurm_log_gpus(used, n_used);
    done = true;
}

/* What the chosen GPU holds for this model: the weights as loaded, the KV
 * cache of one sequence of --ctx positions (decoders) and the workspace of one
 * forward pass (activations at the backend's type, plus cuBLAS's workspace). */
static void print_gpu_holds(const char *cmd, const qr_options *o, int cuda, const qr_backend *be, const qr_model *m)
{
    const qr_model_config *c = qr_model_cfg(m);
    bool bert = c->arch == QR_ARCH_BERT;
    int64_t ctx = qr_opt_int(o, QR_OPT_CTX);
    if (ctx > c->max_pos || ctx <= 0)
        ctx = c->max_pos;
    qr_mem_estimate e;
    char b1[32], b2[32], b3[32];
    if (qr_model_estimate(c, QR_F32, ctx, 1, bert ? 8192 : 512, &e))
        return;
    double act = be->act_dtype == QR_F32 ? 1.0 : 0.5; /* the estimate counts activations and KV at 4 bytes */
    fprintf(stderr, "quire %s: cuda:%d holds weights %s, KV cache %s (%s), workspace %s\n", cmd, cuda,
            cli_bytes((double)qr_model_weight_bytes(m), b1, sizeof b1), cli_bytes((double)e.kv_cache * act, b2, sizeof b2),
            bert ? "encoder: none" : "one sequence of --ctx positions",
            cli_bytes((double)e.workspace * act + 32.0 * 1024 * 1024, b3, sizeof b3));
}

/* --tp of an LLM at path: the rank count. auto: the most GPUs visible to the
 * job that the model splits over (1 on the CPU). Returns -1 or an exit code
 * after printing why. */
static int tp_ranks(const char *cmd, const qr_options *o, const char *path, int cuda, int *n)
{
    const char *v = qr_opt_str(o, QR_OPT_TP);
    *n = 1;
    if (strcmp(v, "auto") == 0) {
        qr_gpu_info g[64];
        qr_model_config c;
        int ng = 0;
        if (cuda < 0 || qr_cuda_devices(g, 64, &ng) || ng <= 1 || qr_config_load(path, &c))
            return -1; /* a config that does not load fails again, with its message, when the model loads */
        for (*n = ng; *n > 1 && qr_model_tp_check(&c, *n); (*n)--)
            ;
        if (*n < ng)
            QR_WARN("%s: --tp auto: %d GPUs visible; %s splits over %d of them", cmd, ng, c.arch_name, *n);
        return -1;
    }
    *n = atoi(v); /* checked by the option table: 1..64 */
    return -1;
}

/* Loads an LLM over n tensor-parallel ranks: n CPU backends (in-process
 * ranks) or n CUDA backends on the first n visible GPUs. The model owns the
 * backends (*be_out = NULL). UNVERIFIED on GPUs: no machine here has two. */
static int load_tp(const char *cmd, const qr_options *o, const char *path, int cuda, int n, const qr_model_opts *mo,
                   qr_backend **be_out, qr_model **m_out)
{
    qr_backend *bes[QR_TP_MAX] = {0};
    qr_gpu_info g[64];
    int ng = 0, rc, code = -1;
    if (cuda >= 0 && (qr_cuda_devices(g, 64, &ng) || ng < n)) {
        fprintf(stderr, "quire %s: --tp %d (%s) needs %d GPUs; %d visible\n", cmd, n, qr_opt_origin(o, QR_OPT_TP), n,
                ng);
        return CLI_EXIT_UNSUPPORTED;
    }
    int threads = (int)qr_opt_int(o, QR_OPT_THREADS);
    for (int r = 0; r < n; r++) {
        if (cuda >= 0) {
            qr_dtype act = strcmp(qr_opt_str(o, QR_OPT_ACT_DTYPE), "bf16") ? QR_F32 : QR_BF16;
            rc = qr_backend_cuda_create_ex(g[r].index, act, &bes[r]);
        } else {
            /* the cores shared out: --threads (0 = all) over the ranks, at least one each */
            long cores = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
            rc = qr_backend_cpu_create(cores / n > 1 ? (int)(cores / n) : 1, &bes[r]);
        }
        if (rc) {
            char what[64];
            snprintf(what, sizeof what, "creating the backend of tensor-parallel rank %d", r);
            code = cli_fail(cmd, rc, what);
            goto fail;
        }
    }
    if (cuda >= 0)
        cli_log_gpus(g, n);
    else
        cli_log_gpus(NULL, 0);
    if ((rc = qr_model_load_tp(path, mo, bes, n, m_out))) {
        char what[300];
        snprintf(what, sizeof what, "loading %.200s over %d tensor-parallel ranks", path, n);
        code = cli_fail(cmd, rc, what);
        goto fail;
    }
    qr_model_own_backends(*m_out);
    *be_out = NULL;
    /* what each rank holds: its weights as loaded, the KV cache of its KV heads
     * for one sequence of --ctx positions and the workspace of one forward
     * pass over its heads / FFN columns / vocabulary rows (the estimate of a
     * config cut as arch.c cuts it, as the single-device line does) */
    const qr_model_config *c = qr_model_cfg(*m_out);
    qr_model_config rc_ = *c;
    rc_.n_head = c->n_head / n;
    rc_.n_kv_head = c->n_kv_head % n == 0 ? c->n_kv_head / n : 1;
    rc_.d_ff = c->d_ff / n;
    rc_.vocab_size = (c->vocab_size + n - 1) / n;
    int64_t ctx = qr_opt_int(o, QR_OPT_CTX);
    if (ctx > c->max_pos || ctx <= 0)
        ctx = c->max_pos;
    qr_mem_estimate e;
    bool have_e = qr_model_estimate(&rc_, QR_F32, ctx, 1, 512, &e) == 0;
    for (int r = 0; r < n && qr_log_get_level() >= QR_LOG_INFO; r++) {
        char b1[32], b2[32], b3[32];
        double act = bes[r]->act_dtype == QR_F32 ? 1.0 : 0.5; /* the estimate counts activations and KV at 4 bytes */
        double extra = cuda >= 0 ? 32.0 * 1024 * 1024 : 0; /* cuBLAS's workspace */
        char on[96];
        if (cuda >= 0)
            snprintf(on, sizeof on, "GPU cuda:%d %s", g[r].index, g[r].name);
        else
            snprintf(on, sizeof on, "the CPU");
        fprintf(stderr, "quire %s: tensor-parallel rank %d of %d on %s holds weights %s (%llu bytes), KV cache %s (one sequence "
                "of --ctx positions), workspace %s\n", cmd, r, n, on,
                cli_bytes((double)qr_model_rank_weight_bytes(*m_out, r), b1, sizeof b1),
                (unsigned long long)qr_model_rank_weight_bytes(*m_out, r),
                have_e ? cli_bytes((double)e.kv_cache * act, b2, sizeof b2) : "?",
                have_e ? cli_bytes((double)e.workspace * act + extra, b3, sizeof b3) : "?");
    }
    return -1;
fail:
    for (int r = 0; r < n; r++)
        qr_backend_destroy(bes[r]);
    return code;
}

/* Loads a resolved model path on the device cli_pick_device chose (cuda >= 0:
 * that GPU, whose listing is *gpu; else the CPU backend); over tp ranks when
 * tp > 1 (an LLM's --tp). */
static int load_resolved(const char *cmd, const qr_options *o, const char *path, int cuda, const qr_gpu_info *gpu,
                         int tp, qr_backend **be_out, qr_model **m_out)
{
    qr_backend *be = NULL;
    qr_model *m = NULL;
    qr_wsrc *src = NULL;
    char stored[64] = "?", b1[32];
    int code, rc;
    qr_model_opts mo;
    memset(&mo, 0, sizeof mo);
    if ((rc = qr_dtype_parse(qr_opt_str(o, QR_OPT_DTYPE), &mo.dtype))) {
        code = cli_fail(cmd, rc, "dtype");
        goto fail;
    }
    /* Only the tensor headers are read here (the data stays mapped, untouched). */
    if (qr_wsrc_open(path, &src) == 0) {
        cli_storage_dtypes(src, stored, sizeof stored);
        qr_wsrc_close(src);
        src = NULL;
    }
    if (tp > 1) {
        code = load_tp(cmd, o, path, cuda, tp, &mo, &be, &m);
        if (code >= 0)
            return code;
    } else if (cuda >= 0) {
        qr_dtype act = strcmp(qr_opt_str(o, QR_OPT_ACT_DTYPE), "bf16") ? QR_F32 : QR_BF16;
        if ((rc = qr_backend_cuda_create_ex(cuda, act, &be))) {
            char what[64];
            snprintf(what, sizeof what, "creating the CUDA backend on cuda:%d", cuda);
            code = cli_fail(cmd, rc, what);
            goto fail;
        }
        cli_log_gpus(gpu, 1);
    } else {
        if ((rc = qr_backend_cpu_create((int)qr_opt_int(o, QR_OPT_THREADS), &be))) {
            code = cli_fail(cmd, rc, "creating the CPU backend");
            goto fail;
        }
        cli_log_gpus(NULL, 0); /* the CPU backend: GPUs the Slurm allocation gives stay idle */
    }
    if (tp <= 1 && (rc = qr_model_load(path, &mo, be, &m))) {
        char what[300];
        snprintf(what, sizeof what, "loading %.250s", path);
        code = cli_fail(cmd, rc, what);
        goto fail;
    }
    if (qr_log_get_level() >= QR_LOG_INFO) {
        const qr_model_config *c = qr_model_cfg(m);
        fprintf(stderr, "quire %s: model %s: %s, %d layers, d_model %d, vocab %d; weights %s \xe2\x86\x92 %s (%s, dtype from %s)\n",
                cmd, path, c->arch_name, (int)c->n_layer, (int)c->d_model, (int)c->vocab_size, stored,
                qr_dtype_name(mo.dtype), cli_bytes((double)qr_model_weight_bytes(m), b1, sizeof b1),
                qr_opt_origin(o, QR_OPT_DTYPE));
    }
    if (cuda >= 0 && tp <= 1 && qr_log_get_level() >= QR_LOG_WARN)
        print_gpu_holds(cmd, o, cuda, be, m);
    *be_out = be;
    *m_out = m;
    return -1;
fail:
    qr_model_free(m);
    qr_backend_destroy(be);
    return code;
}

int cli_load_model(const char *cmd, const qr_options *o, const char *path, qr_backend **be_out, qr_model **m_out)
{
    int cuda = -1;
    qr_gpu_info gpu;
    int code = cli_pick_device(cmd, o, &cuda, &gpu);
    return code >= 0 ? code : load_resolved(cmd, o, path, cuda, &gpu, 1, be_out, m_out);
}

int cli_load_llm(const char *cmd, const qr_options *o, const char *path, qr_backend **be_out, qr_model **m_out)
{
    int cuda = -1, tp = 1;
    qr_gpu_info gpu;
    int code = cli_pick_device(cmd, o, &cuda, &gpu);
    if (code < 0)
        code = tp_ranks(cmd, o, path, cuda, &tp);
    return code >= 0 ? code : load_resolved(cmd, o, path, cuda, &gpu, tp, be_out, m_out);
}

/* cli_open_model with tensor parallelism when tp_opt (the LLM's --tp). */
static int open_model(const char *cmd, const qr_options *o, int id, bool tp_opt, qr_backend **be_out,
                      qr_model **m_out)
{
    char *path = NULL;
    int code, cuda = -1;
    qr_gpu_info gpu;
    /* the device first: --device cuda fails the same way whatever the model */
    if ((code = cli_pick_device(cmd, o, &cuda, &gpu)) >= 0)
        return code;
    if ((code = cli_resolve_model(cmd, o, id, &path)) >= 0)
        return code;
    int tp = 1;
    if (tp_opt)
        code = tp_ranks(cmd, o, path, cuda, &tp); /* --tp is the LLM's (never an embedder's) */
    if (code < 0)
        code = load_resolved(cmd, o, path, cuda, &gpu, tp, be_out, m_out);
    free(path);
    return code;
}

int cli_open_model(const char *cmd, const qr_options *o, int id, qr_backend **be_out, qr_model **m_out)
{
    return open_model(cmd, o, id, false, be_out, m_out);
}

int cli_open_llm(const char *cmd, const qr_options *o, int id, qr_backend **be_out, qr_model **m_out)
{
    return open_model(cmd, o, id, true, be_out, m_out);
}
