"""Scale benchmark: how every cost grows from 10⁴ to 10⁶ items and 10⁵ to 10⁷ events.

    python benchmarks/scale.py                      # all three sizes, ~1 h on 2 idle cores
    python benchmarks/scale.py --sizes 1e4 --serve-seconds 4   # a quick look

For each size (10⁴ items / 10⁵ events, 10⁵ / 10⁶, 10⁶ / 10⁷) a synthetic catalog and log
(benchmarks/synthetic_log.py: Zipf popularity, sequential walks), then each stage of
benchmarks/scale_stages.py in its own process (data loading as `genrec train` does it, the
collaborative embedding, tokenizer fit and trie, a short training run and its bundle, bundle
load and in-process decoding, the dense re-rank), then the real `genrec serve` over HTTP
(closed loops at concurrency 1 and 16, beam 64, result cache off; events posted with an API
key). A stage is stopped if it passes its memory cap or time limit, and recorded as such.
Finished stages are kept under --work (keyed by size), so a rerun resumes; --fresh starts over.
Writes benchmarks/results/scale.{json,md,png} (see scale_report.py for the fits).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import provenance  # noqa: E402
from live_server import host_load  # noqa: E402
from loadgen import closed_loop, free_port  # noqa: E402
from redis_cost import Server as RedisServer  # noqa: E402
from redis_cost import seed_redis  # noqa: E402
from scale_report import report  # noqa: E402

SIZES = {"1e4": (10_000, 100_000), "1e5": (100_000, 1_000_000), "1e6": (1_000_000, 10_000_000)}
STAGES = ("data", "load", "collab", "tokenizer", "train", "bundle_load", "dense", "item_table")
API_KEY = "scale-bench"


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def tree_peak_mb(pid: int) -> dict[str, float]:
    """Each live process's high-water mark (VmHWM), by command: the server, its model
    workers, its Redis."""
    out: dict[str, float] = {}
    for i, p in enumerate(tree(pid)):
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
            name = "redis-server" if "redis" in p.name() else ("server" if i == 0 else "worker")
            out[f"{name}.{p.pid}"] = int(hwm.split()[1]) / 1024
        except (psutil.Error, OSError, StopIteration):
            pass
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the server and its model workers."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def cpu_now(pid: int, redis: RedisServer) -> dict[str, float]:
    return {"api": tree_cpu_s(pid), "redis": redis.cpu_s()}


def cpu_ms_per(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    return {f"{k}_cpu_ms": 1000 * (after[k] - before[k]) / max(1, n) for k in before}


def run_stage(
    stage: str, work: Path, items: int, events: int, cap_mb: float, limit_s: float
) -> dict[str, Any]:
    """One stage in a fresh interpreter; stopped past `cap_mb` of RSS or `limit_s` seconds."""
    log = (work / f"{stage}.log").open("w")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale_stages.py"), stage]
    cmd += ["--work", str(work), "--items", str(items), "--events", str(events)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    load = host_load()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=ROOT)
    stopped = None
    while proc.poll() is None:
        if tree_rss_mb(proc.pid) > cap_mb:
            stopped = f"over the {cap_mb:.0f} MB memory cap"
        elif time.monotonic() - started > limit_s:
            stopped = f"over the {limit_s:.0f} s time limit"
        if stopped:
            proc.kill()
            break
        time.sleep(0.2)
    out, _ = proc.communicate()
    log.close()
    wall = time.monotonic() - started
    if stopped:
        return {"stopped": stopped, "wall_s": wall, "load_before": load}
    if proc.returncode:
        raise RuntimeError(f"stage {stage} failed: see {work / f'{stage}.log'}")
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall, "load_before": load}


def serve(work: Path, seconds: float, redis: RedisServer) -> dict[str, Any]:
    """`genrec serve` on the size's bundle and an external Redis: time to ready, RSS, then
    closed loops; CPU of the API processes and of Redis apart."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "GENREC_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "GENREC_SEED_HISTORIES": "false",
        "GENREC_CACHE_TTL_S": "0",
        "GENREC_DEFAULT_BEAM_WIDTH": "64",
        "GENREC_DYNAMIC_BEAM": "false",
        "GENREC_API_KEY": API_KEY,
    }
    genrec = Path(sys.executable).parent / "genrec"
    cmd = [str(genrec), "serve", "--bundle", str(work / "bundle"), "--port", str(port)]
    log = (work / "serve.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    out: dict[str, Any] = {"load_before": host_load()}
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: see {work / 'serve.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 1800:
                raise RuntimeError("server not ready after 30 min")
            time.sleep(0.5)
        out["ready_s"] = time.monotonic() - started
        out["idle_rss_mb"] = tree_rss_mb(proc.pid)
        histories = json.loads((work / "bundle" / "histories.json").read_text())
        users = [u for u, h in histories.items() if len(h) >= 20]
        random.Random(0).shuffle(users)
        bodies = [json.dumps({"user_id": u, "k": 10}).encode() for u in users[:5000]]
        asyncio.run(closed_loop("127.0.0.1", port, bodies, 4, 3.0))  # warm up
        for c in (1, 16):
            cpu = cpu_now(proc.pid, redis)
            run = asyncio.run(closed_loop("127.0.0.1", port, bodies, c, seconds, 0.0))
            used = cpu_ms_per(cpu, cpu_now(proc.pid, redis), sum(run.statuses.values()))
            summary = run.summary()
            if summary["errors"]:
                raise RuntimeError(f"{summary['errors']} failed requests: see {work / 'serve.log'}")
            out[f"c{c}"] = {
                **summary,
                "latencies_ms": run.latencies_ms,
                **{f"{k}_per_request": v for k, v in used.items()},
                "load_before": host_load(),
            }
            print(
                f"    c={c}: {summary['qps']:.1f} qps, p50 {summary['p50_ms']:.1f} ms, "
                f"p99 {summary['p99_ms']:.1f} ms",
                flush=True,
            )
        out["rss_mb"] = tree_rss_mb(proc.pid)
        out["peak_mb_by_process"] = tree_peak_mb(proc.pid)
        out["events"] = post_events(port, proc.pid, redis, histories, seconds / 2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return out


def post_events(
    port: int, pid: int, redis: RedisServer, histories: dict[str, list[str]], seconds: float
) -> dict:
    """Batches of 10 events (existing users, catalog items) at concurrency 4: what an event
    costs the API processes and Redis."""
    rng = np.random.default_rng(0)
    users = list(histories)
    items = [i for h in list(histories.values())[:2000] for i in h]
    bodies = []
    for _ in range(500):
        batch = [
            {"user_id": users[rng.integers(len(users))], "item_id": items[rng.integers(len(items))]}
            for _ in range(10)
        ]
        bodies.append(json.dumps({"events": batch}).encode())
    cpu = cpu_now(pid, redis)
    run = asyncio.run(
        closed_loop(
            "127.0.0.1", port, bodies, 4, seconds, 0.0, "/v1/events", {"X-API-Key": API_KEY}
        )
    )
    used = cpu_ms_per(cpu, cpu_now(pid, redis), 10 * sum(run.statuses.values()))
    ok = run.statuses.get(200, 0)
    return {
        **{k: v for k, v in run.summary().items() if k != "widths"},
        "events_per_s": 10 * ok / seconds,
        **{f"{k}_per_event": v for k, v in used.items()},
    }


def kept(path: Path, fresh: bool, run: Any) -> dict[str, Any]:
    """A stage's result, kept at `path` (with the commit it ran at) so a rerun resumes."""
    if path.exists() and not fresh:
        return dict(json.loads(path.read_text()))
    out = dict(run())
    out["provenance"] = provenance()
    path.write_text(json.dumps(out, default=float))
    return out


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The serving rounds of one size folded into one: latency percentiles over the pooled
    requests of all rounds, medians of throughput and CPU, the largest memory."""
    out: dict[str, Any] = {"rounds": []}
    for key in ("ready_s", "idle_rss_mb"):
        out[key] = float(np.median([r[key] for r in rounds]))
    for loop in ("c1", "c16", "events"):
        out[loop] = {
            k: float(np.median([r[loop][k] for r in rounds]))
            for k, v in rounds[0][loop].items()
            if isinstance(v, int | float)
        }
        pooled = [ms for r in rounds for ms in r[loop].get("latencies_ms", [])]
        if pooled:
            for q in (50, 95, 99):
                out[loop][f"p{q}_ms"] = float(np.percentile(pooled, q))
            out[loop]["ok"] = len(pooled)
    out["rss_mb"] = max(r["rss_mb"] for r in rounds)
    out["peak_mb_by_process"] = rounds[-1]["peak_mb_by_process"]
    for r in rounds:  # per round without the raw latencies
        out["rounds"].append(
            {
                k: (
                    {kk: vv for kk, vv in v.items() if kk != "latencies_ms"}
                    if isinstance(v, dict)
                    else v
                )
                for k, v in r.items()
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "scale")
    parser.add_argument("--serve-seconds", type=float, default=10.0)
    parser.add_argument("--serve-rounds", type=int, default=3)
    parser.add_argument("--cap-mb", type=float, default=8000.0)
    parser.add_argument("--stage-limit-s", type=float, default=1500.0)
    parser.add_argument("--fresh", action="store_true", help="ignore kept stage results")
    args = parser.parse_args()
    results: dict[str, Any] = {"provenance": provenance(), "host": {"cpus": os.cpu_count()}}
    results["host"]["load_start"] = host_load()
    results["sizes"] = {}
    for name in args.sizes:
        items, events = SIZES[name]
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        size: dict[str, Any] = {"items": items, "events": events}
        for stage in STAGES:
            print(f"{name}: {stage} …", flush=True)
            run = partial(run_stage, stage, work, items, events, args.cap_mb, args.stage_limit_s)
            size[stage] = kept(work / f"result.{stage}.json", args.fresh, run)
        results["sizes"][name] = size
    # Serving in rounds over the sizes, so a burst of load on the shared host falls on one
    # round of one size, not on every measurement of one size.
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.sizes}
    redis: dict[str, RedisServer] = {}
    try:
        for r in range(args.serve_rounds):
            for name in args.sizes:
                work = args.work / name
                path = work / f"result.serve.{r}.json"
                if name not in redis and (args.fresh or not path.exists()):
                    print(f"{name}: external Redis, seeding histories …", flush=True)
                    (work / "redis-ext").mkdir(exist_ok=True)
                    redis[name] = RedisServer(work / "redis-ext")
                    bundle_histories = json.loads((work / "bundle" / "histories.json").read_text())
                    results["sizes"][name]["seed_redis_s"] = seed_redis(
                        redis[name], bundle_histories
                    )
                print(f"{name}: serve, round {r + 1} …", flush=True)
                run = partial(serve, work, args.serve_seconds, redis.get(name))
                rounds[name].append(kept(path, args.fresh, run))
    finally:
        for server in redis.values():
            server.close()
    for name in args.sizes:
        results["sizes"][name]["serve"] = median_round(rounds[name])
    results["host"]["load_end"] = host_load()
    results["stage_wall_s"] = sum(
        part.get("wall_s", 0.0)
        for s in results["sizes"].values()
        for part in s.values()
        if isinstance(part, dict)
    )
    report(results)


if __name__ == "__main__":
    main()
