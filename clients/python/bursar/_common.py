"""What the asyncio and the blocking client share: their settings, address parsing, argument
checks, backoff, the errors of ERROR frames and of AUTH, and the error a SETTLE/RELEASE retry loop
ends with."""
from __future__ import annotations

import hashlib
import random
import ssl
from typing import NamedTuple, Optional, Tuple, Union
from urllib.parse import urlsplit

from .errors import (
    BursarError, ConnectionLost, Overloaded, ProtocolError, StoreUnavailable, Unauthorized, Unreachable,
)
from .protocol import ErrorFrame, check_digest, check_money, check_reservation, check_u32, model_field
from .types import ErrorCode, ReservationStatus

_sha256 = hashlib.sha256


class Address(NamedTuple):
    """Where bursard listens: ``("tcp", (host, port))`` or ``("unix", path)``."""

    kind: str
    target: Union[Tuple[str, int], str]

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.target}"
        host, port = self.target  # type: ignore[misc]
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def parse_address(url: str) -> Address:
    """``tcp://host:port`` (IPv6 as ``[::1]``), ``unix:///path/to.sock``, or bare ``host:port``."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"url: expected 'tcp://host:port' or 'unix:///path', got {url!r}")
    if url.startswith("unix:"):
        path = url[len("unix://"):] if url.startswith("unix://") else url[len("unix:"):]
        if not path:
            raise ValueError(f"url: unix socket path missing in {url!r}")
        return Address("unix", path)
    parts = urlsplit(url if "://" in url else "tcp://" + url)
    if parts.scheme != "tcp":
        raise ValueError(f"url: scheme must be tcp or unix, got {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"url: expected tcp://host:port, got {url!r}")
    return Address("tcp", (parts.hostname, port))


def tls_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    """The client side of bursard's mutual TLS (a data plane started with ``--listen-tls-*``):
    bursard's certificate must chain to ``ca`` and carry the host connected to; this client
    presents ``cert`` with its private key ``key`` (PEM files). TLS 1.2 or later. A file that
    cannot be used raises ``ValueError`` naming it."""
    for name, path in (("ca", ca), ("cert", cert), ("key", key)):
        if not isinstance(path, str) or not path:
            raise ValueError(f"tls_context: {name} must be a path to a PEM file, got {path!r}")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"tls_context: ca {ca!r}: cannot load CA certificates: {e}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ValueError(f"tls_context: cert {cert!r} / key {key!r}: cannot load the client certificate "
                         f"and its key: {e}") from None
    return ctx


class ModelCache:
    """Encoded, validated model names: gateways use a handful of models, so each name is checked
    and encoded once. Bounded, so arbitrary names from callers cannot grow it without limit."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict = {}

    def get(self, model: str) -> bytes:
        raw = self._d.get(model)
        if raw is None:
            raw = model_field(model)
            if len(self._d) >= 1024:
                self._d.clear()
            self._d[model] = raw
        return raw


def key_digest(key: Union[str, bytes, None], digest: Optional[bytes]) -> bytes:
    """The CHECK's 32-byte key digest from exactly one of ``key`` (the secret) or ``digest``."""
    if key is not None:
        if digest is not None:
            raise ValueError("key, digest: give one of them, not both")
        if isinstance(key, str):
            return _sha256(key.encode("utf-8")).digest()
        if isinstance(key, (bytes, bytearray)):
            return _sha256(key).digest()
        raise ValueError(f"key: expected the key's secret as str or bytes, got {type(key).__name__}")
    if digest is None:
        raise ValueError("key, digest: one of them is required")
    if type(digest) is bytes and len(digest) == 32:
        return digest
    return check_digest(digest, "digest")


def check_args(input_tokens: int, max_output_tokens: int, estimated_cost: int) -> None:
    if type(input_tokens) is not int or not 0 <= input_tokens <= 0xFFFF_FFFF:
        check_u32(input_tokens, "input_tokens")
    if type(max_output_tokens) is not int or not 0 <= max_output_tokens <= 0xFFFF_FFFF:
        check_u32(max_output_tokens, "max_output_tokens")
    if type(estimated_cost) is not int or not -1 <= estimated_cost <= 0x1F_FFFF_FFFF_FFFF:
        check_money(estimated_cost, "estimated_cost")


