#!/usr/bin/env python3
"""The two ceilings of this GPU, measured in the same run as the benchmarks
(bench/gpu/run.sh): device-to-device copy bandwidth (bytes read + written)
and the bf16 matrix-product rate on random data (torch.matmul = cuBLAS).

Method: CUDA events around each repetition after a warm-up, median of 20;
the copy moves 2 GiB (far beyond L2), the product is 8192^3 on random
normal data (never zeros: they run faster). Prints a human line per
ceiling and a last line `CEILINGS bw_gbps=... gemm_tflops=...` that
run.sh parses."""
import statistics
import sys

import torch


def timed(fn, reps=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return statistics.median(ts)


def main():
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77
    dev = torch.cuda.get_device_name(0)
    n = (2 << 30) // 4
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src))
    bw = 2 * n * 4 / t / 1e9
    print(f"{dev}: device copy {n * 4 / 2**30:.0f} GiB: {t * 1e3:.2f} ms, {bw:.0f} GB/s (read + write)")
    del src, dst
    m = 8192
    a = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    t = timed(lambda: a @ b)
    tf = 2 * m**3 / t / 1e12
    print(f"{dev}: bf16 matmul {m}^3 random: {t * 1e3:.2f} ms, {tf:.0f} TFLOP/s")
    print(f"CEILINGS bw_gbps={bw:.1f} gemm_tflops={tf:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
