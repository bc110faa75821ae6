#!/usr/bin/env bash
# Runs the whole suite: unit tests (plain and ASan/UBSan builds) and the end-to-end tests
# against the real binary (plain and ASan/UBSan). Prints one closing summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build/test-results
passed=0; failed=0; skipped=0; rc=0

# ctest summary: "100% tests passed, 0 tests failed out of 42"
count_ctest() {
  local log=$1 total fails
  total=$(grep -Eo 'tests failed out of [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  fails=$(grep -Eo '[0-9]+ tests failed out of' "$log" | grep -Eo '^[0-9]+' | tail -1)
  total=${total:-0}; fails=${fails:-0}
  passed=$((passed + total - fails)); failed=$((failed + fails))
}
# pytest summary: "== 12 passed, 1 failed, 2 skipped in 3.2s =="
count_pytest() {
  local log=$1 line p f s e
  line=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$log" | tail -1)
  p=$(echo "$line" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+'); f=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  s=$(echo "$line" | grep -Eo '[0-9]+ skipped' | grep -Eo '[0-9]+'); e=$(echo "$line" | grep -Eo '[0-9]+ errors?' | grep -Eo '[0-9]+')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0})); skipped=$((skipped + ${s:-0}))
}

# node --test TAP summary: "# pass 9" / "# fail 1" / "# cancelled 0" / "# skipped 0" / "# todo 1"
count_node() {
  local log=$1 p f c s t
  p=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+'); f=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
  c=$(grep -E '^# cancelled [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+'); s=$(grep -E '^# skipped [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
  t=$(grep -E '^# todo [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
  if [ -z "$p$f" ]; then failed=$((failed + 1)); return; fi  # the runner itself failed
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${c:-0})); skipped=$((skipped + ${s:-0} + ${t:-0}))
}

echo "== machine =="
grep -m1 'model name' /proc/cpuinfo || true
build/serveml version
# The instruction-set levels the engine can run here (SERVEML_ENGINE_ISA): the whole suite
# runs at the highest; the kernels' tests run again below at each lower SIMD level.
LOWER_ISAS=$(build/serveml version | sed -n 's/.*levels this CPU runs: *//p' | tr ' ' '\n' |
             grep -E '^(avx2|portable)$' | sort | tr '\n' ' ')

echo "== unit tests (release) =="
ctest --test-dir build --output-on-failure -j2 2>&1 | tee build/test-results/unit.log
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
count_ctest build/test-results/unit.log

echo "== unit tests (ASan/UBSan) =="
ctest --test-dir build-asan --output-on-failure -j2 2>&1 | tee build/test-results/unit-asan.log
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
count_ctest build/test-results/unit-asan.log

echo "== end-to-end tests (release binary) =="
SERVEML_BINARY=$PWD/build/serveml .venv/bin/python -m pytest -q -p no:cacheprovider tests/e2e 2>&1 | tee build/test-results/e2e.log
st=${PIPESTATUS[0]}; [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || rc=1
count_pytest build/test-results/e2e.log

# Every SIMD path this machine can run: the engine's unit tests and the numeric end-to-end
# files (integer GEMM/conv, quantized models, NN kernels, ML operators) again with the kernels
# held to AVX2 and to portable code, on the release binary. Each is judged against numpy's exact
# arithmetic or onnxruntime, never against another of our paths.
for isa in $LOWER_ISAS; do
  echo "== engine at SERVEML_ENGINE_ISA=$isa: kernel unit tests and numeric end-to-end files =="
  if ! SERVEML_ENGINE_ISA=$isa build/serveml version | grep -q "engine ISA: $isa "; then
    echo "FAILED: SERVEML_ENGINE_ISA=$isa is not the level the engine reports"; failed=$((failed + 1)); rc=1
  fi
  SERVEML_ENGINE_ISA=$isa ctest --test-dir build --output-on-failure -j2 \
    -R '^(Kernels|ReluFusion|MlTree[A-Za-z]*|MemoryPlan|Model|Broadcast|ConstantFolding|Compile|TensorArena)\.' \
    2>&1 | tee "build/test-results/unit-$isa.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  count_ctest "build/test-results/unit-$isa.log"
  SERVEML_ENGINE_ISA=$isa SERVEML_BINARY=$PWD/build/serveml .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/e2e/test_int_gemm.py tests/e2e/test_quantized_models.py tests/e2e/test_nn_kernels.py \
    tests/e2e/test_ml_operators.py tests/e2e/test_linear_kernels.py 2>&1 | tee "build/test-results/e2e-$isa.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  count_pytest "build/test-results/e2e-$isa.log"
done

# The sanitized binary runs the API, security, abuse and importer-hostility suites; the large
# numeric comparison suites (engine, operators, importers) run against the release binary.
echo "== end-to-end tests (ASan/UBSan binary) =="
SERVEML_BINARY=$PWD/build-asan/serveml SERVEML_SANITIZED=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/e2e/test_journey.py tests/e2e/test_errors.py tests/e2e/test_isolation.py \
  tests/e2e/test_persistence.py tests/e2e/test_cli.py tests/e2e/test_metrics.py \
  tests/e2e/test_sklearn_import.py::test_hostile_corpus tests/e2e/test_sklearn_import.py::test_every_saver \
  tests/e2e/test_sklearn_import.py::test_unsupported_estimator_is_named tests/e2e/test_sklearn_import.py::test_not_an_estimator \
  tests/e2e/test_sklearn_svm_neighbors.py::test_inconsistent_svm_files_fail_cleanly \
  tests/e2e/test_sklearn_svm_neighbors.py::test_inconsistent_knn_files_fail_cleanly \
  tests/e2e/test_sklearn_composites.py::test_malformed_composites_fail_cleanly \
  tests/e2e/test_sklearn_composites.py::test_column_transformer_dataframe_named_features \
  tests/e2e/test_control_flow.py tests/e2e/test_nn_kernels.py tests/e2e/test_quantized_models.py \
  tests/e2e/test_int_gemm.py tests/e2e/test_abuse_platform.py tests/e2e/test_abuse_http.py \
  tests/e2e/test_crash_recovery.py 2>&1 | tee build/test-results/e2e-asan.log
st=${PIPESTATUS[0]}; [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || rc=1
count_pytest build/test-results/e2e-asan.log

echo "== ONNX backend conformance (release binary) =="
SERVEML_BINARY=$PWD/build/serveml .venv/bin/python -m pytest -q -p no:cacheprovider tests/ops 2>&1 | tee build/test-results/ops.log
st=${PIPESTATUS[0]}; [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || rc=1
count_pytest build/test-results/ops.log

# The same ~1,800 backend cases through the ASan/UBSan binary: every operator kernel on the
# spec's own inputs (edge shapes, empty tensors, broadcasting) with memory and UB checks; a
# sanitizer report fails the case, and a listed case that fails is a regression.
echo "== ONNX backend conformance (ASan/UBSan binary) =="
SERVEML_BINARY=$PWD/build-asan/serveml .venv/bin/python -m pytest -q -p no:cacheprovider tests/ops 2>&1 | tee build/test-results/ops-asan.log
st=${PIPESTATUS[0]}; [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || rc=1
count_pytest build/test-results/ops-asan.log

echo "== Python SDK tests (release binary) =="
SERVEML_BINARY=$PWD/build/serveml .venv/bin/python -m pytest -q -p no:cacheprovider sdk/python/tests 2>&1 | tee build/test-results/sdk.log
st=${PIPESTATUS[0]}; [ "$st" -eq 0 ] || [ "$st" -eq 5 ] || rc=1
count_pytest build/test-results/sdk.log

echo "== OpenAPI lint (Redocly, docs/openapi.json) =="
if [ -x tools/openapi/node_modules/.bin/redocly ]; then
  if (cd tools/openapi && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
        node_modules/.bin/redocly lint --config redocly.yaml ../../docs/openapi.json) 2>&1 | tee build/test-results/openapi-lint.log; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); rc=1
  fi
else
  echo "tools/openapi/node_modules missing: run 'make deps'" | tee build/test-results/openapi-lint.log
  failed=$((failed + 1)); rc=1
fi

echo "== browser tests (dashboard in Chromium, release binary) =="
if [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] && [ -d tests/web/node_modules/playwright-core ]; then
  (cd tests/web && SERVEML_BINARY=$PWD/../../build/serveml node --test --test-reporter=tap dashboard.test.mjs) 2>&1 | tee build/test-results/web.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  count_node build/test-results/web.log
else
  echo "chromium or tests/web/node_modules missing: run 'make deps'" | tee build/test-results/web.log
  failed=$((failed + 1)); rc=1
fi

# Every parser of untrusted bytes (ONNX, pickle, XGBoost/LightGBM, predict JSON, multipart)
# under libFuzzer with ASan/UBSan for a bounded time; any crash, hang or leak fails the run.
echo "== fuzz targets (${FUZZ_SECONDS:=30}s each, clang + libFuzzer) =="
if command -v clang++ >/dev/null 2>&1; then
  fuzz/run.sh "$FUZZ_SECONDS" 2>&1 | tee build/test-results/fuzz.log
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  passed=$((passed + $(grep -c '^clean: ' build/test-results/fuzz.log)))
  failed=$((failed + $(grep -c '^FAILED: ' build/test-results/fuzz.log)))
  grep -q '^clean: \|^FAILED: ' build/test-results/fuzz.log || { failed=$((failed + 1)); rc=1; }
else
  echo "clang++ missing: run 'make deps'" | tee build/test-results/fuzz.log
  failed=$((failed + 1)); rc=1
fi

echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ] || rc=1
exit $rc
