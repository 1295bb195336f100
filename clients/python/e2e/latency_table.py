"""Percentiles and table rows for the latency benchmarks (bench_latency.py, bench_envoy.py)."""
from __future__ import annotations

import statistics


def pct(xs, q):
    """The q-th percentile of xs (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def header(first: str, width: int) -> list:
    return [f"| {first:<{width}} |     n |      p50 |      p90 |      p99 |     mean |",
            f"|{'-' * (width + 2)}|------:|---------:|---------:|---------:|---------:|"]


def row(name: str, xs, width: int) -> str:
    return (f"| {name:<{width}} | {len(xs):>5} | {pct(xs, 50):>8.2f} | {pct(xs, 90):>8.2f} | {pct(xs, 99):>8.2f} "
            f"| {statistics.mean(xs):>8.2f} |")
