"""genrec vs popularity vs SASRec (in-project and RecBole 1.2.1) on ml-100k, 3 seeds.

    python benchmarks/quality.py [--seeds 0 1 2] [--presets demo demo-dense]   (make bench-quality)

Leave-one-out by time, full ranking over all items, seen items masked, history ≤ 50; every
model selected on validation NDCG@10 only. The in-project SASRec uses the configuration that
benchmarks/sasrec_tuning.py picked on validation; RecBole's SASRec comes from
benchmarks/recbole_sasrec.py, which runs first (make bench-quality runs all three).
Writes benchmarks/results/quality.{json,md} and quality_beam.png, quality_curves.png.
"""

from __future__ import annotations

import argparse
import json

from harness import (
    METRICS,
    RESULTS,
    ROOT,
    fmt,
    machine,
    mean_std,
    ml100k,
    run_genrec,
    run_pop,
    run_sasrec,
    write,
)

from pipeline.presets import PRESETS
from pipeline.train import TrainConfig

BEAMS = (8, 16, 32, 64, 128, 256)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--presets", nargs="+", default=["demo", "demo-dense"])
    ap.add_argument("--data-dir", default=str(ROOT / "data"))
    args = ap.parse_args()
    dataset, split = ml100k(args.data_dir)
    rows: dict[str, dict] = {}
    for name in args.presets:
        p = PRESETS[name]()
        runs = [
            run_genrec(
                dataset,
                split,
                seed=s,
                generator=p.generator,
                tokenizer=p.tokenizer,
                train=p.train,
                embedding=p.embedding,
                beams=BEAMS if s == args.seeds[0] else (),
            )
            for s in args.seeds
        ]
        rows[f"genrec ({name})"] = {"runs": runs, "preset": name}
    tuning = json.loads((RESULTS / "sasrec_tuning.json").read_text())
    sas_cfg = {k: v for k, v in tuning["best"]["config"].items() if k != "n_items"}
    sas_train = TrainConfig(**tuning["train"])
    rows["SASRec (genrec code)"] = {  # seed 0 is sasrec_tuning.py's run, kept in data/bench-runs
        "runs": [run_sasrec(split, seed=s, config=sas_cfg, train=sas_train) for s in args.seeds]
    }
    rows["popularity"] = {"runs": [run_pop(split)]}
    recbole_file = RESULTS / "recbole_sasrec.json"
    if not recbole_file.exists():  # genrec's and SASRec's runs are kept: rerunning is quick
        raise SystemExit(f"{recbole_file} is missing: run benchmarks/recbole_sasrec.py first")
    recbole = json.loads(recbole_file.read_text())
    for row in rows.values():
        row["test"] = mean_std([r["test"] for r in row["runs"]])
        row["valid_ndcg@10"] = mean_std([{"v": r["valid"]["ndcg@10"]} for r in row["runs"]])["v"]
    rows["SASRec (RecBole 1.2.1, seen masked)"] = {
        "test": recbole["masked"],
        "source": "recbole_sasrec.json",
    }
    rows["SASRec (RecBole 1.2.1, RecBole's protocol: seen not masked)"] = {
        "test": recbole["unmasked"],
        "source": "recbole_sasrec.json",
    }
    best_sasrec = max(
        rows["SASRec (genrec code)"]["test"]["ndcg@10"][0], recbole["masked"]["ndcg@10"][0]
    )
    for row in rows.values():
        row["ratio_vs_best_sasrec"] = row["test"]["ndcg@10"][0] / best_sasrec
    data = {
        "recbole": {k: recbole[k] for k in ("runs", "users")},
        "sasrec_config": sas_cfg,
        "sasrec_train": tuning["train"],
        "seeds": args.seeds,
        "users": len(split.test),
        "machine": machine(),
        "rows": rows,
        "command": "python benchmarks/quality.py",
    }
    write("quality", data, markdown(data))
    plots(data)


def markdown(d: dict) -> str:
    lines = [
        "# Quality on MovieLens-100k",
        "",
        f"Leave-one-out test split ({d['users']} users), full ranking over all items, seen items masked, "
        f"history ≤ 50, mean ± std over seeds {d['seeds']}; models selected on validation NDCG@10. "
        "genrec decodes with beam width 64.",
        "",
        "| model | " + " | ".join(METRICS) + " | NDCG@10 / best SASRec |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for name, row in d["rows"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(fmt(row["test"][m]) for m in METRICS)
            + f" | {row['ratio_vs_best_sasrec']:.2f} |"
        )
    c, t = d["sasrec_config"], d["sasrec_train"]
    lines += [
        "",
        f"SASRec (genrec code): {c['n_layers']} layers, hidden {c['d_model']}, dropout "
        f"{c['dropout']}, lr {t['lr']}, the configuration benchmarks/sasrec_tuning.py picked on "
        "validation. RecBole 1.2.1 SASRec: RecBole's default SASRec settings (in the JSON), "
        "cross-entropy loss, same split (checked item by item), "
        + "; ".join(
            f"seed {r['seed']}: stopped by {r['stopped_by']} after {r['epochs_run']} epochs "
            f"({r['train_seconds'] / 60:.0f} min, best epoch {r['epochs_run'] - r['epochs_since_best']})"
            for r in d["recbole"]["runs"]
        )
        + ". RecBole leaves seen items in the ranking; the masked row re-scores its best "
        "checkpoint under genrec's protocol.",
        "",
        f"Regenerate: `{d['command']}` (see the script's docstring for the protocol).",
        "",
    ]
    return "\n".join(lines)


def plots(d: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in d["rows"].items():
        curve = row.get("runs", [{}])[0].get("beam_curve")
        if curve:
            widths = sorted(curve, key=int)
            ax.plot(
                [int(w) for w in widths],
                [curve[w]["test"]["ndcg@10"] for w in widths],
                marker="o",
                label=name,
            )
    ax.set(
        xscale="log",
        xlabel="final beam width",
        ylabel="test NDCG@10",
        title="ml-100k: NDCG@10 vs beam width",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "quality_beam.png", dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in d["rows"].items():
        for r in row.get("runs", []):
            if "curve" in r:
                ax.plot(
                    [p["epoch"] for p in r["curve"]],
                    [p["valid_ndcg@10"] for p in r["curve"]],
                    alpha=0.7,
                    label=f"{name} seed {r['seed']}",
                )
    ax.set(xlabel="epoch", ylabel="validation NDCG@10", title="training curves")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / "quality_curves.png", dpi=120)


if __name__ == "__main__":
    main()
