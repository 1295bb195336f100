"""The asyncio client: a small pool of pipelined connections to one bursard.

Why it is built the way it is:

- ``asyncio.Protocol``, not streams: one ``data_received`` decodes every answer in the chunk and
  resolves its future directly; no reader task, no per-call task.
- Pipelining by request id (SPEC §12): each connection numbers its requests from 1 and keeps a
  dict ``request_id -> future``; answers are matched by id, in whatever order they come.
- Writes are coalesced: requests made in the same loop iteration leave in one ``write``.
- Deadlines without per-call timers: each connection keeps a heap of ``(deadline, request_id)``
  and one loop timer armed at the earliest; the timer fails what is still pending with
  ``DeadlineExceeded``.
- A CHECK is never retried (a lost answer is an unknown outcome that bursard voids itself,
  SPEC §13.7). A SETTLE or RELEASE is retried with the same reservation id after a lost
  connection, a deadline or a non-definitive status, within its own budget (SPEC §10, §11.4).
- If an *allowed* CHECK answer arrives after its caller gave up (deadline, cancellation), the
  client RELEASEs it, so its estimate does not stay reserved until the TTL.
- With a gateway credential, every new connection sends AUTH first and joins the pool only once
  AUTH_RESULT came (SPEC §6.5); a refused credential fails the calls waiting for that connection
  with ``Unauthorized``, and so does ERROR ``unauthorized`` on a connection already in use
  (a credential revoked later) for every call in flight on it.
"""
from __future__ import annotations

import asyncio
import heapq
import socket
import ssl
from typing import Dict, List, Optional, Set, Union

from . import protocol as _p
from ._common import (
    ClientBase, again, auth_failed, check_args, check_timeout, key_digest, retry_delay,
    server_error, settle_args, settle_exhausted,
)
from .errors import (
    BursarError, ClientClosed, ConnectionLost, DeadlineExceeded, ProtocolError, Unauthorized,
    Unreachable,
)
from .types import CheckResult, SettleResult

__all__ = ["AsyncClient"]

_decode = _p.decode_frame
_fast_body = _p._decode_body
_HEADER_unpack = _p.HEADER.unpack_from
_FAST_SIZES = {0x81: 112, 0x82: 24, 0x83: 24, 0x84: 0}
_TO_CLIENT = _p.TO_CLIENT
_encode_check = _p.encode_check
_encode_settle = _p.encode_settle
_encode_release = _p.encode_release
_heappush = heapq.heappush
_heappop = heapq.heappop
_INF = float("inf")
_ABANDONED_MAX = 65536


