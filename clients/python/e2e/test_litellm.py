"""bursar.litellm against a real LiteLLM proxy, a real bursard and a fake OpenAI upstream.

Each test makes its own key (bursarctl), calls the proxy with the ``openai`` SDK as a caller
would, and reads the key's usage back from bursard. Money in bursar is nano-USD; LiteLLM's
cost for a request (``response_cost`` of its logging event) is USD.
"""
from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal

import httpx
import openai
import pytest

MSG = [{"role": "user", "content": "hello there world"}]


def nano(usd) -> int:
    return int((Decimal(repr(float(usd))) * 1_000_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def sdk(proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base + "/v1", api_key=key, max_retries=0, timeout=60)


def litellm_cost(proxy, call_id: str) -> float:
    events = proxy.events(call_id)
    assert len(events) == 1, events
    return events[0]["response_cost"]


def deny(proxy, key: str, model: str = "gpt-4o-mini", max_tokens: int = 5, **kw) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as e:
        sdk(proxy, key).chat.completions.create(model=model, messages=MSG, max_tokens=max_tokens, **kw)
    return e.value


def test_allowed_request_settles_litellm_cost(proxy, bursar_server):
    key, key_id = bursar_server.key("--rpm", "100", "--tpm", "100k", "--budget", "$10")
    raw = sdk(proxy, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG,
                                                                    max_tokens=5)
    assert raw.status_code == 200
    body = raw.parse()
    assert body.usage.prompt_tokens == 6 and body.usage.completion_tokens == 5  # the fake upstream's count
    # bursar's rate-limit headers ride on the success response
    assert raw.headers["x-ratelimit-limit-requests"] == "100"
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    cost = litellm_cost(proxy, raw.headers["x-litellm-call-id"])
    assert cost > 0
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == nano(cost)


def test_stream_settles_litellm_cost(proxy, bursar_server):
    key, key_id = bursar_server.key("--budget", "$10")
    with sdk(proxy, key).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=5, stream=True,
            stream_options={"include_usage": True}) as resp:
        call_id = resp.headers["x-litellm-call-id"]
        chunks = list(resp.parse())
    assert chunks[-1].usage.completion_tokens == 5
    cost = litellm_cost(proxy, call_id)
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == nano(cost) > 0


def test_stream_without_usage_option_still_settles(proxy, bursar_server):
    key, key_id = bursar_server.key("--budget", "$10")
    with sdk(proxy, key).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MSG, max_tokens=3, stream=True) as resp:
        call_id = resp.headers["x-litellm-call-id"]
        list(resp.parse())
    cost = litellm_cost(proxy, call_id)
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == nano(cost) > 0


def assert_deny(e: openai.APIStatusError, status: int, reason: str, *, limits: bool = True,
                retry_after: bool = False) -> None:
    """What every deny looks like to an openai SDK caller: SPEC §8's status, the reason as the
    error type with its status as the code and a message, and bursar's rate-limit headers."""
    assert e.status_code == status, (e.status_code, e.body)
    assert e.body["type"] == reason and e.body["code"] == str(status), e.body
    assert e.body["message"].startswith("bursar: "), e.body
    h = e.response.headers
    if limits:  # the key has RPM and TPM limits: both header groups, and the IETF fields
        for name in ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                     "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                     "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
                     "ratelimit-policy", "ratelimit"):
            assert name in h, (name, dict(h))
    if retry_after:
        assert int(h["retry-after"]) >= 1
    else:
        assert "retry-after" not in h, dict(h)


LIMITS = ("--rpm", "1000", "--tpm", "1m")  # present but never reached: the headers' subject


def test_unknown_key_is_401(proxy):
    e = deny(proxy, "sk-br-" + "x" * 43)
    assert_deny(e, 401, "unknown_key", limits=False)  # an unknown key has no limits to show


def test_non_bursar_key_is_401_before_bursard(proxy):
    e = deny(proxy, "sk-not-a-bursar-key")
    assert e.status_code == 401
    assert e.body["type"] == "unknown_key"


def test_revoked_key_is_refused_on_its_next_request(proxy, bursar_server):
    key, key_id = bursar_server.key(*LIMITS)
    ok = sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=2)
    assert ok.usage.completion_tokens == 2
    bursar_server.run("key", "revoke", str(key_id))
    e = deny(proxy, key)  # the very next request, no wait
    assert_deny(e, 401, "key_revoked", limits=False)


