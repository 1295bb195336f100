"""Gateway credentials (SPEC §6.5) against scripted fake servers: AUTH as the first frame of
every connection, a refused credential, one revoked while in use, a bursard that requires one,
and a bursard that does not know AUTH. A real bursard's side is in test_integration.py."""
from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

import bursar
from bursar import DenyReason, protocol as p
from bursar.types import INT64_MAX, CheckResult

from .helpers import Fake, Silent

CREDENTIAL = "bgw_test-credential-0001"
DIGEST = hashlib.sha256(CREDENTIAL.encode("utf-8")).digest()
KW = dict(key="sk-br-x", model="gpt-4o-mini", input_tokens=1, max_output_tokens=1,
          estimated_cost=1)
RES = bursar.parse_reservation("3c5e7a9b1d2f4e6a8c0b2d4f6e8a0c1b")


def allow(rid: int) -> bytes:
    r = CheckResult(True, DenyReason.NONE, 0, 0, RES, 7, 1, 1, 0, 0, 0, 0, 0, 0,
                    INT64_MAX, 0, INT64_MAX, 0, INT64_MAX)
    return p.encode_check_result(rid, r)


def gateway(auth=None, check=None):
    """A fake bursard: AUTH answered by ``auth(frame)`` (default AUTH_RESULT), CHECK by
    ``check(frame)`` (default allowed), SETTLE/RELEASE applied, PING with PONG."""
    def answer(f: p.Frame):
        if f.type == p.FrameType.AUTH:
            return auth(f) if auth else p.encode_auth_result(f.request_id)
        if f.type == p.FrameType.CHECK:
            return check(f) if check else allow(f.request_id)
        if f.type == p.FrameType.SETTLE:
            return p.encode_settle_result(f.request_id, 0, -1, -1)
        if f.type == p.FrameType.RELEASE:
            return p.encode_release_result(f.request_id, 0, -1, -1)
        return p.encode_pong(f.request_id)
    return answer


def refused(f: p.Frame) -> bytes:
    return p.encode_error(f.request_id, 13, "unknown or revoked gateway credential")


def test_credential_digest_is_sha256_of_the_secret_text():
    c = bursar.Client("tcp://127.0.0.1:9", credential=CREDENTIAL)
    assert c._credential_digest == DIGEST
    assert p.encode_auth(1, DIGEST) == bytes.fromhex("4252010500000020" "0000000000000001") + DIGEST


@pytest.mark.parametrize("credential", ["", b"bgw_x", 42])
def test_bad_credential_names_the_argument(credential):
    with pytest.raises(ValueError, match="credential"):
        bursar.Client("tcp://127.0.0.1:9", credential=credential)
    with pytest.raises(ValueError, match="credential"):
        bursar.AsyncClient("tcp://127.0.0.1:9", credential=credential)


def test_auth_is_the_first_frame_of_every_connection():
    srv = Fake(gateway())
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=2, timeout=2, credential=CREDENTIAL) as c:
                rs = await asyncio.gather(*[c.check(**KW) for _ in range(20)])
                assert all(r.allowed for r in rs)
                assert (await c.settle(rs[0].reservation, input_tokens=1, output_tokens=1, cost=1)).ok
                await c.ping()
                end = time.monotonic() + 2
                while c.connected < 2 and time.monotonic() < end:  # the pool's second connection
                    await asyncio.sleep(0.01)
                rs = await asyncio.gather(*[c.check(**KW) for _ in range(20)])
                assert all(r.allowed for r in rs)
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=2, credential=CREDENTIAL) as c:
            r = c.check(**KW)
            assert r.allowed and c.release(r.reservation).ok
            c.ping()
        assert len(srv.connections) >= 2
        for frames in srv.connections:
            assert frames[0] == p.Frame(p.FrameType.AUTH, 1, p.AuthRequest(DIGEST)), frames[0]
            assert all(f.type != p.FrameType.AUTH for f in frames[1:])
            assert len(frames) > 1
    finally:
        srv.close()


def test_no_credential_sends_no_auth():
    srv = Fake(gateway())
    try:
        with bursar.Client(srv.url, timeout=2) as c:
            assert c.check(**KW).allowed
        assert [f.type for f in srv.requests] == [p.FrameType.CHECK]
    finally:
        srv.close()


def test_refused_credential_raises_unauthorized_never_an_allow():
    srv = Fake(gateway(auth=refused))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
                with pytest.raises(bursar.Unauthorized) as e:
                    await c.check(**KW)
                assert "refused the gateway credential" in str(e.value)
                assert "unknown or revoked gateway credential" in str(e.value)
                assert e.value.code is bursar.ErrorCode.UNAUTHORIZED and e.value.credential_sent
                assert isinstance(e.value, bursar.ProtocolError)
                # backing off: the next calls fail with the same refusal at once, or are refused
                # again on a new connection; never Unreachable (which fail_open would allow)
                for _ in range(3):
                    with pytest.raises(bursar.Unauthorized):
                        await c.check(**KW)
                with pytest.raises(bursar.Unauthorized):
                    await c.settle(RES, input_tokens=1, output_tokens=1, cost=1)
                assert c.connected == 0
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
            for _ in range(3):
                with pytest.raises(bursar.Unauthorized) as e:
                    c.check(**KW)
                assert "refused the gateway credential" in str(e.value)
            with pytest.raises(bursar.Unauthorized):
                c.release(RES)
        # nothing but AUTH ever reached the server
        assert srv.requests and all(f.type == p.FrameType.AUTH for f in srv.requests)
    finally:
        srv.close()


