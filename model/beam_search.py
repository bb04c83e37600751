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
    widths: Tensor,
    available: Tensor | None = None,
) -> BeamState:
    """Extend every beam by one code and keep the best `widths[b]` beams of request b.

    log_probs (B, W, K); children (nodes, K) of this level; widths (B,); available
    (B, nodes_next) or None. Each beam first keeps only its own best min(width, K) codes
    (the pre-cut: no beam can place more children than that in the global top-width), so
    the global selection ranks W·min(width, K) candidates instead of W·K.
    """
    B, W, K = log_probs.shape
    width = int(widths.max())
    alive = state.scores > NEG_INF  # (B, W)
    child = children[state.nodes.clamp(min=0)]  # (B, W, K)
    valid = (child >= 0) & alive[..., None]
    if available is not None:
        valid &= available.gather(1, child.clamp(min=0).view(B, W * K)).view(B, W, K)
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
        available = unseen_nodes(trie, level, seen) if seen is not None else None
        state = beam_step(state, log_probs, trie.children[level], widths[:, level], available)
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
