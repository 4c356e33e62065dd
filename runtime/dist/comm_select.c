/* Which communicator a tensor-parallel group uses, decided in one place
 * (qr_comm_choose, unit-tested on the CPU by tests/unit/dist/test_comm.c),
 * and its creation for a group's backends (qr_model_load_tp). */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/dist/comm.h"

static bool fail_init; /* qr_comm_test_fail_init */

void qr_comm_test_fail_init(bool on) { fail_init = on; }

const char *qr_comm_kind_name(qr_comm_kind k)
{
    return k == QR_COMM_NCCL ? "nccl" : k == QR_COMM_HOST_STAGED ? "host (staged through host memory)" : "host";
}

qr_comm_kind qr_comm_choose(const int *devs, int n, bool nccl_built, const char **why)
{
    const char *w;
    qr_comm_kind k;
    bool all_cpu = true, all_gpu = true, distinct = true;
    for (int r = 0; r < n; r++) {
        all_cpu = all_cpu && devs[r] < 0;
        all_gpu = all_gpu && devs[r] >= 0;
        for (int q = 0; q < r && distinct; q++)
            distinct = devs[q] < 0 || devs[q] != devs[r];
    }
    if (all_cpu) {
        k = QR_COMM_HOST_INPLACE;
        w = "CPU ranks: host memory, in place";
    } else if (!all_gpu) {
        k = QR_COMM_HOST_STAGED;
        w = "CPU and CUDA ranks mixed: staged through host memory";
    } else if (!distinct) {
        k = QR_COMM_HOST_STAGED;
        w = "several ranks on one GPU: staged through host memory";
    } else if (!nccl_built) {
        k = QR_COMM_HOST_STAGED;
        w = "built without NCCL: staged through host memory";
    } else {
        k = QR_COMM_NCCL;
        w = "one rank per GPU: NCCL on device memory";
    }
    if (why)
        *why = w;
    return k;
}

/* "cuda:0, cuda:1, cpu" into buf. */
static void list_devs(const int *devs, int n, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int r = 0; r < n && pos + 1 < len; r++) {
        int m = devs[r] >= 0 ? snprintf(buf + pos, len - pos, "%scuda:%d", r ? ", " : "", devs[r])
                             : snprintf(buf + pos, len - pos, "%scpu", r ? ", " : "");
        if (m < 0)
            break;
        pos += (size_t)m < len - pos ? (size_t)m : len - pos - 1;
    }
}

int qr_comm_create_for(qr_backend *const *bes, int n, qr_comm **out, qr_comm_kind *kind)
{
    int devs[256];
    void *streams[256];
    char names[2048];
    if (n < 1 || n > 256 || !bes || !out)
        return qr_fail(QR_EINVAL, "communicator: %d ranks (1..256)", n);
    for (int r = 0; r < n; r++)
        devs[r] = qr_backend_cuda_device(bes[r], &streams[r]);
    const char *why;
    qr_comm_kind k = qr_comm_choose(devs, n, qr_nccl_built(), &why);
    if (kind)
        *kind = k;
    list_devs(devs, n, names, sizeof names);
    if (fail_init)
        return qr_fail(QR_EBACKEND, "communicator %s over ranks on %s: initialisation failed (injected fault)",
                       qr_comm_kind_name(k), names);
    int rc = k == QR_COMM_NCCL ? qr_comm_nccl_create(devs, streams, n, out) : qr_comm_host_create(n, out);
    if (rc)
        return qr_fail(rc, "communicator %s over ranks on %s: %s", qr_comm_kind_name(k), names, qr_last_error());
    (*out)->in_place = k != QR_COMM_HOST_STAGED;
    if (n > 1)
        QR_INFO("tensor parallelism over %d ranks on %s: communicator %s (%s)", n, names, qr_comm_kind_name(k), why);
    return QR_OK;
}
