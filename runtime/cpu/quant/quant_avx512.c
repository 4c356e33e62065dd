/* AVX-512 VNNI kernels: the 256-bit GEMV of quant_x86_256.inc with the
 * AVX512VL dpbusd and qh as a byte mask (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), a
 * 512-bit GEMV for the K-quant types and a
 * 512-bit GEMM with tokens in lanes; the AMX kernel table pairs this GEMV
 * with quant_amx.c's GEMM.
 *
 * GEMM: activations in a->pk put 4 consecutive k of 16 tokens in one zmm
 * ([K/4][16][4] bytes, q + 128 as unsigned), so one vpdpbusd with 4 weight
 * bytes broadcast (signed) adds 4 products for each of 16 tokens. A tile is
 * 4 weight rows x 32 tokens: 8 integer accumulators, started at
 * -128 * (group sum of the weights) so that after G/4 dpbusd they hold the
 * exact I of quant.h; each is then scaled (dw * dx) into a float accumulator.
 * Per 8 dpbusd (512 multiply-adds, G = 32): 1 broadcast, 1 cvt, 1 mul, 1 fma. */
#if defined(__x86_64__)
#include <immintrin.h>

#define T512 "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define QR_QUNPACK_ATTR static inline __attribute__((always_inline, target(T512)))
#define QR_QF16(h) _cvtsh_ss(h)
#include "runtime/cpu/quant/quant_impl.h"

#define QK_ATTR __attribute__((target(T512)))
#define QK_INLINE static inline __attribute__((always_inline, target(T512)))
#define QK_VNNI 1
#define QK_DPB(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define QK_NAME(x) x##_avx512
#define QK_GEMM256 0
#define QK_KMASK 1
#include "runtime/cpu/quant/quant_x86_256.inc"

/* ---- 512-bit GEMV for the K-quant types Q4_K, Q5_K and Q6_K ----
 * 64 weights per vector: a Q4_K/Q5_K 32-byte run of nibbles is its two
 * sub-blocks (low nibbles, then high), a Q6_K 64-byte run of ql with its 32
 * bytes of qh two 32-value pieces. Values are dotted unsigned (0..31 or
 * 0..63); Q6_K's offset 32 is taken off as 32 * (sum of x), a second dpbusd.
 * Each lane's scale comes from products cs = dw * dx made 8 groups at a time
 * through a permute. The min terms mw * s go into their own accumulator 8
 * groups at a time, and one reduction per row ends it all. The float work per
 * element is the 256-bit path's (one rounding of dw * dx, one fma per group);
 * only the order of the accumulation differs, within test qmat's bound. */
