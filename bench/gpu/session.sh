#!/usr/bin/env bash
# One lent-GPU session in one call (issue 11): binaries built on the dev
# machine travel as a bundle; on the GPU machine this script runs, in order of
# importance and each under its own timeout, inside one overall budget:
#
#   tests     every CUDA kernel test (timeout 90 each, output teed); the first
#             failing one again under compute-sanitizer with its printed seed
#   ceil      copy bandwidth and bf16 GEMM rate (torch, bench/gpu/ceilings.py)
#   decode    Llama-3-8B shape, batch 1: bf16 and int8 (prompt 128, 64 tokens)
#   small     SmolLM2-135M and Qwen2.5-0.5B shapes, batch 1, CUDA graphs off / on
#   prefill   8B bf16, 2048 tokens, as a share of the GEMM rate
#   ops       bench_gpu ops: GEMM rates, GEMV bandwidth (batch 1..8), GGUF q8_0 / q4_k GEMV + GEMM
#   models    random-weight models of real configs (make_models.py --only the small ones)
#   embed     MiniLM-L6 / bge-base shapes 256 x 128: quire f16 vs sentence-transformers fp16
#   parity    hf_parity.py: CUDA and CPU backends vs transformers on those models
#   batched   8B bf16 decode at 32 sequences
#   hfdecode  transformers generate() on the 8B shape (the reference tok/s)
#
# Usage
#   here (dev machine, after `ninja -C build` with -Dcuda=enabled):
#     bench/gpu/session.sh pack [BUILD_DIR]   -> .gpu-carry/quire-gpu.tar.xz (ignored by git)
#   on the GPU, one device call (timeout_s 540, carry [".gpu-carry"]):
#     bash bench/gpu/session.sh run
#   env: QUIRE_GPU_BUDGET seconds for everything (default 470), QUIRE_GPU_PHASES
#   (space-separated subset of the phases above, in the order above),
#   QUIRE_GPU_FORCE=1 (go on without a GPU: checks this script's bookkeeping only).
#
# Results are written as they come under $OUT (or /tmp/quire-session):
# summary.txt (one line per result, the table), session.log (everything),
# tests.log (the kernel tests), sanitizer.log, parity.log. Without a GPU, a
# missing bundle or a library the binaries cannot find, it says why in
# summary.txt and exits 77 before running anything. See bench/gpu/NOTES.md.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
carry=$root/.gpu-carry
bundle=$carry/quire-gpu.tar.xz

# ---------------------------------------------------------------- pack (dev machine)
if [ "${1:-}" = pack ]; then
    build=${2:-build}
    bins=(tests/unit/cuda/test_cuda_host tests/unit/cuda/test_cuda_devices tests/unit/cuda/test_cuda_matmul
          tests/unit/cuda/test_cuda_quant tests/unit/cuda/test_cuda_attention tests/unit/cuda/test_cuda_sample
          tests/unit/cuda/test_cuda_ops tests/unit/cuda/test_cuda_as_stored
          bench/bench_gpu)
    for b in "${bins[@]}"; do
        [ -x "$build/$b" ] || { echo "pack: $build/$b missing: build with -Dcuda=enabled first" >&2; exit 1; }
    done
    grep -q "cuda_backend.cu" "$build/build.ninja" 2>/dev/null ||
        { echo "pack: $build is not a -Dcuda=enabled build" >&2; exit 1; }
    stage=$(mktemp -d)
    mkdir -p "$stage/q/bin" "$stage/q/lib"
    for b in "${bins[@]}"; do cp "$build/$b" "$stage/q/bin/"; done
    # the shared libraries ldd names, less glibc / libstdc++ (the image has
    # newer ones) and cuBLASLt (hundreds of MB; CUDA 13 is on the image)
    for b in "${bins[@]}"; do ldd "$build/$b"; done | awk '/=> \//{print $1, $3}' | sort -u |
        while read -r name path; do
            case $name in
            libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*) ;;
            libcublasLt.so*|libcublas.so*) ;;
            *) cp -L "$path" "$stage/q/lib/$name" ;;
            esac
        done
    git rev-parse HEAD > "$stage/q/COMMIT" 2>/dev/null
    (meson introspect "$build" --buildoptions 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join("%s=%s" % (o["name"], o["value"]) for o in json.load(sys.stdin) if o["name"] in ("cuda", "gpu_archs", "buildtype")))') \
        > "$stage/q/BUILD" 2>/dev/null
    mkdir -p "$carry"
    ex=$(git rev-parse --git-path info/exclude)
    grep -qx '/.gpu-carry/' "$ex" 2>/dev/null || echo '/.gpu-carry/' >> "$ex"
    tar -C "$stage" -cJf "$bundle" q
    rm -rf "$stage"
    sz=$(stat -c %s "$bundle")
    tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    echo "pack: $bundle $((sz >> 20)) MiB ($sz bytes); tracked tree $((tree >> 20)) MiB; together under 64 MiB: $([ $((sz + tree)) -lt $((64 << 20)) ] && echo yes || echo NO)"
    tar -tJf "$bundle" | sed 's/^/  /'
    exit 0
