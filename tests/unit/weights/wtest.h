/* Helpers shared by the weights tests. */
#ifndef QR_WTEST_H
#define QR_WTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes n bytes to path; 0 or -1. */
static inline int wt_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Number of elements whose bit patterns differ (so -0 != +0, inf == inf). */
static inline long wt_bits_differ(const float *a, const float *b, size_t n)
{
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&a[i], &b[i], 4) != 0;
    return bad;
}

#endif
