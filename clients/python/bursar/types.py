"""Enumerations and result types of the bursar protocol (SPEC §4, §7, §8, §10, §11).

Money is integer nano-USD and tokens are integers everywhere; nothing here is a float.

A reservation id is 16 bytes, **opaque** (SPEC §5): bursard encrypts it, and a client copies it
from CHECK_RESULT into SETTLE or RELEASE unchanged, never building, parsing or altering one. The
client represents it as one Python int, the 16 bytes read big-endian, so it can be stored,
compared and hashed as a plain value; 0 (all zero) means no reservation. Its text form is 32
lowercase hex digits, as bursard's Envoy front door sets it in ``x-bursar-reservation``
(``reservation_hex``, ``parse_reservation``).
"""
from __future__ import annotations

import enum
__all__ = [
    "FrameType",
    "ErrorCode",
    "DenyReason",
    "ReservationStatus",
    "CheckResult",
    "SettleResult",
    "reservation_hex",
    "parse_reservation",
    "INT64_MAX",
    "FLAG_CONTENT_LOGGING_DISABLED",
    "FLAG_ADMITTED_LOCALLY",
]

INT64_MAX = 0x7FFF_FFFF_FFFF_FFFF
FLAG_CONTENT_LOGGING_DISABLED = 0x0001
FLAG_ADMITTED_LOCALLY = 0x0002
_HEX = frozenset("0123456789abcdefABCDEF")


def reservation_hex(reservation: int) -> str:
    """A reservation id as text: its 16 bytes as 32 lowercase hex digits (the form of the
    ``x-bursar-reservation`` header, SPEC §18.2). Only for showing, storing or passing it on."""
    if type(reservation) is not int or not 0 <= reservation < (1 << 128):
        raise ValueError(f"reservation: expected a reservation id (int of 16 bytes), got {reservation!r}")
    return f"{reservation:032x}"


def parse_reservation(text: str) -> int:
    """The int form of a reservation id written as 32 hex digits, e.g. the ``x-bursar-reservation``
    header bursard's Envoy front door sets (SPEC §18.2, §19), to SETTLE or RELEASE it over the
    binary protocol. Anything else raises ValueError; the all-zero id is refused (no reservation)."""
    if not isinstance(text, str) or len(text) != 32 or not _HEX.issuperset(text):
        raise ValueError(f"reservation: expected 32 hex digits, got {text!r}")
    value = int(text, 16)
    if not value:
        raise ValueError("reservation: the all-zero id is not a reservation (a denied CHECK has none)")
    return value


class FrameType(enum.IntEnum):
    """Frame type codes (SPEC §4); answers have the high bit set."""

    CHECK = 0x01
    SETTLE = 0x02
    RELEASE = 0x03
    PING = 0x04
    AUTH = 0x05
    CHECK_RESULT = 0x81
    SETTLE_RESULT = 0x82
    RELEASE_RESULT = 0x83
    PONG = 0x84
    AUTH_RESULT = 0x85
    ERROR = 0xFF

    @property
    def name_str(self) -> str:
        return self.name.lower()


class ErrorCode(enum.IntEnum):
    """Protocol error codes (SPEC §11.1)."""

    BAD_MAGIC = 1
    UNSUPPORTED_VERSION = 2
    UNKNOWN_FRAME_TYPE = 3
    UNEXPECTED_FRAME_TYPE = 4
    BAD_LENGTH = 5
    FRAME_TOO_LARGE = 6
    MALFORMED_FIELD = 7
    TRUNCATED = 8
    INTERNAL_ERROR = 9
    TOO_MANY_CONNECTIONS = 10
    IDLE_TIMEOUT = 11
    FRAME_TIMEOUT = 12
    UNAUTHORIZED = 13

    @property
    def name_str(self) -> str:
        """The wire name, e.g. ``"bad_magic"``."""
        return self.name.lower()


# HTTP status a gateway answers for each deny reason (SPEC §8).
_HTTP = [200, 401, 401, 401, 403, 403, 403, 403, 429, 429, 429, 429, 402, 402, 402, 429, 503, 503, 429, 403]


