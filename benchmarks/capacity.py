"""The capacity model: the fleet for 10⁶ items, 10⁸ users, 10⁴ recommendations/s and 10⁵
events/s, computed from measured results, never guessed.

    python benchmarks/capacity.py   # reads benchmarks/results/{scale,redis,distributed}.json

Writes docs/capacity.md. Every input is a measured number with the result file and field it
comes from; what is a policy rather than a measurement (CPU headroom, shard size, replicas,
retrain cadence) is listed apart as an assumption, so changing one is an edit here and a rerun.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "capacity.md"

TARGET = {"items": 1_000_000, "users": 100_000_000, "recs_per_s": 10_000, "events_per_s": 100_000}
ASSUME = {
    "cpu_utilization": 0.6,  # of a core, for API pods: headroom for bursts and the p99
    "cores_per_pod": 2,  # the measured shape: server process + 2 model workers on 2 cores
    "events_per_post": 10,  # as measured; clients that batch more pay less HTTP per event
    "shard_memory_gb": 25.0,  # Redis used_memory per primary (fast failover and resync)
    "shard_cpu": 0.5,  # of the one core that runs a Redis primary's commands
    "replicas": 1,  # per primary
    "active_users_per_hour": 1.0,  # share of users who post an event within the epoch TTL
    "retrain_window_h": 1.0,  # events between two published bundles (kept in the stream)
}
HOUR = 3600.0


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((RESULTS / name).read_text()))


class Inputs:
    """Measured numbers, each remembered with the file and field it came from."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, str]] = []
        self.values: dict[str, float] = {}

    def take(self, key: str, label: str, value: float, unit: str, source: str) -> float:
        self.rows.append((label, float(value), unit, source))
        self.values[key] = float(value)
        return float(value)

    def __getitem__(self, key: str) -> float:
        return self.values[key]


