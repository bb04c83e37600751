"""A retrain killed midway: the old bundle is still served, no event is lost, a rerun works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.e2e.stack import AUTH, EVENTS, post_new_events, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(synthetic_files, tmp_path_factory):
    stack, proc = start_stack(synthetic_files, tmp_path_factory.mktemp("crash"))
    yield stack
    stop_stack(stack, proc)


def kill_when(cmd: list[str], marker: str, limit_s: float = 120.0) -> str:
    """Run cmd, SIGKILL it as soon as `marker` appears in its log; returns the log so far."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    seen, deadline = [], time.monotonic() + limit_s
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line or time.monotonic() > deadline:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup code runs: like an OOM kill or node loss
        proc.wait()
    assert marker in "".join(seen), "".join(seen)[-3000:]
    return "".join(seen)


def test_a_retrain_killed_during_training_loses_nothing_and_reruns(stack):
    old = stack.served_version()
    events = post_new_events(stack.url)
    client = stack.redis()

    # killed after the first epoch, with more to go (the time budget keeps it bounded)
    kill_when(stack.retrain_cmd("--epochs", "30", "--max-minutes", "1"), '"epoch": 1')
    assert stack.store.current_version() == old and stack.served_version() == old
    assert client.xlen(EVENTS) == len(events)  # no event consumed or trimmed
    r = httpx.post(f"{stack.url}/admin/reload", headers=AUTH, timeout=30)
    assert r.json()["reloaded"] is False  # nothing was published
    body = httpx.post(
        f"{stack.url}/v1/recommend", json={"user_id": "u1", "k": 5}, timeout=30
    ).json()
    assert body["model_version"] == old

    done = subprocess.run(stack.retrain_cmd(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "published" and summary["events_consumed"] == len(events)
    assert client.xlen(EVENTS) == 0
    assert not list((stack.store.root / "staging").glob("*"))  # the killed run's leftovers
    r = httpx.post(f"{stack.url}/admin/reload", headers=AUTH, timeout=60)
    assert r.json()["model_version"] == summary["version"] == stack.served_version()
    client.close()
