"""POST /admin/reload: serve the bundle GENREC_BUNDLE points at now (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import ApiKey, ReloaderDep
from service.schemas import ReloadResponse

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[ApiKey])


@router.post("/reload", response_model=ReloadResponse, responses={409: {}})
async def reload(
    reloader: ReloaderDep,
    force: Annotated[bool, Query(description="Reload even if the version is unchanged.")] = False,
) -> ReloadResponse:
    """Hot-reload after a publish: in-flight requests finish on the old bundle, none fail.

    409 if the new bundle cannot be loaded (e.g. a checksum fails); the old one keeps serving.
    """
    result = await reloader.reload(force=force)
    return ReloadResponse(
        reloaded=result.reloaded,
        model_version=result.model_version,
        previous_version=result.previous_version,
    )