fi
[ "${1:-}" = run ] || { sed -n '2,33p' "$0"; exit 2; }

# ---------------------------------------------------------------- run (GPU machine)
out=${OUT:-/tmp/quire-session}
mkdir -p "$out"
sum=$out/summary.txt log=$out/session.log st=/tmp/quire-session-step.txt
: > "$sum"; : > "$log"
t_start=$(date +%s)
budget=${QUIRE_GPU_BUDGET:-470}
phases=${QUIRE_GPU_PHASES:-"tests ceil decode small prefill ops models embed parity batched hfdecode"}
want() { [[ " $phases " == *" $1 "* ]]; }
left() { echo $((budget - ($(date +%s) - t_start))); }
say() { echo "$*" | tee -a "$log"; }
note() { echo "$*" >> "$sum"; say "== $*"; }
stop() { note "STOPPED: $*"; echo; cat "$sum"; exit 77; }
# step LIMIT LABEL CMD...: runs CMD under min(LIMIT, time left - 10 s), output to
# the log; returns CMD's status (124: its timeout; 125: no time left, not run)
step() {
    local lim=$1 label=$2; shift 2
    local l; l=$(($(left) - 10))
    [ "$l" -lt "$lim" ] && lim=$l
    if [ "$lim" -lt 5 ]; then note "$label: SKIPPED (budget of ${budget}s spent)"; return 125; fi
    say "\$ [${lim}s] $*"
    local t0; t0=$(date +%s)
    timeout -k 5 "$lim" "$@" 2>&1 | tee -a "$log" > "$st"
    local rc=${PIPESTATUS[0]}
    say "# $label: exit $rc in $(($(date +%s) - t0)) s"
    [ "$rc" = 124 ] && note "$label: TIMEOUT after ${lim}s"
    return "$rc"
}
grab() { grep -E "$1" "$st" || true; } # lines of the last step's output
why() { grep -v '^\s*$' "$st" | tail -1 | cut -c1-200; } # its last line: the reason it failed
# fail LABEL RC: a line for a step that did not succeed (a timeout or an
# exhausted budget has its line from step already)
fail() { case $2 in 0|124|125) ;; 77) note "$1: SKIP: $(why)" ;; *) note "$1: FAILED exit $2: $(why)" ;; esac; }

