"""GET /v1/stats: requests/s, latency percentiles, beam width and model version, as JSON."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import LiveStatsDep
from service.schemas import Stats

router = APIRouter(prefix="/v1", tags=["stats"])


@router.get("/stats", response_model=Stats)
async def stats(live: LiveStatsDep) -> Stats:
    """The service's state over about the last ten seconds (what the demo page's strip shows);
    computed from the same counters `GET /metrics` exports. No user data."""
    return live.stats()
