#!/usr/bin/env bash
# ASan+UBSan: configures (once) and builds build-asan, then runs the unit and integration
# tests under meson's 'asan' setup (tests/meson.build: any finding aborts the process, leaks
# included). CI runs it from tools/test.sh; the README's "Testing" section has the commands.
#   tools/sanitize.sh              every test of the setup but SLOW below
#   tools/sanitize.sh NAME...      only these tests (meson test names, SLOW ones too)
# CPU only (-Dcuda=disabled): the CUDA kernels are not host code ASan could check, and the
# CUDA compile would double the build time. debugoptimized: -O2 with asserts on and -g for
# the findings' stack traces. No -Dwerror here: the plain build (tools/build.sh) checks the
# warnings; -O2 adds a -Wclobbered false positive in generate/jinja.c (a variable set before
# setjmp and never changed after it).
set -euo pipefail
cd "$(dirname "$0")/.."
# Left out of the default run because under ASan they take minutes of CPU each on a 2-core
# CI machine, most of it model inference the faster tests already cover with small models:
#   smollm           SmolLM2-135M decoded at f32/bf16/int8 (~430 s CPU under ASan; the
#                    decoder paths run in parity_* and models_* on tiny models)
#   slurm_qa_hybrid  embeds ~3,400 passages with MiniLM (184 s wall in a plain CI run)
#   embed_parity     MiniLM against sentence-transformers, and MTEB's SciFact protocol: 184 s
#   eval_mteb        CPU together under ASan, as much as all the other tests; cli_embed,
#                    parity_bert_minilm and models_encoder run the same encoder code
SLOW='smollm|slurm_qa_hybrid|embed_parity|eval_mteb'
# GCC's -fsanitize=undefined leaves out float-cast-overflow (a double outside an integer
# type's range converted to it): added, as every finding, not recoverable.
FLAGS="-fsanitize=float-cast-overflow -fno-sanitize-recover=all"
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Dcuda=disabled -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args="$FLAGS" -Dcpp_args="$FLAGS"
fi
# The python references of build/venv (tools/pydeps.sh), where QUIRE_PYTHON points.
if [ -d build/venv ] && [ ! -e build-asan/venv ]; then ln -sfn ../build/venv build-asan/venv; fi
ninja -C build-asan
if [ $# -gt 0 ]; then
  tests=("$@")
else
  mapfile -t tests < <(meson test -C build-asan --setup asan --no-rebuild --list 2>/dev/null | sed -n 's/^.* \/ //p' | grep -vxE "$SLOW")
fi
rc=0
meson test -C build-asan --setup asan --print-errorlogs --num-processes "$(nproc)" "${tests[@]}" || rc=$?
log=build-asan/meson-logs/testlog-asan.json
pass=$(grep -c '"result": "OK"' "$log" || true)
fail=$(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
skip=$(grep -c '"result": "SKIP"' "$log" || true)
echo "asan tests: $pass passed, $fail failed, $skip skipped"
exit "$rc"
