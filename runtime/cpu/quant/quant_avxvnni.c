/* AVX2 + AVX-VNNI kernels (256-bit dpbusd, e.g. Alder Lake and later client
 * cores without AVX-512). Target attributes as in quant_avx2.c. */
#if defined(__x86_64__)
#include <immintrin.h>

#define QR_QUNPACK_ATTR static inline __attribute__((always_inline, target("avx2,fma,f16c,avxvnni")))
#define QR_QF16(h) _cvtsh_ss(h)
#include "runtime/cpu/quant/quant_impl.h"

#define QK_ATTR __attribute__((target("avx2,fma,f16c,avxvnni")))
#define QK_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c,avxvnni")))
#define QK_VNNI 1
#define QK_DPB(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define QK_NAME(x) x##_avxvnni
#define QK_GEMM256 1
#include "runtime/cpu/quant/quant_x86_256.inc"

const qr_qkernels qr_qk_avxvnni = {gemv_avxvnni, gemm_avxvnni, quant_row_avxvnni};
#else
typedef int qr_quant_avxvnni_empty; /* ISO C: no empty translation unit */
#endif
