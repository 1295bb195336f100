"""The bursar wire codec, version 1 (SPEC §3–§11), in both directions.

A client only needs to encode requests and decode answers; the reverse directions are here too so
that every vector of ``proto/vectors/vectors.json`` can be checked byte for byte, and so tests can
play the server. Every integer is big-endian; every layout is one precompiled ``struct.Struct``.

A reservation id is 16 opaque bytes (SPEC §5); here it is one Python int, the bytes read
big-endian (``int.from_bytes(id16, "big")``), which the codec never interprets. The only rule: an
all-zero id is no reservation, so SETTLE and RELEASE refuse it.

Decoding follows the order of checks of SPEC §11.2 exactly, so this decoder refuses a stream with
the same error code, after the same number of bytes, as bursard does:

1. magic, byte by byte, as soon as each byte is present (``bad_magic``);
2. with the whole header: version, type known, type allowed in this direction, ``frame_too_large``,
   ``bad_length`` — before any body byte is awaited;
3. with the whole body: its fields in offset order (``malformed_field``, ERROR's ``bad_length``);
4. a stream that ends inside a frame: ``truncated`` (``Decoder.finish``).
"""
from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple, Optional, Tuple, Union

from .errors import ProtocolError
from .types import (
    CheckResult,
    DenyReason,
    ErrorCode,
    FrameType,
    ReservationStatus,
    SettleResult,
)

__all__ = [
    "MAGIC", "VERSION", "HEADER_SIZE", "MAX_BODY", "MAX_MONEY", "PRICE_FROM_TABLE", "MAX_U32",
    "TO_SERVER", "TO_CLIENT",
    "CheckRequest", "SettleRequest", "ReleaseRequest", "AuthRequest", "AuthResult", "ErrorFrame",
    "Frame",
    "digest", "model_field", "check_digest", "check_u32", "check_money", "check_reservation",
    "encode_check", "encode_settle", "encode_release", "encode_ping", "encode_auth",
    "encode_check_result", "encode_settle_result", "encode_release_result", "encode_pong",
    "encode_auth_result", "encode_error", "encode_frame",
    "decode_frame", "Decoder",
]

MAGIC = 0x4252  # "BR"
VERSION = 1
HEADER_SIZE = 16
MAX_BODY = 4096
MAX_MONEY = (1 << 53) - 1  # money in requests: 0 … 2**53 − 1 nano-USD (SPEC §5)
# A cost of -1 in CHECK or SETTLE: bursar prices the request from the organization's price
# table (SPEC §13.12).
PRICE_FROM_TABLE = -1
MAX_U32 = 0xFFFF_FFFF
MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF
MAX_ERROR_MESSAGE = 256

TO_SERVER = "to_server"  # decode as a server: requests are accepted
TO_CLIENT = "to_client"  # decode as a client: answers are accepted

HEADER = struct.Struct(">HBBIQ")
_CHECK = struct.Struct(">HBBIQ32s64sIIq")
_SETTLE = struct.Struct(">HBBIQQQIIq")
_RELEASE = struct.Struct(">HBBIQQQ")
_AUTH = struct.Struct(">HBBIQ32s")
_CHECK_RESULT = struct.Struct(">HBBIQBBHIQQQQQIIIIIIqqqqq")
_SETTLE_RESULT = struct.Struct(">HBBIQB7xqq")
_ERROR_HEAD = struct.Struct(">HBBIQHH")

_CHECK_BODY = struct.Struct(">32s64sIIq")
_SETTLE_BODY = struct.Struct(">QQIIq")
_RELEASE_BODY = struct.Struct(">QQ")
_CHECK_RESULT_BODY = struct.Struct(">BBHIQQQQQIIIIIIqqqqq")
_SETTLE_RESULT_BODY = struct.Struct(">B7xqq")
_ERROR_BODY_HEAD = struct.Struct(">HH")

