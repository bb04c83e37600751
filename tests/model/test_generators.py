"""Every architecture decodes step by step exactly what it was trained on (teacher forcing)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import generator_tiny
from model.generators import build_generator
from model.recommender import Recommender
from pipeline.split import build_sequences, leave_one_out
from pipeline.train import make_batch, make_chunks
from tests.synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def split():
    return leave_one_out(build_sequences(synthetic_dataset(n_users=20)))


@pytest.mark.parametrize("architecture", ["lazy", "naive", "encdec"])
def test_training_loss_equals_the_loss_of_step_by_step_decoding(split, architecture):
    torch.manual_seed(0)
    N = split.sequences.n_items
    idx = torch.arange(N)
    codes = torch.stack([idx // 64 % 8, idx // 8 % 8, idx % 8, torch.zeros(N, dtype=torch.long)], 1)
    model = build_generator(
        replace(generator_tiny(), architecture=architecture).for_catalog((8,) * 4, N)
    ).eval()
    chunks = make_chunks(split.train, 1).subset(np.arange(6))
    with torch.no_grad():
        loss = model.train_loss(make_batch(split, chunks, codes, 50, 1))
        flat = split.sequences.items
        histories = [flat[s:e] for s, e in zip(chunks.user_start, chunks.first, strict=True)]
        ctx = Recommender(model, codes.numpy()).context(histories)
        target = codes[flat[chunks.first]]  # (B, L)
        total = sum(
            model.step(*ctx, target[:, None, :level])[:, 0].gather(1, target[:, level : level + 1])[
                :, 0
            ]
            for level in range(4)
        )
    assert torch.allclose(loss, -(total / 4).mean(), atol=1e-5)


@pytest.mark.parametrize("architecture", ["naive", "encdec"])
def test_comparison_architectures_need_one_target_per_context(split, architecture):
    N = split.sequences.n_items
    model = build_generator(
        replace(generator_tiny(), architecture=architecture).for_catalog((8,) * 4, N)
    )
    batch = make_batch(
        split,
        make_chunks(split.train, 4).subset(np.arange(3)),
        torch.zeros(N, 4, dtype=torch.long),
        50,
        4,
    )
    with pytest.raises(ValueError, match="one target per context"):
        model.train_loss(batch)
