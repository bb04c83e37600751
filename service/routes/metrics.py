"""GET /metrics: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(m: MetricsDep) -> Response:
    """Latency, batch sizes, beam widths, queue depth, cache hits, Redis errors, model version."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
