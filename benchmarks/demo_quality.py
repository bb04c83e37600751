"""`make demo` from a fresh clone: how long until it serves, and how good the bundle it serves is.

    python benchmarks/demo_quality.py [--port 8765]          (make bench-demo)

Clones this repository's HEAD into a temporary folder and runs `make demo` there (a new venv,
pip's download cache as this machine has it, MovieLens-100k fetched, the default recipe
trained on 2 threads), timing until `/readyz` answers 200; then stops the server and scores
the bundle it served: recall/NDCG@5/10/20 on the test split (genrec and popularity), the same
number `genrec evaluate` prints; that every item has a unique semantic ID and every item
returned (top-10 for every user) is a catalog item the user has not seen; and test NDCG@10 /
recall@10 at final beam widths 8 … 256, with k = 10 so that even width 8 is measured as
asked (a width is never below k), and the time each takes. Writes
benchmarks/results/demo_quality.{json,md} and quality_beam.png, with the commit and the
bundle version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from harness import machine, provenance  # noqa: E402

WIDTHS = (8, 16, 32, 64, 128, 256)
LIMIT_S = 40 * 60


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def fresh_make_demo(clone: Path, port: int, log: Path) -> dict:
    """`make demo` in a fresh clone until it serves; returns the timings, server stopped."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "demo", f"PORT={port}"],
        cwd=clone,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the server and its children stop with the group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while not ready(url):
            if proc.poll() is not None:
                raise SystemExit(f"make demo exited with {proc.returncode}; see {log}")
            if time.monotonic() - started > LIMIT_S:
                raise SystemExit(f"make demo did not serve within {LIMIT_S} s; see {log}")
            time.sleep(1)
        served_after = time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    return {"served_after_s": round(served_after, 1), "log": str(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = ap.parse_args()
    from model.bundle import load_bundle
    from pipeline.evaluate import evaluate_bundle

    work = Path(tempfile.mkdtemp(prefix="genrec-demo-"))
    clone = work / "genrec"
    timing = fresh_make_demo(clone, args.port, work / "make-demo.log")
    bundle_dir = clone / "artifacts" / "bundles" / "ml-100k"
    bundle = load_bundle(bundle_dir)
    scores = evaluate_bundle(bundle_dir, args.data_dir, beam_width=64)
    training = bundle.manifest["training"]
    result = {
        "bundle": bundle.version,
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip(),
        **timing,
        "train_seconds": training["seconds"],
        "epochs_run": len(training["curve"]),
        "best_epoch": max(training["curve"], key=lambda p: p["valid_ndcg@10"])["epoch"],
        "recipe": {k: training[k] for k in ("epochs", "lr", "precision", "ema", "seed")},
        "genrec_evaluate": scores,
        "ids": id_checks(bundle_dir, args.data_dir),
        "beam_curve": beam_curve(bundle_dir, args.data_dir),
        "machine": machine(),
        "provenance": provenance(),
        "command": "python benchmarks/demo_quality.py",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo_quality.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "demo_quality.md").write_text(markdown(result))
    plot(result)
    print(markdown(result))
    if args.keep:
        print(f"clone kept at {clone}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def id_checks(bundle_dir: Path, data_dir: Path) -> dict:
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
    rec = Recommender(bundle.model, codes).recommend(histories, k=10, beam_width=64)
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


def beam_curve(bundle_dir: Path, data_dir: Path) -> dict:
    """Test recall/NDCG@5 and @10 with lists of k = 10 at each final width."""
    from model.bundle import load_bundle
    from model.recommender import Recommender
    from pipeline.evaluate import evaluate_ranker, generator_ranker, split_for

    bundle = load_bundle(bundle_dir)
    split = split_for(bundle, data_dir)
    rec = Recommender(bundle.model, bundle.semantic_ids.codes)
    curve = {}
    for w in WIDTHS:
        started = time.monotonic()
        m = evaluate_ranker(generator_ranker(rec, w, k=10), split, split.test)
        curve[w] = {
            "widths_per_level": rec.widths(w, 10),
            **{k: v for k, v in m.items() if not k.endswith("@20")},
            "seconds": round(time.monotonic() - started, 2),
        }
    return curve


def markdown(r: dict) -> str:
    keys = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)]
    s = r["genrec_evaluate"]
    lines = [
        f"# `make demo` from a fresh clone (commit {r['commit'][:8]}, bundle {r['bundle']})",
        "",
        f"`make demo` served after **{r['served_after_s'] / 60:.1f} min** (new venv with pip's "
        f"cache warm, data fetch, training, server start), of which training took "
        f"{r['train_seconds'] / 60:.1f} min ({r['epochs_run']} epochs, best {r['best_epoch']}; "
        f"recipe {r['recipe']}).",
        "",
        f"Leave-one-out test split, {s['users']} users, full ranking over all items, seen items "
        f"masked, beam width {s['beam_width']} (what `genrec evaluate` prints):",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
        "| genrec | " + " | ".join(f"{s[k]:.4f}" for k in keys) + " |",
        "| popularity | " + " | ".join(f"{s['pop'][k]:.4f}" for k in keys) + " |",
        "",
        f"Semantic IDs: {r['ids']['distinct_ids']} distinct for {r['ids']['items']} items. "
        f"Top-10 for every user: {r['ids']['returned_valid_unseen']} of {r['ids']['returned']} "
        "returned items are catalog items the user has not seen.",
        "",
        "Final beam width (k = 10, so every width is what it says):",
        "",
        "| width | per level | recall@10 | NDCG@10 | seconds (943 users) |",
        "|---|---|---|---|---|",
    ]
    for w, c in r["beam_curve"].items():
        lines.append(
            f"| {w} | {c['widths_per_level']} | {c['recall@10']:.4f} | {c['ndcg@10']:.4f} | "
            f"{c['seconds']} |"
        )
    lines += ["", f"Regenerate: `{r['command']}`", ""]
    return "\n".join(lines)


def plot(r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [int(w) for w in r["beam_curve"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(widths, [c["ndcg@10"] for c in r["beam_curve"].values()], marker="o")
    ax.set(
        xscale="log",
        xlabel="final beam width (k = 10)",
        ylabel="test NDCG@10",
        title=f"make demo bundle {r['bundle']}: NDCG@10 vs beam width",
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "quality_beam.png", dpi=120)


if __name__ == "__main__":
    main()
