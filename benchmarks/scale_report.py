"""Tables, growth exponents and the log-log plot of benchmarks/scale.py's results.

    python benchmarks/scale_report.py   # redraw from benchmarks/results/scale.json

A cost's growth exponent b is the slope of log(cost) against log(size) (least squares over
the sizes measured): b ≈ 1 is linear, b ≈ 0 flat. Items and events grow together (×10 per
step), so the slope is the same against either; which one drives a cost is said per row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

Size = dict[str, Any]


def _get(size: Size, stage: str, key: str) -> float | None:
    part = size.get(stage, {})
    if "stopped" in part or key not in part:
        return None
    return float(part[key])


def _delta(stage: str, key: str = "peak_mb") -> Callable[[Size], float | None]:
    def f(size: Size) -> float | None:
        peak, base = _get(size, stage, key), _get(size, stage, "base_mb")
        return None if peak is None or base is None else peak - base

    return f


def _at(stage: str, key: str, scale: float = 1.0) -> Callable[[Size], float | None]:
    def f(size: Size) -> float | None:
        v = _get(size, stage, key)
        return None if v is None else v * scale

    return f


def _serve(c: int, key: str) -> Callable[[Size], float | None]:
    def f(size: Size) -> float | None:
        v = size.get("serve", {}).get(f"c{c}", {}).get(key)
        return None if v is None else float(v)

    return f


MB = 1 / 2**20
# (name, unit, driver, value of a size, group for the plot)
COSTS: list[tuple[str, str, str, Callable[[Size], float | None], str]] = [
    ("tokenizer fit time", "s", "items", _at("tokenizer", "fit_s"), "time"),
    ("tokenizer fit peak memory (above inputs)", "MB", "items", _delta("tokenizer"), "memory"),
    ("prefix trie, CSR (numpy)", "MB", "items", _at("tokenizer", "trie_bytes", MB), "memory"),
    (
        "prefix trie as served (torch)",
        "MB",
        "items",
        _at("tokenizer", "trie_tensors_bytes", MB),
        "memory",
    ),
    (
        "prefix trie as dense tables (the layout before: nodes × K × 8 B)",
        "MB",
        "items",
        _at("tokenizer", "dense_tables_bytes", MB),
        "memory",
    ),
    ("model parameters", "M", "items", _at("train", "params", 1e-6), "memory"),
    ("bundle on disk", "MB", "items + users", _at("train", "bundle_bytes", MB), "memory"),
    ("bundle load + verify", "s", "items + users", _at("bundle_load", "load_s"), "time"),
    (
        "model side build (item K/V table, trie)",
        "s",
        "items",
        _at("bundle_load", "build_s"),
        "time",
    ),
    (
        "loaded bundle RSS (above inputs)",
        "MB",
        "items",
        _delta("bundle_load", "loaded_mb"),
        "memory",
    ),
    ("loaded + model side RSS", "MB", "items", _delta("bundle_load", "built_mb"), "memory"),
    (
        "histories parsed (seeding process only)",
        "MB",
        "users",
        _at("bundle_load", "histories_mb"),
        "memory",
    ),
    (
        "decode, batch of 8, beam 64, in process (p50)",
        "ms",
        "items",
        _at("bundle_load", "batch8_ms_p50"),
        "time",
    ),
    (
        "dense re-rank scoring all N (before), batch 8",
        "ms",
        "items",
        _at("dense", "all_items_ms_p50"),
        "time",
    ),
    (
        "dense re-rank, beam's rows only, batch 8",
        "ms",
        "items",
        _at("dense", "beam_items_ms_p50"),
        "time",
    ),
    (
        "server ready (3 processes load the bundle)",
        "s",
        "items + users",
        lambda s: s.get("serve", {}).get("ready_s"),
        "time",
    ),
    (
        "server RSS after load (all processes)",
        "MB",
        "items + users",
        lambda s: s.get("serve", {}).get("rss_mb"),
        "memory",
    ),
    ("serving p50, c=1", "ms", "items", _serve(1, "p50_ms"), "latency"),
    ("serving p99, c=1", "ms", "items", _serve(1, "p99_ms"), "latency"),
    ("serving p50, c=16", "ms", "items", _serve(16, "p50_ms"), "latency"),
    ("serving p99, c=16", "ms", "items", _serve(16, "p99_ms"), "latency"),
    ("serving QPS, c=16", "req/s", "items", _serve(16, "qps"), "latency"),
    (
        "API CPU per request, c=16 (server + model workers)",
        "ms",
        "items",
        _serve(16, "api_cpu_ms_per_request"),
        "latency",
    ),
    ("`genrec train` data loading time", "s", "events", _at("load", "seconds"), "time"),
    ("`genrec train` data loading peak memory", "MB", "events", _delta("load"), "memory"),
    ("collaborative embedding time", "s", "events", _at("collab", "seconds"), "time"),
    ("collaborative embedding peak memory", "MB", "events", _delta("collab"), "memory"),
    (
        "optimizer step on the item table alone (dense N×C update)",
        "ms",
        "items",
        _at("item_table", "step_ms_p50"),
        "time",
    ),
    (
        "training examples/s",
        "ex/s",
        "items (dense updates)",
        _at("train", "examples_per_s"),
        "time",
    ),
    ("training peak memory (above inputs)", "MB", "items + events", _delta("train"), "memory"),
    ("training epoch, projected", "s", "events × items", _at("train", "epoch_s_projected"), "time"),
]


def exponent(xs: list[float], ys: list[float | None]) -> float | None:
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log10([p[0] for p in pts]), np.log10([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(results: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    names = list(results["sizes"])
    sizes = [results["sizes"][n] for n in names]
    xs = [float(s["items"]) for s in sizes]
    rows = []
    for name, unit, driver, value, group in COSTS:
        ys = [value(s) for s in sizes]
        rows.append(
            {
                "cost": name,
                "unit": unit,
                "driver": driver,
                "group": group,
                "values": ys,
                "exponent": exponent(xs, ys),
            }
        )
    return rows, names


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], names: list[str]) -> str:
    sizes = [results["sizes"][n] for n in names]
    prov, host = results["provenance"], results["host"]
    head = " | ".join(f"{s['items']:,} items / {s['events']:,} events" for s in sizes)
    stage_commits = sorted(
        {
            part["provenance"]["commit"][:12]
            for s in sizes
            for part in [*s.values(), *s.get("serve", {}).get("rounds", [])]
            if isinstance(part, dict) and "provenance" in part
        }
    )
    loads = [
        part["load_before"][0]
        for s in sizes
        for part in [
            *s.values(),
            *s.get("serve", {}).get("rounds", []),
            *[r[c] for r in s.get("serve", {}).get("rounds", []) for c in ("c1", "c16")],
        ]
        if isinstance(part, dict) and "load_before" in part
    ]
    lines = [
        "# Scale: how each cost grows with the catalog and the log",
        "",
        f"Report at commit `{prov['commit'][:12]}`"
        f"{' (uncommitted changes)' if prov['dirty'] else ''}, {prov['when']}; the stages ran "
        f"at {', '.join(f'`{c}`' for c in stage_commits)} (each stage's commit is in "
        "scale.json). "
        f"{host['cpus']} cores shared with other jobs (1-minute load average "
        f"{min(loads):.1f}–{max(loads):.1f} when stages and serving loops started), so times "
        "are indicative and ratios within a row are what it measures. Synthetic data from "
        "`benchmarks/synthetic_log.py` (Zipf popularity, users walking topics of 50 items, "
        "mean 20 events per user). Exponent: slope of the log-log fit over the sizes measured "
        "(1 = linear, 0 = flat).",
        "",
        f"| cost | unit | {head} | exponent | grows with |",
        "|---|---|" + "---:|" * len(sizes) + "---:|---|",
    ]
    for r in rows:
        vals = " | ".join(fmt(v) for v in r["values"])
        lines.append(
            f"| {r['cost']} | {r['unit']} | {vals} | {fmt(r['exponent'])} | {r['driver']} |"
        )
    lines += ["", "## Semantic IDs", "", f"| | {head} |", "|---|" + "---:|" * len(sizes)]
    tok = [s.get("tokenizer", {}) for s in sizes]
    lines += [
        "| shape (levels × codes + disambiguation) | "
        + " | ".join(f"{t['levels']} × {t['codebook_size']} + {t['dedup_size']}" for t in tok)
        + " |",
        "| ID space / items | "
        + " | ".join(f"{t['id_space'] / s['items']:.1f}" for t, s in zip(tok, sizes, strict=True))
        + " |",
        "| collision rate before resolution | "
        + " | ".join(f"{t['collision_rate']:.1%}" for t in tok)
        + " |",
        "| after resolution | "
        + " | ".join(f"{t['collision_rate_resolved']:.1%}" for t in tok)
        + " |",
        "| largest group sharing a code | "
        + " | ".join(str(t["largest_group"]) for t in tok)
        + " |",
        "| trie nodes per level | "
        + " | ".join(", ".join(f"{n:,}" for n in t["trie_nodes"]) for t in tok)
        + " |",
    ]
    lines += ["", "## Stages stopped or left out", ""]
    stopped = [
        f"- {name}: `{stage}` {part['stopped']} (wall {part['wall_s']:.0f} s)"
        for name, s in zip(names, sizes, strict=True)
        for stage, part in s.items()
        if isinstance(part, dict) and "stopped" in part
    ]
    lines += stopped or ["- none"]
    serve = [s.get("serve", {}) for s in sizes]
    if all("c16" in v for v in serve) and len(serve) > 1:
        ratio = serve[-1]["c16"]["p99_ms"] / serve[0]["c16"]["p99_ms"]
        lines += [
            "",
            f"Serving p99 at concurrency 16: {serve[-1]['c16']['p99_ms']:.1f} ms with "
            f"{sizes[-1]['items']:,} items vs {serve[0]['c16']['p99_ms']:.1f} ms with "
            f"{sizes[0]['items']:,} items: **{ratio:.2f}×** (goal ≤ 2×).",
        ]
    ev = [v.get("events", {}) for v in serve]
    if all(ev):
        lines += [
            "",
            "Events (`POST /v1/events`, 10 per request, concurrency 4; the server's Redis is "
            "an external redis-server, AOF `appendfsync everysec`, seeded with every user's "
            "history before the server starts): "
            + "; ".join(
                f"{e['events_per_s']:,.0f} events/s, {e['api_cpu_ms_per_event']:.3f} API-CPU ms "
                f"and {e['redis_cpu_ms_per_event']:.3f} Redis-CPU ms per event"
                for e in ev
            )
            + ".",
        ]
    lines += [
        "",
        "Regenerate: `python benchmarks/scale.py` (stages kept under `data/scale/`; "
        "`--fresh` reruns them). Plot: [scale.png](scale.png).",
        "",
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], results: dict[str, Any], names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.array([results["sizes"][n]["items"] for n in names], dtype=float)
    groups = ("memory", "time", "latency")
    fig, axes = plt.subplots(1, 3, figsize=(18, 6), sharey=True)
    colors, markers = plt.get_cmap("tab20").colors, "os^vD<>ph*"
    for ax, group in zip(axes, groups, strict=True):
        ax.set_prop_cycle(color=colors[: len(markers) * 2], marker=list(markers * 2))
        for r in rows:
            ys = np.array([np.nan if v is None else v for v in r["values"]], dtype=float)
            if r["group"] != group or np.isnan(ys).all() or np.nanmin(ys) <= 0:
                continue
            first = ys[~np.isnan(ys)][0]
            label = f"{r['cost']} (b={fmt(r['exponent'])})"
            ax.plot(xs, ys / first, label=label)
        ax.plot(xs, xs / xs[0], "k--", lw=1, marker="", label="linear (b=1)")
        ax.plot(xs, np.ones_like(xs), "k:", lw=1, marker="", label="flat (b=0)")
        ax.set(xscale="log", yscale="log", title=group, xlabel="items (events = 10 × items)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("cost relative to the smallest size")
    fig.tight_layout()
    fig.savefig(RESULTS / "scale.png", dpi=110)


def report(results: dict[str, Any]) -> None:
    rows, names = table(results)
    results["costs"] = rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=1, default=float))
    md = markdown(results, rows, names)
    (RESULTS / "scale.md").write_text(md)
    plot(rows, results, names)
    print(md)


if __name__ == "__main__":
    data = json.loads((RESULTS / "scale.json").read_text())
    report(data) if len(sys.argv) == 1 else print(__doc__)
