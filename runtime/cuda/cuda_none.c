/* The CUDA entry points of runtime/backend.h in a build without CUDA (nvcc not
 * found, or -Dcuda=disabled): an honest "not built" answer, so the CLI and the
 * service can say why --device cuda is unavailable instead of failing to link. */
#include <stddef.h>

#include "common/error.h"
#include "runtime/backend.h"
#include "runtime/dist/comm.h"

#define QR_CUDA_NONE_WHY "built without CUDA"

bool qr_cuda_built(void) { return false; }

int qr_cuda_devices(qr_gpu_info *out, int max, int *n)
{
    (void)out;
    (void)max;
    if (n)
        *n = 0;
    return QR_OK;
}

const char *qr_cuda_why_none(void) { return QR_CUDA_NONE_WHY; }

int qr_backend_cuda_create(int device, qr_backend **out)
{
    (void)device;
    (void)out;
    return qr_fail(QR_EUNSUPPORTED, "cuda: " QR_CUDA_NONE_WHY " (rebuild with -Dcuda=enabled where nvcc is installed)");
}

int qr_backend_cuda_create_ex(int device, qr_dtype act_dtype, qr_backend **out)
{
    (void)act_dtype;
    return qr_backend_cuda_create(device, out);
}

/* runtime/dist/comm.h: no backend is a CUDA one here. */
int qr_backend_cuda_device(const qr_backend *be, void **stream)
{
    (void)be;
    if (stream)
        *stream = NULL;
    return -1;
}
