"""FastAPI dependencies as `Annotated` aliases: the engine, the store, the batcher, the API keys."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import SecretStr

from service.batcher import MicroBatcher
from service.engine import Engine, Job, Result
from service.errors import Forbidden, Unauthorized, Unavailable
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


def _matches(given: str | None, *keys: SecretStr | None) -> bool:
    """Constant-time comparison against each configured key."""
    if given is None:
        return False
    return any(
        k is not None and secrets.compare_digest(given.encode(), k.get_secret_value().encode())
        for k in keys
    )


ApiKeyHeader = Annotated[str | None, Header(max_length=256)]


async def require_api_key(settings: SettingsDep, x_api_key: ApiKeyHeader = None) -> None:
    """Write and admin endpoints need the write key in `X-API-Key`. With no write key
    configured they are switched off: 403 (a 503 would tell clients to retry)."""
    if settings.api_key is None:
        raise Forbidden(
            "writes and admin are disabled on this server: start it with GENREC_API_KEY set "
            "and send that key in the X-API-Key header"
        )
    if not _matches(x_api_key, settings.api_key):
        raise Unauthorized("missing or wrong X-API-Key header (this route needs the write key)")


async def require_read_key(settings: SettingsDep, x_api_key: ApiKeyHeader = None) -> None:
    """Reads of a user's data (history, recommendations) need the read key, or the write key,
    in `X-API-Key` when GENREC_READ_API_KEY is set; open when it is not (`make demo`)."""
    if settings.read_api_key is None:
        return
    if not _matches(x_api_key, settings.read_api_key, settings.api_key):
        raise Unauthorized("missing or wrong X-API-Key header (this route needs the read key)")


ApiKey = Depends(require_api_key)
ReadKey = Depends(require_read_key)
