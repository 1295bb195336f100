"""The latency bursar.litellm adds to a LiteLLM request: p50/p99 through a proxy with the bursar
callback (custom auth + CHECK before the call; SETTLE after the response, in the background) and
through one without any callback (master key), same fake upstream, non-streaming.

    deploy/litellm-e2e.sh --bench-latency            (LATENCY_N=300 LATENCY_CONCURRENCY=10)

Sequential: LATENCY_N requests per proxy, alternating between the two proxies (so a busy machine
slows both alike). Concurrent: LATENCY_CONCURRENCY callers per proxy, LATENCY_N requests in all
per proxy, one proxy at a time. Measured, not asserted (the test fails only if a request fails).
"""
from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from latency_table import header, pct, row
from conftest import MASTER_KEY, _start_proxy

N = int(os.environ.get("LATENCY_N", "300"))
CONCURRENCY = int(os.environ.get("LATENCY_CONCURRENCY", "10"))
WARMUP = 20
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there world"}], "max_tokens": 5}


@pytest.fixture(scope="module")
def bench_proxies(procs, work, bursar_server, upstream):
    with_bursar = _start_proxy(procs, work, "bench-bursar", bursar_server.data, upstream, variant="bench-bursar")
    without = _start_proxy(procs, work, "bench-none", bursar_server.data, upstream, variant="bench-none")
    key, _ = bursar_server.key()
    return {"with bursar": (with_bursar, key), "without": (without, MASTER_KEY)}


def test_latency_added_by_bursar(bench_proxies, capsys):
    clients = {name: httpx.Client(base_url=p.base, headers={"Authorization": f"Bearer {k}"}, timeout=60)
               for name, (p, k) in bench_proxies.items()}
    lat = {name: [] for name in clients}
    for name, c in clients.items():  # warm up: connections, LiteLLM's caches, bursar's pool
        for _ in range(WARMUP):
            assert c.post("/v1/chat/completions", json=BODY).status_code == 200
    for _ in range(N):
        for name, c in clients.items():
            t = time.perf_counter()
            r = c.post("/v1/chat/completions", json=BODY)
            lat[name].append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    for c in clients.values():
        c.close()

    async def concurrent(base, key):
        out = []
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as c:
            async def worker(n):
                for _ in range(n):
                    t = time.perf_counter()
                    r = await c.post("/v1/chat/completions", json=BODY)
                    out.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
            start = time.perf_counter()
            await asyncio.gather(*(worker(N // CONCURRENCY) for _ in range(CONCURRENCY)))
            return out, time.perf_counter() - start

    conc = {}
    for name, (p, k) in bench_proxies.items():
        conc[name] = asyncio.run(concurrent(p.base, k))
    load = os.getloadavg()
    lines = [f"LiteLLM proxy latency, ms (non-streaming, fake upstream; {os.cpu_count()} CPUs, "
             f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"]
    lines += header("proxy", 30)
    for name, xs in lat.items():
        lines.append(row(f"sequential, {name}", xs, 30))
    for name, (xs, secs) in conc.items():
        lines.append(row(f"{CONCURRENCY} concurrent, {name}", xs, 30) + f" {len(xs) / secs:.0f} req/s")
    d50 = pct(lat["with bursar"], 50) - pct(lat["without"], 50)
    d99 = pct(lat["with bursar"], 99) - pct(lat["without"], 99)
    lines.append(f"added by bursar.litellm, sequential: p50 {d50:+.2f} ms, p99 {d99:+.2f} ms")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
