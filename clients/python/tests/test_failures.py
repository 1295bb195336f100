"""Failure modes a real bursard cannot be made to show on demand: a server that never answers,
ERROR frames, broken streams, non-definitive SETTLE statuses. Plus input validation and the
headers helper, which need no server."""
from __future__ import annotations

import asyncio
import time

import pytest

import bursar
from bursar import DenyReason, ReservationStatus, protocol as p
from bursar.types import CheckResult, INT64_MAX

from .helpers import Fake, Silent

KW = dict(key="sk-br-x", model="gpt-4o-mini", input_tokens=1, max_output_tokens=1,
          estimated_cost=1)
RES = bursar.parse_reservation("9b2e4f6a8c0d1e3f5a7b9c0d2e4f6a8b")  # opaque to clients (SPEC §5)


def allow(rid: int) -> bytes:
    r = CheckResult(True, DenyReason.NONE, 0, 0, RES, 7, 1, 1, 0, 0, 0, 0, 0, 0,
                    INT64_MAX, 0, INT64_MAX, 0, INT64_MAX)
    return p.encode_check_result(rid, r)


def test_deadline_exceeded_async():
    srv = Silent()
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=0.2) as c:
                t0 = time.monotonic()
                with pytest.raises(bursar.DeadlineExceeded):
                    await c.check(**KW)
                elapsed = time.monotonic() - t0
                assert 0.19 <= elapsed < 0.6, elapsed
                # many at once, all expire, none hangs
                res = await asyncio.gather(*[c.check(**KW) for _ in range(50)],
                                           return_exceptions=True)
                assert all(isinstance(e, bursar.DeadlineExceeded) for e in res)
                assert isinstance(res[0], TimeoutError)
        asyncio.run(go())
    finally:
        srv.close()


def test_deadline_exceeded_sync_and_fail_open():
    srv = Silent()
    try:
        with bursar.Client(srv.url, timeout=0.2) as c:
            t0 = time.monotonic()
            with pytest.raises(bursar.DeadlineExceeded):
                c.check(**KW)
            assert time.monotonic() - t0 < 0.6
        with bursar.Client(srv.url, timeout=0.1, fail_open=True) as c:
            r = c.check(**KW)
            assert r.allowed and r.fail_open and r.reservation == 0
            assert c.settle(r.reservation, input_tokens=1, output_tokens=1, cost=1).fail_open

        async def go():
            async with bursar.AsyncClient(srv.url, timeout=0.1, fail_open=True) as c:
                r = await c.check(**KW)
                assert r.allowed and r.fail_open and bursar.rate_limit_headers(r) == {}
        asyncio.run(go())
    finally:
        srv.close()


def test_unreachable_is_an_error_not_an_allow():
    port = Silent()  # take a port, then free it: nothing listens there
    url = port.url
    port.close()

    async def go():
        async with bursar.AsyncClient(url, timeout=0.5) as c:
            with pytest.raises(bursar.Unreachable):
                await c.check(**KW)
            with pytest.raises(bursar.Unreachable):  # backing off: fails at once
                await c.check(**KW)
    asyncio.run(go())
    with bursar.Client(url, timeout=0.5) as c:
        with pytest.raises(bursar.Unreachable):
            c.check(**KW)


def test_server_error_frame_raises_protocol_error():
    def answer(f):
        return p.encode_error(f.request_id, 9, "boom")
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=1) as c:
                with pytest.raises(bursar.ProtocolError) as e:
                    await c.check(**KW)
                assert e.value.code is bursar.ErrorCode.INTERNAL_ERROR and e.value.message == "boom"
                assert c.connected == 0  # the connection was closed after the ERROR
        asyncio.run(go())
        with bursar.Client(srv.url) as c:
            with pytest.raises(bursar.ProtocolError) as e:
                c.check(**KW)
            assert e.value.code == 9
    finally:
        srv.close()