# type code -> (fixed body size or None for ERROR, direction it travels)
_TYPES = {
    0x01: (112, TO_SERVER),
    0x02: (32, TO_SERVER),
    0x03: (16, TO_SERVER),
    0x04: (0, TO_SERVER),
    0x05: (32, TO_SERVER),
    0x81: (112, TO_CLIENT),
    0x82: (24, TO_CLIENT),
    0x83: (24, TO_CLIENT),
    0x84: (0, TO_CLIENT),
    0x85: (0, TO_CLIENT),
    0xFF: (None, TO_CLIENT),
}

_REASONS = list(DenyReason)
_FRAME_TYPES = {int(t): t for t in FrameType}
_STATUSES = list(ReservationStatus)
_BAD_MAGIC = int(ErrorCode.BAD_MAGIC)
_MALFORMED = int(ErrorCode.MALFORMED_FIELD)
_BAD_LENGTH = int(ErrorCode.BAD_LENGTH)
_MAX_ERROR_CODE = int(max(ErrorCode))


class CheckRequest(NamedTuple):
    key_digest: bytes
    model: str
    input_tokens: int
    max_output_tokens: int
    estimated_cost: int


class SettleRequest(NamedTuple):
    reservation: int
    input_tokens: int
    output_tokens: int
    cost: int


class ReleaseRequest(NamedTuple):
    reservation: int


class AuthRequest(NamedTuple):
    """AUTH (SPEC §6.5): SHA-256 of the gateway credential's secret text."""

    credential_digest: bytes


class AuthResult(NamedTuple):
    """AUTH_RESULT (SPEC §7.5): the credential was accepted. No fields; its own type so that it
    is never taken for a PONG."""


AUTH_OK = AuthResult()


class ErrorFrame(NamedTuple):
    code: ErrorCode
    message: str


Body = Union[CheckRequest, SettleRequest, ReleaseRequest, AuthRequest, AuthResult, CheckResult,
             SettleResult, ErrorFrame, None]


class Frame(NamedTuple):
    type: FrameType
    request_id: int
    body: Body


# --------------------------------------------------------------------------- validation

def digest(secret: Union[str, bytes]) -> bytes:
    """SHA-256 of an API key's secret (its UTF-8 bytes): the 32-byte ``key_digest`` of a CHECK
    (SPEC §5). bursard never sees the plaintext key."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    elif not isinstance(secret, (bytes, bytearray)):
        raise TypeError("key: expected str or bytes")
    return hashlib.sha256(secret).digest()


def model_field(model: str) -> bytes:
    """The model name's bytes for the 64-byte field (SPEC §5): 1 to 64 bytes of UTF-8 without
    NUL. A longer name is refused, never truncated (it could match another model)."""
    if not isinstance(model, str):
        raise ValueError(f"model: expected str, got {type(model).__name__}")
    try:
        raw = model.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("model: not encodable as well-formed UTF-8 (lone surrogate)") from None
    if not raw:
        raise ValueError("model: must not be empty")
    if len(raw) > 64:
        raise ValueError(f"model: {len(raw)} bytes of UTF-8, at most 64 can be sent")
    if b"\x00" in raw:
        raise ValueError("model: must not contain NUL")
    return raw


def check_digest(key_digest: bytes, field: str = "digest") -> bytes:
    if not isinstance(key_digest, (bytes, bytearray, memoryview)) or len(key_digest) != 32:
        n = len(key_digest) if isinstance(key_digest, (bytes, bytearray, memoryview)) else None
        raise ValueError(f"{field}: expected 32 bytes (a SHA-256 digest), got "
                         f"{n if n is not None else type(key_digest).__name__}")
    return bytes(key_digest)


def check_u32(value: int, field: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_U32:
        raise ValueError(f"{field}: expected an int in 0…4294967295, got {value!r}")
    return value


def check_money(value: int, field: str) -> int:
    if type(value) is not int or not (0 <= value <= MAX_MONEY or value == PRICE_FROM_TABLE):
        raise ValueError(f"{field}: expected integer nano-USD in 0…2**53-1, or PRICE_FROM_TABLE (-1), got {value!r}")
    return value


def check_reservation(reservation: int, field: str = "reservation") -> int:
    """A reservation id as CHECK_RESULT gave it: an int of 16 opaque bytes (SPEC §5), not 0."""
    if type(reservation) is not int or not 0 <= reservation < (1 << 128):
        raise ValueError(f"{field}: expected a reservation id (the int CheckResult.reservation "
                         f"holds, 16 bytes), got {reservation!r}")
    if not reservation:
        raise ValueError(f"{field}: the all-zero id is not a reservation (a denied CHECK has none)")
    return reservation


# --------------------------------------------------------------------------- encoding
# The encoders trust their arguments (the clients validate first); struct.error still stops an
# out-of-range integer, so nothing is ever silently wrapped.

def encode_check(request_id: int, key_digest: bytes, model: bytes, input_tokens: int,
                 max_output_tokens: int, estimated_cost: int) -> bytes:
    """A CHECK frame. ``model`` is the name's UTF-8 bytes (``model_field``); struct pads it."""
    return _CHECK.pack(MAGIC, VERSION, 0x01, 112, request_id, key_digest, model,
                       input_tokens, max_output_tokens, estimated_cost)


