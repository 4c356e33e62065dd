/* AVX2 + FMA + F16C kernels (no VNNI: int8 dots through maddubs/madd). Built
 * without -mavx2: every function carries the target attribute and the ISA is
 * chosen at run time (quant.c). */
#if defined(__x86_64__)
#include <immintrin.h>

#define QR_QUNPACK_ATTR static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define QR_QF16(h) _cvtsh_ss(h)
#include "runtime/cpu/quant/quant_impl.h"

#define QK_ATTR __attribute__((target("avx2,fma,f16c")))
#define QK_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define QK_VNNI 0
#define QK_NAME(x) x##_avx2
#define QK_GEMM256 1
#include "runtime/cpu/quant/quant_x86_256.inc"

const qr_qkernels qr_qk_avx2 = {gemv_avx2, gemm_avx2, quant_row_avx2};
#else
typedef int qr_quant_avx2_empty; /* ISO C: no empty translation unit */
#endif
