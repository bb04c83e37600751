"""The set of valid semantic IDs as a prefix trie, each level's edges in CSR form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PrefixTrie:
    """Valid continuations of every ID prefix.

    Level ℓ has one node per distinct prefix of length ℓ (level 0: the root). Its edges are
    in CSR form, sorted by node, then code: node n's valid codes are
    `edge_codes[ℓ][indptr[ℓ][n]:indptr[ℓ][n+1]]`, each leading to `edge_child[ℓ][…]`, a node
    at level ℓ+1 or, at the last level, the item index. Memory is O(N) per level whatever the
    codebook sizes: a dense (nodes × K) table would hold N·K entries at the disambiguation
    level (2 GiB of int64 at 10⁶ items and K = 256). `dense(ℓ)` builds that table where wanted.
    `item_node[ℓ]` (N,) is the node of each item's length-ℓ prefix, and `leaf_counts[ℓ]`
    (nodes_ℓ,) the number of items below each node.
    """

    codebook_sizes: tuple[int, ...]
    indptr: list[np.ndarray]
    edge_codes: list[np.ndarray]
    edge_child: list[np.ndarray]
    item_node: list[np.ndarray]
    leaf_counts: list[np.ndarray]

    @property
    def n_levels(self) -> int:
        return len(self.indptr)

    @property
    def n_items(self) -> int:
        return len(self.item_node[0])

    def n_nodes(self, level: int) -> int:
        return len(self.indptr[level]) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the trie's arrays."""
        parts = [*self.indptr, *self.edge_codes, *self.edge_child, *self.item_node]
        return sum(a.nbytes for a in [*parts, *self.leaf_counts])

    @classmethod
    def build(cls, codes: np.ndarray, codebook_sizes: tuple[int, ...]) -> PrefixTrie:
        """codes (N, L) unique per item → trie. Vectorised: one sort per level.

        A level-ℓ+1 node is a distinct key node_ℓ · K_ℓ + code_ℓ; numbering the sorted keys
        orders nodes by (parent, code), i.e. lexicographically by prefix, and makes each
        level's edge list already sorted for CSR.
        """
        N, L = codes.shape
        codes = np.asarray(codes, dtype=np.int64)
        node = np.zeros(N, dtype=np.int64)
        n_nodes = 1
        indptr, edge_codes, edge_child, item_node, leaf_counts = [], [], [], [], []
        for level in range(L):
            item_node.append(node)
            leaf_counts.append(np.bincount(node, minlength=n_nodes))
            key = node * codebook_sizes[level] + codes[:, level]  # (N,)
            if level + 1 < L:
                keys, next_node = np.unique(key, return_inverse=True)
                child = np.arange(len(keys), dtype=np.int64)
            else:  # the last level's edges lead to the items themselves
                child = np.argsort(key, kind="stable")
                keys = key[child]
                if (keys[1:] == keys[:-1]).any():
                    raise ValueError("semantic IDs must be unique per item")
            parent = keys // codebook_sizes[level]
            indptr.append(np.concatenate([[0], np.cumsum(np.bincount(parent, minlength=n_nodes))]))
            edge_codes.append(keys % codebook_sizes[level])
            edge_child.append(child)
            if level + 1 < L:
                node, n_nodes = next_node.reshape(-1).astype(np.int64), len(keys)
        return cls(tuple(codebook_sizes), indptr, edge_codes, edge_child, item_node, leaf_counts)

    def dense(self, level: int) -> np.ndarray:
        """Level ℓ as a dense table (nodes_ℓ, K_ℓ): the child of each node and code, or −1."""
        n = self.n_nodes(level)
        table = np.full((n, self.codebook_sizes[level]), -1, dtype=np.int64)
        parent = np.repeat(np.arange(n), np.diff(self.indptr[level]))
        table[parent, self.edge_codes[level]] = self.edge_child[level]
        return table

    def valid_next(self, prefix: tuple[int, ...] | list[int]) -> np.ndarray:
        """Codes that may follow `prefix` (a reference path for tests and debugging)."""
        node = 0
        for level, code in enumerate(prefix):
            lo, hi = self.indptr[level][node], self.indptr[level][node + 1]
            at = lo + int(np.searchsorted(self.edge_codes[level][lo:hi], code))
            if at == hi or self.edge_codes[level][at] != code:
                return np.empty(0, dtype=np.int64)
            node = int(self.edge_child[level][at])
        level = len(prefix)
        return self.edge_codes[level][self.indptr[level][node] : self.indptr[level][node + 1]]
