/* Streaming read bandwidth of memory, shared by bench_models and
 * bench/quant/membw: `threads` threads each sum the 64-bit words of their share
 * of one buffer of `bytes` (written beforehand so its pages exist; 8 independent
 * 256-bit accumulators, AVX2 when the CPU has it, so the loop is bound by
 * loads); each pass is timed from the first thread's start to the last
 * thread's end, taken by the workers themselves past a barrier (with as many
 * workers as cores the caller may not run while they do). The buffer must be
 * much larger than the last-level cache to measure DRAM. */
#ifndef QR_BENCH_MEMBW_H
#define QR_BENCH_MEMBW_H

#include <stddef.h>

/* Fills bw[0..passes) with each pass's bandwidth in bytes/s. threads 1..256.
 * Returns 0, or -1 when the buffer or the thread tables cannot be allocated. */
int qb_membw_passes(size_t bytes, int threads, int passes, double *bw);

#endif
