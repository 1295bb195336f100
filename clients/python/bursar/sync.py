"""The blocking client: same methods and semantics as AsyncClient, for threaded gateways.

Each connection carries one request at a time (no pipelining): a thread checks a connection out
of a small pool, writes its frame, reads until the answer with its request id, and checks it back
in. The pool is thread-safe; ``pool_size`` bounds concurrent calls (extra threads wait for a free
connection within their deadline). A connection that timed out or broke is closed, never reused,
so a late answer can never be read as the answer to another call; closing it with the answer
unread also makes bursard void a late admission (SPEC §2, §13.7). A client given a gateway
credential sends AUTH on every new connection and waits for AUTH_RESULT before its first request
(SPEC §6.5).
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import List, Optional, Union

from . import protocol as _p
from ._common import (
    ClientBase, auth_failed, check_args, check_timeout, key_digest, retry_delay, server_error,
    settle_args, settle_exhausted,
)
from .errors import (
    ClientClosed, ConnectionLost, DeadlineExceeded, ProtocolError, Unauthorized, Unreachable,
)
from .types import CheckResult, SettleResult

__all__ = ["Client"]

_now = time.monotonic


class _SyncConnection:
    __slots__ = ("sock", "next_id", "buf", "answered", "credential_sent")

    def __init__(self, sock: socket.socket, credential_sent: bool = False) -> None:
        self.sock = sock
        self.answered = 0
        self.next_id = 0
        self.buf = bytearray()
        self.credential_sent = credential_sent  # AUTH is (or will be) this connection's first request

    def call(self, data_for, deadline: float, address: object):
        """Send one request and return the body of its answer. Any failure closes the socket
        and raises; the caller must not reuse the connection then."""
        self.next_id = rid = self.next_id + 1
        sock = self.sock
        try:
            remaining = deadline - _now()
            if remaining <= 0:
                raise socket.timeout()
            sock.settimeout(remaining)
            sock.sendall(data_for(rid))
            buf = self.buf
            while True:
                try:
                    got = _p.decode_frame(buf, _p.TO_CLIENT)
                    if got is not None and got[0][1] != rid and got[0][0] != 0xFF:
                        raise ProtocolError(4, f"answer for request {got[0][1]}, expected {rid}",
                                            got[0][1])
                except ProtocolError as e:
                    # as in the async client: an invalid stream ends the connection; the
                    # request may or may not have been applied (a SETTLE is retried)
                    raise ConnectionLost(f"bursard sent an invalid frame ({e}); connection "
                                         "closed") from e
                if got is not None:
                    (t, frid, body), n = got
                    del buf[:n]
                    if t == 0xFF:
                        err = server_error(body, frid, self.credential_sent)
                        # the server refused this request, or (unauthorized, request id 0) the
                        # connection's credential was revoked: this request was not evaluated
                        if frid == rid or isinstance(err, Unauthorized):
                            raise err
                        # about the connection (too_many_connections, idle_timeout, …)
                        raise ConnectionLost(f"bursard closed the connection with {err}") from err
                    self.answered += 1
                    return body
                remaining = deadline - _now()
                if remaining <= 0:
                    raise socket.timeout()
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionLost(f"bursard at {address} closed the connection")
                buf += chunk
        except socket.timeout:
            self.close()
            raise DeadlineExceeded(f"no answer from bursard at {address} within the deadline") from None
        except ProtocolError:
            self.close()
            raise
        except ConnectionLost:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise ConnectionLost(f"connection to bursard at {address} lost: {e}") from e

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client(ClientBase):
    """Blocking, thread-safe client of one bursard. Arguments as for ``AsyncClient``; here
    ``pool_size`` is also the number of calls that can run at once."""

    def __init__(self, url: str, pool_size: int = 2, timeout: float = 0.25, *,
                 settle_timeout: float = 2.0, connect_timeout: Optional[float] = None,
                 fail_open: bool = False, tls: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None, credential: Optional[str] = None) -> None:
        super().__init__(url, pool_size, timeout, settle_timeout, connect_timeout, fail_open,
                         tls, server_hostname, credential)
        self._idle: List[_SyncConnection] = []
        self._open = 0
        self._cond = threading.Condition()

    # ------------------------------------------------------------------ pool
    def _checkout(self, deadline: float) -> _SyncConnection:
        with self._cond:
            while True:
                if self._closed:
                    raise ClientClosed("the client is closed")
                if self._idle:
                    return self._idle.pop()
                if self._open < self.pool_size:
                    refused = self._backoff.refuse(_now(), self.address)
                    if refused is not None:
                        raise refused
                    self._open += 1
                    break
                remaining = deadline - _now()
                if remaining <= 0:
                    raise DeadlineExceeded("no free connection within the deadline "
                                           f"(pool_size={self.pool_size})")
                self._cond.wait(remaining)
        try:
            return self._dial(deadline)
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _dial(self, deadline: float) -> _SyncConnection:
        started = _now()
        timeout = max(0.001, min(self.connect_timeout, deadline - started))  # type: ignore[type-var]
        try:
            if self.address.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(self.address.target)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(self.address.target, timeout=timeout)  # type: ignore[arg-type]
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:
                    try:  # the handshake, within the same timeout
                        sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
                    except BaseException:
                        sock.close()
                        raise
        except OSError as e:
            with self._cond:
                self._backoff.failed(_now(), e)
            if isinstance(e, socket.timeout) and deadline - _now() <= 0:
                raise DeadlineExceeded(f"no connection to bursard at {self.address} within the deadline") from e
            raise Unreachable(f"bursard at {self.address} unreachable: {e}") from e
        conn = _SyncConnection(sock, self._credential_digest is not None)
        if self._credential_digest is not None:
            self._authenticate(conn, started + timeout)
        return conn

    def _authenticate(self, conn: _SyncConnection, deadline: float) -> None:
        """AUTH as the connection's first request (SPEC §6.5), within the connect timeout. A
        refusal closes the connection, raises (``Unauthorized`` for a refused credential) and
        makes the pool back off, failing calls with the same error meanwhile; a lookup bursard
        could not make (``internal_error``) raises ConnectionLost, like a broken connection."""
        d = self._credential_digest
        assert d is not None
        try:
            body = conn.call(lambda rid: _p.encode_auth(rid, d), deadline, self.address)
            if type(body) is not _p.AuthResult:
                conn.close()
                raise ProtocolError(4, f"expected AUTH_RESULT, bursard answered {type(body).__name__}")
        except ProtocolError as e:
            err = auth_failed(e, self.address)
            with self._cond:
                if isinstance(err, ProtocolError):  # refused: backing off repeats it
                    self._backoff.auth_refused(_now(), err)
                else:  # bursard could not look the credential up: as a broken connection
                    self._backoff.failed(_now(), err)
            if err is e:
                raise
            raise err from e
        except (ConnectionLost, DeadlineExceeded) as e:
            with self._cond:
                self._backoff.failed(_now(), e)
            raise

    def _checkin(self, conn: _SyncConnection, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(conn)
            else:
                self._open -= 1
                if healthy:
                    conn.close()
            self._cond.notify()

    def _call(self, data_for, deadline: float):
        conn = self._checkout(deadline)
        try:
            body = conn.call(data_for, deadline, self.address)
        except BaseException as e:
            self._checkin(conn, False)
            if isinstance(e, Unauthorized):
                # its credential revoked, or none given to a bursard that requires one: back
                # off, failing calls with that meanwhile rather than reconnecting to be refused
                with self._cond:
                    self._backoff.auth_refused(_now(), e)
            elif not conn.answered and isinstance(e, (ConnectionLost, ProtocolError)):
                with self._cond:  # ended before any answer: count it as a failed connect
                    self._backoff.failed(_now(), e)
            raise
        self._checkin(conn, True)
        if self._backoff.failures:  # a valid answer: the server is back (see aio._connect)
            with self._cond:
                self._backoff.succeeded()
        return body

    # ------------------------------------------------------------------ calls
    def check(self, *, key: Union[str, bytes, None] = None, digest: Optional[bytes] = None,
              model: str, input_tokens: int, max_output_tokens: int, estimated_cost: int,
              timeout: Optional[float] = None) -> CheckResult:
        """CHECK; see ``AsyncClient.check``."""
        d = key_digest(key, digest)
        m = self._models.get(model)
        check_args(input_tokens, max_output_tokens, estimated_cost)
        deadline = _now() + (self.timeout if timeout is None else check_timeout(timeout, "timeout"))
        try:
            body = self._call(lambda rid: _p.encode_check(rid, d, m, input_tokens,
                                                          max_output_tokens, estimated_cost),
                              deadline)
        except (Unreachable, DeadlineExceeded):
            if self.fail_open:
                return CheckResult.failed_open()
            raise
        if type(body) is not CheckResult:
            raise ProtocolError(4, f"expected CHECK_RESULT, got {type(body).__name__}")
        return body

    def settle(self, reservation: int, *, input_tokens: int, output_tokens: int, cost: int,
               timeout: Optional[float] = None) -> SettleResult:
        """SETTLE, retried with the same reservation id; see ``AsyncClient.settle``."""
        if reservation == 0 and self.fail_open:
            return SettleResult.failed_open(False)
        settle_args(reservation, input_tokens, output_tokens, cost)
        return self._retrying(
            lambda rid: _p.encode_settle(rid, reservation, input_tokens, output_tokens, cost),
            False, timeout)

    def release(self, reservation: int, *, timeout: Optional[float] = None) -> SettleResult:
        """RELEASE, retried with the same reservation id; see ``AsyncClient.release``."""
        if reservation == 0 and self.fail_open:
            return SettleResult.failed_open(True)
        _p.check_reservation(reservation)
        return self._retrying(lambda rid: _p.encode_release(rid, reservation), True, timeout)

    def ping(self, *, timeout: Optional[float] = None) -> None:
        deadline = _now() + (self.timeout if timeout is None else check_timeout(timeout, "timeout"))
        body = self._call(_p.encode_ping, deadline)
        if body is not None:
            raise ProtocolError(4, f"expected PONG, got {type(body).__name__}")

    def _retrying(self, data_for, is_release: bool, timeout: Optional[float]) -> SettleResult:
        budget = self.settle_timeout if timeout is None else check_timeout(timeout, "timeout")
        end = _now() + budget  # type: ignore[operator]
        attempt = 0
        last: Union[SettleResult, BaseException, None] = None
        while True:
            attempt += 1
            deadline = min(end, _now() + self.timeout)  # type: ignore[operator]
            try:
                body = self._call(data_for, deadline)
                if type(body) is not SettleResult or body.is_release != is_release:
                    raise ProtocolError(4, f"unexpected answer {type(body).__name__}")
                body.attempts = attempt
                if body.status < 5:
                    return body
                last = body
            except (Unreachable, DeadlineExceeded) as e:
                last = e
            delay = retry_delay(attempt)
            if isinstance(last, Unreachable) and not isinstance(last, ConnectionLost):
                delay = max(delay, self._backoff.not_before - _now())
            if _now() + delay >= end:
                break
            time.sleep(delay)
        raise settle_exhausted(last, attempt, is_release)

    def close(self) -> None:
        """Close idle connections now; connections in use are closed when checked back in."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
