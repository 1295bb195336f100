"""The clients against a real bursard on a real redis-server (fixtures in conftest.py)."""
from __future__ import annotations

import asyncio
import time

import pytest

import bursar
from bursar import DenyReason, ReservationStatus

from .helpers import Proxy

MODEL = "gpt-4o-mini"


def run(coro):
    return asyncio.run(coro)


def check_kwargs(secret, **kw):
    args = dict(key=secret, model=MODEL, input_tokens=100, max_output_tokens=50,
                estimated_cost=10_000)
    args.update(kw)
    return args


def test_allowed_check_then_settle(stack):
    secret, key_id = stack.key("--rpm", "100", "--tpm", "100k", "--budget", "10")

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url) as c:
            r = await c.check(**check_kwargs(secret))
            assert r.allowed and r.reason is DenyReason.NONE and r.http_status == 200
            assert r.key_id == key_id and r.org_id == stack.org_id
            assert 0 < r.reservation < 1 << 128 and len(r.reservation_hex) == 32
            assert r.requests_limit == 100 and r.requests_remaining == 99
            assert r.tokens_limit == 100_000 and r.tokens_remaining == 100_000 - 150
            assert r.key_budget_remaining == 10_000_000_000 - 10_000
            assert r.project_budget_remaining == bursar.INT64_MAX  # project has no budget
            assert not r.content_logging_disabled and not r.fail_open
            s = await c.settle(r.reservation, input_tokens=90, output_tokens=30, cost=7_000)
            assert s.status is ReservationStatus.APPLIED and s.ok and s.attempts == 1
            assert (s.cost_delta, s.token_delta) == (7_000 - 10_000, 120 - 150)
            again = await c.settle(r.reservation, input_tokens=90, output_tokens=30, cost=7_000)
            assert again.status is ReservationStatus.ALREADY_SETTLED and again.ok
            rel = await c.release(r.reservation)
            assert rel.status is ReservationStatus.ALREADY_SETTLED and not rel.ok
    run(go())
    assert stack.spend(key_id) == 7_000


def test_release_returns_reservation(stack):
    secret, key_id = stack.key("--budget", "10")
    with bursar.Client(stack.bursard.tcp_url) as c:
        r = c.check(**check_kwargs(secret, estimated_cost=55_555))
        assert r.allowed
        assert stack.usage(key_id)["reserved"]["cost_nusd"] == 55_555
        s = c.release(r.reservation)
        assert s.status is ReservationStatus.APPLIED
        assert s.cost_delta == -55_555 and s.token_delta == -150 and s.ok
        assert c.release(r.reservation).status is ReservationStatus.ALREADY_RELEASED
        settle = c.settle(r.reservation, input_tokens=1, output_tokens=1, cost=1)
        assert settle.status is ReservationStatus.ALREADY_RELEASED and not settle.ok
    assert stack.spend(key_id) == 0
    assert stack.usage(key_id)["reserved"]["cost_nusd"] == 0


def test_unknown_key(stack):
    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url) as c:
            return await c.check(**check_kwargs("sk-br-does-not-exist"))
    r = run(go())
    assert not r.allowed
    assert r.reason is DenyReason.UNKNOWN_KEY and r.reason.name_str == "unknown_key"
    assert r.http_status == 401 and r.reason.http_status == 401
    assert r.reservation == 0 and r.org_id == 0 and r.key_id == 0


