#!/usr/bin/env bash
# Creates .venv-sklearn13/, a second virtualenv with the pinned older scikit-learn of
# tests/compat/requirements-sklearn13.txt (used by tests/e2e/test_sklearn_versions.py).
# Idempotent: does nothing when the venv already matches the requirements file.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-sklearn13
req=tests/compat/requirements-sklearn13.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --only-binary=:all: -r "$req"
"$venv/bin/python" -c 'import sklearn, numpy, joblib; print("scikit-learn", sklearn.__version__, "numpy", numpy.__version__, "joblib", joblib.__version__)'
echo "$want" > "$stamp"
