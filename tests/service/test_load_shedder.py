"""Recommendations the batcher would not admit get 503 + Retry-After before any parsing."""

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.batcher import MicroBatcher
from service.errors import Overloaded
from service.request_guard import LoadShedder


class Gate:
    """A stand-in batcher that records how many requests were admitted and unanswered; the
    counting itself is the batcher's own."""

    admitted_request = MicroBatcher.admitted_request

    def __init__(self) -> None:
        self.open = True
        self.admitted: int | None = None
        self.pending: list[int] = []

    def check_admission(self) -> None:
        self.pending.append(self.admitted or 0)
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
    assert gate.pending == [0, 0]  # nothing was in flight when each arrived


def test_requests_admitted_and_unanswered_count_as_pending():
    import asyncio

    import httpx

    app, gate, release = FastAPI(), Gate(), asyncio.Event()

    @app.post("/v1/recommend")
    async def recommend() -> dict[str, str]:
        await release.wait()  # e.g. reading Redis: not in the batcher yet
        return {"ok": "yes"}

    app.state.batcher = gate
    app.state.metrics = SimpleNamespace(overloaded=SimpleNamespace(inc=lambda: None))
    app.add_middleware(LoadShedder)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/v1/recommend"))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(client.post("/v1/recommend"))
            await asyncio.sleep(0.05)
            release.set()
            await asyncio.gather(first, second)
            await client.post("/v1/recommend")
        return gate.pending

    assert asyncio.run(go()) == [0, 1, 0]
