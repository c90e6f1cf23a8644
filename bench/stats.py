"""Small statistics shared by the benchmarks."""
from __future__ import annotations

import math
import statistics


def percentile(values: list[float], q: float) -> float | None:
    """Return the ``q`` quantile (0..1) of ``values`` by the nearest-rank method, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def summary(latencies_ms: list[float], count: int, seconds: float) -> dict:
    """Throughput (per second) and p50/p99 latency (milliseconds) of one measured pass."""
    return {"throughput": count / seconds if seconds > 0 else 0.0, "count": count, "seconds": seconds,
            "p50_ms": percentile(latencies_ms, 0.50), "p99_ms": percentile(latencies_ms, 0.99)}


def median_pass(passes: list[dict]) -> dict:
    """Return the pass with the median throughput (of an odd number of passes, the middle one)."""
    ordered = sorted(passes, key=lambda p: p["throughput"])
    middle = ordered[len(ordered) // 2]
    return {**middle, "passes": [round(p["throughput"], 1) for p in passes],
            "median_of": len(passes), "spread": _spread(passes)}


def _spread(passes: list[dict]) -> float:
    values = [p["throughput"] for p in passes]
    if len(values) < 2 or not statistics.mean(values):
        return 0.0
    return (max(values) - min(values)) / statistics.mean(values)