def test_rpm_limit_denies_with_retry_after(stack):
    secret, key_id = stack.key("--rpm", "2")

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url) as c:
            return [await c.check(**check_kwargs(secret)) for _ in range(3)]
    a, b, denied = run(go())
    assert a.allowed and b.allowed
    assert not denied.allowed and denied.reason is DenyReason.KEY_RPM
    assert denied.reason.name_str == "key_rpm" and denied.http_status == 429
    assert denied.retry_after_ms > 0 and denied.reservation == 0
    assert denied.requests_limit == 2 and denied.requests_remaining == 0
    h = bursar.rate_limit_headers(denied)
    assert h["Retry-After"] == str(-(-denied.retry_after_ms // 1000))
    assert h["x-ratelimit-limit-requests"] == "2"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-tokens" not in h  # no TPM limit: omitted (SPEC §7.1)
    ha = bursar.rate_limit_headers(a)
    assert "Retry-After" not in ha and ha["x-ratelimit-remaining-requests"] == "1"
    assert ha["RateLimit-Policy"] == '"requests";q=2;w=60'
    assert ha["RateLimit"].startswith('"requests";r=1;t=')


def test_model_not_allowed(stack):
    secret, _ = stack.key("--models", "gpt-4o")
    with bursar.Client(stack.bursard.tcp_url) as c:
        assert c.check(**check_kwargs(secret, model="gpt-4o")).allowed
        r = c.check(**check_kwargs(secret, model="gpt-4o-mini"))
    assert r.reason is DenyReason.MODEL_NOT_ALLOWED and r.http_status == 403


def test_budget(stack):
    secret, key_id = stack.key("--budget", "0.00001")  # 10,000 nano-USD
    with bursar.Client(stack.bursard.tcp_url) as c:
        ok = c.check(**check_kwargs(secret, estimated_cost=6_000))
        assert ok.allowed and ok.key_budget_remaining == 4_000
        r = c.check(**check_kwargs(secret, estimated_cost=6_000))
        assert r.reason is DenyReason.KEY_BUDGET and r.http_status == 402
        assert r.key_budget_remaining == 4_000 and r.key_budget_resets_at_ms > 0
        assert c.settle(ok.reservation, input_tokens=1, output_tokens=1, cost=1_000).ok
        assert c.check(**check_kwargs(secret, estimated_cost=6_000)).allowed
    assert bursar.rate_limit_headers(r).get("Retry-After") is None


def test_content_logging_flag(stack):
    secret, _ = stack.key("--no-content-logging")
    with bursar.Client(stack.bursard.tcp_url) as c:
        r = c.check(**check_kwargs(secret))
    assert r.allowed and r.content_logging_disabled and r.key_flags & 1


def test_pipelining_200_on_one_connection(stack):
    secret, key_id = stack.key()
    good = bursar.digest(secret)

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url, pool_size=1, timeout=5) as c:
            calls = []
            for i in range(200):
                if i % 3 == 0:
                    calls.append(c.check(digest=bytes([i]) * 32, model=MODEL, input_tokens=i,
                                         max_output_tokens=0, estimated_cost=0))
                else:
                    calls.append(c.check(digest=good, model=MODEL, input_tokens=i,
                                         max_output_tokens=0, estimated_cost=i))
            results = await asyncio.gather(*calls)
            assert c.connected == 1
            conn = c._conns[0]
            assert conn.next_id >= 200 and not conn.pending
            await asyncio.gather(*[c.release(r.reservation) for r in results if r.allowed])
            return results
    results = run(go())
    for i, r in enumerate(results):
        if i % 3 == 0:
            assert r.reason is DenyReason.UNKNOWN_KEY, i
        else:
            assert r.allowed and r.key_id == key_id, i
    reservations = [r.reservation for r in results if r.allowed]
    assert len(set(reservations)) == len(reservations) == 133
    assert stack.usage(key_id)["reserved"]["count"] == 0


def test_unix_socket(stack):
    secret, key_id = stack.key()

    async def go():
        async with bursar.AsyncClient(stack.bursard.unix_url) as c:
            r = await c.check(**check_kwargs(secret))
            s = await c.settle(r.reservation, input_tokens=1, output_tokens=1, cost=123)
            await c.ping()
            return r, s
    r, s = run(go())
    assert r.allowed and r.key_id == key_id and s.status is ReservationStatus.APPLIED
    with bursar.Client(stack.bursard.unix_url) as c:
        c.ping()
        r2 = c.check(**check_kwargs(secret))
        assert r2.allowed and c.release(r2.reservation).ok
    assert stack.spend(key_id) == 123


def test_sync_client_from_threads(stack):
    import concurrent.futures as cf
    secret, key_id = stack.key()
    with bursar.Client(stack.bursard.tcp_url, pool_size=3, timeout=5) as c:
        def one(i):
            r = c.check(**check_kwargs(secret, estimated_cost=1000 + i))
            assert r.allowed
            return c.settle(r.reservation, input_tokens=1, output_tokens=1, cost=10).status
        with cf.ThreadPoolExecutor(8) as ex:
            statuses = list(ex.map(one, range(40)))
    assert statuses == [ReservationStatus.APPLIED] * 40
    assert stack.spend(key_id) == 400


def test_killed_bursard_then_reconnect(stack):
    b = stack.another_bursard("killme")
    secret, _ = stack.key()

    async def go():
        async with bursar.AsyncClient(b.tcp_url, timeout=1) as c:
            assert (await c.check(**check_kwargs(secret))).allowed
            b.kill()
            with pytest.raises(bursar.Unreachable):
                await c.check(**check_kwargs(secret))
            with pytest.raises(bursar.Unreachable):  # down: connect refused, or backing off
                await c.check(**check_kwargs(secret))
            b.start()
            end = time.monotonic() + 15
            while True:
                try:
                    r = await c.check(**check_kwargs(secret))
                    break
                except bursar.Unreachable:
                    assert time.monotonic() < end, "client never reconnected"
                    await asyncio.sleep(0.05)
            assert r.allowed and c.connected >= 1
    run(go())

    # the blocking client too
    with bursar.Client(b.tcp_url, timeout=1) as c:
        assert c.check(**check_kwargs(secret)).allowed
        b.kill()
        with pytest.raises(bursar.Unreachable):
            c.check(**check_kwargs(secret))
        b.start()
        end = time.monotonic() + 15
        while True:
            try:
                assert c.check(**check_kwargs(secret)).allowed
                break
            except bursar.Unreachable:
                assert time.monotonic() < end, "client never reconnected"
                time.sleep(0.05)


def test_settle_retried_after_connection_break_applies_once(stack):
    secret, key_id = stack.key("--budget", "10")
    proxy = Proxy(stack.bursard.port)
    try:
        async def go():
            async with bursar.AsyncClient(proxy.url, pool_size=1, timeout=1) as c:
                r = await c.check(**check_kwargs(secret, estimated_cost=50_000))
                assert r.allowed
                proxy.cut_after_answer_type = 0x82  # SETTLE applied, its answer lost
                s = await c.settle(r.reservation, input_tokens=10, output_tokens=10, cost=31_337)
                return s
        s = run(go())
        assert proxy.cuts == 1
        assert s.attempts >= 2 and s.status is ReservationStatus.ALREADY_SETTLED and s.ok
        assert stack.spend(key_id) == 31_337  # applied exactly once

        with bursar.Client(proxy.url, timeout=1) as c:
            r = c.check(**check_kwargs(secret, estimated_cost=50_000))
            proxy.cut_after_answer_type = 0x82
            s = c.settle(r.reservation, input_tokens=10, output_tokens=10, cost=1_000)
        assert proxy.cuts == 2 and s.attempts >= 2 and s.ok
        assert stack.spend(key_id) == 32_337
    finally:
        proxy.close()


def test_release_retried_after_connection_break_applies_once(stack):
    secret, key_id = stack.key("--budget", "10")
    proxy = Proxy(stack.bursard.port)
    try:
        async def go():
            async with bursar.AsyncClient(proxy.url, pool_size=1, timeout=1) as c:
                r = await c.check(**check_kwargs(secret, estimated_cost=77_000))
                assert r.allowed
                assert stack.usage(key_id)["reserved"]["cost_nusd"] == 77_000
                proxy.cut_after_answer_type = 0x83  # RELEASE applied, its answer lost
                return await c.release(r.reservation)
        s = run(go())
        assert proxy.cuts == 1
        assert s.attempts >= 2 and s.status is ReservationStatus.ALREADY_RELEASED and s.ok
        usage = stack.usage(key_id)
        assert usage["reserved"]["cost_nusd"] == 0 and usage["spend"]["spend_nusd"] == 0
    finally:
        proxy.close()


def test_overloaded_check_is_a_result_not_an_exception(stack):
    """Past its per-connection in-flight bound bursard answers CHECK `overloaded` at once
    (SPEC §15.1): a deny with retry_after_ms and HTTP 503, never an exception."""
    secret, _ = stack.key()
    b = stack.another_bursard("tight")
    b.stop()
    b.extra_args = ["--max-in-flight-per-connection", "4"]
    b.start()

    async def go():
        async with bursar.AsyncClient(b.tcp_url, pool_size=1, timeout=5) as c:
            rs = await asyncio.gather(*[c.check(**check_kwargs(secret)) for _ in range(100)])
            await asyncio.gather(*[c.release(r.reservation) for r in rs if r.allowed])
            return rs
    rs = run(go())
    over = [r for r in rs if not r.allowed]
    assert over and all(r.reason is DenyReason.OVERLOADED for r in over)
    assert all(r.http_status == 503 and r.retry_after_ms > 0 for r in over)
    assert any(r.allowed for r in rs)


# -- reservation ids are capabilities; gateway credentials (SPEC §5, §6.5) ----------------------

def test_reservation_ids_are_opaque(stack):
    """Ids of consecutive reservations share nothing a client could use; an id altered by one
    bit, or made up, names no reservation (status unknown) and changes nothing."""
    secret, key_id = stack.key("--budget", "10")
    with bursar.Client(stack.bursard.tcp_url) as c:
        a = c.check(**check_kwargs(secret, estimated_cost=1_000))
        b = c.check(**check_kwargs(secret, estimated_cost=1_000))
        assert a.allowed and b.allowed and a.reservation != b.reservation
        # the first 8 bytes are no longer the organization (SPEC §14, 2026-12-04)
        assert a.reservation >> 64 != stack.org_id or b.reservation >> 64 != stack.org_id
        for forged in (a.reservation ^ 1, a.reservation + 1, (stack.org_id << 64) | 1,
                       bursar.parse_reservation("0123456789abcdef0123456789abcdef")):
            s = c.settle(forged, input_tokens=1, output_tokens=1, cost=999_999)
            assert s.status is ReservationStatus.UNKNOWN and s.cost_delta == 0, forged
            assert c.release(forged).status is ReservationStatus.UNKNOWN
        # the real ones, copied back unchanged (here through their text form), still work
        assert c.settle(bursar.parse_reservation(a.reservation_hex), input_tokens=1, output_tokens=1,
                        cost=700).status is ReservationStatus.APPLIED
        assert c.release(b.reservation).status is ReservationStatus.APPLIED
    assert stack.spend(key_id) == 700
    assert stack.usage(key_id)["reserved"]["count"] == 0


def test_gateway_credential_accepted(stack):
    cred = stack.gateway_credential("gw-accepted", [stack.org_id])
    assert cred["secret"].startswith("bgw_") and cred["organizations"] == [stack.org_id]
    secret, key_id = stack.key()

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url, pool_size=2, credential=cred["secret"]) as c:
            await c.ping()
            rs = await asyncio.gather(*[c.check(**check_kwargs(secret)) for _ in range(10)])
            assert all(r.allowed and r.key_id == key_id for r in rs)
            settled = await asyncio.gather(*[c.settle(r.reservation, input_tokens=1, output_tokens=1, cost=5)
                                             for r in rs])
            assert all(s.status is ReservationStatus.APPLIED for s in settled)
    run(go())
    with bursar.Client(stack.bursard.unix_url, credential=cred["secret"]) as c:
        c.ping()
        r = c.check(**check_kwargs(secret))
        assert r.allowed and c.release(r.reservation).status is ReservationStatus.APPLIED
    assert stack.spend(key_id) == 50
    status, listed = stack.admin("GET", "/v1/gateway-credentials", token=stack.operator_token)
    assert status == 200
    mine = [c for c in listed["credentials"] if c["id"] == cred["id"]]
    assert len(mine) == 1 and "secret" not in mine[0] and mine[0]["name"] == "gw-accepted"


