"""Embeddings for items a retrain meets for the first time, folded into the frozen codebooks' space.

The bundle keeps codebooks, not the embeddings they were fit on, but each known item's
reconstruction (the sum of its code centroids) lies in that space. A new item is placed at
the mean of the reconstructions of the known items its users also consumed, weighted by
co-occurrence and damped by popularity (count / √popularity, cosine-style), so it lands
beside the items it is consumed with and gets codes near theirs. Only training positions
count (no leakage of validation/test targets). An item with no such co-occurrence gets the
catalog's centroid: it still receives a unique ID, and the next `--refit-tokenizer` places it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pipeline.split import Split, training_matrix


def fold_in(split: Split, known: np.ndarray, new_items: np.ndarray) -> np.ndarray:
    """known (N_known, D) embeddings of catalog items 0..N_known−1; new_items (M,) catalog
    indices ≥ N_known → embeddings (M, D) with the known rows' mean norm."""
    x = training_matrix(split)
    n_known = len(known)
    known_x, new_x = x[:, :n_known], x[:, new_items]
    popularity = np.asarray(known_x.sum(0)).ravel()
    co = (new_x.T @ known_x).tocsr().astype(np.float64)  # (M, N_known) co-occurrence counts
    co = co @ sp.diags(1.0 / np.sqrt(np.maximum(popularity, 1.0)))
    weights = np.asarray(co.sum(1)).ravel()
    out = np.asarray(co @ known.astype(np.float64)) / np.maximum(weights, 1e-12)[:, None]
    out[weights == 0] = known.mean(0)
    norm = float(np.linalg.norm(known, axis=1).mean())
    out *= norm / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)
