#!/usr/bin/env bash
# ServeML vs the original FastAPI + uvicorn + scikit-learn stack (bench/compare_original.py).
# Creates .venv-bench/ when missing. Options: --duration N, --connections N, --workers N,
# --binary PATH (or SERVEML_BINARY), --json FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk
bash bench/original/setup-venv.sh
exec .venv/bin/python bench/compare_original.py "$@"
