"""With Redis unreachable the service still recommends from explicit histories; user lookups get 503."""

import httpx
import pytest

from tests.e2e.conftest import API_KEY, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def no_redis_server(tiny_bundle, tmp_path_factory):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc, url = start_server(tiny_bundle, tmp_path_factory.mktemp("noredis"), GENREC_REDIS_URL=dead)
    yield url
    stop_server(proc)


def test_explicit_history_still_works_and_user_paths_fail_fast(no_redis_server):
    with httpx.Client(base_url=no_redis_server, timeout=10) as c:
        assert c.get("/readyz").json()["redis"] is False
        ok = c.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 3})
        assert ok.status_code == 200 and len(ok.json()["items"]) == 3
        for r in (
            c.post("/v1/recommend", json={"user_id": "u7"}),
            c.get("/v1/users/u7/history"),
            c.post(
                "/v1/events",
                json={"events": [{"user_id": "u7", "item_id": "i1"}]},
                headers={"X-API-Key": API_KEY},
            ),
        ):
            assert r.status_code == 503, r.text
            assert r.elapsed.total_seconds() < 2
            assert "unreachable" in r.json()["detail"]
