/* membw: streaming read bandwidth of DRAM (bench/membw.h), for the "decode >= 80% of the DRAM
 * bandwidth bound" line of bench/quant/run.sh (bound tokens/s = bandwidth /
 * bytes read per decoded token).
 *
 *   membw [--threads N] [--mib M] [--passes P]     (defaults 2, 1024, 10)
 *
 * N threads sum one M MiB buffer, P timed passes (bench/membw.h). Prints the best and the median pass in GB/s
 * (10^9 bytes/s) on one line: "membw: best B GB/s, median D GB/s (...)". The
 * buffer must be much larger than the last-level cache to measure DRAM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../membw.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int threads = 2, mib = 1024, passes = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib"))
            mib = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--passes"))
            passes = atoi(argv[i + 1]);
        else
            argc = -1;
    }
    if (argc < 0 || argc % 2 == 0 || threads < 1 || threads > 256 || mib < 1 || mib > 1 << 20 || passes < 1 ||
        passes > 1000) {
        fprintf(stderr, "usage: membw [--threads 1..256] [--mib 1..1048576] [--passes 1..1000]\n");
        return 2;
    }
    double *bw = calloc((size_t)passes, sizeof *bw);
    if (!bw || qb_membw_passes((size_t)mib << 20, threads, passes, bw)) {
        fprintf(stderr, "membw: out of memory (%d MiB)\n", mib);
        return 1;
    }
    qsort(bw, (size_t)passes, sizeof *bw, cmp_double);
    printf("membw: best %.2f GB/s, median %.2f GB/s (%d threads, %d MiB buffer, %d passes)\n", bw[passes - 1] / 1e9,
           bw[passes / 2] / 1e9, threads, mib, passes);
    free(bw);
    return 0;
}
