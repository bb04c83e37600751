"""Batched recommendation from item-index histories: context once, constrained beam search, top-k."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.beam_search import NEG_INF, BeamState, TrieTensors, beam_schedule, beam_search
from model.decoding import (
    CachedStep,
    Context,
    Decoding,
    EagerRunner,
    ItemContext,
    Runner,
    naive_step,
    shared_step,
)
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
    return BeamState(tokens, state.nodes.gather(1, order), scores, state.parents.gather(1, order))


@dataclass
class Recommendations:
    """Top-k per request: items (B, k) indices (−1 where fewer exist), scores (B, k), codes (B, k, L)."""

    items: np.ndarray
    scores: np.ndarray
    codes: np.ndarray


def concat_beams(states: list[BeamState]) -> BeamState:
    """Final beams of separate searches → one state, narrower ones padded with empty beams."""
    W = max(s.scores.shape[1] for s in states)

    def pad(x: Tensor, fill: float) -> Tensor:
        extra = W - x.shape[1]
        return torch.cat([x, x.new_full((x.shape[0], extra, *x.shape[2:]), fill)], 1)

    return BeamState(
        torch.cat([pad(s.tokens, 0) for s in states]),
        torch.cat([pad(s.nodes, -1) for s in states]),
        torch.cat([pad(s.scores, NEG_INF) for s in states]),
        torch.cat([pad(s.parents, 0) for s in states]),
    )


class Recommender:
    """The model plus the catalog's codes and trie; one call serves a batch of requests.

    `decoding` picks the path (see `model.decoding`); `runner` executes the cached path
    (PyTorch eager by default, or ONNX Runtime); `dtype` is the model's compute precision
    (see `model.precision`; scores stay float32).
    """

    def __init__(
        self,
        model: LazyDecoder,
        codes: np.ndarray,
        trie: PrefixTrie | None = None,
        decoding: Decoding | None = None,
        runner: Runner | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if next(model.parameters()).dtype != dtype:  # a copy: the caller's model stays as is
            model = copy.deepcopy(model).to(dtype)
        self.model = model.eval()
        self.codes = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))  # (N, L)
        self.trie = TrieTensors.from_trie(trie or PrefixTrie.build(codes, model.cfg.codebook_sizes))
        self.max_history = model.cfg.max_history
        # The KV-cached path is the lazy decoder's; the comparison architectures use `shared`.
        if decoding is None:
            decoding = Decoding.cached if isinstance(model, LazyDecoder) else Decoding.shared
        self.decoding = Decoding(decoding)
        self.runner = runner or EagerRunner(model)
        self.item_context = (
            ItemContext(model, self.codes) if self.decoding is Decoding.cached else None
        )

    @property
    def n_items(self) -> int:
        return len(self.codes)

    def widths(self, beam_width: int, k: int) -> list[int]:
        return beam_schedule(beam_width, self.trie.n_levels, self.model.cfg.codebook_sizes, k)

    def windows(self, histories: list[np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
        """Non-empty item-index histories → hist_codes (B, T, L), hist_items, hist_mask (B, T)."""
        items, mask = gather_windows(*ragged(histories), self.max_history)
        items_t = torch.from_numpy(items)
        return self.codes[items_t], items_t, torch.from_numpy(mask)

    def context(self, histories: list[np.ndarray]) -> Context:
        """Non-empty item-index histories → ctx_k, ctx_v (B, Hkv, T, D), ctx_bias (B, Hkv, 1, T)."""
        return self.model.encode_context(*self.windows(histories))

    @torch.inference_mode()
    def search(
        self,
        histories: list[np.ndarray],
        widths: list[int] | Tensor,
        exclude: list[np.ndarray] | None = None,
    ) -> BeamState:
        """Constrained beam search for each history; `exclude` rows are never returned.

        `widths`: one schedule for all, or one per history (B, L) (see `beam_search`).
        """
        seen = pad_rows(exclude) if exclude is not None else None
        B = len(histories)
        ctx: Context | None = None
        bos: Tensor | None = None  # the BOS state, where the search computed it
        if self.decoding is Decoding.naive:
            row_widths = torch.as_tensor(widths, dtype=torch.long).expand(B, -1)  # (B, L)
            state = concat_beams(
                [
                    beam_search(
                        naive_step(self.model, *self.windows([h])),
                        self.trie,
                        row_widths[b : b + 1],
                        1,
                        None if seen is None else seen[b : b + 1],
                    )
                    for b, h in enumerate(histories)
                ]
            )
        else:
            if self.decoding is Decoding.shared:
                ctx = self.context(histories)
                step = shared_step(self.model, ctx)
            else:
                assert self.item_context is not None
                items, mask = gather_windows(*ragged(histories), self.max_history)
                ctx = self.item_context(torch.from_numpy(items), torch.from_numpy(mask))
                step = CachedStep(self.runner, ctx)
            state = beam_search(step, self.trie, widths, B, seen)
            bos = step.bos if isinstance(step, CachedStep) else None
        alpha = self.model.cfg.dense_alpha
        if (
            alpha and getattr(self.model, "dense", None) is not None
        ):  # LIGER-style re-ranking of the final beams
            if bos is None:
                bos = self.model.bos_state(*(ctx or self.context(histories)))
            beam_items = state.nodes.clamp(min=0)  # the beam's items only, not all N (B, W)
            state = rerank(state, self.model.dense_scores(bos, beam_items), alpha)
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
