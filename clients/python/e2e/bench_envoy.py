"""The latency bursar adds to a request through Envoy: p50/p99 through three Envoys in front of
the same fake upstream, non-streaming:

- **no filters**: Envoy routing straight to the upstream;
- **ext_authz + rate limit service**: ``deploy/envoy/envoy.yaml`` (a CHECK before the request,
  priced by bursar's price table; a SETTLE once the response is sent);
- **rate limit service alone**: ``deploy/envoy/envoy-rls.yaml``.

    deploy/envoy-e2e.sh --bench-latency            (LATENCY_N=300 LATENCY_CONCURRENCY=16)

Sequential: LATENCY_N requests per Envoy, alternating between them (so a busy machine slows all
alike). Concurrent: LATENCY_CONCURRENCY callers per Envoy, LATENCY_N × 4 requests in all, one Envoy
at a time; its requests per second are decisions per second (one CHECK and one SETTLE each) for
the two with bursar. Measured, not asserted (the test fails only if a request fails).
"""
from __future__ import annotations

import http.client
import json
import os
import threading
import time

from latency_table import header, pct, row
from test_envoy import _start_envoy

N = int(os.environ.get("LATENCY_N", "300"))
CONCURRENCY = int(os.environ.get("LATENCY_CONCURRENCY", "16"))
WARMUP = 30
MODEL = "bench-gpt-4o-mini"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hello there world"}], "max_tokens": 5})

# Envoy routing straight to the upstream: the baseline.
PLAIN = """static_resources:
  listeners:
  - name: gateway
    address: {socket_address: {address: 127.0.0.1, port_value: ${LISTEN_PORT}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          route_config:
            virtual_hosts:
            - {name: upstream, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: upstream, timeout: 60s}}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${UPSTREAM_PORT}}}}}]}]
"""


class Caller:
    """One keep-alive HTTP/1.1 connection to an Envoy."""

    def __init__(self, base: str, key: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def call(self) -> float:
        t = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", body=BODY, headers=self.headers)
        r = self.conn.getresponse()
        body = r.read()
        elapsed = (time.perf_counter() - t) * 1000
        assert r.status == 200, (r.status, body)
        return elapsed


def test_latency_added_by_bursar_through_envoy(procs, work, bursar_server, upstream, capsys):
    bursar_server.run("project", "create", "Bench", "--models", MODEL)
    bursar_server.run("price", "set", MODEL, "--input", "0.15", "--output", "0.60")
    key, _ = bursar_server.key("--budget", "$1000", project="Bench")
    plain = work / "envoy-plain-template.yaml"
    plain.write_text(PLAIN)
    envoys = {
        "no filters": _start_envoy(procs, work, bursar_server, upstream, "bench-plain", str(plain)),
        "ext_authz + rate limit service": _start_envoy(procs, work, bursar_server, upstream, "bench-both", "envoy.yaml"),
        "rate limit service alone": _start_envoy(procs, work, bursar_server, upstream, "bench-rls", "envoy-rls.yaml"),
    }
    callers = {name: Caller(e.base, key) for name, e in envoys.items()}
    for c in callers.values():
        for _ in range(WARMUP):
            c.call()
    lat = {name: [] for name in callers}
    for _ in range(N):
        for name, c in callers.items():
            lat[name].append(c.call())

    def concurrent(base: str):
        out, lock = [], threading.Lock()

        def worker(n):
            c = Caller(base, key)
            mine = [c.call() for _ in range(n)]
            with lock:
                out.extend(mine)
        threads = [threading.Thread(target=worker, args=(N * 4 // CONCURRENCY,)) for _ in range(CONCURRENCY)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out, time.perf_counter() - start

    conc = {name: concurrent(e.base) for name, e in envoys.items()}
    load = os.getloadavg()
    lines = [f"Envoy 1.40 latency, ms (non-streaming, fake upstream; {os.cpu_count()} CPUs, "
             f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"]
    lines += header("Envoy", 44)
    for name, xs in lat.items():
        lines.append(row(f"sequential, {name}", xs, 44))
    for name, (xs, secs) in conc.items():
        lines.append(row(f"{CONCURRENCY} concurrent, {name}", xs, 44) + f" {len(xs) / secs:.0f} req/s")
    for name in ("ext_authz + rate limit service", "rate limit service alone"):
        d50 = pct(lat[name], 50) - pct(lat["no filters"], 50)
        d99 = pct(lat[name], 99) - pct(lat["no filters"], 99)
        lines.append(f"added by bursar ({name}), sequential: p50 {d50:+.2f} ms, p99 {d99:+.2f} ms")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
