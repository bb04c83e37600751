"""GET /v1/users/{user_id}/history: the stored history, oldest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import ReadKey, StoreDep
from service.schemas import ID_PATTERN, HistoryResponse

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[ReadKey])

UserPath = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.get("/{user_id}/history", response_model=HistoryResponse)
async def history(user_id: UserPath, store: StoreDep) -> HistoryResponse:
    return HistoryResponse(user_id=user_id, items=await store.history(user_id))
