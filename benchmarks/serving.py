"""Serving benchmark: the real server (uvicorn subprocess) under load over loopback, as MFU.

    python benchmarks/serving.py --bundle artifacts/bundles/ml-100k --data-dir data

In one run, on one bundle:

- **Peak.** The host's matmul peak at decoder shapes, bfloat16 and float32, one thread (what a
  model worker has), best of several shapes and repeats.
- **Ladder.** Servers whose settings or code differ from the row above by one change, from
  the naive reference to the default. Rows marked `previous` run the code of
  `PREVIOUS_DEFAULT` (a git worktree of that commit, same venv): their last row is the previous
  default, and the row after it adds this tree's code. Each runs closed loops at concurrency
  1, 4, 16 and 64 over ml-100k users whose stored history is 50 items (k=10, beam 64, result
  cache off, so every request decodes), and reports QPS, latency, shed requests, the final
  widths served, CPU per request by process (server, model workers, Redis, load generator)
  and MFU: answered requests × their model FLOPs (`model.flops`, at the widths each was
  served) per second, over the peak of the row's precision on all the host's cores.
- **Cache.** The default with and without the result cache on a workload that repeats as
  users do: many users, each one's requests a Poisson process with a mean gap of minutes
  (one stream of uniform picks), against an external Redis seeded with their histories;
  open loop at half the default's c=16 QPS (hit rate, latency, CPU per request), then a
  closed loop at c=16 (QPS).
- The offline NDCG@10 (test split) at the widths the default served.

Writes benchmarks/results/serving.{json,md,png}. Speed figures are comparable within one run
only: the host is shared, and the load generator runs on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_server import (  # noqa: E402
    BEAM,
    HISTORY,
    K,
    Server,
    cpu_per_request,
    host_load,
    measured,
    request_bodies,
)
from loadgen import Run, closed_loop, open_loop  # noqa: E402

CONCURRENCY = (1, 4, 16, 64)

PREVIOUS_DEFAULT = "85fe3c6"
"""main before this round's serving changes: the code the `previous` rows run."""


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    env: dict[str, str]
    code: str  # "previous" (PREVIOUS_DEFAULT's code) or "current" (this tree)


STATIC = {"GENREC_DYNAMIC_BEAM": "false"}
IN_PROCESS = {"GENREC_MODEL_PROCESS": "false", "GENREC_MODEL_WORKERS": "1"}
FP32 = {"GENREC_PRECISION": "float32"}
LADDER = [
    Row(
        "naive",
        "naive reference: context re-encoded per beam and level, batch 1, float32, one model "
        "thread in the server process, static beam",
        {**IN_PROCESS, **FP32, **STATIC, "GENREC_DECODING": "naive", "GENREC_BATCH_MAX_SIZE": "1"},
        "previous",
    ),
    Row(
        "+cached",
        "+ cached decoding (context gathered from a per-item table, KV cache per level)",
        {**IN_PROCESS, **FP32, **STATIC, "GENREC_BATCH_MAX_SIZE": "1"},
        "previous",
    ),
    Row("+batching", "+ micro-batches of up to 8", {**IN_PROCESS, **FP32, **STATIC}, "previous"),
    Row("+bfloat16", "+ bfloat16 where native (`auto`)", {**IN_PROCESS, **STATIC}, "previous"),
    Row(
        "+processes",
        "+ 2 model processes instead of one model thread in the server",
        STATIC,
        "previous",
    ),
    Row(
        "+bos-reuse",
        "+ this tree's code: the dense re-rank reads the BOS state of the first level's step",
        STATIC,
        "current",
    ),
    Row("+dynamic", "+ dynamic beam: **the default**", {}, "current"),
]
SIDE = [
    Row(
        "previous default",
        "the previous default: the previous code with its default settings (dynamic beam)",
        {},
        "previous",
    ),
    Row(
        "onnx",
        "this tree's code, static beam, on ONNX Runtime (float32): compare with +bos-reuse",
        {"GENREC_BACKEND": "onnx", **STATIC},
        "current",
    ),
]
ROWS = {r.name: r for r in [*LADDER, *SIDE]}
PREVIOUS, DEFAULT = "previous default", "+dynamic"


# --- model FLOPs and the host's peak ------------------------------------------------------