def test_refused_gateway_credential_raises_unauthorized(stack):
    secret, key_id = stack.key()
    unknown = "bgw_" + "n" * 43

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url, fail_open=True, credential=unknown) as c:
            with pytest.raises(bursar.Unauthorized) as e:
                await c.check(**check_kwargs(secret))
            assert e.value.code is bursar.ErrorCode.UNAUTHORIZED
            assert "refused the gateway credential" in str(e.value)
            assert c.connected == 0
    run(go())
    with bursar.Client(stack.bursard.tcp_url, fail_open=True, credential=unknown) as c:
        with pytest.raises(bursar.Unauthorized):
            c.check(**check_kwargs(secret))
    assert stack.usage(key_id)["reserved"]["count"] == 0  # nothing was evaluated

    # revoked: refused on a new connection, and ends the connections that presented it
    cred = stack.gateway_credential("gw-revoked", [stack.org_id])
    with bursar.Client(stack.bursard.tcp_url, pool_size=1, timeout=2, credential=cred["secret"]) as c:
        probe = dict(check_kwargs(secret), key=None, digest=b"\x01" * 32)  # unknown_key: nothing reserved
        assert c.check(**probe).reason is DenyReason.UNKNOWN_KEY
        stack.revoke_gateway_credential(cred["id"])
        end = time.monotonic() + 10  # at once through pub/sub, within 5 s without it
        while True:
            try:
                r = c.check(**probe)
            except bursar.Unauthorized:
                break
            except bursar.ConnectionLost:
                pass  # closed: the next connection presents the revoked credential again
            else:
                assert r.reason is DenyReason.UNKNOWN_KEY
            assert time.monotonic() < end, "the revoked credential's connection kept serving"
            time.sleep(0.1)
    with bursar.Client(stack.bursard.tcp_url, credential=cred["secret"]) as c:
        with pytest.raises(bursar.Unauthorized):
            c.check(**check_kwargs(secret))


