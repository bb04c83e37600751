"""Recommendations the batcher would not admit get 503 + Retry-After before any parsing."""

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.errors import Overloaded
from service.request_guard import LoadShedder


class Gate:
    def __init__(self) -> None:
        self.open = True

    def check_admission(self) -> None:
        if not self.open:
            raise Overloaded("the server is overloaded; retry shortly")


def test_shed_before_the_route_runs_and_counted():
    app = FastAPI()
    calls = []

    @app.post("/v1/recommend")
    async def recommend() -> dict[str, str]:
        calls.append(1)
        return {"ok": "yes"}

    @app.post("/v1/events")
    async def events() -> dict[str, str]:
        return {"ok": "yes"}

    gate, shed = Gate(), []
    app.state.batcher = gate
    app.state.metrics = SimpleNamespace(overloaded=SimpleNamespace(inc=lambda: shed.append(1)))
    app.add_middleware(LoadShedder)
    client = TestClient(app)
    assert client.post("/v1/recommend", content=b"not even json").status_code == 200
    gate.open = False
    r = client.post("/v1/recommend", content=b"not even json")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["title"] == "Overloaded"
    assert client.post("/v1/events").status_code == 200  # only recommendations are shed
    assert len(calls) == 1 and len(shed) == 1
