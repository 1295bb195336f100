#!/usr/bin/env bash
# Tests the Python client (clients/python) in a fresh virtual environment: installs the package
# and pytest, checks that `import bursar` works from the installed copy, then runs its tests —
# the codec against every vector of proto/vectors/vectors.json, and the clients against a real
# redis-server and real bursard processes that the tests start on ephemeral ports.
#
#   deploy/python-client-test.sh
#   BURSAR_CONFIG=release deploy/python-client-test.sh      binaries from .build/release
#   BURSARD=/path/bursard BURSARCTL=/path/bursarctl deploy/python-client-test.sh   prebuilt
#
# Without BURSARD/BURSARCTL it builds both products first (a no-op when the build exists).
# Exits non-zero on any failure; a missing binary or redis-server is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${BURSAR_CONFIG:-debug}
if [[ -z ${BURSARD:-} || -z ${BURSARCTL:-} ]]; then
  swift build -c "$config" --product bursard >/dev/null
  swift build -c "$config" --product bursarctl >/dev/null
fi
export BURSARD=${BURSARD:-$PWD/.build/$config/bursard}
export BURSARCTL=${BURSARCTL:-$PWD/.build/$config/bursarctl}
export BURSAR_VECTORS=$PWD/proto/vectors/vectors.json
for bin in "$BURSARD" "$BURSARCTL"; do
  [[ -x $bin ]] || { echo "python-client-test: $bin is missing" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "python-client-test: redis-server is missing" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check ./clients/python pytest
# the installed package, not the source tree, must import
(cd "$work" && "$work/venv/bin/python" -c 'import bursar, sys; print("bursar", bursar.__version__, "from", bursar.__file__)')
# bursar.litellm imports without LiteLLM (no runtime dependencies); its handler then says what it needs
(cd "$work" && "$work/venv/bin/python" -c '
import bursar, bursar.litellm
try:
    bursar.litellm.handler
except ImportError as e:
    assert "LiteLLM" in str(e), e
else:
    raise SystemExit("bursar.litellm.handler loaded without LiteLLM installed")
print("bursar.litellm imports without LiteLLM; its handler needs it")')
# tests import the installed package: run them from a copy without the source package beside them
cp -r clients/python/tests "$work/tests"
(cd "$work" && "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@")
echo "python-client-test: passed"