def encode_settle(request_id: int, reservation: int, input_tokens: int, output_tokens: int,
                  cost: int) -> bytes:
    return _SETTLE.pack(MAGIC, VERSION, 0x02, 32, request_id, reservation >> 64,
                        reservation & MAX_U64, input_tokens, output_tokens, cost)


def encode_release(request_id: int, reservation: int) -> bytes:
    return _RELEASE.pack(MAGIC, VERSION, 0x03, 16, request_id, reservation >> 64,
                         reservation & MAX_U64)


def encode_ping(request_id: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0x04, 0, request_id)


def encode_auth(request_id: int, credential_digest: bytes) -> bytes:
    """An AUTH frame: ``credential_digest`` is the SHA-256 of the credential's secret (32 bytes)."""
    return _AUTH.pack(MAGIC, VERSION, 0x05, 32, request_id, credential_digest)


def encode_check_result(request_id: int, r: CheckResult) -> bytes:
    return _CHECK_RESULT.pack(
        MAGIC, VERSION, 0x81, 112, request_id, 1 if r.allowed else 0, int(r.reason), r.key_flags,
        r.retry_after_ms, r.reservation >> 64, r.reservation & MAX_U64, r.org_id, r.project_id,
        r.key_id, r.requests_limit, r.requests_remaining, r.requests_reset_ms, r.tokens_limit,
        r.tokens_remaining, r.tokens_reset_ms, r.key_budget_remaining, r.key_budget_resets_at_ms,
        r.project_budget_remaining, r.project_budget_resets_at_ms, r.org_credits_remaining)


def encode_settle_result(request_id: int, status: int, cost_delta: int, token_delta: int) -> bytes:
    return _SETTLE_RESULT.pack(MAGIC, VERSION, 0x82, 24, request_id, status, cost_delta, token_delta)


def encode_release_result(request_id: int, status: int, cost_delta: int, token_delta: int) -> bytes:
    return _SETTLE_RESULT.pack(MAGIC, VERSION, 0x83, 24, request_id, status, cost_delta, token_delta)


def encode_pong(request_id: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0x84, 0, request_id)


def encode_auth_result(request_id: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, 0x85, 0, request_id)


def encode_error(request_id: int, code: int, message: str) -> bytes:
    """An ERROR frame; a message over 256 bytes is cut at a character boundary (SPEC §7.4)."""
    raw = message.encode("utf-8")
    if len(raw) > MAX_ERROR_MESSAGE:
        raw = raw[:MAX_ERROR_MESSAGE].decode("utf-8", "ignore").encode("utf-8")
    return _ERROR_HEAD.pack(MAGIC, VERSION, 0xFF, 4 + len(raw), request_id, code, len(raw)) + raw


