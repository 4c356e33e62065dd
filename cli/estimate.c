/* quire estimate --model M --dtype D [--ctx T] [--batch B] [--tp N|auto] [--threads N] [--json]
 *
 * Memory a model needs, from its config and tensor headers only (no weight
 * data is read: qr_wsrc maps the files and we look at shapes). When the model
 * directory has a config.json but no weight files, the tensor list is derived
 * from the config. The accounting, stated in the output:
 *
 *   weights    matmul weights and the token embedding table at --dtype: f32
 *              4 B, bf16/f16 2 B, int8 1 B plus one f32 scale per row; norms,
 *              biases and BERT's position / token-type embeddings f32 (the
 *              runtime's policy, runtime/models/model.h pick_type). BERT's
 *              pooler head is not counted (sentence embeddings do not use it).
 *              --dtype q8_0 / q4_k / as-stored count tensor by tensor as the
 *              loader places them on the CPU backend (runtime/models/model.c
 *              pick_type): GGUF block bytes (q8_0 34 B / 32 values, q4_k
 *              144 B / 256), the token embeddings in the same type, a tensor
 *              whose row is not whole blocks of q4_k as q8_0 (else f32);
 *              as-stored takes each file tensor's own bytes (Q2_K / Q3_K as
 *              Q4_K) and needs the tensor headers. The split by type is
 *              printed. (The CUDA backend keeps only Q8_0 of the block types:
 *              on a GPU the others are converted to q8_0 at load.)
 *   KV cache   2 (K and V) x layers x ctx x batch x kv_heads x head_dim x
 *              bytes(--kv-dtype); none for encoders.
 *   workspace  decoders: the activation buffers of runtime/models/decoder.c
 *              for the largest step, T = min(batch x ctx, QR_PREFILL_CHUNK
 *              (512) + batch - 1) tokens (prompts are prefilled 512 tokens a
 *              step, beside one decode token of each other sequence): hidden,
 *              normed and projected rows (3 d), q + attention output
 *              (2 heads*hd), k + v (2 kv_heads*hd), FFN gate + up (2 ff), plus
 *              per sequence its last row (d) and one row of f32 logits.
 *              Encoders: one pass of batch x ctx tokens: hidden + residual
 *              (2 d), q + attention output, k + v, 2 ff. Attention scores are
 *              not materialised (computed row by row).
 *   process    the peak resident memory of a CPU process serving the model
 *              (quire generate / serve --device cpu; tests/unit/cli/
 *              estimate_peak.sh measures it): weights + KV cache + workspace
 *              + matmul scratch (--threads x 4 MiB where f16/bf16/int8
 *              weights are widened to f32 for a step of >= 32 rows,
 *              runtime/cpu/cpu.h) + the runtime's own memory: code,
 *              libraries, thread stacks and buffers (this process's own
 *              peak resident memory at start plus QR_EST_PROCESS_EXTRA),
 *              and the tokenizer and the weight files' index with the
 *              metadata pages it reads (loaded here; the growth of this
 *              process's resident memory, /proc/self/statm, as they load:
 *              resident, not allocated, as in the serving process). A
 *              converted tensor's file pages are dropped after conversion
 *              (qr_wsrc_release), so the file is not counted beside the
 *              converted weights; an as-stored tensor is the file's mapping
 *              itself below 2 MiB (or without transparent huge pages), a
 *              copy on huge pages from there (qr_cpu_copies_weights). Load
 *              peak: the model-level tensors load first, then the layers,
 *              each holding its file pages (and, for the q/k rows a GGUF
 *              Llama file stores permuted, a copy) while converted or
 *              copied; the larger of the load and running peaks is taken.
 *   sharding   tensor parallel over N GPUs (Megatron style): 2-D weights split
 *              evenly N ways (attention heads, FFN columns, vocabulary rows);
 *              K/V projections and the KV cache split by KV head, replicated
 *              when N > kv_heads (each GPU then holds one KV head); q/k/v
 *              biases split with their heads, 1-D norms and other biases
 *              replicated; each rank's embedding slice has one zero row; int8
 *              row scales of the column-split Wo and Wd are whole on every
 *              rank. The per-GPU weights are what runtime/models/arch.c loads
 *              on the largest rank (tests/unit/cli/tp_estimate.sh, at f32,
 *              bf16 and int8). Needs
 *              heads % N == 0, ff % N == 0, kv_heads % N == 0 or
 *              N % kv_heads == 0, and vocabulary rows for every rank (the
 *              rule of qr_shard_plan).
 *   fits       per-GPU total <= S GiB x (1 - headroom/100) for S in
 *              16, 24, 40, 48, 80, 141. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/cpu/cpu.h"
#include "runtime/models/config.h"
#include "runtime/models/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/weights/weights.h"

typedef enum { K_MAT = 0, K_KV, K_EMB, K_VEC, K_COUNT } mat_kind;

/* The runtime's own memory: this process's peak resident memory when the
 * command starts, after the GPU probe a serving process makes too (the
 * binary and the libraries as this machine loads them: 21 MiB for a
 * CPU-only build, about 230 MiB where the CUDA libraries are linked and
 * the runtime probed) plus what a generating
 * process adds on top (thread stacks, BLAS and allocator buffers: 1 MiB,
 * quire generate on tests/fixtures/models/stories260K against quire version,
 * x86-64 Debian 12). tests/unit/cli/estimate_peak.sh checks the sum within
 * 10% of that generate run. QR_EST_PROCESS_BASE stands in where
 * /proc/self/status cannot be read. */
