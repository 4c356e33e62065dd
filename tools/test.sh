#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh ${CI:+-Dwerror=true}
# The Python references (build/venv) and the real models (tools/models.sh's cache).
# In CI both must be there (no test may skip for want of them); elsewhere a machine
# without PyPI still runs every other test, and those tests skip naming the script.
for step in "tools/pydeps.sh" "tools/models.sh"; do
  if ! bash $step; then
    if [ -n "${CI:-}" ]; then echo "test.sh: $step failed" >&2; exit 1; fi
    echo "test.sh: warning: $step failed; tests that need it will skip" >&2
  fi
done
# The evaluation sets (../shared/data) are beside every CI checkout; elsewhere the tests
# that need them skip naming it (every other fixture is committed in tests/fixtures).
if [ ! -d ../shared/data ]; then
  if [ -n "${CI:-}" ]; then echo "test.sh: ../shared/data not found (CI runs with ../shared beside the checkout)" >&2; exit 1; fi
  echo "test.sh: warning: ../shared/data not found; the evaluation tests will skip" >&2
fi
rc=0
meson test -C build --print-errorlogs --num-processes "$(nproc)" || rc=$?
# In CI (or with QUIRE_SANITIZE=1) the same unit and integration tests again, built with
# ASan+UBSan (tools/sanitize.sh: build-asan, CPU only; a few slow model tests left out).
if [ -n "${CI:-}" ] || [ -n "${QUIRE_SANITIZE:-}" ]; then
  bash tools/sanitize.sh || rc=1
fi
# One closing line counted from meson's own log: "N passed, N failed[, N skipped]".
log=build/meson-logs/testlog.json
pass=$(grep -c '"result": "OK"' "$log" || true)
fail=$(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
skip=$(grep -c '"result": "SKIP"' "$log" || true)
if [ "$skip" -gt 0 ]; then
  echo "tests: $pass passed, $fail failed, $skip skipped"
else
  echo "tests: $pass passed, $fail failed"
fi
exit "$rc"