def test_invalid_answer_fails_in_flight_calls_clearly():
    def answer(f):
        return b"XX" + b"\x00" * 30  # bad magic
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=1) as c:
                res = await asyncio.gather(*[c.check(**KW) for _ in range(5)],
                                           return_exceptions=True)
                assert all(isinstance(e, bursar.ConnectionLost) for e in res), res
                assert isinstance(res[0].__cause__, bursar.ProtocolError)
                assert res[0].__cause__.code is bursar.ErrorCode.BAD_MAGIC
        asyncio.run(go())
        with bursar.Client(srv.url) as c:
            with pytest.raises(bursar.ConnectionLost) as e:
                c.check(**KW)
            assert e.value.__cause__.code is bursar.ErrorCode.BAD_MAGIC
    finally:
        srv.close()


def test_answers_matched_by_request_id_not_order():
    """The fake answers requests in reverse order of arrival; every caller still gets its own."""
    held = []

    def answer(f):
        held.append(f)
        if len(held) < 10:
            return None
        out = b""
        for g in reversed(held):
            r = CheckResult(True, DenyReason.NONE, 0, 0, RES + g.body.input_tokens,
                            7, 1, g.body.input_tokens, 0, 0, 0, 0, 0, 0, INT64_MAX, 0, INT64_MAX, 0, INT64_MAX)
            out += p.encode_check_result(g.request_id, r)
        return out
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=1, timeout=2) as c:
                kw = dict(KW)
                calls = []
                for i in range(1, 11):
                    kw["input_tokens"] = i
                    calls.append(c.check(**kw))
                return await asyncio.gather(*calls)
        results = asyncio.run(go())
        assert [r.key_id for r in results] == list(range(1, 11))
    finally:
        srv.close()


def test_settle_retries_overloaded_then_applied():
    seen = []

    def answer(f):
        seen.append(f)
        status = 6 if len(seen) == 1 else (5 if len(seen) == 2 else 0)
        return p.encode_settle_result(f.request_id, status, -5, -1)
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url) as c:
                return await c.settle(RES, input_tokens=1, output_tokens=2, cost=3)
        s = asyncio.run(go())
        assert s.status is ReservationStatus.APPLIED and s.attempts == 3
        # every attempt carried the same reservation and usage
        assert [f.body for f in seen] == [p.SettleRequest(RES, 1, 2, 3)] * 3
        seen.clear()
        with bursar.Client(srv.url) as c:
            s = c.settle(RES, input_tokens=1, output_tokens=2, cost=3)
        assert s.attempts == 3 and s.ok
    finally:
        srv.close()


def test_settle_gives_up_after_budget():
    def answer(f):
        return p.encode_release_result(f.request_id, 6, 0, 0)
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, settle_timeout=0.3) as c:
                t0 = time.monotonic()
                with pytest.raises(bursar.Overloaded) as e:
                    await c.release(RES)
                assert time.monotonic() - t0 < 0.6
                assert e.value.result.status is ReservationStatus.OVERLOADED
                assert e.value.result.attempts > 1
        asyncio.run(go())
    finally:
        srv.close()


def test_check_is_never_retried():
    seen = []

    def answer(f):
        seen.append(f)
        return None  # never answers
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=0.2) as c:
                with pytest.raises(bursar.DeadlineExceeded):
                    await c.check(**KW)
        asyncio.run(go())
        assert len(seen) == 1
    finally:
        srv.close()


def test_late_allowed_answer_is_released():
    """An allowed CHECK answered after its deadline: the client RELEASEs it itself."""
    seen = []

    def answer(f):
        seen.append(f)
        if f.type == p.FrameType.CHECK:
            time.sleep(0.3)  # past the caller's deadline
            return allow(f.request_id)
        return p.encode_release_result(f.request_id, 0, -1, -2)
    srv = Fake(answer)
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=1, timeout=0.1) as c:
                with pytest.raises(bursar.DeadlineExceeded):
                    await c.check(**KW)
                end = time.monotonic() + 3
                while c.late_releases == 0 or len(seen) < 2:
                    assert time.monotonic() < end
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.05)
        asyncio.run(go())
        assert seen[1].type == p.FrameType.RELEASE and seen[1].body.reservation == RES
    finally:
        srv.close()