def model() -> tuple[dict[str, Any], Inputs]:
    scale, redis, dist = load("scale.json"), load("redis.json"), load("distributed.json")
    size = max(scale["sizes"].values(), key=lambda s: s["items"])
    tag = f"scale.json sizes.{next(k for k, v in scale['sizes'].items() if v is size)}"
    r = next(run for run in redis["runs"] if run["item_ids"] == "alphanumeric")
    m = Inputs()
    T, A = TARGET, ASSUME
    out: dict[str, Any] = {"measured_items": size["items"]}

    # API pods: CPU per request and per event of the server and its model workers.
    serve = size["serve"]
    rec_ms = m.take(
        "rec_ms",
        "API CPU per recommendation (c=16, beam 64)",
        serve["c16"]["api_cpu_ms_per_request"],
        "ms",
        f"{tag}.serve.c16.api_cpu_ms_per_request",
    )
    ev_ms = m.take(
        "ev_ms",
        "API CPU per event (10 per POST)",
        serve["events"]["api_cpu_ms_per_event"],
        "ms",
        f"{tag}.serve.events.api_cpu_ms_per_event",
    )
    api_mb = sum(v for k, v in serve["peak_mb_by_process"].items() if not k.startswith("redis"))
    pod_mb = m.take(
        "pod_mb",
        "API pod peak memory (server + 2 workers, VmHWM)",
        api_mb,
        "MB",
        f"{tag}.serve.peak_mb_by_process",
    )
    hist_mb = m.take(
        "hist_mb",
        "user histories parsed for seeding (its users)",
        size["bundle_load"]["histories_mb"],
        "MB",
        f"{tag}.bundle_load.histories_mb",
    )
    seeded_users = m.take(
        "seeded_users",
        "users in that bundle",
        size["bundle_load"]["histories_users"],
        "",
        f"{tag}.bundle_load.histories_users",
    )
    cores_rec = T["recs_per_s"] * rec_ms / 1000 / A["cpu_utilization"]
    cores_ev = T["events_per_s"] * ev_ms / 1000 / A["cpu_utilization"]
    out["api"] = {
        "cores_recs": cores_rec,
        "cores_events": cores_ev,
        "cores": cores_rec + cores_ev,
        "pods": math.ceil((cores_rec + cores_ev) / A["cores_per_pod"]),
        "pod_mb": pod_mb,
        "seeding_mb_at_target": hist_mb / seeded_users * T["users"],
    }

    # Redis: memory of histories, cache keys and the stream backlog; CPU per operation.
    hist_b = m.take(
        "hist_b",
        "history list, 50 alphanumeric IDs",
        r["history_bytes"],
        "B",
        "redis.json runs[alphanumeric].history_bytes",
    )
    main_b = m.take(
        "main_b",
        "main dictionary per key",
        r["main_per_key"],
        "B",
        "redis.json runs[alphanumeric].main_per_key",
    )
    exp_b = m.take(
        "exp_b",
        "expires dictionary per key",
        r["expires_per_key"],
        "B",
        "redis.json runs[alphanumeric].expires_per_key",
    )
    epoch_b = m.take(
        "epoch_b",
        "cache epoch key",
        r["epoch_key_bytes"],
        "B",
        "redis.json runs[alphanumeric].epoch_key_bytes",
    )
    cache_b = m.take(
        "cache_b",
        "cached result hash (k = 10)",
        r["cache_hash_bytes"],
        "B",
        "redis.json runs[alphanumeric].cache_hash_bytes",
    )
    stream_b = m.take(
        "stream_b",
        "stream entry",
        r["stream_bytes_per_event"],
        "B",
        "redis.json runs[alphanumeric].stream_bytes_per_event",
    )
    frag = m.take(
        "frag",
        "RSS / used_memory",
        r["used_memory_rss"] / r["used_memory"],
        "×",
        "redis.json runs[alphanumeric].used_memory_rss / used_memory",
    )
    us_event = m.take(
        "us_event",
        "Redis CPU per event (append + cache invalidation)",
        r["append_cpu_us_per_event"] + r["invalidate_cpu_us_per_event"],
        "µs",
        "redis.json runs[alphanumeric].append_cpu_us_per_event + invalidate_cpu_us_per_event",
    )
    us_rec = m.take(
        "us_rec",
        "Redis CPU per recommendation (history + cache get + put)",
        r["history_read_cpu_us"] + r["cache_get_cpu_us"] + r["cache_put_cpu_us"],
        "µs",
        "redis.json runs[alphanumeric].history_read_cpu_us + cache_get_cpu_us + cache_put_cpu_us",
    )
    us_xadd = m.take(
        "us_xadd",
        "Redis CPU per event, the stream's XADD alone",
        r["xadd_cpu_us_per_event"],
        "µs",
        "redis.json runs[alphanumeric].xadd_cpu_us_per_event",
    )
    active = T["users"] * A["active_users_per_hour"]
    gb = {
        "histories": T["users"] * (hist_b + main_b) / 1e9,
        "cache epochs (1 h TTL)": min(active, T["events_per_s"] * HOUR)
        * (epoch_b + main_b + exp_b)
        / 1e9,
        "cached results (60 s TTL)": min(T["users"], T["recs_per_s"] * 60)
        * (cache_b + main_b + exp_b)
        / 1e9,
        "event stream backlog": T["events_per_s"] * A["retrain_window_h"] * HOUR * stream_b / 1e9,
    }
    used = sum(gb.values())
    cpu = (T["events_per_s"] * us_event + T["recs_per_s"] * us_rec) / 1e6
    shards_mem = used / A["shard_memory_gb"]
    shards_cpu = cpu / A["shard_cpu"]
    primaries = math.ceil(max(shards_mem, shards_cpu))
    out["redis"] = {
        "gb": gb,
        "used_gb": used,
        "rss_gb": used * frag,
        "cpu_cores": cpu,
        "shards_for_memory": shards_mem,
        "shards_for_cpu": shards_cpu,
        "primaries": primaries,
        "nodes": primaries * (1 + A["replicas"]),
        "stream_gb_per_hour": T["events_per_s"] * HOUR * stream_b / 1e9,
        "stream_cpu": T["events_per_s"] * us_xadd / 1e6,
        "stream_partitions": math.ceil(
            max(
                T["events_per_s"]
                * A["retrain_window_h"]
                * HOUR
                * stream_b
                / 1e9
                / A["shard_memory_gb"],
                T["events_per_s"] * us_xadd / 1e6 / A["shard_cpu"],
            )
        ),
    }

    # Bundle: what grows with items (measured at 10⁶) and what grows with users.
    files = size["train"]["bundle_files"]
    items_part = sum(v for k, v in files.items() if k != "histories.json")
    m.take(
        "bundle_items",
        "bundle without histories.json",
        items_part / 1e6,
        "MB",
        f"{tag}.train.bundle_files",
    )
    per_user = m.take(
        "per_user",
        "histories.json per user",
        files["histories.json"] / size["data"]["users"],
        "B",
        f"{tag}.train.bundle_files / data.users",
    )
    out["bundle"] = {
        "items_mb": items_part / 1e6,
        "histories_gb_at_target": per_user * T["users"] / 1e9,
    }

    # Retraining: examples/s of one process at this catalog size, DDP efficiency measured.
    ex_s = m.take(
        "ex_s",
        "training examples/s, one process",
        size["train"]["examples_per_s"],
        "ex/s",
        f"{tag}.train.examples_per_s",
    )
    step_s = m.take(
        "step_s",
        "seconds per optimizer step (32 runs)",
        size["train"]["train_s"] / size["train"]["steps"],
        "s",
        f"{tag}.train.train_s / steps",
    )
    params = m.take(
        "params",
        "parameters (dense gradients all-reduced each step)",
        size["train"]["params"],
        "",
        f"{tag}.train.params",
    )
    eff = m.take(
        "eff",
        "DDP efficiency per worker (2 processes, ml-100k)",
        dist["speedup_train"] / 2,
        "",
        "distributed.json speedup_train / 2",
    )
    window_events = T["events_per_s"] * A["retrain_window_h"] * HOUR
    out["retrain"] = {
        "window_events": window_events,
        "workers_to_keep_up": T["events_per_s"] / (ex_s * eff),
        "hours_one_worker": window_events / ex_s / HOUR,
        "allreduce_gb_per_step": params * 4 / 1e9,
        "allreduce_gbit_s_per_worker": 2 * params * 4 * 8 / 1e9 / step_s,
        "hours_by_workers": {
            w: window_events / (ex_s * (1 if w == 1 else w * eff)) / HOUR
            for w in (1, 2, 8, 32, 128)
        },
    }
    return out, m