class Flops:
    """Model FLOPs of one request by the final width it was served at (`model.flops`)."""

    def __init__(self, bundle: Path) -> None:
        from model.beam_search import beam_schedule
        from model.bundle import read_manifest
        from model.config import GeneratorConfig

        self.cfg = GeneratorConfig.from_dict(read_manifest(bundle)["generator"])
        self.schedule = beam_schedule

    def __call__(self, final_width: int) -> float:
        from model.flops import request_flops

        cfg = self.cfg
        widths = self.schedule(final_width, cfg.n_levels, cfg.codebook_sizes, K)
        return float(request_flops(cfg, widths, HISTORY).total)

    def served(self, widths: dict[str, int]) -> float:
        """Mean FLOPs per answered request, given {final width: count}."""
        n = sum(widths.values())
        return sum(self(int(w)) * c for w, c in widths.items()) / max(1, n)


PEAK_SHAPES = [(512, 128, 384), (512, 128, 1024), (512, 512, 128), (1024, 1024, 1024)]
"""(M, K, N): 8 requests × 64 beams through qkv_self, the FFN's gate_up and down; and a big square."""


def matmul_peak(seconds: float = 1.0) -> dict[str, Any]:
    """GFLOP/s of one thread per dtype and shape (best of 5 timed rounds each); `peak` is the
    best over the decoder shapes (the first three), what MFU divides by."""
    import torch

    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    for dtype in (torch.bfloat16, torch.float32):
        shapes = {}
        for M, Kd, N in PEAK_SHAPES:
            a, b = torch.randn(M, Kd, dtype=dtype), torch.randn(Kd, N, dtype=dtype)
            torch.mm(a, b)
            n = 1
            while True:  # calls per round: about seconds / 5
                t = time.perf_counter()
                for _ in range(n):
                    torch.mm(a, b)
                if time.perf_counter() - t > seconds / 5 / 4:
                    break
                n *= 2
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(n):
                    torch.mm(a, b)
                best = min(best, (time.perf_counter() - t) / n)
            shapes[f"{M}x{Kd}x{N}"] = round(2 * M * Kd * N / best / 1e9, 1)
        name = str(dtype).removeprefix("torch.")
        decoder = [v for s, v in shapes.items() if s != "1024x1024x1024"]
        out[name] = {"shapes": shapes, "peak": max(decoder)}
    return out


def row_precision(row: Row) -> str:
    from model.precision import inference_dtype

    if row.env.get("GENREC_BACKEND") == "onnx":
        return "float32"
    dtype = inference_dtype(row.env.get("GENREC_PRECISION", "auto"))
    return str(dtype).removeprefix("torch.")


# --- phases -------------------------------------------------------------------------------


def merge(runs: list[Run]) -> Run:
    """Load runs of one server pooled into one: their durations, latencies and counts."""
    out = Run(sum(r.duration_s for r in runs))
    for r in runs:
        out.latencies_ms += r.latencies_ms
        out.outcomes += r.outcomes
        out.statuses.update(r.statuses)
        out.widths.update(r.widths)
        out.timeouts += r.timeouts
    return out


