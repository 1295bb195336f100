#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis (PyPI, installed into a virtual environment) against its
# OpenAPI document, proto/openapi.json, for a bounded time: a real bursard on a real redis-server,
# bootstrapped, driven with the Owner's token. Prints how many test cases were generated; exits
# non-zero on any failed check.
#
# Checks: no 5xx ever; every status code, content type, header and body as documented; auth that
# cannot be ignored or skipped; deleted resources stay gone; 405 with Allow for a method a path
# does not have. Not yet checked (README, "Test it"): that every schema-valid body is accepted and
# every invalid one refused (the document does not yet spell out every server-side rule, e.g.
# byte lengths of model names).
#
#   deploy/api-fuzz.sh                   60 seconds
#   API_FUZZ_SECONDS=600 deploy/api-fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${API_FUZZ_SECONDS:-60}
config=${API_FUZZ_CONFIG:-debug}
swift build -c "$config" --product bursard >/dev/null
swift build -c "$config" --product bursarctl >/dev/null
bin=.build/$config

source deploy/lib.sh

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check schemathesis
st="$work/venv/bin/schemathesis"

start_redis --appendonly no
ops_port=$(free_port)
"$bin/bursard" --redis "$redis_url" --listen 127.0.0.1:0 --ops "127.0.0.1:$ops_port" --log-level warning \
  >"$work/bursard.log" 2>&1 &
pids+=($!)
server="http://127.0.0.1:$ops_port"
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$server/healthz" 2>/dev/null && break
  sleep 0.1
done

token=$("$bin/bursarctl" bootstrap --server "$server" --org fuzz --owner owner@fuzz.test --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["owner_token"])')

status=0
"$st" run proto/openapi.json --url "$server" -H "Authorization: Bearer $token" \
  --checks all --exclude-checks negative_data_rejection,positive_data_acceptance \
  --max-time "$seconds" --no-color >"$work/report.txt" 2>&1 || status=$?
sed -n '/SUMMARY/,$p' "$work/report.txt"
cases=$(grep -oE '[0-9]+ generated' "$work/report.txt" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
echo "api-fuzz: schemathesis against proto/openapi.json, ${seconds}s budget: ${cases} test cases generated"
if ((status != 0)); then
  sed -n '/FAILURES/,/SUMMARY/p' "$work/report.txt" | head -n 80 >&2
  echo "api-fuzz: FAILED (exit $status)" >&2
  exit 1
fi