def n(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def markdown(out: dict[str, Any], m: Inputs, provenance: dict[str, Any]) -> str:
    T, A = TARGET, ASSUME
    api, rd, bundle, rt = out["api"], out["redis"], out["bundle"], out["retrain"]
    bound = "memory" if rd["shards_for_memory"] >= rd["shards_for_cpu"] else "CPU"
    lines = [
        "# Capacity model",
        "",
        f"The fleet for **{n(T['items'])} items, {n(T['users'])} users, {n(T['recs_per_s'])} "
        f"recommendations/s and {n(T['events_per_s'])} events/s**, computed by "
        "`python benchmarks/capacity.py` from measured results (every input below names its "
        "result file and field) and a few stated policies. Rerun it after rerunning the "
        "benchmarks. The scale benchmark measured up to "
        f"{n(out['measured_items'])} items, so no item-count extrapolation is involved; users, "
        "request and event rates are the multipliers. CPU figures are cores of the benchmark's "
        "host (2 shared cores with native bfloat16 matrix units, busy with other jobs: CPU "
        "per request is inflated, if anything), so they are an upper bound for a like core.",
        "",
        "## The fleet",
        "",
        "| part | size | what sets it |",
        "|---|---|---|",
        f"| API pods | **{api['pods']} pods** of {A['cores_per_pod']} cores ({n(api['cores'], 1)} "
        f"cores at {A['cpu_utilization']:.0%} utilization), {n(api['pod_mb'] / 1024, 1)} GB "
        "each | recommendations "
        f"{n(api['cores_recs'], 1)} cores, events {n(api['cores_events'], 1)} cores |",
        f"| Redis Cluster | **{rd['primaries']} primaries + {rd['primaries'] * A['replicas']} "
        f"replicas** ({rd['nodes']} nodes), {n(rd['used_gb'])} GB of data, "
        f"{n(rd['rss_gb'])} GB RSS in all | {bound}: {n(rd['shards_for_memory'], 1)} shards "
        f"for memory, {n(rd['shards_for_cpu'], 1)} for CPU ({n(rd['cpu_cores'], 2)} cores of "
        "command execution) |",
        f"| Bundle | **{n(bundle['items_mb'])} MB** (model, codes, catalog) | the item "
        "count; user histories are left out of it at this scale (below) |",
        f"| Retraining | **{n(rt['workers_to_keep_up'])} torchrun workers** to train on every "
        f"event as it arrives; one worker takes {n(rt['hours_one_worker'], 1)} h per hour "
        "of events | training examples/s at 10⁶ items and the measured DDP efficiency |",
        "",
        "## API pods",
        "",
        f"- Recommendations: {n(T['recs_per_s'])}/s × {m['rec_ms']:.2f} CPU-ms ÷ "
        f"{A['cpu_utilization']} = {n(api['cores_recs'], 1)} cores.",
        f"- Events: {n(T['events_per_s'])}/s × {m['ev_ms']:.3f} CPU-ms ÷ "
        f"{A['cpu_utilization']} = {n(api['cores_events'], 1)} cores "
        f"(posted {A['events_per_post']} per request; larger batches cost less per event).",
        "- Measured with the result cache off, so every request decoded: cache hits cost "
        "less; the cache's own Redis round trips (a lookup and a store per request, an "
        "invalidation per event POST) are not in these API figures, only in Redis's below.",
        f"- Memory: {n(api['pod_mb'] / 1024, 1)} GB per pod (peak RSS of the server and its two "
        "model workers at 10⁶ items: each worker holds the float32 model as loaded, its "
        "bfloat16 copy, the per-item K/V table and the trie; the server holds the float32 "
        "model too, though it never decodes). Seeding was off: with it on, the server also "
        "parses the bundle's user histories, "
        f"{n(api['seeding_mb_at_target'] / 1024)} GB at {n(T['users'])} users, so it must stay "
        "off (`GENREC_SEED_HISTORIES=false`); Redis is the histories' home. (At 10⁶ items the "
        "server's own seeding gave up anyway: chunks of 500 scripted writes passed the 0.25 s "
        "Redis timeout, and users it had not reached got 404.)",
        "",
        "## Redis Cluster",
        "",
        "| what | size |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {n(v, 1)} GB |" for k, v in rd["gb"].items()]
    lines += [
        f"| **data (used_memory)** | **{n(rd['used_gb'], 1)} GB** |",
        f"| RSS (× measured fragmentation) | {n(rd['rss_gb'], 1)} GB |",
        "",
        f"Per second: {n(T['events_per_s'])} events × {m['us_event']:.1f} µs + "
        f"{n(T['recs_per_s'])} recommendations × {m['us_rec']:.1f} µs = "
        f"{n(rd['cpu_cores'], 2)} cores of command execution.",
        "",
        "The arithmetic for any cluster: user-keyed data (histories, cache hashes, epochs) "
        "hashes over 16,384 slots and spreads evenly over the primaries, so primaries = "
        f"max(data ÷ {A['shard_memory_gb']:.0f} GB, CPU ÷ {A['shard_cpu']} core) = "
        f"max({n(rd['shards_for_memory'], 1)}, {n(rd['shards_for_cpu'], 1)}) → "
        f"{rd['primaries']}, each with {A['replicas']} replica(s); a replica takes the same "
        "memory, and the writes' CPU again. The exception is the event stream: one key lives "
        "in one slot, so one primary would take every XADD "
        f"({n(rd['stream_cpu'], 2)} cores at {n(T['events_per_s'])} events/s) and the whole "
        f"backlog ({n(rd['stream_gb_per_hour'], 1)} GB per hour of events). Partitioned into "
        f"P keys on different slots, P ≥ max(backlog ÷ {A['shard_memory_gb']:.0f} GB, XADD "
        f"CPU ÷ {A['shard_cpu']} core) = {rd['stream_partitions']} for the "
        f"{A['retrain_window_h']:g} h window assumed here (P grows with the window: the "
        "retrain job must trim the stream at least that often). genrec does this with "
        "`GENREC_REDIS_CLUSTER=true` (12 partitions by default, `GENREC_REDIS_PARTITIONS`): "
        "each user's history is hash-tagged into its partition's slot, so an event's history "
        "write and its XADD stay one script on one slot.",
        "",
        "Not included: Redis's own baseline (a few MB per node), replication buffers, and "
        "the memory a fork needs for AOF rewrites or snapshots (up to the dataset again in "
        "copy-on-write pages under heavy writes): leave that headroom on each node.",
        "",
        "## Bundle",
        "",
        f"{n(bundle['items_mb'])} MB at 10⁶ items: the model (the item-id table is most of it), "
        "tokenizer codes and codebooks, catalog and popularity. The bundle also carries "
        "`histories.json` (every user's recent items, to seed Redis): at "
        f"{n(T['users'])} users it would be {n(bundle['histories_gb_at_target'])} GB, so "
        "at this scale training should leave it out and the service should not seed.",
        "",
        "## Retraining",
        "",
        f"One process trains {n(m['ex_s'])} examples/s at 10⁶ items "
        f"({m['step_s']:.2f} s per step of ≤ 512 targets); torchrun workers add "
        f"{m['eff']:.0%} of a process each (the only DDP scaling measured: 2 processes on "
        "ml-100k). Keeping up with "
        f"{n(T['events_per_s'])} events/s, one example per event and one pass, takes "
        f"{n(rt['workers_to_keep_up'])} workers; an hour of events ({n(rt['window_events'])}) "
        "takes:",
        "",
        "| workers | hours per hour of events |",
        "|---:|---:|",
    ]
    lines += [f"| {w} | {n(h, 1)} |" for w, h in rt["hours_by_workers"].items()]
    lines += [
        "",
        f"Each step all-reduces the dense gradient of all {n(m['params'] / 1e6)} M "
        f"parameters ({n(rt['allreduce_gb_per_step'], 2)} GB; a ring all-reduce moves about "
        f"twice that per worker, {n(rt['allreduce_gbit_s_per_worker'], 1)} Gbit/s at the "
        "measured step time), because the item-id table's gradient is dense: the efficiency "
        "measured on ml-100k, whose model is a hundredth of this one, is likely optimistic "
        "here, and the worker counts above a lower bound. What it would take to make "
        "retraining affordable at this rate, in order of effect: train on a sample of the "
        "events (the worker count scales with the fraction kept), train on the new window "
        "warm-started instead of on the whole merged history (today's `genrec retrain` "
        "passes over every event it has ever merged), make the item-table updates sparse "
        "(see benchmarks/results/scale.md: the optimizer step on that table alone grows "
        "with the catalog), and use accelerators.",
        "",
        "## Inputs (measured)",
        "",
        "| input | value | unit | source |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {label} | {v:,.4g} | {unit} | `{src}` |" for label, v, unit, src in m.rows]
    lines += [
        "",
        "## Assumptions (policies, not measurements)",
        "",
        "| assumption | value |",
        "|---|---:|",
    ]
    lines += [f"| `{k}` | {v} |" for k, v in ASSUME.items()]
    lines += [
        "",
        f"Generated from the results at commit `{provenance['commit'][:12]}` "
        f"({provenance['when']}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    out, m = model()
    scale = load("scale.json")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    md = markdown(out, m, scale["provenance"])
    DOC.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
