#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh ${CI:+-Dwerror=true}
rc=0
meson test -C build --print-errorlogs --num-processes "$(nproc)" || rc=$?
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
