#!/usr/bin/env bash
# Installs what is missing, builds bursard and bursarctl (release) and runs bursard with its own
# embedded Redis. Extra arguments go to bursard, e.g. deploy/run.sh --listen 127.0.0.1:7420 --unix /tmp/bursar.sock
# Then, from another shell: .build/release/bursarctl bootstrap --org NAME --owner EMAIL
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
swift build -c release --product bursard
swift build -c release --product bursarctl
exec .build/release/bursard "$@"
