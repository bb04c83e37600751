"""Constrained beam search over semantic IDs: a pure function of a small state and a step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from tokenizer.trie import PrefixTrie

NEG_INF = float("-inf")


class StepFn(Protocol):
    """tokens (B, W, t) and parents (B, W) → log-probabilities (B, W, K_t) of the next code.

    `parents[b, w]` is the beam of the previous level that beam w extends, so a step that
    caches per-beam state can reorder it; a step that recomputes from `tokens` ignores it.
    """

    def __call__(self, tokens: Tensor, parents: Tensor) -> Tensor: ...


class LevelChildren:
    """One trie level as torch tensors: the children of the live beams' nodes, (B, W) → (B, W, K).

    A dense (nodes, K) table where it is small (one gather), otherwise the level's CSR edges,
    scattered per lookup into a (B, W, K) block: the work is the beams' own edges, O(W·K)
    per request, and memory O(nodes) instead of O(nodes·K).
    """

    def __init__(self, trie: PrefixTrie, level: int, dense_limit: int) -> None:
        self.n_codes = trie.codebook_sizes[level]
        self.table: Tensor | None = None
        empty = torch.empty(0, dtype=torch.long)
        self.indptr = self.codes = self.child = empty
        if trie.n_nodes(level) * self.n_codes <= dense_limit:
            self.table = torch.from_numpy(trie.dense(level))
        else:
            self.indptr = torch.from_numpy(trie.indptr[level])
            self.codes = torch.from_numpy(trie.edge_codes[level])
            self.child = torch.from_numpy(trie.edge_child[level])

    @property
    def nbytes(self) -> int:
        held = [self.indptr, self.codes, self.child]
        if self.table is not None:
            held.append(self.table)
        return sum(t.numel() * t.element_size() for t in held)

    def __call__(self, nodes: Tensor) -> Tensor:
        """nodes (B, W), each ≥ 0 → child node (or item) per code, −1 where invalid: (B, W, K)."""
        if self.table is not None:
            return self.table[nodes]
        flat = nodes.reshape(-1)  # (BW,)
        start = self.indptr[flat]
        count = self.indptr[flat + 1] - start  # (BW,) edges of each beam's node
        row = torch.repeat_interleave(torch.arange(len(flat)), count)  # (E,)
        first = torch.repeat_interleave(count.cumsum(0) - count, count)  # (E,)
        edge = start[row] + torch.arange(len(row)) - first  # (E,) index into the CSR arrays
        out = torch.full((len(flat), self.n_codes), -1, dtype=torch.long)
        out[row, self.codes[edge]] = self.child[edge]
        return out.view(*nodes.shape, self.n_codes)


DENSE_LIMIT = 1 << 20
"""Entries (nodes × K) up to which a level is held as a dense table: 8 MiB of int64. ml-100k's
levels (≤ 1,682 nodes × 32) are all dense; at 10⁶ items the two deepest levels are CSR."""


PER_NODE_LIMIT = 1 << 15
"""Levels with up to this many nodes count a request's seen items over every node (a few
cheap ops); deeper, larger levels check only the beams' real children (see `unseen_children`)."""


@dataclass(frozen=True)
class TrieTensors:
    """The prefix trie as torch tensors, indexed by the level a beam is about to reach.

    `levels[ℓ]` looks up the children of nodes at level ℓ (see `LevelChildren`).
    `below[ℓ]` (N,): each item's ancestor at level ℓ+1 (the item itself at the last level);
    `leaves[ℓ]` (nodes_ℓ+1,): how many items lie below that ancestor.
    `per_node_limit`: see `unseen_children`.
    """

    levels: list[LevelChildren]
    below: list[Tensor]
    leaves: list[Tensor]
    per_node_limit: int = PER_NODE_LIMIT

    @classmethod
    def from_trie(
        cls, trie: PrefixTrie, dense_limit: int = DENSE_LIMIT, per_node_limit: int = PER_NODE_LIMIT
    ) -> TrieTensors:
        N = trie.n_items
        below = [*trie.item_node[1:], np.arange(N)]
        leaves = [*trie.leaf_counts[1:], np.ones(N, dtype=np.int64)]
        return cls(
            [LevelChildren(trie, level, dense_limit) for level in range(trie.n_levels)],
            [torch.from_numpy(np.ascontiguousarray(b)) for b in below],
            [torch.from_numpy(np.ascontiguousarray(c)) for c in leaves],
            per_node_limit,
        )

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def nbytes(self) -> int:
        """Bytes held: the levels' tables plus the per-item ancestors and leaf counts."""
        per_item = sum(t.numel() * t.element_size() for t in [*self.below, *self.leaves])
        return per_item + sum(level.nbytes for level in self.levels)


@dataclass(frozen=True)
class BeamState:
    """Beams of B requests: codes so far (B, W, t), trie node (B, W), summed log-prob (B, W),
    and the beam of the previous level each one extends, parents (B, W).

    A beam with score −inf is empty (fewer valid continuations than beams).
    """

    tokens: Tensor
    nodes: Tensor
    scores: Tensor
    parents: Tensor

    @classmethod
    def start(cls, batch: int) -> BeamState:
        zeros = torch.zeros(batch, 1, dtype=torch.long)
        return cls(torch.zeros(batch, 1, 0, dtype=torch.long), zeros, torch.zeros(batch, 1), zeros)


def dedup_rows(items: Tensor) -> Tensor:
    """(B, S) item indices padded with −1 → the same with repeats within a row set to −1."""
    s, _ = items.sort(dim=1)
    repeat = torch.zeros_like(s, dtype=torch.bool)
    repeat[:, 1:] = s[:, 1:] == s[:, :-1]
    return s.masked_fill(repeat, -1)


