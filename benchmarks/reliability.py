"""Reliability benchmark: what takes too long for the test suite, on the real server.

    python benchmarks/reliability.py --bundle artifacts/bundles/ml-100k   # ~25 min

- backlog: peak memory of the retrain job's event reader at 10^5 and 10^6 backlog events,
  bounded (`--max-events`, the default) and unbounded (what it did before: every event);
- reloads: 50 hot reloads while 100 req/s flow, default settings: non-2xx, versions per
  response, RSS of the server and its model processes after the first and the 50th;
- overload: open-loop arrivals at 3x the static beam's measured saturation, static and
  dynamic beam with the same admission control and deadlines (shedding on for both):
  goodput (answered 200 within the SLO / offered; a shed request is not served), shed p99;
- flood: beam-256, k=100 requests at 3x what the server serves of them, beside default
  requests: the default requests' p99;
- soak: 10 minutes at 70% of the default server's measured saturation: errors, RSS growth,
  p99 of the last minute vs the first.

Writes benchmarks/results/reliability.{json,md} with the commit it ran at. Speed figures are
ratios within one run: the host is shared (its load average is recorded beside each phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import RESULTS, provenance  # noqa: E402
from live_server import Server, host_load, request_bodies  # noqa: E402
from loadgen import Run, closed_loop, open_loop  # noqa: E402

SLO_MS = 100.0  # the default GENREC_LATENCY_SLO_MS
K = 10


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


# --- backlog ------------------------------------------------------------------------------

READER = """
import json, sys, time
import redis
from pipeline.events import read_events
def status(name):
    line = [l for l in open("/proc/self/status") if l.startswith(name)][0]
    return int(line.split()[1]) / 1024
client = redis.Redis(unix_socket_path=sys.argv[1], decode_responses=True)
limit = None if sys.argv[2] == "none" else int(sys.argv[2])
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := RSS now (after the imports)
before = status("VmRSS:")
started = time.monotonic()
batch = read_events(client, "genrec:events", None, max_events=limit)
print(json.dumps({"events": len(batch), "seconds": time.monotonic() - started,
                  "peak_rss_mb": status("VmHWM:"), "reader_mb": status("VmHWM:") - before}))
"""


def write_aof(path: Path, n: int) -> None:
    """An AOF of n XADDs (writing it beats sending a million commands)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for i in range(n):
            args = [b"XADD", b"genrec:events", f"1-{i + 1}".encode(), b"user_id",
                    f"u{i % 5000}".encode(), b"item_id", f"i{i % 20000}".encode(),
                    b"timestamp", b"1700000000"]  # fmt: skip
            f.write(b"*%d\r\n" % len(args))
            for a in args:
                f.write(b"$%d\r\n%s\r\n" % (len(a), a))


def backlog(work: Path) -> list[dict[str, Any]]:
    from pipeline.retrain import RetrainConfig
    from service.store import EmbeddedRedis

    rows = []
    default = RetrainConfig().max_events
    for n in (100_000, 1_000_000):
        folder = work / f"backlog-{n}"
        write_aof(folder / "genrec.aof", n)
        server = EmbeddedRedis(folder, startup_timeout_s=600)
        try:
            for limit in (default, None):
                done = subprocess.run(
                    [sys.executable, "-c", READER, server.socket, str(limit).lower()],
                    capture_output=True, text=True, cwd=ROOT, check=True,
                )  # fmt: skip
                out = json.loads(done.stdout)
                rows.append({"backlog": n, "max_events": limit, **out})
                print(f"  backlog {n:>9,} max_events {limit}: {out}", flush=True)
        finally:
            server.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rows


# --- servers ------------------------------------------------------------------------------


def server_rss_mb(server: Server) -> float:
    from tests.e2e.faults import rss_mb

    uvicorn = server.proc.pid
    return rss_mb(uvicorn)


def saturation(server: Server, bodies: list[bytes], seconds: float = 6.0) -> float:
    asyncio.run(closed_loop("127.0.0.1", server.port, bodies, 8, 2.0))  # warm up
    run = asyncio.run(closed_loop("127.0.0.1", server.port, bodies, 16, seconds))
    return run.summary()["qps"]  # type: ignore[return-value]