def ladder(
    bundle: Path, work: Path, rows: list[Row], codes: dict[str, Path], bodies: list[bytes], ctx: Any
) -> dict[str, list[dict[str, Any]]]:
    """Every row's server up at once, the load on one at a time: `ctx.rounds` rounds, each
    giving every row and concurrency `ctx.seconds / rounds` (the rows' order rotating), so a
    change in the host's speed during the run falls on every row alike."""
    servers = {}
    try:
        for row in rows:  # one at a time: a server starting beside others measures a stall
            env = {**row.env, "GENREC_LATENCY_SLO_MS": str(ctx.slo_ms)}
            servers[row.name] = server = Server(bundle, work, env, codes[row.code])
            server.wait_ready()
            asyncio.run(closed_loop("127.0.0.1", server.port, bodies, 4, 2.0))  # warm up
        parts: dict[tuple[str, int], list[tuple[Run, float, dict[str, float]]]] = {}
        loads: dict[str, list[list[float]]] = {row.name: [] for row in rows}
        secs = ctx.seconds / ctx.rounds
        for r in range(ctx.rounds):
            order = rows[r % len(rows) :] + rows[: r % len(rows)]
            for c in CONCURRENCY:
                for row in order:
                    server = servers[row.name]
                    loads[row.name].append(host_load())
                    load = closed_loop("127.0.0.1", server.port, bodies, c, secs)
                    parts.setdefault((row.name, c), []).append(asyncio.run(measured(server, load)))
            print(f"  round {r + 1}/{ctx.rounds} done", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        peak = ctx.peak[row_precision(row)]["peak"] * 1e9 * (os.cpu_count() or 1)
        out[row.name] = []
        for c in CONCURRENCY:
            got = parts[(row.name, c)]
            run = merge([p[0] for p in got])
            wall = sum(p[1] for p in got)
            cpu = {k: sum(p[2][k] for p in got) for k in got[0][2]}
            s = run.summary()
            flops = ctx.flops.served(s["widths"])
            x = {
                "concurrency": c,
                **s,
                "gflops_per_request": round(flops / 1e9, 5),
                "mfu": s["qps"] * flops / peak,
                "cpu_ms_per_request": cpu_per_request(run, wall, cpu),
                "qps_by_round": [round(p[0].summary()["qps"], 1) for p in got],
            }
            out[row.name].append(x)
            print(f"  {row.name:<16} c={c:<3} {fmt(x)}", flush=True)
        out[row.name][0]["load_before"] = loads[row.name]
    return out


def fmt(r: dict[str, Any]) -> str:
    cpu = sum(r["cpu_ms_per_request"].values()) if "cpu_ms_per_request" in r else float("nan")
    return (
        f"{r['qps']:7.1f} qps  p50 {r['p50_ms']:6.1f}  p99 {r['p99_ms']:6.1f} ms  "
        f"MFU {100 * r.get('mfu', float('nan')):.2f}%  CPU {cpu:.2f} ms/req  "
        f"shed {r['shed_503']}  widths {r['widths']}"
    )


def cache_hits(port: int) -> dict[str, float]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {"hit": 0.0, "miss": 0.0}
    for m in re.finditer(
        r'^genrec_cache_requests_total\{result="(\w+)"\} ([0-9.e+]+)$', text, re.M
    ):
        out[m.group(1)] = float(m.group(2))
    return out


def cache_phase(bundle: Path, work: Path, code: Path, rate: float, args: Any) -> dict[str, Any]:
    """The default with the result cache off and on, on `users` = rate × mean gap users whose
    requests (uniform picks from one Poisson stream at `rate`) arrive about every `gap_s`."""
    from redis_cost import Server as RedisServer
    from redis_cost import seed_redis

    histories = json.loads((bundle / "histories.json").read_text())
    full = sorted(u for u, h in histories.items() if len(h) >= HISTORY)
    users = int(rate * args.cache_gap_s)
    seeded = {f"u{i}": histories[full[i % len(full)]] for i in range(users)}
    rng = random.Random(1)
    total = int(rate * (args.cache_warmup_s + args.cache_seconds) * 1.2) + 100_000
    stream = [
        json.dumps({"user_id": f"u{rng.randrange(users)}", "k": K}).encode() for _ in range(total)
    ]
    (work / "redis-cache").mkdir()
    redis = RedisServer(work / "redis-cache")
    out: dict[str, Any] = {"users": users, "rate": rate, "mean_gap_s": args.cache_gap_s}
    try:
        for ttl in ("0", "60"):
            redis.sync.flushdb()
            out["seed_s"] = round(seed_redis(redis, seeded), 1)
            env = {
                "GENREC_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
                "GENREC_SEED_HISTORIES": "false",
                "GENREC_LATENCY_SLO_MS": str(args.slo_ms),
                "GENREC_CACHE_TTL_S": ttl,
            }
            with Server(bundle, work, env, code, redis.proc.pid) as server:
                port = server.port
                n_warm = int(rate * args.cache_warmup_s)
                asyncio.run(
                    open_loop("127.0.0.1", port, stream[:n_warm], rate, args.cache_warmup_s)
                )
                hits = cache_hits(port)
                measure = stream[n_warm:]
                run, wall, cpu = asyncio.run(
                    measured(
                        server,
                        open_loop("127.0.0.1", port, measure, rate, args.cache_seconds),
                    )
                )
                after = cache_hits(port)
                looked = sum(after.values()) - sum(hits.values())
                used = int(rate * args.cache_seconds) + n_warm
                closed, cwall, ccpu = asyncio.run(
                    measured(
                        server,
                        closed_loop("127.0.0.1", port, stream[used:], 16, args.cache_seconds / 3),
                    )
                )
                final = cache_hits(port)
                closed_looked = sum(final.values()) - sum(after.values())
            key = "cache on" if ttl != "0" else "cache off"
            out[key] = {
                "ttl_s": float(ttl),
                "open_loop": {
                    **run.summary(),
                    "hit_rate": (after["hit"] - hits["hit"]) / looked if looked else None,
                    "cpu_ms_per_request": cpu_per_request(run, wall, cpu),
                },
                "closed_loop_c16": {
                    **closed.summary(),
                    "hit_rate": (final["hit"] - after["hit"]) / closed_looked
                    if closed_looked
                    else None,
                    "cpu_ms_per_request": cpu_per_request(closed, cwall, ccpu),
                },
            }
            print(f"  {key}: open {fmt(out[key]['open_loop'])}", flush=True)
            print(f"  {key}: c=16 {fmt(out[key]['closed_loop_c16'])}", flush=True)
    finally:
        redis.proc.terminate()
        redis.proc.wait(timeout=30)
    return out


def ndcg_at_widths(bundle: Path, data_dir: Path, widths: list[int]) -> dict[int | str, float]:
    """Offline NDCG@10 on the test split at each final width, k=10 as the requests ask, in
    the precision the server ran (`auto`); key "float32" holds width BEAM in float32."""
    import torch

    from model.bundle import load_bundle
    from model.precision import inference_dtype
    from model.recommender import Recommender
    from pipeline.evaluate import evaluate_ranker, generator_ranker, split_for

    torch.set_num_threads(1)
    b = load_bundle(bundle)
    split = split_for(b, data_dir)
    served = Recommender(b.model, b.semantic_ids.codes, dtype=inference_dtype("auto"))
    out: dict[int | str, float] = {
        w: evaluate_ranker(generator_ranker(served, w, k=K), split, split.test)["ndcg@10"]
        for w in sorted(set(widths))
    }
    full = Recommender(b.model, b.semantic_ids.codes)
    out["float32"] = evaluate_ranker(generator_ranker(full, BEAM, k=K), split, split.test)[
        "ndcg@10"
    ]
    return out


def prepare_bundle(src: Path, work: Path, onnx: bool) -> Path:
    """A private copy of the bundle, with ONNX graphs when the ONNX backend is measured."""
    dst = work / "bundle"
    shutil.copytree(src, dst)
    if onnx:
        from model.onnx_export import add_onnx_to_bundle

        add_onnx_to_bundle(dst)
    return dst


def previous_code(work: Path, commit: str) -> Path:
    """A detached git worktree of `commit` (removed with `work`)."""
    path = work / f"code-{commit}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return path


@dataclass
class Context:
    slo_ms: float
    peak: dict[str, Any]
    flops: Flops
    seconds: float  # per row and concurrency, over all rounds
    rounds: int


def main() -> None:
    from harness import provenance

    from model.precision import native_bfloat16

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "artifacts/bundles/ml-100k")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--seconds", type=float, default=12.0, help="per row and concurrency")
    ap.add_argument("--rounds", type=int, default=3, help="the seconds are split over rounds")
    ap.add_argument("--slo-ms", type=float, default=100.0)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    ap.add_argument("--previous", default=PREVIOUS_DEFAULT, help="commit the previous rows run")
    ap.add_argument("--cache-gap-s", type=float, default=300.0, help="mean gap per user")
    ap.add_argument("--cache-warmup-s", type=float, default=60.0, help="≥ the cache TTL")
    ap.add_argument("--cache-seconds", type=float, default=60.0)
    ap.add_argument("--no-cache-phase", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "serving")
    args = ap.parse_args()
    names = args.rows.split(",")
    started = time.time()
    load_start = host_load()
    work = Path(tempfile.mkdtemp(prefix="genrec-bench-"))
    try:
        bundle = prepare_bundle(args.bundle.resolve(), work, "onnx" in names)
        bodies = request_bodies(bundle)
        print("matmul peak (one thread, GFLOP/s) …", flush=True)
        peak = matmul_peak()
        print(f"  {peak}", flush=True)
        ctx = Context(args.slo_ms, peak, Flops(bundle), args.seconds, args.rounds)
        codes = {"current": ROOT, "previous": previous_code(work, args.previous)}
        for name in names:
            print(f"{name}: {ROWS[name].label} [{ROWS[name].code} code]", flush=True)
        sweeps = ladder(bundle, work, [ROWS[n] for n in names], codes, bodies, ctx)
        cache = None
        if not args.no_cache_phase and DEFAULT in sweeps:
            at16 = next(x for x in sweeps[DEFAULT] if x["concurrency"] == 16)
            rate = round(0.5 * at16["qps"])
            print(f"cache: {rate} req/s open loop, mean gap {args.cache_gap_s:g} s", flush=True)
            cache = cache_phase(bundle, work, ROOT, rate, args)
        served_widths: Counter[int] = Counter()
        for x in sweeps.get(DEFAULT, []):
            served_widths.update({int(w): n for w, n in x["widths"].items()})
        ndcg = ndcg_at_widths(bundle, args.data_dir.resolve(), [BEAM, *served_widths])
        served = sum(ndcg[w] * n for w, n in served_widths.items()) / max(
            1, sum(served_widths.values())
        )
    finally:
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "provenance": provenance(),
        "previous_default_commit": args.previous,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "native_bfloat16": native_bfloat16(),
            "load_start": load_start,
            "load_end": host_load(),
        },
        "setup": {
            "bundle": str(args.bundle),
            "bundle_version": json.loads((args.bundle / "manifest.json").read_text())["version"],
            "requests": len(bodies),
            "history": HISTORY,
            "k": K,
            "beam_width": BEAM,
            "seconds_per_level": args.seconds,
            "rounds": args.rounds,
            "slo_ms": args.slo_ms,
        },
        "peak_gflops_per_core": peak,
        "rows": {
            n: {**asdict(ROWS[n]), "precision": row_precision(ROWS[n]), "ladder": ROWS[n] in LADDER}
            for n in names
        },
        "sweeps": sweeps,
        "cache": cache,
        "ndcg@10": {str(w): v for w, v in ndcg.items()},
        "ndcg@10_served": served,
        "ndcg@10_relative_loss": 1 - served / ndcg["float32"],  # widths and precision
    }
    result["targets"] = targets(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    from serving_report import plot, write_markdown

    write_markdown(result, args.out.with_suffix(".md"))
    plot(result, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())


def at(sweep: list[dict[str, Any]], c: int) -> dict[str, Any]:
    return next(x for x in sweep if x["concurrency"] == c)


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sweeps = r["sweeps"]
    if DEFAULT not in sweeps or PREVIOUS not in sweeps:
        return {}
    new, old = at(sweeps[DEFAULT], 16), at(sweeps[PREVIOUS], 16)
    if not old["qps"] or not old["mfu"]:
        return {}
    out = {
        "qps_c16_vs_previous_default": {
            "target": ">= 2x",
            "value": new["qps"] / old["qps"],
            "met": new["qps"] >= 2 * old["qps"],
        },
        "mfu_c16_vs_previous_default": {
            "target": ">= 2x",
            "value": new["mfu"] / old["mfu"],
            "met": new["mfu"] >= 2 * old["mfu"],
        },
        "p99_c16_ms": {"target": "<= 50", "value": new["p99_ms"], "met": new["p99_ms"] <= 50},
        "ndcg@10_relative_loss": {
            "target": "<= 5%",
            "value": r["ndcg@10_relative_loss"],
            "met": r["ndcg@10_relative_loss"] <= 0.05,
        },
    }
    if "naive" in sweeps and max(x["qps"] for x in sweeps["naive"]):
        best = max(x["qps"] for x in sweeps[DEFAULT])
        naive = max(x["qps"] for x in sweeps["naive"])
        out["speedup_vs_naive"] = {
            "target": ">= 5x",
            "value": best / naive,
            "met": best >= 5 * naive,
        }
    return out


if __name__ == "__main__":
    main()