def test_revoked_credential_fails_the_calls_in_flight():
    """bursard answers ERROR unauthorized with request id 0 once the connection's credential
    is revoked (SPEC §6.5); no call waiting on that connection gets an answer."""
    def check(f):
        if f.body.input_tokens == 1:
            return allow(f.request_id)
        if f.body.input_tokens == 2:
            return p.encode_error(0, 13, "the gateway credential of this connection was revoked")
        return None  # held: answered never
    srv = Fake(gateway(check=check))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, pool_size=1, timeout=2, fail_open=True,
                                          credential=CREDENTIAL) as c:
                assert (await c.check(**KW)).allowed
                held = asyncio.ensure_future(c.check(**dict(KW, input_tokens=3)))
                await asyncio.sleep(0.05)
                with pytest.raises(bursar.Unauthorized) as e:
                    await c.check(**dict(KW, input_tokens=2))
                assert e.value.request_id == 0
                with pytest.raises(bursar.Unauthorized):
                    await held
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=2, fail_open=True, credential=CREDENTIAL) as c:
            assert c.check(**KW).allowed
            with pytest.raises(bursar.Unauthorized):
                c.check(**dict(KW, input_tokens=2))
    finally:
        srv.close()


def test_bursard_requiring_a_credential_the_client_lacks():
    def check(f):
        return p.encode_error(f.request_id, 13, "this bursard requires a gateway credential (AUTH)")
    srv = Fake(gateway(check=check))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=1, fail_open=True) as c:
                with pytest.raises(bursar.Unauthorized) as e:
                    await c.check(**KW)
                assert not e.value.credential_sent
                assert "requires a gateway credential" in str(e.value)
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=1, fail_open=True) as c:
            with pytest.raises(bursar.Unauthorized) as e:
                c.check(**KW)
            assert not e.value.credential_sent
    finally:
        srv.close()


def test_bursard_that_does_not_know_auth():
    """An earlier revision answers AUTH unknown_frame_type (SPEC §6.5, §14)."""
    srv = Fake(gateway(auth=lambda f: p.encode_error(f.request_id, 3, "unknown frame type 0x5")))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
                with pytest.raises(bursar.ProtocolError) as e:
                    await c.check(**KW)
                assert e.value.code is bursar.ErrorCode.UNKNOWN_FRAME_TYPE
                assert "does not know AUTH" in str(e.value)
                assert not isinstance(e.value, bursar.Unauthorized)
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
            with pytest.raises(bursar.ProtocolError) as e:
                c.check(**KW)
            assert e.value.code is bursar.ErrorCode.UNKNOWN_FRAME_TYPE
            assert "does not know AUTH" in str(e.value)
    finally:
        srv.close()


def test_credential_bursard_could_not_look_up_is_a_lost_connection():
    """bursard answers AUTH internal_error when its Redis did not answer the lookup: not a
    refusal; the calls waiting for the connection fail as for a broken one (fail_open applies)."""
    def auth(f):
        return p.encode_error(f.request_id, 9, "the gateway credential could not be looked up")
    srv = Fake(gateway(auth=auth))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=1, credential=CREDENTIAL) as c:
                with pytest.raises(bursar.Unreachable) as e:
                    await c.check(**KW)
                assert "internal_error" in str(e.value) or "internal_error" in str(e.value.__cause__)
            async with bursar.AsyncClient(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
                assert (await c.check(**KW)).fail_open
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=1, credential=CREDENTIAL) as c:
            with pytest.raises(bursar.ConnectionLost) as e:
                c.check(**KW)
            assert "could not check the gateway credential" in str(e.value)
        with bursar.Client(srv.url, timeout=1, fail_open=True, credential=CREDENTIAL) as c:
            assert c.check(**KW).fail_open
    finally:
        srv.close()


def test_auth_answered_with_another_frame_is_a_protocol_error():
    srv = Fake(gateway(auth=lambda f: p.encode_pong(f.request_id)))
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=1, credential=CREDENTIAL) as c:
                with pytest.raises(bursar.ProtocolError) as e:
                    await c.check(**KW)
                assert e.value.code is bursar.ErrorCode.UNEXPECTED_FRAME_TYPE
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=1, credential=CREDENTIAL) as c:
            with pytest.raises(bursar.ProtocolError) as e:
                c.check(**KW)
            assert e.value.code is bursar.ErrorCode.UNEXPECTED_FRAME_TYPE
    finally:
        srv.close()


def test_unanswered_auth_is_a_deadline_not_an_answer():
    srv = Silent()
    try:
        async def go():
            async with bursar.AsyncClient(srv.url, timeout=0.2, credential=CREDENTIAL) as c:
                with pytest.raises((bursar.DeadlineExceeded, bursar.Unreachable)):
                    await c.check(**KW)
                assert c.connected == 0
        asyncio.run(go())
        with bursar.Client(srv.url, timeout=0.2, credential=CREDENTIAL) as c:
            t0 = time.monotonic()
            with pytest.raises(bursar.DeadlineExceeded):
                c.check(**KW)
            assert time.monotonic() - t0 < 0.6
    finally:
        srv.close()