def unseen_children(trie: TrieTensors, level: int, seen: Tensor, child: Tensor) -> Tensor:
    """(B, W, K) True where the child node still has an item the request has not seen.

    seen (B, S) holds distinct item indices per row, padded with −1; child (B, W, K) the
    level-ℓ+1 nodes the beams could reach (−1: none, its answer is moot). On a level of more
    than `trie.per_node_limit` nodes only real children are checked: each one's seen items are
    counted by binary search in the sorted ancestors of the seen items, O(children · log S)
    per request, where counting over every node is O(nodes), i.e. O(N) at the deepest levels.
    """
    B = seen.shape[0]
    n_nodes = len(trie.leaves[level])
    anc = trie.below[level][seen.clamp(min=0)]  # (B, S)
    flat = child.reshape(B, -1)  # (B, W*K)
    if n_nodes <= trie.per_node_limit:
        counts = torch.zeros(B, n_nodes, dtype=torch.long)
        counts.scatter_add_(1, anc, (seen >= 0).long())
        return (counts < trie.leaves[level]).gather(1, flat.clamp(min=0)).view_as(child)
    span = n_nodes + 1  # row b's keys are offset by b·span, so all rows share one sorted array
    anc = anc.masked_fill(seen < 0, -1) + 1  # 0: padding, never a real node
    keys = (anc.sort(dim=1).values + span * torch.arange(B)[:, None]).view(-1)  # (B*S,)
    b, j = (flat >= 0).nonzero(as_tuple=True)  # the real children only
    node = flat[b, j]
    query = node + 1 + b * span
    n_seen = torch.searchsorted(keys, query, right=True) - torch.searchsorted(keys, query)
    out = torch.ones_like(flat, dtype=torch.bool)
    out[b, j] = n_seen < trie.leaves[level][node]
    return out.view_as(child)


def beam_step(
    state: BeamState,
    log_probs: Tensor,
    child: Tensor,
    widths: Tensor,
    available: Tensor | None = None,
) -> BeamState:
    """Extend every beam by one code and keep the best `widths[b]` beams of request b.

    log_probs (B, W, K); child (B, W, K) the trie node each code leads to (−1: invalid);
    widths (B,); available (B, W, K) or None (False: every item below was seen). Each beam first keeps only its own best min(width, K) codes
    (the pre-cut: no beam can place more children than that in the global top-width), so
    the global selection ranks W·min(width, K) candidates instead of W·K.
    """
    B, W, K = log_probs.shape
    width = int(widths.max())
    alive = state.scores > NEG_INF  # (B, W)
    valid = (child >= 0) & alive[..., None]
    if available is not None:
        valid &= available
    total = (state.scores[..., None] + log_probs).masked_fill(~valid, NEG_INF)  # (B, W, K)
    cut = min(width, K)
    if cut < K:
        total, code = total.topk(cut, dim=2)  # (B, W, cut) best codes of each beam
        child = child.gather(2, code)  # (B, W, cut)
    else:
        code = torch.arange(K).expand(B, W, K)
    scores, flat = total.view(B, W * cut).topk(min(width, W * cut), dim=1)  # (B, W')
    rank = torch.arange(scores.shape[1])
    scores = scores.masked_fill(rank >= widths[:, None], NEG_INF)  # narrower requests
    parents = flat // cut  # (B, W')
    t = state.tokens.shape[-1]
    prev = state.tokens.gather(1, parents[..., None].expand(-1, -1, t))  # (B, W', t)
    new_code = code.reshape(B, W * cut).gather(1, flat)  # (B, W')
    tokens = torch.cat([prev, new_code[..., None]], dim=-1)  # (B, W', t+1)
    nodes = child.reshape(B, W * cut).gather(1, flat).masked_fill(scores == NEG_INF, -1)
    return BeamState(tokens, nodes, scores, parents)


def beam_search(
    step: StepFn,
    trie: TrieTensors,
    widths: list[int] | Tensor,
    batch: int,
    seen: Tensor | None = None,
) -> BeamState:
    """Decode B requests level by level; returns the final beams, best first.

    `widths` is one schedule for all requests, [W_0, W_1, …], or one per request (B, L):
    W_ℓ beams survive level ℓ. Requests of one batch may differ in width: the batch runs at
    the widest and narrower requests drop their extra beams (scored −inf, never returned).
    `seen` (B, S) item indices (−1 padded) are never returned, and prefixes whose every item
    was seen are pruned as soon as they appear. At the end `nodes` are item indices (−1 for
    an empty beam).
    """
    widths = torch.as_tensor(widths, dtype=torch.long).expand(batch, -1)  # (B, L)
    if widths.shape[1] != trie.n_levels:
        raise ValueError(f"need {trie.n_levels} beam widths, got {widths.shape[1]}")
    seen = dedup_rows(seen) if seen is not None and seen.numel() else None
    state = BeamState.start(batch)
    for level in range(trie.n_levels):
        log_probs = step(state.tokens, state.parents)  # (B, W, K_ℓ)
        child = trie.levels[level](state.nodes.clamp(min=0))  # (B, W, K_ℓ)
        available = unseen_children(trie, level, seen, child) if seen is not None else None
        state = beam_step(state, log_probs, child, widths[:, level], available)
    return state


def beam_schedule(
    final_width: int, n_levels: int, codebook_sizes: tuple[int, ...], k: int
) -> list[int]:
    """Per-level widths growing with depth: W/4, W/2, W, W, … (never below k, never above
    the number of prefixes that level can have)."""
    widths, reachable = [], 1
    for level in range(n_levels):
        reachable *= codebook_sizes[level]
        share = final_width >> max(0, n_levels - 2 - level)
        widths.append(int(min(reachable, max(k, share))))
    return widths
