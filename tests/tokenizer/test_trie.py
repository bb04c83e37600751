"""The prefix trie allows exactly the continuations that lead to real items."""

import itertools

import numpy as np
import pytest

from tokenizer.trie import PrefixTrie


@pytest.mark.parametrize("seed", [0, 1])
def test_trie_allows_exactly_the_valid_continuations(seed):
    rng = np.random.default_rng(seed)
    sizes = (4, 3, 5)
    all_ids = np.array(list(itertools.product(*(range(s) for s in sizes))))
    codes = all_ids[rng.choice(len(all_ids), size=25, replace=False)]
    trie = PrefixTrie.build(codes, sizes)
    ids = {tuple(c) for c in codes.tolist()}
    for length in range(len(sizes)):
        for prefix in itertools.product(*(range(s) for s in sizes[:length])):
            expected = sorted({c[length] for c in ids if c[:length] == prefix})
            assert trie.valid_next(prefix).tolist() == expected


def test_last_level_maps_to_item_indices_and_counts_leaves():
    codes = np.array([[0, 1], [0, 0], [1, 1]])
    trie = PrefixTrie.build(codes, (2, 2))
    assert trie.dense(1)[trie.item_node[1]].tolist() == [[1, 0], [1, 0], [-1, 2]]
    assert trie.leaf_counts[1].tolist() == [2, 1]


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="unique"):
        PrefixTrie.build(np.array([[0, 1], [0, 1]]), (2, 2))
