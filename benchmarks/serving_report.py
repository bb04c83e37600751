"""Markdown table and latency/throughput plot for `benchmarks/serving.py` results.

python benchmarks/serving_report.py benchmarks/results/serving.json   # re-render .md/.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_markdown(r: dict[str, Any], path: Path) -> None:
    host, setup = r["host"], r["setup"]
    lines = [
        "# Serving benchmark",
        "",
        f"`{r['command']}` — {r['started']}, {r['seconds']:.0f} s.",
        "",
        f"Host: {host['cpus']} CPUs ({host['machine']}), shared; load average "
        f"{host['load_start']} at start, {host['load_end']} at end (1/5/15 min). "
        f"Requests: {setup['requests']} ml-100k users with a 50-item stored history, "
        f"k={setup['k']}, beam {setup['beam_width']}, result cache off. "
        f"{setup['seconds_per_level']:g} s per concurrency level, closed loop.",
        "",
        "| path | concurrency | QPS | p50 ms | p95 ms | p99 ms | shed (503) | final widths |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, rows in r["sweeps"].items():
        for x in rows:
            widths = ", ".join(f"{w}×{n}" for w, n in x["widths"].items())
            lines.append(
                f"| {name} | {x['concurrency']} | {x['qps']:.1f} | {x['p50_ms']:.1f} | "
                f"{x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['shed_503']} | {widths} |"
            )
    lines += ["", *(f"- **{n}**: {c['label']}" for n, c in r["configs"].items())]
    ov = r["overload"]
    lines += [
        "",
        f"## Overload: {ov['dynamic']['rate']:.0f} req/s open loop "
        f"(2× the saturation QPS of `{r['best_static']}`, {r['saturation_qps']:.0f})",
        "",
        "| beam | served QPS | p50 ms | p95 ms | p99 ms | shed (503) | timeouts | final widths |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("dynamic", "static"):
        x = ov[name]
        widths = ", ".join(f"{w}×{n}" for w, n in x["widths"].items())
        lines.append(
            f"| {name} | {x['qps']:.1f} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | "
            f"{x['p99_ms']:.1f} | {x['shed_503']} | {x['timeouts']} | {widths} |"
        )
    widths = {w: v for w, v in r["ndcg@10"].items() if w != "float32"}
    ndcg = ", ".join(f"{w}: {v:.4f}" for w, v in widths.items())
    lines += [
        "",
        f"Offline NDCG@10 (test split, k=10) by final width, in the precision the server ran: "
        f"{ndcg}; width {setup['beam_width']} in float32: {r['ndcg@10']['float32']:.4f} "
        f"({_pct(r['ndcg@10_precision_loss'])} lost to the precision). Weighted by the widths "
        f"the dynamic beam served: {r['ndcg@10_served']:.4f} "
        f"({_pct(r['ndcg@10_relative_loss'])} relative loss vs width {setup['beam_width']} "
        "in float32: narrower beams and precision together).",
        "",
        "## Targets",
        "",
        "| target | wanted | measured | met |",
        "|---|---|---:|---|",
    ]
    for name, t in r["targets"].items():
        value = _pct(t["value"]) if "loss" in name or "share" in name else f"{t['value']:.1f}"
        lines.append(
            f"| {name} | {t['target']} | {value} | {'—' if t['met'] is None else 'yes' if t['met'] else 'no'} |"
        )
    path.write_text("\n".join(lines) + "\n")


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, rows in r["sweeps"].items():
        qps = [x["qps"] for x in rows]
        (line,) = ax1.plot(qps, [x["p99_ms"] for x in rows], marker="o", label=f"{name} p99")
        ax1.plot(qps, [x["p50_ms"] for x in rows], ls="--", color=line.get_color(), alpha=0.6)
        for x in rows:
            ax1.annotate(f"c{x['concurrency']}", (x["qps"], x["p99_ms"]), fontsize=7)
    ax1.axhline(50, color="grey", lw=0.8, ls=":")
    ax1.set(xlabel="throughput (QPS)", ylabel="latency (ms; p99 solid, p50 dashed)")
    ax1.set_yscale("log")
    ax1.set_title("closed loop, concurrency 1/4/16/64")
    ax1.legend(fontsize=8)
    ov = r["overload"]
    names = ["dynamic", "static"]
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax2.bar([j + 0.27 * (i - 1) for j in range(2)], [ov[n][q] for n in names], 0.27, label=q)
    ax2.axhline(r["setup"]["slo_ms"], color="red", lw=0.8, ls=":", label="SLO")
    labels = [
        f"{n} beam\n{ov[n]['qps']:.0f} QPS served, {ov[n]['shed_503'] / ov[n]['requests']:.0%} shed"
        for n in names
    ]
    ax2.set_xticks(range(2), labels)
    ax2.set_yscale("log")
    ax2.set(ylabel="latency (ms)", title=f"overload: {ov['dynamic']['rate']:.0f} req/s offered")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    source = Path(sys.argv[1])
    result = json.loads(source.read_text())
    write_markdown(result, source.with_suffix(".md"))
    plot(result, source.with_suffix(".png"))
