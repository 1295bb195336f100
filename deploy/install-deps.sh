#!/usr/bin/env bash
# Installs what bursar needs beyond the Swift toolchain: hiredis (C client library and headers),
# redis-server (the embedded store and the tests' real Redis), pkg-config (finds hiredis),
# python3 (deploy/product-flow.sh reads bursarctl's JSON with it), python3-venv (deploy/api-fuzz.sh
# installs schemathesis from PyPI into a virtual environment) and openssl (the ops-port TLS test
# makes a self-signed certificate with it) and binutils (deploy/package.sh strips the binaries and
# reads their glibc symbol versions; the Swift toolchain needs it too), chromium and
# chromium-driver (deploy/browser-test.sh drives the web console in headless Chromium through
# chromedriver; selenium and pytest come from PyPI into its virtual environment).
# Safe to run repeatedly; installs only what is missing.
set -euo pipefail
need=()
dpkg -s libhiredis-dev >/dev/null 2>&1 || need+=(libhiredis-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
{ command -v strip >/dev/null 2>&1 && command -v objdump >/dev/null 2>&1; } || need+=(binutils)
{ command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' 2>/dev/null; } || need+=(python3-venv)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)   # text in the console's screenshots
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The Debian package starts a system redis-server on port 6379; bursar never uses it (the
# embedded store and the tests start their own), so it may keep running or be disabled.
