#!/usr/bin/env bash
# The CUDA backend's one benchmark script (issue 4, "Speed"): on a GPU machine
# it builds quire with -Dcuda=enabled, runs the CUDA kernel tests, measures the
# two ceilings (copy bandwidth, bf16 GEMM rate) and then times, in the same
# call, everything the issue asks for, against the references on the same GPU:
#
#   embeddings   MiniLM-L6 / bge-base shapes, batch 256 x 128 and x 512 tokens,
#                quire (f16 and bf16 weights) vs sentence-transformers fp16
#   decode       Llama-3-8B shape, batch 1, bf16 and int8 (and Q8_0): tok/s and
#                share of the bandwidth roofline; transformers generate() with a
#                static cache (and + torch.compile) on the same shape
#   prefill      2048 tokens of the 8B shape as a share of the GEMM rate
#   batched      32 and 128 concurrent sequences, total tok/s
#   small        SmolLM2-135M and Qwen2.5-0.5B shapes, batch 1, CUDA graphs on/off
#   parity       random-weight models of real configs (save_pretrained), logits /
#                greedy ids / embeddings vs transformers, CUDA and CPU backends
#
#   bench/gpu/run.sh [PHASE...]    PHASE: build test ceil ops embed decode small
#                                  batched parity (default: all, in that order)
#
# A device call is limited to 10 minutes: run the phases over several calls on
# one warm machine if needed (build-gpu/ and the models under $QUIRE_GPU_WORK
# stay while it is warm). Results: stdout (summary table last) and, when $OUT
# is set, $OUT/gpu-bench.log. Copy the figures to bench/RESULTS.md with the
# GPU, date and this method.
#
# Build dependencies: the machine needs the -dev packages of tools/deps.sh. If
# pkg-config cannot find them and bench/gpu/debs/ holds .deb files (fetched on
# a Debian machine with bench/gpu/fetch_debs.sh and carried with the call),
# they are unpacked under /tmp/quire-deps and used from there.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
work=${QUIRE_GPU_WORK:-/tmp/quire-gpu}
log=${OUT:-/tmp}/gpu-bench.log
mkdir -p "$work"
: > "$log"
summary=()
say() { echo "$*" | tee -a "$log"; }
note() { summary+=("$*"); say "$*"; }
run() { # command... : output to the log and stdout; never stops the script
    say "\$ $*"
    "$@" 2>&1 | tee -a "$log"
    return "${PIPESTATUS[0]}"
}

phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build test ceil ops embed decode small batched parity)
want() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

say "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) on $(hostname)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee -a "$log"
say "# load: $(uptime)"