def test_model_not_allowed_is_403(proxy, bursar_server):
    key, _ = bursar_server.key("--models", "gpt-4o-mini", *LIMITS)
    e = deny(proxy, key, model="other-gpt-4o-mini")
    # bursard judges the model before any bucket (SPEC §9), so the answer carries no limits
    assert_deny(e, 403, "model_not_allowed", limits=False)


def test_key_rpm_is_429_with_retry_after(proxy, bursar_server):
    key, _ = bursar_server.key("--rpm", "1", "--tpm", "1m")
    sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=2)
    e = deny(proxy, key)
    assert_deny(e, 429, "key_rpm", retry_after=True)
    assert e.response.headers["x-ratelimit-limit-requests"] == "1"
    assert e.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_key_tpm_is_429_with_retry_after(proxy, bursar_server):
    """A slow request holds ~130 tokens of a 200-token TPM bucket while it runs; a second one
    asking for as many does not fit beside it (it would fit alone: not request_too_large)."""
    import threading
    key, key_id = bursar_server.key("--rpm", "1000", "--tpm", "200")
    first = {}

    def slow():  # the fake upstream answers min(120, 8) tokens after 8 × 0.25 s
        first["r"] = sdk(proxy, key).chat.completions.create(model="slow-gpt-4o-mini", messages=MSG,
                                                             max_tokens=120)
    t = threading.Thread(target=slow)
    t.start()
    try:
        end = time.monotonic() + 30
        while bursar_server.usage(key_id)["reserved"]["count"] == 0:
            assert time.monotonic() < end and t.is_alive(), "the first request was never admitted"
            time.sleep(0.05)
        e = deny(proxy, key, max_tokens=120)
    finally:
        t.join(60)
    assert_deny(e, 429, "key_tpm", retry_after=True)
    h = e.response.headers
    assert h["x-ratelimit-limit-tokens"] == "200"
    assert int(h["x-ratelimit-remaining-tokens"]) < 130
    assert first["r"].usage.completion_tokens == 8


def test_key_budget_is_402(proxy, bursar_server):
    # gpt-4o-mini: 1000 output tokens alone are 600,000 nano-USD, over a $0.0001 budget
    key, key_id = bursar_server.key("--budget", "$0.0001", *LIMITS)
    e = deny(proxy, key, max_tokens=1000)
    assert_deny(e, 402, "key_budget")
    assert bursar_server.usage(key_id)["spend"]["spend_nusd"] == 0


def test_project_budget_is_402(proxy, bursar_server):
    """The key has no budget of its own; its project's monthly budget ($0.0001) is what denies."""
    from conftest import MODELS
    bursar_server.run("project", "create", "E2E small budget", "--models", ",".join(MODELS),
                      "--budget", "$0.0001")
    key, key_id = bursar_server.key(*LIMITS, project="E2E small budget")
    e = deny(proxy, key, max_tokens=1000)
    assert_deny(e, 402, "project_budget")
    assert "project" in e.body["message"]
    # a request the budget covers still passes (the deny was the estimate, not the key)
    ok = sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=5)
    assert ok.usage.completion_tokens == 5
    assert bursar_server.wait_settled(key_id)["spend"]["spend_nusd"] > 0


def test_request_too_large_is_429_without_retry_after(proxy, bursar_server):
    key, _ = bursar_server.key("--tpm", "100")
    with pytest.raises(openai.APIStatusError) as e:
        sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=500)
    assert e.value.status_code == 429 and e.value.body["type"] == "request_too_large"
    assert "retry-after" not in e.value.response.headers


def test_default_max_output_tokens_is_reserved(proxy, bursar_server):
    # no max_tokens: bursar.litellm reserves BURSAR_DEFAULT_MAX_OUTPUT_TOKENS (4096), which a
    # 4000-token TPM limit can never admit
    key, _ = bursar_server.key("--tpm", "4000")
    with pytest.raises(openai.APIStatusError) as e:
        sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert e.value.status_code == 429 and e.value.body["type"] == "request_too_large"


