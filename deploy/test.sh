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
# The tests that take the machine or the test process on purpose (a flood beyond capacity, a
# client that never reads, every thread of Swift's cooperative pool held across a bench run) run
# on their own after the rest, so they do not stretch other tests' timings.
saturating='OverloadTests/(flood|nonReadingClient)|BenchTests/windowSampledWhilePoolHeld'
swift test --skip-build --skip "$saturating"
swift test --skip-build --filter "$saturating"
