"""FastAPI dependencies as `Annotated` aliases: the engine, the store, the batcher, the API key."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.batcher import MicroBatcher
from service.engine import Engine, Job, Result
from service.errors import Unauthorized, Unavailable
from service.live_stats import LiveStats
from service.metrics import Metrics
from service.reloader import Reloader
from service.result_cache import ResultCache
from service.settings import Settings
from service.store import HistoryStore


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise Unavailable("no model is loaded yet")
    return engine


async def get_store(request: Request) -> HistoryStore:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise Unavailable("the history store is not open yet")
    return store


async def get_batcher(request: Request) -> MicroBatcher[Job, Result]:
    return request.app.state.batcher


async def get_cache(request: Request) -> ResultCache:
    return request.app.state.cache


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_reloader(request: Request) -> Reloader:
    return request.app.state.reloader


async def get_live_stats(request: Request) -> LiveStats:
    return request.app.state.live_stats


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[HistoryStore, Depends(get_store)]
BatcherDep = Annotated[MicroBatcher[Job, Result], Depends(get_batcher)]
CacheDep = Annotated[ResultCache, Depends(get_cache)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReloaderDep = Annotated[Reloader, Depends(get_reloader)]
LiveStatsDep = Annotated[LiveStats, Depends(get_live_stats)]


async def require_api_key(
    settings: SettingsDep, x_api_key: Annotated[str | None, Header(max_length=256)] = None
) -> None:
    """Write and admin endpoints need `X-API-Key`; with no key configured they are disabled."""
    if settings.api_key is None:
        raise Unavailable("writes are disabled: the server has no GENREC_API_KEY")
    if x_api_key is None or not secrets.compare_digest(
        x_api_key.encode(), settings.api_key.get_secret_value().encode()
    ):
        raise Unauthorized("missing or wrong X-API-Key header")


ApiKey = Depends(require_api_key)
