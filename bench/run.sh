#!/usr/bin/env bash
# Runs the HTTP serving benchmark: POST /api/v1/predict/{id} vs a no-op endpoint of the
# same server, both at 64 connections with wrk, and prints requests/s, p50/p99 and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk
exec .venv/bin/python bench/http_predict.py "$@"
