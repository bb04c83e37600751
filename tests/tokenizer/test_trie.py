"""The prefix trie allows exactly the continuations that lead to real items."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@st.composite
def catalogs(draw):
    """Codebook sizes and a set of unique codes over them (any shape a catalog can take)."""
    sizes = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    space = list(itertools.product(*(range(s) for s in sizes)))
    chosen = draw(st.lists(st.sampled_from(space), min_size=1, max_size=len(space), unique=True))
    return sizes, np.array(chosen, dtype=np.int64).reshape(len(chosen), len(sizes))


def walk(trie: PrefixTrie, code: tuple[int, ...]) -> int:
    """The item a full code leads to through the child tables (-1: not admitted)."""
    node = 0
    for level, c in enumerate(code):
        node = int(trie.dense(level)[node, c])
        if node < 0:
            return -1
    return node


@settings(max_examples=200, deadline=None)
@given(catalogs())
def test_the_trie_admits_exactly_the_catalogs_ids(catalog):
    sizes, codes = catalog
    trie = PrefixTrie.build(codes, sizes)
    index = {tuple(c): i for i, c in enumerate(codes.tolist())}
    for code in itertools.product(*(range(s) for s in sizes)):
        assert walk(trie, code) == index.get(code, -1)  # every ID to its item, nothing else
    assert trie.leaf_counts[0].tolist() == [len(codes)]
