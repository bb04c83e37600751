"""Micro-batching: concurrent requests wait at most a few ms and are decoded together.

The event loop only enqueues; `workers` threads run the model (one intra-op thread each),
so inference never blocks the loop. With one worker, batches run one after another; with
more, a gathered batch is split among the idle workers and the next batch can start while
the last one runs (torch and ONNX Runtime release the GIL inside their kernels). Everything is bounded: the wait (`max_wait_ms`),
the batch (`max_size`), the batches running at once (`workers`) and the queue (`max_queue`;
past it a request is shed with 503 at once instead of waiting behind work it cannot
outrun). The scheduler also picks each batch's beam width from the load (`beam_controller`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from service.errors import Overloaded

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")


class WidthPolicy(Protocol):
    def width(self, pending: int) -> int: ...

    def admits(self, pending: int) -> bool: ...

    def observe(self, requests: int, width: int, seconds: float) -> None: ...


class FixedWidth:
    """The static beam: always `base_width`."""

    def __init__(self, base_width: int) -> None:
        self.base_width = base_width

    def width(self, pending: int) -> int:
        return self.base_width

    def admits(self, pending: int) -> bool:
        return True

    def observe(self, requests: int, width: int, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class BatchStats:
    size: int
    width: int
    seconds: float
    queued: int  # still waiting when the batch started


class MicroBatcher(Generic[Q, R]):
    """Collects queries for up to `max_wait_ms` (or `max_size` of them), then runs them as one
    batch: `run(queries, width)` in the worker thread, with `width` from `policy`."""

    def __init__(
        self,
        run: Callable[[list[Q], int], list[R]],
        max_size: int,
        max_wait_ms: float,
        max_queue: int,
        policy: WidthPolicy,
        on_batch: Callable[[BatchStats], None] | None = None,
        workers: int = 1,
        max_queue_s: float | None = None,
    ) -> None:
        self.run, self.max_size, self.max_wait = run, max_size, max_wait_ms / 1000
        self.max_queue_s = max_queue_s
        self.policy, self.on_batch = policy, on_batch
        self.queue: asyncio.Queue[tuple[Q, asyncio.Future[R], float]] = asyncio.Queue(max_queue)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genrec-model")
        self.free_workers = asyncio.Semaphore(workers)
        self.idle = workers
        self.task: asyncio.Task[None] | None = None
        self.batches: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        # Requests admitted at the edge and not yet answered (LoadShedder keeps the count);
        # None: nobody counts, so a batch always waits its `max_wait` for company.
        self.admitted: int | None = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def check_admission(self) -> None:
        """Raise `Overloaded` if a new query would wait past its bound (queue or SLO); cheap,
        so callers can shed before doing any other work. The pending work is every request
        admitted at the edge and not yet answered (`admitted`, counted by `LoadShedder`, so
        requests still reading Redis or waiting for the event loop count too), and at least
        what the batcher holds."""
        if self.queue.full():
            raise Overloaded(
                f"the server is overloaded ({self.queue.maxsize} requests waiting); retry shortly"
            )
        if not self.policy.admits(max(self.admitted or 0, self.depth + self.in_flight)):
            raise Overloaded("the server is overloaded (past its latency budget); retry shortly")

    @contextmanager
    def admitted_request(self) -> Iterator[None]:
        """Count one request admitted at the edge until it is answered (`LoadShedder`); from
        the first one on, admission and batch collection go by this count."""
        self.admitted = (self.admitted or 0) + 1
        try:
            yield
        finally:
            self.admitted -= 1

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="genrec-batcher")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.gather(*self.batches, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, query: Q) -> R:
        self.check_admission()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self.queue.put_nowait((query, future, loop.time()))
        return await future

    def _on_their_way(self, collected: int) -> int | None:
        """Admitted requests not yet queued, running or collected (None: not counted). An
        overestimate (answered requests still sending count), never an underestimate."""
        if self.admitted is None:
            return None
        return self.admitted - self.depth - self.in_flight - collected

    async def _collect(self) -> list[tuple[Q, asyncio.Future[R], float]]:
        """Up to `max_size` queries: those queued now, and for up to `max_wait` those still
        on their way (admitted, reading Redis); with none on its way the batch goes at once,
        so a lone request never waits for company that is not coming."""
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_size:
            if not self.queue.empty():  # take what is already there without waiting
                batch.append(self.queue.get_nowait())
                continue
            coming = self._on_their_way(len(batch))
            if coming is not None and coming <= 0:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    def _live(
        self, batch: list[tuple[Q, asyncio.Future[R], float]]
    ) -> list[tuple[Q, asyncio.Future[R]]]:
        """The batch without cancelled requests and, with `max_queue_s`, without those that
        waited longer than that: they are shed with 503 now (a late answer is no answer), and
        the rest keep their latency bound."""
        now = asyncio.get_running_loop().time()
        live = []
        for q, f, queued_at in batch:
            if f.cancelled():
                continue
            if self.max_queue_s is not None and now - queued_at > self.max_queue_s:
                f.set_exception(
                    Overloaded("the request waited past its latency budget; retry shortly")
                )
                continue
            live.append((q, f))
        return live

    def _timed_run(self, queries: list[Q], width: int) -> tuple[list[R], float]:
        start = time.perf_counter()
        results = self.run(queries, width)
        return results, time.perf_counter() - start

    async def _acquire(self) -> None:
        await self.free_workers.acquire()
        self.idle -= 1

    def _release(self) -> None:
        self.idle += 1
        self.free_workers.release()

    async def _loop(self) -> None:
        while True:
            await self._acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._release()
                raise
            live = self._live(batch)
            if not live:
                self._release()
                continue
            queued = self.queue.qsize()
            width = self.policy.width(self.in_flight + len(live) + queued)
            parts = min(1 + self.idle, len(live))  # idle workers share the batch
            for i in range(parts):
                if i:
                    await self._acquire()  # immediate: that worker is idle
                chunk = live[i * len(live) // parts : (i + 1) * len(live) // parts]
                task = asyncio.create_task(self._run_batch(chunk, width, queued))
                self.batches.add(task)
                task.add_done_callback(self.batches.discard)

    async def _run_batch(
        self, live: list[tuple[Q, asyncio.Future[R]]], width: int, queued: int
    ) -> None:
        loop = asyncio.get_running_loop()
        self.in_flight += len(live)
        try:
            results, seconds = await loop.run_in_executor(
                self.executor, self._timed_run, [q for q, _ in live], width
            )
        except Exception as e:  # one bad batch must not kill the loop
            log.exception("batch_failed size=%d", len(live))
            for _, f in live:
                if not f.done():
                    f.set_exception(e)
            return
        finally:
            self.in_flight -= len(live)
            self._release()
        self.policy.observe(len(live), width, seconds)
        if self.on_batch:
            self.on_batch(BatchStats(len(live), width, seconds, queued))
        for (_, f), r in zip(live, results, strict=True):
            if not f.done():
                f.set_result(r)
