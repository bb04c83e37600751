"""Decoding in child processes, so the model never shares a GIL with the event loop.

In one process the model thread needs the GIL around every torch op, and the event loop holds
it while it parses and answers requests: under load each op waits for the loop, and a batch
that takes 20 ms alone takes 150–250 ms (profiled: benchmarks/results/serving.md). With
`GENREC_MODEL_PROCESS=true` (the default) each model worker is a child process with its own
interpreter. It loads the bundles itself, by path (a bundle directory is an immutable
version), and decodes the batches the parent's batcher hands it; queries and results cross a
pipe. The parent keeps only the ID maps (`Engine` builds its model side lazily).

A child that dies (killed, out of memory) fails the batch it held with 503; the next batch
starts a fresh child, which loads the recent bundles again.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from model.bundle import load_bundle
from service.engine import Engine, Job, Query, Result, build_engine, run_jobs
from service.errors import Unavailable
from service.malloc import keep_freed_memory
from service.settings import Settings

log = logging.getLogger(__name__)

KEEP = 2  # bundles a child keeps loaded: the served one and the one before (during a reload)

# --- in the child ----------------------------------------------------------------------

_settings: Settings | None = None
_engines: OrderedDict[Path, Engine] = OrderedDict()


def _init(settings: dict[str, Any]) -> None:
    global _settings
    _settings = Settings.model_validate(settings)
    torch.set_num_threads(_settings.torch_threads or 1)
    if _settings.keep_freed_memory:
        keep_freed_memory()


def _engine(path: Path) -> Engine:
    """The engine of the bundle at `path`, loaded on first use; the least recent is dropped."""
    assert _settings is not None
    if path not in _engines:
        _engines[path] = build_engine(load_bundle(path), _settings).warm()
        while len(_engines) > KEEP:
            _engines.popitem(last=False)
    _engines.move_to_end(path)
    return _engines[path]


def _prepare(path: Path) -> None:
    _engine(path)


def _run(path: Path, queries: list[Query], width: int) -> list[Result]:
    return _engine(path).run(queries, width)


# --- in the parent ---------------------------------------------------------------------


class ModelProcesses:
    """`workers` child processes; `run_jobs` (for the batcher) decodes a batch in a free one."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings.model_dump()
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.recent: list[Path] = []  # bundles to load into a fresh child, newest last
        self.lock = threading.Lock()
        self.pools = [self._start() for _ in range(workers)]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(workers):
            self.free.put(i)

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(1, self.context, _init, (self.settings,))
        for path in self.recent:
            pool.submit(_prepare, path)  # queued ahead of any batch
        return pool

    def prepare(self, bundle_path: Path) -> None:
        """Load a bundle in every child before it is served (blocking: call off the loop)."""
        path = Path(bundle_path).resolve()
        with self.lock:
            self.recent = [*[p for p in self.recent if p != path], path][-KEEP:]
            pools = list(self.pools)
        for pool in pools:
            pool.submit(_prepare, path).result()

    def run_jobs(self, jobs: list[Job], width: int) -> list[Result]:
        """`service.engine.run_jobs` with each engine's group decoded in a child (blocking)."""
        i = self.free.get()
        try:
            return run_jobs(
                jobs, width, lambda engine, queries, w: self._run(i, engine, queries, w)
            )
        finally:
            self.free.put(i)

    def _run(self, i: int, engine: Engine, queries: list[Query], width: int) -> list[Result]:
        try:
            return self.pools[i].submit(_run, engine.bundle.path, queries, width).result()
        except BrokenProcessPool as e:
            log.error("model_process_died worker=%d; starting a new one", i)
            with self.lock:
                self.pools[i].shutdown(wait=False)
                self.pools[i] = self._start()
            raise Unavailable("the model process stopped; retry shortly") from e

    def shutdown(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
