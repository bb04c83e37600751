"""Shared plumbing for the quality benchmarks: the ml-100k split, one genrec or SASRec run, tables."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "data" / "bench-runs"
sys.path.insert(0, str(ROOT))

from model.config import GeneratorConfig, generator_small  # noqa: E402
from model.recommender import Recommender  # noqa: E402
from model.sasrec import SASRecConfig  # noqa: E402
from pipeline.baselines import sasrec_ranker, train_sasrec  # noqa: E402
from pipeline.datasets import Dataset, load_builtin  # noqa: E402
from pipeline.evaluate import (  # noqa: E402
    evaluate_ranker,
    generator_ranker,
    popularity_ranker,
    target_ranks,
)
from pipeline.split import Split, build_sequences, leave_one_out  # noqa: E402
from pipeline.train import TrainConfig, train_generator  # noqa: E402
from tokenizer.config import TokenizerConfig  # noqa: E402

METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)]


def ml100k(data_dir: Path) -> tuple[Dataset, Split]:
    dataset = load_builtin("ml-100k", data_dir)
    return dataset, leave_one_out(build_sequences(dataset))


def provenance() -> dict[str, Any]:
    """The commit a result was measured at, and whether the tree had uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }


def machine() -> dict[str, Any]:
    return {
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }


def run_genrec(
    dataset: Dataset,
    split: Split,
    *,
    seed: int,
    generator: GeneratorConfig | None = None,
    tokenizer: TokenizerConfig | None = None,
    train: TrainConfig | None = None,
    embedding: str = "collab",
    beam: int = 64,
    beams: tuple[int, ...] = (),
    keep_model: bool = False,
    kept_only: bool = False,
) -> dict[str, Any] | None:
    """Train one genrec model; validation and test metrics at `beam`, and at each of `beams`.
    A run without its model (`keep_model` false) is kept on disk, see `kept`; with
    `kept_only`, None unless it has run before."""
    spec: dict[str, Any] = {
        "generator": generator or generator_small(),
        "tokenizer": replace(tokenizer or TokenizerConfig(), seed=seed),
        "train": replace(train or TrainConfig(), seed=seed),
        "embedding": embedding,
        "beam": beam,
        "beams": beams,
    }
    if keep_model:
        return _genrec(dataset, split, seed, **spec)
    if kept_only and not kept_path("genrec", spec).exists():
        return None
    return kept("genrec", spec, lambda: _genrec(dataset, split, seed, **spec))


def run_preset(
    dataset: Dataset, split: Split, preset: Any, seeds: list[int], kept_only: bool = False
) -> list[dict[str, Any]]:
    """`run_genrec` of a recipe (pipeline.presets.Preset) over seeds; with `kept_only`, only
    the seeds that have run before."""
    runs = (
        run_genrec(
            dataset,
            split,
            seed=s,
            generator=preset.generator,
            tokenizer=preset.tokenizer,
            train=preset.train,
            embedding=preset.embedding,
            kept_only=kept_only,
        )
        for s in seeds
    )
    return [r for r in runs if r is not None]


def _genrec(
    dataset: Dataset,
    split: Split,
    seed: int,
    generator: GeneratorConfig,
    tokenizer: TokenizerConfig,
    train: TrainConfig,
    embedding: str,
    beam: int,
    beams: tuple[int, ...],
) -> dict[str, Any]:
    trained = train_generator(split, dataset.items, generator, tokenizer, train, embedding)  # type: ignore[arg-type]
    rec = Recommender(trained.model, trained.semantic_ids.codes)
    out: dict[str, Any] = {
        "seed": seed,
        "train_seconds": round(trained.seconds, 1),
        "epochs": len(trained.curve),
        "params": sum(p.numel() for p in trained.model.parameters()),
        "tokenizer": trained.semantic_ids.report,
        "curve": trained.curve,
        "valid": evaluate_ranker(generator_ranker(rec, beam), split, split.valid),
        "valid_crossfit_ndcg@10": crossfit_valid_ndcg(trained.model, rec, split, beam),
        "test": evaluate_ranker(generator_ranker(rec, beam), split, split.test),
        "model": trained.model,
        "codes": trained.semantic_ids.codes,
    }
    if beams:
        out["beam_curve"] = {}
        for w in beams:
            started = time.monotonic()
            test = evaluate_ranker(generator_ranker(rec, w), split, split.test)
            out["beam_curve"][w] = {
                "valid_ndcg@10": evaluate_ranker(generator_ranker(rec, w), split, split.valid)[
                    "ndcg@10"
                ],
                "test": test,
                "test_seconds": round(time.monotonic() - started, 2),
            }
    return out