class _Connection(asyncio.Protocol):
    """One connection: request ids, pending futures, deadlines, coalesced writes."""

    def __init__(self, client: "AsyncClient", loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.pending: Dict[int, asyncio.Future] = {}
        self.abandoned: Set[int] = set()  # request ids whose caller stopped waiting
        self.next_id = 0
        self.buf = bytearray()
        self.out: List[bytes] = []
        self.flush_scheduled = False
        self.deadlines: list = []
        self.timer: Optional[asyncio.TimerHandle] = None
        self.timer_at = _INF
        self.alive = False
        self.opened_at = 0.0
        self.reported = False  # the client was told it ended
        self.proven = False  # a valid answer arrived on it
        # in the pool's hands: no credential, or its AUTH was answered AUTH_RESULT
        self.ready = client._credential_digest is None
        self.lost_error: Optional[BaseException] = None

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.opened_at = self.loop.time()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alive = True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        off = 0
        pending = self.pending
        end = len(buf)
        try:
            while True:
                # Fast path for the common answers; anything else (or anything wrong) goes
                # through the full decoder, which applies every check of SPEC §11.2.
                if end - off >= 16:
                    magic, version, t, blen, rid = _HEADER_unpack(buf, off)
                    if (magic == 0x4252 and version == 1 and blen == _FAST_SIZES.get(t)
                            and end - off >= 16 + blen):
                        body = _fast_body(t, rid, buf, off + 16, blen)
                        off += 16 + blen
                    else:
                        got = _decode(buf, _TO_CLIENT, off)
                        if got is None:
                            break
                        (t, rid, body), n = got
                        off += n
                else:
                    _decode(buf, _TO_CLIENT, off)  # refuses a bad partial magic at once
                    break
                if t == 0xFF:
                    self._server_error(rid, body)
                    return
                fut = pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result(body)
                elif t == 0x81 and body.allowed and (fut is not None or rid in self.abandoned):
                    self.abandoned.discard(rid)
                    self.client._release_late(body.reservation)
                else:
                    self.abandoned.discard(rid)
        except ProtocolError as e:
            self._abort(ConnectionLost(f"bursard sent an invalid frame ({e}); connection closed"),
                        e)
            return
        if off:
            del buf[:off]
            if not self.proven:
                self.proven = True
                self.client._backoff.succeeded()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.alive = False
        reason = exc or self.lost_error
        self._fail_all(ConnectionLost(
            f"connection to bursard at {self.client.address} lost"
            + (f": {reason}" if reason else " (closed by the server)")), reason)
        self.client._lost(self)

    # -- sending
    def submit(self, rid: int, data: bytes, deadline: float) -> asyncio.Future:
        fut = self.loop.create_future()
        self.pending[rid] = fut
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        _heappush(self.deadlines, (deadline, rid))
        if deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._expire)
        return fut

    def _flush(self) -> None:
        self.flush_scheduled = False
        out = self.out
        if out and self.alive:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
        out.clear()

    def _expire(self) -> None:
        """Fail every pending call whose deadline has passed; re-arm for the next one."""
        self.timer = None
        self.timer_at = _INF
        now = self.loop.time()
        heap = self.deadlines
        pending = self.pending
        while heap and heap[0][0] <= now:
            _, rid = _heappop(heap)
            fut = pending.get(rid)
            if fut is not None:
                # past its deadline: failed now, or its caller was cancelled; a late allowed
                # answer for it is released (data_received)
                del pending[rid]
                if len(self.abandoned) < _ABANDONED_MAX:
                    self.abandoned.add(rid)
                if not fut.done():
                    fut.set_exception(DeadlineExceeded(
                        f"no answer from bursard at {self.client.address} within the deadline"))
        while heap and heap[0][1] not in pending:  # skip entries of calls already answered
            _heappop(heap)
        if heap:
            self.timer_at = heap[0][0]
            self.timer = self.loop.call_at(self.timer_at, self._expire)

    # -- failures
    def _server_error(self, rid: int, body: "_p.ErrorFrame") -> None:
        """An ERROR frame: the request it names failed with it; the server closes next. After
        ``unauthorized`` every other call in flight fails with it too: bursard had answered
        whatever it evaluated before the ERROR, and evaluates nothing more (SPEC §6.5, §11.3)."""
        err = server_error(body, rid, self.client._credential_digest is not None)
        fut = self.pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(err)
        if isinstance(err, Unauthorized):
            pending, self.pending = self.pending, {}
            for other in pending.values():
                if not other.done():
                    other.set_exception(again(err))
        self._abort(ConnectionLost(f"bursard closed the connection with {err}"), err)

    def _abort(self, error: BursarError, cause: Optional[BaseException]) -> None:
        self.lost_error = cause
        self.alive = False
        self.client._lost(self)
        self._fail_all(error, cause)
        if self.transport is not None:
            self.transport.abort()

    def _fail_all(self, error: BursarError, cause: Optional[BaseException]) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = _INF
        self.deadlines.clear()
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                e = type(error)(*error.args)
                e.__cause__ = cause
                fut.set_exception(e)