#define QR_EST_PROCESS_EXTRA (1ull << 20)
#define QR_EST_PROCESS_BASE (22ull << 20)

typedef struct {
    uint64_t elems[K_COUNT]; /* parameters per kind */
    uint64_t rows[K_COUNT];  /* output rows per kind (int8 scales) */
    qr_dtype dt;             /* --dtype; for the per-tensor count of block types */
    uint64_t qbytes[K_COUNT];             /* bytes per kind, per tensor (q8_0, q4_k, as-stored) */
    /* the load peak (headers only): the model-level tensors (token table, output, final norm) load
     * first, then the layers in order (runtime/models/arch.c); each tensor adds conv_bytes while it
     * is converted. Held bytes of the model-level ones, and the largest transients of each group. */
    uint64_t model_held, conv_model, conv_layer;
    uint64_t tbytes[QR_DTYPE_COUNT];      /* the same by type */
    /* of K_VEC: a decoder's q and k/v biases, which tensor parallelism splits with their heads */
    uint64_t q_bias, kv_bias;
} param_sums;

static bool per_tensor(qr_dtype dt) { return dt == QR_Q8_0 || dt == QR_Q4_K || dt == QR_AS_STORED; }

/* The type the loader gives a tensor of file type `file` (config-derived:
 * QR_F32) with rows of `cols` values on the CPU backend, for a per-tensor dt. */
static qr_dtype est_type(qr_dtype dt, qr_dtype file, int64_t cols, mat_kind k)
{
    if (k == K_VEC)
        return QR_F32;
    qr_dtype t = dt == QR_AS_STORED ? file : dt;
    if (t == QR_Q2_K || t == QR_Q3_K)
        t = QR_Q4_K;
    if (qr_dtype_is_block(t) && cols % qr_dtype_block(t))
        t = cols % 32 == 0 ? QR_Q8_0 : QR_F32;
    return t;
}

static uint64_t mat_bytes(uint64_t elems, uint64_t rows, qr_dtype dt);

/* Counts a tensor; returns the bytes the loader holds for it. */
static uint64_t add_t(param_sums *s, mat_kind k, int64_t rows, int64_t cols, qr_dtype file)
{
    uint64_t n = (uint64_t)rows * (uint64_t)cols;
    s->elems[k] += n;
    s->rows[k] += (uint64_t)rows;
    if (!per_tensor(s->dt))
        return k == K_VEC ? 4 * n : mat_bytes(n, (uint64_t)rows, s->dt);
    qr_dtype t = est_type(s->dt, file, cols, k);
    uint64_t b = (uint64_t)rows * qr_dtype_row_bytes(t, cols) + (t == QR_I8 ? 4 * (uint64_t)rows : 0);
    s->qbytes[k] += b;
    s->tbytes[t] += b;
    return b;
}

static void add(param_sums *s, mat_kind k, int64_t rows, int64_t cols) { (void)add_t(s, k, rows, cols, QR_F32); }

