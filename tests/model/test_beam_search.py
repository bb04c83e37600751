"""Constrained beam search: only real, unseen items; exact when the beam covers the catalog."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.beam_search import beam_schedule, dedup_rows


def exhaustive_scores(model, recommender, history, codes):
    """Log-probability of every item's full semantic ID, scored one level at a time."""
    ctx = recommender.context([history])
    N, L = codes.shape
    tokens = torch.from_numpy(codes)[None]  # (1, N, L)
    total = torch.zeros(N)
    with torch.no_grad():
        for level in range(L):
            log_probs = model.step(*ctx, tokens[:, :, :level])[0]  # (N, K)
            total += log_probs.gather(1, tokens[0, :, level : level + 1])[:, 0]
    return total


@pytest.mark.parametrize("width", [4, 16, 64])
def test_beam_returns_only_catalog_items_and_never_seen_ones(recommender, histories, width):
    rec = recommender.recommend(histories, k=10, beam_width=width, exclude_seen=True)
    for b, h in enumerate(histories):
        items = rec.items[b]
        assert ((items >= 0) & (items < recommender.n_items)).all()
        assert len(set(items.tolist())) == len(items) == 10
        assert not set(items.tolist()) & set(h.tolist())
        # the semantic ID returned is that item's ID
        assert (recommender.codes[items].numpy() == rec.codes[b]).all()


def test_beam_as_wide_as_the_catalog_equals_exhaustive_top_k(
    model, recommender, histories, semantic_ids
):
    codes = semantic_ids.codes
    huge = [10**6] * codes.shape[1]
    for h in histories:
        scores = exhaustive_scores(model, recommender, h, codes)
        scores[torch.from_numpy(h)] = float("-inf")
        expected = scores.topk(10)
        state = recommender.search([h], huge, [h])
        assert state.nodes[0, :10].tolist() == expected.indices.tolist()
        assert torch.allclose(state.scores[0, :10], expected.values, atol=1e-4)


def test_without_exclusion_seen_items_may_return(recommender, histories):
    h = histories[-1]
    rec = recommender.recommend([h], k=100, beam_width=128, exclude_seen=False)
    assert set(rec.items[0].tolist()) & set(h.tolist())


def test_excluding_almost_the_whole_catalog_still_returns_the_rest(recommender):
    seen = np.arange(recommender.n_items - 3)
    rec = recommender.recommend([seen], k=3, beam_width=4, exclude_seen=True)
    assert sorted(rec.items[0].tolist()) == list(
        range(recommender.n_items - 3, recommender.n_items)
    )


def test_repeated_history_items_count_once():
    rows = torch.tensor([[3, 1, 3, -1], [2, 2, 2, 2]])
    assert sorted(dedup_rows(rows)[0].tolist()) == [-1, -1, 1, 3]
    assert sorted(dedup_rows(rows)[1].tolist()) == [-1, -1, -1, 2]


def test_schedule_widens_with_depth_within_reach():
    assert beam_schedule(64, 4, (32, 32, 32, 32), k=10) == [16, 32, 64, 64]
    assert beam_schedule(64, 3, (4, 4, 4), k=10) == [4, 16, 64]
    assert beam_schedule(8, 3, (32, 32, 32), k=20) == [20, 20, 20]


@settings(max_examples=60, deadline=None)
@given(
    history=st.lists(st.integers(0, 119), min_size=1, max_size=60, unique=True),
    k=st.integers(1, 30),
    width=st.integers(1, 64),
)
def test_beam_search_never_returns_a_seen_or_unknown_item(
    recommender, semantic_ids, history, k, width
):
    """For any history, k and width: only catalog items, each once, none of the history's,
    each with its own semantic ID; as many as asked (the catalog has enough unseen items)."""
    out = recommender.recommend([np.array(history)], k=k, beam_width=width)
    items = out.items[0]
    assert len(items) == k and (items >= 0).all() and (items < 120).all()
    assert len(set(items.tolist())) == k
    assert not set(items.tolist()) & set(history)
    assert (out.codes[0] == semantic_ids.codes[items]).all()
