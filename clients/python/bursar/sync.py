"""The blocking client (skeleton: public API; implementation follows)."""
from __future__ import annotations

from typing import Optional, Union

from .types import CheckResult, SettleResult


class Client:
    """Blocking, thread-safe twin of AsyncClient with the same methods and semantics."""

    def __init__(self, url: str, pool_size: int = 2, timeout: float = 0.25, *,
                 settle_timeout: float = 2.0, connect_timeout: Optional[float] = None,
                 fail_open: bool = False) -> None:
        raise NotImplementedError

    def check(self, *, key: Union[str, bytes, None] = None, digest: Optional[bytes] = None,
              model: str, input_tokens: int, max_output_tokens: int, estimated_cost: int,
              timeout: Optional[float] = None) -> CheckResult:
        raise NotImplementedError

    def settle(self, reservation: int, *, input_tokens: int, output_tokens: int, cost: int,
               timeout: Optional[float] = None) -> SettleResult:
        raise NotImplementedError

    def release(self, reservation: int, *, timeout: Optional[float] = None) -> SettleResult:
        raise NotImplementedError

    def ping(self, *, timeout: Optional[float] = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
