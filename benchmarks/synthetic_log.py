"""Synthetic catalogs and interaction logs at scale (10⁴–10⁶ items, 10⁵–10⁷ events), vectorised.

The structure of tests/synthetic.py — users walk a topic's items in a fixed cyclic order, so
the next item is predictable from the last one — plus what a scale benchmark needs: Zipf
popularity (walks start at, and jump to, items drawn from a Zipf law), users of varied length,
and item embeddings that cluster by topic like real ones, so the tokenizer has structure to
find. Pure numpy over flat arrays, no per-user loop: 10⁷ events take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class SyntheticLog:
    """Events grouped by user in time order: `users`, `items`, `timestamps` (E,), plus
    item embeddings (N, D) and each item's topic (N,). Topics are contiguous index ranges."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    embeddings: np.ndarray
    topics: np.ndarray
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.items)

    def successor(self, items: np.ndarray) -> np.ndarray:
        """The item after each one in its topic's cyclic walk."""
        start = np.searchsorted(self.topics, self.topics[items], side="left")
        end = np.searchsorted(self.topics, self.topics[items], side="right")
        return start + (items - start + 1) % (end - start)

    def write_parquet(self, path: Path) -> Path:
        """`user_id,item_id,timestamp` with integer IDs, what `genrec train --interactions` reads."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {"user_id": self.users, "item_id": self.items, "timestamp": self.timestamps}
        )
        pq.write_table(table, path)
        return path


def zipf_sampler(
    n: int, exponent: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Item i has rank rank[i] (a random permutation) and weight (rank + 1)^-exponent.
    Returns (items ordered by rank, cumulative probabilities) for inverse-CDF sampling."""
    by_rank = rng.permutation(n)  # the item at each rank
    cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent)
    return by_rank, cdf / cdf[-1]


def synthetic_log(
    n_items: int,
    n_events: int,
    *,
    mean_length: int = 20,
    topic_size: int = 50,
    jump: float = 0.2,
    zipf: float = 1.0,
    dim: int = 64,
    seed: int = 0,
) -> SyntheticLog:
    """A catalog of `n_items` and exactly `n_events` events.

    Each user (≥ 3 events, geometric lengths of mean `mean_length`) starts at a Zipf-drawn item
    and steps to the next item of that item's topic, except that with probability `jump` it
    jumps to a fresh Zipf-drawn item. Embeddings: a topic centre plus item noise, L2-normalised.
    """
    if mean_length < 4 or n_events < 3:
        raise ValueError("need mean_length ≥ 4 and at least 3 events")
    rng = np.random.default_rng(seed)
    topics = np.arange(n_items) // topic_size  # (N,)
    first = topics * topic_size  # (N,) first item of each item's topic
    size = np.minimum(topic_size, n_items - first)  # (N,)

    # Users: lengths 3 + geometric, enough of them to cover n_events, the last one cut short.
    guess = n_events // (mean_length - 1) + 16
    lengths = 2 + rng.geometric(1.0 / (mean_length - 2), size=guess)
    ends = np.cumsum(lengths)
    n_users = int(np.searchsorted(ends, n_events)) + 1
    lengths = lengths[:n_users]
    lengths[-1] -= int(ends[n_users - 1]) - n_events
    if lengths[-1] < 3 and n_users > 1:  # fold a too-short last user into the one before
        lengths[-2] += lengths[-1]
        lengths, n_users = lengths[:-1], n_users - 1
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)  # (E,)
    user_start = np.zeros(n_events, dtype=bool)
    user_start[np.cumsum(lengths) - lengths] = True

    # Walks: the last jump before each event, and how many steps it lies behind.
    jumps = user_start | (rng.random(n_events) < jump)
    at = np.flatnonzero(jumps)
    by_rank, cdf = zipf_sampler(n_items, zipf, rng)
    landed = by_rank[np.searchsorted(cdf, rng.random(len(at)), side="right").clip(max=n_items - 1)]
    last = np.maximum.accumulate(np.where(jumps, np.arange(n_events), 0))  # (E,)
    origin = np.empty(n_events, dtype=np.int64)
    origin[at] = landed
    origin = origin[last]  # the item each event's walk jumped to
    steps = np.arange(n_events) - last
    items = first[origin] + (origin - first[origin] + steps) % size[origin]

    position = np.arange(n_events) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    user_t0 = rng.integers(1_600_000_000, 1_700_000_000, size=n_users)
    timestamps = np.repeat(user_t0, lengths) + 60 * position

    n_topics = int(topics[-1]) + 1
    centres = rng.standard_normal((n_topics, dim), dtype=np.float32)
    emb = centres[topics] + 0.5 * rng.standard_normal((n_items, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return SyntheticLog(users, items, timestamps, emb, topics, n_users, n_items)
