"""HTTP rate-limit headers derived from a CHECK result.

Only fields the CHECK_RESULT really carries are used (SPEC §7.1): the tighter request bucket and
the tighter token bucket (limit, remaining, ms until drained) and ``retry_after_ms``. Nothing is
invented: a ``*_limit`` of 0 means no such limit and its headers are omitted (SPEC §7.1), and
``Retry-After`` appears only on a deny that carries ``retry_after_ms`` > 0.
"""
from __future__ import annotations

from typing import Dict

from .types import CheckResult

__all__ = ["rate_limit_headers", "format_duration"]


def format_duration(ms: int) -> str:
    """OpenAI's reset format: ``"20ms"``, ``"1s"``, ``"6.5s"``, ``"1m0s"``, ``"1h2m3s"``."""
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    sec = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") if millis else str(seconds)
    if hours:
        return f"{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{minutes}m{sec}s"
    return f"{sec}s"


def _ceil_seconds(ms: int) -> int:
    return -(-ms // 1000)


def rate_limit_headers(result: CheckResult) -> Dict[str, str]:
    """Response headers for a gateway to copy to its caller.

    - OpenAI style: ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
      ``x-ratelimit-reset-requests`` and the ``-tokens`` equivalents (each pair only when that
      limit exists);
    - ``Retry-After`` (whole seconds, rounded up, SPEC §8) on a deny with ``retry_after_ms``;
    - IETF ``RateLimit-Policy`` / ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers):
      one policy per limit, ``"requests"`` and ``"tokens"``, with quota ``q`` per window ``w``
      of 60 s (bursar's limits are per minute), remaining ``r`` and ``t`` = seconds until the
      bucket is full again.

    A fail-open result carries no limits, so it yields no headers.
    """
    headers: Dict[str, str] = {}
    policies = []
    states = []
    for name, limit, remaining, reset_ms in (
        ("requests", result.requests_limit, result.requests_remaining, result.requests_reset_ms),
        ("tokens", result.tokens_limit, result.tokens_remaining, result.tokens_reset_ms),
    ):
        if not limit:
            continue
        headers[f"x-ratelimit-limit-{name}"] = str(limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
        headers[f"x-ratelimit-reset-{name}"] = format_duration(reset_ms)
        policies.append(f'"{name}";q={limit};w=60')
        states.append(f'"{name}";r={remaining};t={_ceil_seconds(reset_ms)}')
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
        headers["RateLimit"] = ", ".join(states)
    if not result.allowed and result.retry_after_ms > 0:
        headers["Retry-After"] = str(_ceil_seconds(result.retry_after_ms))
    return headers
