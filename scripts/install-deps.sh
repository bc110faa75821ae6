#!/usr/bin/env bash
# Installs everything ServeML needs to build, run and test on Debian 12 (run as root).
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libsodium-dev libsqlite3-dev libsimdjson-dev nlohmann-json3-dev
  libopenblas-dev libgtest-dev libgmock-dev
  libdnnl-dev
  libcurl4-openssl-dev python3 python3-venv python3-dev wrk curl
  zlib1g-dev liblzma-dev libbz2-dev
  chromium fonts-dejavu-core
  clang libclang-rt-14-dev
)
# The web dashboard is built with Node.js >= 18 (Debian 12's nodejs is 18.x). A node that is
# already on PATH (e.g. from NodeSource) is kept: apt's nodejs/npm would conflict with it.
node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge 18 ]
}
if ! node_ok; then APT_PACKAGES+=(nodejs npm); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
fi

# Python virtualenv for tests, benchmarks and model generation (pinned).
if [ "${SKIP_PYTHON:-0}" != 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  stamp=.venv/.requirements.sha256
  want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements-dev.txt
    echo "$want" > "$stamp"
  fi
  # A second venv with an older scikit-learn, for the cross-version import tests.
  bash scripts/setup-sklearn13-venv.sh
fi

# npm packages of the dashboard (web/), its browser tests (tests/web/) and the OpenAPI
# linter (tools/openapi/), from their committed lock files. Re-run only when a lock file changes.
if [ "${SKIP_WEB:-0}" != 1 ] && node_ok; then
  for dir in web tests/web tools/openapi; do
    stamp=$dir/node_modules/.package-lock.sha256
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund)
      echo "$want" > "$stamp"
    fi
  done
fi
