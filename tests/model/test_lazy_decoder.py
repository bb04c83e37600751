"""The lazy decoder: shapes, shared context K/V, and that it learns."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import generator_tiny
from model.lazy_decoder import LazyDecoder


def test_context_and_step_shapes(model, recommender, histories):
    ctx_k, ctx_v, ctx_bias = recommender.context(histories)
    cfg = model.cfg
    B, T = len(histories), min(cfg.max_history, max(len(h) for h in histories))
    assert ctx_k.shape == ctx_v.shape == (B, cfg.n_kv_heads, T, cfg.head_dim)
    assert ctx_bias.shape == (B, cfg.n_kv_heads, 1, T)
    visible = torch.isfinite(ctx_bias[:, 0, 0]).sum(1)
    assert visible.tolist() == [min(len(h), cfg.max_history) for h in histories]
    for t, k in enumerate(cfg.codebook_sizes):
        tokens = torch.zeros(B, 3, t, dtype=torch.long)
        log_probs = model.step(ctx_k, ctx_v, ctx_bias, tokens)
        assert log_probs.shape == (B, 3, k)
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(B, 3), atol=1e-5)


def test_shared_context_matches_context_recomputed_per_beam(
    model, recommender, histories, semantic_ids
):
    """Beams read their request's context K/V in place; the scores equal a per-beam recomputation."""
    W, t = 5, 2
    rng = np.random.default_rng(1)
    tokens = torch.from_numpy(rng.integers(0, 8, size=(len(histories), W, t)))
    ctx_k, ctx_v, ctx_bias = recommender.context(histories)
    with torch.no_grad():
        shared = model.step(ctx_k, ctx_v, ctx_bias, tokens)  # (B, W, K)
        for b, h in enumerate(histories):
            for w in range(W):
                k1, v1, m1 = recommender.context([h])
                alone = model.step(k1, v1, m1, tokens[b : b + 1, w : w + 1])
                assert torch.allclose(alone[0, 0], shared[b, w], atol=1e-5)


def test_padding_does_not_change_a_requests_scores(model, recommender, histories):
    """Left padding is masked: a history decodes the same alone or next to longer ones."""
    tokens = torch.zeros(1, 1, 1, dtype=torch.long)
    with torch.no_grad():
        batch = model.step(*recommender.context(histories), tokens.expand(len(histories), 1, 1))
        for b, h in enumerate(histories):
            alone = model.step(*recommender.context([h]), tokens)
            assert torch.allclose(alone[0], batch[b], atol=1e-5)


def test_history_longer_than_max_history_keeps_the_latest_items(recommender, model):
    long = np.arange(100)
    with torch.no_grad():
        k_long, _, m_long = recommender.context([long])
        k_tail, _, _ = recommender.context([long[-model.cfg.max_history :]])
    assert m_long.shape[-1] == model.cfg.max_history
    assert torch.allclose(k_long, k_tail)


@pytest.mark.parametrize("item_embeddings", [True, False])
def test_training_lowers_the_loss(item_embeddings):
    torch.manual_seed(0)
    sizes, n_items, B, T = (4, 4, 2), 32, 64, 6
    cfg = replace(generator_tiny(), item_embeddings=item_embeddings).for_catalog(sizes, n_items)
    model = LazyDecoder(cfg)
    codes = torch.stack(torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij"), -1).view(
        -1, 3
    )
    items = torch.randint(0, n_items, (B, T))
    target = (items[:, -1] + 1) % n_items  # next item is a function of the last one
    mask = torch.ones(B, T, dtype=torch.bool)

    def loss_fn():
        bias = model.context.window_bias(mask)
        h = model(codes[items], items, bias, codes[target][:, None])
        return model.heads.loss(h, codes[target][:, None], mask[:, :1])

    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = loss_fn().item()
    for _ in range(60):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
