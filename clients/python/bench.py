#!/usr/bin/env python3
"""Client-side cost of CHECK+SETTLE pairs from one asyncio process.

    python3 bench.py --url tcp://127.0.0.1:7420 --key sk-br-… [--tasks 64] [--seconds 10]

N tasks each loop CHECK → SETTLE (a deny is counted and the task goes on).
Prints decisions/s and the process's CPU µs per decision (time.process_time, user + system),
which is what the client costs; bursard's own CPU is not in it. A decision is one CHECK+SETTLE
pair; denied CHECKs (e.g. ``overloaded`` from a saturated debug bursard) are reported apart, and
the CPU per answered request is printed too.

    python3 bench.py --fake [--tasks 64]

runs against a stand-in server in a child process that answers every CHECK allowed and every
SETTLE applied at once, to measure the client alone when bursard (or the machine) is the
bottleneck. Its figures are the client's cost, not bursar's throughput.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bursar  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    digest = bursar.digest(args.key)
    done = 0
    requests = 0
    denied: dict = {}
    errors = 0
    stop = False

    async with bursar.AsyncClient(args.url, pool_size=args.pool, timeout=args.timeout) as client:
        async def worker() -> None:
            nonlocal done, denied, errors, requests
            while not stop:
                requests += 1
                try:
                    r = await client.check(digest=digest, model=args.model, input_tokens=100,
                                           max_output_tokens=50, estimated_cost=1000)
                    if r.allowed:
                        await client.settle(r.reservation, input_tokens=90, output_tokens=40,
                                            cost=900)
                        requests += 1
                        done += 1
                    else:
                        denied[r.reason.name_str] = denied.get(r.reason.name_str, 0) + 1
                except bursar.BursarError:
                    errors += 1

        await client.ping()
        tasks = [asyncio.ensure_future(worker()) for _ in range(args.tasks)]
        await asyncio.sleep(args.warmup)
        d0, q0, c0, w0 = done, requests, time.process_time(), time.perf_counter()
        await asyncio.sleep(args.seconds)
        d1, q1, c1, w1 = done, requests, time.process_time(), time.perf_counter()
        stop = True
        await asyncio.gather(*tasks)
    n = d1 - d0
    print(f"tasks={args.tasks} pool={args.pool} seconds={w1 - w0:.1f}")
    print(f"decisions (CHECK+SETTLE pairs): {n}  -> {n / (w1 - w0):,.0f}/s")
    print(f"client CPU per decision: {(c1 - c0) / max(n, 1) * 1e6:.1f} µs "
          f"(process CPU {c1 - c0:.2f} s)")
    print(f"client CPU per request (CHECK or SETTLE): {(c1 - c0) / max(q1 - q0, 1) * 1e6:.1f} µs "
          f"over {q1 - q0} requests")
    print(f"denied={denied} errors={errors}")


def serve_fake(port_file: str) -> None:
    """A stand-in that answers at once: CHECK allowed, SETTLE applied (for --fake)."""
    from bursar import protocol as p
    from bursar.types import CheckResult, DenyReason, INT64_MAX

    reservation = bursar.parse_reservation("5f3a9c0e7d21b4a86e0f1c2d3b4a5968")  # opaque to clients
    allow = CheckResult(True, DenyReason.NONE, 0, 0, reservation, 1, 1, 1,
                        0, 0, 0, 0, 0, 0, INT64_MAX, 0, INT64_MAX, 0, INT64_MAX)

    class Fake(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.dec = p.Decoder(p.TO_SERVER)

        def data_received(self, data):
            self.dec.feed(data)
            out = []
            while (f := self.dec.next()) is not None:
                if f.type == 1:
                    out.append(p.encode_check_result(f.request_id, allow))
                elif f.type == 2:
                    out.append(p.encode_settle_result(f.request_id, 0, 0, 0))
                else:
                    out.append(p.encode_pong(f.request_id))
            self.t.write(b"".join(out))

    async def run() -> None:
        srv = await asyncio.get_running_loop().create_server(Fake, "127.0.0.1", 0)
        with open(port_file, "w") as fh:
            fh.write(str(srv.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="tcp://127.0.0.1:7420")
    ap.add_argument("--key", default="sk-br-bench", help="an API key secret sk-br-… with no limits")
    ap.add_argument("--fake", action="store_true", help="bench against an instant stand-in server")
    ap.add_argument("--serve-fake", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args()
    if a.serve_fake:
        serve_fake(a.serve_fake)
    elif a.fake:
        import subprocess
        import tempfile
        port_file = tempfile.mktemp()
        child = subprocess.Popen([sys.executable, __file__, "--serve-fake", port_file])
        try:
            while not (os.path.exists(port_file) and open(port_file).read()):
                time.sleep(0.05)
            a.url = f"tcp://127.0.0.1:{open(port_file).read()}"
            print("against the instant stand-in server (client cost only)")
            asyncio.run(main(a))
        finally:
            child.terminate()
            child.wait()
            os.unlink(port_file)
    else:
        asyncio.run(main(a))
