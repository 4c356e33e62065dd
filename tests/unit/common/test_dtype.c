/* f16/bf16 conversions against the compiler's own _Float16 arithmetic and
 * against hand-computed bit patterns. */
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "runtime/dtype.h"
#include "tests/unit/test.h"

/* _Float16 is a GCC extension on x86; the reference conversions come from it. */
__extension__ typedef _Float16 ref_f16;

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

int main(void)
{
    /* Every f16 value round-trips through f32 exactly, and matches _Float16. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        ref_f16 hv;
        uint16_t hh = (uint16_t)h;
        memcpy(&hv, &hh, 2);
        float ref = (float)hv, got = qr_f16_to_f32(hh);
        if (ref != ref) { bad += got == got; continue; } /* nan stays nan */
        bad += bits_of(ref) != bits_of(got);
        bad += qr_f32_to_f16(got) != hh;
    }
    CHECK_INT(bad, 0);
    /* f32 -> f16 rounding matches the compiler's conversion on a sweep of values. */
    bad = 0;
    for (uint32_t x = 0; x < 0xffffffffu - 7919; x += 7919) {
        float f;
        memcpy(&f, &x, 4);
        if (f != f) continue;
        ref_f16 r = (ref_f16)f;
        uint16_t rb;
        memcpy(&rb, &r, 2);
        bad += rb != qr_f32_to_f16(f);
    }
    CHECK_INT(bad, 0);
    /* bf16: 1.0 = 0x3f80; round-to-nearest-even at the halfway point. */
    CHECK_INT(qr_f32_to_bf16(1.0f), 0x3f80);
    CHECK(qr_bf16_to_f32(0x3f80) == 1.0f);
    float halfway;
    uint32_t hw = 0x3f808000u; /* exactly between 0x3f80 and 0x3f81: ties to even 0x3f80 */
    memcpy(&halfway, &hw, 4);
    CHECK_INT(qr_f32_to_bf16(halfway), 0x3f80);
    hw = 0x3f818000u; /* between 0x3f81 and 0x3f82: ties to even 0x3f82 */
    memcpy(&halfway, &hw, 4);
    CHECK_INT(qr_f32_to_bf16(halfway), 0x3f82);
    qr_dtype t;
    CHECK_OK(qr_dtype_parse("bf16", &t));
    CHECK_INT(t, QR_BF16);
    CHECK_INT(qr_dtype_parse("f64", &t), QR_EINVAL);
    CHECK_INT(qr_dtype_row_bytes(QR_Q4_K, 512), 288);
    CHECK_INT(qr_dtype_row_bytes(QR_Q8_0, 33), 0);
    return qr_test_done();
}
