"""RecBole 1.2.1's SASRec on genrec's exact ml-100k split, as an outside reference.

    python benchmarks/recbole_sasrec.py [--seeds 0] [--max-minutes 80]

RecBole runs in its own virtual environment (data/recbole-venv, created on first use with the
pins RecBole 1.2.1 needs: numpy<2, pandas<2.3, scipy<1.14, setuptools<81, torch==2.13.0).
Protocol alignment: RecBole reads timestamps as float32, which reorders 258 ml-100k users, so
it gets an .inter file whose timestamps are each interaction's rank in genrec's own order; the
script checks that both sides hold out the same test item for every user. RecBole leaves seen
items in the ranking for sequential models; the best checkpoint is re-scored both ways.
Cost: RecBole trains on every prefix of every sequence as its own 50-long sample (~50× the
tokens of genrec's SASRec, which scores all positions of a sequence in one pass): 150-330 s
per epoch on one CPU thread. So the default is one seed with RecBole's own settings (300
epochs, early stopping after 10 without gain) under a time budget per seed; the result says
what stopped training, after how many epochs, and how many epochs ago the best one was.
Writes benchmarks/results/recbole_sasrec.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.datasets import load_builtin  # noqa: E402
from pipeline.evaluate import ranking_metrics  # noqa: E402
from pipeline.split import build_sequences, leave_one_out  # noqa: E402

PINS = ["recbole==1.2.1", "numpy<2", "pandas<2.3", "scipy<1.14", "setuptools<81", "torch==2.13.0"]


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not (path / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
        (path / ".installed").touch()
    return python


def write_inputs(workdir: Path, data_dir: Path) -> dict[str, str]:
    """The .inter file in genrec's order and each test user's seen items; returns genrec's test targets."""
    split = leave_one_out(build_sequences(load_builtin("ml-100k", data_dir)))
    seqs = split.sequences
    ids = np.asarray(seqs.item_ids)
    folder = workdir / "genrec-ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u, user in enumerate(seqs.user_ids):
        lines += [f"{user}\t{item}\t{rank}" for rank, item in enumerate(ids[seqs.history(u)])]
    (folder / "genrec-ml-100k.inter").write_text("\n".join(lines) + "\n")
    test = split.test
    seen = {
        seqs.user_ids[u]: ids[seqs.items[s:e]].tolist()
        for u, s, e in zip(test.users, test.starts, test.ends, strict=True)
    }
    (workdir / "seen.json").write_text(json.dumps(seen))
    return {seqs.user_ids[u]: str(ids[t]) for u, t in zip(test.users, test.targets, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--venv", type=Path, default=ROOT / "data" / "recbole-venv")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "recbole_sasrec.json"
    )
    ap.add_argument("--fresh", action="store_true", help="rerun seeds that already have a result")
    ap.add_argument("--max-minutes", type=float, default=80, help="training budget per seed")
    args = ap.parse_args()
    python = ensure_venv(args.venv)
    workdir = args.data_dir / "recbole-work"
    targets = write_inputs(workdir, args.data_dir)
    runs = []
    for seed in args.seeds:
        if args.fresh or not (workdir / f"result-{seed}.json").exists():  # a finished seed is kept
            subprocess.run(  # cwd: RecBole writes its log folders there
                [
                    str(python),
                    str(ROOT / "benchmarks" / "recbole_runner.py"),
                    str(workdir),
                    str(seed),
                    str(args.max_minutes),
                ],
                check=True,
                cwd=workdir,
            )
        r = json.loads((workdir / f"result-{seed}.json").read_text())
        mismatched = [
            u for u, t in zip(r["users"], r["targets"], strict=True) if targets.get(u) != t
        ]
        if mismatched or len(r["users"]) != len(targets):
            raise SystemExit(
                f"seed {seed}: RecBole holds out other test items for {len(mismatched)} users"
            )
        runs.append(
            {
                "seed": seed,
                "train_seconds": round(r["train_seconds"], 1),
                "stopped_by": r["stopped_by"],
                "epochs_run": r["epochs_run"],
                "epochs_since_best": r["epochs_since_best"],
                "best_valid_ndcg@10": r["best_valid_ndcg@10"],
                "native_test": r["native_test"],
                "unmasked": ranking_metrics(np.array(r["ranks"])),
                "masked": ranking_metrics(np.array(r["ranks_masked"])),
                "config": r["config"],
            }
        )
        print(json.dumps(runs[-1]))
    summary = {
        "model": "RecBole 1.2.1 SASRec",
        "same_test_items_for_all_users": True,
        "users": len(targets),
        "runs": runs,
    }
    for key in ("unmasked", "masked"):
        summary[key] = {
            m: [float(np.mean([r[key][m] for r in runs])), float(np.std([r[key][m] for r in runs]))]
            for m in runs[0][key]
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