say "# quire GPU session $(date -u +%FT%TZ) on $(hostname), budget ${budget}s, phases: $phases"
[ -f "$bundle" ] || stop "no bundle $bundle: run 'bench/gpu/session.sh pack' on the dev machine and carry .gpu-carry"
q=/tmp/quire-gpu/q
rm -rf /tmp/quire-gpu && mkdir -p /tmp/quire-gpu && tar -C /tmp/quire-gpu -xJf "$bundle" || stop "cannot unpack $bundle"
bc=$(cut -c1-12 "$q/COMMIT" 2>/dev/null) tc=$(git rev-parse --short=12 HEAD 2>/dev/null || echo ?)
note "bundle: commit $bc ($(cat $q/BUILD 2>/dev/null)); tree commit $tc"
[ "$bc" = "$tc" ] || note "WARNING: the binaries were built from $bc, the scripts here are $tc: pack again from this tree"
# CUDA's libraries from the image's toolkit first (its cudart is the one its
# cuBLASLt goes with), then the carried ones, then the pip wheels' cuBLASLt
cudalib=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && cudalib=$cudalib$d:; done
pyl=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/**/libcublasLt.so*", recursive=True)})))' 2>/dev/null)
export LD_LIBRARY_PATH=$cudalib$q/lib${pyl:+:$pyl}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
missing=$(for b in "$q"/bin/*; do ldd "$b" 2>&1 | grep "not found"; done | sort -u | tr -s ' \t' ' ')
[ -z "$missing" ] || stop "shared libraries not found:$missing (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)"
# QUIRE_GPU_FORCE=1 goes on without a GPU: only to check this script's own
# bookkeeping on a dev machine (the tests then SKIP and the benchmarks exit 77)
if [ -z "${QUIRE_GPU_FORCE:-}" ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        why=$("$q/bin/test_cuda_devices" 2>&1 | grep -m1 "no usable GPU" || true)
        stop "no GPU here: nvidia-smi not found${why:+; $why}"
    fi
    gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | head -1)
    nvidia-smi >/dev/null 2>&1 || stop "no GPU here: nvidia-smi: $gpu"
else
    gpu="none (QUIRE_GPU_FORCE: checking the script only)"
fi
say "# LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
for b in test_cuda_matmul bench_gpu; do ldd "$q/bin/$b" | grep -E 'cud|cublas|blas' | sed "s|^|# $b: |" | tee -a "$log"; done
note "gpu: $gpu; $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'nvcc ?'); torch $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?')"
export QUIRE_PYTHON=python3 PYTHONUNBUFFERED=1
bench=$q/bin/bench_gpu
work=/tmp/quire-gpu/work
mkdir -p "$work"

# ---------------------------------------------------------------- tests
if want tests; then
    failed="" fseed=""
    for t in host devices matmul quant attention sample ops; do
        step 90 "test $t" "$q/bin/test_cuda_$t"; rc=$?
        cat "$st" >> "$out/tests.log"
        r=$(grep -E "passed, [0-9]+ failed" "$st" | tail -1)
        seed=$(grep -m1 -o '^seed [0-9]*' "$st" | cut -d' ' -f2)
        case $rc in
        0) note "test $t: ok ($r)" ;;
        77) note "test $t: SKIP ($(grep -m1 SKIP "$st"))" ;;
        125) ;;
        *) note "test $t: FAIL exit $rc ($r; seed ${seed:-none})"
           grep -m5 "CHECK failed" "$st" | sed 's/^/    /' >> "$sum"
           [ -z "$failed" ] && fseed=$seed
           failed="$failed $t" ;;
        esac
    done
    # the first failure again under compute-sanitizer, with its seed
    t=${failed# }; t=${t%% *}
    if [ -n "$t" ] && command -v compute-sanitizer >/dev/null 2>&1 && [ "$(left)" -gt 200 ]; then
        step 90 "sanitizer $t" env ${fseed:+QUIRE_TEST_SEED=$fseed} compute-sanitizer --error-exitcode 9 \
            "$q/bin/test_cuda_$t"
        rc=$?
        cp "$st" "$out/sanitizer.log"
        note "compute-sanitizer test $t (seed ${fseed:-none}): exit $rc, $(grep -m1 -E 'ERROR SUMMARY' "$st" || echo 'no summary')"
    fi
fi

# ---------------------------------------------------------------- ceilings
bw=0 gemm=0
if want ceil; then
    step 60 ceil python3 bench/gpu/ceilings.py; fail ceilings $?
    line=$(grab '^CEILINGS')
    bw=$(sed -n 's/.*bw_gbps=\([0-9.]*\).*/\1/p' <<<"$line"); bw=${bw:-0}
    gemm=$(sed -n 's/.*gemm_tflops=\([0-9.]*\).*/\1/p' <<<"$line"); gemm=${gemm:-0}
    [ -n "$line" ] && note "ceilings (torch): copy $bw GB/s (read + write), bf16 GEMM $gemm TFLOP/s"
fi

dec() { # LIMIT LABEL bench_gpu decode args...
    local lim=$1 label=$2; shift 2
    step "$lim" "$label" "$bench" decode "$@" --bw "$bw" --gemm "$gemm"
    local rc=$?
    local l
    while read -r l; do [ -n "$l" ] && note "$label: $l"; done < <(grab '^(prefill|decode|#)')
    fail "$label" "$rc"
}

if want decode; then
    dec 90 "8B bf16 b1" --shape llama3-8b --dtype bf16 --prompt 128 --tokens 64
    dec 75 "8B int8 b1" --shape llama3-8b --dtype int8 --prompt 128 --tokens 64
fi
if want small; then
    for s in smollm2-135m qwen2.5-0.5b; do
        for g in 0 1; do dec 40 "$s bf16 graphs=$g" --shape $s --dtype bf16 --prompt 128 --tokens 256 --graphs $g; done
    done
fi
if want prefill; then
    dec 75 "8B bf16 prefill 2048" --shape llama3-8b --dtype bf16 --prompt 2048 --tokens 4
fi
if want ops; then
    step 90 ops "$bench" ops; fail ops $?
    while read -r l; do note "ops: $l"; done < <(grab '^(gemm|gemv)')
fi

# ---------------------------------------------------------------- random-weight real configs
models=$work/models
if want models || want embed || want parity; then
    step 100 models python3 bench/gpu/make_models.py "$models" --only minilm-l6,bge-base,smollm2-135m,qwen2.5-0.5b
    rc=$?
    [ "$rc" = 0 ] && note "models: $(grab '^wrote' | wc -l) written"; fail models "$rc"
fi
# GGUF blocks on the GPU in a whole model (issue 12): the random SmolLM2-shaped model quantized at load to
# q4_k (Q4_K where rows are whole 256-value blocks, Q8_0 elsewhere), GPU against CPU
if want tests && [ -x "$q/bin/test_cuda_as_stored" ] && [ -d "$models/smollm2-135m" ]; then
    step 120 "test as_stored" "$q/bin/test_cuda_as_stored" "$models/smollm2-135m" q4_k; rc=$?
    cat "$st" >> "$out/tests.log"
    if [ "$rc" = 0 ]; then note "test as_stored (smollm2-135m, q4_k): ok ($(grab 'passed, [0-9]+ failed' | tail -1))"
    else fail "test as_stored (smollm2-135m, q4_k)" "$rc"; fi
fi
if want embed && [ -d "$models/minilm-l6" ]; then
    for m in minilm-l6 bge-base; do
        step 40 "embed $m" "$bench" embed "$models/$m" --batch 256 --len 128 --dtype f16; fail "embed $m" $?
        r=$(grab '^embed' | sed -n 's/.*: \([0-9]* tok\/s\).*/\1/p'); [ -n "$r" ] && note "quire embed $m f16 256x128: $r"
        step 60 "st $m" python3 bench/gpu/hf_speed.py embed "$models/$m" --batch 256 --len 128; fail "st $m" $?
        r=$(grab '^sentence' | sed -n 's/.*: \([0-9]* tok\/s\).*/\1/p'); [ -n "$r" ] && note "sentence-transformers fp16 $m 256x128: $r"
    done
fi
if want parity && [ -d "$models/minilm-l6" ]; then
    step 150 parity python3 bench/gpu/hf_parity.py --bench "$bench" --models "$models" --work "$work/parity"
    fail parity $?
    cp "$st" "$out/parity.log"
    while read -r l; do note "parity: $l"; done < <(grab '^(PASS|FAIL|PARITY)')
fi

# ---------------------------------------------------------------- what is left of the budget
if want batched; then
    dec 75 "8B bf16 b32" --shape llama3-8b --dtype bf16 --batch 32 --prompt 128 --tokens 32
fi
if want hfdecode; then
    step 90 "hf 8B" python3 bench/gpu/hf_speed.py decode --shape llama3-8b --tokens 64; fail "HF 8B" $?
    r=$(grab '^transformers'); [ -n "$r" ] && note "HF: $r"
fi

note "done in $(($(date +%s) - t_start)) s of ${budget}"
rm -f "$st"
echo
echo "================ summary ================"
cat "$sum"
