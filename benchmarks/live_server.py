"""The real server for benchmarks: `uvicorn service.app:create_app` in a subprocess (this
tree's code or another checkout's), the CPU it and its children use, and ml-100k request
bodies. serving.py, reliability.py and scale.py drive it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from loadgen import Run, free_port  # noqa: E402

BEAM = 64  # the beam the server defaults to here
K = 10
HISTORY = 50  # requests go to users whose stored history is this long


def host_load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Server:
    """`uvicorn service.app:create_app` in a subprocess, running the code under `code`, with a
    fresh embedded Redis (or `env`'s GENREC_REDIS_URL)."""

    def __init__(
        self,
        bundle: Path,
        workdir: Path,
        env: dict[str, str],
        code: Path = ROOT,
        redis_pid: int | None = None,
    ) -> None:
        """`redis_pid`: an external Redis whose CPU counts as the server's Redis."""
        self.port, self.redis_pid = free_port(), redis_pid
        self.workdir = Path(tempfile.mkdtemp(dir=workdir))
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
            "PYTHONPATH": str(code),
            "GENREC_BUNDLE": str(bundle),
            "GENREC_REDIS_DIR": str(self.workdir / "redis"),
            "GENREC_CACHE_TTL_S": "0",
            "GENREC_DEFAULT_BEAM_WIDTH": str(BEAM),
            **env,
        }
        self.log = (self.workdir / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "service.app:create_app",
                "--factory",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=environ,
            cwd=code,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "server.log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server not ready: " + (self.workdir / "server.log").read_text())

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) so far: the server, its model workers, its Redis."""
        import psutil

        out = {"server": 0.0, "model workers": 0.0, "redis": 0.0}
        root = psutil.Process(self.proc.pid)
        external = [psutil.Process(self.redis_pid)] if self.redis_pid else []
        for p in [root, *root.children(recursive=True), *external]:
            try:
                t = p.cpu_times()
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            kind = (
                "server"
                if p.pid == root.pid
                else "redis"
                if "redis" in cmd
                else "model workers"
                if "spawn_main" in cmd
                else "server"
            )
            out[kind] += t.user + t.system
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def __enter__(self) -> Server:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loadgen_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def measured(server: Server, load: Awaitable[Run]) -> tuple[Run, float, dict[str, float]]:
    """Await `load` (a load run, not started yet); → its Run, wall seconds, CPU s by process."""
    before, lg, t = server.cpu_s(), loadgen_cpu_s(), time.monotonic()
    run = await load
    wall = time.monotonic() - t
    cpu = {k: v - before[k] for k, v in server.cpu_s().items()}
    cpu["load generator"] = loadgen_cpu_s() - lg
    return run, wall, cpu


def cpu_per_request(run: Run, wall: float, cpu: dict[str, float]) -> dict[str, float]:
    """CPU ms per request by process: each one's cores in use over the request rate (the
    load runs' warm-up second is in the wall time, not in the counted requests)."""
    rate = sum(run.statuses.values()) / run.duration_s
    return {k: round(1000 * v / wall / max(rate, 1e-9), 3) for k, v in cpu.items()}


def request_bodies(bundle: Path) -> list[bytes]:
    """One request per ml-100k user whose stored history is full (50 items), shuffled."""
    histories = json.loads((bundle / "histories.json").read_text())
    users = sorted(u for u, h in histories.items() if len(h) >= HISTORY)
    random.Random(0).shuffle(users)
    return [json.dumps({"user_id": u, "k": K}).encode() for u in users]