def test_upstream_failure_releases_once_after_retries(proxy, bursar_server, upstream):
    key, key_id = bursar_server.key("--budget", "$10")
    before = len([r for r in upstream.log() if r["path"].startswith("/fail/")])
    with pytest.raises(openai.InternalServerError):
        sdk(proxy, key).chat.completions.create(model="fail-gpt-4o-mini", messages=MSG, max_tokens=5)
    attempts = len([r for r in upstream.log() if r["path"].startswith("/fail/")]) - before
    assert attempts == 3  # num_retries: 2 — LiteLLM retried; bursar saw one CHECK, one RELEASE
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == 0


def test_fallback_settles_once_with_the_fallbacks_cost(proxy, bursar_server):
    key, key_id = bursar_server.key("--budget", "$10")
    raw = sdk(proxy, key).chat.completions.with_raw_response.create(model="fallback-gpt-4o-mini",
                                                                    messages=MSG, max_tokens=4)
    assert raw.status_code == 200
    cost = litellm_cost(proxy, raw.headers["x-litellm-call-id"])
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == nano(cost) > 0


def test_client_disconnect_mid_stream_settles_partial_usage(proxy, bursar_server, upstream):
    key, key_id = bursar_server.key("--budget", "$10")
    with httpx.stream("POST", proxy.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "slow-gpt-4o-mini", "messages": MSG, "stream": True,
                            "stream_options": {"include_usage": True}}, timeout=30) as r:
        assert r.status_code == 200
        call_id = r.headers["x-litellm-call-id"]
        lines = 0
        for line in r.iter_lines():
            lines += bool(line)
            if lines >= 3:
                break  # leave mid-stream: the connection closes
    events = proxy.events(call_id, timeout=20)
    assert len(events) == 1 and events[0]["client_disconnected"] is True
    usage = bursar_server.wait_settled(key_id, timeout=20)
    assert usage["reserved"]["count"] == 0
    # LiteLLM's cost of what was streamed before the disconnect, not the 8-token whole
    assert usage["spend"]["spend_nusd"] == nano(events[0]["response_cost"]) > 0


def test_content_logging_disabled_key_is_redacted(proxy, bursar_server):
    quiet, _ = bursar_server.key("--no-content-logging")
    loud, _ = bursar_server.key()
    ids = {}
    for name, key in (("quiet", quiet), ("loud", loud)):
        raw = httpx.post(proxy.base + "/v1/chat/completions",
                         headers={"Authorization": f"Bearer {key}",
                                  # a caller must not be able to switch redaction back off
                                  "litellm-disable-message-redaction": "true"},
                         json={"model": "gpt-4o-mini", "max_tokens": 3,
                               "messages": [{"role": "user", "content": f"secret words {name}"}]}, timeout=60)
        assert raw.status_code == 200, raw.text
        ids[name] = raw.headers["x-litellm-call-id"]
    quiet_ev = proxy.events(ids["quiet"])[0]
    loud_ev = proxy.events(ids["loud"])[0]
    assert "secret words" not in repr(quiet_ev["kwargs_messages"]) + repr(quiet_ev["slo_messages"])
    assert "tok tok" not in repr(quiet_ev["slo_response"])  # the answer text
    assert quiet_ev["slo_response"]["choices"][0]["message"]["content"] == "redacted-by-litellm"
    assert "tok tok" in repr(loud_ev["slo_response"])
    assert "secret words loud" in repr(loud_ev["slo_messages"])


def test_master_key_model_calls_are_checked_too(proxy):
    from conftest import MASTER_KEY
    e = deny(proxy, MASTER_KEY)
    assert e.status_code == 401 and e.body["type"] == "unknown_key"


def test_key_digest_never_reaches_litellm_logs(proxy, bursar_server):
    """LiteLLM gives every logging integration the identity's token as user_api_key_hash; for a
    bursar key that must not be sha256(secret), bursar's key digest (it can spend the key)."""
    import hashlib
    key, key_id = bursar_server.key()
    raw = sdk(proxy, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG,
                                                                    max_tokens=2)
    ev = proxy.events(raw.headers["x-litellm-call-id"])[0]
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert ev["user_api_key_hash"] and ev["user_api_key_hash"].startswith("brk-")
    assert digest not in proxy.capture.read_text()
    assert digest not in proxy.log.read_text(errors="replace")
    assert key not in proxy.log.read_text(errors="replace")




