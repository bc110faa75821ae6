#!/usr/bin/env bash
# Creates .venv-bench/ with the pinned FastAPI + uvicorn + scikit-learn stack of
# bench/original/requirements.txt. Idempotent: does nothing when the venv already matches.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.venv-bench
req=bench/original/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --only-binary=:all: -r "$req"
echo "$want" > "$stamp"
