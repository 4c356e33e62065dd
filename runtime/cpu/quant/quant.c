/* Integer matmul on GGUF blocks: API, activation quantization, ISA choice,
 * threading and the portable scalar reference (see quant.h for the formula
 * every path computes; the SIMD kernels are in quant_x86.c). */
#include "runtime/cpu/quant/quant_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/error.h"

static const qr_qtype_info info_q8_0 = {32, 34, 32, false}, info_q4_0 = {32, 18, 32, false},
                           info_q4_1 = {32, 20, 32, true}, info_q5_0 = {32, 22, 32, false},
                           info_q5_1 = {32, 24, 32, true}, info_q4_k = {256, 144, 32, true},
                           info_q5_k = {256, 176, 32, true}, info_q6_k = {256, 210, 16, false};

const qr_qtype_info *qr_qtype(qr_dtype t)
{
    switch (t) {
    case QR_Q8_0: return &info_q8_0;
    case QR_Q4_0: return &info_q4_0;
    case QR_Q4_1: return &info_q4_1;
    case QR_Q5_0: return &info_q5_0;
    case QR_Q5_1: return &info_q5_1;
    case QR_Q4_K: return &info_q4_k;
    case QR_Q5_K: return &info_q5_k;
    case QR_Q6_K: return &info_q6_k;
    default: return NULL;
    }
}

bool qr_qmat_supports(qr_dtype wtype) { return qr_qtype(wtype) != NULL; }

/* ---- ISA choice ---- */

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* AMX-INT8 usable: the CPU has it, the OS enables the tile state in XCR0
 * (bits 17, 18) and, on Linux, grants this process the tile data (a
 * process-wide permission, asked once: without it the first tile
 * instruction faults). */
static bool amx_ok(uint64_t xcr0)
{
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(d >> 24 & 1) || !(d >> 25 & 1) || (xcr0 & 0x60000) != 0x60000)
        return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return false;
#endif
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* The levels this CPU runs, one bit each. Not a ladder: AVX-512 VNNI CPUs
 * without AVX-VNNI (Skylake-SP to Ice Lake, AMD Zen 4) skip a level. */
static unsigned detect(void)
{
    unsigned a, b, c, d, ok = 1u << QR_QISA_SCALAR;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return ok;
    bool osxsave = c >> 27 & 1, fma = c >> 12 & 1, f16c = c >> 29 & 1, avx = c >> 28 & 1;
    if (!osxsave || !avx || !fma || !f16c)
        return ok;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 6) != 6) /* the OS saves xmm and ymm state */
        return ok;
    if (__get_cpuid_max(0, NULL) < 7)
        return ok;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = b >> 5 & 1, avx512f = b >> 16 & 1, avx512bw = b >> 30 & 1, avx512vl = b >> 31 & 1,
         vnni512 = c >> 11 & 1;
    if (!avx2)
        return ok;
    ok |= 1u << QR_QISA_AVX2;
    if (avx512f && avx512bw && avx512vl && vnni512 && (xcr0 & 0xe6) == 0xe6) { /* + opmask, zmm state */
        ok |= 1u << QR_QISA_AVX512VNNI;
        if (amx_ok(xcr0))
            ok |= 1u << QR_QISA_AMX;
    }
    __cpuid_count(7, 1, a, b, c, d);
    if (a >> 4 & 1) /* AVX-VNNI */
        ok |= 1u << QR_QISA_AVXVNNI;
    return ok;
}
#else
static unsigned detect(void) { return 1u << QR_QISA_SCALAR; }
#endif

static _Atomic int g_ok = -1, g_isa = -1;

bool qr_quant_isa_ok(qr_qisa isa)
{
    int ok = atomic_load(&g_ok);
    if (ok < 0) {
        ok = (int)detect();
        atomic_store(&g_ok, ok);
    }
    return isa >= QR_QISA_SCALAR && isa <= QR_QISA_AMX && (ok >> isa & 1);
}

/* The highest level at or below isa that this CPU runs. */
static qr_qisa isa_at_most(qr_qisa isa)
{
    while (isa > QR_QISA_SCALAR && !qr_quant_isa_ok(isa))
        isa--;
    return isa;
}

