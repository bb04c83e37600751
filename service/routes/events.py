"""POST /v1/events: user-item events into histories and the retraining stream (API key)."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ApiKey, CacheDep, EngineDep, MetricsDep, StoreDep
from service.errors import BacklogFull, Unavailable
from service.schemas import EventsRequest, EventsResponse

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[ApiKey])


@router.post("/events", response_model=EventsResponse)
async def post_events(
    req: EventsRequest, store: StoreDep, engine: EngineDep, cache: CacheDep, metrics: MetricsDep
) -> EventsResponse:
    """Append events in one transaction: all are stored or, on a store failure (503), none.
    At the backlog cap (GENREC_EVENTS_MAX_BACKLOG) nothing is stored either: 503, and
    `genrec_events_refused_total{reason="backlog_full"}` counts it. The users' cached
    recommendations are dropped (a cache failure never fails the call)."""
    try:
        backlog = await store.append((e.user_id, e.item_id, e.timestamp) for e in req.events)
    except BacklogFull as e:
        metrics.events_refused.labels("backlog_full").inc()
        metrics.events_backlog.set(e.extra["backlog"])
        raise
    except Unavailable:
        metrics.redis_errors.labels("events").inc()
        metrics.events_refused.labels("redis_unavailable").inc()
        raise
    metrics.events_backlog.set(backlog)
    accepted = len(req.events)
    await cache.invalidate(e.user_id for e in req.events)
    unknown = sum(1 for e in req.events if e.item_id not in engine.catalog.index)
    return EventsResponse(accepted=accepted, unknown_items=unknown)
