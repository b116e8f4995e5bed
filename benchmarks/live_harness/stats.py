"""What bench_live reports: nearest-rank percentiles, a least-squares slope, a timeline."""

from __future__ import annotations

import math
from collections.abc import Sequence

from live_harness.publish import Progress


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list.

    None when there are no values or the rank falls on an unbounded one (a trigger whose command
    never came is kept as +inf, so missing commands can only raise a percentile, never hide).
    """
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    value = float(sorted_values[int(rank) - 1])
    return None if math.isinf(value) else value


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def timeline(samples: list[tuple[float, Progress]], every_s: float) -> list[tuple[int, int]]:
    """(seconds since the steady phase began, undelivered entries) every `every_s` seconds."""
    out: list[tuple[int, int]] = []
    for t, p in samples:
        if t >= len(out) * every_s:
            out.append((round(t), p.undelivered))
    return out