/* Tensor list of a Llama/Qwen2 decoder or a BERT encoder from its config. */
static void sums_from_config(const qr_model_config *c, param_sums *s)
{
    int64_t d = c->d_model, hd = c->head_dim, q = (int64_t)c->n_head * hd, kv = (int64_t)c->n_kv_head * hd;
    int64_t ff = c->d_ff, V = c->vocab_size;
    qr_dtype dt = s->dt;
    memset(s, 0, sizeof *s);
    s->dt = dt;
    if (c->arch == QR_ARCH_BERT) {
        add(s, K_EMB, V, d);
        add(s, K_VEC, 1, (int64_t)c->max_pos * d);         /* position and token-type tables: f32 always */
        add(s, K_VEC, 1, (int64_t)c->type_vocab_size * d);
        add(s, K_VEC, 1, 2 * d); /* embedding LayerNorm */
        for (int l = 0; l < c->n_layer; l++) {
            add(s, K_MAT, q, d);
            add(s, K_KV, kv, d);
            add(s, K_KV, kv, d);
            add(s, K_MAT, d, q);
            add(s, K_MAT, ff, d);
            add(s, K_MAT, d, ff);
            add(s, K_VEC, 1, q + 2 * kv + d + ff + d); /* biases */
            add(s, K_VEC, 1, 4 * d);                   /* two LayerNorms */
        }
        return;
    }
    add(s, K_EMB, V, d);
    for (int l = 0; l < c->n_layer; l++) {
        add(s, K_MAT, q, d);
        add(s, K_KV, kv, d);
        add(s, K_KV, kv, d);
        add(s, K_MAT, d, q);
        add(s, K_MAT, ff, d); /* gate */
        add(s, K_MAT, ff, d); /* up */
        add(s, K_MAT, d, ff); /* down */
        if (c->qkv_bias) {
            add(s, K_VEC, 1, q + 2 * kv);
            s->q_bias += (uint64_t)q;
            s->kv_bias += 2 * (uint64_t)kv;
        }
        add(s, K_VEC, 1, 2 * d); /* attention and FFN RMSNorm */
    }
    add(s, K_VEC, 1, d); /* final norm */
    if (!c->tie_embeddings)
        add(s, K_MAT, V, d); /* lm_head */
}

static bool name_has(const char *name, const char *const *parts)
{
    for (; *parts; parts++)
        if (strstr(name, *parts))
            return true;
    return false;
}

/* Tensor list from the weight headers (HF or GGUF names). */
/* What loading tensor t (of kind k) holds beside the finished weights while it
 * is converted: its file pages (dropped after, qr_wsrc_release) and, for the
 * q/k rows a GGUF Llama file stores permuted, the unpermuted copy. 0 for a
 * tensor kept as the mapping itself (as-stored or same type, not permuted, and
 * too small for the CPU backend's huge-page copy: qr_cpu_copies_weights). */
static uint64_t conv_bytes(const param_sums *s, const qr_wtensor *t, mat_kind k, int64_t cols, bool perm_qk)
{
    static const char *const qk[] = {"attn_q.weight", "attn_k.weight", NULL};
    bool perm = perm_qk && name_has(t->name, qk);
    qr_dtype to = k == K_VEC ? QR_F32 : per_tensor(s->dt) ? est_type(s->dt, t->dtype, cols, k) : s->dt;
    bool copied = to != t->dtype || qr_cpu_copies_weights(t->nbytes);
    return perm ? 2 * (uint64_t)t->nbytes : copied ? (uint64_t)t->nbytes : 0;
}

