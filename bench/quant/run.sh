#!/usr/bin/env bash
# quire against llama.cpp's CPU build on the same GGUF files (issue 12, "Speed and memory"):
# prefill of a 129-token prompt and decode, 2 threads, quire and llama-bench alternating in one
# run, with the DRAM read bandwidth measured in the same run (bench/quant/membw.c) for the
# "decode >= 80% of the DRAM bandwidth bound" line. Figures go to bench/RESULTS.md.
#
#   bench/quant/run.sh LLAMA_CPP_BIN        (or env LLAMA_CPP_BIN): a folder with llama-bench
#                                           and llama-quantize from a llama.cpp CPU build made
#                                           outside this repository (nothing of it is vendored)
#   env: QUANT_BENCH_DIR (/tmp/quire-quant-bench: the GGUF files, ~2.2 GB, never committed),
#        ROUNDS (3), THREADS (2), PROMPT (129), DECODE (64),
#        QUIRE_DTYPES_F16 (f16), QUIRE_DTYPES_Q (int8, plus as-stored when the build knows it):
#        the quire dtypes run on the F16 files and on the Q8_0 / Q4_K_M files,
#        SHAPES ("smollm2-135m qwen0.5b"), TYPES ("F16 Q8_0 Q4_K_M"),
#        LLAMA_BENCH_ARGS: more llama-bench arguments (e.g. "--repack 0": the llama.cpp snapshot
#        first used here, 0c1e570, crashed in its CPU repack path on Q8_0 and Q4_K files).
#
# Files: bench/quant/make_gguf.py writes random-weight Llama-architecture files of the two
# shapes of the issue (SmolLM2-135M; a Qwen2.5-0.5B-like 896 hidden, 24 layers, 14/2 heads,
# FFN 4864; 32k vocabulary, tied embeddings) as F16 and Q8_0 (gguf.quants); Q4_K_M is made
# from the F16 file by llama-quantize (gguf.quants has no Q4_K quantizer).
# Each round: membw (1 GiB buffer, 5 passes), then for every file quire's bench_models
# (--prompt PROMPT --decode DECODE --reps 1: best of one timed repetition after a warm-up;
# decode after a 16-token prompt) for each quire dtype, then llama-bench -t THREADS -p PROMPT
# -n DECODE -r 1 (its own warm-up run first; decode from an empty context). The table gives
# the median over rounds; the DRAM bound is median(membw best) / bytes read per token: for
# llama.cpp the file's tensor bytes (the tied token table is the LM head, read whole), for
# quire bench_models's own figure (weights held at its dtype + KV cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-${LLAMA_CPP_BIN:-}}
[ -n "$bin" ] && [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] || {
    echo "usage: bench/quant/run.sh LLAMA_CPP_BIN (a folder with llama-bench and llama-quantize)" >&2; exit 2; }
out=${QUANT_BENCH_DIR:-/tmp/quire-quant-bench}
rounds=${ROUNDS:-3}; threads=${THREADS:-2}; prompt=${PROMPT:-129}; decode=${DECODE:-64}
shapes=${SHAPES:-smollm2-135m qwen0.5b}; types=${TYPES:-F16 Q8_0 Q4_K_M}
py=${QUIRE_PYTHON:-$(pwd)/build/venv/bin/python}
[ -x "$py" ] || py=python3
mkdir -p "$out"
[ -f build/build.ninja ] || meson setup build
ninja -C build cli/quire bench/bench_models bench/membw >/dev/null
if [ -z "${QUIRE_DTYPES_Q:-}" ]; then
    QUIRE_DTYPES_Q=int8
    ./build/cli/quire generate --help 2>&1 | grep -q 'as-stored' && QUIRE_DTYPES_Q="int8 as-stored"
fi
dtypes_f16=${QUIRE_DTYPES_F16:-f16}

for s in $shapes; do
    for t in $types; do
        f=$out/$s-$t.gguf
        [ -f "$f" ] && continue
        case $t in
        F16|Q8_0) "$py" bench/quant/make_gguf.py "$out" "$s" "$t" >/dev/null ;;
        *) "$py" bench/quant/make_gguf.py "$out" "$s" F16 >/dev/null
           "$bin/llama-quantize" "$out/$s-F16.gguf" "$f.tmp" "$t" 2 > "$out/$s-$t.quantize.log" 2>&1 \
               || { echo "llama-quantize $t failed: see $out/$s-$t.quantize.log" >&2; exit 1; }
           mv "$f.tmp" "$f" ;;
        esac
    done
done

