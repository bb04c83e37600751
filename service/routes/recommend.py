"""POST /v1/recommend: items for a user's stored history or an explicit one."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.deps import BatcherDep, CacheDep, EngineDep, MetricsDep, ReadKey, StoreDep
from service.errors import NotFound, Overloaded, Unavailable
from service.result_cache import Lookup, Shape
from service.schemas import RecommendRequest, RecommendResponse

router = APIRouter(prefix="/v1", tags=["recommend"], dependencies=[ReadKey])
JSON = "application/json"


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(
    req: RecommendRequest,
    engine: EngineDep,
    store: StoreDep,
    batcher: BatcherDep,
    cache: CacheDep,
    metrics: MetricsDep,
) -> Response:
    """Top-k catalog items by constrained beam search over semantic IDs.

    An explicit `history` is used as given (every item must be in the catalog); otherwise
    the stored history of `user_id` is read (items the model does not know are skipped).
    Results are cached for a short time; a user's cached results end with their next event.
    The beam width may be lowered under load: the response says which width was used; past
    what the model can serve in the latency SLO, requests are shed with 503 (`LoadShedder`
    before parsing, the batcher at admission and at dequeue).
    (The body is serialized once, by pydantic, instead of revalidated and re-encoded.)
    """
    shape = Shape(req.k, req.beam_width, req.exclude_seen)
    lookup: Lookup | None
    if req.history is not None:
        history = engine.indices(req.history, strict=True)
        lookup = await cache.get_history(engine.version, history, shape)
    else:
        assert req.user_id is not None
        lookup = await cache.get_user(engine.version, req.user_id, shape)
    if lookup is not None and lookup.value is not None:
        if req.history is None:  # keyed by this very user
            return Response(lookup.value, media_type=JSON)
        cached = RecommendResponse.model_validate_json(lookup.value)
        return _json(cached.model_copy(update={"user_id": req.user_id}))
    if req.history is None:
        assert req.user_id is not None
        try:
            stored = await store.history(req.user_id)
        except Unavailable:
            metrics.redis_errors.labels("history").inc()
            raise
        if not stored:
            raise NotFound(
                f"no history stored for user {req.user_id!r}; post events or pass a history"
            )
        history = engine.indices(stored, strict=False)
    query = engine.query(history, req.k, req.beam_width, req.exclude_seen)
    try:
        result = await batcher.submit((engine, query), engine.cost(query))
    except Overloaded:
        metrics.overloaded.inc()
        raise
    metrics.beam_width.observe(result.widths[-1])
    response = RecommendResponse.of(req.user_id, result, engine.version, len(history))
    body = response.model_dump_json()
    if lookup is not None:
        if req.history is not None:
            await cache.put_history(engine.version, history, shape, body)
        else:
            assert req.user_id is not None
            await cache.put_user(engine.version, req.user_id, shape, body, lookup)
    return Response(body, media_type=JSON)


def _json(model: RecommendResponse) -> Response:
    return Response(model.model_dump_json(), media_type=JSON)
