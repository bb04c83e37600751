"""A lean HTTP/1.1 load generator on asyncio streams: closed loops and open-loop arrivals.

Written against raw keep-alive sockets rather than httpx because client and server share the
same two cores: the fewer cycles the client burns per request, the less it distorts what it
measures. Latency of an open-loop request counts from its scheduled arrival, so time spent
waiting for a free connection is included (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

WIDTH = re.compile(rb'"beam_width":(\d+)')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def post(
        self, host: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        """→ status, body, and the Retry-After seconds the server asked for (0 if none)."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        length, retry_after = 0, 0.0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"retry-after":
                retry_after = float(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split(b" ", 2)[1]), payload, retry_after

    def close(self) -> None:
        self.writer.close()


@dataclass
class Run:
    """Outcome of one load run: latencies (ms) of successful requests and what they used, and
    every request's (status, seconds, Retry-After) in `outcomes` (sheds have latencies too)."""

    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: list[tuple[int, float, float]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    widths: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0

    def record(self, status: int, payload: bytes, seconds: float, retry_after: float = 0.0) -> None:
        self.statuses[status] += 1
        self.outcomes.append((status, seconds, retry_after))
        if status == 200:
            self.latencies_ms.append(seconds * 1000)
            m = WIDTH.search(payload)
            if m:
                self.widths[int(m.group(1))] += 1

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        ok = len(self.latencies_ms)
        return {
            "requests": sum(self.statuses.values()) + self.timeouts,
            "ok": ok,
            "qps": ok / self.duration_s,
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)),
            "max_ms": float(lat.max()),
            "shed_503": self.statuses.get(503, 0),
            "errors": sum(n for s, n in self.statuses.items() if s not in (200, 503)),
            "timeouts": self.timeouts,
            "widths": {str(w): n for w, n in sorted(self.widths.items())},
        }


async def closed_loop(
    host: str,
    port: int,
    bodies: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    path: str = "/v1/recommend",
    headers: dict[str, str] | None = None,
) -> Run:
    """`concurrency` users, each sending its next request as soon as the last one answered
    (or after the Retry-After a shed request asks for, as a polite client would); only
    requests started after the warm-up and finished before the end count. `headers` go
    with every request (e.g. the API key of /v1/events)."""
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    run = Run(duration_s)

    async def user(u: int) -> None:
        conn = await Connection.open(host, port)
        i = u
        try:
            while (now := time.perf_counter()) < stop_at:
                body = bodies[i % len(bodies)]
                status, payload, retry_after = await conn.post(host, path, body, headers)
                done = time.perf_counter()
                if now >= measure_from and done <= stop_at:
                    run.record(status, payload, done - now, retry_after)
                i += concurrency
                if retry_after:
                    await asyncio.sleep(min(retry_after, max(0.0, stop_at - done)))
        finally:
            conn.close()

    await asyncio.gather(*(user(u) for u in range(concurrency)))
    return run


async def open_loop(
    host: str,
    port: int,
    bodies: list[bytes],
    rate: float,
    duration_s: float,
    max_connections: int = 1024,
    grace_s: float = 10.0,
    seed: int = 0,
    path: str = "/v1/recommend",
) -> Run:
    """Poisson arrivals at `rate` per second for `duration_s`, whatever the server does;
    requests still unanswered `grace_s` after the end count as timeouts."""
    rng = random.Random(seed)
    run = Run(duration_s)
    idle: deque[Connection] = deque()  # oldest first: reuse the most recently used
    slots = asyncio.Semaphore(max_connections)
    tasks: set[asyncio.Task[None]] = set()

    async def one(body: bytes, scheduled: float) -> None:
        async with slots:
            conn = idle.pop() if idle else await Connection.open(host, port)
            for attempt in (1, 2):  # an idle keep-alive connection may have been closed
                try:
                    status, payload, retry_after = await conn.post(host, path, body)
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    conn.close()
                    if attempt == 2:
                        run.statuses[599] += 1
                        return
                    conn = await Connection.open(host, port)
            run.record(status, payload, time.perf_counter() - scheduled, retry_after)
            idle.append(conn)

    start = time.perf_counter()
    t, i = start, 0
    while t < start + duration_s:
        t += rng.expovariate(rate)
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(bodies[i % len(bodies)], t))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        run.timeouts = len(pending)
        for task in pending:
            task.cancel()
    for conn in idle:
        conn.close()
    return run