class AsyncClient(ClientBase):
    """Async client of one bursard.

    ``AsyncClient(url, pool_size=2, timeout=0.25, *, settle_timeout=2.0, connect_timeout=None,
    fail_open=False, tls=None, server_hostname=None, credential=None)``

    - ``url``: ``"tcp://127.0.0.1:7420"`` or ``"unix:///run/bursar.sock"``.
    - ``pool_size``: connections kept open; calls are spread over them round-robin, each
      connection pipelines any number of calls.
    - ``timeout``: the deadline of every call (one attempt), seconds.
    - ``settle_timeout``: the whole budget of a SETTLE or RELEASE, retries included.
    - ``connect_timeout``: for opening a connection, AUTH included (default: ``timeout``).
    - ``tls``: an ``ssl.SSLContext`` for a data plane that speaks mutual TLS (bursard's
      ``--listen-tls-*``), e.g. ``bursar.tls_context(ca, cert, key)``; None: plain TCP.
    - ``server_hostname``: the name bursard's certificate must carry (default: the URL's host).
    - ``credential``: a gateway credential's secret (``bgw_…``, SPEC §6.5): every new connection
      presents it (AUTH, its SHA-256) before any other request and serves only the organizations
      it names; a key of another organization is then ``unknown_key``, its reservations
      ``unknown``. A refused credential raises ``Unauthorized``. None: no AUTH (a bursard run
      with ``--data-plane-auth required`` then refuses every request with ``Unauthorized``).
      Send it only over loopback, a unix socket or mutual TLS.
    - ``fail_open``: if True, a CHECK that cannot get an answer (Unreachable, ConnectionLost,
      DeadlineExceeded) returns ``CheckResult.failed_open()`` — allowed, ``fail_open=True``,
      reservation 0 — instead of raising. Off by default: nothing is silently allowed. A
      ``ProtocolError`` (``Unauthorized`` included) is never turned into an allow.

    Create it inside a running event loop (or ``async with``); all calls must come from that loop.
    """

    def __init__(self, url: str, pool_size: int = 2, timeout: float = 0.25, *,
                 settle_timeout: float = 2.0, connect_timeout: Optional[float] = None,
                 fail_open: bool = False, tls: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None, credential: Optional[str] = None) -> None:
        super().__init__(url, pool_size, timeout, settle_timeout, connect_timeout, fail_open,
                         tls, server_hostname, credential)
        self._conns: List[_Connection] = []
        self._rr = 0
        self._connecting: Optional[asyncio.Future] = None
        self._background: Set[asyncio.Task] = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        #: late allowed CHECK answers this client released itself (see module docstring)
        self.late_releases = 0

    # ------------------------------------------------------------------ connections
    def _pick(self) -> Optional[_Connection]:
        conns = self._conns
        n = len(conns)
        if n < self.pool_size and self._connecting is None and not self._closed:
            self._start_connect()
        if n:
            self._rr += 1
            return conns[self._rr % n]
        return None

    def _start_connect(self) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._backoff.refuse(loop.time(), self.address) is not None:
            return
        fut = self._connecting = loop.create_future()
        task = loop.create_task(self._connect(fut))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _connect(self, fut: asyncio.Future) -> None:
        loop = self._loop
        assert loop is not None
        started = loop.time()
        try:
            factory = lambda: _Connection(self, loop)  # noqa: E731
            if self.address.kind == "unix":
                coro = loop.create_unix_connection(factory, self.address.target)
            else:
                host, port = self.address.target  # type: ignore[misc]
                if self.tls is not None:  # connected once the handshake is done
                    coro = loop.create_connection(factory, host, port, ssl=self.tls,
                                                  server_hostname=self.server_hostname)
                else:
                    coro = loop.create_connection(factory, host, port)
            _, conn = await asyncio.wait_for(coro, self.connect_timeout)
        except asyncio.CancelledError:  # close() while connecting
            self._connecting = None
            if not fut.done():
                fut.set_exception(ClientClosed("the client was closed"))
                fut.exception()
            raise
        except (OSError, asyncio.TimeoutError) as e:
            self._backoff.failed(loop.time(), e if not isinstance(e, asyncio.TimeoutError)
                                 else TimeoutError(f"connect timed out after {self.connect_timeout} s"))
            self._connecting = None
            if not fut.done():
                fut.set_exception(self._backoff.refuse(loop.time(), self.address)
                                  or Unreachable(f"bursard at {self.address} unreachable: {e}"))
                fut.exception()  # mark retrieved: nobody may be waiting
            return
        if self._credential_digest is not None and not self._closed:
            try:
                await self._authenticate(conn, started + self.connect_timeout)  # type: ignore[operator]
            except asyncio.CancelledError:  # close() while authenticating
                self._connecting = None
                self._drop(conn)
                if not fut.done():
                    fut.set_exception(ClientClosed("the client was closed"))
                    fut.exception()
                raise
            except BursarError as e:
                self._connecting = None
                self._drop(conn)
                now = loop.time()
                err = auth_failed(e, self.address) if isinstance(e, ProtocolError) else e
                if isinstance(err, ProtocolError):  # refused: Unauthorized, or no AUTH at all
                    self._backoff.auth_refused(now, err)
                else:  # the connection ended, or AUTH_RESULT did not come in time
                    self._backoff.failed(now, err)
                if not fut.done():
                    fut.set_exception(self._backoff.refuse(now, self.address) or err)
                    fut.exception()
                return
            conn.ready = True
        # The backoff is reset by the connection's first valid answer (data_received), not
        # here: a server that accepts and then closes at once must not defeat it.
        self._connecting = None
        if self._closed:
            conn.transport.close()  # type: ignore[union-attr]
        elif conn.alive:  # it may already have been closed (e.g. too_many_connections)
            self._conns.append(conn)
            if len(self._conns) < self.pool_size:
                self._start_connect()
        if not fut.done():
            fut.set_result(None)

    async def _authenticate(self, conn: _Connection, deadline: float) -> None:
        """AUTH as the connection's first request (SPEC §6.5); returns once AUTH_RESULT came.
        Raises what the connection got instead (``Unauthorized`` for a refused credential)."""
        if not conn.alive:  # closed by the server at once (e.g. too_many_connections)
            raise ConnectionLost(f"bursard at {self.address} closed the connection"
                                 + (f": {conn.lost_error}" if conn.lost_error else ""))
        digest = self._credential_digest
        assert digest is not None
        conn.next_id = rid = conn.next_id + 1
        result = await conn.submit(rid, _p.encode_auth(rid, digest), deadline)
        if type(result) is not _p.AuthResult:
            raise self._mismatch(conn, "AUTH_RESULT", result)

    def _drop(self, conn: _Connection) -> None:
        """Close a connection that never joined the pool (its AUTH failed)."""
        conn.reported = True
        conn.alive = False
        if conn.transport is not None:
            conn.transport.abort()

    async def _connection(self, deadline: float) -> _Connection:
        """A live connection, connecting (within the deadline) if none is open."""
        if self._closed:
            raise ClientClosed("the client is closed")
        conn = self._pick()
        if conn is not None:
            return conn
        loop = self._loop
        assert loop is not None
        while True:
            if self._connecting is None:
                refused = self._backoff.refuse(loop.time(), self.address)
                if refused is not None:
                    raise refused
                self._start_connect()
            fut = self._connecting
            assert fut is not None
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded(f"no connection to bursard at {self.address} within the deadline")
            try:
                await asyncio.wait_for(asyncio.shield(fut), remaining)
            except asyncio.TimeoutError:
                raise DeadlineExceeded(
                    f"no connection to bursard at {self.address} within the deadline") from None
            if self._closed:
                raise ClientClosed("the client is closed")
            if self._conns:
                self._rr += 1
                return self._conns[self._rr % len(self._conns)]

    def _lost(self, conn: _Connection) -> None:
        if conn.reported:
            return
        conn.reported = True
        try:
            self._conns.remove(conn)
        except ValueError:
            pass
        if not conn.ready or self._loop is None:
            return  # ended during its AUTH: _connect counts that
        if isinstance(conn.lost_error, Unauthorized):
            # its credential revoked, or none given to a bursard that requires one: back off,
            # failing calls with that meanwhile rather than reconnecting to be refused again
            self._backoff.auth_refused(self._loop.time(), conn.lost_error)
        # A connection the server ends right after it opened (too_many_connections, a bursard
        # going down) counts as a failed connect, so the pool backs off instead of spinning.
        elif self._loop.time() - conn.opened_at < 1.0:
            self._backoff.failed(self._loop.time(),
                                 conn.lost_error or ConnectionError("closed right after opening"))

    def _release_late(self, reservation: int) -> None:
        """RELEASE an admission whose caller is no longer waiting for it."""
        if self._closed or self._loop is None:
            return
        self.late_releases += 1

        async def run() -> None:
            try:
                await self.release(reservation)
            except BursarError:
                pass  # it keeps its estimate until its TTL: an over-count, never an over-admission

        task = self._loop.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ calls
    async def check(self, *, key: Union[str, bytes, None] = None, digest: Optional[bytes] = None,
                    model: str, input_tokens: int, max_output_tokens: int, estimated_cost: int,
                    timeout: Optional[float] = None) -> CheckResult:
        """CHECK (SPEC §6.1): may this key call this model with this many tokens at this
        estimated cost (nano-USD)? A deny is a result (``allowed`` False, ``reason``), not an
        exception. Give the key's secret as ``key`` or its SHA-256 as ``digest``.

        Raises ValueError (naming the field) for bad input; Unreachable, ConnectionLost,
        DeadlineExceeded, ProtocolError, ClientClosed when no valid answer came — unless the
        client is ``fail_open``. Never retried: a lost answer is voided by bursard itself.
        """
        d = key_digest(key, digest)
        m = self._models.get(model)
        check_args(input_tokens, max_output_tokens, estimated_cost)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else check_timeout(timeout, "timeout"))
        try:
            conn = self._pick() if not self._closed else None
            if conn is None:
                conn = await self._connection(deadline)
            conn.next_id = rid = conn.next_id + 1
            result = await conn.submit(
                rid, _encode_check(rid, d, m, input_tokens, max_output_tokens, estimated_cost),
                deadline)
        except (Unreachable, DeadlineExceeded):
            if self.fail_open:
                return CheckResult.failed_open()
            raise
        if type(result) is not CheckResult:
            raise self._mismatch(conn, "CHECK_RESULT", result)
        return result

    async def settle(self, reservation: int, *, input_tokens: int, output_tokens: int, cost: int,
                     timeout: Optional[float] = None) -> SettleResult:
        """SETTLE (SPEC §6.2): the call finished; replace the reservation's estimate with actual
        usage (tokens, cost in nano-USD). Retried with the same reservation id until definitive
        or ``timeout`` (default ``settle_timeout``) runs out; an ``already_settled`` after a retry
        means the first attempt took effect (``result.ok`` is True)."""
        if reservation == 0 and self.fail_open:
            return SettleResult.failed_open(False)
        settle_args(reservation, input_tokens, output_tokens, cost)
        return await self._retrying(
            lambda rid: _encode_settle(rid, reservation, input_tokens, output_tokens, cost),
            False, timeout)

    async def release(self, reservation: int, *, timeout: Optional[float] = None) -> SettleResult:
        """RELEASE (SPEC §6.3): the call never happened; give the reservation back. Retried like
        ``settle``."""
        if reservation == 0 and self.fail_open:
            return SettleResult.failed_open(True)
        _p.check_reservation(reservation)
        return await self._retrying(lambda rid: _encode_release(rid, reservation), True, timeout)

    async def ping(self, *, timeout: Optional[float] = None) -> None:
        """PING (SPEC §6.4): the connection and the bursard process are alive (not Redis)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else check_timeout(timeout, "timeout"))
        conn = await self._connection(deadline)
        conn.next_id = rid = conn.next_id + 1
        result = await conn.submit(rid, _p.encode_ping(rid), deadline)
        if result is not None:
            raise self._mismatch(conn, "PONG", result)

    async def _retrying(self, encode, is_release: bool, timeout: Optional[float]) -> SettleResult:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        budget = self.settle_timeout if timeout is None else check_timeout(timeout, "timeout")
        start = loop.time()
        end = start + budget  # type: ignore[operator]
        attempt = 0
        last: Union[SettleResult, BaseException, None] = None
        while True:
            attempt += 1
            deadline = min(end, loop.time() + self.timeout)  # type: ignore[operator]
            try:
                conn = self._pick() if not self._closed else None
                if conn is None:
                    conn = await self._connection(deadline)
                conn.next_id = rid = conn.next_id + 1
                result = await conn.submit(rid, encode(rid), deadline)
                if type(result) is not SettleResult or result.is_release != is_release:
                    raise self._mismatch(conn, "RELEASE_RESULT" if is_release else "SETTLE_RESULT",
                                         result)
                result.attempts = attempt
                if result.status < 5:  # definitive
                    return result
                last = result
            except (Unreachable, DeadlineExceeded) as e:
                last = e  # safe to retry: idempotent by reservation id (SPEC §10)
            delay = retry_delay(attempt)
            if isinstance(last, Unreachable) and not isinstance(last, ConnectionLost):
                delay = max(delay, self._backoff.not_before - loop.time())
            if loop.time() + delay >= end:
                break
            await asyncio.sleep(delay)
        raise settle_exhausted(last, attempt, is_release)

    def _mismatch(self, conn: _Connection, expected: str, got: object) -> ProtocolError:
        err = ProtocolError(4, f"expected {expected}, bursard answered {type(got).__name__}")
        conn._abort(ConnectionLost(f"answer of the wrong type: {err}"), err)
        return err

    # ------------------------------------------------------------------ lifecycle
    async def close(self, *, drain: Optional[float] = None) -> None:
        """Close every connection. Calls still in flight get up to ``drain`` seconds (default
        ``timeout``) to be answered first; then they fail with ClientClosed."""
        if self._closed:
            return
        self._closed = True
        wait = self.timeout if drain is None else drain
        loop = self._loop
        if loop is not None and wait:
            end = loop.time() + wait
            while any(c.pending for c in self._conns) and loop.time() < end:
                await asyncio.sleep(0.005)
        for conn in list(self._conns):
            conn._fail_all(ClientClosed("the client was closed"), None)
            conn.alive = False
            if conn.transport is not None:
                conn.transport.close()
        self._conns.clear()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @property
    def connected(self) -> int:
        """How many connections are open now."""
        return len(self._conns)

    async def __aenter__(self) -> "AsyncClient":
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