qr_qisa qr_quant_isa_best(void) { return isa_at_most(QR_QISA_AMX); }

qr_qisa qr_quant_isa(void)
{
    int i = atomic_load(&g_isa);
    if (i < 0) {
        i = (int)qr_quant_isa_best();
        /* QUIRE_QUANT_ISA=avx2 (say) caps the level: A/B runs, or a CPU whose
         * best path misbehaves */
        const char *cap = getenv("QUIRE_QUANT_ISA");
        for (int l = 0; cap && l < i; l++)
            if (strcmp(cap, qr_quant_isa_name((qr_qisa)l)) == 0)
                i = (int)isa_at_most((qr_qisa)l);
        atomic_store(&g_isa, i);
    }
    return (qr_qisa)i;
}

qr_qisa qr_quant_set_isa(qr_qisa isa)
{
    isa = isa_at_most(isa > QR_QISA_AMX ? QR_QISA_AMX : isa);
    atomic_store(&g_isa, (int)isa);
    return isa;
}

const char *qr_quant_isa_name(qr_qisa isa)
{
    switch (isa) {
    case QR_QISA_AMX: return "amx";
    case QR_QISA_AVX512VNNI: return "avx512vnni";
    case QR_QISA_AVXVNNI: return "avxvnni";
    case QR_QISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

static const qr_qkernels *kernels(void)
{
    switch (qr_quant_isa()) {
#if defined(__x86_64__)
    case QR_QISA_AMX: return &qr_qk_amx;
    case QR_QISA_AVX512VNNI: return &qr_qk_avx512vnni;
    case QR_QISA_AVXVNNI: return &qr_qk_avxvnni;
    case QR_QISA_AVX2: return &qr_qk_avx2;
#endif
    default: return &qr_qk_scalar;
    }
}

/* ---- activations ---- */

#define ALIGN64(n) (((size_t)(n) + 63) & ~(size_t)63)

static int64_t n_groups(int64_t n_tok) { return (n_tok + 15) / 16; }

size_t qr_qact_bytes(int64_t n_tok, int64_t K)
{
    if (n_tok <= 0 || K <= 0 || K % 32)
        return 0;
    size_t nb = (size_t)(K / 32), bytes = 64 /* alignment slack */;
    bytes += ALIGN64((size_t)n_tok * (size_t)K) + 2 * ALIGN64((size_t)n_tok * nb * sizeof(float));
    if (n_tok >= QR_QGEMM_MIN_TOK) {
        size_t g = (size_t)n_groups(n_tok);
        /* pk, pd, ps, and room for pks (written, so resident, only under AMX) */
        bytes += 2 * ALIGN64(g * 16 * (size_t)K) + 2 * ALIGN64(g * nb * 16 * sizeof(float));
    }
    return bytes;
}

typedef struct {
    const float *x;
    size_t xs;
    int64_t n_tok, K;
    int8_t *q;
    float *d, *s;
    uint8_t *pk;
    float *pd, *ps;
    int8_t *pks;
} act_job;

static void scalar_quant_row(const float *x, int64_t K, int8_t *q, float *dd, float *ss)
{
    for (int64_t b = 0; b < K / 32; b++) {
        float amax = 0.0f;
        for (int l = 0; l < 32; l++) {
            float v = fabsf(x[32 * b + l]);
            amax = v > amax ? v : amax;
        }
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int l = 0; l < 32; l++) {
            int v = (int)nearbyintf(x[32 * b + l] * id);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            q[32 * b + l] = (int8_t)v;
            sum += v;
        }
        dd[b] = d;
        ss[b] = d * (float)sum;
    }
}

static const qr_qkernels *kernels(void);

/* Quantizes rows [t0, t1) and writes their lanes of the packed layout. */
static void act_rows(void *ctx, int64_t t0, int64_t t1, int tid)
{
    const act_job *j = ctx;
    int64_t K = j->K, nb = K / 32;
    void (*quant_row)(const float *, int64_t, int8_t *, float *, float *) = kernels()->quant_row;
    for (int64_t t = t0; t < t1; t++) {
        const int8_t *q = j->q + (size_t)t * (size_t)K;
        quant_row(j->x + (size_t)t * j->xs, K, j->q + (size_t)t * (size_t)K, j->d + t * nb, j->s + t * nb);
        if (j->pk) {
            int64_t g = t / 16, lane = t % 16;
            uint8_t *pk = j->pk + (size_t)g * 16 * (size_t)K;
            for (int64_t k4 = 0; k4 < K / 4; k4++) {
                uint32_t v;
                memcpy(&v, q + 4 * k4, 4);
                if (j->pks)
                    memcpy(j->pks + (size_t)g * 16 * (size_t)K + (size_t)k4 * 64 + (size_t)lane * 4, &v, 4);
                v ^= 0x80808080u;
                memcpy(pk + (size_t)k4 * 64 + (size_t)lane * 4, &v, 4);
            }
            for (int64_t b = 0; b < nb; b++) {
                j->pd[(g * nb + b) * 16 + lane] = j->d[t * nb + b];
                j->ps[(g * nb + b) * 16 + lane] = j->s[t * nb + b];
            }
        }
    }
}

int qr_quantize_act(qr_threadpool *tp, const float *x, size_t xs, int64_t n_tok, int64_t K, void *buf,
                    qr_qact *out)
{
    if (n_tok <= 0 || K <= 0 || K % 32)
        return qr_fail(QR_EINVAL, "quantize activations: n_tok %lld, K %lld: K must be a positive multiple of 32",
                       (long long)n_tok, (long long)K);
    size_t nb = (size_t)(K / 32);
    uint8_t *p = (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    act_job j = {x, xs, n_tok, K, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    j.q = (int8_t *)p, p += ALIGN64((size_t)n_tok * (size_t)K);
    j.d = (float *)p, p += ALIGN64((size_t)n_tok * nb * sizeof(float));
    j.s = (float *)p, p += ALIGN64((size_t)n_tok * nb * sizeof(float));
    if (n_tok >= QR_QGEMM_MIN_TOK) {
        size_t g = (size_t)n_groups(n_tok);
        j.pk = p, p += ALIGN64(g * 16 * (size_t)K);
        j.pd = (float *)p, p += ALIGN64(g * nb * 16 * sizeof(float));
        j.ps = (float *)p, p += ALIGN64(g * nb * 16 * sizeof(float));
        if (qr_quant_isa() == QR_QISA_AMX)
            j.pks = (int8_t *)p;
        /* lanes past n_tok: zero activations (q ^ 0x80 = 0x80), zero scales */
        int64_t t_end = (int64_t)g * 16;
        if (t_end > n_tok) {
            for (int64_t t = n_tok; t < t_end; t++) {
                uint8_t *pk = j.pk + (size_t)(t / 16) * 16 * (size_t)K;
                for (int64_t k4 = 0; k4 < K / 4; k4++) {
                    memset(pk + (size_t)k4 * 64 + (size_t)(t % 16) * 4, 0x80, 4);
                    if (j.pks)
                        memset(j.pks + (size_t)(t / 16) * 16 * (size_t)K + (size_t)k4 * 64 + (size_t)(t % 16) * 4, 0,
                               4);
                }
                for (size_t b = 0; b < nb; b++) {
                    j.pd[((size_t)(t / 16) * nb + b) * 16 + (size_t)(t % 16)] = 0.0f;
                    j.ps[((size_t)(t / 16) * nb + b) * 16 + (size_t)(t % 16)] = 0.0f;
                }
            }
        }
    }
    /* grain 16 keeps one 16-token group's lanes on one worker */
    qr_parallel_for(tp, n_tok, 16, act_rows, &j);
    *out = (qr_qact){n_tok, K, j.q, j.d, j.s, j.pk, j.pd, j.ps, j.pks};
    return QR_OK;
}

/* ---- scratch ---- */

int qr_q_rblock(int64_t K)
{
    int64_t rb = 32768 / K / QR_QROWS * QR_QROWS;
    return rb < QR_QROWS ? QR_QROWS : rb > QR_QRB_MAX ? QR_QRB_MAX : (int)rb;
}

size_t qr_q_scratch_bytes(int64_t K)
{
    size_t k = (size_t)K, rb = (size_t)qr_q_rblock(K);
    return rb * (ALIGN64(k) + ALIGN64(k / 16 * 4) * 2 + ALIGN64(k / 32 * 4)) + ALIGN64(32 * rb * sizeof(float));
}

/* Scratch per thread for one matmul: the AMX GEMM's 16 unpacked rows only
 * where it runs (a GEMV's allocation stays small enough for malloc's heap,
 * not an mmap and its page faults on every call). */
static size_t scratch_bytes(int64_t K, bool gemm)
{
    size_t n = qr_q_scratch_bytes(K);
#if defined(__x86_64__)
    if (gemm && qr_quant_isa() == QR_QISA_AMX) {
        size_t amx = qr_q_amx_scratch_bytes(K);
        n = amx > n ? amx : n;
    }
#endif
    return n;
}

float *qr_q_rows_init(void *scratch, int64_t K, int G, qr_qrow rows[QR_QRB_MAX])
{
    uint8_t *p = scratch;
    size_t k = (size_t)K;
    int rb = qr_q_rblock(K);
    for (int r = 0; r < rb; r++) {
        rows[r].wq = (int8_t *)p, p += ALIGN64(k);
        rows[r].dw = (float *)p, p += ALIGN64(k / 16 * 4);
        rows[r].ws = (int32_t *)p, p += ALIGN64(k / 16 * 4);
        rows[r].mw = (float *)p, p += ALIGN64(k / 32 * 4);
        (void)G;
    }
    return (float *)p;
}

/* ---- scalar reference ---- */

/* y[t, n] for one unpacked row and all tokens, in the order quant.h gives. */
static void scalar_row(const qr_qtype_info *ti, const qr_qrow *r, int64_t K, const qr_qact *a, int64_t n,
                       float *y, size_t ys)
{
    int G = ti->G;
    int64_t nb = K / 32;
    for (int64_t t = 0; t < a->n_tok; t++) {
        const int8_t *xq = a->q + (size_t)t * (size_t)K;
        const float *dx = a->d + t * nb, *sx = a->s + t * nb;
        float acc = 0.0f, macc = 0.0f;
        for (int64_t g = 0; g < K / G; g++) {
            int32_t isum = 0;
            for (int l = 0; l < G; l++)
                isum += (int32_t)r->wq[g * G + l] * (int32_t)xq[g * G + l];
            acc += (r->dw[g] * dx[g * G / 32]) * (float)isum;
        }
        if (ti->has_min)
            for (int64_t b = 0; b < nb; b++)
                macc += r->mw[b] * sx[b];
        y[(size_t)t * ys + (size_t)n] = acc + macc;
    }
}

static void scalar_rows(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0,
                        int64_t n1, float *y, size_t ys, void *scratch)
{
    const qr_qtype_info *ti = qr_qtype(t);
    qr_qrow rows[QR_QRB_MAX];
    qr_q_rows_init(scratch, K, ti->G, rows);
    for (int64_t n = n0; n < n1; n++) {
        qr_q_unpack(t, w + (size_t)n * rb, K, &rows[0]);
        scalar_row(ti, &rows[0], K, a, n, y, ys);
    }
}

const qr_qkernels qr_qk_scalar = {scalar_rows, scalar_rows, scalar_quant_row};

/* ---- matmul drivers ---- */

static int check(qr_dtype wtype, int64_t N, int64_t K, const qr_qact *a)
{
    const qr_qtype_info *ti = qr_qtype(wtype);
    if (!ti)
        return qr_fail(QR_EINVAL, "quantized matmul: weight type %s is not a supported block type",
                       qr_dtype_name(wtype));
    if (N <= 0 || K <= 0 || K % ti->block)
        return qr_fail(QR_EINVAL, "quantized matmul: %s weight [%lld, %lld]: K must be a positive multiple of %d",
                       qr_dtype_name(wtype), (long long)N, (long long)K, ti->block);
    if (!a || a->K != K || a->n_tok <= 0)
        return qr_fail(QR_EINVAL, "quantized matmul: activations have K %lld, weight K %lld",
                       a ? (long long)a->K : -1LL, (long long)K);
    return QR_OK;
}

int qr_qmat_rows(qr_dtype wtype, const void *w, int64_t K, const qr_qact *a, int64_t n0, int64_t n1, float *y,
                 size_t ys)
{
    int rc = check(wtype, n1 > n0 ? n1 - n0 : 1, K, a);
    if (rc)
        return rc;
    if (n0 < 0)
        return qr_fail(QR_EINVAL, "quantized matmul: row range [%lld, %lld) starts below 0", (long long)n0,
                       (long long)n1);
    if (n1 <= n0)
        return QR_OK;
    bool gemm = a->n_tok >= QR_QGEMM_MIN_TOK && a->pk;
    size_t sb = ALIGN64(scratch_bytes(K, gemm));
    void *scratch = aligned_alloc(64, sb);
    if (!scratch)
        return qr_fail(QR_ENOMEM, "quantized matmul: scratch of %zu bytes", sb);
    const qr_qkernels *k = kernels();
    size_t rb = qr_dtype_row_bytes(wtype, K);
    if (gemm)
        k->gemm(wtype, w, rb, K, a, n0, n1, y, ys, scratch);
    else
        k->gemv(wtype, w, rb, K, a, n0, n1, y, ys, scratch);
    free(scratch);
    return QR_OK;
}

typedef struct {
    const qr_qkernels *k;
    qr_dtype t;
    const uint8_t *w;
    size_t rb;
    int64_t K;
    const qr_qact *a;
    float *y;
    size_t ys;
    uint8_t *scratch; /* per tid */
    size_t sb;
    bool gemm;
} mul_job;

static void mul_rows(void *ctx, int64_t n0, int64_t n1, int tid)
{
    const mul_job *j = ctx;
    void *s = j->scratch + (size_t)tid * j->sb;
    if (j->gemm)
        j->k->gemm(j->t, j->w, j->rb, j->K, j->a, n0, n1, j->y, j->ys, s);
    else
        j->k->gemv(j->t, j->w, j->rb, j->K, j->a, n0, n1, j->y, j->ys, s);
}

int qr_qmat_mul_q(qr_threadpool *tp, qr_dtype wtype, const void *w, int64_t N, int64_t K, const qr_qact *a,
                  float *y, size_t ys)
{
    int rc = check(wtype, N, K, a);
    if (rc)
        return rc;
    int nt = tp ? qr_threadpool_size(tp) : 1;
    bool gemm = a->n_tok >= QR_QGEMM_MIN_TOK && a->pk;
    size_t sb = ALIGN64(scratch_bytes(K, gemm));
    uint8_t *scratch = aligned_alloc(64, sb * (size_t)nt);
    if (!scratch)
        return qr_fail(QR_ENOMEM, "quantized matmul: scratch of %zu bytes", sb * (size_t)nt);
    mul_job j = {kernels(), wtype, w, qr_dtype_row_bytes(wtype, K), K, a, y, ys, scratch, sb, gemm};
    /* grain: whole row tiles, and enough rows that a wake-up pays off */
    int64_t grain = QR_QROWS * (K >= 2048 ? 4 : 8);
    qr_parallel_for(tp, N, grain, mul_rows, &j);
    free(scratch);
    return QR_OK;
}

/* ---- several weights on one x (qr_qmat_mul_parts) ---- */

typedef struct {
    const qr_qkernels *k;
    const qr_qmat_part *parts;
    int n_parts, n_shares;
    size_t rb[QR_QMAT_PARTS_MAX], total; /* row bytes; bytes of all parts */
    int64_t K;
    const qr_qact *a;
    uint8_t *scratch; /* per tid */
    size_t sb;
} parts_job;

/* Least weight bytes per thread's share of a decode GEMV. */
#define QR_QSHARE_MIN_BYTES 16384

/* First row of part p at or past byte offset `at` of all parts' rows laid end
 * to end (part p starting at byte off): shares [at_t, at_t+1) meet exactly. */
static int64_t part_row(const parts_job *j, int p, size_t off, size_t at)
{
    if (at <= off)
        return 0;
    size_t r = (at - off + j->rb[p] - 1) / j->rb[p];
    return r > (size_t)j->parts[p].N ? j->parts[p].N : (int64_t)r;
}

static void parts_rows(void *ctx, int64_t s0, int64_t s1, int tid)
{
    const parts_job *j = ctx;
    void *scr = j->scratch + (size_t)tid * j->sb;
    for (int64_t s = s0; s < s1; s++) { /* share s: bytes [s / n, (s + 1) / n) of the total */
        size_t b0 = (size_t)((double)j->total * (double)s / j->n_shares),
               b1 = (size_t)((double)j->total * (double)(s + 1) / j->n_shares);
        if (s + 1 == j->n_shares)
            b1 = j->total;
        size_t off = 0;
        for (int p = 0; p < j->n_parts; p++) {
            const qr_qmat_part *q = &j->parts[p];
            int64_t n0 = part_row(j, p, off, b0), n1 = part_row(j, p, off, b1);
            if (n1 > n0)
                j->k->gemv(q->wtype, q->w, j->rb[p], j->K, j->a, n0, n1, q->y, q->ys, scr);
            off += j->rb[p] * (size_t)q->N;
        }
    }
}

int qr_qmat_mul_parts(qr_threadpool *tp, const qr_qmat_part *parts, int n_parts, int64_t K, const float *x,
                      size_t xs, int64_t n_tok)
{
    if (n_parts < 1 || n_parts > QR_QMAT_PARTS_MAX)
        return qr_fail(QR_EINVAL, "quantized matmul: %d weights in one call (1..%d)", n_parts, QR_QMAT_PARTS_MAX);
    size_t bytes = qr_qact_bytes(n_tok, K);
    if (!bytes)
        return qr_fail(QR_EINVAL, "quantized matmul: n_tok %lld, K %lld: K must be a positive multiple of 32",
                       (long long)n_tok, (long long)K);
    void *buf = malloc(bytes);
    if (!buf)
        return qr_fail(QR_ENOMEM, "quantized matmul: %zu bytes of quantized activations", bytes);
    qr_qact a;
    /* a few rows (decode) quantized on this thread: a pool dispatch costs more */
    bool gemv = n_tok < QR_QGEMM_MIN_TOK;
    int rc = qr_quantize_act(gemv ? NULL : tp, x, xs, n_tok, K, buf, &a);
    parts_job j = {kernels(), parts, n_parts, tp ? qr_threadpool_size(tp) : 1, {0}, 0, K, &a, NULL, 0};
    for (int p = 0; !rc && p < n_parts; p++) {
        rc = check(parts[p].wtype, parts[p].N, K, &a);
        j.rb[p] = rc ? 0 : qr_dtype_row_bytes(parts[p].wtype, K);
        j.total += j.rb[p] * (size_t)parts[p].N;
    }
    /* a share small enough that waking a thread for it costs more than it: fewer shares */
    if ((size_t)j.n_shares > j.total / QR_QSHARE_MIN_BYTES)
        j.n_shares = j.total / QR_QSHARE_MIN_BYTES > 1 ? (int)(j.total / QR_QSHARE_MIN_BYTES) : 1;
    if (!rc && !gemv) { /* prefill: each GEMM is long enough for a dispatch of its own */
        for (int p = 0; !rc && p < n_parts; p++)
            rc = qr_qmat_mul_q(tp, parts[p].wtype, parts[p].w, parts[p].N, K, &a, parts[p].y, parts[p].ys);
    } else if (!rc) {
        j.sb = ALIGN64(scratch_bytes(K, false));
        j.scratch = aligned_alloc(64, j.sb * (size_t)j.n_shares);
        if (!j.scratch)
            rc = qr_fail(QR_ENOMEM, "quantized matmul: scratch of %zu bytes", j.sb * (size_t)j.n_shares);
        else
            qr_parallel_for(tp, j.n_shares, 1, parts_rows, &j);
        free(j.scratch);
    }
    free(buf);
    return rc;
}

int qr_qmat_mul(qr_threadpool *tp, qr_dtype wtype, const void *w, int64_t N, int64_t K, const float *x,
                size_t xs, int64_t n_tok, float *y, size_t ys)
{
    qr_qmat_part part = {wtype, w, N, y, ys};
    return qr_qmat_mul_parts(tp, &part, 1, K, x, xs, n_tok);
}
