"""Tokenizer study on ml-100k: quantizer, balancing, codebook size and embedding source.

(Not benchmarks/tokenizer.py: that would shadow the `tokenizer` package for every script here.)

    python benchmarks/tokenizer_study.py [--seed 0]

For each variant: reconstruction error (Σ‖x − x̂‖² / Σ‖x‖², in the embedding's own space),
per-level utilization, collision rate before resolution and the largest collision group, then
downstream validation/test NDCG@10 of the `demo` recipe trained on those IDs (one seed).
Defaults are picked by validation NDCG@10: the default (first row) gives way only to a variant
that beats it by more than the seed-to-seed spread of its own validation NDCG@10 (the std over
seeds in benchmarks/results/quality.json, counted twice). Writes
benchmarks/results/tokenizer.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from harness import RESULTS, ROOT, machine, ml100k, run_genrec, write

from pipeline.presets import preset_demo
from tokenizer.config import TokenizerConfig

VARIANTS: dict[str, tuple[str, TokenizerConfig]] = {
    "RQ-KMeans balanced, K=32, collab": ("collab", TokenizerConfig()),
    "RQ-KMeans plain, K=32, collab": ("collab", TokenizerConfig(balanced=False)),
    "RQ-VAE, K=32, collab": ("collab", TokenizerConfig(kind="rq-vae")),
    "RQ-KMeans balanced, K=64, collab": ("collab", TokenizerConfig(codebook_size=64)),
    "RQ-KMeans balanced, K=32, text (MiniLM)": ("text", TokenizerConfig()),
    "RQ-KMeans balanced, K=32, hybrid": ("hybrid", TokenizerConfig()),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    ap.add_argument("--only", nargs="*", help="run only these variant names")
    args = ap.parse_args()
    dataset, split = ml100k(args.data_dir)
    preset = preset_demo()
    rows = {}
    for name, (embedding, tok) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        run = run_genrec(
            dataset,
            split,
            seed=args.seed,
            generator=preset.generator,
            train=preset.train,
            tokenizer=replace(tok, seed=args.seed),
            embedding=embedding,
        )
        run.pop("curve")
        rows[name] = run
        print(name, run["tokenizer"], run["valid"]["ndcg@10"], run["test"]["ndcg@10"], flush=True)
    valid = {n: r["valid"]["ndcg@10"] for n, r in rows.items()}
    default, best = next(iter(VARIANTS)), max(valid, key=valid.__getitem__)
    quality = json.loads((RESULTS / "quality.json").read_text())
    margin = 2 * quality["rows"]["genrec (demo)"]["valid_ndcg@10"][1]
    choice = best if valid[best] > valid.get(default, 0.0) + margin else default
    data = {
        "seed": args.seed,
        "machine": machine(),
        "rows": rows,
        "best_by_valid": best,
        "margin": margin,
        "choice": choice,
        "command": "python benchmarks/tokenizer_study.py",
    }
    lines = [
        "# Tokenizer study on ml-100k",
        "",
        "| variant | recon. error | utilization (per level) | collisions before | largest group | valid NDCG@10 | test NDCG@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        t = r["tokenizer"]
        util = "/".join(f"{u:.2f}" for u in t["utilization"])
        mark = " **(chosen)**" if name == choice else ""
        lines.append(
            f"| {name} | {t['reconstruction_error']:.3f} | {util} | {t['collision_rate']:.1%} | "
            f"{t['max_items_per_code']} | {r['valid']['ndcg@10']:.4f}{mark} | {r['test']['ndcg@10']:.4f} |"
        )
    lines += [
        "",
        f"Chosen: {choice} (best on validation: {best}; a variant replaces the default, the "
        f"first row, only by beating it by more than {margin:.4f}, twice the seed-to-seed std of "
        "the default's validation NDCG@10 in quality.json). Reconstruction error is measured in "
        "each embedding's own space, so it compares quantizers on one embedding, not embeddings "
        "with each other.",
        f"Regenerate: `{data['command']}`",
        "",
    ]
    write("tokenizer", data, "\n".join(lines))
    plot(rows)


def plot(rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), sharey=True)
    for ax, (key, label) in zip(
        axes,
        (
            ("reconstruction_error", "reconstruction error"),
            ("collision_rate", "collision rate (before)"),
            (None, "validation NDCG@10"),
        ),
        strict=True,
    ):
        values = [
            rows[n]["valid"]["ndcg@10"] if key is None else rows[n]["tokenizer"][key] for n in names
        ]
        ax.barh(names, values)
        ax.set_xlabel(label)
    fig.tight_layout()
    fig.savefig(RESULTS / "tokenizer.png", dpi=110)


if __name__ == "__main__":
    main()
