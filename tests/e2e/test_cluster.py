"""The service and the retrain job on a real Redis Cluster (3 primaries, local ports):
events → history → recommend → `genrec retrain` reads every event exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import pandas as pd
import pytest
from redis.cluster import RedisCluster

from model.bundle import load_bundle
from pipeline.events import EVENTS_FILE, checkpoints, read_streams, stored_keys
from pipeline.publish import BundleStore
from service.settings import CLUSTER_PARTITIONS
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.stack import AUTH


@pytest.fixture(scope="module")
def on_cluster(tiny_bundle, redis_cluster, tmp_path_factory):
    """`genrec serve` with GENREC_REDIS_CLUSTER=true, its URL one node of the cluster."""
    env = {
        "GENREC_REDIS_CLUSTER": "true",
        "GENREC_REDIS_URL": redis_cluster.url,
        "GENREC_REDIS_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
    }
    proc, url = start_server(tiny_bundle, tmp_path_factory.mktemp("cluster-server"), **env)
    yield url, env
    stop_server(proc)


def test_events_history_recommend_and_retrain_on_a_cluster(on_cluster, tiny_bundle, tmp_path):
    url, env = on_cluster
    events = [  # known users and two new ones, over several posts and partitions
        {
            "user_id": f"u{u}",
            "item_id": f"i{(u * 7 + n) % 120}",
            "timestamp": 2_000_000 + 10 * u + n,
        }
        for u in range(30)
        for n in range(2)
    ] + [
        {"user_id": "stranger", "item_id": "i1", "timestamp": 2_100_000},
        {"user_id": "stranger", "item_id": "new0", "timestamp": 2_100_001},
        {"user_id": "stranger2", "item_id": "new1", "timestamp": 2_100_002},
    ]
    with httpx.Client(base_url=url, timeout=30) as c:
        for lo in range(0, len(events), 16):
            r = c.post("/v1/events", json={"events": events[lo : lo + 16]}, headers=AUTH)
            assert r.status_code == 200, r.text
        assert c.get("/v1/users/stranger/history").json()["items"] == ["i1", "new0"]
        u3 = c.get("/v1/users/u3/history").json()["items"]  # seeded from the bundle, then events
        assert len(u3) > 2 and u3[-2:] == ["i21", "i22"]
        for _ in range(2):  # a miss, then the cache
            r = c.post("/v1/recommend", json={"user_id": "u3", "k": 5})
            assert r.status_code == 200 and len(r.json()["items"]) == 5, r.text
        more = {"user_id": "u3", "item_id": "i40", "timestamp": 2_200_000}
        assert c.post("/v1/events", json={"events": [more]}, headers=AUTH).status_code == 200
        events.append(more)
        r = c.post("/v1/recommend", json={"user_id": "u3", "k": 5})
        assert r.status_code == 200 and r.json()["history_length"] == len(u3) + 1
        assert 'genrec_redis_errors_total{op="' not in c.get("/metrics").text
    prefix = env["GENREC_REDIS_PREFIX"]
    client = RedisCluster.from_url(env["GENREC_REDIS_URL"], decode_responses=True)
    try:
        keys = stored_keys(client, prefix)
        assert keys.partitions == CLUSTER_PARTITIONS
        filled = sum(1 for key in keys.streams if client.xlen(key))
        assert filled > 1 and sum(client.xlen(key) for key in keys.streams) == len(events)

        store = BundleStore(tmp_path / "store")
        store.publish(tiny_bundle)
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pipeline.cli", "retrain", "--store", str(store.root)),
                *("--data-dir", str(tiny_bundle.parent), "--epochs", "1", "--final-epochs", "1"),
                *("--beam-width", "16", "--tolerance", "1.0"),  # the gate is not under test
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout)
        assert summary["status"] == "published" and summary["events_consumed"] == len(events)
        new = load_bundle(store.current)
        consumed = pd.read_parquet(new.path / EVENTS_FILE)
        as_rows = Counter(consumed.itertuples(index=False, name=None))
        assert as_rows == Counter((e["user_id"], e["item_id"], e["timestamp"]) for e in events)
        # the checkpoints cover every partition: the streams are trimmed and nothing is left
        assert sum(client.xlen(key) for key in keys.streams) == 0
        after = checkpoints(new.manifest["stream"], keys)
        assert len(after) == CLUSTER_PARTITIONS and len(read_streams(client, after)) == 0
    finally:
        client.close()
