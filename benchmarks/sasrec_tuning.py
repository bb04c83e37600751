"""Tune the in-project SASRec fairly: a small grid, selected on validation NDCG@10 only.

    python benchmarks/sasrec_tuning.py [--seed 0]

Grid: dropout 0.2 or 0.5 (hidden and attention) × learning rate 1e-3 or 3e-3, training on
runs of 25 consecutive targets that share one 50-item window (each target sees 26–50 items;
32 runs, ~800 targets, per step); then the best of those (on validation) once more with one
window per target (every target sees its last 50 items, as RecBole trains, 256 windows per
step as RecBole's batch; ~25× the compute per epoch). Hidden 64, 2 layers, 2 heads, history 50, cross-entropy over all items, AdamW
(no weight decay) with warm-up and cosine decay, early stopping after 10 epochs without a
gain (at most 200). Writes benchmarks/results/sasrec_tuning.{json,md}; benchmarks/quality.py
uses the winner.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import asdict

from harness import ROOT, machine, ml100k, provenance, run_sasrec, write

from pipeline.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument(
        "--finished-only",
        action="store_true",
        help="tabulate the grid points already run, start none (the rest are listed as missing)",
    )
    args = ap.parse_args()
    _, split = ml100k(args.data_dir)
    runs: list[dict] = []
    missing: list[dict] = []

    def tune(drop: float, lr: float, run_size: int) -> None:
        train = TrainConfig(
            epochs=200,
            patience=10,
            lr=lr,
            weight_decay=0.0,
            warmup_steps=100,
            precision="auto",
            batch_size=32 if run_size > 1 else 256,  # ~800 or 256 targets per step
        )
        r = run_sasrec(
            split,
            seed=args.seed,
            config={"d_model": 64, "dropout": drop, "attn_dropout": drop},
            train=train,
            run_size=run_size,
            kept_only=args.finished_only,
        )
        if r is None:
            missing.append({"dropout": drop, "lr": lr, "run_size": run_size})
            return
        r["train"] = asdict(train)
        runs.append(r)
        print(drop, lr, run_size, r["valid"]["ndcg@10"], r["test"]["ndcg@10"], flush=True)

    for drop, lr in itertools.product((0.2, 0.5), (1e-3, 3e-3)):
        tune(drop, lr, 25)
    first = max(runs, key=lambda r: r["valid"]["ndcg@10"])
    tune(first["config"]["dropout"], first["train"]["lr"], 1)
    best = max(runs, key=lambda r: r["valid"]["ndcg@10"])
    data = {
        "machine": machine(),
        "provenance": provenance(),
        "seed": args.seed,
        "runs": runs,
        "best": best,
        "missing_runs": missing,
        "train": best["train"],
        "command": "python benchmarks/sasrec_tuning.py",
    }
    lines = [
        "# In-project SASRec tuning (selected on validation NDCG@10)",
        "",
        "| hidden | dropout | lr | targets per window | epochs (best) | valid NDCG@10 | test NDCG@10 | minutes | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = r["config"]
        mark = " **(chosen)**" if r is best else ""
        best_epoch = max(r["curve"], key=lambda p: p["valid_ndcg@10"])["epoch"]
        lines.append(
            f"| {c['d_model']} | {c['dropout']} | {r['train']['lr']} | {r['run_size']} | "
            f"{r['epochs']} ({best_epoch}) | {r['valid']['ndcg@10']:.4f}{mark} | "
            f"{r['test']['ndcg@10']:.4f} | {r['train_seconds'] / 60:.1f} | "
            f"{r['provenance']['commit'][:8]} |"
        )
    if missing:
        lines += [
            "",
            "Not run yet (tabulated with `--finished-only`; the choice is among the rows above): "
            + "; ".join(
                f"dropout {m['dropout']}, lr {m['lr']}, {m['run_size']} per window" for m in missing
            ),
        ]
    lines += ["", f"Regenerate: `{data['command']}`", ""]
    write("sasrec_tuning", data, "\n".join(lines))


if __name__ == "__main__":
    main()
