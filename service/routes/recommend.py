"""POST /v1/recommend: items for a user's stored history or an explicit one."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import BatcherDep, EngineDep, StoreDep
from service.errors import NotFound
from service.schemas import RecommendedItem, RecommendRequest, RecommendResponse

router = APIRouter(prefix="/v1", tags=["recommend"])


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(
    req: RecommendRequest, engine: EngineDep, store: StoreDep, batcher: BatcherDep
) -> RecommendResponse:
    """Top-k catalog items by constrained beam search over semantic IDs.

    An explicit `history` is used as given (every item must be in the catalog); otherwise
    the stored history of `user_id` is read (items the model does not know are skipped).
    """
    if req.history is not None:
        history = engine.indices(req.history, strict=True)
    else:
        assert req.user_id is not None
        stored = await store.history(req.user_id)
        if not stored:
            raise NotFound(
                f"no history stored for user {req.user_id!r}; post events or pass a history"
            )
        history = engine.indices(stored, strict=False)
    query = engine.query(history, req.k, req.beam_width, req.exclude_seen)
    results = await batcher.submit((engine, query))
    return RecommendResponse(
        user_id=req.user_id,
        items=[
            RecommendedItem(
                item_id=r.item_id, title=r.title, score=r.score, semantic_id=r.semantic_id
            )
            for r in results
        ],
        model_version=engine.version,
        beam_width=query.widths[-1],
        beam_widths=list(query.widths),
        history_length=len(history),
    )
