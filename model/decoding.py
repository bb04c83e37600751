"""How a batch of requests is decoded: the reference path and the fast ones, behind one enum.

Every path feeds the same pure `beam_search` and returns the same beams (tests check it):

- `naive`: the decoder-only reference. One request at a time; at every level each beam
  recomputes its own copy of the context K/V and its whole target prefix.
- `shared`: context K/V once per request, read in place by all its beams (no copies);
  the target prefix is still recomputed at every level.
- `cached`: `shared` plus a self-attention KV cache of the target prefix, so each level
  computes one new token per beam, and the context K/V gathered from a table computed once
  per catalog item (`ItemContext`). The fastest eager path, and the one ONNX Runtime runs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import torch
from torch import Tensor

from model.beam_search import StepFn
from model.lazy_decoder import LazyDecoder

Context = tuple[Tensor, Tensor, Tensor]
"""ctx_k, ctx_v (B, Hkv, T, D) and ctx_bias (B, Hkv, 1, T)."""


class Decoding(StrEnum):
    naive = "naive"
    shared = "shared"
    cached = "cached"


class Runner(Protocol):
    """Executes the cached step: PyTorch eager here, ONNX Runtime in `model.onnx_runtime`."""

    def extend(
        self, ctx: Context, cache: Tensor | None, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`LazyDecoder.extend`: log_probs (B, W, K_t), cache (n_layers, 2, B*W, H, t+1, D)
        and the newest position's hidden state (B, W, C)."""
        ...


class EagerRunner:
    """The cached step in PyTorch eager."""

    def __init__(self, model: LazyDecoder) -> None:
        self.model = model

    def extend(
        self, ctx: Context, cache: Tensor | None, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.extend(*ctx, cache, last)


class ItemContext:
    """The context K/V of every catalog item, computed once.

    The context processor reads each history item on its own (no attention among history
    items, order only through the recency bias), so a request's context is a gather of its
    items' rows: the per-request projection becomes an index. Tables (N, Hkv, D).
    """

    def __init__(self, model: LazyDecoder, codes: Tensor, chunk: int = 1 << 16) -> None:
        N = codes.shape[0]
        self.model = model
        ks, vs = [], []
        # In chunks: the intermediates are (chunk, L, C), not (N, L, C) (2 GB at 10⁶ items).
        with torch.inference_mode():
            for lo in range(0, N, chunk):
                items = torch.arange(lo, min(N, lo + chunk))
                k, v = model.context(codes[None, items], items[None])  # (1, Hkv, n, D)
                ks.append(k[0].transpose(0, 1))  # (n, Hkv, D)
                vs.append(v[0].transpose(0, 1))
        self.k = torch.cat(ks).contiguous()  # (N, Hkv, D)
        self.v = torch.cat(vs).contiguous()  # (N, Hkv, D)

    def __call__(self, hist_items: Tensor, hist_mask: Tensor) -> Context:
        """Left-padded item windows and their mask (B, T) → ctx_k, ctx_v, ctx_bias."""
        ctx_k = self.k[hist_items].transpose(1, 2).contiguous()  # (B, Hkv, T, D)
        ctx_v = self.v[hist_items].transpose(1, 2).contiguous()  # (B, Hkv, T, D)
        return ctx_k, ctx_v, self.model.context.window_bias(hist_mask)


def naive_step(model: LazyDecoder, hist_codes: Tensor, hist_items: Tensor, mask: Tensor) -> StepFn:
    """One request (hist_* (1, T[, L])): every beam re-encodes the context at every level."""

    def step(tokens: Tensor, parents: Tensor) -> Tensor:
        _, W, t = tokens.shape
        ctx = model.encode_context(
            hist_codes.expand(W, -1, -1), hist_items.expand(W, -1), mask.expand(W, -1)
        )  # W copies: (W, Hkv, T, D)
        return model.step(*ctx, tokens.view(W, 1, t)).view(1, W, -1)  # (1, W, K)

    return step


def shared_step(model: LazyDecoder, ctx: Context) -> StepFn:
    """All beams of a request read its context in place; the prefix is recomputed."""

    def step(tokens: Tensor, parents: Tensor) -> Tensor:
        return model.step(*ctx, tokens)

    return step


class CachedStep:
    """The cached `StepFn`: one new token per beam and level; the cache rows follow their
    beams (`parents`). `bos` keeps the first level's hidden state (B, C), the BOS state the
    dense head re-ranks with."""

    def __init__(self, runner: Runner, ctx: Context) -> None:
        self.runner, self.ctx = runner, ctx
        self.cache: Tensor | None = None
        self.bos: Tensor | None = None

    def __call__(self, tokens: Tensor, parents: Tensor) -> Tensor:
        B, W, _ = tokens.shape
        cache = self.cache
        if cache is not None:
            W_prev = cache.shape[2] // B
            rows = (parents + W_prev * torch.arange(B)[:, None]).view(B * W)  # (B*W,)
            cache = cache.index_select(2, rows)  # (n_layers, 2, B*W, H, t, D)
        last = tokens[..., -1] if cache is not None else torch.zeros(B, W, dtype=torch.long)
        log_probs, self.cache, hidden = self.runner.extend(self.ctx, cache, last)
        if cache is None:
            self.bos = hidden[:, 0]  # level 0 decodes BOS alone (W = 1)
        return log_probs
