#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors, and runs the whole test
# suite: codec vectors, limit math, and integration tests against real redis-server processes
# and real bursard processes that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
command -v redis-server >/dev/null || { echo "redis-server is required by the tests and could not be installed" >&2; exit 1; }
export BURSAR_WERROR=1
swift build --build-tests
swift test --skip-build
