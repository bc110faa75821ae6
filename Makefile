# ServeML — the two commands:
#   make run    install what is missing, build, start the server on 127.0.0.1:8000
#   make test   install what is missing, build (plain and ASan/UBSan), run every test
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./data

.PHONY: all deps web build build-asan run test unit e2e web-test bench fuzz format clean

all: build

deps:
	bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

# The web dashboard (web/, Vite): built into web/dist, which CMake compiles into the binary.
# Without Node.js the binary still builds, with no dashboard (GET / answers JSON).
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html \
	web/package.json web/package-lock.json web/vite.config.ts web/tsconfig.json
web/dist/index.html: $(WEB_SOURCES)
	@if command -v npm >/dev/null 2>&1 && [ -d web/node_modules ]; then \
		cd web && npm run build; \
	else \
		echo "warning: Node.js/npm or web/node_modules missing: building serveml without the dashboard"; \
	fi

web: deps web/dist/index.html

build: deps web $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$(JOBS)

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSERVEML_SANITIZE=ON

build-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	$(BUILD)/serveml serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: build build-asan
	bash scripts/run-tests.sh

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

e2e: build
	.venv/bin/python -m pytest -q tests/e2e

web-test: build
	cd tests/web && SERVEML_BINARY=$(abspath $(BUILD))/serveml node --test --test-reporter=tap dashboard.test.mjs

bench: build
	bash bench/run.sh

# ServeML vs the original FastAPI + uvicorn + scikit-learn stack (bench/compare_original.py).
.PHONY: bench-original
bench-original: build
	SERVEML_BINARY=$(abspath $(BUILD))/serveml bash bench/compare_original.sh

# Every libFuzzer target for FUZZ_SECONDS each (clang + ASan/UBSan, build-fuzz/).
FUZZ_SECONDS ?= 300
fuzz: deps
	bash fuzz/run.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'fuzz/*.cc')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