QK_INLINE void gemv512(const int NT, qr_dtype t, const uint8_t *b, int64_t K, const qr_qact *a, int64_t t0, int64_t n,
                         float *y, size_t ys)
{
    int64_t nb = K / 32;
    __m512 acc[4][2];
    __m256 macc[4]; /* the min terms: mw * s, 8 blocks at a time */
    const int8_t *xq[4];
    const float *dx[4], *sx[4];
    for (int i = 0; i < NT; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        macc[i] = _mm256_setzero_ps();
        xq[i] = a->q + (size_t)(t0 + i) * (size_t)K;
        dx[i] = a->d + (t0 + i) * nb;
        sx[i] = a->s + (t0 + i) * nb;
    }
    const __m512i m4 = _mm512_set1_epi8(0xf);
    if (t == QR_Q4_K || t == QR_Q5_K) {
        int five = t == QR_Q5_K, bs = five ? 176 : 144;
        for (int64_t i = 0; i < K / 256; i++, b += bs) {
            _mm_prefetch((const char *)b + QK_PFD, _MM_HINT_T0);
            _mm_prefetch((const char *)b + QK_PFD + 64, _MM_HINT_T0);
            float dws[8], mws[8];
            k4_scales_avx512(b, dws, mws);
            __m256 dw8 = _mm256_loadu_ps(dws), mw8 = _mm256_loadu_ps(mws);
            __m512 cs[4];
            for (int j = 0; j < NT; j++) {
                cs[j] = _mm512_castps256_ps512(_mm256_mul_ps(dw8, _mm256_loadu_ps(dx[j] + 8 * i)));
                macc[j] = _mm256_fmadd_ps(mw8, _mm256_loadu_ps(sx[j] + 8 * i), macc[j]);
            }
            const uint8_t *q = b + (five ? 48 : 16);
            __m512i hb = five ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16)))
                              : _mm512_setzero_si512();
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
                __m512i w = _mm512_and_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1), m4);
                if (five) { /* bit 2k (low half) / 2k + 1 (high half) of each qh byte, as 0x10 */
                    __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * k)),
                                                    _mm256_set1_epi16((short)(2 * k + 1)), 1);
                    __m512i hbit = _mm512_and_si512(_mm512_srlv_epi16(hb, sh), _mm512_set1_epi8(1));
                    w = _mm512_or_si512(w, _mm512_slli_epi16(hbit, 4));
                }
                __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(2 * k), _mm256_set1_epi32(2 * k + 1), 1);
                for (int j = 0; j < NT; j++) {
                    __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w,
                                                    _mm512_loadu_si512((const void *)(xq[j] + 256 * i + 64 * k)));
                    acc[j][k & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(idx, cs[j]),
                                                    acc[j][k & 1]);
                }
            }
        }
    } else { /* Q6_K */
        const __m512i m30 = _mm512_set1_epi8(0x30), c32 = _mm512_set1_epi8(32);
        const __m512i sl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
        const __m512i sr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
        const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        for (int64_t i = 0; i < K / 256; i++, b += 210) {
            _mm_prefetch((const char *)b + QK_PFD, _MM_HINT_T0);
            _mm_prefetch((const char *)b + QK_PFD + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)b + QK_PFD + 128, _MM_HINT_T0);
            __m512 dw16 = _mm512_mul_ps(_mm512_set1_ps(qr_q_f16(b + 208)),
                                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192)))));
            __m512 cs[4]; /* group g of the super-block: dw[g] * dx[g / 2] */
            for (int j = 0; j < NT; j++)
                cs[j] = _mm512_mul_ps(dw16, _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(dx[j] + 8 * i))));
            for (int h = 0; h < 2; h++) {
                __m512i ql = _mm512_loadu_si512((const void *)(b + 64 * h)); /* [a | c] */
                __m512i hq = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
                __m512i w[2];
                w[0] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(hq, sl), m30));
                w[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                       _mm512_and_si512(_mm512_srlv_epi16(hq, sr), m30));
                for (int u = 0; u < 2; u++) {
                    int g0 = 8 * h + 4 * u; /* first 16-group of these 64 values */
                    __m512i idx = _mm512_set_epi32(g0 + 3, g0 + 3, g0 + 3, g0 + 3, g0 + 2, g0 + 2, g0 + 2, g0 + 2,
                                                   g0 + 1, g0 + 1, g0 + 1, g0 + 1, g0, g0, g0, g0);
                    for (int j = 0; j < NT; j++) {
                        __m512i x = _mm512_loadu_si512((const void *)(xq[j] + 256 * i + 128 * h + 64 * u));
                        __m512i d = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w[u], x),
                                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), c32, x));
                        acc[j][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_permutexvar_ps(idx, cs[j]),
                                                    acc[j][u]);
                    }
                }
            }
        }
    }
    for (int i = 0; i < NT; i++) /* one reduction: the groups' sums and the mins (zero for Q6_K) */
        y[(size_t)(t0 + i) * ys + (size_t)n] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_zextps256_ps512(macc[i])));
}

