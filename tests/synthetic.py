"""Synthetic catalogs and interactions with learnable structure, for fast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.datasets import Dataset


def synthetic_dataset(
    n_users: int = 150,
    n_genres: int = 6,
    per_genre: int = 20,
    min_len: int = 12,
    max_len: int = 30,
    noise: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Each user walks one genre's items in a fixed cyclic order (with a little noise), so the
    next item is predictable from the last ones."""
    rng = np.random.default_rng(seed)
    n_items = n_genres * per_genre
    rows = []
    for u in range(n_users):
        genre = rng.integers(n_genres)
        pos = rng.integers(per_genre)
        for t in range(rng.integers(min_len, max_len + 1)):
            item = genre * per_genre + (pos + t) % per_genre
            if rng.random() < noise:
                item = rng.integers(n_items)
            rows.append((f"u{u}", f"i{item}", 1_000_000 + 60 * t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).drop_duplicates(
        ["user_id", "item_id"], keep="first"
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Item {i}" for i in range(n_items)],
            "genres": [f"genre{i // per_genre}" for i in range(n_items)],
        }
    )
    return Dataset(inter.reset_index(drop=True), items, {"dataset": "synthetic"})


def clustered_embeddings(
    n: int = 200, d: int = 16, clusters: int = 10, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d))
    return (centers[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, d))).astype(
        np.float32
    )
