"""A running stack for retraining tests: a bundle store, a real Redis the service and the
retrain job share (over a unix socket, as an external Redis), and the server on `current`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from pipeline.publish import BundleStore
from service.key_layout import Keys
from service.store import EmbeddedRedis
from tests.e2e.conftest import API_KEY, start_server, stop_server

AUTH = {"X-API-Key": API_KEY}
EVENTS = Keys("genrec").events


@dataclass
class Stack:
    store: BundleStore
    redis_server: EmbeddedRedis
    url: str
    data_dir: Path

    @property
    def redis_url(self) -> str:
        return f"unix://{self.redis_server.socket}"

    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=self.redis_server.socket, decode_responses=True)

    def retrain_cmd(self, *extra: str) -> list[str]:
        return [
            *(sys.executable, "-m", "pipeline.cli", "retrain", "--store", str(self.store.root)),
            *("--redis-url", self.redis_url, "--data-dir", str(self.data_dir)),
            *("--epochs", "2", "--beam-width", "32", "--tolerance", "0.05", *extra),
        ]

    def served_version(self) -> str:
        return httpx.get(f"{self.url}/readyz", timeout=10).json()["model_version"]


def genrec_train_store(synthetic_files: tuple[Path, Path], root: Path) -> None:
    """`genrec train --store ROOT` on the synthetic files (tiny preset): version 1."""
    inter, items = synthetic_files
    cmd = [
        *(sys.executable, "-m", "pipeline.cli", "train", "--store", str(root)),
        *("--interactions", str(inter), "--items", str(items), "--preset", "tiny"),
        *("--codebook-size", "8", "--epochs", "3"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def start_stack(synthetic_files: tuple[Path, Path], workdir: Path) -> tuple[Stack, object]:
    store = BundleStore(workdir / "store")
    genrec_train_store(synthetic_files, store.root)
    server = EmbeddedRedis(workdir / "redis")
    proc, url = start_server(  # the default settings: shedding on, a 100 ms SLO
        store.current, workdir, GENREC_REDIS_URL=f"unix://{server.socket}"
    )
    return Stack(store, server, url, workdir / "data"), proc


def stop_stack(stack: Stack, proc: object) -> None:
    stop_server(proc)  # type: ignore[arg-type]
    stack.redis_server.close()


def post_new_events(url: str) -> list[dict[str, str | int]]:
    """Events for existing and new items, from known users and from two new users."""
    events: list[dict[str, str | int]] = []
    for u in range(30):
        t = 2_000_000 + 10 * u
        events += [
            {"user_id": f"u{u}", "item_id": f"new{u % 3}", "timestamp": t},
            {"user_id": f"u{u}", "item_id": f"i{(u * 7) % 120}", "timestamp": t + 1},
        ]
    events += [
        {"user_id": "stranger", "item_id": "i1", "timestamp": 2_100_000},
        {"user_id": "stranger", "item_id": "new0", "timestamp": 2_100_001},
        {"user_id": "stranger2", "item_id": "new1", "timestamp": 2_100_002},
    ]
    r = httpx.post(f"{url}/v1/events", json={"events": events}, headers=AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    return events
