"""What a bundle is, in one screen or one JSON object: `genrec info --bundle DIR [--json]`.

Everything comes from the verified bundle (its manifest, catalog and histories); the cost of a
request is counted analytically (`model.flops`) at the shape serving is judged at: beam 64,
a 50-item history, k 10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.beam_search import beam_schedule
from model.bundle import load_bundle
from model.config import GeneratorConfig
from model.flops import request_flops

COST_SHAPE = {"beam_width": 64, "history": 50, "k": 10}
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, scaled between the smallest and the largest."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(BARS[round((v - lo) / span * (len(BARS) - 1))] for v in values)


def bundle_info(path: Path) -> dict[str, Any]:
    """The facts of a bundle as one JSON-ready object (raises `BundleError` if it is invalid)."""
    bundle = load_bundle(path)
    m = bundle.manifest
    cfg = GeneratorConfig.from_dict(m["generator"])
    tok = m.get("tokenizer", {})
    training = m.get("training", {})
    curve = training.get("curve", [])
    best = max(curve, key=lambda e: e.get("valid_ndcg@10", 0.0), default=None)
    info: dict[str, Any] = {
        "path": str(bundle.path),
        "version": bundle.version,
        "created": m.get("created"),
        "data": m.get("data", {}),
        "embedding": m.get("embedding"),
        "sizes": {
            "items": len(bundle.catalog),
            "users": len(bundle.histories),
            "parameters": sum(p.numel() for p in bundle.model.parameters()),
            "semantic_id_levels": cfg.n_levels,
        },
        "generator": cfg.to_dict(),
        "tokenizer": {
            "kind": tok.get("config", {}).get("kind"),
            "codebook_sizes": tok.get("codebook_sizes"),
            **tok.get("report", {}),
        },
        "metrics": m.get("metrics", {}),
        "training": {
            "epochs": len(curve),
            "seconds": training.get("seconds"),
            "best_epoch": best and best.get("epoch"),
            "curve": curve,
        },
        "gflops_per_request": None,
        "flops_shape": COST_SHAPE,
    }
    if "retrain" in m:
        info["retrain"] = m["retrain"]
    if cfg.architecture == "lazy":
        widths = beam_schedule(
            COST_SHAPE["beam_width"], cfg.n_levels, cfg.codebook_sizes, COST_SHAPE["k"]
        )
        flops = request_flops(cfg, widths, COST_SHAPE["history"])
        info["gflops_per_request"] = round(flops.total / 1e9, 6)
        info["flops_shape"] = {**COST_SHAPE, "widths": widths}
    return info


def render(info: dict[str, Any]) -> str:
    """The object of `bundle_info` for a person: one fact a line, the curve as sparklines."""
    s, g, t = info["sizes"], info["generator"], info["tokenizer"]
    data = info["data"]
    source = data.get("dataset") or data.get("interactions") or "unknown"
    lines = [
        f"bundle     {info['path']}",
        f"version    {info['version']} (created {info['created']})",
        f"data       {source} · {info['embedding']} item embeddings",
        f"sizes      {s['items']:,} items · {s['users']:,} users · "
        f"{s['parameters'] / 1e6:.2f} M parameters",
        f"model      {g['architecture']} decoder, {g['n_layers']} layer(s), d {g['d_model']}, "
        f"{g['n_heads']} heads ({g['n_kv_heads']} KV), history ≤ {g['max_history']}"
        + (f", dense head (α {g['dense_alpha']:g})" if g.get("dense_weight") else ""),
    ]
    if t.get("codebook_sizes"):
        levels = " × ".join(str(k) for k in t["codebook_sizes"])
        util = "/".join(f"{u:.2f}" for u in t.get("utilization", []))
        lines.append(
            f"tokenizer  {t['kind']}, codes {levels} (last: disambiguation) · reconstruction "
            f"error {t.get('reconstruction_error', float('nan')):.3f} · utilization {util} · "
            f"collisions {t.get('collision_rate', 0):.1%} → {t.get('collision_rate_resolved', 0):.1%}"
        )
    metrics = info["metrics"]
    if "genrec" in metrics:
        ours, pop = metrics["genrec"], metrics.get("pop", {})
        lines.append(
            f"{metrics.get('split', 'test'):<10} NDCG@10 {ours['ndcg@10']:.4f} · Recall@10 "
            f"{ours['recall@10']:.4f} at beam {metrics.get('beam_width')} "
            f"(popularity: {pop.get('ndcg@10', float('nan')):.4f} / "
            f"{pop.get('recall@10', float('nan')):.4f})"
        )
    tr = info["training"]
    if tr["curve"]:
        lines.append(
            f"training   {tr['epochs']} epochs, {tr['seconds']} s, best epoch {tr['best_epoch']}"
        )
        for key, label in (("valid_ndcg@10", "valid NDCG@10"), ("train_loss", "train loss")):
            values = [e[key] for e in tr["curve"] if key in e]
            if values:
                lines.append(
                    f"  {label:<14} {sparkline(values)}  {values[0]:.4f} → {values[-1]:.4f}"
                    f" (best {max(values) if key != 'train_loss' else min(values):.4f})"
                )
    if info["gflops_per_request"] is not None:
        shape = info["flops_shape"]
        lines.append(
            f"cost       {info['gflops_per_request']:.4f} GFLOPs per request (beam "
            f"{shape['beam_width']}, widths {shape['widths']}, history {shape['history']}, "
            f"k {shape['k']})"
        )
    return "\n".join(lines)
