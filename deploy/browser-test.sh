#!/usr/bin/env bash
# The web console's browser tests (Tests/browser): real headless Chromium driven by Selenium
# (chromedriver), against a real bursard on a real redis-server, both started here on free loopback
# ports. pytest seeds the store through bursarctl (an organization, its Owner, a Project Admin, a
# Project Member with a grant, a Member with no project, two projects, keys, some usage), then
# checks the console against its HTML contract: proto/permissions.tsv (every row, for every role),
# key creation and revocation seen from the data plane, caps refused in the browser and by the
# server, CSRF, sessions and cookie flags, one-time links, and the usage charts (traffic on past days
# through a second, debug bursard on the organization's frozen test clock) against the admin API. It
# takes twelve screenshots (overview, project, new key, and the three chart pages; 1280 and 390 px
# wide) and exits non-zero on any failure. See Tests/browser/README.md.
#
#   deploy/browser-test.sh
#   deploy/browser-test.sh -k 'csrf or link' -x    arguments go to pytest
#   BURSAR_BIN_DIR=.build/debug deploy/browser-test.sh   use these bursard/bursarctl, build nothing
#   BROWSER_ARTIFACTS=dir        screenshots/, failures/ (page source + PNG of each failed test) and
#                                bursard.log (default: ${TMPDIR:-/tmp}/bursar-browser; replaced each run)
#   BROWSER_SCREENSHOTS_DIR=dir  also copy the screenshots there (e.g. docs/console)
#   BROWSER_VENV=dir             reuse (or make once) this virtual environment for selenium+pytest
#   BURSAR_PERMISSIONS=file      hold the console to another matrix (default proto/permissions.tsv)
#   CHROMIUM, CHROMEDRIVER       the browser and its driver (default /usr/bin/chromium, /usr/bin/chromedriver)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [[ -n ${BURSAR_BIN_DIR:-} ]]; then
  bin=$(cd "$BURSAR_BIN_DIR" && pwd)
else
  swift build --product bursard >/dev/null
  swift build --product bursarctl >/dev/null
  bin=$root/.build/debug
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
chromedriver=${CHROMEDRIVER:-/usr/bin/chromedriver}
for f in "$bin/bursard" "$bin/bursarctl" "$chromium" "$chromedriver"; do
  [[ -x $f ]] || { echo "browser-test: $f is missing (deploy/install-deps.sh installs chromium and chromium-driver)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "browser-test: redis-server is required (deploy/install-deps.sh)" >&2; exit 1; }
artifacts=${BROWSER_ARTIFACTS:-${TMPDIR:-/tmp}/bursar-browser}
mkdir -p "$artifacts"
rm -rf "$artifacts/screenshots" "$artifacts/failures" "$artifacts/bursard.log"
artifacts=$(cd "$artifacts" && pwd)

source deploy/lib.sh

venv=${BROWSER_VENV:-$work/venv}
if ! "$venv/bin/python" -c 'import selenium, pytest' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check selenium pytest
fi

start_redis --appendonly no
ops_port=$(free_port)
data_port=$(free_port)
# Key-encryption keys, so that BYOK secrets can be stored (sealed) from the console; in the
# environment, so that every bursard the tests start on this Redis has them too.
BURSARD_SECRETS_KEYS="browser:$(head -c 32 /dev/urandom | base64)"
export BURSARD_SECRETS_KEYS
"$bin/bursard" --redis "$redis_url" --listen "127.0.0.1:$data_port" --ops "127.0.0.1:$ops_port" \
  --log-level warning >"$work/bursard.log" 2>&1 &
pids+=($!)
server="http://127.0.0.1:$ops_port"
up=0
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$server/healthz" 2>/dev/null && { up=1; break; }
  sleep 0.1
done
((up)) || { echo "browser-test: bursard did not start: $(tail -n 5 "$work/bursard.log")" >&2; exit 1; }

status=0
PYTHONDONTWRITEBYTECODE=1 BURSAR_SERVER=$server BURSAR_DATA_PLANE="127.0.0.1:$data_port" BURSAR_REDIS_URL=$redis_url \
  BURSARD=$bin/bursard BURSARCTL=$bin/bursarctl BURSAR_WORK=$work BROWSER_ARTIFACTS=$artifacts \
  BURSAR_PERMISSIONS=${BURSAR_PERMISSIONS:-$root/proto/permissions.tsv} CHROMIUM=$chromium CHROMEDRIVER=$chromedriver \
  "$venv/bin/python" -m pytest "$root/Tests/browser" -p no:cacheprovider -q -rfE \
  "$@" || status=$?
cp "$work/bursard.log" "$artifacts/bursard.log" 2>/dev/null || true

shots=("$artifacts"/screenshots/*.png)
if [[ -n ${BROWSER_SCREENSHOTS_DIR:-} && -e ${shots[0]} ]]; then
  mkdir -p "$BROWSER_SCREENSHOTS_DIR"
  cp "${shots[@]}" "$BROWSER_SCREENSHOTS_DIR/"
  echo "browser-test: screenshots copied to $BROWSER_SCREENSHOTS_DIR"
fi
echo "browser-test: artifacts (screenshots, failures, bursard.log) in $artifacts"
if [[ -e ${shots[0]} ]]; then printf '  %s\n' "${shots[@]}"; fi
if [[ -d $artifacts/failures ]]; then printf '  %s\n' "$artifacts"/failures/*; fi
if ((status != 0)); then
  echo "browser-test: FAILED (pytest exit $status)" >&2
  exit 1
fi
