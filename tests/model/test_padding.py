"""Every attention in genrec's own models ignores left padding, in eval and in training mode.

Histories of a batch are left-padded to the longest one. A fully masked attention row gives
NaN (softmax over nothing); `nn.MultiheadAttention`'s inference fast path returned NaN for
the padding rows of SASRec, which spread into the real positions of the next layer, so every
user with a short history was ranked at random. These tests pin the scores of one short
history alone and inside batches with more padding, and against training mode (dropout 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import generator_tiny
from model.generators import build_generator
from model.recommender import Recommender, gather_windows, ragged
from model.sasrec import SASRec, SASRecConfig

N, L = 40, 3
SHORT = np.array([3, 17, 5])
LONGER = [np.arange(20) % N, np.arange(45) % N]  # two amounts of padding for SHORT


def codes() -> np.ndarray:
    idx = np.arange(N)
    return np.stack([idx // 16 % 4, idx // 4 % 4, idx % 4], 1)


def generator_scores(
    model: torch.nn.Module, histories: list[np.ndarray], training: bool
) -> torch.Tensor:
    """Log-probabilities of level 1 after each history's prefix `[BOS, s_0]` (B, K)."""
    rec = Recommender(model, codes(), decoding="shared")  # type: ignore[arg-type]
    model.train(training)  # (the Recommender puts it in eval mode)
    tokens = torch.full((len(histories), 1, 1), 2, dtype=torch.long)
    with torch.inference_mode(not training):  # training mode runs with autograd on
        return model.step(*rec.context(histories), tokens)[:, 0].detach()  # type: ignore[operator]


def sasrec_scores(
    model: torch.nn.Module, histories: list[np.ndarray], training: bool
) -> torch.Tensor:
    items, mask = gather_windows(*ragged(histories), 50)
    model.train(training)
    with torch.inference_mode(not training):  # training mode runs with autograd on
        return model.scores(torch.from_numpy(items), torch.from_numpy(mask)).detach()  # type: ignore[operator]


def build(kind: str) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    if kind == "sasrec":
        cfg = SASRecConfig(n_items=N, d_model=16, n_heads=2, dropout=0.0, attn_dropout=0.0)
        return SASRec(cfg), sasrec_scores
    arch, _, variant = kind.partition("+")
    cfg = replace(generator_tiny(), architecture=arch, dropout=0.0, newest_query=bool(variant))
    return build_generator(cfg.for_catalog((4, 4, 4), N)), generator_scores


@pytest.mark.parametrize("kind", ["lazy", "lazy+newest-query", "naive", "encdec", "sasrec"])
def test_scores_of_a_short_history_do_not_depend_on_left_padding(kind):
    model, scores = build(kind)
    alone = scores(model, [SHORT], False)[0]  # type: ignore[operator]
    assert torch.isfinite(alone).all()
    for longer in LONGER:
        padded = scores(model, [SHORT, longer], False)  # type: ignore[operator]
        assert torch.isfinite(padded).all()
        torch.testing.assert_close(padded[0], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lazy", "lazy+newest-query", "naive", "encdec", "sasrec"])
def test_eval_mode_equals_training_mode_without_dropout(kind):
    model, scores = build(kind)
    batch = [SHORT, LONGER[1]]
    evaluated = scores(model, batch, False)  # type: ignore[operator]
    trained = scores(model, batch, True)  # type: ignore[operator]
    assert torch.isfinite(evaluated).all()
    torch.testing.assert_close(evaluated, trained, rtol=1e-4, atol=1e-5)