def settle_args(reservation: int, input_tokens: int, output_tokens: int, cost: int) -> None:
    if type(reservation) is not int or not 0 < reservation < (1 << 128):
        check_reservation(reservation)
    if type(input_tokens) is not int or not 0 <= input_tokens <= 0xFFFF_FFFF:
        check_u32(input_tokens, "input_tokens")
    if type(output_tokens) is not int or not 0 <= output_tokens <= 0xFFFF_FFFF:
        check_u32(output_tokens, "output_tokens")
    if type(cost) is not int or not -1 <= cost <= 0x1F_FFFF_FFFF_FFFF:
        check_money(cost, "cost")


def credential_digest(credential: Optional[str]) -> Optional[bytes]:
    """AUTH's 32 bytes for a gateway credential (SPEC §6.5): SHA-256 of its secret text as UTF-8;
    None without one. Only the digest is kept (it authenticates just the same: never log it)."""
    if credential is None:
        return None
    if not isinstance(credential, str) or not credential:
        raise ValueError("credential: expected the gateway credential's secret (bgw_…) as a non-empty "
                         f"str, got {type(credential).__name__}")
    try:
        return _sha256(credential.encode("utf-8")).digest()
    except UnicodeEncodeError:
        raise ValueError("credential: not encodable as UTF-8 (lone surrogate)") from None


def server_error(body: ErrorFrame, request_id: int, credential_sent: bool) -> ProtocolError:
    """The exception for an ERROR frame bursard sent: ``Unauthorized`` for code 13, else
    ``ProtocolError``."""
    if body.code == ErrorCode.UNAUTHORIZED:
        return Unauthorized(body.message, request_id, credential_sent=credential_sent)
    return ProtocolError(body.code, body.message, request_id)


def again(error: ProtocolError) -> ProtocolError:
    """A fresh copy of a ProtocolError (or Unauthorized), to raise for another call."""
    if isinstance(error, Unauthorized):
        copy: ProtocolError = Unauthorized(error.server_message, error.request_id,
                                           credential_sent=error.credential_sent)
    else:
        copy = ProtocolError(error.code, error.message, error.request_id)
    copy.__cause__ = error.__cause__
    return copy


def auth_failed(error: ProtocolError, address: object) -> BursarError:
    """What an AUTH that got a ProtocolError instead of AUTH_RESULT raises. A refusal, a
    ProtocolError that the pool's backoff then repeats: ``Unauthorized`` as bursard sent it,
    ``unknown_frame_type`` (a bursard older than gateway credentials, SPEC §6.5) with a message
    saying so, anything else as it is. Except ``internal_error`` (bursard could not look the
    credential up: its Redis did not answer): a ConnectionLost, as for a connection that broke."""
    if isinstance(error, Unauthorized):
        return error
    if error.code == ErrorCode.INTERNAL_ERROR:
        lost: BursarError = ConnectionLost(f"bursard at {address} could not check the gateway "
                                           f"credential ({error}); connection closed")
    elif error.code == ErrorCode.UNKNOWN_FRAME_TYPE:
        lost = ProtocolError(error.code, f"bursard at {address} does not know AUTH (a revision "
                             "before gateway credentials), so it cannot check the client's "
                             f"credential: upgrade it, or leave credential unset ({error.message})",
                             error.request_id)
    else:
        return error
    lost.__cause__ = error
    return lost


