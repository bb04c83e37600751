"""Liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and its event loop answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(request: Request) -> JSONResponse:
    """A model is loaded and the server is not draining (after SIGTERM it answers 503 while
    it still serves, so load balancers stop sending first). Redis is reported, not
    required: explicit histories still work."""
    state = request.app.state
    engine = getattr(state, "engine", None)
    store = getattr(state, "store", None)
    redis_ok = bool(store and await store.ping())
    draining = getattr(state, "draining", False)
    status = "draining" if draining else "ready" if engine else "loading"
    body = Ready(
        status=status,
        model_version=engine.version if engine else None,
        redis=redis_ok,
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ready" else 503)
