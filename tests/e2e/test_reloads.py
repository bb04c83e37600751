"""Hot reloads under traffic with the default settings (shedding on, 100 ms SLO): no request
fails, each response comes from one bundle, and memory does not grow with the reloads."""

from __future__ import annotations

import time

import httpx
import pytest

from pipeline.publish import BundleStore
from tests.bundles import retitled
from tests.e2e.conftest import API_KEY, start_server, stop_server
from tests.e2e.faults import Clients, Record, rss_mb

AUTH = {"X-API-Key": API_KEY}
RELOADS = 20  # benchmarks/reliability.py runs 50 with the ml-100k bundle
VERSIONS = {f"2999010{i}T000000000000Z": f"v{i} " for i in range(1, 4)}  # version → title prefix


@pytest.fixture(scope="module")
def served(tiny_bundle, tmp_path_factory):
    """Three versions of the tiny bundle, told apart by their titles; served from `current`
    with nothing but the test's own keys and paths set (tests/conftest.py cleared GENREC_*)."""
    workdir = tmp_path_factory.mktemp("reloads")
    store = BundleStore(workdir / "store")
    for version, prefix in VERSIONS.items():
        store.add(retitled(tiny_bundle, workdir / version, version, prefix))
    store.switch(next(iter(VERSIONS)))
    proc, url = start_server(store.current, workdir)
    yield store, proc, url
    stop_server(proc)


def recommend(client: httpx.Client, worker: int, n: int) -> httpx.Response:
    if n % 2:
        return client.post("/v1/recommend", json={"user_id": f"u{(worker * 7 + n) % 150}"})
    return client.post("/v1/recommend", json={"history": [f"i{n % 120}", "i3"], "k": 5})


def test_reloads_under_100_requests_per_second_fail_nothing(served):
    """0 non-2xx is the target. The host these tests share sheds requests with no reload at
    all (seen: 4 of 1,500, and at worst 10%, at load average 6: requests that waited past
    half the SLO in the queue), so each reload is followed by a quiet window as long as it
    took, and the reload windows may lose no more than the quiet ones around them: a reload
    that fails requests (e.g. a batch waiting behind a bundle being loaded: hundreds of
    503s) fails the test. benchmarks/reliability.py reports the absolute count for 50."""
    store, proc, url = served
    order = list(VERSIONS)
    rss: list[float] = []
    reloading: list[tuple[float, float]] = []
    quiet: list[tuple[float, float]] = []
    with Clients(url, recommend, workers=4, rate_per_worker=25, timeout_s=10) as clients:
        time.sleep(1.0)
        for n in range(1, RELOADS + 1):
            started = time.monotonic()
            store.switch(order[n % len(order)])  # each reload loads a bundle not in memory
            r = httpx.post(f"{url}/admin/reload", headers=AUTH, timeout=60)
            assert r.status_code == 200 and r.json()["reloaded"], r.text
            ended = time.monotonic() + 0.1  # requests started just after the swap count too
            time.sleep(max(0.3, ended - started))
            reloading.append((started, ended))
            quiet.append((ended, time.monotonic()))
            if n in (1, RELOADS):
                rss.append(rss_mb(proc.pid))

    def window(spans: list[tuple[float, float]]) -> list[Record]:
        return [r for lo, hi in spans for r in clients.between(lo, hi)]

    during, between = window(reloading), window(quiet)
    failed = [(r.status, r.body.get("detail")) for r in during if r.status != 200]
    baseline = sum(r.status != 200 for r in between) * len(during) / max(1, len(between))
    assert {s for s, _ in failed} <= {503}, failed

    # Traffic flowed through the reloads as it did between them: a reload that stalls the
    # server stalls the clients too (each waits for its answer), so fewer requests start in
    # its window. A rate, not a count: the windows are as long as the reloads took, and a
    # fast reload's window holds few requests (CI: 338 in 20 windows, all answered 200).
    def rate(records: list[Record], spans: list[tuple[float, float]]) -> float:
        return len(records) / sum(hi - lo for lo, hi in spans)

    assert len(during) >= 5 * RELOADS, len(during)
    assert rate(during, reloading) >= 0.5 * rate(between, quiet), (
        rate(during, reloading),
        rate(between, quiet),
    )
    # twice the quiet windows' loss, plus 10% for the CPU a reload itself takes from a
    # starved host (seen: 8% at load average 8); the bug this guards against lost 35%
    assert len(failed) <= 2 * baseline + 0.1 * len(during), (failed, baseline)
    seen = set()
    for r in during:  # every item of a response comes from the bundle it names
        if r.status == 200:
            prefix = VERSIONS[r.body["model_version"]]
            assert all(it["title"].startswith(prefix) for it in r.body["items"]), r.body
            seen.add(r.body["model_version"])
    assert seen == set(VERSIONS)
    growth = rss[1] / rss[0] - 1
    assert growth < 0.10, rss
    print(
        f"\n{RELOADS} reloads, {len(during)} requests during them "
        f"({rate(during, reloading):.0f}/s, {rate(between, quiet):.0f}/s between), "
        f"{len(failed)} non-2xx "
        f"(quiet windows: {baseline:.1f} at that rate); RSS {rss[0]:.0f} -> {rss[1]:.0f} MB"
    )
