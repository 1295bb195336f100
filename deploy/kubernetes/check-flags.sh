#!/usr/bin/env bash
# Every bursard setting the deploy files name must exist in `bursard --help`:
#   - each `- --flag` argument in deploy/kubernetes/*.yaml,
#   - each --flag on an ExecStart line of deploy/systemd/bursard.service,
#   - each `name = value` line of deploy/debian/bursard.conf, commented-out examples included
#     (a config name is the flag without '--').
#   deploy/kubernetes/check-flags.sh [path/to/bursard]   (default: the debug build, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $# -gt 0 ]]; then
  bursard=$1
else
  bursard="$(swift build --show-bin-path)/bursard"
  [[ -x "$bursard" ]] || swift build --product bursard >/dev/null
fi
help=$("$bursard" --help)
status=0
checked=0
check() { # check FLAG WHERE
  checked=$((checked + 1))
  if ! grep -qE -- "(^|[ ,])$1([ =,]|$)" <<<"$help"; then
    echo "check-flags: $1 is used in $2 but bursard --help does not list it" >&2
    status=1
  fi
}
for f in deploy/kubernetes/*.yaml; do
  for flag in $(grep -ohE -- '^\s*- --[a-z0-9-]+' "$f" | sed 's/^[[:space:]]*- //' | sort -u); do check "$flag" "$f"; done
done
unit=deploy/systemd/bursard.service
for flag in $(grep -E '^ExecStart=' "$unit" | grep -oE -- '--[a-z0-9-]+' | sort -u); do check "$flag" "$unit"; done
conf=deploy/debian/bursard.conf
for name in $(sed -nE 's/^#? *([a-z][a-z0-9-]*) *=.*/\1/p' "$conf" | sort -u); do check "--$name" "$conf"; done
((checked > 0)) || { echo "check-flags: found no flags to check" >&2; exit 1; }
((status == 0)) && echo "check-flags: all $checked bursard flags named in deploy/kubernetes, the systemd unit and the default config exist in bursard --help"
exit $status
