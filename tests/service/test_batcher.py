"""The micro-batcher groups concurrent queries, bounds its queue, isolates failures, and asks
the width policy once per batch."""

import asyncio
import threading

import pytest

from service.batcher import FixedWidth, MicroBatcher
from service.errors import Overloaded


def batcher(
    run, max_size=8, max_wait_ms=50.0, max_queue=1000, policy=None, on_batch=None, workers=1
):
    policy = policy or FixedWidth(64)
    return MicroBatcher(run, max_size, max_wait_ms, max_queue, policy, on_batch, workers)


def test_concurrent_queries_share_a_batch():
    sizes, threads = [], set()

    def run(batch, width):
        sizes.append(len(batch))
        threads.add(threading.current_thread().name)
        return [q * 2 for q in batch]

    async def go():
        b = batcher(run)
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(20)))
        finally:
            await b.stop()

    assert asyncio.run(go()) == [i * 2 for i in range(20)]
    assert max(sizes) == 8 and sum(sizes) == 20
    assert all(name.startswith("genrec-model") for name in threads)


def test_a_failing_batch_fails_its_queries_and_the_loop_goes_on():
    def run(batch, width):
        if "bad" in batch:
            raise ValueError("boom")
        return batch

    async def go():
        b = batcher(run, max_size=4, max_wait_ms=0)
        b.start()
        try:
            with pytest.raises(ValueError):
                await b.submit("bad")
            return await b.submit("good")
        finally:
            await b.stop()

    assert asyncio.run(go()) == "good"


def test_a_full_queue_sheds_new_queries_at_once():
    release = threading.Event()

    def run(batch, width):
        release.wait(10)
        return batch

    async def go():
        b = batcher(run, max_size=1, max_wait_ms=0, max_queue=2)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(0))
            while b.in_flight == 0:  # the first query is running, the queue is empty
                await asyncio.sleep(0.001)
            waiting = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
            await asyncio.sleep(0)
            with pytest.raises(Overloaded):
                await b.submit(3)
            release.set()
            return await asyncio.gather(first, *waiting)
        finally:
            release.set()
            await b.stop()

    assert asyncio.run(go()) == [0, 1, 2]


class RecordingPolicy:
    def admits(self, pending, units=1.0, expensive=False):
        return True

    def __init__(self):
        self.pending, self.observed = [], []

    def width(self, pending):
        self.pending.append(pending)
        return 8 if pending > 4 else 32

    def observe(self, requests, width, seconds):
        self.observed.append((requests, width))


def test_the_policy_sees_the_pending_load_and_the_batch_runs_at_its_width():
    policy, widths, stats = RecordingPolicy(), [], []

    def run(batch, width):
        widths.append(width)
        return batch

    async def go():
        b = batcher(run, max_size=16, max_wait_ms=20, policy=policy, on_batch=stats.append)
        b.start()
        try:
            await asyncio.gather(*(b.submit(i) for i in range(10)))
            await b.submit(99)
        finally:
            await b.stop()

    asyncio.run(go())
    assert policy.pending == [10, 1] and widths == [8, 32]
    assert policy.observed == [(10, 8), (1, 32)]
    assert [(s.size, s.width) for s in stats] == [(10, 8), (1, 32)]


class Shedding(RecordingPolicy):
    def admits(self, pending, units=1.0, expensive=False):
        return pending < 2


def test_queries_past_the_policys_budget_are_shed():
    release = threading.Event()

    def run(batch, width):
        release.wait(10)
        return batch

    async def go():
        b = batcher(run, max_size=1, max_wait_ms=0, policy=Shedding())
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(0))
            while b.in_flight == 0:
                await asyncio.sleep(0.001)
            second = asyncio.ensure_future(b.submit(1))  # pending 1: admitted
            await asyncio.sleep(0)
            with pytest.raises(Overloaded):
                await b.submit(2)  # pending 2: shed
            release.set()
            return await asyncio.gather(first, second)
        finally:
            release.set()
            await b.stop()

    assert asyncio.run(go()) == [0, 1]


def test_idle_workers_share_a_gathered_batch():
    sizes, threads, both = [], set(), threading.Barrier(2, timeout=5)

    def run(batch, width):
        sizes.append(len(batch))
        threads.add(threading.current_thread().name)
        both.wait()  # both halves run at the same time
        return batch

    async def go():
        b = batcher(run, max_size=16, max_wait_ms=20, workers=2)
        b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(10)))
        finally:
            await b.stop()

    assert asyncio.run(go()) == list(range(10))
    assert sorted(sizes) == [5, 5] and len(threads) == 2


def held_batcher(policy=None):
    """One worker whose batches wait for `release` (the first holds it), batches of one, and a
    queue bound of 50 ms: returns `release` and a factory of the batcher."""
    release = threading.Event()

    def run(batch, width):
        release.wait(5)
        return batch

    policy = policy or FixedWidth(8)
    return release, lambda: MicroBatcher(run, 1, 0.0, 100, policy, None, 1, max_queue_s=0.05)


