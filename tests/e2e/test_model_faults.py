"""A model process that hangs (SIGSTOP) under traffic: its batch is answered 503 within the
deadline, the child is killed and replaced, and the other worker serves everything at once."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server
from tests.e2e.faults import Clients, model_processes

# A 500 ms SLO (deadlines of 375-500 ms): the host these tests share has been seen at load
# average 7 on 2 cores, where the default 100 ms sheds a share of requests with no fault at all.
SLO_S = 0.5


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    proc, url = start_server(
        tiny_bundle,
        tmp_path_factory.mktemp("model-faults"),
        GENREC_CACHE_TTL_S="0",
        GENREC_LATENCY_SLO_MS=str(SLO_S * 1000),
    )
    yield proc, url
    stop_server(proc)


def recommend(client: httpx.Client, worker: int, n: int) -> httpx.Response:
    history = [f"i{(worker * 13 + n + j) % 120}" for j in range(8)]
    return client.post("/v1/recommend", json={"history": history, "k": 5})


def test_a_stopped_model_process_costs_one_batch_not_the_service(server):
    proc, url = server
    children = model_processes(proc.pid)
    assert len(children) == 2  # the default: two model workers
    victim = children[0]
    # 100 req/s: well within what one worker serves, so the other carries the load alone
    with Clients(url, recommend, workers=4, rate_per_worker=25, timeout_s=20) as clients:
        time.sleep(1.5)
        stopped_at = time.monotonic()
        os.kill(victim, signal.SIGSTOP)  # hung: alive, holds its pipe, never answers
        try:
            time.sleep(8.0)
        finally:
            if victim in model_processes(proc.pid):
                os.kill(victim, signal.SIGCONT)
    after = clients.between(stopped_at - 0.5)  # with those in flight when it stopped
    assert len(after) > 300
    assert {r.status for r in after} <= {200, 503}, {r.status for r in after}
    assert all(r.retry_after for r in after if r.status == 503)
    # every request answered within the deadline (≤ the SLO) plus what HTTP and the queue add
    slowest = max(r.seconds for r in after)
    assert slowest < SLO_S + 0.3, slowest
    # full service again 5 s after the stop: a new child is up and requests are served as
    # before the stop (a busy host sheds the odd request even with no fault: a 2% allowance)
    late = clients.between(stopped_at + 5.0)
    ok = sum(r.status == 200 for r in late) / max(1, len(late))
    assert len(late) > 100 and ok >= 0.98, ok
    assert len(model_processes(proc.pid)) == 2
    print(
        f"\nSIGSTOP: {len(after)} requests, {sum(r.status == 503 for r in after)} answered 503, "
        f"slowest {slowest * 1000:.0f} ms; from stop + 5 s: {ok:.1%} answered 200"
    )
    assert victim not in model_processes(proc.pid)  # killed and replaced
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert "genrec_model_process_restarts 1.0" in metrics
