#!/usr/bin/env bash
# bursar.litellm end to end: a real LiteLLM proxy (1.110.2, from PyPI) with the bursar callback,
# a real bursard + redis-server, and a fake OpenAI-compatible upstream, driven by pytest with
# the openai SDK (clients/python/e2e/). Everything runs as real processes on ephemeral ports.
#
#   deploy/litellm-e2e.sh [pytest args…]      bootstrap the venv if needed, then run the tests
#   deploy/litellm-e2e.sh --bootstrap-only    only make the venv (and install the client)
#   deploy/litellm-e2e.sh --bench-latency     the latency bursar.litellm adds (bench_latency.py)
#
#   LITELLM_VENV       where the venv lives (default: .build/litellm-venv); it is rebuilt when
#                      clients/python/e2e/requirements-litellm.txt or constraints-litellm.txt change
#   BURSARD, BURSARCTL the binaries (default: .build/debug/, then .build/release/, then PATH)
#   E2E_KEEP_LOGS      copy every process's log there at the end
#
# The client is installed the way a user installs it, `pip install ./clients/python` (not
# editable), into that venv on every run (it is small), and the proxy and the tests run with no
# PYTHONPATH into the source tree: the suite proves that the package plus config is enough.
#
# Installing takes about 100 s on a busy 2-core machine (PyPI, ~90 packages); the proxy then
# starts in about 20–25 s.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
e2e=$repo/clients/python/e2e
venv=${LITELLM_VENV:-$repo/.build/litellm-venv}
python=${PYTHON:-python3}

bootstrap() {
  local stamp want
  want=$(cat "$e2e/requirements-litellm.txt" "$e2e/constraints-litellm.txt" | sha256sum | cut -c1-16)
  stamp=$venv/.bursar-e2e-stamp
  if [ -x "$venv/bin/litellm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "litellm-e2e: creating $venv (litellm 1.110.2 and the proxy requirements, from PyPI)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  local start=$SECONDS
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$e2e/requirements-litellm.txt" -c "$e2e/constraints-litellm.txt"
  # Importing the proxy is the check that no start-up requirement is missing.
  LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c "import litellm.proxy.proxy_server" \
    || { echo "litellm-e2e: the LiteLLM proxy does not import in $venv" >&2; exit 1; }
  echo "$want" > "$stamp"
  echo "litellm-e2e: venv ready in $((SECONDS - start)) s"
}

bootstrap

# The client, as a user installs it: `pip install ./clients/python`, not editable (from a copy,
# so the in-tree build leaves nothing in the source tree). pip fetches the build backend
# (setuptools) into an isolated build environment, as it does for any user; the package itself
# has no dependencies.
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
cp -r "$repo/clients/python/." "$pkg/"
rm -rf "$pkg/build" "$pkg"/*.egg-info
(cd "$pkg" && "$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall .)
# From a neutral directory, with no PYTHONPATH: the installed package, not the source tree.
(cd / && env -u PYTHONPATH LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c '
import bursar, bursar.litellm, os, sys
where = os.path.dirname(bursar.__file__)
assert "site-packages" in where, where
print("litellm-e2e: bursar", getattr(bursar, "__version__", "?"), "installed at", where)') \
  || { echo "litellm-e2e: python -c \"import bursar, bursar.litellm\" fails in $venv" >&2; exit 1; }
unset PYTHONPATH
[ "${1:-}" = "--bootstrap-only" ] && exit 0

export LITELLM_BIN=$venv/bin/litellm
cd "$e2e"
if [ "${1:-}" = "--bench-latency" ]; then
  shift
  "$venv/bin/python" -m pytest -p no:cacheprovider -s "$@" bench_latency.py
  exit
fi
"$venv/bin/python" -m pytest -p no:cacheprovider -v "$@" test_litellm.py test_overspend.py
