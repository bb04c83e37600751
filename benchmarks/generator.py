"""Lazy decoder vs naive decoder-only vs encoder-decoder on ml-100k at matched parameter counts.

    python benchmarks/generator.py [--seed 0] [--minutes 3]

Same semantic IDs, split, optimiser and selection (validation NDCG@10) for all three. The
lazy decoder trains on runs of 16 targets that share one context (its K/V do not depend on
the target); the other two need one context per target. Reports NDCG@10, training time,
inference FLOPs per request (torch.utils.flop_counter, history 50, beam 64, k 10) and
single-request latency at beam 64 (median of 30, same process, so the ratios are comparable).
A fourth row adds the dense item head (LIGER-style re-ranking of the beam's items, more
parameters) to the lazy decoder. Every row gets the same training budget: the demo recipe's
epochs, stopped at the first epoch end past `--minutes` of wall time (equal compute, which is
what the lazy decoder saves). Writes benchmarks/results/generator.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from harness import ROOT, machine, ml100k, run_genrec, write
from torch.utils.flop_counter import FlopCounterMode

from model.config import generator_small
from model.recommender import Recommender
from pipeline.presets import preset_demo

ARCHS = {
    "lazy decoder (2 layers, d 128)": replace(generator_small(), architecture="lazy"),
    "naive decoder-only (2 layers, d 128)": replace(generator_small(), architecture="naive"),
    "encoder-decoder (2+2 layers, d 96)": replace(
        generator_small(), architecture="encdec", d_model=96
    ),
    "lazy decoder + dense item head": replace(generator_small(), dense_weight=1.0),
}


def request_cost(
    rec: Recommender, history: np.ndarray, beam: int = 64, k: int = 10
) -> dict[str, float]:
    widths = rec.widths(beam, k)
    with FlopCounterMode(display=False) as counter:
        rec.search([history], widths, [history])
    times = []
    for _ in range(30):
        started = time.perf_counter()
        rec.search([history], widths, [history])
        times.append(time.perf_counter() - started)
    return {
        "gflops_per_request": counter.get_total_flops() / 1e9,
        "latency_ms_p50": 1000 * statistics.median(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget per row")
    args = ap.parse_args()
    dataset, split = ml100k(args.data_dir)
    preset = preset_demo()
    preset = replace(preset, train=replace(preset.train, max_minutes=args.minutes))
    seqs = split.sequences
    user = int(np.flatnonzero(seqs.lengths >= 52)[0])
    history = seqs.history(user)[-50:]
    rows = {}
    for name, gen in ARCHS.items():
        train = (
            preset.train
            if gen.architecture == "lazy"
            else replace(
                preset.train,
                chunk_size=1,
                batch_size=preset.train.batch_size * preset.train.chunk_size,
            )
        )
        run = run_genrec(
            dataset,
            split,
            seed=args.seed,
            generator=gen,
            tokenizer=preset.tokenizer,
            train=train,
            embedding=preset.embedding,
            keep_model=True,
        )
        model, codes = run.pop("model"), run.pop("codes")
        run.update(request_cost(Recommender(model, codes), history))
        run["seconds_per_epoch"] = round(run["train_seconds"] / run["epochs"], 1)
        rows[name] = run
        print(
            name,
            {
                k: run[k]
                for k in ("params", "seconds_per_epoch", "gflops_per_request", "latency_ms_p50")
            },
            run["test"]["ndcg@10"],
            flush=True,
        )
    lazy = rows[next(iter(ARCHS))]
    data = {
        "seed": args.seed,
        "machine": machine(),
        "rows": rows,
        "torch_threads": torch.get_num_threads(),
        "command": "python benchmarks/generator.py",
    }
    lines = [
        "# Generator architectures on ml-100k (matched parameters)",
        "",
        "| architecture | params | valid NDCG@10 | test NDCG@10 | s / epoch | epochs | GFLOPs / request | vs lazy | latency p50 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['params']:,} | {r['valid']['ndcg@10']:.4f} | {r['test']['ndcg@10']:.4f} | "
            f"{r['seconds_per_epoch']} | {r['epochs']} | {r['gflops_per_request']:.3f} | "
            f"{r['gflops_per_request'] / lazy['gflops_per_request']:.1f}× | {r['latency_ms_p50']:.1f} |"
        )
    lines += [
        "",
        f"Training budget per row: {preset.train.epochs} epochs, stopped at the first epoch end "
        f"past {args.minutes:g} minutes (early stopping on validation NDCG@10 as usual).",
        "FLOPs: one request, history 50, beam 64 (widths per level from the server's schedule), k 10.",
        f"Regenerate: `{data['command']}`",
        "",
    ]
    write("generator", data, "\n".join(lines))


if __name__ == "__main__":
    main()