def encode_frame(frame: Frame) -> bytes:
    """Encode any decoded ``Frame`` again (both directions)."""
    t, rid, b = frame
    if t == 0x01:
        return encode_check(rid, b.key_digest, b.model.encode("utf-8"), b.input_tokens,
                            b.max_output_tokens, b.estimated_cost)
    if t == 0x02:
        return encode_settle(rid, b.reservation, b.input_tokens, b.output_tokens, b.cost)
    if t == 0x03:
        return encode_release(rid, b.reservation)
    if t == 0x04:
        return encode_ping(rid)
    if t == 0x05:
        return encode_auth(rid, b.credential_digest)
    if t == 0x81:
        return encode_check_result(rid, b)
    if t == 0x82:
        return encode_settle_result(rid, b.status, b.cost_delta, b.token_delta)
    if t == 0x83:
        return encode_release_result(rid, b.status, b.cost_delta, b.token_delta)
    if t == 0x84:
        return encode_pong(rid)
    if t == 0x85:
        return encode_auth_result(rid)
    if t == 0xFF:
        return encode_error(rid, b.code, b.message)
    raise ValueError(f"type: no frame type {t!r}")


# --------------------------------------------------------------------------- decoding

def _refuse(code: int, request_id: int, message: str) -> ProtocolError:
    return ProtocolError(code, message, request_id)


def _decode_model(field: bytes, rid: int) -> str:
    nul = field.find(0)
    if nul == 0:
        raise _refuse(_MALFORMED, rid, "model name is empty")
    if nul > 0:
        if field.count(0, nul) != 64 - nul:
            raise _refuse(_MALFORMED, rid, "model name has a non-NUL byte after its first NUL")
        field = field[:nul]
    try:
        return field.decode("utf-8")  # strict: no overlong forms, surrogates or cut sequences
    except UnicodeDecodeError:
        raise _refuse(_MALFORMED, rid, "model name is not well-formed UTF-8") from None


def _decode_body(t: int, rid: int, buf, off: int, blen: int) -> Body:
    """Decode and check the body of a frame whose header passed (SPEC §11.2 step 3)."""
    if t == 0x81:
        (decision, reason, flags, retry, r_hi, r_lo, org, project, key, rl, rr, rreset,
         tl, tr, treset, kb, kbr, pb, pbr, oc) = _CHECK_RESULT_BODY.unpack_from(buf, off)
        if decision > 1:
            raise _refuse(_MALFORMED, rid, f"decision {decision} is neither 0 nor 1")
        if reason >= len(_REASONS):
            raise _refuse(_MALFORMED, rid, f"deny reason {reason} is not defined")
        if (reason == 0) != (decision == 1):
            raise _refuse(_MALFORMED, rid, f"decision {decision} contradicts reason {reason}")
        return CheckResult(decision == 1, _REASONS[reason], flags, retry, (r_hi << 64) | r_lo,
                           org, project, key, rl, rr, rreset, tl, tr, treset, kb, kbr, pb, pbr, oc)
    if t == 0x82 or t == 0x83:
        status, cost_delta, token_delta = _SETTLE_RESULT_BODY.unpack_from(buf, off)
        if status > 6:
            raise _refuse(_MALFORMED, rid, f"reservation status {status} is not defined")
        return SettleResult(_STATUSES[status], cost_delta, token_delta, t == 0x83)
    if t == 0x84 or t == 0x04:
        return None
    if t == 0x85:
        return AUTH_OK
    if t == 0xFF:
        code, mlen = _ERROR_BODY_HEAD.unpack_from(buf, off)
        if not 1 <= code <= _MAX_ERROR_CODE:
            raise _refuse(_MALFORMED, rid, f"error code {code} is not defined")
        if mlen > MAX_ERROR_MESSAGE or mlen != blen - 4:
            raise _refuse(_BAD_LENGTH, rid,
                          f"error message_length {mlen} with body_length {blen}")
        try:
            message = bytes(buf[off + 4:off + blen]).decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(_MALFORMED, rid, "error message is not well-formed UTF-8") from None
        return ErrorFrame(ErrorCode(code), message)
    if t == 0x01:
        key, model, inp, out, cost = _CHECK_BODY.unpack_from(buf, off)
        name = _decode_model(model, rid)
        if not (0 <= cost <= MAX_MONEY or cost == PRICE_FROM_TABLE):
            raise _refuse(_MALFORMED, rid, f"estimated_cost {cost} outside 0…2**53-1 (or -1)")
        return CheckRequest(key, name, inp, out, cost)
    if t == 0x02:
        hi, lo, inp, out, cost = _SETTLE_BODY.unpack_from(buf, off)
        if not hi and not lo:
            raise _refuse(_MALFORMED, rid, "reservation is all zero")
        if not (0 <= cost <= MAX_MONEY or cost == PRICE_FROM_TABLE):
            raise _refuse(_MALFORMED, rid, f"cost {cost} outside 0…2**53-1 (or -1)")
        return SettleRequest((hi << 64) | lo, inp, out, cost)
    if t == 0x05:
        return AuthRequest(bytes(buf[off:off + 32]))  # any 32 bytes (SPEC §6.5)
    # t == 0x03
    hi, lo = _RELEASE_BODY.unpack_from(buf, off)
    if not hi and not lo:
        raise _refuse(_MALFORMED, rid, "reservation is all zero")
    return ReleaseRequest((hi << 64) | lo)


