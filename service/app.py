"""The FastAPI application: `create_app()` and the lifespan that loads the bundle and opens Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from model.bundle import Bundle, load_bundle
from service.batcher import MicroBatcher
from service.beam_controller import BeamController, ControllerConfig
from service.engine import Engine, build_engine, run_jobs
from service.errors import Unavailable, install_handlers
from service.live_stats import LiveStats
from service.malloc import keep_freed_memory, settle_heap
from service.metrics import Metrics, MetricsMiddleware
from service.model_process import ModelProcesses
from service.reloader import Reloader
from service.request_guard import LoadShedder, RequestGuard
from service.result_cache import ResultCache
from service.routes import admin, demo, events, health, items, metrics, recommend, stats, users
from service.settings import Settings, get_settings
from service.store import EmbeddedRedis, HistoryStore, LayoutMismatch, connect

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    s: Settings = app.state.settings
    if s.torch_threads:
        torch.set_num_threads(s.torch_threads)
    if s.keep_freed_memory:
        keep_freed_memory()

    app.state.beam_controller = controller = BeamController(
        ControllerConfig(
            base_width=s.default_beam_width,
            min_width=min(s.min_beam_width, s.default_beam_width),
            slo_s=s.latency_slo_ms / 1000,
            parallel=s.model_workers if s.model_process else 1,  # threads share one GIL
            enabled=s.dynamic_beam,
            admission=s.shed_load,
            admit_share=s.admission_budget_share,
        )
    )
    processes = (
        ModelProcesses(s, s.model_workers, controller.deadline_s) if s.model_process else None
    )

    def make_engine(bundle: Bundle) -> Engine:
        """Blocking (the reloader calls it in a thread): the model side is ready on return."""
        engine = build_engine(bundle, s)
        if processes is None:
            return engine.warm()
        processes.prepare(bundle.path)
        return engine

    try:
        bundle = load_bundle(s.bundle)
        app.state.engine = await asyncio.to_thread(make_engine, bundle)
    except BaseException:
        if processes:
            processes.shutdown()
        raise
    app.state.metrics.watch_model(lambda: app.state.engine.version)  # follows reloads
    log.info(
        "bundle_loaded version=%s items=%d path=%s",
        bundle.version,
        len(bundle.catalog),
        bundle.path,
    )
    server = None if s.redis_url else EmbeddedRedis(s.redis_dir)
    password = s.redis_password.get_secret_value() if s.redis_password else None
    client = connect(
        s.redis_url, server.socket if server else None, s.redis_timeout_s, password, s.redis_cluster
    )
    app.state.store = store = HistoryStore(
        client, s.redis_prefix, s.max_history, s.events_max_backlog, s.partitions
    )
    try:
        await store.check_layout()
    except Unavailable:
        log.warning("redis_layout_unchecked: the store is unreachable; continuing")
    except LayoutMismatch:  # refuse to start
        await client.aclose()
        if server:
            server.close()
        if processes:
            processes.shutdown()
        raise
    log.info("redis_store cluster=%s layout=%s", s.redis_cluster, store.keys.describe())
    if s.seed_histories:
        try:
            await store.seed(bundle.histories, bundle.version)
        except Exception:
            log.warning(
                "seed_histories_failed: the store is unreachable; continuing", exc_info=True
            )
    app.state.cache = ResultCache(
        client, s.redis_prefix, s.cache_ttl_s, app.state.metrics, store.keys.hash_tags
    )
    app.state.batcher = batcher = MicroBatcher(
        processes.run_jobs if processes else run_jobs,
        s.batch_max_size,
        s.batch_max_wait_ms,
        s.queue_max,
        controller,
        app.state.metrics.batch,
        s.model_workers,
        max_queue_s=controller.budget_s if s.shed_load else None,
    )
    app.state.metrics.watch_queue(lambda: batcher.depth, lambda: batcher.in_flight)
    if processes:
        app.state.metrics.model_restarts.set_function(lambda: processes.restarts)
    if server:
        app.state.metrics.redis_restarts.set_function(lambda: server.restarts)
    batcher.start()
    settle_heap()
    # Reloaded bundles are not frozen: a frozen object is never collected, so each replaced
    # bundle's reference cycles would stay for good (memory grew with every reload). What a
    # bundle adds to full collections is small (its containers: catalog lists, histories,
    # modules); the startup heap, the bulk, stays frozen.
    app.state.reloader = reloader = Reloader(
        app.state, s.bundle, make_engine, store if s.seed_histories else None
    )
    if s.reload_poll_s:
        reloader.start_polling(s.reload_poll_s)
    try:
        yield
    finally:
        await reloader.stop()
        await batcher.stop()
        if processes:
            processes.shutdown()
        await client.aclose()
        if server:
            server.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    # FastAPIOffline: /docs (Swagger UI 5) and /redoc load their assets from this app, not a CDN.
    app = FastAPIOffline(
        title="genrec",
        summary="Generative recommendations: semantic IDs decoded by constrained beam search.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    app.state.draining = False  # set on SIGTERM (`genrec serve`): /readyz answers 503
    app.state.metrics = Metrics()  # per app: tests run several apps in one process
    app.state.live_stats = LiveStats(app.state.metrics)
    install_handlers(app)
    for module in (recommend, events, users, items, stats, health, admin, metrics, demo):
        app.include_router(module.router)
    demo.mount_static(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # inside the guard
    app.add_middleware(RequestGuard, max_bytes=app.state.settings.max_body_bytes)
    app.add_middleware(LoadShedder)  # outermost: sheds before anything else runs
    return app
