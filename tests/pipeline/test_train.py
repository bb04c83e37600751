"""Training batches: runs of targets share a context and see exactly their own history."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import generator_tiny
from model.lazy_decoder import LazyDecoder
from model.recommender import gather_windows
from pipeline.split import build_sequences, every_position, leave_one_out
from pipeline.train import TrainConfig, fit, lr_factor, make_batch, make_chunks
from tests.synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def split():
    return leave_one_out(build_sequences(synthetic_dataset(n_users=30, min_len=20, max_len=90)))


def test_runs_cover_every_training_target_once(split):
    chunks = make_chunks(split.train, size=6)
    covered = np.concatenate(
        [np.arange(f, f + c) for f, c in zip(chunks.first, chunks.count, strict=True)]
    )
    assert sorted(covered.tolist()) == sorted(split.train.ends.tolist())
    assert chunks.count.max() == 6 and chunks.count.min() >= 1


@pytest.mark.parametrize("newest_query", [False, True])
def test_run_batches_give_the_same_logits_as_one_context_per_target(split, newest_query):
    """The shared-context training path equals decoding each target from its own window."""
    torch.manual_seed(0)
    N, H, size = split.sequences.n_items, 10, 6
    codes = torch.randint(0, 8, (N, 4))
    cfg = replace(generator_tiny(), max_history=H, newest_query=newest_query)
    model = LazyDecoder(cfg.for_catalog((8, 8, 8, 8), N)).eval()
    if model.newest_query is not None:  # make the query matter (it starts near zero)
        torch.nn.init.normal_(model.newest_query.weight, std=0.5)
    chunks = make_chunks(split.train, size).subset(np.arange(15))
    batch = make_batch(split, chunks, codes, H, size)
    flat = split.sequences.items
    with torch.no_grad():
        h_runs = model(
            batch["hist_codes"],
            batch["hist_items"],
            model.context.bias(batch["distance"], batch["valid"]),
            batch["target_codes"],
            (batch["distance"] == 1).int().argmax(-1),
        )  # (B, W, L, C)
        for i in range(len(chunks)):
            for w in range(chunks.count[i]):
                p = chunks.first[i] + w
                items, mask = gather_windows(flat, chunks.user_start[i : i + 1], np.array([p]), H)
                it = torch.from_numpy(items)
                ctx = model.encode_context(codes[it], it, torch.from_numpy(mask))
                h = model.decode(*ctx, codes[flat[p]][None, None, :-1])  # (1, 1, L, C)
                assert torch.allclose(h[0, 0], h_runs[i, w], atol=1e-5)
    assert batch["target_mask"].sum().item() == chunks.count.sum()


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.1)


def tiny_fit(split, **train):
    torch.manual_seed(0)
    N = split.sequences.n_items
    codes = np.stack([np.arange(N) // 16 % 8, np.arange(N) // 2 % 8, np.arange(N) % 2], 1)
    model = LazyDecoder(generator_tiny().for_catalog((8, 8, 2), N))
    cfg = TrainConfig(epochs=2, batch_size=16, eval_beam=8, warmup_steps=2, **train)
    state, curve = fit(model, codes, split, cfg)
    return model, state, curve


def test_without_held_out_targets_training_keeps_the_last_weights(split):
    everything = every_position(split.sequences)
    model, state, curve = tiny_fit(everything)
    assert len(curve) == 2 and "valid_ndcg@10" not in curve[-1]
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name


def test_ema_keeps_the_averaged_weights_not_the_live_ones(split):
    model, state, _ = tiny_fit(every_position(split.sequences), ema=0.9)
    live = model.state_dict()
    assert any(not torch.equal(state[n], live[n]) for n in live if live[n].is_floating_point())
    _, plain, _ = tiny_fit(every_position(split.sequences))
    for name, tensor in plain.items():  # the live weights follow the same steps either way
        assert torch.allclose(tensor, live[name]), name