def _burst(proxies, key: str, per_proxy: int, max_tokens: int) -> list:
    """per_proxy concurrent callers on each proxy at once; [(proxy, status, call_id, body)]."""
    import asyncio

    async def one(proxy, client: httpx.AsyncClient):
        r = await client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG,
                                                              "max_tokens": max_tokens})
        return proxy, r.status_code, r.headers.get("x-litellm-call-id"), r.json()

    async def run():
        clients = [httpx.AsyncClient(base_url=p.base, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                     limits=httpx.Limits(max_connections=per_proxy)) for p in proxies]
        try:
            return await asyncio.gather(*(one(p, c) for p, c in zip(proxies, clients) for _ in range(per_proxy)))
        finally:
            for c in clients:
                await c.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("proxies", ["one", "two"])
def test_concurrent_callers_never_overspend_and_settle_exactly(proxies, proxy, request, bursar_server):
    """50 callers per proxy at once (one proxy, or two sharing bursard) on one key whose budget
    fits about two reservations: bursar admits what the budget covers, denies the rest 402, and
    the key's spend is exactly the sum of LiteLLM's costs of the admitted calls (each SETTLE
    replaces a ~4.8M nano-USD estimate with the ~6k actual, so later callers get in)."""
    ps = [proxy] if proxies == "one" else [proxy, request.getfixturevalue("proxy_b")]
    key, key_id = bursar_server.key("--budget", "$0.01")
    results = _burst(ps, key, 50, 8000)
    ok = [(p, cid) for p, status, cid, _ in results if status == 200]
    denied = [body for _, status, _, body in results if status != 200]
    assert ok, results
    assert all(b["error"]["type"] == "key_budget" and b["error"]["code"] == "402" for b in denied), denied
    usage = bursar_server.wait_settled(key_id, timeout=30)
    assert usage["reserved"]["count"] == 0
    expected = sum(nano(litellm_cost(p, cid)) for p, cid in ok)
    assert usage["spend"]["spend_nusd"] == expected
    assert usage["spend"]["spend_nusd"] <= usage["spend"]["budget_nusd"]
    print(f"\n{proxies} proxy(ies): {len(ok)} admitted, {len(denied)} denied 402, spend {expected} nano-USD")

def test_bursard_unreachable_is_503_and_nothing_reaches_upstream(proxy_without_bursar, upstream):
    before = len(upstream.log())
    e = deny(proxy_without_bursar, "sk-br-" + "y" * 43)
    assert e.status_code == 503 and e.body["type"] == "bursar_unavailable"
    assert e.response.headers["retry-after"] == "1"
    assert len(upstream.log()) == before

