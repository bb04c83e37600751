"""Quality of the `make demo` bundle on ml-100k: genrec vs popularity, test split, full ranking.

    python benchmarks/demo_quality.py [--bundle artifacts/bundles/ml-100k] [--beam-width 64]

Trains the default bundle first if it is missing (the same command `make demo` runs), then
writes benchmarks/results/demo_quality.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "artifacts/bundles/ml-100k")
    ap.add_argument("--beam-width", type=int, default=64)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from model.bundle import read_manifest
    from pipeline.evaluate import evaluate_bundle

    if not (args.bundle / "manifest.json").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "train",
                "--dataset",
                "ml-100k",
                "--out",
                str(args.bundle),
                "--data-dir",
                str(args.data_dir),
            ],
            check=True,
            cwd=ROOT,
        )
    started = time.monotonic()
    result = evaluate_bundle(args.bundle, args.data_dir, args.beam_width)
    manifest = read_manifest(args.bundle)
    result["evaluate_seconds"] = round(time.monotonic() - started, 1)
    result["train_seconds"] = manifest["training"]["seconds"]
    result["epochs_run"] = len(manifest["training"]["curve"])
    result["tokenizer"] = manifest["tokenizer"]["report"]
    result["machine"] = {
        "cpus": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    result["ids"] = id_checks(args.bundle, args.data_dir, args.beam_width)
    result["command"] = "python benchmarks/demo_quality.py"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo_quality.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "demo_quality.md").write_text(markdown(result))
    print(markdown(result))


def id_checks(bundle_dir: Path, data_dir: Path, beam_width: int) -> dict:
    """Every item has a unique ID; every item returned (top-10, each user's whole history as
    context and exclusion) is a catalog item the user has not seen."""
    import numpy as np

    from model.bundle import load_bundle
    from model.recommender import Recommender
    from pipeline.evaluate import split_for

    bundle = load_bundle(bundle_dir)
    codes = bundle.semantic_ids.codes
    seqs = split_for(bundle, data_dir).sequences
    histories = [seqs.history(u) for u in range(len(seqs.user_ids))]
    rec = Recommender(bundle.model, codes).recommend(histories, k=10, beam_width=beam_width)
    ok = [
        (0 <= i < len(codes)) and i not in set(h.tolist())
        for h, row in zip(histories, rec.items, strict=True)
        for i in row
    ]
    return {
        "items": len(codes),
        "distinct_ids": len(np.unique(codes, axis=0)),
        "returned": len(ok),
        "returned_valid_unseen": int(sum(ok)),
    }


def markdown(r: dict) -> str:
    keys = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)]
    lines = [
        f"# ml-100k, `make demo` bundle ({r['bundle']})",
        "",
        f"Leave-one-out test split, {r['users']} users, full ranking over all items, seen items masked; "
        f"beam width {r['beam_width']}. Trained {r['epochs_run']} epochs in {r['train_seconds']} s on "
        f"{r['machine']['cpus']} CPU threads.",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
        "| genrec | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |",
        "| popularity | " + " | ".join(f"{r['pop'][k]:.4f}" for k in keys) + " |",
        "",
        f"Semantic IDs: {r['ids']['distinct_ids']} distinct for {r['ids']['items']} items. "
        f"Top-10 for every user: {r['ids']['returned_valid_unseen']} of {r['ids']['returned']} returned "
        "items are catalog items the user has not seen.",
        "",
        f"Regenerate: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