QK_ATTR static void gemv_all_avx512(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a,
                                    int64_t n0, int64_t n1, float *y, size_t ys, void *scratch)
{
    if (t != QR_Q4_K && t != QR_Q5_K && t != QR_Q6_K) {
        /* Q8_0 (signed, already past a core's DRAM share) and the 32-value
         * types: the 256-bit path. Zen 4 runs 512-bit ops as two halves, and
         * there the 32-value types' two-pass ymm GEMV (qh as a byte mask)
         * streamed 1.7x what a two-block zmm loop did. */
        gemv_avx512(t, w, rb, K, a, n0, n1, y, ys, scratch);
        return;
    }
    for (int64_t n = n0; n < n1; n++) { /* scales stay in registers: the scratch is not used */
        const uint8_t *b = w + (size_t)n * rb;
        int64_t t0 = 0;
        for (; t0 + 4 <= a->n_tok; t0 += 4)
            gemv512(4, t, b, K, a, t0, n, y, ys);
        switch (a->n_tok - t0) {
        case 3: gemv512(3, t, b, K, a, t0, n, y, ys); break;
        case 2: gemv512(2, t, b, K, a, t0, n, y, ys); break;
        case 1: gemv512(1, t, b, K, a, t0, n, y, ys); break;
        default: break;
        }
    }
}

/* RT rows x TGN groups of 16 tokens; acc[r][j] lane l = token 16j + l. */
QK_INLINE void tile512(const int RT, const int TGN, const int G, bool has_min, const qr_qrow *rows, int64_t K,
                       const uint8_t *pk, size_t pk_stride, const float *pd, const float *ps, size_t pd_stride,
                       __m512 acc[4][2])
{
    int64_t nb = K / 32;
    for (int r = 0; r < RT; r++)
        for (int j = 0; j < TGN; j++)
            acc[r][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *xb = pk + (size_t)b * 8 * 64;
        for (int h = 0; h < 32 / G; h++) {
            int64_t g = b * (32 / G) + h;
            __m512i ia[4][2];
            for (int r = 0; r < RT; r++) {
                __m512i init = _mm512_set1_epi32(-128 * rows[r].ws[g]);
                for (int j = 0; j < TGN; j++)
                    ia[r][j] = init;
            }
            for (int k = 0; k < G / 4; k++) {
                int k4 = h * (G / 4) + k;
                __m512i x[2];
                for (int j = 0; j < TGN; j++)
                    x[j] = _mm512_loadu_si512((const void *)(xb + (size_t)j * pk_stride + (size_t)k4 * 64));
                for (int r = 0; r < RT; r++) {
                    int32_t w4;
                    memcpy(&w4, rows[r].wq + 32 * b + 4 * k4, 4);
                    __m512i wb = _mm512_set1_epi32(w4);
                    for (int j = 0; j < TGN; j++)
                        ia[r][j] = _mm512_dpbusd_epi32(ia[r][j], x[j], wb);
                }
            }
            __m512 d[2];
            for (int j = 0; j < TGN; j++)
                d[j] = _mm512_loadu_ps(pd + (size_t)j * pd_stride + b * 16);
            for (int r = 0; r < RT; r++) {
                __m512 sw = _mm512_set1_ps(rows[r].dw[g]);
                for (int j = 0; j < TGN; j++)
                    acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r][j]), _mm512_mul_ps(sw, d[j]), acc[r][j]);
            }
        }
        if (has_min) {
            __m512 s[2];
            for (int j = 0; j < TGN; j++)
                s[j] = _mm512_loadu_ps(ps + (size_t)j * pd_stride + b * 16);
            for (int r = 0; r < RT; r++) {
                __m512 m = _mm512_set1_ps(rows[r].mw[b]);
                for (int j = 0; j < TGN; j++)
                    acc[r][j] = _mm512_fmadd_ps(m, s[j], acc[r][j]);
            }
        }
    }
}

