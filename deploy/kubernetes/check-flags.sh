#!/usr/bin/env bash
# Every --flag the Kubernetes manifests pass to bursard must exist in `bursard --help`.
#   deploy/kubernetes/check-flags.sh [path/to/bursard]
set -euo pipefail
cd "$(dirname "$0")"
bursard=${1:-bursard}
help=$("$bursard" --help)
status=0
for flag in $(grep -ohE -- '- --[a-z0-9-]+' *.yaml | sed 's/^- //' | sort -u); do
  if ! grep -qE -- "(^|[ ,])$flag([ =,]|$)" <<<"$help"; then
    echo "check-flags: $flag is used in deploy/kubernetes but bursard --help does not list it" >&2
    status=1
  fi
done
((status == 0)) && echo "check-flags: every bursard flag in deploy/kubernetes exists"
exit $status