def test_gateway_credential_serves_only_its_organizations(stack):
    other = stack.other_org()
    secret_a, _ = stack.key()
    cred = stack.gateway_credential("gw-a", [stack.org_id])
    # a reservation of organization B, made on a connection without a credential
    with bursar.Client(stack.bursard.tcp_url) as plain:
        rb = plain.check(**check_kwargs(other.secret, estimated_cost=40_000))
        assert rb.allowed and rb.org_id == other.org_id

    async def go():
        async with bursar.AsyncClient(stack.bursard.tcp_url, credential=cred["secret"]) as c:
            ra = await c.check(**check_kwargs(secret_a))
            assert ra.allowed and ra.org_id == stack.org_id
            denied = await c.check(**check_kwargs(other.secret))
            assert not denied.allowed and denied.reason is DenyReason.UNKNOWN_KEY
            assert (denied.org_id, denied.project_id, denied.key_id, denied.reservation) == (0, 0, 0, 0)
            s = await c.settle(rb.reservation, input_tokens=1, output_tokens=1, cost=1)
            assert s.status is ReservationStatus.UNKNOWN and (s.cost_delta, s.token_delta) == (0, 0)
            assert (await c.release(rb.reservation)).status is ReservationStatus.UNKNOWN
            assert (await c.release(ra.reservation)).status is ReservationStatus.APPLIED
    run(go())
    usage_b = stack.ctl("usage", "key", str(other.key_id), token=other.token)
    assert usage_b["reserved"]["cost_nusd"] == 40_000  # untouched
    # B's reservation settles where B is served: a credential for both organizations
    both = stack.gateway_credential("gw-ab", [stack.org_id, other.org_id])
    with bursar.Client(stack.bursard.tcp_url, credential=both["secret"]) as c:
        s = c.settle(rb.reservation, input_tokens=1, output_tokens=1, cost=1_234)
        assert s.status is ReservationStatus.APPLIED and s.cost_delta == 1_234 - 40_000
        ra = c.check(**check_kwargs(secret_a))
        assert ra.allowed and c.release(ra.reservation).ok
    assert stack.ctl("usage", "key", str(other.key_id), token=other.token)["spend"]["spend_nusd"] == 1_234


def test_bursard_requiring_gateway_credentials(stack):
    b = stack.another_bursard("authreq", ["--data-plane-auth", "required"])
    secret, _ = stack.key()
    cred = stack.gateway_credential("gw-required", [stack.org_id])
    with bursar.Client(b.tcp_url, fail_open=True) as c:
        c.ping()  # PING is always answered
        with pytest.raises(bursar.Unauthorized) as e:
            c.check(**check_kwargs(secret))
        assert not e.value.credential_sent and "requires a gateway credential" in str(e.value)

    async def go():
        async with bursar.AsyncClient(b.tcp_url, credential=cred["secret"]) as c:
            r = await c.check(**check_kwargs(secret))
            assert r.allowed and (await c.release(r.reservation)).ok
    run(go())