def outcome(run: Run, offered: int, slo_ms: float) -> dict[str, Any]:
    ok = [s * 1000 for st, s, _ in run.outcomes if st == 200]
    shed = [s * 1000 for st, s, _ in run.outcomes if st == 503]
    shed_retry = sum(1 for st, _, ra in run.outcomes if st == 503 and ra > 0)
    return {
        "offered": offered,
        "answered_200": len(ok),
        "within_slo": sum(1 for x in ok if x <= slo_ms),
        "goodput": sum(1 for x in ok if x <= slo_ms) / max(1, offered),
        "shed_503": len(shed),
        "shed_with_retry_after": shed_retry,
        "other_non_2xx": sum(1 for st, _, _ in run.outcomes if st not in (200, 503)),
        "timeouts": run.timeouts,
        "ok_p50_ms": pct(ok, 50),
        "ok_p99_ms": pct(ok, 99),
        "shed_p50_ms": pct(shed, 50),
        "shed_p99_ms": pct(shed, 99),
        "widths": {str(w): n for w, n in sorted(run.widths.items())},
    }


def overload(bundle: Path, work: Path, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    """Static and dynamic beam, both with admission control and deadlines, at 3x the static
    beam's saturation."""
    env_static = {"GENREC_DYNAMIC_BEAM": "false", "GENREC_SHED_LOAD": "true"}
    with Server(bundle, work, env_static) as server:
        sat = saturation(server, bodies)
    rate = max(3.0, 3 * sat)
    print(f"  static saturation {sat:.0f} req/s; offering {rate:.0f} req/s", flush=True)
    out: dict[str, Any] = {"static_saturation_qps": sat, "rate": rate}
    for name, dynamic in (("static", "false"), ("dynamic", "true")):
        env = {"GENREC_DYNAMIC_BEAM": dynamic, "GENREC_SHED_LOAD": "true"}
        with Server(bundle, work, env) as server:
            asyncio.run(closed_loop("127.0.0.1", server.port, bodies, 16, 2.0))  # warm up
            load = host_load()
            run = asyncio.run(open_loop("127.0.0.1", server.port, bodies, rate, seconds))
        offered = len(run.outcomes) + run.timeouts
        out[name] = {**outcome(run, offered, SLO_MS), "load_before": load}
        print(f"  {name}: {out[name]}", flush=True)
    return out


def flood(bundle: Path, work: Path, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    """Beam-256 k=100 requests at 3x their saturation, default requests at 20% of theirs."""
    users = [json.loads(b)["user_id"] for b in bodies]
    wide = [json.dumps({"user_id": u, "k": 100, "beam_width": 256}).encode() for u in users]
    with Server(bundle, work, {}) as server:
        sat_default = saturation(server, bodies)
        sat_wide = saturation(server, wide)

        async def both() -> tuple[Run, Run]:
            return await asyncio.gather(
                open_loop("127.0.0.1", server.port, wide, max(3.0, 3 * sat_wide), seconds, seed=1),
                open_loop(
                    "127.0.0.1", server.port, bodies, max(2.0, 0.2 * sat_default), seconds, seed=2
                ),
            )

        load = host_load()
        wide_run, default_run = asyncio.run(both())
    out = {
        "saturation_default_qps": sat_default,
        "saturation_beam256_qps": sat_wide,
        "beam256": outcome(wide_run, len(wide_run.outcomes) + wide_run.timeouts, SLO_MS),
        "default": outcome(default_run, len(default_run.outcomes) + default_run.timeouts, SLO_MS),
        "load_before": load,
    }
    print(f"  flood: {out}", flush=True)
    return out


def reloads(bundle: Path, work: Path, bodies: list[bytes], n: int) -> dict[str, Any]:
    import httpx

    from pipeline.publish import BundleStore
    from tests.bundles import retitled
    from tests.e2e.faults import Clients

    store = BundleStore(work / "store")
    versions = {f"2999010{i}T000000000000Z": f"v{i} " for i in range(1, 4)}
    for version, prefix in versions.items():
        store.add(retitled(bundle, work / version, version, prefix))
    order = list(versions)
    store.switch(order[0])
    users = [json.loads(b)["user_id"] for b in bodies]

    def request(client: httpx.Client, worker: int, i: int) -> httpx.Response:
        return client.post(
            "/v1/recommend", json={"user_id": users[(worker * 997 + i) % len(users)]}
        )

    rss = []
    key = "bench-key"
    with Server(store.current, work, {"GENREC_API_KEY": key}) as server:
        url = f"http://127.0.0.1:{server.port}"
        sat = saturation(server, bodies)  # 100 req/s is meant to be well within it
        with Clients(url, request, workers=4, rate_per_worker=25, timeout_s=10) as clients:
            time.sleep(2.0)
            started = time.monotonic()
            for i in range(1, n + 1):
                store.switch(order[i % len(order)])
                r = httpx.post(f"{url}/admin/reload", headers={"X-API-Key": key}, timeout=120)
                assert r.status_code == 200 and r.json()["reloaded"], r.text
                if i in (1, n):
                    time.sleep(1.0)
                    rss.append(server_rss_mb(server))
            seconds = time.monotonic() - started
            time.sleep(1.0)
        records = clients.between(started)
    mixed = 0
    for r in records:
        if r.status == 200:
            prefix = versions[r.body["model_version"]]
            mixed += not all(it["title"].startswith(prefix) for it in r.body["items"])
    statuses: dict[str, int] = {}
    for r in records:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    out = {
        "reloads": n,
        "saturation_qps": sat,
        "seconds": seconds,
        "requests": len(records),
        "statuses": statuses,
        "non_2xx": sum(1 for r in records if r.status != 200),
        "non_2xx_details": sorted({str(r.body.get("detail")) for r in records if r.status != 200}),
        "responses_mixing_versions": mixed,
        "rss_mb_after_first": rss[0],
        "rss_mb_after_last": rss[1],
        "rss_growth": rss[1] / rss[0] - 1,
    }
    print(f"  reloads: {out}", flush=True)
    return out


def soak(bundle: Path, work: Path, bodies: list[bytes], minutes: int) -> dict[str, Any]:
    with Server(bundle, work, {}) as server:
        sat = saturation(server, bodies)
        rate = max(1.0, 0.7 * sat)
        per_minute, rss = [], []
        for m in range(minutes):
            load = host_load()
            run = asyncio.run(open_loop("127.0.0.1", server.port, bodies, rate, 60.0, seed=m))
            rss.append(server_rss_mb(server))
            row = {"minute": m + 1, **outcome(run, len(run.outcomes) + run.timeouts, SLO_MS)}
            row |= {"rss_mb": rss[-1], "load_before": load}
            per_minute.append(row)
            print(f"  soak minute {m + 1}: p99 {row['ok_p99_ms']:.1f} ms, shed "
                  f"{row['shed_503']}, errors {row['other_non_2xx'] + row['timeouts']}, "
                  f"rss {rss[-1]:.0f} MB", flush=True)  # fmt: skip
    first, last = per_minute[0], per_minute[-1]
    return {
        "saturation_qps": sat,
        "rate": rate,
        "minutes": per_minute,
        "errors": sum(r["other_non_2xx"] + r["timeouts"] for r in per_minute),
        "shed_503": sum(r["shed_503"] for r in per_minute),
        "rss_growth": rss[-1] / rss[0] - 1,
        "p99_last_vs_first": last["ok_p99_ms"] / first["ok_p99_ms"],
    }


# --- report -------------------------------------------------------------------------------


def measured(x: dict[str, Any]) -> str:
    """Where a phase was measured: its commit and time."""
    p = x.get("provenance", {})
    dirty = " with uncommitted edits" if p.get("dirty") else ""
    return f"*Measured at commit `{p.get('commit', '?')[:10]}`{dirty}, {p.get('when', '?')}.*"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Reliability benchmark",
        "",
        "`python benchmarks/reliability.py` (phases can be re-run alone with `--only`; each "
        "records its commit). The host is a shared 2-core machine and the load generator runs "
        "on the same cores (the load average before a phase is in the JSON and, for the soak, "
        "in its table): compare rows within a phase, not with other runs.",
        "",
    ]
    if "backlog" in r:
        lines += ["## Retrain reader memory", "", measured(r["backlog"]), "", "`read_events` in its own process: *reader* is its peak RSS minus the RSS after the imports (peak reset through /proc/self/clear_refs).", "", "| backlog events | max_events | read | reader MB | peak RSS MB | seconds |", "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for x in r["backlog"]["rows"]:
            lines.append(
                f"| {x['backlog']:,} | {x['max_events'] or 'none (before)'} | {x['events']:,} | "
                f"{x.get('reader_mb', float('nan')):.0f} | {x['peak_rss_mb']:.0f} | "
                f"{x['seconds']:.1f} |"
            )
        lines.append("")
    if "reloads" in r:
        x = r["reloads"]
        lines += [
            "## Hot reloads under 100 req/s (default settings, shedding on)", "", measured(x), "",
            f"{x['reloads']} reloads in {x['seconds']:.0f} s at 100 req/s (the server's "
            f"measured saturation: {x['saturation_qps']:.0f} req/s), {x['requests']} requests: "
            f"**{x['non_2xx']} non-2xx** {x['non_2xx_details'] or ''}, "
            f"{x['responses_mixing_versions']} responses mixing versions; RSS (server + model "
            f"processes) {x['rss_mb_after_first']:.0f} MB after the first reload, "
            f"{x['rss_mb_after_last']:.0f} MB after the last (**{x['rss_growth']:+.1%}**).", "",
        ]  # fmt: skip
    if "overload" in r:
        x = r["overload"]
        lines += [
            f"## Overload: {x['rate']:.0f} req/s open loop = 3x the static beam's saturation "
            f"({x['static_saturation_qps']:.0f} req/s), same admission and deadlines", "",
            measured(x), "",
            "| beam | offered | 200 within SLO | goodput | shed 503 (with Retry-After) | shed p50 / p99 ms | answered p50 / p99 ms | other non-2xx | widths |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]  # fmt: skip
        for name in ("static", "dynamic"):
            y = x[name]
            lines.append(
                f"| {name} | {y['offered']} | {y['within_slo']} | **{y['goodput']:.1%}** | "
                f"{y['shed_503']} ({y['shed_with_retry_after']}) | {y['shed_p50_ms']:.1f} / "
                f"{y['shed_p99_ms']:.1f} | {y['ok_p50_ms']:.1f} / {y['ok_p99_ms']:.1f} | "
                f"{y['other_non_2xx'] + y['timeouts']} | {y['widths']} |"
            )
        lines.append("")
    if "flood" in r:
        x = r["flood"]
        d, w = x["default"], x["beam256"]
        lines += [
            "## A flood of beam-256, k=100 requests", "", measured(x), "",
            f"Beam-256 requests at 3x their saturation ({3 * x['saturation_beam256_qps']:.0f} "
            f"req/s) beside default requests at 20% of theirs "
            f"({0.2 * x['saturation_default_qps']:.0f} req/s): default requests p99 "
            f"**{d['ok_p99_ms']:.1f} ms** (SLO {SLO_MS:g}), {d['answered_200']} of "
            f"{d['offered']} answered, {d['shed_503']} shed; beam-256: {w['answered_200']} "
            f"answered (p99 {w['ok_p99_ms']:.1f} ms), {w['shed_503']} shed.", "",
        ]  # fmt: skip
    if "soak" in r:
        x = r["soak"]
        lines += [
            f"## Soak: {len(x['minutes'])} min at 70% of saturation ({x['rate']:.0f} of "
            f"{x['saturation_qps']:.0f} req/s)", "", measured(x), "",
            f"Errors (non-2xx other than 503, timeouts): **{x['errors']}**; shed: "
            f"{x['shed_503']}; RSS growth first→last minute **{x['rss_growth']:+.1%}**; p99 "
            f"last minute / first **{x['p99_last_vs_first']:.2f}**.", "",
            "| minute | answered | p50 / p99 ms | shed | errors | RSS MB | load |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]  # fmt: skip
        for m in x["minutes"]:
            lines.append(
                f"| {m['minute']} | {m['answered_200']} | {m['ok_p50_ms']:.1f} / "
                f"{m['ok_p99_ms']:.1f} | {m['shed_503']} | {m['other_non_2xx'] + m['timeouts']} "
                f"| {m['rss_mb']:.0f} | {m['load_before']} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


PHASES = ("backlog", "reloads", "overload", "flood", "soak")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "artifacts/bundles/ml-100k")
    ap.add_argument("--only", default=",".join(PHASES))
    ap.add_argument("--reloads", type=int, default=50)
    ap.add_argument("--overload-seconds", type=float, default=15.0)
    ap.add_argument("--soak-minutes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "reliability")
    args = ap.parse_args()
    phases = args.only.split(",")
    out_json = args.out.with_suffix(".json")
    # A run of some phases keeps the other phases of an earlier run; each phase records the
    # commit it was measured at.
    result: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {}
    result |= {
        "command": "python benchmarks/reliability.py " + " ".join(sys.argv[1:]),
        "provenance": provenance(),
        "load_start": host_load(),
        "cpus": os.cpu_count(),
    }
    work = Path(tempfile.mkdtemp(prefix="genrec-reliability-"))
    try:
        bundle = work / "bundle"
        shutil.copytree(args.bundle.resolve(), bundle)
        bodies = request_bodies(bundle)
        for phase in phases:
            print(f"{phase}:", flush=True)
            started = time.monotonic()
            if phase == "backlog":
                result[phase] = backlog(work)
            elif phase == "reloads":
                result[phase] = reloads(bundle, work, bodies, args.reloads)
            elif phase == "overload":
                result[phase] = overload(bundle, work, bodies, args.overload_seconds)
            elif phase == "flood":
                result[phase] = flood(bundle, work, bodies, args.overload_seconds)
            elif phase == "soak":
                result[phase] = soak(bundle, work, bodies, args.soak_minutes)
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
            if isinstance(result[phase], dict):
                result[phase]["provenance"] = provenance()
            else:
                result[phase] = {"rows": result[phase], "provenance": provenance()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = host_load()
    result["peak_rss_mb_of_this_process"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