def check_timeout(value: Optional[float], field: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{field}: expected seconds > 0, got {value!r}")
    return float(value)


class Backoff:
    """Reconnect backoff of one client: exponential with full jitter, from ``base`` to ``cap``
    seconds. While it runs, calls fail at once with Unreachable instead of each waiting for a
    connect to a bursard that is down — or, when the last connection was refused at AUTH, with
    that refusal (``Unauthorized``), which ``fail_open`` never turns into an allow. The first
    success resets it."""

    __slots__ = ("base", "cap", "failures", "not_before", "last_error", "refusal")

    def __init__(self, base: float = 0.02, cap: float = 1.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.not_before = 0.0
        self.last_error: Optional[BaseException] = None
        self.refusal: Optional[ProtocolError] = None

    def failed(self, now: float, error: BaseException) -> None:
        self.failures += 1
        self.last_error = error
        self.refusal = None
        delay = min(self.cap, self.base * (2 ** min(self.failures - 1, 16)))
        self.not_before = now + delay * (0.5 + random.random() / 2)

    def auth_refused(self, now: float, error: ProtocolError) -> None:
        """A connection was refused at AUTH: back off, failing calls with this error meanwhile."""
        self.failed(now, error)
        self.refusal = error

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
        self.last_error = None
        self.refusal = None

    def refuse(self, now: float, address: object) -> Optional[BursarError]:
        """The error to fail a call with while backing off, or None if a connect may be tried."""
        if now >= self.not_before:
            return None
        if self.refusal is not None:
            return again(self.refusal)
        err = Unreachable(f"bursard at {address} unreachable ({self.last_error}); next connect "
                          f"attempt in {int((self.not_before - now) * 1000)} ms")
        err.__cause__ = self.last_error
        return err


def retry_delay(attempt: int, base: float = 0.005, cap: float = 0.2) -> float:
    """Pause before SETTLE/RELEASE attempt ``attempt + 1``: exponential, jittered."""
    return min(cap, base * (2 ** min(attempt - 1, 16))) * (0.5 + random.random() / 2)


class ClientBase:
    """The settings both clients take (see ``AsyncClient``), checked once here."""

    def __init__(self, url: str, pool_size: int, timeout: float, settle_timeout: float,
                 connect_timeout: Optional[float], fail_open: bool,
                 tls: Optional[ssl.SSLContext] = None, server_hostname: Optional[str] = None,
                 credential: Optional[str] = None) -> None:
        self.address = parse_address(url)
        # AUTH's digest of the gateway credential (SPEC §6.5), sent first on every connection;
        # None: no AUTH. The secret itself is not kept.
        self._credential_digest = credential_digest(credential)
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise ValueError(f"tls: expected an ssl.SSLContext (bursar.tls_context(...)), got {tls!r}")
        if tls is not None and self.address.kind != "tcp":
            raise ValueError(f"tls: only for tcp:// addresses; the unix socket {self.address} is plain")
        if server_hostname is not None and (tls is None or not isinstance(server_hostname, str) or not server_hostname):
            raise ValueError("server_hostname: a non-empty name, and only with tls")
        #: the TLS context of a mutual-TLS data plane; None: plain
        self.tls = tls
        #: the name bursard's certificate must carry (default: the URL's host)
        self.server_hostname = server_hostname or (self.address.target[0] if tls is not None else None)  # type: ignore[index]
        if type(pool_size) is not int or pool_size < 1:
            raise ValueError(f"pool_size: expected an int >= 1, got {pool_size!r}")
        self.pool_size = pool_size
        self.timeout = check_timeout(timeout, "timeout")
        self.settle_timeout = check_timeout(settle_timeout, "settle_timeout")
        self.connect_timeout = check_timeout(connect_timeout, "connect_timeout") or self.timeout
        self.fail_open = bool(fail_open)
        self._backoff = Backoff()
        self._closed = False
        self._models = ModelCache()


def settle_exhausted(last, attempt: int, is_release: bool) -> BaseException:
    """The error a SETTLE/RELEASE ends with when its budget ran out: the last non-definitive
    status as Overloaded/StoreUnavailable, else the last connection or deadline error."""
    if isinstance(last, BaseException):
        return last
    kind = Overloaded if last.status == ReservationStatus.OVERLOADED else StoreUnavailable
    return kind(last, f"{'RELEASE' if is_release else 'SETTLE'} still "
                      f"{last.status.name_str} after {attempt} attempts; retrying later "
                      f"with the same reservation id is safe")
