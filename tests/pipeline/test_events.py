"""The retrain reader over a partitioned stream on a real Redis Cluster, and its checkpoints."""

import asyncio
import uuid
from collections import Counter

import pytest
from redis.cluster import RedisCluster

from pipeline.events import StreamsBatch, checkpoints, empty_events, read_streams, stored_keys
from service.key_layout import Keys
from service.store import HistoryStore, connect


def post(url: str, prefix: str, partitions: int, events: list[tuple[str, str, int]]) -> None:
    """Append events as the service does on a cluster (and record its layout)."""

    async def go():
        client = connect(url, None, timeout_s=2.0, cluster=True)
        try:
            store = HistoryStore(client, prefix, 50, partitions=partitions)
            await store.check_layout()
            for lo in range(0, len(events), 10):  # several posts, as clients send them
                await store.append(events[lo : lo + 10])
        finally:
            await client.aclose()

    asyncio.run(go())


@pytest.fixture
def cluster_client(redis_cluster):
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    yield client
    client.close()


def test_paged_runs_read_every_partitions_events_exactly_once(redis_cluster, cluster_client):
    prefix = f"ev{uuid.uuid4().hex[:8]}"
    events = [(f"user{n % 23}", f"i{n}", 1000 + n) for n in range(150)]
    post(redis_cluster.url, prefix, 12, events)
    keys = stored_keys(cluster_client, prefix)
    assert keys.partitions == 12 and keys.cluster

    read: list[tuple[str, str, int]] = []
    after = checkpoints({}, keys)
    for _ in range(40):  # runs of at most 17 events, each from the last one's checkpoints
        batch = read_streams(cluster_client, after, page=4, max_events=17)
        assert len(batch) <= 17
        if not len(batch):
            break
        read += list(batch.frame.itertuples(index=False, name=None))
        after = checkpoints(batch.manifest(), keys)
    assert Counter(read) == Counter(events)  # every event, once
    for u in range(23):  # each user's events in the order posted
        mine = [item for user, item, _ in read if user == f"user{u}"]
        assert mine == [item for user, item, _ in events if user == f"user{u}"]


def test_no_partition_waits_behind_a_busy_one(redis_cluster, cluster_client):
    prefix = f"ev{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix, 12, cluster=True)
    busy = "user0"
    quiet = next(
        u for u in (f"q{n}" for n in range(100)) if keys.partition(u) != keys.partition(busy)
    )
    post(redis_cluster.url, prefix, 12, [(busy, f"i{n}", n + 1) for n in range(100)])
    post(redis_cluster.url, prefix, 12, [(quiet, "x", 1000)])
    batch = read_streams(cluster_client, checkpoints({}, keys), max_events=24)
    assert quiet in set(batch.frame["user_id"]) and len(batch) == 24


def test_a_one_stream_manifest_from_before_partitions_is_still_read():
    old = {"key": "genrec:events", "last_id": "17-0"}
    assert checkpoints(old, Keys("genrec")) == {"genrec:events": "17-0"}
    # a cluster's streams are other keys: their events all come after that checkpoint
    assert set(checkpoints(old, Keys("genrec", 12, cluster=True)).values()) == {None}
    batch = StreamsBatch(empty_events(), {"genrec:events": None}, {"genrec:events": "18-0"})
    assert batch.manifest() == {
        "last_ids": {"genrec:events": "18-0"},
        "key": "genrec:events",
        "last_id": "18-0",
    }