@pytest.mark.parametrize("kw,field", [
    (dict(model="m" * 65), "model"),
    (dict(model="é" * 33), "model"),  # 66 bytes of UTF-8
    (dict(model=""), "model"),
    (dict(model="a\x00b"), "model"),
    (dict(input_tokens=-1), "input_tokens"),
    (dict(max_output_tokens=2 ** 32), "max_output_tokens"),
    (dict(input_tokens=1.5), "input_tokens"),
    (dict(estimated_cost=-2), "estimated_cost"),
    (dict(estimated_cost=2 ** 53), "estimated_cost"),
    (dict(key=None, digest=b"\x00" * 31), "digest"),
    (dict(key=None, digest=None), "key"),
])
def test_bad_input_names_the_field(kw, field):
    args = dict(KW)
    args.update(kw)
    with bursar.Client("tcp://127.0.0.1:9") as c:  # never contacted: refused before sending
        with pytest.raises(ValueError, match=field):
            c.check(**args)

    async def go():
        async with bursar.AsyncClient("tcp://127.0.0.1:9") as c:
            with pytest.raises(ValueError, match=field):
                await c.check(**args)
    asyncio.run(go())


def test_model_of_exactly_64_bytes_is_accepted():
    assert p.model_field("a" * 64) == b"a" * 64
    assert p.model_field("é" * 32) == "é".encode() * 32


@pytest.mark.parametrize("call,field", [
    (lambda c: c.settle(0, input_tokens=1, output_tokens=1, cost=1), "reservation"),
    (lambda c: c.settle(RES, input_tokens=-3, output_tokens=1, cost=1), "input_tokens"),
    (lambda c: c.settle(RES, input_tokens=1, output_tokens=1, cost=2 ** 53), "cost"),
    (lambda c: c.release(0), "reservation"),  # all zero: a denied CHECK's
    (lambda c: c.release(1 << 128), "reservation"),  # more than 16 bytes
    (lambda c: c.release(-1), "reservation"),
    (lambda c: c.release("9b2e4f6a8c0d1e3f5a7b9c0d2e4f6a8b"), "reservation"),  # the text form
])
def test_bad_settle_input_names_the_field(call, field):
    with bursar.Client("tcp://127.0.0.1:9") as c:
        with pytest.raises(ValueError, match=field):
            call(c)


def test_bad_client_arguments():
    with pytest.raises(ValueError, match="url"):
        bursar.Client("http://x:1")
    with pytest.raises(ValueError, match="pool_size"):
        bursar.Client("tcp://127.0.0.1:1", pool_size=0)
    with pytest.raises(ValueError, match="timeout"):
        bursar.Client("tcp://127.0.0.1:1", timeout=0)


def test_digest_is_sha256_of_the_secret():
    # SPEC §16: key sk-br-example-0001
    assert bursar.digest("sk-br-example-0001").hex() == \
        "eca5eab9121dd2e59a132e42815689aec87dc99bc6eec316281bfac9a9a098f7"
    assert bursar.digest(b"sk-br-example-0001") == bursar.digest("sk-br-example-0001")


def test_deny_reason_table():
    assert [r.http_status for r in DenyReason] == [
        200, 401, 401, 401, 403, 403, 403, 403, 429, 429, 429, 429, 402, 402, 402, 429, 503, 503, 429, 403]
    assert DenyReason.KEY_LOOKUPS_THROTTLED.name_str == "key_lookups_throttled"
    assert DenyReason.PRICE_UNKNOWN.name_str == "price_unknown" and not DenyReason.PRICE_UNKNOWN.retryable
    assert DenyReason.KEY_RPM.retryable and not DenyReason.KEY_BUDGET.retryable
    assert [s.definitive for s in ReservationStatus] == [True] * 5 + [False] * 2


