/* AMX-INT8 GEMM (Sapphire Rapids and later) for prefill: qr_q_gemm_amx, the
 * GEMM of the AMX kernel table (quant_avx512.c, which adds its GEMV). Built
 * with target attributes like the other ISA files; only called where
 * quant.c found AMX usable. */
#if defined(__x86_64__)
#include <immintrin.h>

#define T512 "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define QR_QUNPACK_ATTR static inline __attribute__((always_inline, target(T512)))
#define QR_QF16(h) _cvtsh_ss(h)
#include "runtime/cpu/quant/quant_impl.h"

#define QK_INLINE static inline __attribute__((always_inline, target(T512)))
#define QK_NAME(x) x##_amx
#include "runtime/cpu/quant/quant_x86_rows.inc"

/* Per 16 weight rows (unpacked by the 256-bit row decoder into the scratch
 * below) and 16 tokens (one group of a->pks, already the [K/4][16][4] layout
 * AMX wants for its second operand), each scale group g of G values is one
 * TDPBSSD: C[16 rows][16 tokens] int32 = wq (signed, 16 x G bytes at row
 * stride K) . q (signed, G/4 x 64 bytes), the exact sums I of quant.h.
 * Activations quantized under another ISA have no pks: then TDPBSUD on pk
 * (q + 128) and -128 * ws added back per row, the same I. The tile is stored
 * and each row scaled into a float accumulator as the AVX-512 GEMM (tile512)
 * does: the same integers and float operations in the same order, so AMX
 * and AVX-512 VNNI give the same bits (test qmat). A tile instruction does a
 * 16 x 16 x G block at once; the vector scaling of its result, which does
 * not overlap it, is then about as long (~11 + 15 ns per step, 1 core). */
#define TAMX T512 ",amx-tile,amx-int8"
#define AMX_ATTR __attribute__((target(TAMX)))

/* 16 rows unpacked at a stride of K bytes (tile rows), their scales after. */
typedef struct {
    int8_t *wq;          /* [16][K] */
    float *dw, *mw;      /* [16][K/G], [16][K/32] as the unpack writes them */
    int32_t *ws;         /* [16][K/G] */
    float *dwt, *mwt;    /* the same transposed, [K/G][16], [K/32][16]: one */
    int32_t *wst;        /* row's value at a constant offset; wst = -128 * ws */
    int32_t *cbuf;       /* [4][16][16] tile stores */
    float *obuf;         /* [16][16] rows x tokens of the output tile */
} amx_scratch;

#define ALIGN64(n) (((size_t)(n) + 63) & ~(size_t)63)

size_t qr_q_amx_scratch_bytes(int64_t K)
{
    size_t k = (size_t)K;
    return 16 * (ALIGN64(k) + 4 * ALIGN64(k / 16 * 4) + 2 * ALIGN64(k / 32 * 4)) + 5 * 1024 + 64;
}

static amx_scratch amx_carve(void *scratch, int64_t K)
{
    size_t k = (size_t)K;
    uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    amx_scratch s;
    s.wq = (int8_t *)p, p += 16 * ALIGN64(k);
    s.dw = (float *)p, p += 16 * ALIGN64(k / 16 * 4);
    s.ws = (int32_t *)p, p += 16 * ALIGN64(k / 16 * 4);
    s.mw = (float *)p, p += 16 * ALIGN64(k / 32 * 4);
    s.dwt = (float *)p, p += 16 * ALIGN64(k / 16 * 4);
    s.wst = (int32_t *)p, p += 16 * ALIGN64(k / 16 * 4);
    s.mwt = (float *)p, p += 16 * ALIGN64(k / 32 * 4);
    s.cbuf = (int32_t *)p, p += 4096;
    s.obuf = (float *)p;
    return s;
}

/* The tile configuration (palette 1): tmm0-3 C 16 x 64 bytes (four groups
 * in flight), tmm4/6 A 16 x G bytes, tmm5/7 B G/4 x 64 bytes (two sets). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

AMX_ATTR static void amx_config(int G)
{
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 4; t++)
        c.rows[t] = 16, c.colsb[t] = 64;
    for (int t = 0; t < 2; t++) {
        c.rows[4 + 2 * t] = 16, c.colsb[4 + 2 * t] = (uint16_t)G;
        c.rows[5 + 2 * t] = (uint8_t)(G / 4), c.colsb[5 + 2 * t] = 64;
    }
    _tile_loadconfig(&c);
}

/* GCC's tile intrinsics are asm statements that tell the compiler nothing
 * about the memory they read or write: a barrier before each tile sequence
 * (the unpacked rows, written by ordinary stores, must be in memory) and
 * after it (the stored tile must not be read early). */