res=$out/results.tsv
: > "$res"
llama_ver=$("$bin/llama-bench" --version 2>&1 | head -n 2 | tr '\n' ' ' || true)
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, quire $(git rev-parse --short HEAD), llama.cpp ${llama_ver}"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds, $threads threads, prompt $prompt, decode $decode; llama-bench args: ${LLAMA_BENCH_ARGS:-none}"
for r in $(seq 1 "$rounds"); do
    bw=$(./build/bench/membw --threads "$threads" --mib 1024 --passes 5)
    echo "$bw" | sed "s/^/# round $r: /"
    printf 'membw\t%s\t-\t-\t%s\t-\t-\n' "$r" "$(echo "$bw" | sed -n 's/^membw: best \([0-9.]*\) GB.*/\1/p')" >> "$res"
    for s in $shapes; do
        for t in $types; do
            f=$out/$s-$t.gguf
            [ "$t" = F16 ] && dts=$dtypes_f16 || dts=$QUIRE_DTYPES_Q
            for d in $dts; do
                line=$(./build/bench/bench_models --threads "$threads" --decoder "$s-$t=$f" --dtypes "$d" \
                       --prompt "$prompt" --decode "$decode" --reps 1 --bw-mib 64 2>/dev/null | grep "^| $s-$t |" || true)
                # | name | dtype | weight MB | MB read per token | prefill | decode | bound | % |
                if [ -n "$line" ]; then
                    echo "$line" | awk -F'|' -v r="$r" -v s="$s" -v t="$t" -v d="$d" \
                        '{gsub(/ /,""); printf "quire\t%s\t%s-%s\t%s\t%s\t%s\t%s\n", r, s, t, d, $6, $7, $5}' >> "$res"
                else
                    echo "# round $r: quire $s-$t $d failed" >&2
                fi
            done
            "$bin/llama-bench" -m "$f" -t "$threads" -p "$prompt" -n "$decode" -r 1 ${LLAMA_BENCH_ARGS:-} -o json 2>/dev/null > "$out/lb.json" || {
                echo "# round $r: llama-bench $s-$t failed" >&2; continue; }
            "$py" - "$out/lb.json" "$r" "$s-$t" "$prompt" "$decode" >> "$res" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1])); pp = tg = None
for x in rows:
    if x["n_prompt"] == int(sys.argv[4]) and x["n_gen"] == 0: pp = x["avg_ts"]
    if x["n_gen"] == int(sys.argv[5]) and x["n_prompt"] == 0: tg = x["avg_ts"]
print("llama.cpp\t%s\t%s\t-\t%.2f\t%.2f\t-" % (sys.argv[2], sys.argv[3], pp, tg))
EOF
        done
    done
done

"$py" - "$res" "$out" "$prompt" <<'EOF'
import os, statistics, sys
import gguf
res, out, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
bw, q, l = [], {}, {}
for line in open(res):
    eng, r, f, d, a, b, c = line.rstrip("\n").split("\t")
    if eng == "membw":
        bw.append(float(a))
    elif eng == "quire":
        q.setdefault((f, d), []).append((float(a), float(b), float(c)))
    else:
        l.setdefault(f, []).append((float(a), float(b)))
bwm = statistics.median(bw) * 1e9
print("\nDRAM read bandwidth (membw, median of the rounds' best): %.2f GB/s" % (bwm / 1e9))
print("\n| file | MB | quire dtype | prefill (%s-token prompt) quire / llama.cpp t/s | decode quire / llama.cpp t/s "
      "| decode of the DRAM bound: quire / llama.cpp |" % prompt)
print("|---|---|---|---|---|---|")
med = lambda xs: statistics.median(xs)
for (f, d), v in q.items():
    tb = sum(int(t.n_bytes) for t in gguf.GGUFReader(os.path.join(out, f + ".gguf")).tensors)
    qp, qd, qmb = med([x[0] for x in v]), med([x[1] for x in v]), med([x[2] for x in v])
    if f in l:
        lp, ld = med([x[0] for x in l[f]]), med([x[1] for x in l[f]])
        print("| %s | %.0f | %s | %.0f / %.0f (%.2fx) | %.1f / %.1f (%.2fx) | %.0f%% / %.0f%% |" % (
            f, tb / 1e6, d, qp, lp, qp / lp, qd, ld, qd / ld, 100 * qd * qmb * 1e6 / bwm, 100 * ld * tb / bwm))
    else:
        print("| %s | %.0f | %s | %.0f / — | %.1f / — | %.0f%% / — |" % (f, tb / 1e6, d, qp, qd, 100 * qd * qmb * 1e6 / bwm))
EOF
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); raw figures in $res"
