"""The set of valid semantic IDs as a prefix trie, stored as dense per-level child tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PrefixTrie:
    """Valid continuations of every ID prefix.

    Level ℓ has one node per distinct prefix of length ℓ (level 0: the root).
    `children[ℓ]` (nodes_ℓ, K_ℓ) maps a node and a code to the child node at level ℓ+1,
    or, at the last level, to the item index; −1 marks an invalid code.
    `item_node[ℓ]` (N,) is the node of each item's length-ℓ prefix, and
    `leaf_counts[ℓ]` (nodes_ℓ,) the number of items below each node.
    Dense tables suit small codebooks (ml-100k: 32×32×32×32 → 1,600 nodes a level).
    """

    children: list[np.ndarray]
    item_node: list[np.ndarray]
    leaf_counts: list[np.ndarray]

    @property
    def n_levels(self) -> int:
        return len(self.children)

    @property
    def n_items(self) -> int:
        return len(self.item_node[0])

    @classmethod
    def build(cls, codes: np.ndarray, codebook_sizes: tuple[int, ...]) -> PrefixTrie:
        """codes (N, L) unique per item → trie. Vectorised: one np.unique per level."""
        N, L = codes.shape
        if len(np.unique(codes, axis=0)) != N:
            raise ValueError("semantic IDs must be unique per item")
        item_node = []
        for level in range(L):
            if level == 0:
                node = np.zeros(N, dtype=np.int64)
            else:
                node = np.unique(codes[:, :level], axis=0, return_inverse=True)[1].reshape(-1)
            item_node.append(node)
        children, leaf_counts = [], []
        for level in range(L):
            n_nodes = int(item_node[level].max()) + 1
            table = np.full((n_nodes, codebook_sizes[level]), -1, dtype=np.int64)
            child = item_node[level + 1] if level + 1 < L else np.arange(N)
            table[item_node[level], codes[:, level]] = child
            children.append(table)
            leaf_counts.append(np.bincount(item_node[level], minlength=n_nodes))
        return cls(children, item_node, leaf_counts)

    def valid_next(self, prefix: tuple[int, ...] | list[int]) -> np.ndarray:
        """Codes that may follow `prefix` (a reference path for tests and debugging)."""
        node = 0
        for level, code in enumerate(prefix):
            node = int(self.children[level][node, code])
            if node < 0:
                return np.empty(0, dtype=np.int64)
        return np.flatnonzero(self.children[len(prefix)][node] >= 0)
