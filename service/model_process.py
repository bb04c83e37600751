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

Every call has a deadline. A batch gets `deadline(units, width)` seconds (a few times its
expected cost, at most the SLO: see `BeamController.deadline_s`); loading a bundle gets
`PREPARE_TIMEOUT_S`. A batch past its deadline fails at once with 503 + Retry-After; its
child is out of service until it answers, and once it has used no CPU for `HUNG_AFTER_S`
(stopped, deadlocked) it is killed. A child that dies (killed, out of memory) is replaced at once. A new
child starts in the background and loads the recent bundles; until it is ready the other
workers carry the load (a batch waits for a free worker at most its deadline, else 503).
Telling a hung child from a slow one matters on a busy host: two children stalled together
by their neighbours must not both be replaced (seen at load average 7-8 on 2 cores: killing
at 1 s past the deadline replaced children again and again, each restart taking seconds of
the CPU the host lacked, and nearly every request failed).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from model.bundle import load_bundle
from service.engine import Engine, Job, Query, Result, build_engine, run_jobs
from service.errors import Unavailable
from service.malloc import keep_freed_memory, settle_heap
from service.settings import Settings

log = logging.getLogger(__name__)

KEEP = 2  # bundles a child keeps loaded: the served one and the one before (during a reload)
PREPARE_TIMEOUT_S = 300.0  # loading and warming a bundle in a child (seconds on a busy host)
DEFAULT_DEADLINE_S = 1.0  # a batch's deadline when the caller gives no estimate
HUNG_AFTER_S = 1.0  # a late child that used no CPU this long is hung, not stalled by the host


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time a process has used (Linux /proc; None where that cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Hung(Exception):
    """A model process did not answer within its deadline."""


# --- in the child ----------------------------------------------------------------------


def _serve(conn: Connection, settings: dict[str, Any]) -> None:
    """The child's loop: ("prepare", path) loads a bundle, ("run", path, queries, width)
    decodes a batch; each answered with ("ok", value) or ("error", exception)."""
    s = Settings.model_validate(settings)
    torch.set_num_threads(s.torch_threads or 1)
    if s.keep_freed_memory:
        keep_freed_memory()
    engines: OrderedDict[Path, Engine] = OrderedDict()
    settled = False

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
                if not settled:  # the startup heap, as the server's (service.malloc)
                    settle_heap()
                    settled = True
                # Later bundles stay collectable: frozen, an evicted bundle's cycles would
                # never be freed; and a full collection here would take a core from the
                # other worker while it serves alone.
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

    def call(self, *message: Any, timeout_s: float) -> Any:
        """Send one message and wait at most `timeout_s` for the answer (`Hung` past it:
        the child's state is unknown then, so the caller must kill it)."""
        self.conn.send(message)
        if not self.conn.poll(timeout_s):
            raise Hung(f"no answer within {timeout_s:.3f} s")
        status, value = self.conn.recv()
        if status == "error":
            raise value
        return value

    def kill(self) -> None:
        """SIGKILL (works on a stopped process too) and reap."""
        self.conn.close()
        self.process.kill()
        self.process.join(timeout=10)

    def stop(self) -> None:
        self.conn.close()  # the child's recv sees EOF and returns
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


class ModelProcesses:
    """`workers` child processes; `run_jobs` (for the batcher) decodes a batch in a free one.

    A worker is used by whoever takes it off the free list (a batch, a bundle being loaded,
    a replacement starting, a wait for a late answer) and is put back when that is done, so
    a batch never waits behind a reload or a restart: it takes another worker, or gets 503
    if none is free within its deadline. `deadline(units, width)` gives a batch's deadline in
    seconds (default `DEFAULT_DEADLINE_S`)."""

    def __init__(
        self,
        settings: Settings,
        workers: int,
        deadline: Callable[[float, int], float] | None = None,
    ) -> None:
        self.settings = settings.model_dump()
        self.context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.deadline = deadline or (lambda requests, width: DEFAULT_DEADLINE_S)
        self.recent: list[Path] = []  # bundles a fresh child loads, newest last
        self.workers = [Worker(self.context, self.settings) for _ in range(workers)]
        self.free = list(range(workers))  # oldest-freed first
        self.changed = threading.Condition()
        self.restarts = 0  # children replaced (died or hung)
        self.restarting: list[threading.Thread] = []
        self.closed = False

    def _take(self, timeout_s: float | None, which: int | None = None) -> int | None:
        """Take a free worker (or worker `which`) off the free list; None after `timeout_s`."""
        with self.changed:

            def ready() -> bool:
                return which in self.free if which is not None else bool(self.free)

            if not self.changed.wait_for(ready, timeout_s):
                return None
            i = which if which is not None else self.free[0]
            self.free.remove(i)
            return i

    def _give(self, i: int) -> None:
        with self.changed:
            self.free.append(i)
            self.changed.notify_all()

    def prepare(self, bundle_path: Path) -> None:
        """Load a bundle in every child before it is served (blocking: call off the loop),
        one worker at a time: the others keep serving."""
        path = Path(bundle_path).resolve()
        self.recent = [*[p for p in self.recent if p != path], path][-KEEP:]
        for i in range(len(self.workers)):
            if self._take(PREPARE_TIMEOUT_S, which=i) is None:
                continue  # being replaced: the new child loads `recent` itself
            try:
                self.workers[i].call("prepare", path, timeout_s=PREPARE_TIMEOUT_S)
            except (EOFError, OSError, Hung) as e:
                self._restart(i, e)
                raise Unavailable("a model process failed while loading the bundle") from e
            except BaseException:
                self._give(i)
                raise
            self._give(i)

    def run_jobs(self, jobs: list[Job], width: int) -> list[Result]:
        """`service.engine.run_jobs` with each engine's group decoded in a child (blocking).

        At the batch's deadline the batch fails with 503 at once. The child then gets
        `HUNG_AFTER_S` more to answer (the host may only have stalled it): if it does, it
        serves again; if not, it is killed and replaced. Until then it is not free."""
        deadline_s = self.deadline(sum(e.cost(q) for e, q in jobs), width)
        started = time.monotonic()
        i = self._take(deadline_s)
        if i is None:
            raise Unavailable("no model process is free (one is restarting); retry shortly")
        outcome = "ok"  # or "late" (a thread waits for the answer), "dead" (being replaced)
        try:

            def run(engine: Engine, queries: list[Query], w: int) -> list[Result]:
                left = max(0.0, deadline_s - (time.monotonic() - started))
                return self.workers[i].call("run", engine.bundle.path, queries, w, timeout_s=left)

            return run_jobs(jobs, width, run)
        except Hung as e:
            outcome = "late"
            log.warning("model_process_late worker=%d deadline_s=%.3f", i, deadline_s)
            self._spawn(self._await_late, i)
            raise Unavailable(
                f"the model missed its {deadline_s * 1000:.0f} ms deadline; retry shortly"
            ) from e
        except (EOFError, OSError) as e:
            outcome = "dead"
            self._restart(i, e)
            raise Unavailable("the model process stopped; retry shortly") from e
        finally:
            if outcome == "ok":
                self._give(i)

    def _await_late(self, i: int) -> None:
        """Worker i is taken: free it once its child answers (the answer is dropped). A child
        that used no CPU for `HUNG_AFTER_S` (stopped, deadlocked) is hung: killed and
        replaced. One that is working, only slowly (a host short of CPU), is left to finish:
        replacing it would cost the host seconds of CPU it does not have."""
        worker = self.workers[i]
        cpu = cpu_seconds(worker.process.pid)
        try:
            while not worker.conn.poll(HUNG_AFTER_S):
                now = cpu_seconds(worker.process.pid)
                if cpu is None or now is None or now <= cpu:
                    raise Hung(f"no answer and no CPU used for {HUNG_AFTER_S} s")
                cpu = now
            worker.conn.recv()
        except (EOFError, OSError, Hung) as e:
            self._restart(i, e)
            return
        log.info("model_process_recovered worker=%d", i)
        self._give(i)

    def _restart(self, i: int, error: Exception) -> None:
        """Kill worker i's child (hung or dead; the worker is taken) and start a replacement
        in the background."""
        worker = self.workers[i]
        log.error(
            "model_process_failed worker=%d pid=%s exitcode=%s error=%s",
            i,
            worker.process.pid,
            worker.process.exitcode,
            error,
        )
        worker.kill()
        self.restarts += 1
        self._spawn(self._replace, i)

    def _spawn(self, target: Callable[[int], None], i: int) -> None:
        thread = threading.Thread(target=target, args=(i,), name=f"genrec-model-{i}", daemon=True)
        self.restarting = [t for t in self.restarting if t.is_alive()] + [thread]
        thread.start()

    def _replace(self, i: int) -> None:
        """Start a new child for worker i, load the recent bundles, then free the worker."""
        while not self.closed:
            self.workers[i] = Worker(self.context, self.settings)
            try:
                for path in self.recent:
                    self.workers[i].call("prepare", path, timeout_s=PREPARE_TIMEOUT_S)
            except Exception:
                self.workers[i].kill()
                if self.closed:
                    return
                log.exception("model_process_restart_failed worker=%d", i)
                time.sleep(1.0)
                continue
            log.info("model_process_restarted worker=%d pid=%s", i, self.workers[i].process.pid)
            self._give(i)
            return

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether every worker is free (none running, none restarting) within `timeout_s`."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.free) == len(self.workers), timeout_s)

    def shutdown(self) -> None:
        self.closed = True
        for thread in self.restarting:
            thread.join(timeout=PREPARE_TIMEOUT_S)
        for worker in self.workers:
            worker.stop()
