"""Constrained beam search over semantic IDs: a pure function of a small state and a step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tokenizer.trie import PrefixTrie

NEG_INF = float("-inf")

StepFn = Callable[[Tensor], Tensor]
"""tokens (B, W, t) → log-probabilities (B, W, K_t) of the next level's code."""


@dataclass(frozen=True)
class TrieTensors:
    """The prefix trie as torch tensors, indexed by the level a beam is about to reach.

    `children[ℓ]` (nodes_ℓ, K_ℓ): child node at level ℓ+1 (the item at the last level) or −1.
    `below[ℓ]` (N,): each item's ancestor at level ℓ+1 (the item itself at the last level);
    `leaves[ℓ]` (nodes_ℓ+1,): how many items lie below that ancestor.
    """

    children: list[Tensor]
    below: list[Tensor]
    leaves: list[Tensor]

    @classmethod
    def from_trie(cls, trie: PrefixTrie) -> TrieTensors:
        _L, N = trie.n_levels, trie.n_items
        below = [*trie.item_node[1:], np.arange(N)]
        leaves = [*trie.leaf_counts[1:], np.ones(N, dtype=np.int64)]
        return cls(
            [torch.from_numpy(c) for c in trie.children],
            [torch.from_numpy(np.ascontiguousarray(b)) for b in below],
            [torch.from_numpy(np.ascontiguousarray(c)) for c in leaves],
        )

    @property
    def n_levels(self) -> int:
        return len(self.children)


@dataclass(frozen=True)
class BeamState:
    """Beams of B requests: codes so far (B, W, t), trie node (B, W), summed log-prob (B, W).

    A beam with score −inf is empty (fewer valid continuations than beams).
    """

    tokens: Tensor
    nodes: Tensor
    scores: Tensor

    @classmethod
    def start(cls, batch: int) -> BeamState:
        return cls(
            torch.zeros(batch, 1, 0, dtype=torch.long),
            torch.zeros(batch, 1, dtype=torch.long),
            torch.zeros(batch, 1),
        )


def dedup_rows(items: Tensor) -> Tensor:
    """(B, S) item indices padded with −1 → the same with repeats within a row set to −1."""
    s, _ = items.sort(dim=1)
    repeat = torch.zeros_like(s, dtype=torch.bool)
    repeat[:, 1:] = s[:, 1:] == s[:, :-1]
    return s.masked_fill(repeat, -1)


def unseen_nodes(trie: TrieTensors, level: int, seen: Tensor) -> Tensor:
    """(B, nodes) True where the level-ℓ+1 node still has an item the request has not seen.

    seen (B, S) holds distinct item indices per row, padded with −1.
    """
    B = seen.shape[0]
    anc = trie.below[level][seen.clamp(min=0)]  # (B, S)
    counts = torch.zeros(B, len(trie.leaves[level]), dtype=torch.long)
    counts.scatter_add_(1, anc, (seen >= 0).long())
    return counts < trie.leaves[level]


def beam_step(
    state: BeamState,
    log_probs: Tensor,
    children: Tensor,
    width: int,
    available: Tensor | None = None,
) -> BeamState:
    """Extend every beam by one code and keep the best `width` per request.

    log_probs (B, W, K); children (nodes, K) of this level; available (B, nodes_next) or None.
    """
    B, W, K = log_probs.shape
    alive = state.scores > NEG_INF  # (B, W)
    child = children[state.nodes.clamp(min=0)]  # (B, W, K)
    valid = (child >= 0) & alive[..., None]
    if available is not None:
        valid &= available.gather(1, child.clamp(min=0).view(B, W * K)).view(B, W, K)
    total = (state.scores[..., None] + log_probs).masked_fill(~valid, NEG_INF)  # (B, W, K)
    scores, flat = total.view(B, W * K).topk(min(width, W * K), dim=1)  # (B, W')
    beam, code = flat // K, flat % K
    t = state.tokens.shape[-1]
    prev = state.tokens.gather(1, beam[..., None].expand(-1, -1, t))  # (B, W', t)
    tokens = torch.cat([prev, code[..., None]], dim=-1)  # (B, W', t+1)
    nodes = child.view(B, W * K).gather(1, flat).masked_fill(scores == NEG_INF, -1)  # (B, W')
    return BeamState(tokens, nodes, scores)


def beam_search(
    step: StepFn, trie: TrieTensors, widths: list[int], batch: int, seen: Tensor | None = None
) -> BeamState:
    """Decode B requests level by level; returns the final beams, best first.

    `widths[ℓ]` beams survive level ℓ. `seen` (B, S) item indices (−1 padded) are never
    returned, and prefixes whose every item was seen are pruned as soon as they appear.
    At the end `nodes` are item indices (−1 for an empty beam).
    """
    if len(widths) != trie.n_levels:
        raise ValueError(f"need {trie.n_levels} beam widths, got {len(widths)}")
    seen = dedup_rows(seen) if seen is not None and seen.numel() else None
    state = BeamState.start(batch)
    for level, width in enumerate(widths):
        log_probs = step(state.tokens)  # (B, W, K_ℓ)
        available = unseen_nodes(trie, level, seen) if seen is not None else None
        state = beam_step(state, log_probs, trie.children[level], width, available)
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
