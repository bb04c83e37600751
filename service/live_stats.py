"""Rates and latency percentiles over the last seconds, read from the app's Prometheus metrics.

Prometheus keeps counters and cumulative histograms; rates and percentiles over a window are
what its server computes at query time (`rate`, `histogram_quantile`). The demo page has no
Prometheus, so `GET /v1/stats` does the same here: each call snapshots the counters, and the
answer is the difference from the newest snapshot at least `window_s` old (or the oldest one,
taken when the app was created). Percentiles are interpolated inside histogram buckets, as
`histogram_quantile` does, so they are as coarse as `LATENCY_BUCKETS`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from service.metrics import Metrics
from service.schemas import Stats

ROUTE = "/v1/recommend"


@dataclass(frozen=True)
class Snapshot:
    at: float
    answered: float  # recommendation requests answered, any status
    failed: float  # … with a 4xx/5xx status
    buckets: dict[float, float] = field(default_factory=dict)  # le → successful requests
    shed: float = 0.0
    width_sum: float = 0.0
    width_count: float = 0.0
    cache_hits: float = 0.0
    cache_lookups: float = 0.0


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """`histogram_quantile`: cumulative counts by upper bound → the q-quantile, linear inside
    its bucket (from 0 in the first); the +Inf bucket answers its lower bound."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


class LiveStats:
    """Snapshots of one app's `Metrics`; `stats()` answers `GET /v1/stats`."""

    def __init__(
        self, metrics: Metrics, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics, self.window_s, self.clock = metrics, window_s, clock
        self.snapshots: deque[Snapshot] = deque(maxlen=256)
        self.snapshots.append(self.snapshot())

    def snapshot(self) -> Snapshot:
        answered = failed = 0.0
        buckets: dict[float, float] = {}
        for family in self.metrics.latency.collect():
            for s in family.samples:
                if s.labels.get("route") != ROUTE:
                    continue
                status = s.labels.get("status", "")
                if s.name.endswith("_count"):
                    answered += s.value
                    failed += s.value if status[:1] in {"4", "5"} else 0.0
                elif s.name.endswith("_bucket") and status.startswith("2"):
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
        value = self.metrics.registry.get_sample_value
        width_sum = value("genrec_beam_width_sum") or 0.0
        width_count = value("genrec_beam_width_count") or 0.0
        hits = value("genrec_cache_requests_total", {"result": "hit"}) or 0.0
        misses = value("genrec_cache_requests_total", {"result": "miss"}) or 0.0
        return Snapshot(
            self.clock(),
            answered,
            failed,
            buckets,
            value("genrec_overloaded_requests_total") or 0.0,
            width_sum,
            width_count,
            hits,
            hits + misses,
        )

    def stats(self) -> Stats:
        now = self.snapshot()
        old = next(
            (s for s in reversed(self.snapshots) if now.at - s.at >= self.window_s),
            self.snapshots[0],
        )
        if now.at - self.snapshots[-1].at >= 1.0:  # ≤ one kept per second, however many poll
            self.snapshots.append(now)
        dt = max(now.at - old.at, 1e-9)
        latency = {le: n - old.buckets.get(le, 0.0) for le, n in now.buckets.items()}
        p50, p99 = quantile(0.5, latency), quantile(0.99, latency)
        widths = now.width_count - old.width_count
        lookups = now.cache_lookups - old.cache_lookups
        value = self.metrics.registry.get_sample_value
        server_width = value("genrec_beam_width_current") or 0.0
        version = self.metrics.model_version
        return Stats(
            model_version=version() if version else None,
            window_s=round(dt, 3),
            requests_per_s=(now.answered - old.answered) / dt,
            p50_ms=None if p50 is None else 1000 * p50,
            p99_ms=None if p99 is None else 1000 * p99,
            errors_per_s=(now.failed - old.failed) / dt,
            shed_per_s=(now.shed - old.shed) / dt,
            beam_width=int(server_width) or None,
            mean_beam_width=(now.width_sum - old.width_sum) / widths if widths else None,
            queue_depth=int(value("genrec_queue_depth") or 0),
            cache_hit_rate=(now.cache_hits - old.cache_hits) / lookups if lookups else None,
        )
