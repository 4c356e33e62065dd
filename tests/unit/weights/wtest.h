/* Helpers shared by the weights tests. */
#ifndef QR_WTEST_H
#define QR_WTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole file into a malloc'd buffer (NULL on failure). */
static inline unsigned char *wt_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

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
