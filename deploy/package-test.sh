#!/usr/bin/env bash
# Installs dist/bursar_*.deb (built by deploy/package.sh) with dpkg and checks it works as
# installed: `bursard --help` from /usr/bin, the systemd unit passes `systemd-analyze verify`
# where systemd is available, and the installed bursard (on its own embedded redis-server, on
# free ports) answers the product-page flow driven by the installed bursarctl, CHECKs included.
# Needs root (dpkg -i); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls -t dist/bursar_*_*.deb 2>/dev/null | head -n 1)
[[ -n "$deb" ]] || { echo "package-test.sh: no dist/bursar_*.deb; run deploy/package.sh first" >&2; exit 1; }
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "./$deb" >/dev/null
dpkg -s bursar | sed -n 's/^\(Package\|Version\|Depends\|Recommends\): /  \1: /p'
/usr/bin/bursard --help | head -n 3
/usr/bin/bursarctl --help >/dev/null
/usr/bin/bursar-bench --help >/dev/null
getent passwd bursar >/dev/null || { echo "package-test.sh: the bursar user was not created" >&2; exit 1; }
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/bursard.service
  echo "systemd-analyze verify: bursard.service ok"
fi

source deploy/lib.sh
listen=$(free_port); ops=$(free_port)
/usr/bin/bursard --config /etc/bursar/bursard.conf --data-dir "$work/data" --unix "$work/bursard.sock" \
  --listen "127.0.0.1:$listen" --ops "127.0.0.1:$ops" >"$work/bursard.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "http://127.0.0.1:$ops/readyz" 2>/dev/null && break
  sleep 0.1
done
BURSARCTL=/usr/bin/bursarctl BURSAR_SERVER="http://127.0.0.1:$ops" BURSAR_DATA_PLANE="127.0.0.1:$listen" \
  bash deploy/product-flow.sh >"$work/flow.log" 2>&1 || { cat "$work/flow.log" "$work/bursard.log" >&2; exit 1; }
grep -c '' "$work/flow.log" >/dev/null
echo "package-test.sh: $deb installed; the installed bursard answered the product flow (CHECKs over the binary protocol)"