static void sums_from_headers(const qr_wsrc *w, bool perm_qk, param_sums *s)
{
    static const char *const emb[] = {"embed_tokens", "token_embd", "embeddings.", "wte.", "wpe.", NULL};
    static const char *const kv[] = {"k_proj", "v_proj", "attn_k.", "attn_v.", "self.key", "self.value", NULL};
    static const char *const f32emb[] = {"position", "token_type", "wpe.", NULL}; /* loaded f32 always */
    qr_dtype dt = s->dt;
    memset(s, 0, sizeof *s);
    s->dt = dt;
    for (size_t i = 0; i < qr_wsrc_count(w); i++) {
        const qr_wtensor *t = qr_wsrc_at(w, i);
        if (!strncmp(t->name, "pooler.", 7))
            continue; /* BERT's pooler head: not used for sentence embeddings, not loaded */
        int64_t rows = t->n_dims ? t->shape[0] : 1, cols = 1;
        for (int k = 1; k < t->n_dims; k++)
            cols *= t->shape[k];
        static const char *const layer[] = {"blk.", "layers.", "layer.", NULL};
        bool in_layer = name_has(t->name, layer);
        if (t->n_dims < 2 || rows == 1) {
            static const char *const qb[] = {"q_proj.bias", "attn_q.bias", NULL};
            if (!in_layer)
                s->model_held += 4 * (uint64_t)(rows * cols);
            static const char *const kvb[] = {"k_proj.bias", "v_proj.bias", "attn_k.bias", "attn_v.bias", NULL};
            add(s, K_VEC, 1, rows * cols);
            if (name_has(t->name, qb))
                s->q_bias += (uint64_t)(rows * cols);
            else if (name_has(t->name, kvb))
                s->kv_bias += (uint64_t)(rows * cols);
        }
        else {
            mat_kind k = name_has(t->name, emb) ? (name_has(t->name, f32emb) ? K_VEC : K_EMB)
                         : name_has(t->name, kv) ? K_KV : K_MAT;
            uint64_t held = add_t(s, k, rows, cols, t->dtype), cb = conv_bytes(s, t, k, cols, perm_qk);
            uint64_t *mx = in_layer ? &s->conv_layer : &s->conv_model;
            if (!in_layer)
                s->model_held += held;
            if (cb > *mx)
                *mx = cb;
        }
    }
}

static uint64_t mat_bytes(uint64_t elems, uint64_t rows, qr_dtype dt)
{
    switch (dt) {
    case QR_F32: return 4 * elems;
    case QR_F16:
    case QR_BF16: return 2 * elems;
    case QR_I8: return elems + 4 * rows;
    default: return 0;
    }
}

/* This process's resident bytes (Linux: /proc/self/statm, resident pages);
 * 0 where it cannot be read, so the tokenizer and tensor index then go
 * uncounted. Resident, not allocated: what was reserved and never written
 * (calloc'd tables on fresh pages) costs nothing, as in the serving process. */
static uint64_t resident_bytes(void)
{
    unsigned long long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &res);
    fclose(f);
    long pg = sysconf(_SC_PAGESIZE);
    return n == 2 && pg > 0 ? (uint64_t)res * (uint64_t)pg : 0;
}

/* This process's peak resident bytes so far (Linux: VmHWM in
 * /proc/self/status); 0 where it cannot be read. Start-up's peak, not the
 * resident memory after it: loading the CUDA libraries touches ~60 MiB
 * more than stays resident. */
static uint64_t peak_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb << 10;
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static const char *gib(double bytes, char *buf, size_t len)
{
    if (bytes >= 1073741824.0)
        snprintf(buf, len, "%.2f GiB", bytes / 1073741824.0);
    else
        snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
    return buf;
}

static const int gpu_sizes[] = {16, 24, 40, 48, 80, 141};
#define N_SIZES (int)(sizeof gpu_sizes / sizeof gpu_sizes[0])