def _result(**kw):
    base = dict(allowed=True, reason=DenyReason.NONE, key_flags=0, retry_after_ms=0,
                reservation=RES, org_id=7, project_id=1, key_id=1, requests_limit=60,
                requests_remaining=59, requests_reset_ms=1000, tokens_limit=20000,
                tokens_remaining=18000, tokens_reset_ms=6000, key_budget_remaining=INT64_MAX,
                key_budget_resets_at_ms=0, project_budget_remaining=INT64_MAX,
                project_budget_resets_at_ms=0, org_credits_remaining=INT64_MAX)
    base.update(kw)
    return CheckResult(**base)


def test_headers_allowed():
    assert bursar.rate_limit_headers(_result()) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "20000",
        "x-ratelimit-remaining-tokens": "18000",
        "x-ratelimit-reset-tokens": "6s",
        "RateLimit-Policy": '"requests";q=60;w=60, "tokens";q=20000;w=60',
        "RateLimit": '"requests";r=59;t=1, "tokens";r=18000;t=6',
    }


def test_headers_denied():
    r = _result(allowed=False, reason=DenyReason.KEY_TPM, retry_after_ms=1001, reservation=0,
                requests_limit=0, requests_remaining=0, requests_reset_ms=0,
                tokens_remaining=12, tokens_reset_ms=61500)
    assert bursar.rate_limit_headers(r) == {
        "x-ratelimit-limit-tokens": "20000",
        "x-ratelimit-remaining-tokens": "12",
        "x-ratelimit-reset-tokens": "1m1.5s",
        "RateLimit-Policy": '"tokens";q=20000;w=60',
        "RateLimit": '"tokens";r=12;t=62',
        "Retry-After": "2",
    }
    # overloaded carries only retry_after_ms: Retry-After and nothing invented
    o = _result(allowed=False, reason=DenyReason.OVERLOADED, retry_after_ms=50, requests_limit=0,
                tokens_limit=0)
    assert bursar.rate_limit_headers(o) == {"Retry-After": "1"}


def test_server_refusing_connections_makes_the_pool_back_off():
    """A server that closes every connection at once with too_many_connections: calls fail with
    Unreachable/ConnectionLost and the client backs off instead of reconnecting in a loop."""
    import socket as s

    class Refuser(Silent):
        accepted = 0

        def handle(self, c):
            Refuser.accepted += 1
            try:
                c.sendall(p.encode_error(0, 10, "too many connections"))
                c.shutdown(s.SHUT_RDWR)
            except OSError:
                pass
            c.close()
    srv = Refuser()
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=0.2) as c:
                end = time.monotonic() + 1.0
                failures = 0
                while time.monotonic() < end:
                    with pytest.raises((bursar.Unreachable, bursar.DeadlineExceeded)):
                        await c.check(**KW)
                    failures += 1
                    await asyncio.sleep(0.001)
                return failures
        failures = asyncio.run(go())
        assert failures > 50
        assert Refuser.accepted < 25, Refuser.accepted  # backoff 20 ms … 1 s, not one per call

        Refuser.accepted = 0
        with bursar.Client(srv.url, timeout=0.2) as c:
            end = time.monotonic() + 1.0
            failures = 0
            while time.monotonic() < end:
                with pytest.raises(bursar.Unreachable) as e:
                    c.check(**KW)
                if isinstance(e.value, bursar.ConnectionLost):
                    assert e.value.__cause__.code is bursar.ErrorCode.TOO_MANY_CONNECTIONS
                failures += 1
                time.sleep(0.001)
        assert failures > 50
        assert Refuser.accepted < 25, Refuser.accepted
    finally:
        srv.close()
