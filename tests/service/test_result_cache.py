"""The result cache against a real Redis (and a real Redis Cluster): hits, TTL, invalidation
by events (also of a result computed before the event), history-keyed entries, and failures
that never raise."""

import asyncio
import uuid

import numpy as np
import pytest

from service.metrics import Metrics
from service.result_cache import ResultCache, Shape
from service.store import connect

SHAPE = Shape(k=10, beam_width=None, exclude_seen=True)


@pytest.fixture
def with_cache(embedded_redis):
    def runner(fn, ttl_s=60.0, socket=None):
        async def go():
            client = connect(None, socket or embedded_redis.socket, timeout_s=0.5)
            metrics = Metrics()
            try:
                return await fn(ResultCache(client, "t", ttl_s, metrics), metrics)
            finally:
                await client.aclose()

        return asyncio.run(go())

    return runner


@pytest.fixture(params=["single", "cluster"])
def with_any_cache(request, with_cache):
    """`with_cache`, or the same on the session's Redis Cluster (keys tagged per user)."""
    if request.param == "single":
        return with_cache
    cluster = request.getfixturevalue("redis_cluster")

    def runner(fn):
        async def go():
            client = connect(cluster.url, None, timeout_s=2.0, cluster=True)
            metrics = Metrics()
            prefix = f"t{uuid.uuid4().hex[:8]}"
            try:
                return await fn(ResultCache(client, prefix, 60.0, metrics, hash_tags=True), metrics)
            finally:
                await client.aclose()

        return asyncio.run(go())

    return runner


def counter(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0


def test_a_stored_user_result_hits_until_that_user_posts_an_event(with_any_cache):
    async def go(cache, metrics):
        miss = await cache.get_user("v1", "u1", SHAPE)
        await cache.put_user("v1", "u1", SHAPE, '{"items": 1}', miss)
        hit = await cache.get_user("v1", "u1", SHAPE)
        other_shape = await cache.get_user("v1", "u1", Shape(5, None, True))
        other_version = await cache.get_user("v2", "u1", SHAPE)
        await cache.invalidate(["u2"])  # someone else's event
        still = await cache.get_user("v1", "u1", SHAPE)
        await cache.invalidate(["u1"])
        gone = await cache.get_user("v1", "u1", SHAPE)
        return miss, hit, other_shape, other_version, still, gone, metrics

    miss, hit, other_shape, other_version, still, gone, metrics = with_any_cache(go)
    assert miss.value is None and hit.value == '{"items": 1}'
    assert other_shape.value is None and other_version.value is None
    assert still.value == '{"items": 1}' and gone.value is None
    assert counter(metrics, "genrec_cache_requests_total", result="hit") == 2
    assert counter(metrics, "genrec_cache_requests_total", result="miss") == 4


def test_a_result_computed_before_an_event_is_not_stored_after_it(with_any_cache):
    async def go(cache, metrics):
        lookup = await cache.get_user("v1", "u1", SHAPE)  # request reads history …
        await cache.invalidate(["u1"])  # … an event lands while it decodes …
        await cache.put_user("v1", "u1", SHAPE, "stale", lookup)  # … it tries to store
        return await cache.get_user("v1", "u1", SHAPE)

    assert with_any_cache(go).value is None


def test_an_event_post_of_many_users_drops_every_ones_results(with_any_cache):
    """A post may name 1,000 users, on a cluster spread over every node (a transaction per
    user, run at once, failed with MaxConnectionsError)."""
    users = [f"user{n}" for n in range(1000)]

    async def go(cache, metrics):
        for u in users[:50]:
            await cache.put_user("v1", u, SHAPE, "x", await cache.get_user("v1", u, SHAPE))
        await cache.invalidate(users)
        after = [await cache.get_user("v1", u, SHAPE) for u in users[:50]]
        return after, counter(metrics, "genrec_redis_errors_total", op="cache_invalidate")

    after, errors = with_any_cache(go)
    assert errors == 0 and all(lookup.value is None for lookup in after)


def test_entries_expire_after_the_ttl(with_cache):
    async def go(cache, metrics):
        lookup = await cache.get_user("v1", "u1", SHAPE)
        await cache.put_user("v1", "u1", SHAPE, "x", lookup)
        history = np.array([3, 1, 2])
        await cache.put_history("v1", history, SHAPE, "y")
        users = await cache.client.ttl("t:rc:u:u1")
        keys = await cache.client.keys("t:rc:v1:h:*")
        return users, [await cache.client.ttl(k) for k in keys]

    users, histories = with_cache(go, ttl_s=30)
    assert 0 < users <= 30 and len(histories) == 1 and 0 < histories[0] <= 30


def test_history_results_are_keyed_by_the_history_itself(with_cache):
    async def go(cache, metrics):
        h = np.array([5, 6, 7])
        await cache.put_history("v1", h, SHAPE, "r")
        return (
            await cache.get_history("v1", np.array([5, 6, 7]), SHAPE),
            await cache.get_history("v1", np.array([5, 6, 7, 8]), SHAPE),
            await cache.get_history("v1", np.array([7, 6, 5]), SHAPE),
            await cache.get_history("v1", h, Shape(10, 32, True)),
        )

    same, longer, reordered, other_shape = with_cache(go)
    assert same.value == "r"
    assert longer.value is None and reordered.value is None and other_shape.value is None


def test_a_zero_ttl_turns_the_cache_off(with_cache):
    async def go(cache, metrics):
        return await cache.get_user("v1", "u1", SHAPE)

    assert with_cache(go, ttl_s=0) is None


def test_redis_failures_are_counted_misses_never_errors(with_cache, tmp_path):
    async def go(cache, metrics):
        got = await cache.get_user("v1", "u1", SHAPE)
        await cache.put_history("v1", np.array([1]), SHAPE, "x")
        await cache.invalidate(["u1"])
        return got, metrics

    got, metrics = with_cache(go, socket=str(tmp_path / "nothing-listens-here.sock"))
    assert got is None
    for op in ("cache_get", "cache_put", "cache_invalidate"):
        assert counter(metrics, "genrec_redis_errors_total", op=op) == 1
