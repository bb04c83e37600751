"""Unique semantic IDs: a disambiguation level numbers the items that share a code (TIGER)."""

from __future__ import annotations

import numpy as np


def group_ranks(codes: np.ndarray, order_key: np.ndarray | None = None) -> np.ndarray:
    """Rank of each item among the items sharing its code tuple, 0 for the first.

    Within a group items are ranked by `order_key` (ascending), then by index.
    """
    n = len(codes)
    keys = [np.arange(n)] if order_key is None else [np.arange(n), order_key]
    order = np.lexsort((*keys, *codes.T[::-1]))  # primary: codes left to right
    sorted_codes = codes[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (sorted_codes[1:] != sorted_codes[:-1]).any(axis=1)
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - group_start
    return ranks


def collision_rate(codes: np.ndarray) -> float:
    """Fraction of items whose code tuple is shared with at least one other item."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.reshape(-1)] > 1).mean()) if len(codes) else 0.0


def append_dedup_level(
    codes: np.ndarray, dedup_size: int, order_key: np.ndarray | None = None
) -> np.ndarray:
    """codes (N, L) → unique IDs (N, L+1) by numbering collisions in a last level."""
    ranks = group_ranks(codes, order_key)
    if len(ranks) and ranks.max() >= dedup_size:
        raise ValueError(
            f"{ranks.max() + 1} items share one code but the disambiguation level holds "
            f"{dedup_size}; raise dedup_size or the codebook size"
        )
    return np.concatenate([codes, ranks[:, None]], axis=1)


def extend_unique(existing: np.ndarray, new_codes: np.ndarray, dedup_size: int) -> np.ndarray:
    """Unique IDs (M, L+1) for new items, given existing unique IDs (N, L+1) and new codes (M, L).

    Each new item takes the next free disambiguation index after every existing item with
    the same code tuple, so existing IDs never change.
    """
    L = new_codes.shape[1]
    prefixes = np.concatenate([existing[:, :L], new_codes])
    _, inverse = np.unique(prefixes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    next_free = np.zeros(inverse.max() + 1, dtype=np.int64)
    np.maximum.at(next_free, inverse[: len(existing)], existing[:, L] + 1)
    new_groups = inverse[len(existing) :]
    ranks = group_ranks(new_codes) + next_free[new_groups]
    if len(ranks) and ranks.max() >= dedup_size:
        raise ValueError(
            "a code tuple is full: refit the tokenizer (genrec retrain --refit-tokenizer)"
        )
    return np.concatenate([new_codes, ranks[:, None]], axis=1)