class DenyReason(enum.IntEnum):
    """Why a CHECK was denied (SPEC §8). ``NONE`` only on an allow."""

    NONE = 0
    UNKNOWN_KEY = 1
    KEY_REVOKED = 2
    KEY_EXPIRED = 3
    CREATOR_LOST_ACCESS = 4
    PROJECT_INACTIVE = 5
    ORG_SUSPENDED = 6
    MODEL_NOT_ALLOWED = 7
    KEY_RPM = 8
    KEY_TPM = 9
    PROJECT_RPM = 10
    PROJECT_TPM = 11
    KEY_BUDGET = 12
    PROJECT_BUDGET = 13
    ORG_CREDITS = 14
    REQUEST_TOO_LARGE = 15
    STORE_UNAVAILABLE = 16
    OVERLOADED = 17
    KEY_LOOKUPS_THROTTLED = 18
    PRICE_UNKNOWN = 19

    @property
    def name_str(self) -> str:
        """The wire name, e.g. ``"key_rpm"``."""
        return self.name.lower()

    @property
    def http_status(self) -> int:
        """The HTTP status SPEC §8 tells a gateway to answer with (402 for budgets; a gateway
        wanting OpenAI compatibility MAY use 429 ``insufficient_quota`` instead)."""
        return _HTTP[self]

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later without anyone changing anything:
        rate limits, the store and overload (reasons 8–11, 16–18)."""
        return 8 <= self <= 11 or 16 <= self <= 18


class ReservationStatus(enum.IntEnum):
    """What a SETTLE or RELEASE did (SPEC §10)."""

    APPLIED = 0
    ALREADY_SETTLED = 1
    ALREADY_RELEASED = 2
    EXPIRED = 3
    UNKNOWN = 4
    STORE_UNAVAILABLE = 5
    OVERLOADED = 6

    @property
    def name_str(self) -> str:
        return self.name.lower()

    @property
    def definitive(self) -> bool:
        """False for ``store_unavailable`` and ``overloaded``: the client retries those with the
        same reservation id (SETTLE/RELEASE are idempotent, SPEC §10, §13.4)."""
        return self < 5


class CheckResult:
    """A CHECK_RESULT (SPEC §7.1), every field it carries, plus what the client adds.

    Sentinels are kept as on the wire: a ``*_limit`` of 0 means no such limit, a money
    ``*_remaining`` of ``INT64_MAX`` means not metered, a ``*_resets_at_ms`` of 0 means never.
    ``fail_open`` is True only for a result the *client* made up because bursard could not be
    reached and the client was built with ``fail_open=True``; it is never set otherwise.
    """

    __slots__ = (
        "allowed", "reason", "key_flags", "retry_after_ms", "reservation",
        "org_id", "project_id", "key_id",
        "requests_limit", "requests_remaining", "requests_reset_ms",
        "tokens_limit", "tokens_remaining", "tokens_reset_ms",
        "key_budget_remaining", "key_budget_resets_at_ms",
        "project_budget_remaining", "project_budget_resets_at_ms",
        "org_credits_remaining", "fail_open",
    )

    allowed: bool
    reason: DenyReason
    key_flags: int
    retry_after_ms: int
    reservation: int
    org_id: int
    project_id: int
    key_id: int
    requests_limit: int
    requests_remaining: int
    requests_reset_ms: int
    tokens_limit: int
    tokens_remaining: int
    tokens_reset_ms: int
    key_budget_remaining: int
    key_budget_resets_at_ms: int
    project_budget_remaining: int
    project_budget_resets_at_ms: int
    org_credits_remaining: int
    fail_open: bool

    def __init__(self, allowed, reason, key_flags, retry_after_ms, reservation, org_id,
                 project_id, key_id, requests_limit, requests_remaining, requests_reset_ms,
                 tokens_limit, tokens_remaining, tokens_reset_ms, key_budget_remaining,
                 key_budget_resets_at_ms, project_budget_remaining,
                 project_budget_resets_at_ms, org_credits_remaining, fail_open=False):
        self.allowed = allowed
        self.reason = reason
        self.key_flags = key_flags
        self.retry_after_ms = retry_after_ms
        self.reservation = reservation
        self.org_id = org_id
        self.project_id = project_id
        self.key_id = key_id
        self.requests_limit = requests_limit
        self.requests_remaining = requests_remaining
        self.requests_reset_ms = requests_reset_ms
        self.tokens_limit = tokens_limit
        self.tokens_remaining = tokens_remaining
        self.tokens_reset_ms = tokens_reset_ms
        self.key_budget_remaining = key_budget_remaining
        self.key_budget_resets_at_ms = key_budget_resets_at_ms
        self.project_budget_remaining = project_budget_remaining
        self.project_budget_resets_at_ms = project_budget_resets_at_ms
        self.org_credits_remaining = org_credits_remaining
        self.fail_open = fail_open

    @classmethod
    def failed_open(cls) -> "CheckResult":
        """The allowed result a ``fail_open=True`` client returns when bursard is unreachable
        or late: no reservation (0), no limits, ``fail_open`` True."""
        return cls(True, DenyReason.NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                   INT64_MAX, 0, INT64_MAX, 0, INT64_MAX, True)

    @property
    def http_status(self) -> int:
        """The HTTP status for this decision (200 on allow; SPEC §8 on deny)."""
        return self.reason.http_status

    @property
    def content_logging_disabled(self) -> bool:
        """key_flags bit 0: the gateway MUST NOT log request or response content."""
        return bool(self.key_flags & FLAG_CONTENT_LOGGING_DISABLED)

    @property
    def admitted_locally(self) -> bool:
        """key_flags bit 1: bursard admitted this without Redis (store failure policy, §13.9)."""
        return bool(self.key_flags & FLAG_ADMITTED_LOCALLY)

    @property
    def reservation_hex(self) -> str:
        """The reservation id as 32 lowercase hex digits (``"0" * 32`` when there is none)."""
        return f"{self.reservation:032x}"

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckResult) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        if self.allowed:
            return (f"CheckResult(allowed=True, reservation={self.reservation:032x}, "
                    f"key_id={self.key_id}{', fail_open=True' if self.fail_open else ''})")
        return (f"CheckResult(allowed=False, reason={self.reason.name_str}, "
                f"retry_after_ms={self.retry_after_ms}, key_id={self.key_id})")


class SettleResult:
    """A SETTLE_RESULT or RELEASE_RESULT (SPEC §7.2).

    ``cost_delta`` (nano-USD) and ``token_delta`` are how far the counters moved (0 unless
    APPLIED). ``attempts`` is how many times the client sent the request (retries after a lost
    connection or a non-definitive status). ``ok`` is True when the reservation ended as the
    caller asked: APPLIED, or ALREADY_SETTLED for a SETTLE / ALREADY_RELEASED for a RELEASE
    (the earlier attempt took effect, SPEC §10).
    """

    __slots__ = ("status", "cost_delta", "token_delta", "is_release", "attempts", "fail_open")

    def __init__(self, status: ReservationStatus, cost_delta: int, token_delta: int,
                 is_release: bool = False, attempts: int = 1, fail_open: bool = False) -> None:
        self.status = status
        self.cost_delta = cost_delta
        self.token_delta = token_delta
        self.is_release = is_release
        self.attempts = attempts
        self.fail_open = fail_open

    @classmethod
    def failed_open(cls, is_release: bool) -> "SettleResult":
        """What a ``fail_open=True`` client answers for reservation 0 (a CHECK that failed open):
        nothing to settle or release, status UNKNOWN, ``fail_open`` True, bursard not asked."""
        return cls(ReservationStatus.UNKNOWN, 0, 0, is_release, 0, True)

    @property
    def ok(self) -> bool:
        s = self.status
        if s == 0:
            return True
        return s == (2 if self.is_release else 1)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SettleResult) and self.status == other.status
                and self.cost_delta == other.cost_delta and self.token_delta == other.token_delta
                and self.is_release == other.is_release)

    def __repr__(self) -> str:
        kind = "ReleaseResult" if self.is_release else "SettleResult"
        return (f"{kind}(status={self.status.name_str}, cost_delta={self.cost_delta}, "
                f"token_delta={self.token_delta}, attempts={self.attempts})")

