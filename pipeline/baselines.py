"""Baselines trained and evaluated on genrec's own split: SASRec (popularity lives in evaluate)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from model.recommender import gather_windows
from model.sasrec import SASRec, SASRecConfig
from pipeline.evaluate import evaluate_ranker
from pipeline.split import Split
from pipeline.train import Chunks, TrainConfig, make_chunks, optimize

log = logging.getLogger(__name__)


def sasrec_batch(split: Split, chunks: Chunks, max_history: int) -> dict[str, torch.Tensor]:
    """One left-padded window per run, ending before the run's last target; loss on the run only,
    so each target sees its last max_history − run + 1 … max_history items."""
    flat = split.sequences.items
    key_end = chunks.first + chunks.count - 1
    key_start = np.maximum(chunks.user_start, key_end - max_history)
    items, mask = gather_windows(flat, key_start, key_end, max_history)
    pos = key_end[:, None] - items.shape[1] + np.arange(items.shape[1])  # (B, T) flat positions
    nxt = np.minimum(pos + 1, len(flat) - 1)
    target_mask = mask & (pos + 1 >= chunks.first[:, None])
    return {
        "items": torch.from_numpy(items),
        "mask": torch.from_numpy(mask),
        "targets": torch.from_numpy(flat[nxt]),
        "target_mask": torch.from_numpy(target_mask),
    }


def sasrec_ranker(model: SASRec, k: int = 20) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Full ranking over all items, seen items masked (the same protocol as genrec)."""

    @torch.inference_mode()
    def rank(histories: list[np.ndarray]) -> np.ndarray:
        from model.recommender import ragged

        items, mask = gather_windows(*ragged(histories), model.cfg.max_history)
        scores = model.scores(torch.from_numpy(items), torch.from_numpy(mask))  # (B, N)
        for b, h in enumerate(histories):
            scores[b, torch.from_numpy(h)] = float("-inf")
        return scores.topk(k, dim=1).indices.numpy()

    return rank


def train_sasrec(
    split: Split, cfg: SASRecConfig, train_cfg: TrainConfig, run_size: int = 25
) -> tuple[SASRec, list]:
    """SASRec with cross-entropy over all items; the best epoch by validation NDCG@10."""
    torch.manual_seed(train_cfg.seed)
    model = SASRec(cfg)

    def step_loss(run: Chunks) -> torch.Tensor:
        return model.loss(**sasrec_batch(split, run, cfg.max_history))

    def validate() -> dict[str, float]:
        return evaluate_ranker(sasrec_ranker(model), split, split.valid)

    state, curve = optimize(
        model, make_chunks(split.train, run_size), step_loss, validate, train_cfg
    )
    model.load_state_dict(state)
    return model.eval(), curve
