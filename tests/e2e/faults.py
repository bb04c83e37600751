"""Helpers for fault tests against a real server: its child processes, and clients that
record every request (start time, status, latency, Retry-After, body)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def model_processes(server_pid: int) -> list[int]:
    return [c for c in children(server_pid) if any("spawn_main" in a for a in cmdline(c))]


def redis_process(server_pid: int) -> tuple[int, str]:
    """The embedded redis-server's pid and unix socket (redis-server sets its process title
    to `PATH/redis-server unixsocket:SOCKET`)."""
    for c in children(server_pid):
        title = cmdline(c)[0]
        if "redis-server unixsocket:" in title:
            return c, title.split("unixsocket:", 1)[1].strip()
    raise LookupError("no redis-server child")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB)."""
    total = 0
    for p in [pid, *children(pid)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


@dataclass
class Record:
    started: float  # time.monotonic() when sent
    status: int  # 0: no HTTP answer (connection error, timeout)
    seconds: float
    retry_after: str | None
    body: dict[str, Any] = field(default_factory=dict)
    worker: int = 0  # which client thread sent it, and its n-th request
    n: int = 0


class Clients:
    """`workers` threads, each sending `request(client, worker, n)` one after another (or at
    `rate_per_worker` per second) until stopped or `limit_s` passed; every answer recorded."""

    def __init__(
        self,
        url: str,
        request: Any,
        workers: int = 4,
        rate_per_worker: float | None = None,
        limit_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.url, self.request, self.rate, self.limit_s = url, request, rate_per_worker, limit_s
        self.timeout_s = timeout_s
        self.stop = threading.Event()
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(workers)]

    def _run(self, worker: int) -> None:
        deadline = time.monotonic() + self.limit_s
        period = 1 / self.rate if self.rate else 0.0
        next_at = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as c:
            n = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                if period:
                    next_at += period
                    time.sleep(max(0.0, next_at - time.monotonic()))
                started = time.monotonic()
                try:
                    r = self.request(c, worker, n)
                    body = r.json() if r.content else {}
                    rec = Record(
                        started, r.status_code, time.monotonic() - started,
                        r.headers.get("retry-after"), body, worker, n,
                    )  # fmt: skip
                except httpx.HTTPError as e:
                    seconds = time.monotonic() - started
                    rec = Record(started, 0, seconds, None, {"error": repr(e)}, worker, n)
                with self.lock:
                    self.records.append(rec)
                n += 1

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def between(self, lo: float, hi: float = float("inf")) -> list[Record]:
        with self.lock:
            return [r for r in self.records if lo <= r.started < hi]


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else 0.0
