#!/bin/sh
# Entry point for a fresh Debian 12 machine (as root): makes sure `make` exists, then runs
# the Makefile target given (run, test, build, bench, ...). `./dev.sh run` / `./dev.sh test`.
set -e
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q make
fi
exec make "$@"
