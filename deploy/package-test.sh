#!/usr/bin/env bash
# Installs dist/bursar_*.deb (built by deploy/package.sh) with apt, as a machine would, and checks
# that it works as installed, one printed line per check:
#   - dpkg has it installed at the version in the file name, with the three binaries, the unit
#     and /etc/bursar/bursard.conf as a conffile; the `bursar` system user exists;
#   - the installed binaries run (`--help`, `--version`) and load no Swift runtime from disk
#     and no library that is missing;
#   - `systemd-analyze verify` has nothing to say about the installed unit (skipped, saying why,
#     where systemd-analyze is not installed);
#   - the installed /usr/bin/bursard, run as the unit runs it (user bursar, no capabilities), on
#     the installed /etc/bursar/bursard.conf (so every name in it is accepted), against a
#     redis-server this script starts on a free loopback port with the shipped production
#     fragment (/usr/share/doc/bursar/redis-production.conf), answers the product-page flow
#     (deploy/product-flow.sh) driven by the installed /usr/bin/bursarctl run as `nobody`, which
#     includes CHECKs over the binary protocol: an admission and two denials;
#   - removing the package keeps the conffile, purging removes it (skipped when this machine had
#     a bursar state directory before the test: purge would delete its data; PACKAGE_TEST_KEEP=1
#     also skips it, leaving the package installed).
# Exits non-zero at the first failure. Needs root or sudo (apt-get install); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "package-test: $*"; }
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"

deb=$(ls -t dist/bursar_*_*.deb 2>/dev/null | head -n 1 || true)
[[ -n "$deb" ]] || fail "no dist/bursar_*.deb; run deploy/package.sh first"
version=$(dpkg-deb -f "$deb" Version)
bash deploy/install-deps.sh   # redis-server and python3 for the flow below
had_state=no; [ -e /var/lib/bursar ] && had_state=yes

# --reinstall: the same version may already be installed (an earlier run), and must be replaced.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --reinstall --no-install-recommends "./$deb" >/dev/null \
  || fail "apt-get install ./$deb failed"
status=$(dpkg-query -W -f='${Status} ${Version}' bursar)
[[ "$status" == "install ok installed $version" ]] || fail "dpkg says '$status', expected 'install ok installed $version'"
say "installed $deb: $status"
say "  Depends: $(dpkg-query -W -f='${Depends}' bursar)"
say "  Recommends: $(dpkg-query -W -f='${Recommends}' bursar)"
files=$(dpkg -L bursar)
for f in /usr/bin/bursard /usr/bin/bursarctl /usr/bin/bursar-bench /lib/systemd/system/bursard.service /etc/bursar/bursard.conf; do
  grep -qx "$f" <<<"$files" || fail "the package does not install $f"
  [ -e "$f" ] || fail "$f is listed but missing"
done
dpkg-query -W -f='${Conffiles}\n' bursar | grep -q '^ /etc/bursar/bursard.conf ' || fail "/etc/bursar/bursard.conf is not a conffile"
say "files: /usr/bin/{bursard,bursarctl,bursar-bench}, /lib/systemd/system/bursard.service, /etc/bursar/bursard.conf (conffile)"
user=$(getent passwd bursar) || fail "postinst did not create the bursar user"
IFS=: read -r _ _ uid _ _ home shell <<<"$user"
((uid < 1000)) || fail "bursar is not a system user (uid $uid)"
say "user: bursar uid $uid, home $home, shell $shell; group: $(getent group bursar | cut -d: -f1,3)"

# The binaries, as installed.
for b in bursard bursarctl bursar-bench; do
  /usr/bin/$b --help >/dev/null || fail "/usr/bin/$b --help failed"
  libs=$(ldd /usr/bin/$b)
  ! grep -q 'not found' <<<"$libs" || fail "/usr/bin/$b: $(grep 'not found' <<<"$libs" | xargs)"
  ! grep -q 'libswift' <<<"$libs" || fail "/usr/bin/$b loads the Swift runtime from disk: $(grep libswift <<<"$libs" | xargs)"
done
say "bursard --help: $(/usr/bin/bursard --help | head -n 1)"
say "bursard --version: $(/usr/bin/bursard --version); bursarctl and bursar-bench --help ok; no Swift runtime or missing library in ldd"

if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify /lib/systemd/system/bursard.service 2>&1) || fail "systemd-analyze verify: $out"
  [[ -z "$out" ]] || fail "systemd-analyze verify has warnings: $out"
  say "systemd-analyze verify /lib/systemd/system/bursard.service: clean ($(systemd-analyze --version | head -n 1))"
else
  say "systemd-analyze verify: SKIPPED, systemd-analyze is not installed on this machine"
fi

