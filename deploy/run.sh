#!/usr/bin/env bash
# Installs what is missing, builds bursard (release) and runs it with its own embedded Redis.
# Extra arguments go to bursard, e.g. deploy/run.sh --listen 127.0.0.1:7420 --unix /tmp/bursar.sock
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
swift build -c release --product bursard
exec .build/release/bursard "$@"
