"""Serving over HTTP: Prometheus /metrics, the result cache and its invalidation by events,
and the ONNX Runtime backend answering like PyTorch eager."""

import httpx
import pytest

from model.bundle import load_bundle
from service.engine import Engine
from tests.e2e.conftest import API_KEY, start_server, stop_server

AUTH = {"X-API-Key": API_KEY}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name or key == f"{name}{{{want}}}":
            return float(value)
    return 0.0


def test_metrics_cover_latency_batches_widths_queue_cache_and_model(client, tiny_bundle):
    version = load_bundle(tiny_bundle, verify=False).version
    body = client.post("/v1/recommend", json={"history": ["i1", "i2", "i3"], "k": 4}).json()
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    count = 'genrec_request_seconds_count{method="POST",route="/v1/recommend",status="200"}'
    assert any(line.startswith(count) for line in text.splitlines())
    assert metric(text, "genrec_batch_size_count") >= 1
    assert metric(text, "genrec_beam_width_count") >= 1
    assert metric(text, "genrec_beam_width_current") == body["beam_width"]
    assert "genrec_queue_depth 0.0" in text and "genrec_in_flight 0.0" in text
    assert metric(text, "genrec_model_info", version=version) == 1
    assert "genrec_cache_requests_total" in text and "genrec_redis_errors_total" in text


def test_repeated_requests_hit_the_cache_until_the_user_posts_an_event(client):
    def hits():
        return metric(client.get("/metrics").text, "genrec_cache_requests_total", result="hit")

    req = {"user_id": "u11", "k": 5}
    first = client.post("/v1/recommend", json=req).json()
    before = hits()
    again = client.post("/v1/recommend", json=req).json()
    assert again == first and hits() == before + 1
    top = first["items"][0]["item_id"]
    events = {"events": [{"user_id": "u11", "item_id": top}]}
    assert client.post("/v1/events", json=events, headers=AUTH).status_code == 200
    after = client.post("/v1/recommend", json=req).json()
    assert hits() == before + 1  # a miss: the event dropped the cached result
    assert top not in {it["item_id"] for it in after["items"]}  # now seen, so excluded
    assert after["history_length"] == first["history_length"] + 1


def test_explicit_histories_are_cached_by_content(client):
    req = {"history": ["i5", "i6", "i7"], "k": 3}
    a = client.post("/v1/recommend", json={**req, "user_id": "someone"}).json()
    b = client.post("/v1/recommend", json=req).json()
    assert a["items"] == b["items"] and a["user_id"] == "someone" and b["user_id"] is None


@pytest.fixture(scope="module")
def onnx_server(tiny_onnx_bundle, tmp_path_factory):
    proc, url = start_server(
        tiny_onnx_bundle,
        tmp_path_factory.mktemp("onnx-server"),
        GENREC_BACKEND="onnx",
        GENREC_CACHE_TTL_S="0",
    )
    yield url
    stop_server(proc)


def test_the_onnx_backend_answers_like_eager(onnx_server, tiny_onnx_bundle):
    """ONNX Runtime runs float32: its answers match the eager engine's in float32 (the eager
    server's default precision may be bfloat16, whose near-ties can order differently)."""
    bundle = load_bundle(tiny_onnx_bundle)
    eager = Engine(bundle, default_beam_width=64, max_beam_width=256)
    for req, history in (
        ({"user_id": "u3", "k": 10}, bundle.histories["u3"][-50:]),
        ({"history": ["i9", "i40", "i41"], "k": 5}, ["i9", "i40", "i41"]),
    ):
        with httpx.Client(base_url=onnx_server, timeout=30) as c:
            onnx = c.post("/v1/recommend", json=req).json()
        query = eager.query(eager.indices(history, strict=True), req["k"], None, True)
        (expected,) = eager.run([query], server_width=64)
        assert [it["item_id"] for it in onnx["items"]] == [s.item_id for s in expected.items]
        for a, b in zip(onnx["items"], expected.items, strict=True):
            assert a["score"] == pytest.approx(b.score, abs=1e-4)
