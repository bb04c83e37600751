"""The dense head (LIGER-style) re-ranks the generated candidates, and only them."""

from dataclasses import replace

import numpy as np
import torch

from model.beam_search import BeamState
from model.config import generator_tiny
from model.lazy_decoder import LazyDecoder
from model.recommender import Recommender, rerank


def test_rerank_orders_by_log_prob_plus_weighted_bonus_and_keeps_empty_beams_last():
    state = BeamState(
        tokens=torch.tensor([[[0], [1], [2]]]),
        nodes=torch.tensor([[10, 11, -1]]),
        scores=torch.tensor([[-1.0, -2.0, float("-inf")]]),
        parents=torch.tensor([[0, 0, 1]]),
    )
    out = rerank(state, torch.tensor([[0.0, 3.0, 5.0]]), alpha=0.5)
    assert out.nodes.tolist() == [[11, 10, -1]]
    assert out.tokens[0, :, 0].tolist() == [1, 0, 2]
    assert out.scores[0, :2].tolist() == [-0.5, -1.0]


def test_dense_head_reranks_the_same_candidates(semantic_ids, histories):
    torch.manual_seed(0)
    cfg = replace(generator_tiny(), dense_weight=1.0).for_catalog(semantic_ids.codebook_sizes, 120)
    model = LazyDecoder(cfg).eval()
    widths = [8, 16, 32, 32]
    plain = Recommender(model, semantic_ids.codes).search(histories, widths, histories)
    model.cfg = replace(cfg, dense_alpha=1.0)
    mixed = Recommender(model, semantic_ids.codes).search(histories, widths, histories)
    for b in range(len(histories)):
        assert set(plain.nodes[b].tolist()) == set(mixed.nodes[b].tolist())
        live = mixed.scores[b] > float("-inf")
        assert (mixed.scores[b][live].diff() <= 0).all()


def test_dense_head_is_trained_with_the_generator(semantic_ids):
    torch.manual_seed(0)
    model = LazyDecoder(
        replace(generator_tiny(), dense_weight=1.0).for_catalog(semantic_ids.codebook_sizes, 120)
    )
    codes = torch.from_numpy(semantic_ids.codes)
    items = torch.randint(0, 120, (16, 5))
    target = (items[:, -1] + 1) % 120
    ones = torch.ones(16, 5, dtype=torch.bool)
    batch = {
        "hist_codes": codes[items],
        "hist_items": items,
        "distance": torch.arange(5, 0, -1).expand(16, 1, 5),
        "valid": ones[:, None],
        "target_codes": codes[target][:, None],
        "target_items": target[:, None],
        "target_mask": torch.ones(16, 1, dtype=torch.bool),
    }
    loss = model.train_loss(batch)
    loss.backward()
    assert model.dense is not None and model.dense.item_out.weight.grad is not None
    assert np.isfinite(loss.item())


def test_gathered_dense_scores_rerank_as_scoring_the_whole_catalog(semantic_ids, histories):
    """Re-ranking with the beam's own rows of the item table (O(W·C)) returns the items that
    scoring all N items did (O(N·C)); scores differ by alpha · logsumexp, one constant per request."""
    torch.manual_seed(0)
    cfg = replace(generator_tiny(), dense_weight=1.0, dense_alpha=0.7)
    model = LazyDecoder(cfg.for_catalog(semantic_ids.codebook_sizes, 120)).eval()
    rec = Recommender(model, semantic_ids.codes)
    widths = [8, 16, 32, 32]
    with torch.no_grad():
        plain = rec.search(histories, widths, histories)  # re-ranked by `dense_scores`
        ctx = rec.context(histories)
        full = model.dense_log_probs(*ctx)  # (B, N): the reference
        lse = model.dense.logits(model.bos_state(*ctx)).logsumexp(-1)  # (B,)
        rec.model.cfg = replace(cfg, dense_alpha=0.0)
        beams = rec.search(histories, widths, histories)
    reference = rerank(beams, full.gather(1, beams.nodes.clamp(min=0)), 0.7)
    assert torch.equal(plain.nodes, reference.nodes)
    live = plain.scores > float("-inf")
    shift = (0.7 * lse)[:, None].expand_as(plain.scores)[live]
    assert torch.allclose(plain.scores[live] - shift, reference.scores[live], atol=1e-4)
