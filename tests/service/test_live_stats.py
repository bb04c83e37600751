"""GET /v1/stats' numbers: rates and percentiles over a window of the app's Prometheus metrics."""

from __future__ import annotations

import pytest

from service.batcher import BatchStats
from service.live_stats import LiveStats, quantile
from service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(metrics: Metrics, seconds: list[float], status: str = "200") -> None:
    for s in seconds:
        metrics.latency.labels("/v1/recommend", "POST", status).observe(s)


def test_quantile_interpolates_inside_buckets_like_prometheus():
    buckets = {0.01: 50.0, 0.02: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.75, buckets) == pytest.approx(0.015)
    assert quantile(0.25, buckets) == pytest.approx(0.005)  # from 0 in the first bucket
    assert quantile(0.99, {0.01: 0.0, float("inf"): 10.0}) == 0.01  # +Inf: its lower bound
    assert quantile(0.5, {0.01: 0.0, float("inf"): 0.0}) is None


def test_rates_and_percentiles_cover_the_last_window_only():
    metrics, clock = Metrics(), Clock()
    metrics.watch_model(lambda: "v7")
    live = LiveStats(metrics, window_s=10.0, clock=clock)
    serve(metrics, [0.2] * 40)  # an old burst of slow requests
    clock.now += 10
    first = live.stats()
    assert first.requests_per_s == pytest.approx(4.0) and first.p50_ms > 150
    clock.now += 10
    serve(metrics, [0.004] * 30)
    serve(metrics, [0.004] * 10, status="422")
    for width in (64, 32):
        metrics.batch(BatchStats(size=1, width=width, seconds=0.01, queued=0))
        metrics.beam_width.observe(width)
    s = live.stats()
    assert s.window_s == pytest.approx(10.0)
    assert s.requests_per_s == pytest.approx(4.0)  # 40 answered in the last 10 s
    assert s.errors_per_s == pytest.approx(1.0)
    assert 2 < s.p50_ms < 5 and s.p99_ms < 5  # the old slow burst is out of the window
    assert s.beam_width == 32 and s.mean_beam_width == pytest.approx(48)
    assert s.model_version == "v7" and s.queue_depth == 0 and s.cache_hit_rate is None


def test_other_routes_do_not_count():
    metrics, clock = Metrics(), Clock()
    live = LiveStats(metrics, clock=clock)
    metrics.latency.labels("/v1/stats", "GET", "200").observe(0.001)
    clock.now += 1
    s = live.stats()
    assert s.requests_per_s == 0 and s.p50_ms is None and s.beam_width is None
