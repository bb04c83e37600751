"""Markdown tables and a latency/throughput plot for `benchmarks/serving.py` results.

python benchmarks/serving_report.py benchmarks/results/serving.json   # re-render .md/.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _at(rows: list[dict[str, Any]], c: int) -> dict[str, Any]:
    return next(x for x in rows if x["concurrency"] == c)


def _widths(w: dict[str, int]) -> str:
    return ", ".join(f"{k}×{n}" for k, n in w.items())


def _cpu(x: dict[str, Any]) -> str:
    c = x["cpu_ms_per_request"]
    parts = " + ".join(f"{v:.2f}" for v in c.values())
    return f"{sum(c.values()):.2f} ({parts})"


def write_markdown(r: dict[str, Any], path: Path) -> None:
    host, setup, prov = r["host"], r["setup"], r["provenance"]
    sweeps, rows = r["sweeps"], r["rows"]
    peak = r["peak_gflops_per_core"]
    conc = [x["concurrency"] for x in next(iter(sweeps.values()))]
    lines = [
        "# Serving benchmark",
        "",
        f"`{r['command']}` at commit {prov['commit'][:7]}"
        f"{' (uncommitted changes)' if prov['dirty'] else ''}, {r['started']}, "
        f"{r['seconds']:.0f} s; `previous` rows run commit {r['previous_default_commit']}. "
        f"Bundle version {setup['bundle_version']}.",
        "",
        f"Host: {host['cpus']} CPUs ({host['machine']}, native bfloat16: "
        f"{host['native_bfloat16']}), shared; load average {host['load_start']} at start, "
        f"{host['load_end']} at end (1/5/15 min); the load generator runs on the same cores. "
        f"Requests: {setup['requests']} ml-100k users with a {setup['history']}-item stored "
        f"history, k={setup['k']}, beam {setup['beam_width']}, result cache off, "
        f"{setup['seconds_per_level']:g} s closed loops.",
        "",
        "## Matmul peak, one thread (GFLOP/s)",
        "",
        "| dtype | "
        + " | ".join(next(iter(peak.values()))["shapes"])
        + " | peak (decoder shapes) |",
        "|---|" + "---:|" * (len(next(iter(peak.values()))["shapes"]) + 1),
    ]
    for dtype, p in peak.items():
        vals = " | ".join(f"{v:.1f}" for v in p["shapes"].values())
        lines.append(f"| {dtype} | {vals} | **{p['peak']:.1f}** |")
    lines += [
        "",
        f"MFU = answered requests/s × model FLOPs per request (at the widths served) ÷ "
        f"(peak of the row's precision × {host['cpus']} cores).",
        "",
        "## Ladder: each row adds one change to the row above (side rows after it)",
        "",
        "| row | code | QPS "
        + " | QPS ".join(f"c={c}" for c in conc)
        + " | p50 / p99 ms c=16 | MFU c=16 | × row above (QPS c=16) | shed c=16 |",
        "|---|---|" + "---:|" * (len(conc) + 4),
    ]
    prev = None
    for name, sweep in sweeps.items():
        x16 = _at(sweep, 16)
        ladder = rows[name]["ladder"]
        factor = f"{x16['qps'] / prev:.2f}×" if prev and ladder else "—"
        if ladder:
            prev = x16["qps"]
        qps = " | ".join(f"{_at(sweep, c)['qps']:.1f}" for c in conc)
        lines.append(
            f"| {name} | {rows[name]['code']} | {qps} | {x16['p50_ms']:.1f} / "
            f"{x16['p99_ms']:.1f} | {_pct(x16['mfu'])} | {factor} | {x16['shed_503']} |"
        )
    lines += ["", *(f"- **{n}** ({rows[n]['precision']}): {rows[n]['label']}" for n in sweeps)]
    names = list(next(iter(sweeps.values()))[0]["cpu_ms_per_request"])
    lines += [
        "",
        "## Where the CPU goes at c=16, and the widths served",
        "",
        f"CPU ms per request, total ({' + '.join(names)}); final widths as width×requests.",
        "",
        "| row | CPU ms per request | GFLOP per request | final widths c=16 |",
        "|---|---|---:|---|",
    ]
    for name, sweep in sweeps.items():
        x16 = _at(sweep, 16)
        lines.append(
            f"| {name} | {_cpu(x16)} | {x16['gflops_per_request']:.4f} | {_widths(x16['widths'])} |"
        )
    cache = r.get("cache")
    if cache:
        lines += [
            "",
            f"## Result cache: {cache['users']:,} users, each one's requests ~{cache['mean_gap_s']:g} s "
            f"apart (one Poisson stream of uniform picks at {cache['rate']} req/s)",
            "",
            "External Redis seeded with the users' histories. Open loop at the stream's rate "
            "after a warm-up as long as the TTL, then a closed loop at c=16 on the same stream.",
            "",
            "| cache | open loop: hit rate | p50 / p99 ms | CPU ms per request | c=16: QPS | "
            "hit rate | p50 / p99 ms |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for key in ("cache off", "cache on"):
            o, c = cache[key]["open_loop"], cache[key]["closed_loop_c16"]
            hit = "—" if o["hit_rate"] is None else _pct(o["hit_rate"])
            chit = "—" if c["hit_rate"] is None else _pct(c["hit_rate"])
            lines.append(
                f"| {key} (TTL {cache[key]['ttl_s']:g} s) | {hit} | {o['p50_ms']:.1f} / "
                f"{o['p99_ms']:.1f} | {_cpu(o)} | {c['qps']:.1f} | {chit} | "
                f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} |"
            )
    widths = {w: v for w, v in r["ndcg@10"].items() if w != "float32"}
    ndcg = ", ".join(f"{w}: {v:.4f}" for w, v in widths.items())
    lines += [
        "",
        f"Offline NDCG@10 (test split, k=10) by final width, in the precision the default ran: "
        f"{ndcg}; width {setup['beam_width']} in float32: {r['ndcg@10']['float32']:.4f}. "
        f"Weighted by the widths the default served over its sweep: {r['ndcg@10_served']:.4f} "
        f"({_pct(r['ndcg@10_relative_loss'])} relative loss: narrower beams and precision "
        "together).",
        "",
        "## Targets",
        "",
        "| target | wanted | measured | met |",
        "|---|---|---:|---|",
    ]
    for name, t in r["targets"].items():
        value = _pct(t["value"]) if "loss" in name else f"{t['value']:.2f}"
        met = "—" if t["met"] is None else "yes" if t["met"] else "no"
        lines.append(f"| {name} | {t['target']} | {value} | {met} |")
    path.write_text("\n".join(lines) + "\n")


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, rows in r["sweeps"].items():
        qps = [x["qps"] for x in rows]
        (line,) = ax.plot(qps, [x["p99_ms"] for x in rows], marker="o", label=f"{name} p99")
        ax.plot(qps, [x["p50_ms"] for x in rows], ls="--", color=line.get_color(), alpha=0.6)
        for x in rows:
            ax.annotate(f"c{x['concurrency']}", (x["qps"], x["p99_ms"]), fontsize=7)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="throughput (QPS)", ylabel="latency (ms; p99 solid, p50 dashed)")
    ax.set_yscale("log")
    ax.set_title("closed loop, concurrency 1/4/16/64, cache off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    source = Path(sys.argv[1])
    result = json.loads(source.read_text())
    write_markdown(result, source.with_suffix(".md"))
    plot(result, source.with_suffix(".png"))