int cli_estimate(int argc, char **argv)
{
    static const int allowed[] = {QR_OPT_MODEL, QR_OPT_DTYPE, QR_OPT_KV_DTYPE, QR_OPT_CTX, QR_OPT_BATCH, QR_OPT_TP,
                                  QR_OPT_HEADROOM, QR_OPT_THREADS, QR_OPT_JSON, QR_OPT_LOG_LEVEL, -1};
    qr_options *o = NULL;
    char *path = NULL;
    qr_wsrc *w = NULL;
    json_t *j = NULL;
    int rc;
    /* the GPU probe first, as a serving process (--device auto) makes it: in
     * a CUDA build it loads the CUDA runtime, part of the base */
    qr_gpu_info gi[64];
    int ngpu = 0;
    if (qr_cuda_devices(gi, 64, &ngpu))
        ngpu = 0;
    uint64_t start_peak = peak_bytes();
    uint64_t base = start_peak ? start_peak + QR_EST_PROCESS_EXTRA : QR_EST_PROCESS_BASE;
    int code = cli_load_options("estimate", "--model M --dtype D [--ctx T] [--batch B] [--tp N|auto] [--threads N] [--json]",
                                "Memory for weights, KV cache and workspace, in total and per GPU with tensor\n"
                                "parallelism over N GPUs (--tp; auto: the GPUs visible), and which GPU sizes (16, 24, 40, 48, 80, 141 GB) it fits.\n"
                                "Reads only config.json / GGUF metadata and tensor headers, never weight data.",
                                argc, argv, allowed, &o);
    if (code >= 0)
        return code;
    /* An existing path is used as is (a directory with only config.json is
     * fine here); anything else goes through the offline resolver. */
    struct stat st;
    const char *arg = qr_opt_str(o, QR_OPT_MODEL);
    if (*arg && stat(arg, &st) == 0) {
        if (!(path = strdup(arg))) {
            code = CLI_EXIT_ERROR;
            goto fail;
        }
    } else if ((code = cli_resolve_model("estimate", o, QR_OPT_MODEL, &path)) >= 0) {
        goto fail;
    }
    qr_dtype dt, kvdt;
    if ((rc = qr_dtype_parse(qr_opt_str(o, QR_OPT_DTYPE), &dt)) || (rc = qr_dtype_parse(qr_opt_str(o, QR_OPT_KV_DTYPE), &kvdt))) {
        code = cli_fail("estimate", rc, "dtype");
        goto fail;
    }
    qr_model_config c;
    if ((rc = qr_config_load(path, &c))) {
        code = cli_fail("estimate", rc, "reading the model config");
        goto fail;
    }
    param_sums s = {.dt = dt};
    const char *source;
    uint64_t src_heap = resident_bytes();
    rc = qr_wsrc_open(path, &w);
    src_heap = rc == 0 && resident_bytes() > src_heap ? resident_bytes() - src_heap : 0;
    if (rc == 0 && qr_wsrc_count(w) > 0) {
        sums_from_headers(w, qr_wsrc_gguf(w) && c.arch == QR_ARCH_LLAMA, &s);
        source = "tensor headers";
    } else if (dt == QR_AS_STORED && (rc == 0 || rc == QR_ENOTFOUND)) {
        fprintf(stderr, "quire estimate: %s: --dtype as-stored needs the weight files (their tensor types); "
                        "none found: pass another --dtype\n", path);
        code = CLI_EXIT_USAGE;
        goto fail;
    } else if (rc == 0 || rc == QR_ENOTFOUND) {
        sums_from_config(&c, &s);
        source = "config (no weight files found)";
    } else {
        code = cli_fail("estimate", rc, "reading the tensor headers");
        goto fail;
    }

    /* --tp N, or auto: every GPU visible to the job (1 without one) */
    uint64_t N = 1;
    if (strcmp(qr_opt_str(o, QR_OPT_TP), "auto") == 0) {
        if (ngpu > 1)
            N = (uint64_t)ngpu;
    } else {
        N = (uint64_t)atoi(qr_opt_str(o, QR_OPT_TP)); /* checked by the option table: 1..64 */
    }
    uint64_t ctx = (uint64_t)qr_opt_int(o, QR_OPT_CTX);
    uint64_t B = (uint64_t)qr_opt_int(o, QR_OPT_BATCH);
    uint64_t H = (uint64_t)c.n_head, KV = (uint64_t)c.n_kv_head, hd = (uint64_t)c.head_dim;
    uint64_t d = (uint64_t)c.d_model, ff = (uint64_t)c.d_ff, V = (uint64_t)c.vocab_size, L = (uint64_t)c.n_layer;
    if (!H || !KV || !hd || !d || !ff || !V || !L) {
        fprintf(stderr, "quire estimate: %s: config lacks a size (heads %d, kv heads %d, head_dim %d, hidden %d, "
                        "ffn %d, vocab %d, layers %d)\n", path, c.n_head, c.n_kv_head, c.head_dim, c.d_model,
                c.d_ff, c.vocab_size, c.n_layer);
        code = CLI_EXIT_ERROR;
        goto fail;
    }
    if (N > 1 && (H % N || ff % N || (KV % N && N % KV) || (N - 1) * ceil_div(V, N) >= V)) {
        fprintf(stderr, "quire estimate: cannot shard %s over %llu GPUs with tensor parallelism: needs attention "
                        "heads (%llu) and FFN size (%llu) divisible by %llu, KV heads (%llu) divisible by it "
                        "or dividing it, and vocabulary rows (%llu) for every GPU (%s)\n", path, (unsigned long long)N, (unsigned long long)H,
                (unsigned long long)ff, (unsigned long long)N, (unsigned long long)KV, (unsigned long long)V,
                qr_opt_origin(o, QR_OPT_TP));
        code = CLI_EXIT_UNSUPPORTED;
        goto fail;
    }
    uint64_t kvl = KV % N == 0 ? KV / N : 1; /* KV heads per GPU */
    bool decoder = c.arch != QR_ARCH_BERT;
    uint64_t kvb = kvdt == QR_F32 ? 4 : 2;

    uint64_t w_mat = mat_bytes(s.elems[K_MAT], s.rows[K_MAT], dt), w_kv = mat_bytes(s.elems[K_KV], s.rows[K_KV], dt);
    uint64_t w_emb = mat_bytes(s.elems[K_EMB], s.rows[K_EMB], dt), w_vec = 4 * s.elems[K_VEC];
    char by_type[256] = "";
    if (per_tensor(dt)) {
        w_mat = s.qbytes[K_MAT];
        w_kv = s.qbytes[K_KV];
        w_emb = s.qbytes[K_EMB];
        w_vec = s.qbytes[K_VEC];
        qr_model_type_bytes_str(s.tbytes, by_type, sizeof by_type);
    }
    uint64_t weights = w_mat + w_kv + w_emb + w_vec;
    /* int8 keeps one scale per output row: a rank's column slice of Wo and Wd (d rows each, per
     * layer) has all d rows, so those scales are whole on every rank, not split N ways */
    uint64_t col_scales = N > 1 && decoder && dt == QR_I8 ? 4 * 2 * L * d : 0;
    uint64_t weights_g = ceil_div(w_mat - col_scales, N) + col_scales + w_kv * kvl / KV + ceil_div(w_emb, N) + w_vec;
    if (N > 1 && decoder) {
        /* as runtime/models/arch.c loads a rank (tests/unit/cli/tp_estimate.sh compares the two): q/k/v
         * biases go with their heads, and the rank's embedding rows end with one zero row (the row the
         * ids of other ranks' vocabulary read) */
        weights_g -= 4 * (s.q_bias - s.q_bias / N) + 4 * (s.kv_bias - s.kv_bias * kvl / KV);
        weights_g += s.rows[K_EMB] ? w_emb / s.rows[K_EMB] : 0; /* one row of the table, at its type */
    }
    uint64_t kv_cache = decoder ? 2 * L * ctx * B * KV * hd * kvb : 0;
    uint64_t kv_cache_g = decoder ? 2 * L * ctx * B * kvl * hd * kvb : 0;
    uint64_t ntok = B * ctx, ws, ws_g, step_rows = ntok;
    if (decoder) {
        /* the decoder's step buffers (decoder.c ensure_acts) for the largest step */
        uint64_t T = ntok < QR_PREFILL_CHUNK + B - 1 ? ntok : QR_PREFILL_CHUNK + B - 1;
        step_rows = T;
        ws = 4 * (T * (3 * d + 2 * H * hd + 2 * KV * hd + 2 * ff) + B * (d + V));
        ws_g = 4 * (T * (3 * d + 2 * H * hd / N + 2 * kvl * hd + 2 * ff / N) + B * (d + ceil_div(V, N)));
    } else {
        ws = 4 * ntok * (2 * d + 2 * H * hd + 2 * KV * hd + 2 * ff);
        ws_g = 4 * ntok * (2 * d + 2 * H * hd / N + 2 * kvl * hd + 2 * ff / N);
    }
    uint64_t total = weights + kv_cache + ws, total_g = weights_g + kv_cache_g + ws_g;
    /* the CPU process: the runtime's own memory beside the model's (see the top of this file) */
    uint64_t tok_bytes = 0;
    bool tok_loaded = false;
    struct stat pst;
    bool have_pst = stat(path, &pst) == 0;
    {
        qr_tokenizer *tk = NULL;
        const qr_gguf *g = w ? qr_wsrc_gguf(w) : NULL;
        uint64_t h0 = resident_bytes();
        if (g ? qr_gguf_has(g, "tokenizer.ggml.model") && qr_tokenizer_load_gguf(g, &tk) == 0
              : have_pst && S_ISDIR(pst.st_mode) && qr_tokenizer_load(path, &tk) == 0) {
            uint64_t h1 = resident_bytes();
            tok_bytes = h1 > h0 ? h1 - h0 : 0;
            tok_loaded = true;
        }
        qr_tokenizer_free(tk);
    }
    /* f16/bf16/int8 matmuls of a step with many rows widen weight blocks to f32 in per-thread
     * scratch (runtime/cpu/cpu.h); GGUF blocks do too without the integer kernels */
    uint64_t threads = (uint64_t)qr_opt_int(o, QR_OPT_THREADS);
    if (!threads) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > 0 ? (uint64_t)nc : 1;
    }
    bool widen = dt == QR_F16 || dt == QR_BF16 || dt == QR_I8 || (per_tensor(dt) && !qr_backend_cpu_has_qkern());
    uint64_t scratch = widen && step_rows >= QR_CPU_GEMM_MIN_ROWS_NARROW ? threads * QR_CPU_GEMM_SCRATCH_BYTES : 0;
    uint64_t runtime = base + src_heap + tok_bytes;
    uint64_t run_peak = weights + kv_cache + ws + scratch, load_peak = weights + s.conv_layer;
    if (s.model_held + s.conv_model > load_peak)
        load_peak = s.model_held + s.conv_model;
    uint64_t process = runtime + (run_peak > load_peak ? run_peak : load_peak);
    double headroom = qr_opt_float(o, QR_OPT_HEADROOM);
    bool fits[N_SIZES];
    for (int i = 0; i < N_SIZES; i++)
        fits[i] = (double)total_g <= gpu_sizes[i] * 1073741824.0 * (1.0 - headroom / 100.0);
    uint64_t params = s.elems[K_MAT] + s.elems[K_KV] + s.elems[K_EMB] + s.elems[K_VEC];

    char shard[512];
    if (N == 1)
        snprintf(shard, sizeof shard, "1 GPU (no sharding)");
    else
        snprintf(shard, sizeof shard, "tensor parallel over %llu GPUs: %llu attention heads -> %llu per GPU, "
                 "%llu KV heads -> %llu per GPU%s, FFN %llu -> %llu columns per GPU, vocabulary rows split %llu ways; "
                 "q/k/v biases split with their heads, norms and other biases replicated", (unsigned long long)N, (unsigned long long)H,
                 (unsigned long long)(H / N), (unsigned long long)KV, (unsigned long long)kvl,
                 KV % N ? " (replicated)" : "", (unsigned long long)ff, (unsigned long long)(ff / N),
                 (unsigned long long)N);

    if (qr_opt_bool(o, QR_OPT_JSON)) {
        json_t *fj = json_object();
        for (int i = 0; i < N_SIZES; i++) {
            char k[8];
            snprintf(k, sizeof k, "%d", gpu_sizes[i]);
            json_object_set_new(fj, k, json_boolean(fits[i]));
        }
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s,"
                      " s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:f, s:o}",
                      "model", path, "arch", c.arch_name, "source", source, "dtype", qr_dtype_name(dt),
                      "kv_dtype", qr_dtype_name(kvdt), "ctx", (json_int_t)ctx, "batch", (json_int_t)B,
                      "tp", (json_int_t)N, "params", (json_int_t)params,
                      "params_matmul", (json_int_t)(s.elems[K_MAT] + s.elems[K_KV]),
                      "params_embedding", (json_int_t)s.elems[K_EMB], "params_vector", (json_int_t)s.elems[K_VEC],
                      "sharding", shard,
                      "bytes", "weights", (json_int_t)weights, "kv_cache", (json_int_t)kv_cache, "workspace",
                      (json_int_t)ws, "total", (json_int_t)total,
                      "per_gpu", "weights", (json_int_t)weights_g, "kv_cache", (json_int_t)kv_cache_g, "workspace",
                      (json_int_t)ws_g, "total", (json_int_t)total_g,
                      "headroom_percent", headroom, "fits_gib", fj);
        if (j && per_tensor(dt)) {
            json_t *bt = json_object();
            for (int t = 0; t < QR_DTYPE_COUNT; t++)
                if (s.tbytes[t])
                    json_object_set_new(bt, qr_dtype_name((qr_dtype)t), json_integer((json_int_t)s.tbytes[t]));
            json_object_set_new(j, "bytes_by_type", bt);
        }
        if (j)
            json_object_set_new(j, "process",
                                json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "peak", (json_int_t)process,
                                          "run_peak", (json_int_t)run_peak, "load_peak", (json_int_t)load_peak,
                                          "runtime", (json_int_t)runtime, "base", (json_int_t)base,
                                          "tokenizer", (json_int_t)tok_bytes, "weights_index", (json_int_t)src_heap,
                                          "cpu_scratch", (json_int_t)scratch, "tokenizer_loaded", tok_loaded));
        if (j) /* the name before --tp, for scripts that read it */
            json_object_set_new(j, "gpus", json_integer((json_int_t)N));
        char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
        if (!text) {
            fprintf(stderr, "quire estimate: out of memory\n");
            code = CLI_EXIT_ERROR;
            goto fail;
        }
        puts(text);
        free(text);
    } else {
        char a[32], b[32];
        printf("model       %s (%s; sizes from %s)\n", path, c.arch_name, source);
        printf("parameters  %llu: matmul %llu and token embeddings %llu at %s, norms/biases%s %llu at f32\n",
               (unsigned long long)params, (unsigned long long)(s.elems[K_MAT] + s.elems[K_KV]),
               (unsigned long long)s.elems[K_EMB], qr_dtype_name(dt), decoder ? "" : "/position tables",
               (unsigned long long)s.elems[K_VEC]);
        printf("precision   weights %s (%s)%s; KV cache %s (%s); activations f32\n", qr_dtype_name(dt),
               qr_opt_origin(o, QR_OPT_DTYPE), dt == QR_I8 ? ", one f32 scale per output row" : "",
               qr_dtype_name(kvdt), qr_opt_origin(o, QR_OPT_KV_DTYPE));
        if (per_tensor(dt))
            printf("weights by type  %s (as the CPU backend loads them; a GPU keeps q8_0 of the block types)\n",
                   by_type);
        printf("context     ctx %llu tokens x batch %llu\n", (unsigned long long)ctx, (unsigned long long)B);
        printf("sharding    %s\n\n", shard);
        printf("%-12s %14s %14s\n", "", "total", "per GPU");
        printf("%-12s %14s %14s\n", "weights", gib((double)weights, a, sizeof a), gib((double)weights_g, b, sizeof b));
        printf("%-12s %14s %14s\n", "kv cache", gib((double)kv_cache, a, sizeof a), gib((double)kv_cache_g, b, sizeof b));
        printf("%-12s %14s %14s\n", "workspace", gib((double)ws, a, sizeof a), gib((double)ws_g, b, sizeof b));
        printf("%-12s %14s %14s\n", "total", gib((double)total, a, sizeof a), gib((double)total_g, b, sizeof b));
        char c1[32], c2[32], c3[32], c4[32], c5[32];
        printf("process     %s peak resident on the CPU: %s %s + runtime %s (code and libraries %s, tokenizer %s%s, "
               "weight files' index and metadata %s)\n", gib((double)process, a, sizeof a),
               run_peak >= load_peak ? "weights + KV cache + workspace + matmul scratch"
                                     : "while loading: weights + the largest tensor being converted",
               gib((double)(run_peak >= load_peak ? run_peak : load_peak), b, sizeof b), gib((double)runtime, c1, sizeof c1),
               gib((double)base, c2, sizeof c2), gib((double)tok_bytes, c3, sizeof c3),
               tok_loaded ? "" : " (none loaded)", gib((double)src_heap, c4, sizeof c4));
        printf("            (matmul scratch %s: %llu threads%s; --threads as generate and serve take it)\n\n",
               gib((double)scratch, c5, sizeof c5), (unsigned long long)threads,
               scratch ? " x 4 MiB of f32 weight blocks" : "");
        printf("fits per GPU (%g%% of each GPU kept free; sizes in GiB):", headroom);
        for (int i = 0; i < N_SIZES; i++)
            printf(" %d GB %s%s", gpu_sizes[i], fits[i] ? "yes" : "no", i + 1 < N_SIZES ? "," : "\n");
    }
    code = CLI_EXIT_OK;
fail:
    json_decref(j);
    qr_wsrc_close(w);
    free(path);
    qr_options_free(o);
    return code;
}