def crossfit_valid_ndcg(model: Any, rec: Recommender, split: Split, beam: int) -> float:
    """Validation NDCG@10 comparable across recipes: where a recipe fits a weight on validation
    (the dense head's α, see `tune_dense_alpha`), each half of the validation users is scored
    at the α the other half picks (2-fold cross-fitting); otherwise the plain validation score."""
    grid = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    fitted = model.cfg.dense_alpha
    alphas = grid if getattr(model, "dense", None) is not None else (fitted,)
    gains = {}
    for alpha in alphas:
        model.cfg = replace(model.cfg, dense_alpha=alpha)
        ranks = target_ranks(generator_ranker(rec, beam), split, split.valid)
        hit = (ranks >= 0) & (ranks < 10)
        gains[alpha] = np.where(hit, 1 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    model.cfg = replace(model.cfg, dense_alpha=fitted)
    fold = np.arange(len(split.valid)) % 2
    total = 0.0
    for f in (0, 1):
        pick = max(alphas, key=lambda a: gains[a][fold != f].mean())
        total += gains[pick][fold == f].sum()
    return float(total / len(split.valid))


def run_sasrec(
    split: Split,
    *,
    seed: int,
    config: dict[str, Any],
    train: TrainConfig,
    run_size: int = 25,
    kept_only: bool = False,
) -> dict[str, Any] | None:
    """One in-project SASRec run (kept); with `kept_only`, None unless it has run before."""
    cfg = SASRecConfig(n_items=split.sequences.n_items, **config)
    train = replace(train, seed=seed)
    key = {"config": cfg, "train": train} | ({"run_size": run_size} if run_size != 25 else {})
    if kept_only and not kept_path("sasrec", key).exists():
        return None
    return kept("sasrec", key, lambda: _sasrec(split, cfg, train, run_size))


def _sasrec(split: Split, cfg: SASRecConfig, train: TrainConfig, run_size: int) -> dict[str, Any]:
    started = time.monotonic()
    model, curve = train_sasrec(split, cfg, train, run_size)
    return {
        "seed": train.seed,
        "train_seconds": round(time.monotonic() - started, 1),
        "epochs": len(curve),
        "config": cfg.to_dict(),
        "run_size": run_size,
        "curve": curve,
        "valid": evaluate_ranker(sasrec_ranker(model), split, split.valid),
        "test": evaluate_ranker(sasrec_ranker(model), split, split.test),
    }


def run_pop(split: Split) -> dict[str, Any]:
    rank = popularity_ranker(split.popularity())
    return {
        "valid": evaluate_ranker(rank, split, split.valid),
        "test": evaluate_ranker(rank, split, split.test),
    }


def mean_std(runs: list[dict[str, float]]) -> dict[str, list[float]]:
    return {
        m: [float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs]))]
        for m in runs[0]
    }


def fmt(ms: list[float] | float) -> str:
    return f"{ms[0]:.4f} ± {ms[1]:.4f}" if isinstance(ms, list) else f"{ms:.4f}"


def write(name: str, data: dict[str, Any], markdown: str) -> None:
    """results/NAME.json (with the commit it was measured at) and results/NAME.md."""
    data.setdefault("provenance", provenance())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=_json_default))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def kept(kind: str, key: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A finished run, kept under data/bench-runs and keyed by its whole configuration: an
    interrupted benchmark resumes, and studies that share a run train it once. The key is
    the configuration, not the code: every run records the commit it ran at (`provenance`),
    which the tables show; delete the folder after changing training code. Fields at their
    default value are left out of the key, so adding a field keeps the runs made before it."""
    path = kept_path(kind, key)
    if path.exists():
        return dict(json.loads(path.read_text()))
    result = run()
    out = {k: v for k, v in result.items() if k not in ("model", "codes")}
    out["provenance"] = provenance()
    RUNS.mkdir(parents=True, exist_ok=True)
    if "model" in result:  # the weights too, for later analyses (beam curves, fusion)
        from safetensors.torch import save_file, save_model

        save_model(result["model"], str(path.with_suffix(".safetensors")))
        save_file(
            {"codes": torch.from_numpy(np.ascontiguousarray(result["codes"]))},
            path.with_suffix(".codes.safetensors"),
        )
        out["generator_config"] = result["model"].cfg.to_dict()
    path.write_text(json.dumps(out, default=_json_default))
    return out


def kept_path(kind: str, key: dict[str, Any]) -> Path:
    text = json.dumps(key, sort_keys=True, default=_key_default)
    return RUNS / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def _key_default(o: Any) -> Any:
    if is_dataclass(o) and not isinstance(o, type):
        return {f.name: v for f in fields(o) if (v := getattr(o, f.name)) != _field_default(f)}
    return _json_default(o)


def _field_default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _json_default(o: Any) -> Any:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))
