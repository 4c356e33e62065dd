/* Built without the `nccl` feature: the NCCL communicator is unavailable. */
#include "common/error.h"
#include "runtime/dist/comm.h"

bool qr_nccl_built(void) { return false; }

int qr_comm_nccl_create(const int *devs, void *const *streams, int n, qr_comm **out)
{
    (void)devs;
    (void)streams;
    (void)n;
    (void)out;
    return qr_fail(QR_EUNSUPPORTED, "built without NCCL (meson feature `nccl` needs the CUDA toolkit's libnccl)");
}
