"""Model time per batch, float32 vs bfloat16: what one model worker spends on a batch.

    python benchmarks/decode_cost.py --bundle artifacts/bundles/ml-100k

Runs `Engine.run` (the cached decoding path the service uses) in this process on one
intra-op thread, for batches of 1–32 ml-100k users with a 50-item history (k=10, beam 64),
in both precisions, alternating them so host noise hits both alike; for a bundle with a dense
item head, also bfloat16 without its re-ranking (α = 0), which is what the head costs. Writes
benchmarks/results/decode_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import provenance  # noqa: E402

from model.bundle import load_bundle  # noqa: E402
from model.precision import native_bfloat16  # noqa: E402
from service.engine import Engine, Query  # noqa: E402

BATCHES = (1, 4, 8, 16, 32)
BEAM, K = 64, 10


def batch_ms(engine: Engine, queries: list[Query], repeats: int) -> float:
    """Median wall time of one batch over `repeats` runs (after one warm-up run)."""
    engine.run(queries, BEAM)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.run(queries, BEAM)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "artifacts/bundles/ml-100k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/decode_cost")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.bundle)
    engines = {
        "float32": Engine(bundle, BEAM, BEAM, dtype=torch.float32),
        "bfloat16": Engine(bundle, BEAM, BEAM, dtype=torch.bfloat16),
    }
    dense = bool(bundle.model.cfg.dense_alpha)
    if dense:
        plain = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model))
        plain.model.cfg = dataclasses.replace(plain.model.cfg, dense_alpha=0.0)
        engines["bfloat16, no dense re-rank"] = Engine(plain, BEAM, BEAM, dtype=torch.bfloat16)
    users = [h for h in bundle.histories.values() if len(h) >= 50]
    histories = [engines["float32"].indices(h[-50:], strict=False) for h in users]
    rows = []
    for size in BATCHES:
        queries = [Query(histories[i % len(histories)], K, None, True) for i in range(size)]
        runs: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                runs[name].append(batch_ms(engine, queries, max(5, 64 // size)))
        row = {"batch": size, **{n: statistics.median(v) for n, v in runs.items()}}
        row["speedup"] = row["float32"] / row["bfloat16"]
        if dense:
            row["dense_cost"] = row["bfloat16"] / row["bfloat16, no dense re-rank"]
        rows.append(row)
        print(
            f"batch {size:3d}: float32 {row['float32']:6.2f} ms, bfloat16 "
            f"{row['bfloat16']:6.2f} ms ({row['speedup']:.2f}x)"
            + (f", dense re-rank ×{row['dense_cost']:.3f}" if dense else ""),
            flush=True,
        )
    result = {
        "command": "python benchmarks/decode_cost.py " + " ".join(sys.argv[1:]),
        "bundle": str(args.bundle),
        "bundle_version": bundle.version,
        "provenance": provenance(),
        "native_bfloat16": native_bfloat16(),
        "load_average": os.getloadavg(),
        "beam_width": BEAM,
        "k": K,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [
        "# Model time per batch: float32 vs bfloat16",
        "",
        f"`{result['command']}` — cached decoding path, one intra-op thread, ml-100k users with "
        f"a 50-item history, k={K}, beam {BEAM}; median of {args.rounds} rounds, each the "
        f"median of several batches. Native bfloat16 on this CPU: {native_bfloat16()}.",
        "",
        "| batch | float32 ms | bfloat16 ms | speed-up | bfloat16 ms per request |"
        + (" bfloat16 ms without the dense re-rank | dense re-rank's cost |" if dense else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|---:|" if dense else ""),
        *(
            f"| {r['batch']} | {r['float32']:.2f} | {r['bfloat16']:.2f} | {r['speedup']:.2f}× "
            f"| {r['bfloat16'] / r['batch']:.2f} |"
            + (
                f" {r['bfloat16, no dense re-rank']:.2f} | ×{r['dense_cost']:.3f} |"
                if dense
                else ""
            )
            for r in rows
        ),
        "",
        f"Bundle {bundle.version}; commit {result['provenance']['commit'][:10]}; host load "
        f"average at the end {result['load_average'][0]:.1f} (a shared 2-core host: compare "
        "columns within a row, not with other runs).",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
