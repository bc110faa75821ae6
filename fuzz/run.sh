#!/usr/bin/env bash
# Builds the ONNX loader fuzzer with clang into build-fuzz/ and runs it for SECONDS (default
# 120) on a seed corpus made from ONNX's backend test models. Exit status 0 = ran clean.
# Findings (crash-*, timeout-*, oom-*) land in build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-120}
JOBS=${JOBS:-2}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSERVEML_FUZZ=ON \
  -DSERVEML_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" --target onnx_loader_fuzzer
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
rm -rf build-fuzz/seeds && "$PY" fuzz/make_corpus.py build-fuzz/seeds
mkdir -p build-fuzz/corpus build-fuzz/findings
# Generated corpus in corpus/, seeds read-only; 10 s per input is a hang; 2 GiB RSS cap.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  build-fuzz/fuzz/onnx_loader_fuzzer build-fuzz/corpus build-fuzz/seeds \
  -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix=build-fuzz/findings/ -print_final_stats=1