# The installed bursard on the installed config, against a redis-server started here on a free
# loopback port with the production fragment the package ships (so the fragment is checked to
# load, and the flow runs on AOF + noeviction); the listeners and the data directory are moved
# into a scratch directory (the config's own are the service's).
source deploy/lib.sh
fragment=/usr/share/doc/bursar/redis-production.conf
[ -f "$fragment" ] || fail "the package does not ship $fragment"
redis_port=$(free_port)
redis-server "$fragment" --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { tail -n 5 "$work/redis.log" >&2; fail "redis-server with $fragment did not start"; }
policy=$(redis-cli -p "$redis_port" config get maxmemory-policy | tail -n 1)
aof=$(redis-cli -p "$redis_port" config get appendonly | tail -n 1)
[[ $policy == noeviction && $aof == yes ]] || fail "redis with $fragment: maxmemory-policy $policy, appendonly $aof"
redis_url="redis://127.0.0.1:$redis_port"
say "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$redis_port with $fragment: maxmemory-policy $policy, appendonly $aof"
listen=$(free_port); ops=$(free_port)
# bursard runs as the unit runs it, as the unprivileged `bursar` user (setpriv drops root and
# every capability); its socket and data directory are in a scratch directory it owns.
chmod 0711 "$work"
$sudo install -d -o bursar -g bursar -m 0750 "$work/bursar"
$sudo setpriv --reuid=bursar --regid=bursar --init-groups \
  /usr/bin/bursard --config /etc/bursar/bursard.conf --redis "$redis_url" --data-dir "$work/bursar/data" \
  --unix "$work/bursar/bursard.sock" --listen "127.0.0.1:$listen" --ops "127.0.0.1:$ops" >"$work/bursard.log" 2>&1 &
pids+=($!)
ready=no
for _ in $(seq 150); do
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/bursard.log" >&2; fail "/usr/bin/bursard exited at start-up"; }
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "http://127.0.0.1:$ops/readyz" 2>/dev/null; then
    ready=yes; break
  fi
  sleep 0.2
done
[[ $ready == yes ]] || { cat "$work/bursard.log" >&2; fail "/usr/bin/bursard did not become ready in 30 s"; }
say "/usr/bin/bursard --config /etc/bursar/bursard.conf --redis $redis_url, as user $(ps -o user= -p "${pids[-1]}"): ready (data plane 127.0.0.1:$listen, ops 127.0.0.1:$ops)"
# The flow runs as `nobody`, as a gateway or an operator would: not root, no capabilities.
$sudo setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent \
  BURSARCTL=/usr/bin/bursarctl BURSAR_SERVER="http://127.0.0.1:$ops" BURSAR_DATA_PLANE="127.0.0.1:$listen" \
  bash deploy/product-flow.sh >"$work/flow.log" 2>&1 || { cat "$work/flow.log" "$work/bursard.log" >&2; fail "the product flow failed"; }
grep -qx 'product flow: ok' "$work/flow.log" || { cat "$work/flow.log" >&2; fail "the product flow did not finish"; }
block() { sed -n "/^== $1/,/^== /{/^== /!p}" "$work/flow.log" | sed -E 's/[[:space:]]+/ /g' | paste -sd';' - | sed 's/;/; /g'; }
say "CHECK by /usr/bin/bursarctl over the binary protocol, the key's own model: $(block 'the key passes CHECK')"
say "CHECK, a model outside the key's four: $(block 'a model outside')"
say "CHECK after the Owner revoked the key: $(block 'the Owner revokes' | grep -o 'decision: .*')"
say "the product flow (bootstrap, projects, member, scoped key, CHECK admitted, wrong model denied, revoked key denied): ok"
# The web console: its templates are compiled into the binary (a template that does not parse
# stops bursard at start), so the installed bursard must serve the sign-in page and its assets.
console=$(python3 - "http://127.0.0.1:$ops" <<'PY'
import sys, urllib.request
base = sys.argv[1]
page = urllib.request.urlopen(base + "/console/sign-in", timeout=5)
html = page.read().decode()
assert page.status == 200 and 'data-page="sign-in"' in html, "no sign-in page"
assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"], "no CSP"
assert "SameSite=Strict" in page.headers["Set-Cookie"], "no SameSite=Strict cookie"
css = urllib.request.urlopen(base + "/console/assets/console.css", timeout=5)
assert css.status == 200 and css.headers["Content-Type"].startswith("text/css"), "no stylesheet"
print("GET /console/sign-in 200 (form, CSP, SameSite=Strict cookie), /console/assets/console.css 200")
PY
) || { cat "$work/bursard.log" >&2; fail "the web console is not served"; }
say "web console: $console"
$sudo kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null && code=0 || code=$?
((code == 0)) || { cat "$work/bursard.log" >&2; fail "bursard exited $code on SIGTERM"; }
say "bursard drained and exited 0 on SIGTERM"

if [[ "${PACKAGE_TEST_KEEP:-}" == 1 || $had_state == yes ]]; then
  say "remove/purge: SKIPPED ($([[ $had_state == yes ]] && echo '/var/lib/bursar existed before the test' || echo PACKAGE_TEST_KEEP=1)); bursar stays installed"
else
  $sudo dpkg --remove bursar >/dev/null
  [ ! -e /usr/bin/bursard ] || fail "dpkg --remove left /usr/bin/bursard"
  [ -e /etc/bursar/bursard.conf ] || fail "dpkg --remove deleted the conffile"
  $sudo dpkg --purge bursar >/dev/null
  [ ! -e /etc/bursar/bursard.conf ] || fail "dpkg --purge left /etc/bursar/bursard.conf"
  say "dpkg --remove kept /etc/bursar/bursard.conf, dpkg --purge removed it (the bursar user stays, as Debian policy advises)"
fi
say "ok"
