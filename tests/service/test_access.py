"""Who may read and write what: scoped keys per route, 403 for switched-off writes, and the
event backlog cap, on the real app (TestClient) with a real embedded Redis."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

WRITE, READ = "write-key", "read-key"
EVENT = {"events": [{"user_id": "u1", "item_id": "i1"}]}

# (method, path, body, scope) of every route that touches a user's data or writes
ROUTES = [
    ("GET", "/v1/users/u1/history", None, "read"),
    ("POST", "/v1/recommend", {"user_id": "u1", "k": 3}, "read"),
    ("POST", "/v1/recommend", {"history": ["i1", "i2"], "k": 3}, "read"),
    ("POST", "/v1/events", EVENT, "write"),
    ("POST", "/admin/reload", None, "write"),
]


def serve(tiny_bundle, tmp_path, **settings) -> TestClient:
    s = Settings(bundle=tiny_bundle, redis_dir=tmp_path / "redis", model_process=False, **settings)
    return TestClient(create_app(s))


def call(client: TestClient, method: str, path: str, body, key: str | None):
    headers = {"X-API-Key": key} if key else {}
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture(scope="module")
def both_keys(tiny_bundle, tmp_path_factory):
    with serve(
        tiny_bundle, tmp_path_factory.mktemp("keys"), api_key=WRITE, read_api_key=READ
    ) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_each_protected_route_needs_its_key(both_keys, method, path, body, scope):
    for key in (None, "wrong", READ if scope == "write" else None):
        r = call(both_keys, method, path, body, key)
        assert r.status_code == 401, (key, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "X-API-Key" in r.json()["detail"]
    allowed = [WRITE] if scope == "write" else [READ, WRITE]  # the write key reads too
    for key in allowed:
        assert call(both_keys, method, path, body, key).status_code == 200, key


def test_health_and_metrics_need_no_key(both_keys):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert both_keys.get(path).status_code == 200


def test_without_keys_reads_are_open_and_writes_are_forbidden(tiny_bundle, tmp_path):
    with serve(tiny_bundle, tmp_path) as client:
        for method, path, body, scope in ROUTES:
            r = call(client, method, path, body, None)
            if scope == "read":
                assert r.status_code == 200, r.text
            else:
                assert r.status_code == 403, r.text
                assert "GENREC_API_KEY" in r.json()["detail"]
                assert "retry-after" not in r.headers  # not "retry later": switched off
        malformed = client.post("/v1/events", json={"events": "nope"})
        assert malformed.status_code == 403  # a fuzzer sees no server error either


def test_at_the_backlog_cap_events_get_503_and_a_metric(tiny_bundle, tmp_path):
    with serve(tiny_bundle, tmp_path, api_key=WRITE, events_max_backlog=3) as client:
        auth = {"X-API-Key": WRITE}
        two = {"events": [{"user_id": "u1", "item_id": "i1"}, {"user_id": "u1", "item_id": "i2"}]}
        assert client.post("/v1/events", json=two, headers=auth).status_code == 200
        before = client.get("/v1/users/u1/history").json()["items"]
        r = client.post("/v1/events", json=two, headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "backlog" in r.json()["detail"] and r.json()["max_backlog"] == 3
        assert client.get("/v1/users/u1/history").json()["items"] == before
        metrics = client.get("/metrics").text
        assert 'genrec_events_refused_total{reason="backlog_full"} 1.0' in metrics
        assert "genrec_events_backlog 2.0" in metrics