def late_behind_first(waited_s, policy=None, before_release=lambda: None):
    """Submit "first" (it holds the only worker) and then "late", which waits `waited_s` in the
    queue before `before_release()` and the worker's release; then "fresh" with nothing ahead.
    Returns the three outcomes (an exception where one was shed)."""
    release, held = held_batcher(policy)

    async def go():
        b = held()
        b.start()
        try:
            first = asyncio.ensure_future(b.submit("first"))
            await asyncio.sleep(0.01)
            late = asyncio.ensure_future(b.submit("late"))
            await asyncio.sleep(waited_s)
            before_release()
            release.set()
            results = await asyncio.gather(first, late, return_exceptions=True)
            fresh = await asyncio.gather(b.submit("fresh"), return_exceptions=True)
            return (*results, *fresh)
        finally:
            await b.stop()

    return asyncio.run(go())


def test_queries_that_waited_past_the_queue_bound_are_shed_at_dequeue():
    first, late, fresh = late_behind_first(0.2)  # past 50 ms, and past twice that
    assert first == "first" and fresh == "fresh"
    assert isinstance(late, Overloaded)


def test_a_batch_waits_only_for_requests_on_their_way():
    sizes = []

    def run(batch, width):
        sizes.append(len(batch))
        return batch

    async def go():
        b = batcher(run, max_size=8, max_wait_ms=300.0)
        b.admitted = 1  # the edge counts one request: this one
        b.start()
        loop = asyncio.get_running_loop()
        try:
            start = loop.time()
            await b.submit("alone")
            alone_s = loop.time() - start
            b.admitted = 2  # a second request was admitted and is still reading Redis
            first = asyncio.ensure_future(b.submit("first"))
            await asyncio.sleep(0.05)
            await asyncio.gather(first, b.submit("second"))
            return alone_s
        finally:
            await b.stop()

    alone_s = asyncio.run(go())
    assert alone_s < 0.2  # did not wait the 300 ms for company
    assert sizes == [1, 2]  # the second arrived within the wait and shared the batch


def test_a_request_with_nothing_ahead_is_admitted_whatever_the_host_last_measured():
    """The edge counts a request before `submit` checks its full cost; that unit is the
    request's own, not work ahead of it. A stalled host once measured 2 s per request: an idle
    server must still admit (and re-measure), or it sheds every request for good (seen: servers
    started together on a busy host answered nothing but 503)."""
    from service.beam_controller import BeamController, ControllerConfig

    controller = BeamController(ControllerConfig(enabled=False))
    controller.observe(1, 64, 2.0)  # far past the 100 ms SLO's admission budget

    async def go():
        b = batcher(lambda batch, width: batch, max_wait_ms=0, policy=controller)
        b.start()
        try:
            with b.admitted_request():  # what LoadShedder does at the edge
                return await b.submit("alone")
        finally:
            await b.stop()

    assert asyncio.run(go()) == "alone"


def test_a_standing_queue_sheds_new_requests_at_once_and_an_empty_one_admits():
    """Once the oldest queued request has waited most of the queue bound, a new one would wait
    at least as long: it is shed at the edge, in no time, not after waiting out the bound."""
    release, held = held_batcher()

    async def go():
        b = held()
        b.start()
        loop = asyncio.get_running_loop()
        try:
            first = asyncio.ensure_future(b.submit("first"))
            await asyncio.sleep(0.01)
            queued = asyncio.ensure_future(b.submit("queued"))
            await asyncio.sleep(0.01)
            b.check_admission()  # the queue is young: admitted
            await asyncio.sleep(0.04)  # its oldest request has now waited 50 ms > 0.6 × 50
            start = loop.time()
            with pytest.raises(Overloaded, match="queue"):
                b.check_admission()
            shed_s = loop.time() - start
            release.set()
            await asyncio.gather(first, queued, return_exceptions=True)
            b.check_admission()  # empty again: admitted
            return shed_s, await b.submit("fresh")
        finally:
            await b.stop()

    shed_s, fresh = asyncio.run(go())
    assert shed_s < 0.01 and fresh == "fresh"


class Switch(FixedWidth):
    """A width policy whose admission is switched by the test: overloaded or not."""

    def __init__(self) -> None:
        super().__init__(8)
        self.overloaded = False

    def admits(self, pending, units=1.0, expensive=False):
        return not self.overloaded


@pytest.mark.parametrize("overloaded", [False, True])
def test_a_request_a_stall_made_late_is_served_unless_the_server_is_overloaded(overloaded):
    """Past the queue bound (but not twice it), a request is shed only while admission would
    refuse: one stall under light load (a worker loading a new bundle) costs no request."""
    policy = Switch()

    def switch() -> None:
        policy.overloaded = overloaded

    # "late" has waited past 50 ms, not past 100
    first, late, _ = late_behind_first(0.07, policy, before_release=switch)
    assert first == "first"
    if overloaded:
        assert isinstance(late, Overloaded)
    else:
        assert late == "late"
