/* common/error: qr_fail with a cause recorded by a callee, the way call sites
 * chain it (decoder.c's KV cache, model.c's weight load, cuda_matmul.cu):
 * qr_fail(rc, "prefix: %s", qr_last_error()). Before the fix the message was
 * formatted into the very buffer the cause lived in, so the result repeated
 * the prefix and lost the cause. */
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "tests/unit/test.h"

/* A callee that records a cause, and two callers that prefix it. */
static int inner(void) { return qr_fail(QR_ENOMEM, "cpu: tensor_alloc: %d bytes", 4096); }
static int middle(void)
{
    int rc = inner();
    return qr_fail(rc, "decoder state: KV cache %d x %d for layer %d: %s", 2, 512, 3, qr_last_error());
}
static int outer(void)
{
    int rc = middle();
    return qr_fail(rc, "model.gguf: %s", qr_last_error());
}

int main(void)
{
    qr_clear_error();
    CHECK_STR(qr_last_error(), "");

    /* one level */
    CHECK_INT(middle(), QR_ENOMEM);
    CHECK_STR(qr_last_error(), "decoder state: KV cache 2 x 512 for layer 3: "
                               "cpu: tensor_alloc: 4096 bytes");

    /* two levels: each prefix once, the cause last */
    CHECK_INT(outer(), QR_ENOMEM);
    CHECK_STR(qr_last_error(), "model.gguf: decoder state: KV cache 2 x 512 for "
                               "layer 3: cpu: tensor_alloc: 4096 bytes");

    /* the cause as the first argument too, and used twice */
    qr_fail(QR_EIO, "cause");
    qr_fail(QR_EIO, "%s / %s / %d", qr_last_error(), qr_last_error(), 7);
    CHECK_STR(qr_last_error(), "cause / cause / 7");

    /* a cause that fills the buffer: the result is cut at 1023 bytes, the
     * prefix first, and stays NUL-terminated */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    qr_fail(QR_ELIMIT, "%s", big);
    CHECK_INT(strlen(qr_last_error()), 1023);
    qr_fail(QR_ELIMIT, "pre: %s", qr_last_error());
    const char *e = qr_last_error();
    CHECK_INT(strlen(e), 1023);
    CHECK(strncmp(e, "pre: xxxx", 9) == 0);
    CHECK(strspn(e + 5, "x") == 1018);

    /* a real callee: the CPU backend's tensor_alloc refuses a bad shape, and
     * a caller prefixes that cause as decoder.c does for its KV cache */
    qr_backend *be = NULL;
    CHECK_OK(qr_backend_cpu_create(1, &be));
    if (be) {
        qr_tensor t;
        int rc = qr_be_tensor_alloc(be, QR_F32, -1, 64, &t);
        CHECK_INT(rc, QR_EINVAL);
        rc = qr_fail(rc, "decoder state: KV cache %d x %d for layer %d: %s", 1, 16, 0, qr_last_error());
        CHECK_INT(rc, QR_EINVAL);
        CHECK_STR(qr_last_error(), "decoder state: KV cache 1 x 16 for layer 0: "
                                   "cpu: tensor_alloc: bad shape (-1, 64)");
        qr_backend_destroy(be);
    }

    qr_clear_error();
    CHECK_STR(qr_last_error(), "");
    return qr_test_done();
}