#define AMX_FENCE() __asm__ volatile("" ::: "memory")

/* A pipeline step (token group gi, scale group g) into C tile T with A and
 * B tiles TA, TB (literal numbers: the intrinsics paste them into the
 * instruction). AMX_STORE(T) then puts tile T in cbuf[T]. */
#define AMX_DP(T, TA, TB, gi, g)                                                                                \
    do {                                                                                                        \
        AMX_FENCE();                                                                                            \
        _tile_zero(T);                                                                                          \
        _tile_loadd(TA, s->wq + (g) * G, K);                                                                    \
        _tile_loadd(TB, bsrc + (size_t)(gi) * pks + (size_t)((g) * (G / 4)) * 64, 64);                          \
        if (SX)                                                                                                 \
            _tile_dpbssd(T, TA, TB);                                                                            \
        else                                                                                                    \
            _tile_dpbsud(T, TA, TB);                                                                            \
    } while (0)
#define AMX_STORE(T)                                                                                            \
    do {                                                                                                        \
        _tile_stored(T, s->cbuf + 256 * (T), 64);                                                               \
        AMX_FENCE();                                                                                            \
    } while (0)

/* Step i (the next of the (sgi, sg) walk, advanced here) in C tile i % 4,
 * A/B tiles 4/5 or 6/7 by parity; its store. The walk is kept as two
 * counters: a division per step by the run-time ng costs as much as the
 * scaling of a whole tile. */
#define AMX_START(i)                                                                                            \
    do {                                                                                                        \
        switch ((i) & 3) {                                                                                      \
        case 0: AMX_DP(0, 4, 5, sgi, sg); break;                                                                \
        case 1: AMX_DP(1, 6, 7, sgi, sg); break;                                                                \
        case 2: AMX_DP(2, 4, 5, sgi, sg); break;                                                                \
        default: AMX_DP(3, 6, 7, sgi, sg); break;                                                               \
        }                                                                                                       \
        if (++sg == ng)                                                                                         \
            sg = 0, sgi++;                                                                                      \
    } while (0)
#define AMX_FINISH(i)                                                                                           \
    do {                                                                                                        \
        switch ((i) & 3) {                                                                                      \
        case 0: AMX_STORE(0); break;                                                                            \
        case 1: AMX_STORE(1); break;                                                                            \
        case 2: AMX_STORE(2); break;                                                                            \
        default: AMX_STORE(3); break;                                                                           \
        }                                                                                                       \
    } while (0)

/* y for the 16 rows of s (nr of them real, from row nblk) and every token.
 * One software pipeline runs over all (token group gi, scale group g) steps:
 * while the vector units scale step i (stored one step earlier) into acc
 * (lane l = token l of the group), the tile unit has step i + 2 to multiply
 * and step i + 1 to store. A tile stored right after its multiply, or read
 * right after its store, stalls on the whole tile latency; done so, the
 * kernel is no faster than AVX-512 VNNI. */
