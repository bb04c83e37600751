"""Full-ranking evaluation: Recall@k and NDCG@k of the generator and of popularity, seen items masked.

genrec evaluate --bundle artifacts/bundles/ml-100k
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model.bundle import Bundle, load_bundle
from model.recommender import Recommender
from pipeline.datasets import load_dataset
from pipeline.events import bundle_dataset
from pipeline.split import Examples, Split, build_sequences, leave_one_out

log = logging.getLogger(__name__)

KS = (5, 10, 20)


def ranking_metrics(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """ranks (n,) 0-based rank of each target, −1 when it is not in the list."""
    hit = ranks >= 0
    out: dict[str, float] = {}
    for k in ks:
        in_k = hit & (ranks < k)
        out[f"recall@{k}"] = float(in_k.mean()) if len(ranks) else 0.0
    for k in ks:
        in_k = hit & (ranks < k)
        gains = np.where(in_k, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
        out[f"ndcg@{k}"] = float(gains.mean()) if len(ranks) else 0.0
    return out


def rank_of(targets: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Position of targets (B,) in ranked lists (B, k), −1 when absent."""
    match = ranked == targets[:, None]
    return np.where(match.any(1), match.argmax(1), -1)


def _batches(examples: Examples, batch_size: int) -> Iterator[Examples]:
    for lo in range(0, len(examples), batch_size):
        yield examples.subset(np.arange(lo, min(lo + batch_size, len(examples))))


def _prefixes(split: Split, ex: Examples) -> list[np.ndarray]:
    items = split.sequences.items
    return [items[s:e] for s, e in zip(ex.starts, ex.ends, strict=True)]


def evaluate_ranker(
    rank_fn: Callable[[list[np.ndarray]], np.ndarray],
    split: Split,
    examples: Examples,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of any function mapping histories (the full prefix; items in it count as seen)
    to ranked item indices (B, ≥ max k)."""
    return ranking_metrics(target_ranks(rank_fn, split, examples, batch_size, progress))


def target_ranks(
    rank_fn: Callable[[list[np.ndarray]], np.ndarray],
    split: Split,
    examples: Examples,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """Each example's 0-based rank of its target in `rank_fn`'s list, −1 when absent."""
    ranks = []
    for ex in tqdm(
        list(_batches(examples, batch_size)), desc="evaluate", disable=not progress, leave=False
    ):
        ranks.append(rank_of(ex.targets, rank_fn(_prefixes(split, ex))))
    return np.concatenate(ranks) if ranks else np.empty(0, dtype=np.int64)


def generator_ranker(
    rec: Recommender, beam_width: int, k: int = max(KS)
) -> Callable[[list[np.ndarray]], np.ndarray]:
    def rank(histories: list[np.ndarray]) -> np.ndarray:
        return rec.recommend(histories, k=k, beam_width=beam_width, exclude_seen=True).items

    return rank


def popularity_ranker(
    popularity: np.ndarray, k: int = max(KS)
) -> Callable[[list[np.ndarray]], np.ndarray]:
    pop = torch.as_tensor(popularity, dtype=torch.float64)

    def rank(histories: list[np.ndarray]) -> np.ndarray:
        scores = pop.repeat(len(histories), 1)  # (B, N)
        for b, h in enumerate(histories):
            scores[b, torch.from_numpy(h)] = float("-inf")
        return scores.topk(k, dim=1).indices.numpy()

    return rank


def split_for(bundle: Bundle, data_dir: Path) -> Split:
    """The bundle's dataset (plus the events a retrain added), split again in catalog order."""
    dataset = bundle_dataset(load_dataset(bundle.manifest["data"], data_dir), bundle)
    return leave_one_out(build_sequences(dataset, bundle.catalog.item_ids))


def evaluate_bundle(
    bundle_dir: Path, data_dir: Path, beam_width: int = 64, part: str = "test"
) -> dict[str, Any]:
    """Metrics of the bundle's generator and of popularity on one part of its split."""
    bundle = load_bundle(bundle_dir)
    split = split_for(bundle, data_dir)
    examples = getattr(split, part)
    rec = Recommender(bundle.model, bundle.semantic_ids.codes)
    genrec = evaluate_ranker(generator_ranker(rec, beam_width), split, examples, progress=True)
    pop = evaluate_ranker(popularity_ranker(split.popularity()), split, examples)
    final_pass = bundle.manifest.get("training", {}).get("final_pass")
    if final_pass:
        log.warning(
            "bundle %s trained through every position after its quality gate (a retrain's "
            "final pass): its %s items are not held out, so these scores overstate it; its "
            "gate scores are in the manifest under `retrain`",
            bundle.version,
            part,
        )
    return {
        **genrec,
        "pop": pop,
        "bundle": bundle.version,
        "split": part,
        "users": len(examples),
        "beam_width": beam_width,
        "held_out": not final_pass,
    }
