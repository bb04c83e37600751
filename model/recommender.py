"""Batched recommendation from item-index histories: context once, constrained beam search, top-k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.beam_search import BeamState, TrieTensors, beam_schedule, beam_search
from model.lazy_decoder import LazyDecoder
from tokenizer.trie import PrefixTrie


def gather_windows(
    flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded windows of a ragged array: row b is flat[starts[b]:ends[b]], last max_len kept.

    Returns items (B, T) and mask (B, T) with T = min(max_len, longest row); padding is 0.
    """
    T = int(min(max_len, (ends - starts).max(initial=1)))
    idx = ends[:, None] - T + np.arange(T)[None]  # (B, T)
    mask = idx >= starts[:, None]
    return np.where(mask, flat[np.clip(idx, 0, None)], 0), mask


def ragged(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """List of 1-d arrays → (flat, starts, ends)."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ends = np.cumsum(lengths)
    flat = np.concatenate(rows) if len(rows) else np.empty(0, dtype=np.int64)
    return flat.astype(np.int64), ends - lengths, ends


def pad_rows(rows: list[np.ndarray], fill: int = -1) -> Tensor:
    """List of 1-d int arrays → (B, S) tensor padded with `fill`."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), fill, dtype=np.int64)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return torch.from_numpy(out)


def rerank(state: BeamState, bonus: Tensor, alpha: float) -> BeamState:
    """Final beams re-ordered by log-prob + alpha · bonus (B, W); empty beams stay last."""
    scores = state.scores + alpha * bonus  # −inf stays −inf
    scores, order = scores.sort(dim=1, descending=True)
    tokens = state.tokens.gather(1, order[..., None].expand_as(state.tokens))
    return BeamState(tokens, state.nodes.gather(1, order), scores)


@dataclass
class Recommendations:
    """Top-k per request: items (B, k) indices (−1 where fewer exist), scores (B, k), codes (B, k, L)."""

    items: np.ndarray
    scores: np.ndarray
    codes: np.ndarray


class Recommender:
    """The model plus the catalog's codes and trie; one call serves a batch of requests."""

    def __init__(
        self, model: LazyDecoder, codes: np.ndarray, trie: PrefixTrie | None = None
    ) -> None:
        self.model = model.eval()
        self.codes = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))  # (N, L)
        self.trie = TrieTensors.from_trie(trie or PrefixTrie.build(codes, model.cfg.codebook_sizes))
        self.max_history = model.cfg.max_history

    @property
    def n_items(self) -> int:
        return len(self.codes)

    def widths(self, beam_width: int, k: int) -> list[int]:
        return beam_schedule(beam_width, self.trie.n_levels, self.model.cfg.codebook_sizes, k)

    def context(self, histories: list[np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
        """Non-empty item-index histories → ctx_k, ctx_v (B, Hkv, T, D), ctx_bias (B, Hkv, 1, T)."""
        items, mask = gather_windows(*ragged(histories), self.max_history)
        items_t = torch.from_numpy(items)
        return self.model.encode_context(self.codes[items_t], items_t, torch.from_numpy(mask))

    @torch.inference_mode()
    def search(
        self,
        histories: list[np.ndarray],
        widths: list[int],
        exclude: list[np.ndarray] | None = None,
    ) -> BeamState:
        """Constrained beam search for each history; `exclude` rows are never returned."""
        ctx_k, ctx_v, ctx_bias = self.context(histories)

        def step(tokens: Tensor) -> Tensor:
            return self.model.step(ctx_k, ctx_v, ctx_bias, tokens)

        seen = pad_rows(exclude) if exclude is not None else None
        state = beam_search(step, self.trie, widths, len(histories), seen)
        alpha = self.model.cfg.dense_alpha
        if alpha and getattr(self.model, "dense", None) is not None:
            dense = self.model.dense_log_probs(ctx_k, ctx_v, ctx_bias)  # (B, N)
            state = rerank(state, dense.gather(1, state.nodes.clamp(min=0)), alpha)
        return state

    def recommend(
        self, histories: list[np.ndarray], k: int, beam_width: int, exclude_seen: bool = True
    ) -> Recommendations:
        """Top-k items per history; with `exclude_seen`, items in the history are skipped."""
        state = self.search(
            histories, self.widths(beam_width, k), histories if exclude_seen else None
        )
        items = state.nodes[:, :k].numpy()
        scores = state.scores[:, :k].numpy()
        codes = state.tokens[:, :k].numpy()
        return Recommendations(items, scores, codes)
