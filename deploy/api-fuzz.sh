#!/usr/bin/env bash
# Fuzzes the admin API with schemathesis (PyPI, installed into a virtual environment) against its
# OpenAPI document, proto/openapi.json, for a bounded time: a real bursard on a real redis-server,
# bootstrapped, driven with the Owner's token. Prints how many test cases were generated; exits
# non-zero on any failed check.
#
# Checks (all of schemathesis's): no 5xx ever; every status code, content type, header and body
# as documented; auth that cannot be ignored or skipped; created resources can be found and
# deleted ones stay gone (a 404 always names the path's own resource: a user the body names who
# is not in the organization is 409 `conflict`); 405 with Allow for a method a path does not
# have; every schema-valid request accepted and every invalid one refused with 4xx
# (positive_data_acceptance, negative_data_rejection). The document states every rule the server
# checks on a request (ranges, lengths in code points, patterns, fields that exclude or need each
# other); a schema-valid request refused by stored state or the clock answers 409 `conflict` or
# 422 `exceeds_cap` (a key above a project cap), which positive_data_acceptance is told to expect
# (schemathesis.toml below; 400 stays a failure). `--checks all` enables every check whatever
# the file says (schemathesis 4.32.5: the command line wins), so none is turned off there.
#
#   deploy/api-fuzz.sh                   60 seconds
#   API_FUZZ_SECONDS=600 deploy/api-fuzz.sh
#   API_FUZZ_SEED=42 deploy/api-fuzz.sh   reproduce a run (schemathesis prints its seed)
#   API_FUZZ_ARGS='--phases coverage --include-operation-id putVirtualModel' deploy/api-fuzz.sh
#                                         more arguments for `schemathesis run` (split on spaces)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${API_FUZZ_SECONDS:-60}
config=${API_FUZZ_CONFIG:-debug}
swift build -c "$config" --product bursard >/dev/null
swift build -c "$config" --product bursarctl >/dev/null
bin=.build/$config

source deploy/lib.sh

python3 -m venv "$work/venv"
# Pinned: the notes on its behaviour here (the command line over the file, link values
# unquoted) are of this version.
"$work/venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
st="$work/venv/bin/schemathesis"

start_redis --appendonly no
ops_port=$(free_port)
# Key-encryption keys, so that BYOK secrets can be stored (sealed) as in production.
printf 'fuzz:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$work/secrets.keys"
"$bin/bursard" --redis "$redis_url" --listen 127.0.0.1:0 --ops "127.0.0.1:$ops_port" --log-level warning \
  --secrets-key-file "$work/secrets.keys" >"$work/bursard.log" 2>&1 &
pids+=($!)
server="http://127.0.0.1:$ops_port"
for _ in $(seq 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$server/healthz" 2>/dev/null && break
  sleep 0.1
done

token=$("$bin/bursarctl" bootstrap --server "$server" --org fuzz --owner owner@fuzz.test --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["owner_token"])')

cat >"$work/schemathesis.toml" <<'TOML'
# 422 exceeds_cap: a schema-valid key or grant above a cap stored on the server (state, not shape).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# The stateful phase links operations by parameter name on its own: a prompt's `name` (any
# Unicode) is fed to `/virtual-models/{name}` (1-64 visible ASCII), which answers 400 as the
# document says. Only there is such a 400 a link's doing, not a valid request refused.
[phases.stateful.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]

# GET /v1/orgs/{org}/usage/history: `from` must not be after `to`, and they span at most 800
# days, as its description says: a rule between two parameters, which a schema cannot state (the
# coverage phase sends `from=2000-01-01` alone, `to` being today). Its 400 for such a pair is the
# document's; the history's own tests check every other answer.
[[operations]]
include-operation-id = "getUsageHistory"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]
TOML
# schemathesis sends a path parameter as quote(unquote(value)), a value its stateful phase carries
# from one answer to the next request included. A name holding '%' and hex is therefore sent as
# another name: 'a%A5b' (schema-valid: '%' is visible ASCII) reaches the server as U+FFFD, which
# it rightly refuses as not ASCII, and a virtual model created as 'a%A5b' and then asked for
# through a link was refused so (CI, 2026-12-05: "schema-valid request rejected"); 'a%41b' would
# come back as 'aAb', another name, and read as the created resource missing. So the names this
# run generates where a link can carry them (path names, a prompt's name, the price import's
# model names) hold no '%': '_' stands in, one character for one. The hook sees a path value
# already percent-encoded where it is not ASCII (schemathesis 4.32.5 quotes before the hooks):
# such a value is decoded first, so the name keeps its length in code points. What the server
# does with '%' in a name (decoded once; 'a%A5b' and 'a%41b' are names of their own) is
# RequestRulesTests' "path names holding '%'".
#
# A '%' can still reach schemathesis's own quote(unquote(value)) without passing a hook above: a
# value a link carries in the stateful phase (a project's name, any Unicode, fed to a model name)
# and the coverage phase's values (map_path_parameters is not called there). There 'a%E9b' becomes
# 'a\uFFFDb' and 'a%08b' becomes 'a\bb' before any hook sees the request (CI, 2026-12-06: PUT
# /virtual-models/{name} with ',N\uFFFD~3VWNWI', then GET with '\b', refused as not ASCII:
# "schema-valid request rejected"). map_case, which every phase calls on the finished request,
# undoes that in a positive case for the path parameters the document restricts to visible ASCII
# (a model name, `^[!-~]+$`): there any other character can only be schemathesis's decoding, and
# '_' stands in for it. A negative case is left as generated, and values of other patterns too (a
# prompt's name may hold U+FFFD). schemathesis revalidates a case a hook changed, so the checks
# judge the request as sent.
API_FUZZ_DOCUMENT="$PWD/proto/openapi.json"
export API_FUZZ_DOCUMENT
cat >"$work/hooks.py" <<'PY'
import json
import os
from urllib.parse import quote, unquote

