#!/usr/bin/env bash
# Creates build/venv with the pinned Python references (tools/python/requirements.txt).
# Idempotent: a stamp holding the requirements' hash skips a venv that is up to date.
# Usage: tools/pydeps.sh [VENV_DIR]   (default build/venv). Exit 0 when the venv is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-build/venv}
req=tools/python/requirements.txt
want=$(sha256sum "$req" | cut -d' ' -f1)
stamp="$venv/.quire-requirements"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=$(command -v python3)
if ! "$py" -m venv --help >/dev/null 2>&1; then
  echo "pydeps: $py has no venv module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$venv"
"$py" -m venv "$venv"
echo "pydeps: installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages into $venv (torch is ~3 GB with its CUDA wheels)" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