def decode_frame(buf, direction: str = TO_CLIENT, off: int = 0) -> Optional[Tuple[Frame, int]]:
    """Decode the frame starting at ``buf[off:]``.

    Returns ``(frame, bytes_consumed)``, or None when more bytes are needed (nothing consumed).
    Raises ``ProtocolError`` as soon as the bytes at fault are present (SPEC §11.2); its
    ``request_id`` is the header's when the header was readable, else 0.
    """
    avail = len(buf) - off
    if avail >= 1 and buf[off] != 0x42:
        raise _refuse(_BAD_MAGIC, 0, 'frame does not start with magic "BR"')
    if avail >= 2 and buf[off + 1] != 0x52:
        raise _refuse(_BAD_MAGIC, 0, 'frame does not start with magic "BR"')
    if avail < HEADER_SIZE:
        return None
    _, version, t, blen, rid = HEADER.unpack_from(buf, off)
    if version != VERSION:
        raise _refuse(2, rid, f"version {version}; this client speaks version 1")
    spec = _TYPES.get(t)
    if spec is None:
        raise _refuse(3, rid, f"frame type 0x{t:02x} is not defined")
    size, way = spec
    if way != direction:
        raise _refuse(4, rid, f"frame type 0x{t:02x} does not travel {direction}")
    if blen > MAX_BODY:
        raise _refuse(6, rid, f"body_length {blen} > 4096")
    if size is None:
        if not 4 <= blen <= 260:
            raise _refuse(_BAD_LENGTH, rid, f"ERROR body_length {blen} outside 4…260")
    elif blen != size:
        raise _refuse(_BAD_LENGTH, rid, f"body_length {blen}, frame type 0x{t:02x} has {size}")
    if avail < HEADER_SIZE + blen:
        return None
    body = _decode_body(t, rid, buf, off + HEADER_SIZE, blen)
    return Frame(_FRAME_TYPES[t], rid, body), HEADER_SIZE + blen


class Decoder:
    """An incremental decoder for one direction of one connection: ``feed`` bytes as they
    arrive, take frames with ``next``; ``finish`` when the stream ends (``truncated`` if it ends
    inside a frame). After a refusal the stream cannot be recovered (SPEC §11.4)."""

    def __init__(self, direction: str = TO_CLIENT) -> None:
        self.direction = direction
        self._buf = bytearray()
        self._off = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Optional[Frame]:
        got = decode_frame(self._buf, self.direction, self._off)
        if got is None:
            if self._off:
                del self._buf[:self._off]
                self._off = 0
            return None
        frame, n = got
        self._off += n
        return frame

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._off

    def finish(self) -> None:
        if self.buffered:
            raise _refuse(int(ErrorCode.TRUNCATED), 0, "stream ended inside a frame")
