"""The trie's CSR levels answer exactly what dense tables did, in memory linear in the items."""

import numpy as np
import pytest
import torch

from model.beam_search import TrieTensors, dedup_rows, unseen_children
from model.recommender import Recommender, pad_rows
from tokenizer.trie import PrefixTrie


def random_codes(n, sizes, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.unique(np.stack([rng.integers(0, k, size=2 * n) for k in sizes], 1), axis=0)
    return codes[rng.permutation(len(codes))[:n]]


@pytest.mark.parametrize("seed", [0, 1])
def test_csr_lookup_equals_the_dense_table(seed):
    sizes = (4, 6, 5, 7)
    trie = PrefixTrie.build(random_codes(300, sizes, seed), sizes)
    csr = TrieTensors.from_trie(trie, dense_limit=0)
    rng = np.random.default_rng(seed)
    for level in range(trie.n_levels):
        assert csr.levels[level].table is None
        nodes = torch.from_numpy(rng.integers(0, trie.n_nodes(level), size=(3, 9)))
        expected = torch.from_numpy(trie.dense(level))[nodes]  # (3, 9, K)
        assert torch.equal(csr.levels[level](nodes), expected)


@pytest.mark.parametrize("per_node_limit", [0, 1 << 20])
def test_unseen_children_equals_counting_every_node(per_node_limit):
    """Both ways give the reference per-node answer: a child is available while some item
    below it is unseen."""
    sizes = (3, 4, 5)
    codes = random_codes(40, sizes)
    trie = PrefixTrie.build(codes, sizes)
    tt = TrieTensors.from_trie(trie, per_node_limit=per_node_limit)
    rng = np.random.default_rng(0)
    n = len(codes)
    seen = dedup_rows(pad_rows([rng.choice(n, size=s, replace=False) for s in (0, 5, 20, n - 1)]))
    for level in range(trie.n_levels):
        below, leaves = tt.below[level], tt.leaves[level]
        counts = torch.zeros(len(seen), len(leaves), dtype=torch.long)
        counts.scatter_add_(1, below[seen.clamp(min=0)], (seen >= 0).long())
        by_node = counts < leaves  # (B, nodes): the reference, O(nodes) per request
        child = torch.from_numpy(rng.integers(-1, len(leaves), size=(len(seen), 6, sizes[level])))
        got = unseen_children(tt, level, seen, child)
        expected = by_node.gather(1, child.clamp(min=0).view(len(seen), -1)).view_as(child)
        real = child >= 0
        assert torch.equal(got[real], expected[real])


@pytest.mark.parametrize("width", [4, 16, 64])
@pytest.mark.parametrize("exclude", [True, False])
def test_beam_search_is_identical_with_csr_levels(model, semantic_ids, histories, width, exclude):
    dense = Recommender(model, semantic_ids.codes)
    csr = Recommender(model, semantic_ids.codes)
    csr.trie = TrieTensors.from_trie(
        PrefixTrie.build(semantic_ids.codes, semantic_ids.codebook_sizes),
        dense_limit=0,
        per_node_limit=0,
    )
    assert all(level.table is not None for level in dense.trie.levels)
    widths = dense.widths(width, k=4)
    seen = histories if exclude else None
    a, b = dense.search(histories, widths, seen), csr.search(histories, widths, seen)
    assert torch.equal(a.nodes, b.nodes) and torch.equal(a.tokens, b.tokens)
    assert torch.equal(a.scores, b.scores)


def test_trie_memory_does_not_grow_with_the_codebook_size():
    """5,000 items under codebooks of 4,096: dense tables would take 5,000 × 4,096 × 8 bytes
    (164 MB) at the last level; the trie holds a few arrays of N entries."""
    codes = random_codes(5000, (4096, 4096))
    trie = PrefixTrie.build(codes, (4096, 4096))
    tt = TrieTensors.from_trie(trie)
    assert trie.nbytes < 20 * 8 * len(codes)
    assert tt.nbytes < 20 * 8 * len(codes)
    assert trie.nbytes == PrefixTrie.build(codes, (1 << 20, 1 << 20)).nbytes
