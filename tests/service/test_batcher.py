"""The micro-batcher groups concurrent queries and isolates failures."""

import asyncio
import threading

import pytest

from service.batcher import MicroBatcher


def test_concurrent_queries_share_a_batch():
    sizes, threads = [], set()

    def run(batch):
        sizes.append(len(batch))
        threads.add(threading.current_thread().name)
        return [q * 2 for q in batch]

    async def go():
        b = MicroBatcher(run, max_size=8, max_wait_ms=50)
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(20)))
        finally:
            await b.stop()

    assert asyncio.run(go()) == [i * 2 for i in range(20)]
    assert max(sizes) == 8 and sum(sizes) == 20
    assert all(name.startswith("genrec-model") for name in threads)


def test_a_failing_batch_fails_its_queries_and_the_loop_goes_on():
    def run(batch):
        if "bad" in batch:
            raise ValueError("boom")
        return batch

    async def go():
        b = MicroBatcher(run, max_size=4, max_wait_ms=0)
        b.start()
        try:
            with pytest.raises(ValueError):
                await b.submit("bad")
            return await b.submit("good")
        finally:
            await b.stop()

    assert asyncio.run(go()) == "good"