import schemathesis
from schemathesis.core.parameters import ParameterLocation


def _ascii_path_parameters(document):
    """(path template, parameter name) of every path parameter whose pattern is visible ASCII."""
    parameters = document.get("components", {}).get("parameters", {})
    found = set()
    for template, item in document.get("paths", {}).items():
        for parameter in item.get("parameters", []):
            if "$ref" in parameter:
                parameter = parameters[parameter["$ref"].rsplit("/", 1)[1]]
            if parameter.get("in") == "path" and parameter.get("schema", {}).get("pattern") == "^[!-~]+$":
                found.add((template, parameter["name"]))
    if not found:
        raise SystemExit("api-fuzz hooks: no visible-ASCII path parameter found in the document")
    return found


with open(os.environ["API_FUZZ_DOCUMENT"], encoding="utf-8") as document:
    ASCII_ONLY = _ascii_path_parameters(json.load(document))


def _plain(value):
    return value.replace("%", "_") if isinstance(value, str) else value


def _plain_path(value):
    if not isinstance(value, str):
        return value
    try:
        value = unquote(value, errors="strict")
    except UnicodeDecodeError:
        pass  # not schemathesis's encoding: the value as generated
    return _plain(value)


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if not path_parameters:
        return path_parameters
    return {name: _plain_path(value) for name, value in path_parameters.items()}


def _visible(text):
    return "".join(c if "!" <= c <= "~" else "_" for c in text)


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    path_mode = meta.components.get(ParameterLocation.PATH) if meta is not None else None
    if path_mode is not None and not path_mode.mode.is_positive:
        return case  # a negative case keeps what it breaks
    for name, value in list(case.path_parameters.items()):
        if (case.path, name) not in ASCII_ONLY or not isinstance(value, str):
            continue
        try:
            text = unquote(value, errors="strict")
        except UnicodeDecodeError:
            continue
        if _visible(text) != text:
            case.path_parameters[name] = quote(_visible(text), safe="")
    return case


@schemathesis.hook
def map_body(context, body):
    path = getattr(context.operation, "path", "") or ""
    if not isinstance(body, dict):
        return body
    if path.endswith("/prompts") and "name" in body:
        return {**body, "name": _plain(body["name"])}
    if path.endswith("/prices/import"):
        return {_plain(name): value for name, value in body.items()}
    return body
PY
export SCHEMATHESIS_HOOKS="$work/hooks.py"
seed=()
[[ -n ${API_FUZZ_SEED:-} ]] && seed=(--seed "$API_FUZZ_SEED")
read -r -a extra <<<"${API_FUZZ_ARGS:-}"
status=0
# The caller's own token is left alone: rotating or revoking it would make every later request
# of the run a 401 (TokenLifecycleTests and Tests/browser/test_tokens.py cover those operations).
"$st" --config-file "$work/schemathesis.toml" run proto/openapi.json --url "$server" -H "Authorization: Bearer $token" \
  --exclude-operation-id rotateMyToken --exclude-operation-id revokeMyToken \
  --checks all "${seed[@]}" "${extra[@]}" --max-time "$seconds" --no-color >"$work/report.txt" 2>&1 || status=$?
sed -n '/SUMMARY/,$p' "$work/report.txt"
cases=$(grep -oE '[0-9]+ generated' "$work/report.txt" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
echo "api-fuzz: schemathesis against proto/openapi.json, ${seconds}s budget: ${cases} test cases generated"
if ((status != 0)); then
  sed -n '/ERRORS\|FAILURES/,/SUMMARY/p' "$work/report.txt" | head -n 120 >&2
  # No summary: schemathesis stopped before testing (seen once in CI: exit 2, nothing
  # generated). Show what it said, and bursard's log, so the cause is on the record.
  if ! grep -q SUMMARY "$work/report.txt"; then
    echo "api-fuzz: schemathesis printed no summary; its output:" >&2
    tail -n 60 "$work/report.txt" >&2
    echo "api-fuzz: bursard's log:" >&2
    tail -n 30 "$work/bursard.log" >&2
  fi
  echo "api-fuzz: FAILED (exit $status)" >&2
  exit 1
fi
