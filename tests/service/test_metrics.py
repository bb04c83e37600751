"""Metrics live in one registry per app, and latency is labelled by route template."""

from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def test_two_apps_in_one_process_keep_separate_metrics(tmp_path):
    apps = [create_app(Settings(bundle=tmp_path / "none")) for _ in range(2)]
    assert apps[0].state.metrics.registry is not apps[1].state.metrics.registry
    first, second = (TestClient(app, raise_server_exceptions=False) for app in apps)
    for _ in range(3):
        assert first.get("/healthz").status_code == 200
    assert first.get("/v1/users/alice/history").status_code == 503  # no lifespan: no store
    count = 'genrec_request_seconds_count{method="GET",route="/healthz",status="200"} 3.0'
    assert count in first.get("/metrics").text
    assert "/healthz" not in second.get("/metrics").text


def test_latency_is_labelled_by_route_template_not_raw_path(tmp_path):
    client = TestClient(
        create_app(Settings(bundle=tmp_path / "none")), raise_server_exceptions=False
    )
    client.get("/v1/users/alice/history")
    client.get("/v1/users/bob/history")
    text = client.get("/metrics").text
    assert 'route="/v1/users/{user_id}/history"' in text
    assert "alice" not in text and "bob" not in text


def test_model_info_follows_the_served_version():
    from prometheus_client import generate_latest

    from service.metrics import Metrics

    metrics, served = Metrics(), ["v1"]
    metrics.watch_model(lambda: served[0])
    assert 'genrec_model_info{version="v1"} 1.0' in generate_latest(metrics.registry).decode()
    served[0] = "v2"  # a hot reload swapped the engine
    text = generate_latest(metrics.registry).decode()
    assert 'genrec_model_info{version="v2"} 1.0' in text and "v1" not in text
