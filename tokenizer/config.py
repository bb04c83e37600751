"""Tokenizer hyper-parameters: a frozen dataclass that serializes into the bundle manifest."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class TokenizerConfig:
    """How item embeddings become semantic IDs.

    `codebook_size=None` derives the size from the item count, and past ~6·10⁶ items adds
    levels beyond `n_levels` (`derive_codebook_shape`); the fitted config records the levels used.
    `dedup_size` is the vocabulary of the extra disambiguation level that makes every ID
    unique (TIGER's 4th token); `None` sizes it from the largest collision group.
    """

    kind: Literal["rq-kmeans", "rq-vae"] = "rq-kmeans"
    n_levels: int = 3
    codebook_size: int | None = None
    dedup_size: int | None = None
    balanced: bool = True
    kmeans_iters: int = 20
    balance_iters: int = 5
    rqvae_steps: int = 2000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerConfig:
        return cls(**d)


MAX_CODEBOOK_SIZE = 256


def _power_of_two_size(n_items: int, n_levels: int) -> int:
    root = max(n_items, 1) ** (1.0 / n_levels)
    return int(max(8, 2 ** round(math.log2(2 * root))))


def derive_codebook_size(n_items: int, n_levels: int) -> int:
    """A power of two near twice the L-th root of N, clamped to [8, 256].

    Twice the root leaves the deepest level room to separate most items, so the
    disambiguation level stays short; ml-100k (1,682 items, 3 levels) gets 32.
    """
    return min(MAX_CODEBOOK_SIZE, _power_of_two_size(n_items, n_levels))


def derive_codebook_shape(n_items: int, min_levels: int) -> tuple[int, int]:
    """(levels, codes per level): `derive_codebook_size`, with levels added beyond `min_levels`
    while the size would pass 256.

    Clamping the size alone leaves 256³ ≈ 1.7·10⁷ IDs for any catalog: past ~6·10⁶ items
    collisions, and the disambiguation level that numbers the largest group, would grow with
    N. A level more multiplies the room by the codebook size (10⁷ items: 4 × 128).
    """
    levels = min_levels
    while _power_of_two_size(n_items, levels) > MAX_CODEBOOK_SIZE:
        levels += 1
    return levels, derive_codebook_size(n_items, levels)
