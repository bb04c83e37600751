"""A retrain learns the newest events: the item everyone just moved to is recommended.

Leave-one-out holds each user's two newest items out of training; without the final pass
through every position the published model never trains on them, so a trend that lives only
in the newest events (here: 300 users watching i50, then new1, then new2) is invisible to it.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.e2e.stack import AUTH, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(synthetic_files, tmp_path_factory):
    stack, proc = start_stack(synthetic_files, tmp_path_factory.mktemp("newest"))
    yield stack
    stop_stack(stack, proc)


def test_after_retrain_and_reload_the_newest_item_follows_its_predecessor(stack):
    events = []
    for u in range(300):
        t = 3_000_000 + 10 * u
        events += [
            {"user_id": f"fan{u}", "item_id": item, "timestamp": t + i}
            for i, item in enumerate(("i50", "new1", "new2"))
        ]
    for lo in range(0, len(events), 150):  # the test server takes bodies up to 16 KB
        chunk = {"events": events[lo : lo + 150]}
        r = httpx.post(f"{stack.url}/v1/events", json=chunk, headers=AUTH, timeout=30)
        assert r.status_code == 200, r.text

    done = subprocess.run(stack.retrain_cmd(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "published" and summary["gate"]["users"] == "users with new events"
    r = httpx.post(f"{stack.url}/admin/reload", headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["model_version"] == summary["version"], r.text

    body = {"history": ["i50", "new1"], "k": 10}
    r = httpx.post(f"{stack.url}/v1/recommend", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert "new2" in [it["item_id"] for it in r.json()["items"]]
