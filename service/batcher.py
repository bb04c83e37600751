"""Micro-batching: concurrent requests wait at most a few ms and are decoded together.

The event loop only enqueues; `workers` threads run the model (one intra-op thread each),
so inference never blocks the loop. With one worker, batches run one after another; with
more, a gathered batch is split among the idle workers and the next batch can start while
the last one runs (torch and ONNX Runtime release the GIL inside their kernels). Everything is bounded: the wait (`max_wait_ms`),
the batch (`max_size`), the batches running at once (`workers`) and the queue (`max_queue`;
past it a request is shed with 503 at once instead of waiting behind work it cannot
outrun). The scheduler also picks each batch's beam width from the load (`beam_controller`).

Work is counted in units (a request's `cost`: its beam work relative to a default request,
at least 1), so admission, the beam width and the batch size follow what requests cost, not
only how many there are: a batch holds at most `max_size` units, and a flood of wide-beam
requests is shed before it pushes everyone past the SLO.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from service.errors import Overloaded, ServiceError

log = logging.getLogger(__name__)

# A queue whose oldest request waited this share of `max_queue_s` is standing: shed at the edge.
# At 0.8, 3x overload still shed ~2% of its 503s at dequeue, after 50+ ms (shed p99 61 ms,
# reliability.md at e2bfa5d); at 0.6, ~1% (p99 32 ms) and the dynamic beam's goodput held.
STANDING_SHARE = 0.6

Q = TypeVar("Q")
R = TypeVar("R")


class WidthPolicy(Protocol):
    def width(self, pending: float) -> int: ...

    def admits(self, pending: float, units: float = 1.0, expensive: bool = False) -> bool: ...

    def observe(self, units: float, width: int, seconds: float) -> None: ...


class FixedWidth:
    """The static beam: always `base_width`."""

    def __init__(self, base_width: int) -> None:
        self.base_width = base_width

    def width(self, pending: float) -> int:
        return self.base_width

    def admits(self, pending: float, units: float = 1.0, expensive: bool = False) -> bool:
        return True

    def observe(self, units: float, width: int, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class BatchStats:
    size: int
    width: int
    seconds: float
    queued: int  # still waiting when the batch started


@dataclass
class Pending(Generic[Q, R]):
    query: Q
    future: asyncio.Future[R]
    queued_at: float
    cost: float


class MicroBatcher(Generic[Q, R]):
    """Collects queries for up to `max_wait_ms` (or `max_size` units of them), then runs them
    as one batch: `run(queries, width)` in the worker thread, with `width` from `policy`."""

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
        self.arrivals: deque[float] = deque()  # when each queued request arrived, oldest first
        self.policy, self.on_batch = policy, on_batch
        self.queue: asyncio.Queue[Pending[Q, R]] = asyncio.Queue(max_queue)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genrec-model")
        self.free_workers = asyncio.Semaphore(workers)
        self.idle = workers
        self.task: asyncio.Task[None] | None = None
        self.batches: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.queued_units = 0.0  # cost of the requests in the queue …
        self.in_flight_units = 0.0  # … and of those in running batches
        # Units of requests admitted at the edge and not yet answered (LoadShedder counts one
        # per request, `submit` adds the rest of its cost); None: nobody counts, so a batch
        # always waits its `max_wait` for company.
        self.admitted: float | None = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    @property
    def pending_units(self) -> float:
        """Work admitted and not yet answered: every request admitted at the edge
        (`admitted`, counted by `LoadShedder`, so requests still reading Redis or waiting for
        the event loop count too), and at least what the batcher holds."""
        return max(self.admitted or 0.0, self.queued_units + self.in_flight_units)

    def check_admission(
        self, units: float = 1.0, expensive: bool = False, counted: float = 0.0
    ) -> None:
        """Raise `Overloaded` if `units` more work would wait past its bound (queue or SLO);
        cheap, so callers can shed before doing any other work. An `expensive` request (more
        than one unit) may not use the budget's share kept for default ones. `counted`: units
        of this request already in the pending count (the edge's), which are its own, not
        work ahead of it: a request with nothing ahead is always admitted."""
        if self.queue.full():
            raise Overloaded(
                f"the server is overloaded ({self.queue.maxsize} requests waiting); retry shortly"
            )
        if not self.policy.admits(self.pending_units - counted, units + counted, expensive):
            raise Overloaded("the server is overloaded (past its latency budget); retry shortly")
        if self.standing_queue():
            raise Overloaded("the server is overloaded (its queue is past its wait); retry shortly")

    def standing_queue(self) -> bool:
        """Whether the oldest queued request has waited most of `max_queue_s`
        (`STANDING_SHARE`): a request queued now waits behind it at least as long, so it is
        shed at once rather than after waiting out the deadline. Admission's estimate counts
        model time only; this counts the wait itself, which also holds the event loop's work
        and a busy host's stalls (without it, 3x overload shed many of its 503s at dequeue:
        shed p99 72-81 ms). An empty queue admits, so a past stall never locks the server."""
        if self.max_queue_s is None or not self.arrivals:
            return False
        age = asyncio.get_running_loop().time() - self.arrivals[0]
        return age > STANDING_SHARE * self.max_queue_s

    @contextmanager
    def admitted_request(self, units: float = 1.0) -> Iterator[None]:
        """Count `units` of an admitted request until it is answered (`LoadShedder` counts
        one per request at the edge); from the first one on, admission and batch collection
        go by this count."""
        self.admitted = (self.admitted or 0.0) + units
        try:
            yield
        finally:
            self.admitted -= units

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="genrec-batcher")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.gather(*self.batches, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, query: Q, cost: float = 1.0) -> R:
        """Queue a query of `cost` units and wait for its result; admission is checked again
        with its full cost (the edge counted one unit before it knew the request)."""
        extra = cost - 1.0 if self.admitted is not None else cost
        own = 1.0 if self.admitted is not None else 0.0  # the edge counted this one
        self.check_admission(max(0.0, extra), expensive=cost > 1.0, counted=own)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        counted: AbstractContextManager[None] = (
            self.admitted_request(max(0.0, extra)) if self.admitted is not None else nullcontext()
        )
        with counted:
            now = loop.time()
            self.queue.put_nowait(Pending(query, future, now, cost))
            self.arrivals.append(now)
            self.queued_units += cost
            return await future

    def _on_their_way(self, collected: float) -> float | None:
        """Admitted requests not yet queued, running or collected (None: not counted). An
        overestimate (answered requests still sending count), never an underestimate."""
        if self.admitted is None:
            return None
        return self.admitted - self.queued_units - self.in_flight_units - collected

    def _take(self, item: Pending[Q, R]) -> Pending[Q, R]:
        self.arrivals.popleft()
        self.queued_units -= item.cost
        return item

    async def _collect(self) -> list[Pending[Q, R]]:
        """Up to `max_size` units of queries: those queued now, and for up to `max_wait`
        those still on their way (admitted, reading Redis); with none on its way the batch
        goes at once, so a lone request never waits for company that is not coming."""
        batch = [self._take(await self.queue.get())]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_size and sum(p.cost for p in batch) < self.max_size:
            if not self.queue.empty():  # take what is already there without waiting
                batch.append(self._take(self.queue.get_nowait()))
                continue
            coming = self._on_their_way(sum(p.cost for p in batch))
            if coming is not None and coming <= 0:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(self._take(await asyncio.wait_for(self.queue.get(), remaining)))
            except TimeoutError:
                break
        return batch

    def _late(self, waited_s: float) -> bool:
        """Whether a request that waited `waited_s` in the queue is shed at dequeue: past twice
        `max_queue_s` always (a late answer is no answer), past `max_queue_s` only while the
        server is overloaded (admission would refuse a default request now), so the rest keep
        their latency bound. A light load that one stall held up (a worker loading a new
        bundle) serves its few late requests: shed, they were the only failures of 50 reloads
        at 100 req/s (1 of ~1,500 requests in two runs of three)."""
        if self.max_queue_s is None or waited_s <= self.max_queue_s:
            return False
        return waited_s > 2 * self.max_queue_s or not self.policy.admits(self.pending_units)

    def _live(self, batch: list[Pending[Q, R]]) -> list[Pending[Q, R]]:
        """The batch without cancelled requests and without the late ones (`_late`), which
        are shed with 503 now."""
        now = asyncio.get_running_loop().time()
        live = []
        for p in batch:
            if p.future.cancelled():
                continue
            if self._late(now - p.queued_at):
                p.future.set_exception(
                    Overloaded("the request waited past its latency budget; retry shortly")
                )
                continue
            live.append(p)
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
            width = self.policy.width(
                self.in_flight_units + sum(p.cost for p in live) + self.queued_units
            )
            parts = min(1 + self.idle, len(live))  # idle workers share the batch
            for i in range(parts):
                if i:
                    await self._acquire()  # immediate: that worker is idle
                chunk = live[i * len(live) // parts : (i + 1) * len(live) // parts]
                task = asyncio.create_task(self._run_batch(chunk, width, queued))
                self.batches.add(task)
                task.add_done_callback(self.batches.discard)

    async def _run_batch(self, live: list[Pending[Q, R]], width: int, queued: int) -> None:
        loop = asyncio.get_running_loop()
        units = sum(p.cost for p in live)
        self.in_flight += len(live)
        self.in_flight_units += units
        try:
            results, seconds = await loop.run_in_executor(
                self.executor, self._timed_run, [p.query for p in live], width
            )
        except Exception as e:  # one bad batch must not kill the loop
            if isinstance(e, ServiceError):  # e.g. a model process failed: logged there
                log.warning("batch_failed size=%d error=%s", len(live), e)
            else:
                log.exception("batch_failed size=%d", len(live))
            for p in live:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        finally:
            self.in_flight -= len(live)
            self.in_flight_units -= units
            self._release()
        self.policy.observe(units, width, seconds)
        if self.on_batch:
            self.on_batch(BatchStats(len(live), width, seconds, queued))
        for p, r in zip(live, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)