deps_env() {
    pkg-config --exists jansson 2>/dev/null && return 0
    ls bench/gpu/debs/*.deb >/dev/null 2>&1 || { say "missing build dependencies and no bench/gpu/debs"; return 1; }
    local p=/tmp/quire-deps
    mkdir -p $p
    for f in bench/gpu/debs/*.deb; do dpkg -x "$f" $p; done
    local ma; ma=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    export PKG_CONFIG_PATH=$p/usr/lib/$ma/pkgconfig:$p/usr/share/pkgconfig:$p/usr/lib/pkgconfig:${PKG_CONFIG_PATH:-}
    export CPATH=$p/usr/include:$p/usr/include/$ma:${CPATH:-}
    export LIBRARY_PATH=$p/usr/lib/$ma:$p/usr/lib:${LIBRARY_PATH:-}
    export LD_LIBRARY_PATH=$p/usr/lib/$ma:$p/usr/lib:${LD_LIBRARY_PATH:-}
    # .pc files name /usr as their prefix: point them at the unpacked tree
    export PKG_CONFIG_SYSROOT_DIR=$p
}

bench=$root/build-gpu/bench/bench_gpu
if want build; then
    deps_env
    if [ ! -f build-gpu/build.ninja ]; then
        run meson setup build-gpu -Dcuda=enabled -Dbuildtype=release -Dgpu_archs="${QUIRE_GPU_ARCHS:-9.0}" \
            || note "BUILD setup failed"
    fi
    run ninja -C build-gpu && note "build: ok (-Dcuda=enabled)" || note "BUILD FAILED"
fi

if want test && [ -x "$bench" ]; then
    run meson test -C build-gpu --suite cuda --print-errorlogs --num-processes 1
    note "cuda tests: $(grep -E '^(Ok|Fail|Skipped):' build-gpu/meson-logs/testlog.txt | tr -s ' ' | paste -sd' ')"
fi

bw=0 gemm=0
if want ceil || want decode || want small || want batched; then
    line=$(python3 bench/gpu/ceilings.py 2>&1 | tee -a "$log" | grep '^CEILINGS') || true
    bw=$(sed -n 's/.*bw_gbps=\([0-9.]*\).*/\1/p' <<<"$line")
    gemm=$(sed -n 's/.*gemm_tflops=\([0-9.]*\).*/\1/p' <<<"$line")
    note "ceilings: copy ${bw:-?} GB/s, bf16 GEMM ${gemm:-?} TFLOP/s (torch)"
    bw=${bw:-0} gemm=${gemm:-0}
fi

if want ops && [ -x "$bench" ]; then
    while read -r l; do note "ops: $l"; done < <(run "$bench" ops | grep -E '^(gemm|gemv)')
fi

if want embed || want parity; then
    run python3 bench/gpu/make_models.py "$work/models" ${QUIRE_GPU_8B:+--with-8b} || note "make_models failed"
fi

if want embed && [ -x "$bench" ]; then
    for m in minilm-l6 bge-base; do
        for L in 128 512; do
            for dt in f16 bf16; do
                r=$("$bench" embed "$work/models/$m" --batch 256 --len $L --dtype $dt 2>&1 | tee -a "$log" | grep '^embed')
                note "quire $m $dt 256x$L: $(sed -n 's/.*: \([0-9]* tok\/s\).*/\1/p' <<<"$r")"
            done
            r=$(python3 bench/gpu/hf_speed.py embed "$work/models/$m" --batch 256 --len $L 2>&1 | tee -a "$log" | grep '^sentence')
            note "sentence-transformers fp16 $m 256x$L: $(sed -n 's/.*: \([0-9]* tok\/s\).*/\1/p' <<<"$r")"
        done
    done
fi

dec() { # label args...: one bench_gpu decode line into the summary
    local label=$1; shift
    local r
    r=$("$bench" decode "$@" --bw "$bw" --gemm "$gemm" 2>&1 | tee -a "$log" | grep -E '^(prefill|decode)')
    while read -r l; do [ -n "$l" ] && note "$label: $l"; done <<<"$r"
}

if want decode && [ -x "$bench" ]; then
    dec "8B bf16" --shape llama3-8b --dtype bf16 --prompt 128 --tokens 128
    dec "8B int8" --shape llama3-8b --dtype int8 --prompt 128 --tokens 128
    dec "8B q8_0" --shape llama3-8b --dtype q8_0 --prompt 128 --tokens 128
    dec "8B prefill 2048" --shape llama3-8b --dtype bf16 --prompt 2048 --tokens 8
    r=$(python3 bench/gpu/hf_speed.py decode --shape llama3-8b 2>&1 | tee -a "$log" | grep '^transformers')
    note "HF: $r"
    if [ -n "${QUIRE_GPU_COMPILE:-}" ]; then
        r=$(python3 bench/gpu/hf_speed.py decode --shape llama3-8b --compile 2>&1 | tee -a "$log" | grep '^transformers')
        note "HF: $r"
    fi
fi

if want batched && [ -x "$bench" ]; then
    dec "8B bf16 batched" --shape llama3-8b --dtype bf16 --batch 32 --prompt 128 --tokens 64
    dec "8B bf16 batched" --shape llama3-8b --dtype bf16 --batch 128 --prompt 128 --tokens 32
fi

if want small && [ -x "$bench" ]; then
    for s in smollm2-135m qwen2.5-0.5b; do
        for g in 0 1; do dec "$s bf16" --shape $s --dtype bf16 --prompt 128 --tokens 256 --graphs $g; done
        r=$(python3 bench/gpu/hf_speed.py decode --shape $s 2>&1 | tee -a "$log" | grep '^transformers')
        note "HF: $r"
    done
fi

if want parity && [ -x "$bench" ]; then
    r=$(python3 bench/gpu/hf_parity.py --bench "$bench" --models "$work/models" --work "$work/parity" 2>&1 | tee -a "$log")
    while read -r l; do case "$l" in PASS*|FAIL*|PARITY*) note "parity: $l";; esac; done <<<"$r"
fi

echo
echo "================ summary ($(date -u +%FT%TZ)) ================"
printf '%s\n' "${summary[@]}" | tee -a "$log"
