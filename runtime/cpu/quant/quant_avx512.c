/* AVX-512 VNNI kernels: the 256-bit GEMV of quant_x86_256.inc with the
 * AVX512VL dpbusd, and a 512-bit GEMM with tokens in lanes.
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
#include "runtime/cpu/quant/quant_x86_256.inc"

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

const qr_qkernels qr_qk_avx512vnni = {gemv_avx512, gemm_avx512, quant_row_avx512};
#else
typedef int qr_quant_avx512_empty; /* ISO C: no empty translation unit */
#endif
