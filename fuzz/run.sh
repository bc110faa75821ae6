#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and runs each for
# SECONDS (default 120) on a seed corpus generated with the real frameworks.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: every target)
#
# Exit status 0 = every target ran clean. Findings (crash-*, timeout-*, oom-*, leak-*) land
# in build-fuzz/findings/<target>/; reproduce one with build-fuzz/fuzz/<target> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-120}
shift || true
ALL=(onnx_loader_fuzzer pickle_reader_fuzzer boosting_import_fuzzer predict_json_fuzzer
     multipart_fuzzer)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
JOBS=${JOBS:-2}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSERVEML_FUZZ=ON \
  -DSERVEML_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" --target "${TARGETS[@]}"
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
status=0
for t in "${TARGETS[@]}"; do
  seeds=build-fuzz/seeds/$t corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  rm -rf "$seeds" && "$PY" fuzz/make_corpus.py "$t" "$seeds"
  mkdir -p "$corpus" "$findings"
  echo "== $t: ${SECONDS_TO_RUN}s =="
  # Generated inputs go to corpus/ (seeds stay read-only); 10 s per input is a hang;
  # 2 GiB RSS cap; inputs up to 64 KiB.
  if ! ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
     UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
     build-fuzz/fuzz/"$t" "$corpus" "$seeds" \
       -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="$findings/" -print_final_stats=1 2>build-fuzz/"$t".log; then
    status=1
    echo "FAILED: $t (see build-fuzz/$t.log and $findings/)"
    tail -n 40 build-fuzz/"$t".log
  else
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' build-fuzz/"$t".log || true
    echo "clean: $t"
  fi
done
exit $status
