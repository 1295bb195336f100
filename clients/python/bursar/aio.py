"""The asyncio client (skeleton: public API; implementation follows)."""
from __future__ import annotations

from typing import Optional, Union

from .types import CheckResult, SettleResult


class AsyncClient:
    """A pool of pipelined connections to one bursard.

    AsyncClient(url, pool_size=2, timeout=0.25, *, settle_timeout=2.0, connect_timeout=None,
                fail_open=False)
    url: "tcp://host:port" or "unix:///path/to.sock"; timeout: per-call deadline in seconds.
    """

    def __init__(self, url: str, pool_size: int = 2, timeout: float = 0.25, *,
                 settle_timeout: float = 2.0, connect_timeout: Optional[float] = None,
                 fail_open: bool = False) -> None:
        raise NotImplementedError

    async def check(self, *, key: Union[str, bytes, None] = None, digest: Optional[bytes] = None,
                    model: str, input_tokens: int, max_output_tokens: int, estimated_cost: int,
                    timeout: Optional[float] = None) -> CheckResult:
        raise NotImplementedError

    async def settle(self, reservation: int, *, input_tokens: int, output_tokens: int, cost: int,
                     timeout: Optional[float] = None) -> SettleResult:
        raise NotImplementedError

    async def release(self, reservation: int, *, timeout: Optional[float] = None) -> SettleResult:
        raise NotImplementedError

    async def ping(self, *, timeout: Optional[float] = None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
