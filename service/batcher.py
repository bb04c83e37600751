"""Micro-batching: concurrent requests wait at most a few ms and are decoded together.

The event loop only enqueues; one worker thread runs the model, so inference never blocks
the loop and batches never compete with each other for the two cores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")


class MicroBatcher(Generic[Q, R]):
    """Collects queries for up to `max_wait_ms` (or `max_size` of them), then runs them as one batch."""

    def __init__(
        self, run: Callable[[list[Q]], list[R]], max_size: int, max_wait_ms: float
    ) -> None:
        self.run, self.max_size, self.max_wait = run, max_size, max_wait_ms / 1000
        self.queue: asyncio.Queue[tuple[Q, asyncio.Future[R]]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genrec-model")
        self.task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name="genrec-batcher")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, query: Q) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self.queue.put((query, future))
        return await future

    async def _collect(self) -> list[tuple[Q, asyncio.Future[R]]]:
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(q, f) for q, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.run, [q for q, _ in live])
            except Exception as e:  # one bad batch must not kill the loop
                log.exception("batch_failed size=%d", len(live))
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            for (_, f), r in zip(live, results, strict=True):
                if not f.done():
                    f.set_result(r)
