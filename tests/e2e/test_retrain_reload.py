"""End to end: train → serve → events → retrain → gate passes → hot reload under load."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.e2e.faults import Clients
from tests.e2e.stack import AUTH, EVENTS, post_new_events, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(synthetic_files, tmp_path_factory):
    stack, proc = start_stack(synthetic_files, tmp_path_factory.mktemp("retrain"))
    yield stack
    stop_stack(stack, proc)


def recommend(client: httpx.Client, worker: int, n: int) -> httpx.Response:
    """Stored and explicit histories, in turn."""
    bodies = [{"user_id": f"u{worker}", "k": 5}, {"history": ["i1", "i2", "i3"], "k": 5}]
    return client.post("/v1/recommend", json=bodies[n % 2])


class Traffic(Clients):
    """Recommend requests from 4 clients at up to 40 req/s each until stopped (at most
    120 s); `results` are (status, model version) pairs, status 0 for a dropped connection."""

    def __init__(self, url: str) -> None:
        super().__init__(url, recommend, workers=4, rate_per_worker=40, limit_s=120)

    @property
    def results(self) -> list[tuple[int, str | None]]:
        with self.lock:
            return [(r.status, r.body.get("model_version")) for r in self.records]

    def wait_for(self, n: int, version: str, limit_s: float = 60.0) -> None:
        """Until n responses from `version` have come back."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if sum(1 for _, v in self.results if v == version) >= n:
                return
            time.sleep(0.05)


def test_retrained_bundle_is_published_and_hot_reloaded_without_failed_requests(stack):
    old = stack.served_version()
    events = post_new_events(stack.url)
    client = stack.redis()
    assert client.xlen(EVENTS) == len(events)

    done = subprocess.run(stack.retrain_cmd(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "published" and summary["gate"]["passed"]
    assert summary["events_consumed"] == len(events) and summary["new_items"] == 3
    new = summary["version"]
    assert stack.store.current_version() == new and client.xlen(EVENTS) == 0
    assert "retrain stage=gate" in done.stderr  # progress is logged stage by stage

    with Traffic(stack.url) as traffic:
        traffic.wait_for(20, old)
        r = httpx.post(f"{stack.url}/admin/reload", headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json() == {"reloaded": True, "model_version": new, "previous_version": old}
        traffic.wait_for(20, new)
    # With the default settings a busy host sheds the odd request (503, reload or not:
    # tests/e2e/test_reloads.py holds reloads to what quiet windows lose); nothing else fails.
    failures = [res for res in traffic.results if res[0] not in (200, 503)]
    shed = sum(1 for res in traffic.results if res[0] == 503)
    assert failures == [] and len(traffic.results) >= 40
    assert shed <= 0.05 * len(traffic.results), shed
    versions = [v for _, v in traffic.results]
    assert old in versions and new in versions

    # recommendations now come from the new version, which knows the new items and users
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        body = c.post("/v1/recommend", json={"history": ["i1", "new0"], "k": 5}).json()
        assert body["model_version"] == new and len(body["items"]) == 5
        body = c.post("/v1/recommend", json={"user_id": "stranger2", "k": 5}).json()
        assert body["model_version"] == new and body["history_length"] == 1
    client.close()