AMX_ATTR static inline __attribute__((always_inline)) void amx_rows(const int G, const bool SX, bool has_min,
                                                                    const amx_scratch *s,
                                                                    int64_t K, const qr_qact *a, int64_t nblk,
                                                                    int nr, float *y, size_t ys, const uint8_t *next,
                                                                    size_t next_bytes)
{
    int64_t nb = K / 32, ng = K / G, steps = (a->n_tok + 15) / 16 * ng;
    /* the next row block's weights, into L2 a few lines per step while the
     * tiles work: its unpack then does not wait on DRAM */
    size_t pf_lines = next ? (next_bytes + 63) / 64 : 0, pf_step = (pf_lines + (size_t)steps - 1) / (size_t)steps;
    size_t pf = 0;
    size_t pks = 16 * (size_t)K, pds = (size_t)nb * 16;
    /* signed activations (pks): TDPBSSD gives the exact I at once; else
     * x + 128 (pk): TDPBSUD, and -128 * ws added back per row */
    const uint8_t *bsrc = SX ? (const uint8_t *)a->pks : a->pk;
    const int per = 32 / G; /* groups per 32-block */
    __m512 acc[16];
    for (int r = 0; r < 16; r++)
        acc[r] = _mm512_setzero_ps();
    int64_t sgi = 0, sg = 0; /* the next step to start */
    int64_t gi = 0, g = 0;   /* the step being scaled */
    AMX_START(0);
    if (steps > 1)
        AMX_START(1);
    AMX_FINISH(0);
    for (int64_t i = 0; i < steps; i++) {
        if (i + 1 < steps)
            AMX_FINISH(i + 1);
        if (i + 2 < steps)
            AMX_START(i + 2);
        for (size_t l = 0; l < pf_step && pf < pf_lines; l++, pf++)
            _mm_prefetch((const char *)next + 64 * pf, _MM_HINT_T1);
        const int32_t *cb = s->cbuf + 256 * (i & 3);
        __m512i c[16];
        for (int r = 0; r < 16; r++)
            c[r] = _mm512_load_si512(cb + 16 * r);
        int64_t b = g / per;
        const float *dwg = s->dwt + 16 * g;
        const int32_t *wsg = s->wst + 16 * g;
        const float *pd = a->pd + (size_t)gi * pds, *ps = a->ps + (size_t)gi * pds;
        __m512 dxv = _mm512_loadu_ps(pd + b * 16);
        for (int r = 0; r < 16; r++) {
            __m512i ci = SX ? c[r] : _mm512_add_epi32(c[r], _mm512_set1_epi32(wsg[r]));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ci), _mm512_mul_ps(_mm512_set1_ps(dwg[r]), dxv),
                                     acc[r]);
        }
        if (has_min && g % per == per - 1) {
            __m512 psv = _mm512_loadu_ps(ps + b * 16);
            for (int r = 0; r < 16; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(s->mwt[16 * b + r]), psv, acc[r]);
        }
        if (g == ng - 1) { /* token group done: out tile [rows][tokens] -> y[token][rows] */
            for (int r = 0; r < 16; r++) {
                _mm512_store_ps(s->obuf + 16 * r, acc[r]);
                acc[r] = _mm512_setzero_ps();
            }
            __m512i col = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(16));
            __mmask16 m = (__mmask16)((1u << nr) - 1);
            for (int l = 0; l < 16 && gi * 16 + l < a->n_tok; l++)
                _mm512_mask_storeu_ps(y + (size_t)(gi * 16 + l) * ys + (size_t)nblk, m,
                                      _mm512_i32gather_ps(col, s->obuf + l, 4));
        }
        if (++g == ng)
            g = 0, gi++;
    }
}

AMX_ATTR static inline __attribute__((always_inline)) void amx_gemm_g(const int G, qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a,
                                int64_t n0, int64_t n1, float *y, size_t ys, void *scratch)
{
    const qr_qtype_info *ti = qr_qtype(t);
    amx_scratch s = amx_carve(scratch, K);
    int64_t nb = K / 32, ng = K / G;
    amx_config(G);
    for (int64_t nblk = n0; nblk < n1; nblk += 16) {
        int nr = n1 - nblk < 16 ? (int)(n1 - nblk) : 16;
        for (int r = 0; r < 16; r++) {
            qr_qrow row = {s.wq + (size_t)r * (size_t)K, s.dw + r * ng, s.ws + r * ng, s.mw + r * nb};
            if (r < nr) {
                unpack_amx(t, w + (size_t)(nblk + r) * rb, K, &row);
            } else { /* rows past n1: zero weights, zero scales */
                memset(row.wq, 0, (size_t)K);
                memset(row.dw, 0, sizeof(float) * (size_t)ng);
                memset(row.ws, 0, sizeof(int32_t) * (size_t)ng);
                memset(row.mw, 0, sizeof(float) * (size_t)nb);
            }
        }
        for (int r = 0; r < 16; r++) { /* transposed; the x + 128 correction ready to add */
            for (int64_t g = 0; g < ng; g++) {
                s.dwt[16 * g + r] = s.dw[r * ng + g];
                s.wst[16 * g + r] = -128 * s.ws[r * ng + g];
            }
            for (int64_t b = 0; b < nb; b++)
                s.mwt[16 * b + r] = s.mw[r * nb + b];
        }
        const uint8_t *next = nblk + 16 < n1 ? w + (size_t)(nblk + 16) * rb : NULL;
        size_t next_rows = next ? (size_t)(n1 - nblk - 16 < 16 ? n1 - nblk - 16 : 16) : 0;
        if (a->pks)
            amx_rows(G, true, ti->has_min, &s, K, a, nblk, nr, y, ys, next, next_rows * rb);
        else
            amx_rows(G, false, ti->has_min, &s, K, a, nblk, nr, y, ys, next, next_rows * rb);
    }
    _tile_release();
}

AMX_ATTR void qr_q_gemm_amx(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0,
                              int64_t n1, float *y, size_t ys, void *scratch)
{
    if (qr_qtype(t)->G == 16)
        amx_gemm_g(16, t, w, rb, K, a, n0, n1, y, ys, scratch);
    else
        amx_gemm_g(32, t, w, rb, K, a, n0, n1, y, ys, scratch);
}
#else
typedef int qr_quant_amx_empty; /* ISO C: no empty translation unit */
#endif
