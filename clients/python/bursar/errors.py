"""Exceptions raised by the bursar clients.

A CHECK that bursard *denies* is a result (``CheckResult.allowed is False``), never an exception.
Exceptions mean that the client could not learn an answer, or that the answer it got was not a
valid one. Nothing is silently allowed: unless the client was built with ``fail_open=True``, every
such failure raises.
"""
from __future__ import annotations

from typing import Optional

from .types import ErrorCode

__all__ = [
    "BursarError",
    "Unreachable",
    "ConnectionLost",
    "DeadlineExceeded",
    "ProtocolError",
    "Unauthorized",
    "Overloaded",
    "StoreUnavailable",
    "ClientClosed",
]


class BursarError(Exception):
    """Base class of every error the bursar client raises (ValueError for bad input aside)."""


class Unreachable(BursarError):
    """bursard could not be reached: connecting failed, or the pool is backing off after a
    failure. The request was never sent."""


class ConnectionLost(Unreachable):
    """The connection broke (or the server closed it) while this request was in flight. The
    request may have reached bursard. For a CHECK that is harmless: bursard voids an admission
    whose answer it could not deliver (SPEC §13.7), so treat it like ``store_unavailable``. A
    SETTLE or RELEASE is retried by the client with the same reservation id (SPEC §11.4)."""


class DeadlineExceeded(BursarError, TimeoutError):
    """No answer arrived within the call's deadline (``timeout``). For a CHECK the outcome is
    unknown to the caller; if an *allowed* answer arrives later, the async client releases that
    reservation itself so it does not hold its estimate until the TTL."""


class ProtocolError(BursarError):
    """The peer broke the wire protocol (SPEC §11), or bursard answered with an ERROR frame.

    ``code`` is the protocol error code (``bursar.ErrorCode``), ``message`` a human-readable
    detail that must never be parsed. The connection is closed after it.
    """

    def __init__(self, code: int, message: str = "", request_id: int = 0) -> None:
        try:
            self.code = ErrorCode(code)
        except ValueError:  # pragma: no cover - the decoder refuses unknown codes first
            self.code = code  # type: ignore[assignment]
        self.message = message
        self.request_id = request_id
        name = getattr(self.code, "name_str", str(code))
        super().__init__(f"{name} ({int(code)}): {message}" if message else f"{name} ({int(code)})")


class Unauthorized(ProtocolError):
    """bursard answered ERROR ``unauthorized`` (13, SPEC §6.5, §11.1) and closed the connection:
    the client's gateway credential (``credential=``) was refused — unknown, or revoked (then
    also on connections that had authenticated with it) — or bursard requires one
    (``--data-plane-auth required``) and the client was given none. Nothing was evaluated.

    ``code`` is ``ErrorCode.UNAUTHORIZED``; ``server_message`` is bursard's own detail, and
    ``credential_sent`` whether the client had presented a credential. Like every
    ``ProtocolError`` it is never turned into an allow by ``fail_open``. Until the client's
    reconnect backoff ends, new calls fail with it at once; then a new connection presents the
    credential again.
    """

    def __init__(self, message: str = "", request_id: int = 0, *, credential_sent: bool = True) -> None:
        self.server_message = message
        self.credential_sent = credential_sent
        what = ("bursard refused the gateway credential" if credential_sent else
                "bursard requires a gateway credential and the client has none (credential=)")
        super().__init__(ErrorCode.UNAUTHORIZED, f"{what}: {message}" if message else what, request_id)


class _StatusError(BursarError):
    """A SETTLE/RELEASE kept getting a non-definitive status until its retry budget ran out.
    Nothing is known to have changed for ``overloaded``; for ``store_unavailable`` the outcome is
    unknown. Either way retrying later with the same reservation id is safe (idempotent)."""

    def __init__(self, result: "object", message: Optional[str] = None) -> None:
        self.result = result
        super().__init__(message or f"{type(self).__name__}: {result!r}")


class Overloaded(_StatusError):
    """SETTLE/RELEASE answered ``overloaded`` (status 6) on every attempt within the budget."""


class StoreUnavailable(_StatusError):
    """SETTLE/RELEASE answered ``store_unavailable`` (status 5) on every attempt within the
    budget: bursard's Redis did not answer in time; the outcome is unknown."""


class ClientClosed(BursarError):
    """The client was closed (``close()``) before or while this call ran."""