def test_proxy_runs_the_installed_package_not_the_source_tree(proxy):
    """The proxy's environment (same interpreter, PYTHONPATH, cwd as conftest gives it) imports
    bursar.litellm from the venv's site-packages: `pip install ./clients/python` + config is all
    a gateway needs."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import conftest
    litellm_bin = os.environ.get("LITELLM_BIN") or str(Path(sys.executable).with_name("litellm"))
    py = str(Path(litellm_bin).with_name("python"))
    env = dict(os.environ, PYTHONPATH=str(conftest.HERE), LITELLM_LOCAL_MODEL_COST_MAP="True")
    r = subprocess.run([py, "-c", "import json, bursar, bursar.litellm; print(json.dumps("
                        "[bursar.__file__, bursar.litellm.__file__]))"],
                       env=env, cwd=str(proxy.capture.parent), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout.strip().splitlines()[-1])
    src = str(conftest.REPO / "clients" / "python")
    assert all("site-packages" in f and not f.startswith(src) for f in files), files


def test_upstream_error_mid_stream_settles_what_was_streamed(proxy, bursar_server, upstream):
    """The upstream sends 3 content chunks, then an error event. The caller got part of the
    answer and then the error; the provider generated (and bills) those tokens and the prompt,
    so bursar.litellm SETTLEs what was streamed — the same amount LiteLLM itself prices for the
    request in its failure event — instead of RELEASE."""
    key, key_id = bursar_server.key("--budget", "$10")
    chunks = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        with sdk(proxy, key).chat.completions.with_streaming_response.create(
                model="break-gpt-4o-mini", messages=MSG, max_tokens=8, stream=True,
                stream_options={"include_usage": True}) as resp:
            call_id = resp.headers["x-litellm-call-id"]
            for c in resp.parse():
                chunks.append(c)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok " * 3
    assert [r["outcome"] for r in upstream.log() if r["path"].startswith("/break")][-1] == "broken"
    failures = proxy.events(call_id, "failure")
    assert len(failures) == 1 and failures[0]["stream"] is True
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == nano(failures[0]["response_cost"]) > 0
    # less than the whole answer's 8 tokens would have cost
    assert usage["spend"]["spend_nusd"] < nano(10 * 0.15e-6 + 8 * 0.6e-6)


def test_stream_failing_before_any_content_releases(proxy, bursar_server, upstream):
    key, key_id = bursar_server.key("--budget", "$10")
    with pytest.raises(openai.APIStatusError):
        with sdk(proxy, key).chat.completions.with_streaming_response.create(
                model="fail-gpt-4o-mini", messages=MSG, max_tokens=8, stream=True) as resp:
            list(resp.parse())
    usage = bursar_server.wait_settled(key_id)
    assert usage["reserved"]["count"] == 0
    assert usage["spend"]["spend_nusd"] == 0


def test_unix_socket_bursar_url(proxy_unix, bursar_server):
    """BURSAR_URL=unix:///…: the same CHECK, headers and SETTLE over bursard's unix socket."""
    key, key_id = bursar_server.key("--rpm", "2", "--budget", "$10")
    raw = sdk(proxy_unix, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG,
                                                                         max_tokens=5)
    assert raw.status_code == 200 and raw.headers["x-ratelimit-remaining-requests"] == "1"
    cost = litellm_cost(proxy_unix, raw.headers["x-litellm-call-id"])
    assert bursar_server.wait_settled(key_id)["spend"]["spend_nusd"] == nano(cost) > 0
    sdk(proxy_unix, key).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=1)
    e = deny(proxy_unix, key)
    assert_deny(e, 429, "key_rpm", limits=False, retry_after=True)
    assert e.response.headers["x-ratelimit-limit-requests"] == "2"


def test_zz_every_admission_was_settled_or_released_exactly_once(proxy, bursar_server):
    """Runs last: over the whole session, bursard received exactly one SETTLE or RELEASE per
    allowed CHECK, and none of them found its reservation already closed."""
    end = time.monotonic() + 15
    while True:
        m = bursar_server.metrics()
        allowed = m['bursar_decisions_total{outcome="allowed"}']
        closed = (m['bursar_frame_duration_seconds_count{op="settle"}']
                  + m['bursar_frame_duration_seconds_count{op="release"}'])
        if closed >= allowed or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert allowed > 0
    assert closed == allowed, m
    assert m['bursar_settlements_total{status="already_settled"}'] == 0
    assert m['bursar_settlements_total{status="already_released"}'] == 0
    assert m['bursar_settlements_total{status="applied"}'] == allowed


def test_mutual_tls_settings_go_together(monkeypatch):
    """BURSAR_TLS_CA/CERT/KEY (a data plane with --listen-tls-*): all three or none; with all
    three the callback's client is made with their TLS context (the clients' TLS itself runs
    against a real bursard in clients/python/tests/test_tls.py)."""
    from bursar._litellm import Settings
    for name in ("BURSAR_TLS_CA", "BURSAR_TLS_CERT", "BURSAR_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert Settings.from_env().tls is None
    monkeypatch.setenv("BURSAR_TLS_CA", "/etc/bursar/ca.pem")
    with pytest.raises(ValueError, match="BURSAR_TLS_CA, BURSAR_TLS_CERT and BURSAR_TLS_KEY go together"):
        Settings.from_env()
    monkeypatch.setenv("BURSAR_TLS_CERT", "/etc/bursar/gateway.pem")
    monkeypatch.setenv("BURSAR_TLS_KEY", "/etc/bursar/gateway.key")
    assert Settings.from_env().tls == ("/etc/bursar/ca.pem", "/etc/bursar/gateway.pem", "/etc/bursar/gateway.key")