QK_INLINE void gemm512_g(const int G, qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a,
                         int64_t n0, int64_t n1, float *y, size_t ys, void *scratch)
{
    const qr_qtype_info *ti = qr_qtype(t);
    qr_qrow rows[QR_QRB_MAX];
    float *yb = qr_q_rows_init(scratch, K, G, rows); /* [32 tokens][rbk] */
    int rbk = qr_q_rblock(K);
    int64_t nb = K / 32, ng = (a->n_tok + 15) / 16;
    size_t pks = 16 * (size_t)K, pds = (size_t)nb * 16;
    for (int64_t nblk = n0; nblk < n1; nblk += rbk) {
        int nr = n1 - nblk < rbk ? (int)(n1 - nblk) : rbk;
        for (int r = 0; r < nr; r++)
            unpack_avx512(t, w + (size_t)(nblk + r) * rb, K, &rows[r]);
        for (int64_t gi = 0; gi < ng; gi += 2) {
            int tgn = ng - gi >= 2 ? 2 : 1;
            const uint8_t *pk = a->pk + (size_t)gi * pks;
            const float *pd = a->pd + (size_t)gi * pds, *ps = a->ps + (size_t)gi * pds;
            /* the y runs this group pair will write: one strided miss per
             * token row otherwise stalls the copy-out below */
            for (int l = 0; l < 16 * tgn && gi * 16 + l < a->n_tok; l++)
                for (int c = 0; c < nr; c += 16)
                    _mm_prefetch((const char *)(y + (size_t)(gi * 16 + l) * ys + (size_t)(nblk + c)), _MM_HINT_T0);
            int rt; /* tail rows one at a time: each row gets the same instruction sequence */
            for (int r0 = 0; r0 < nr; r0 += rt) {
                rt = nr - r0 >= 4 ? 4 : 1;
                __m512 acc[4][2];
                if (rt == 4 && tgn == 2)
                    tile512(4, 2, G, ti->has_min, rows + r0, K, pk, pks, pd, ps, pds, acc);
                else if (rt == 4)
                    tile512(4, 1, G, ti->has_min, rows + r0, K, pk, pks, pd, ps, pds, acc);
                else if (tgn == 2)
                    tile512(1, 2, G, ti->has_min, rows + r0, K, pk, pks, pd, ps, pds, acc);
                else
                    tile512(1, 1, G, ti->has_min, rows + r0, K, pk, pks, pd, ps, pds, acc);
                /* transpose the tile into yb[token][row] */
                for (int r = 0; r < rt; r++)
                    for (int jj = 0; jj < tgn; jj++)
                        _mm512_i32scatter_ps(yb + (size_t)jj * 16 * rbk + r0 + r,
                                             _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                                                 5, 4, 3, 2, 1, 0),
                                                                _mm512_set1_epi32(rbk)),
                                             acc[r][jj], 4);
            }
            for (int l = 0; l < 16 * tgn; l++) {
                int64_t tk = gi * 16 + l;
                if (tk < a->n_tok)
                    memcpy(y + (size_t)tk * ys + (size_t)nblk, yb + (size_t)l * rbk, sizeof(float) * (size_t)nr);
            }
        }
    }
}

QK_ATTR static void gemm_avx512(qr_dtype t, const uint8_t *w, size_t rb, int64_t K, const qr_qact *a, int64_t n0,
                                int64_t n1, float *y, size_t ys, void *scratch)
{
    if (qr_qtype(t)->G == 16)
        gemm512_g(16, t, w, rb, K, a, n0, n1, y, ys, scratch);
    else
        gemm512_g(32, t, w, rb, K, a, n0, n1, y, ys, scratch);
}

const qr_qkernels qr_qk_avx512vnni = {gemv_all_avx512, gemm_avx512, quant_row_avx512};

/* AVX-512 GEMV with the AMX GEMM of quant_amx.c */
const qr_qkernels qr_qk_amx = {gemv_all_avx512, qr_q_gemm_amx, quant_row_avx512};
#else
typedef int qr_quant_avx512_empty; /* ISO C: no empty translation unit */
#endif
