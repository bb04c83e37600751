"""Every fast decoding path returns the reference path's beams; the KV-cached step equals the
full recomputation; the pre-cut and mixed widths change nothing but the cost."""

import numpy as np
import pytest
import torch

from model.beam_search import NEG_INF, BeamState, TrieTensors, beam_search, beam_step
from model.decoding import Decoding
from model.recommender import Recommender
from tokenizer.trie import PrefixTrie


def assert_same_beams(a, b, k=None):
    k = k or a.nodes.shape[1]
    assert a.nodes[:, :k].tolist() == b.nodes[:, :k].tolist()
    live = a.scores[:, :k] > NEG_INF
    assert torch.equal(live, b.scores[:, :k] > NEG_INF)
    assert torch.allclose(a.scores[:, :k][live], b.scores[:, :k][live], atol=1e-4)


@pytest.fixture(scope="module")
def paths(model, semantic_ids):
    return {d: Recommender(model, semantic_ids.codes, decoding=d) for d in Decoding}


@pytest.mark.parametrize("decoding", [Decoding.shared, Decoding.cached])
@pytest.mark.parametrize("width", [4, 16, 64])
@pytest.mark.parametrize("exclude", [True, False])
def test_fast_paths_return_the_reference_beams(paths, histories, decoding, width, exclude):
    ref, fast = paths[Decoding.naive], paths[decoding]
    widths = ref.widths(width, k=4)
    seen = histories if exclude else None
    assert_same_beams(ref.search(histories, widths, seen), fast.search(histories, widths, seen))


def test_cached_step_equals_recomputing_the_prefix(model, recommender, histories):
    """`extend` over the levels, cache rows reordered between them, matches `step`."""
    ctx = recommender.context(histories)
    B, W = len(histories), 3
    rng = np.random.default_rng(0)
    L = model.cfg.n_levels
    tokens = torch.from_numpy(rng.integers(0, 8, size=(B, W, L - 1)))
    with torch.no_grad():
        log_probs, cache, hidden = model.extend(*ctx, None, torch.zeros(B, 1, dtype=torch.long))
        assert torch.allclose(log_probs, model.step(*ctx, tokens[:, :1, :0]), atol=1e-5)
        # the first level's hidden state is the BOS state the dense head re-ranks with
        assert torch.allclose(hidden[:, 0], model.bos_state(*ctx), atol=1e-5)
        cache = cache.repeat_interleave(W, dim=2)  # every beam starts from BOS
        for t in range(1, L):
            log_probs, cache, _ = model.extend(*ctx, cache, tokens[:, :, t - 1])
            assert torch.allclose(log_probs, model.step(*ctx, tokens[:, :, :t]), atol=1e-5)
            assert cache.shape[4] == t + 1


def test_requests_of_different_widths_batch_together(recommender, histories):
    schedules = [recommender.widths(w, k=4) for w in (4, 16, 8, 64)]
    together = recommender.search(histories, torch.tensor(schedules), histories)
    for b, h in enumerate(histories):
        alone = recommender.search([h], schedules[b], [h])
        W = schedules[b][-1]
        assert_same_beams(alone, BeamState(*(x[b : b + 1, :W] for x in _fields(together))))
        assert (together.scores[b, W:] == NEG_INF).all()  # beams beyond its width are empty


def _fields(s):
    return s.tokens, s.nodes, s.scores, s.parents


def test_precut_keeps_exactly_the_global_top_width():
    """A beam step ranks each beam's best min(width, K) codes only; same result as ranking all."""
    torch.manual_seed(0)
    B, W, K, width = 3, 6, 40, 5
    state = BeamState(
        torch.zeros(B, W, 1, dtype=torch.long),
        torch.zeros(B, W, dtype=torch.long),
        torch.randn(B, W),
        torch.zeros(B, W, dtype=torch.long),
    )
    children = torch.arange(K)[None].clone()  # one node, every code valid
    children[0, ::7] = -1  # some invalid codes
    log_probs = torch.randn(B, W, K).log_softmax(-1)
    out = beam_step(state, log_probs, children[state.nodes], torch.full((B,), width))
    total = (state.scores[..., None] + log_probs).masked_fill(children[0] < 0, NEG_INF)
    expected = total.view(B, W * K).topk(width, dim=1)
    assert torch.equal(out.scores, expected.values)
    assert torch.equal(out.parents, expected.indices // K)
    assert torch.equal(out.tokens[..., -1], expected.indices % K)


def reference_search(step, trie, widths):
    """Beam search as written in a textbook: rank all W·K candidates at every level."""
    tokens, nodes, scores = (
        torch.zeros(1, 0, dtype=torch.long),
        torch.zeros(1).long(),
        torch.zeros(1),
    )
    for level, width in enumerate(widths):
        log_probs = step(tokens[None], None)[0]  # (W, K)
        child = trie.levels[level](nodes[None])[0]  # (W, K)
        total = (scores[:, None] + log_probs).masked_fill(child < 0, NEG_INF).flatten()
        scores, flat = total.topk(min(width, total.numel()))
        K = log_probs.shape[1]
        tokens = torch.cat([tokens[flat // K], (flat % K)[:, None]], 1)
        nodes = child.flatten()[flat]
    return nodes, scores


def test_precut_search_equals_ranking_every_candidate_on_a_wide_codebook():
    """Codebook 64 ≫ width 8: the pre-cut is active at every level and changes no beam."""
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 64, size=(400, 3)), axis=0)
    trie = TrieTensors.from_trie(PrefixTrie.build(codes, (64, 64, 64)))
    table = torch.randn(64, 64).log_softmax(-1)

    def step(tokens, parents):
        B, W, t = tokens.shape
        prev = tokens[..., -1] if t else torch.zeros(B, W, dtype=torch.long)
        return table[prev]  # (B, W, 64)

    out = beam_search(step, trie, [4, 8, 8], 1)
    nodes, scores = reference_search(step, trie, [4, 8, 8])
    assert out.nodes[0].tolist() == nodes.tolist()
    assert torch.allclose(out.scores[0], scores)


def test_item_context_table_equals_encoding_the_history(model, recommender, histories):
    """The per-item K/V table gives the context `encode_context` computes."""
    from model.decoding import ItemContext
    from model.recommender import gather_windows, ragged

    items, mask = gather_windows(*ragged(histories), model.cfg.max_history)
    table = ItemContext(model, recommender.codes)
    with torch.no_grad():
        expected = recommender.context(histories)
        got = table(torch.from_numpy(items), torch.from_numpy(mask))
    for a, b in zip(expected, got, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def test_item_context_built_in_chunks_equals_one_pass(model, recommender):
    """Chunking the per-item table (to bound memory at large catalogs) changes no value."""
    from model.decoding import ItemContext

    whole = ItemContext(model, recommender.codes, chunk=10**9)
    chunked = ItemContext(model, recommender.codes, chunk=7)
    assert torch.allclose(whole.k, chunked.k, atol=1e-6)
    assert torch.allclose(whole.v, chunked.v, atol=1e-6)
