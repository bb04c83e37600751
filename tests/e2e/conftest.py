"""The real app under uvicorn in a subprocess, on a free port, with an embedded Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GENREC = [sys.executable, "-m", "pipeline.cli"]


def start_server(
    bundle: Path, workdir: Path, genrec: list[str] = GENREC, **env: str
) -> tuple[subprocess.Popen, str]:
    """`genrec serve` (this checkout's by default) on a free port, once /readyz answers 200."""
    port = free_port()
    environ = {  # no GENREC_* of the developer's: tests/conftest.py removed them
        **os.environ,
        "GENREC_REDIS_DIR": str(workdir / "redis"),
        "GENREC_API_KEY": API_KEY,
        "GENREC_MAX_BODY_BYTES": "16384",
        **env,
    }
    proc = subprocess.Popen(
        [*genrec, "serve", "--bundle", str(bundle), "--port", str(port)],
        env=environ,
        cwd=workdir,
        stdout=(workdir / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "server.log").read_text())
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready: " + (workdir / "server.log").read_text())


def stop_server(proc: subprocess.Popen) -> None:
    """Ctrl-C: a graceful stop without SIGTERM's drain (tests/e2e/test_drain.py covers that)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    proc, url = start_server(tiny_bundle, tmp_path_factory.mktemp("server"))
    yield url
    stop_server(proc)


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c
