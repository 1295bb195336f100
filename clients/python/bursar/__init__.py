"""bursar — Python client for bursard, the rate-limit and budget sidecar for AI gateways.

    import bursar
    async with bursar.AsyncClient("tcp://127.0.0.1:7420") as client:
        r = await client.check(key="sk-br-…", model="gpt-4o-mini", input_tokens=1200,
                               max_output_tokens=800, estimated_cost=1_230_000)
        if r.allowed:
            ...  # call the provider
            await client.settle(r.reservation, input_tokens=1180, output_tokens=312, cost=912_340)

Money is integer nano-USD (1 USD = 1_000_000_000), tokens are integers. See README.md.
"""
from .errors import (
    BursarError,
    ClientClosed,
    ConnectionLost,
    DeadlineExceeded,
    Overloaded,
    ProtocolError,
    StoreUnavailable,
    Unauthorized,
    Unreachable,
)
from .headers import rate_limit_headers
from .protocol import PRICE_FROM_TABLE, digest
from .types import (
    INT64_MAX,
    CheckResult,
    DenyReason,
    ErrorCode,
    FrameType,
    ReservationStatus,
    SettleResult,
    parse_reservation,
    reservation_hex,
)
from ._common import tls_context
from .aio import AsyncClient
from .sync import Client

__version__ = "0.2.0"

__all__ = [
    "AsyncClient", "Client", "digest", "rate_limit_headers", "tls_context",
    "CheckResult", "SettleResult", "DenyReason", "ReservationStatus", "ErrorCode", "FrameType",
    "INT64_MAX", "PRICE_FROM_TABLE", "reservation_hex", "parse_reservation",
    "BursarError", "Unreachable", "ConnectionLost", "DeadlineExceeded", "ProtocolError",
    "Unauthorized", "Overloaded", "StoreUnavailable", "ClientClosed",
]
