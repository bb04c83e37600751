"""Decoding in child processes, so the model never shares a GIL with the event loop.

In one process the model thread needs the GIL around every torch op, and the event loop holds
it while it parses and answers requests: under load each op waits for the loop (py-spy;
the server's batch-time histogram showed batches of ~20 ms taking 150–250 ms at 2× overload,
and a model thread beside a busy Python thread ran 100× slower). With
`GENREC_MODEL_PROCESS=true` (the default) each model worker is a child process with its own
interpreter. It loads the bundles itself, by path (a bundle directory is an immutable
version), and decodes the batches the parent's batcher hands it; queries and results cross a
pipe, one message each way per batch, read and written by the batcher thread that owns the
worker (no extra threads, so no extra hand-offs on the latency path). The parent keeps only
the ID maps (`Engine` builds its model side lazily).

A child that dies (killed, out of memory) fails the batch it held with 503; a new child is
started at once and loads the recent bundles again.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import queue
import threading
from collections import OrderedDict
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
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


def _serve(conn: Connection, settings: dict[str, Any]) -> None:
    """The child's loop: ("prepare", path) loads a bundle, ("run", path, queries, width)
    decodes a batch; each answered with ("ok", value) or ("error", exception)."""
    s = Settings.model_validate(settings)
    torch.set_num_threads(s.torch_threads or 1)
    if s.keep_freed_memory:
        keep_freed_memory()
    engines: OrderedDict[Path, Engine] = OrderedDict()

    def engine(path: Path) -> Engine:
        if path not in engines:
            engines[path] = build_engine(load_bundle(path), s).warm()
            while len(engines) > KEEP:
                engines.popitem(last=False)
        engines.move_to_end(path)
        return engines[path]

    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            return
        try:
            if message[0] == "prepare":
                engine(message[1])
                gc.freeze()  # the loaded bundle stays out of full collections (settle_heap)
                conn.send(("ok", None))
            else:
                _, path, queries, width = message
                conn.send(("ok", engine(path).run(queries, width)))
        except Exception as e:
            try:
                conn.send(("error", e))
            except Exception:  # an exception that does not pickle: send its text
                conn.send(("error", RuntimeError(f"{type(e).__name__}: {e}")))


# --- in the parent ---------------------------------------------------------------------


class Worker:
    """One child process and the parent's end of its pipe (used by one thread at a time)."""

    def __init__(self, context: Any, settings: dict[str, Any]) -> None:
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, settings), name="genrec-model", daemon=True
        )
        self.process.start()
        child.close()

    def call(self, *message: Any) -> Any:
        self.conn.send(message)
        status, value = self.conn.recv()
        if status == "error":
            raise value
        return value

    def stop(self) -> None:
        self.conn.close()  # the child's recv sees EOF and returns
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


class ModelProcesses:
    """`workers` child processes; `run_jobs` (for the batcher) decodes a batch in a free one."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings.model_dump()
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.recent: list[Path] = []  # bundles a fresh child loads, newest last
        self.workers = [Worker(self.context, self.settings) for _ in range(workers)]
        self.locks = [threading.Lock() for _ in range(workers)]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(workers):
            self.free.put(i)

    def prepare(self, bundle_path: Path) -> None:
        """Load a bundle in every child before it is served (blocking: call off the loop)."""
        path = Path(bundle_path).resolve()
        self.recent = [*[p for p in self.recent if p != path], path][-KEEP:]
        for i in range(len(self.workers)):
            with self.locks[i]:
                self._call(i, "prepare", path)

    def run_jobs(self, jobs: list[Job], width: int) -> list[Result]:
        """`service.engine.run_jobs` with each engine's group decoded in a child (blocking)."""
        i = self.free.get()
        try:
            with self.locks[i]:
                return run_jobs(jobs, width, lambda e, qs, w: self._run(i, e, qs, w))
        finally:
            self.free.put(i)

    def _run(self, i: int, engine: Engine, queries: list[Query], width: int) -> list[Result]:
        result: list[Result] = self._call(i, "run", engine.bundle.path, queries, width)
        return result

    def _call(self, i: int, *message: Any) -> Any:
        try:
            return self.workers[i].call(*message)
        except (EOFError, OSError) as e:  # the child died: replace it, fail this call
            log.error(
                "model_process_died worker=%d exitcode=%s", i, self.workers[i].process.exitcode
            )
            self.workers[i].stop()
            self.workers[i] = Worker(self.context, self.settings)
            for path in self.recent:
                self.workers[i].call("prepare", path)
            raise Unavailable("the model process stopped; retry shortly") from e

    def shutdown(self) -> None:
        for worker in self.workers:
            worker.stop()
